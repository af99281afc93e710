#!/bin/sh
# Build the single static executable build/out/schema-init:
#   1. Cython: _fastloop.pyx -> C -> an object file, the built-in module _schema_fastloop,
#      listed in build/inittab.c, our table of built-in modules (it replaces libpython's,
#      so unused C modules are not linked);
#   2. Nuitka (--standalone --static-libpython=yes, Debian's python3.11) compiles
#      schema_init, linking with LDFLAGS=-static and those two objects;
#   3. the one file is copied to build/out/ and checked to be alone.
set -eu
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
TMP=build/tmp/nuitka
OUT=build/out
mkdir -p "$TMP" "$OUT"
INCLUDES=$(python3.11-config --includes)
CFLAGS="-O2 -fPIC -ffunction-sections -fdata-sections"

$PY -m cython -3 --module-name _schema_fastloop -o "$TMP/_schema_fastloop.c" _fastloop.pyx
# shellcheck disable=SC2086
gcc $CFLAGS $INCLUDES -c "$TMP/_schema_fastloop.c" -o "$TMP/_schema_fastloop.o"
# shellcheck disable=SC2086
gcc $CFLAGS $INCLUDES -c build/inittab.c -o "$TMP/inittab.o"
gcc $CFLAGS -c build/preinit.c -o "$TMP/preinit.o"

EXCLUDES=$($PY build/stdlib_excludes.py)

LDFLAGS="-static $PWD/$TMP/_schema_fastloop.o $PWD/$TMP/inittab.o $PWD/$TMP/preinit.o" \
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
    --quiet --report=build/tmp/nuitka-report.xml \
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
