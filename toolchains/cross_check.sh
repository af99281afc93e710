#!/bin/sh
# The fast cross check of one target (toolchains/README.md):
#   usage: toolchains/cross_check.sh [TARGET]        (x86_64, aarch64, armv6l, armv7l;
#                                                     no TARGET: BR2_ARCH chooses)
#   1. Cython: _fastloop.pyx -> C (the venv's cython, as build/build.sh does);
#   2. the target's compiler and flags (toolchains/TARGET.env) compile it, and the other
#      C files of the binary (native/inittab.c, preinit.c, ctlfast.c, powerkey.c,
#      exec.c), against the TARGET's Python 3.11 headers; every header used is checked
#      to come from the target (none from the host's /usr/include unless the target is
#      the host);
#   3. toolchains/probe.c is linked statically with the same flags;
#   4. toolchains/elfcheck.py checks every object and the program for the target;
#   5. the program runs under the target's qemu-user CPU (natively on the target).
# Output in build/tmp/cross/TARGET (CROSS_OUT replaces it).  Environment: PY (the venv's
# python), CROSS_RUN=no skips step 5, CROSS_OFFLINE=yes never fetches the target's Python
# headers (toolchains/fetch_pydev.sh, otherwise run when they are missing); and the
# overrides of toolchains/targets.py: TARGET_CROSS / CROSS_COMPILE, STAGING_DIR,
# HOST_DIR, BR2_ARCH, CROSS_CFLAGS, PYDEV_ROOT, CROSS_CACHE.
# Exit status: 0 all good, 1 a check failed, 2 usage, 3 a tool or file is missing.
set -eu
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
[ $# -le 1 ] || { echo "usage: $0 [TARGET]" >&2; exit 2; }
# shellcheck source=toolchains/recipe.sh
. toolchains/recipe.sh
recipe_resolve "$PY" ${1:+"$1"} || exit 2
[ -z "$TOOL_PATH" ] || PATH=$TOOL_PATH:$PATH
OUT=${CROSS_OUT:-$OUT}
mkdir -p "$OUT"
say() { echo "cross_check[$TARGET]: $*"; }
fail() { echo "cross_check[$TARGET]: FAIL: $*" >&2; exit 1; }
missing() { echo "cross_check[$TARGET]: missing: $* (make cross-deps)" >&2; exit 3; }

command -v "$CC" >/dev/null 2>&1 || missing "$CC (Debian: $CROSS_DEBS)"
if [ ! -f "$PYCONFIG" ]; then
    if [ "$PYDEV_KIND" = cache ] && [ "${CROSS_OFFLINE:-no}" != yes ]; then
        CROSS_CACHE=$CACHE toolchains/fetch_pydev.sh "$DEB_ARCH" >&2
    fi
    [ -f "$PYCONFIG" ] || missing "the target's pyconfig.h: $PYCONFIG"
fi
say "$CC $ARCH_CFLAGS; Python headers: $PY_INCLUDE ($PYDEV_KIND)"

# 1-2. The hot loop and the other C files of the binary, as build/build.sh compiles them.
"$PY" -m cython -3 --module-name _schema_fastloop -o "$OUT/_schema_fastloop.c" _fastloop.pyx
objects=""
compile() {    # compile SOURCE OBJECT EXTRA_FLAGS...
    src=$1 obj=$2
    shift 2
    # shellcheck disable=SC2086 # the flags variables: word lists, split on purpose
    "$CC" $COMMON_CFLAGS $ARCH_CFLAGS $SYSROOT_FLAG "$@" -MD -MF "$obj.d" -c "$src" -o "$obj" ||
        fail "$CC could not compile $src"
    objects="$objects $obj"
}
# shellcheck disable=SC2086 # $PY_INCLUDES: -I flags, split on purpose
compile "$OUT/_schema_fastloop.c" "$OUT/_schema_fastloop.o" $PY_INCLUDES
# shellcheck disable=SC2086 # $PY_INCLUDES: -I flags, split on purpose
compile native/inittab.c "$OUT/inittab.o" $PY_INCLUDES
compile native/preinit.c "$OUT/preinit.o"
compile native/ctlfast.c "$OUT/ctlfast.o" -Inative
compile native/powerkey.c "$OUT/powerkey.o"
compile native/exec.c "$OUT/exec.o"

# Where every header came from: Python's from the target's tree, nothing from the
# host's /usr/include (x86_64 glibc or Python headers) unless the target is the host.
headers=$(sed 's/\\$//' "$OUT"/*.o.d | tr ' ' '\n' | grep '\.h$' | sort -u)
wrong_python=$(printf '%s\n' "$headers" | grep "/python3\.11/" | grep -v "^$PYDEV_ROOT" || true)
[ -z "$wrong_python" ] || fail "Python headers not from $PYDEV_ROOT: $wrong_python"
if [ "$HOST_IS_TARGET" = no ]; then
    leaked=$(printf '%s\n' "$headers" | grep '^/usr/include/' || true)
    [ -z "$leaked" ] || fail "host headers used: $leaked"
fi
printf '%s\n' "$headers" | grep -q "$GNU_TRIPLET/python3.11/pyconfig.h\|^$PY_INCLUDE/pyconfig.h" ||
    fail "the target's pyconfig.h was not used"

# 3. The tiny static program (its pyconfig.h must match the compiler's ABI).
# shellcheck disable=SC2086 # the flags variables: word lists, split on purpose
"$CC" $ARCH_CFLAGS $SYSROOT_FLAG -O2 $PY_INCLUDES -static toolchains/probe.c -o "$OUT/probe" ||
    fail "$CC could not build the static probe"

# 4. The ELF checks (machine, static, ARM attributes).
# shellcheck disable=SC2086 # $objects: compile()'s paths, split on purpose (no blanks in $OUT)
"$PY" toolchains/elfcheck.py --target "$TARGET" $objects "$OUT/probe" || fail "elfcheck"

# 5. Run it where the target's CPU is.
if [ "${CROSS_RUN:-yes}" != no ]; then
    if [ "$(uname -m)" = "$UNAME_MACHINE" ]; then
        run=""
    else
        command -v "$QEMU" >/dev/null 2>&1 || missing "$QEMU (Debian: qemu-user-static)"
        run="$QEMU -cpu $QEMU_CPU"
    fi
    status=0
    $run "$OUT/probe" >"$OUT/probe.out" 2>&1 || status=$?
    sed "s/^/    /" "$OUT/probe.out"
    [ $status = 0 ] || fail "${run:+$run }probe exited with status $status"
    grep -qx "machine=$UNAME_MACHINE" "$OUT/probe.out" ||
        fail "probe: machine is not $UNAME_MACHINE"
    grep -qx "probe: ok" "$OUT/probe.out" || fail "probe did not say ok"
    say "probe ran${run:+ under $run}"
fi
say "ok ($OUT)"
