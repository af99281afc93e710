#!/bin/sh
# Build the single static executable build/out/schema-init:
#   1. Cython: _fastloop.pyx -> C -> an object file, the built-in module _schema_fastloop,
#      listed in native/inittab.c, our table of built-in modules (it replaces libpython's,
#      so unused C modules are not linked);
#   2. Nuitka (--standalone --static-libpython=yes, Debian's python3.11) compiles
#      schema_init, linking with LDFLAGS=-static and those two objects;
#   3. the one file is copied to build/out/ and checked to be alone.
# BUILD_TMP (default build/tmp) holds the scratch files, BUILD_OUT (default build/out)
# receives the binary and its links: two builds with different ones do not meet.
# For the other targets toolchains/build-target.sh runs this script inside the target's
# build root and sets: CC (the compiler; default gcc), ARCH_CFLAGS (CPU flags for every
# C file and the link), FASTLOOP_C (the Cython output, made outside: Cython's C is the
# same for every target), NUITKA_PATCHED (a ready patched Nuitka, see below) and
# STDLIB_EXCLUDES.
# ENTRY and PACKAGES (bench/floor_bench.py): another entry script than build/entry.py,
# and the Nuitka options naming the packages to compile in (default: schema_init), to
# build a program exactly like ours around other code.
set -eu
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
BUILD_TMP=${BUILD_TMP:-build/tmp}
BUILD_OUT=${BUILD_OUT:-build/out}
mkdir -p "$BUILD_TMP/nuitka" "$BUILD_OUT"
BUILD_TMP=$(cd "$BUILD_TMP" && pwd)
TMP=$BUILD_TMP/nuitka
OUT=$BUILD_OUT
INCLUDES=$(python3.11-config --includes)
CC=${CC:-gcc}
ARCH_CFLAGS=${ARCH_CFLAGS:-}
CFLAGS="-O2 -fPIC -ffunction-sections -fdata-sections $ARCH_CFLAGS"
export CC

if [ -n "${FASTLOOP_C:-}" ]; then
    cp "$FASTLOOP_C" "$TMP/_schema_fastloop.c"
else
    $PY -m cython -3 --module-name _schema_fastloop -o "$TMP/_schema_fastloop.c" _fastloop.pyx
fi
# shellcheck disable=SC2086 # $CC $CFLAGS $INCLUDES: word lists, split on purpose
$CC $CFLAGS $INCLUDES -c "$TMP/_schema_fastloop.c" -o "$TMP/_schema_fastloop.o"
# shellcheck disable=SC2086 # $CC $CFLAGS $INCLUDES: word lists, split on purpose
$CC $CFLAGS $INCLUDES -c native/inittab.c -o "$TMP/inittab.o"
# shellcheck disable=SC2086 # $CC $CFLAGS $INCLUDES: word lists, split on purpose
$CC $CFLAGS ${PREINIT_DEFS:-} -c native/preinit.c -o "$TMP/preinit.o"
# shellcheck disable=SC2086 # $CC $CFLAGS $INCLUDES: word lists, split on purpose
$CC $CFLAGS -Inative -c native/ctlfast.c -o "$TMP/ctlfast.o"
# shellcheck disable=SC2086 # $CC $CFLAGS $INCLUDES: word lists, split on purpose
$CC $CFLAGS -c native/powerkey.c -o "$TMP/powerkey.o"
# shellcheck disable=SC2086 # $CC $CFLAGS $INCLUDES: word lists, split on purpose
$CC $CFLAGS -c native/exec.c -o "$TMP/exec.o"

# -X no_debug_ranges (PYX_FLAGS): the bytecode build/frozen.py and Nuitka compile (the
# bootstrap, and the few stdlib modules Nuitka keeps as bytecode) without column tables:
# 16 kB less private memory, tracebacks without their ^^^ markers (bench/REPORT-levers.md).
PYX_FLAGS=${PYX_FLAGS--X no_debug_ranges}
# CPython's frozen-module table without deep-freeze: only importlib's bootstrap,
# marshalled by $PY (build/frozen.py says why: 0.5 MB less private dirty memory).
# FROZEN=deepfreeze links libpython's own table instead.
FROZEN_O=
if [ "${FROZEN:-bootstrap}" = bootstrap ]; then
    # shellcheck disable=SC2086 # $PYX_FLAGS: interpreter options, split on purpose
    $PY ${PYX_FLAGS:-} build/frozen.py "$TMP/frozen.c"
    # shellcheck disable=SC2086 # $CC $CFLAGS $INCLUDES: word lists, split on purpose
    $CC $CFLAGS $INCLUDES -c "$TMP/frozen.c" -o "$TMP/frozen.o"
    FROZEN_O=$TMP/frozen.o
fi

# (STDLIB_EXCLUDES: the list made outside a build root, where schema_init imports with
# its compiled loop; the modules a Python 3.11 on Linux imports are the same on all.)
EXCLUDES=${STDLIB_EXCLUDES:-$($PY build/stdlib_excludes.py)}

# Nuitka with the patches of build/nuitka-patches/ (build/patch-nuitka.sh: a private copy
# of the venv's Nuitka, remade when Nuitka or a patch changes).  NUITKA_PATCHED names
# such a copy made before (a build root has no Nuitka of its own).
if [ -n "${NUITKA_PATCHED:-}" ]; then
    PATCHED=$NUITKA_PATCHED
    test -s "$PATCHED/stamp"
else
    PATCHED=$BUILD_TMP/nuitka-patched
    build/patch-nuitka.sh "$PY" "$PATCHED"
fi
export PYTHONPATH="$PATCHED${PYTHONPATH:+:$PYTHONPATH}"
test "$($PY -c 'import nuitka; print(nuitka.__file__)')" = "$PATCHED/nuitka/__init__.py"

# no_randomization: a fixed hash seed (PYTHONHASHSEED=0 for the interpreter only, not
# its children), so the start-up asks the kernel for no random bytes: early in a boot
# getrandom() has none yet, and the fallback reads /dev/urandom, which may not exist.
# Hash flooding needs control of many dict keys; schema-init's inputs are root's files.
# -Os for the compiled program (Nuitka puts CFLAGS after its own -O2; LDFLAGS reach the
# LTO link): 0.8 MB less binary and 0.65 MB less resident text, no measurable cost in
# start-up or per request (measured, bench/REPORT-footprint.md).
# shellcheck disable=SC2086 # $PACKAGES, $NUITKA_EXTRA: Nuitka options, split on purpose
CFLAGS="-Os $ARCH_CFLAGS" \
LDFLAGS="-Os $ARCH_CFLAGS -static $TMP/_schema_fastloop.o $TMP/inittab.o $TMP/preinit.o $TMP/ctlfast.o $TMP/powerkey.o $TMP/exec.o $FROZEN_O" \
$PY ${PYX_FLAGS:-} -m nuitka \
    --standalone \
    --static-libpython=yes \
    --assume-yes-for-downloads \
    --output-dir="$TMP" \
    --output-filename=schema-init \
    --remove-output --lto=yes \
    --python-flag=no_docstrings \
    --python-flag=no_asserts \
    --python-flag=no_site \
    --python-flag=no_randomization \
    --nofollow-import-to=schema_init.pid1._fastloop --nofollow-import-to=schema_init.reference \
    --nofollow-import-to=schema_init.fleet \
    --nofollow-import-to=_codecs_cn,_codecs_hk,_codecs_iso2022,_codecs_jp,_codecs_kr,_codecs_tw \
    --nofollow-import-to=_multibytecodec,_typing,mmap,_json \
    --nofollow-import-to="$EXCLUDES" \
    ${PACKAGES---include-package=schema_init} \
    --nofollow-import-to='*.tests' \
    --noinclude-pytest-mode=nofollow \
    --noinclude-setuptools-mode=nofollow \
    --noinclude-unittest-mode=nofollow \
    --noinclude-IPython-mode=nofollow \
    --no-deployment-flag=self-execution \
    ${NUITKA_EXTRA:-} --quiet --report="$BUILD_TMP/nuitka-report.xml" \
    "${ENTRY:-build/entry.py}"

DIST="$TMP/$(basename "${ENTRY:-build/entry.py}" .py).dist"
# _json (not followed above) is the C accelerator of json, which only the journal's
# helpers import: json runs on its pure-Python scanner without it.
# Nuitka copies the CJK codec extensions as "technically required for start-up"
# (the encodings package could import them); schema-init never decodes CJK text and
# the build tier proves the binary runs without them.  Anything else is an error.
rm -f "$DIST"/_codecs_cn.so "$DIST"/_codecs_hk.so "$DIST"/_codecs_iso2022.so \
      "$DIST"/_codecs_jp.so "$DIST"/_codecs_kr.so "$DIST"/_codecs_tw.so \
      "$DIST"/_multibytecodec.so
extra=$(find "$DIST" -mindepth 1 -maxdepth 1 ! -name schema-init -printf '%f\n')
if [ -n "$extra" ]; then
    echo "build: the dist folder holds more than the binary: $extra" >&2
    exit 1
fi
cp "$DIST/schema-init" "$OUT/schema-init.tmp"
mv "$OUT/schema-init.tmp" "$OUT/schema-init"
ln -sf schema-init "$OUT/schema-ctl"
ln -sf schema-init "$OUT/schema-subreaper"
ln -sf schema-init "$OUT/schema-journald"
ln -sf schema-init "$OUT/journalctl"
ln -sf schema-init "$OUT/schema-firstboot"
ln -sf schema-init "$OUT/schema-metrics"
ls -l "$OUT/schema-init"
