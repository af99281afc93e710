#!/bin/sh
# build/patch-nuitka.sh PYTHON DEST: DEST/nuitka is a copy of PYTHON's Nuitka with the
# patches of build/nuitka-patches/ (each says why) applied; remade only when Nuitka or a
# patch changes (DEST/stamp).  A patch that does not apply exactly stops the build.
# The copy is pure Python: the build roots of other targets use the same one.
set -eu
cd "$(dirname "$0")/.."
PY=$1
PATCHED=$2
NUITKA_DIR=$($PY -c 'import os, nuitka; print(os.path.dirname(nuitka.__file__))')
NUITKA_VERSION=$($PY -c 'from nuitka.Version import getNuitkaVersion; print(getNuitkaVersion())')
# SKIP_PATCHES: patch numbers left out (bench/levers_bench.py measures a build without one)
SKIP_PATCHES=${SKIP_PATCHES:-}
STAMP="$NUITKA_VERSION $NUITKA_DIR $(cat build/nuitka-patches/*.patch | sha256sum) -$SKIP_PATCHES"
[ "$(cat "$PATCHED/stamp" 2>/dev/null)" = "$STAMP" ] && exit 0
rm -rf "$PATCHED"
mkdir -p "$PATCHED"
cp -R "$NUITKA_DIR" "$PATCHED/nuitka"
find "$PATCHED/nuitka" -name __pycache__ -prune -exec rm -rf {} +
for p in build/nuitka-patches/*.patch; do
    case " $SKIP_PATCHES " in *" $(basename "$p" | cut -d- -f1) "*) continue ;; esac
    if ! patch -p1 --batch --forward --fuzz=0 --no-backup-if-mismatch --quiet \
            -d "$PATCHED" < "$p"; then
        echo "build: $p does not apply to Nuitka $NUITKA_VERSION ($NUITKA_DIR)" >&2
        exit 1
    fi
done
echo "$STAMP" > "$PATCHED/stamp"
