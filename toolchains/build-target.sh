#!/bin/sh
# The static binary for one target, built inside that target's Debian root:
#   usage: toolchains/build-target.sh TARGET        (aarch64, armv6l; x86_64 too)
# leaves build/out/TARGET/schema-init (+ the schema-ctl, schema-subreaper links).
#
# Nuitka cannot cross-compile: it must run on the target's own Python, whose sysconfig,
# pyconfig.h, sizes and libpython3.11.a describe the target.  So build/build.sh runs
# unchanged inside the root of toolchains/mkroot.sh (chroot; the root's python3.11 runs
# through qemu-user-static), with:
#   - the Cython output made here (Cython's C is the same for every target),
#   - the patched Nuitka made here (pure Python, build/patch-nuitka.sh),
#   - the C compiled by a real cross compiler (CROSS_CC=host, the default): this
#     machine's Debian cross gcc, for the target's CPU flags, run natively inside the
#     root (this machine's /usr is bound at /host/usr with its loader and libraries);
#     it compiles against the root's headers and links the root's libc.a, libpython and
#     zlib/expat, i.e. what the root's own gcc would use.  CROSS_CC=root uses the root's
#     gcc instead, emulated: the same result, several times slower.
#     TARGET_CROSS/CROSS_COMPILE name another cross compiler (Buildroot's).
# Caches under $CROSS_CACHE (default build/tmp/cross): roots/TARGET (the root),
# TARGET/build (Nuitka's scratch), ccache/TARGET (the C objects), nuitka-patched.
set -eu
cd "$(dirname "$0")/.."
TOP=$(pwd)

if [ "${1:-}" = --inside ]; then
    # Second half, in a private mount namespace (see the end of this file).
    shift
    r=$ROOT
    mount -t proc proc "$r/proc"
    mount --rbind /dev "$r/dev"
    mkdir -p "$r/src" "$r/build" "$r/opt/nuitka-patched" "$r/ccache"
    mount --bind "$TOP" "$r/src"
    mount -o remount,bind,ro "$r/src"
    mount --bind "$WORK" "$r/build"
    mount --bind "$CACHE/nuitka-patched" "$r/opt/nuitka-patched"
    mount --bind "$CACHE/ccache/$TARGET" "$r/ccache"
    if [ "$CC_MODE" = host ]; then
        # This machine's programs inside the root: /host/usr, and the x86_64 loader and
        # libraries where the loader looks (paths the target root does not use).
        hostlib=/usr/lib/$(gcc -dumpmachine)
        mkdir -p "$r/host/usr" "$r$hostlib" "$r/usr/lib64"
        mount --rbind /usr "$r/host/usr"
        mount --bind "$hostlib" "$r$hostlib"
        mount --bind /usr/lib64 "$r/usr/lib64"
        [ -e "$r/lib64" ] || [ -L "$r/lib64" ] || ln -s usr/lib64 "$r/lib64"
        # Nuitka puts the compiler's directory first in PATH: that must be one holding
        # only the cross compiler and ccache, not /host/usr/bin, whose objdump (x86_64)
        # would name the target's format "elf64-little" for the constants blob.
        mkdir -p "$r/opt/cross"
        mount --bind "$WORK/cross-bin" "$r/opt/cross"
        if [ -n "$TOOLCHAIN_DIR" ]; then
            mkdir -p "$r$TOOLCHAIN_DIR"
            mount --rbind "$TOOLCHAIN_DIR" "$r$TOOLCHAIN_DIR"
        fi
    fi
    exec chroot "$r" /usr/bin/env -i HOME=/build/home LANG=C.UTF-8 \
        PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin \
        CCACHE_DIR=/ccache NUITKA_CACHE_DIR=/ccache/nuitka \
        CC="$ROOT_CC" ARCH_CFLAGS="$ARCH_CFLAGS" \
        FASTLOOP_C=/build/_schema_fastloop.c NUITKA_PATCHED=/opt/nuitka-patched \
        STDLIB_EXCLUDES="$STDLIB_EXCLUDES" NUITKA_EXTRA="${NUITKA_EXTRA:-}" \
        PY=/usr/bin/python3.11 BUILD_TMP=/build BUILD_OUT=/build/out \
        /bin/sh /src/build/build.sh
fi

[ $# = 1 ] || { echo "usage: $0 TARGET" >&2; exit 2; }
TARGET=$1
# shellcheck source=toolchains/recipe.sh
. toolchains/recipe.sh
recipe_resolve .venv/bin/python "$TARGET"
CC_MODE=${CROSS_CC:-host}
case $CC_MODE in
    host)
        if [ "$HOST_IS_TARGET" = yes ]; then
            ROOT_CC=gcc      # the root's own gcc runs natively here
            CC_MODE=root
        else
            # targets.py resolved the compiler (TARGET_CROSS, CROSS_COMPILE or the
            # recipe's Debian one) for this machine; inside the root it is under /host.
            path=$(command -v "$CC") || {
                echo "build-target: $CC not found (make cross-deps installs it)" >&2; exit 3; }
            real=$(readlink -f "$path")
            ROOT_CC=/opt/cross/$(basename "$path")
            case $real in
                /usr/*) TOOLCHAIN_DIR="" ; real=/host$real ;;
                # Buildroot's toolchain (TARGET_CROSS=$HOST_DIR/bin/...-): its whole
                # prefix appears in the root at the same path.  Its C library must be
                # the root's (glibc, the target's ABI): elfcheck checks the result.
                *) TOOLCHAIN_DIR=$(dirname "$(dirname "$real")") ;;
            esac
        fi ;;
    root) ROOT_CC=gcc ;;
    *) echo "build-target: CROSS_CC must be host or root, not $CC_MODE" >&2; exit 2 ;;
esac

start=$(date +%s)
# Progress: four steps, one line each on stderr; the tools' output goes to logs named
# at the end (and the log's last lines are shown when a step fails).
echo "build-target: step 1/4: the $TARGET root (toolchains/mkroot.sh; cached after the first build)" >&2
ROOT=$(toolchains/mkroot.sh "$TARGET")
rooted=$(date +%s)
echo "build-target: step 2/4: patched Nuitka, the Cython loop, the stdlib list ($((rooted - start)) s so far)" >&2
WORK=$CACHE/$TARGET/build
OUTDIR=build/out/$TARGET
mkdir -p "$WORK/out" "$WORK/home" "$CACHE/ccache/$TARGET" "$OUTDIR"
build/patch-nuitka.sh .venv/bin/python "$CACHE/nuitka-patched"
.venv/bin/python -m cython -3 --module-name _schema_fastloop \
    -o "$WORK/_schema_fastloop.c" _fastloop.pyx
STDLIB_EXCLUDES=$(.venv/bin/python build/stdlib_excludes.py)
if [ "$CC_MODE" = host ]; then
    rm -rf "$WORK/cross-bin"
    mkdir -p "$WORK/cross-bin"
    ln -s "$real" "$WORK/cross-bin/$(basename "$path")"
    if command -v ccache >/dev/null; then
        ln -s "/host$(readlink -f "$(command -v ccache)")" "$WORK/cross-bin/ccache"
    fi
fi
rm -f "$WORK/out/schema-init"
TOOLCHAIN_DIR=${TOOLCHAIN_DIR:-}
export STDLIB_EXCLUDES ROOT WORK CACHE TARGET CC_MODE ROOT_CC ARCH_CFLAGS TOP TOOLCHAIN_DIR
echo "build-target: step 3/4: build/build.sh inside the root (about a minute; log: $WORK/build.log)" >&2
if ! unshare --mount --propagation private "$0" --inside >"$WORK/build.log" 2>&1; then
    tail -n 30 "$WORK/build.log" >&2
    echo "build-target: the build in the $TARGET root failed (log: $WORK/build.log)" >&2
    exit 1
fi
echo "build-target: step 4/4: elfcheck ($TARGET, static)" >&2
.venv/bin/python toolchains/elfcheck.py --target "$TARGET" "$WORK/out/schema-init"
cp "$WORK/out/schema-init" "$OUTDIR/schema-init.tmp"
mv "$OUTDIR/schema-init.tmp" "$OUTDIR/schema-init"
ln -sf schema-init "$OUTDIR/schema-ctl"
ln -sf schema-init "$OUTDIR/schema-subreaper"
ln -sf schema-init "$OUTDIR/schema-journald"
ln -sf schema-init "$OUTDIR/journalctl"
ln -sf schema-init "$OUTDIR/schema-firstboot"
ln -sf schema-init "$OUTDIR/schema-metrics"
end=$(date +%s)
echo "build-target: $OUTDIR/schema-init ($(stat -c %s "$OUTDIR/schema-init") bytes):" \
     "root $((rooted - start)) s, build $((end - rooted)) s, compiler $CC_MODE"
echo "build-target: the build's output: $WORK/build.log" >&2
