#!/bin/sh
# Build the single static executable build/out/schema-init:
#   1. Cython: _fastloop.pyx -> C -> an object file, the built-in module _schema_fastloop,
#      listed in build/inittab.c, our table of built-in modules (it replaces libpython's,
#      so unused C modules are not linked);
#   2. Nuitka (--standalone --static-libpython=yes, Debian's python3.11) compiles
#      schema_init, linking with LDFLAGS=-static and those two objects;
#   3. the one file is copied to build/out/ and checked to be alone.
# BUILD_TMP (default build/tmp) holds the scratch files, BUILD_OUT (default build/out)
# receives the binary and its links: two builds with different ones do not meet.
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
CFLAGS="-O2 -fPIC -ffunction-sections -fdata-sections"

$PY -m cython -3 --module-name _schema_fastloop -o "$TMP/_schema_fastloop.c" _fastloop.pyx
# shellcheck disable=SC2086
gcc $CFLAGS $INCLUDES -c "$TMP/_schema_fastloop.c" -o "$TMP/_schema_fastloop.o"
# shellcheck disable=SC2086
gcc $CFLAGS $INCLUDES -c build/inittab.c -o "$TMP/inittab.o"
gcc $CFLAGS -c build/preinit.c -o "$TMP/preinit.o"
gcc $CFLAGS -Ibuild -c build/ctlfast.c -o "$TMP/ctlfast.o"

EXCLUDES=$($PY build/stdlib_excludes.py)

# Nuitka with the patches of build/nuitka-patches/ (each says why): applied to a private
# copy of the venv's Nuitka, remade when Nuitka or a patch changes; one that does not
# apply exactly stops the build.
NUITKA_DIR=$($PY -c 'import os, nuitka; print(os.path.dirname(nuitka.__file__))')
NUITKA_VERSION=$($PY -c 'from nuitka.Version import getNuitkaVersion; print(getNuitkaVersion())')
PATCHED=$BUILD_TMP/nuitka-patched
STAMP="$NUITKA_VERSION $NUITKA_DIR $(cat build/nuitka-patches/*.patch | sha256sum)"
if [ "$(cat "$PATCHED/stamp" 2>/dev/null)" != "$STAMP" ]; then
    rm -rf "$PATCHED"
    mkdir -p "$PATCHED"
    cp -R "$NUITKA_DIR" "$PATCHED/nuitka"
    find "$PATCHED/nuitka" -name __pycache__ -prune -exec rm -rf {} +
    for p in build/nuitka-patches/*.patch; do
        if ! patch -p1 --batch --forward --fuzz=0 --no-backup-if-mismatch --quiet \
                -d "$PATCHED" < "$p"; then
            echo "build: $p does not apply to Nuitka $NUITKA_VERSION ($NUITKA_DIR)" >&2
            exit 1
        fi
    done
    echo "$STAMP" > "$PATCHED/stamp"
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
CFLAGS="-Os" \
LDFLAGS="-Os -static $TMP/_schema_fastloop.o $TMP/inittab.o $TMP/preinit.o $TMP/ctlfast.o" \
$PY -m nuitka \
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
    --nofollow-import-to=schema_init._fastloop --nofollow-import-to=schema_init.reference \
    --nofollow-import-to=_codecs_cn,_codecs_hk,_codecs_iso2022,_codecs_jp,_codecs_kr,_codecs_tw \
    --nofollow-import-to=_multibytecodec,_typing,mmap \
    --nofollow-import-to="$EXCLUDES" \
    --include-package=schema_init \
    --nofollow-import-to='*.tests' \
    --noinclude-pytest-mode=nofollow \
    --noinclude-setuptools-mode=nofollow \
    --noinclude-unittest-mode=nofollow \
    --noinclude-IPython-mode=nofollow \
    --no-deployment-flag=self-execution \
    --quiet --report="$BUILD_TMP/nuitka-report.xml" \
    build/entry.py

DIST="$TMP/entry.dist"
# Nuitka copies the CJK codec extensions as "technically required for start-up"
# (the encodings package could import them); schema-init never decodes CJK text and
# the build tier proves the binary runs without them.  Anything else is an error.
rm -f "$DIST"/_codecs_cn.so "$DIST"/_codecs_hk.so "$DIST"/_codecs_iso2022.so \
      "$DIST"/_codecs_jp.so "$DIST"/_codecs_kr.so "$DIST"/_codecs_tw.so \
      "$DIST"/_multibytecodec.so
extra=$(ls -A "$DIST" | grep -v '^schema-init$' || true)
if [ -n "$extra" ]; then
    echo "build: the dist folder holds more than the binary: $extra" >&2
    exit 1
fi
cp "$DIST/schema-init" "$OUT/schema-init.tmp"
mv "$OUT/schema-init.tmp" "$OUT/schema-init"
ln -sf schema-init "$OUT/schema-ctl"
ln -sf schema-init "$OUT/schema-subreaper"
ls -l "$OUT/schema-init"
