#!/bin/sh
# The reproducible build root of one target: a Debian bookworm made with
#   debootstrap --variant=minbase --arch=DEB_ARCH
# holding the target's own Python 3.11 (python3.11-dev: headers, libpython3.11.a) and the
# static libraries the binary links, run through qemu-user-static on this machine.
#   usage: toolchains/mkroot.sh TARGET            (x86_64, aarch64, armv6l)
# The root is  $CROSS_CACHE/roots/TARGET  (default build/tmp/cross/roots/TARGET); it is
# made once and reused while its stamp (suite, packages, recipe) is unchanged.
# Why bookworm's 3.11 and not trixie's 3.13: measured lighter (5.41 vs 5.72 MB
# Private_Dirty, 26 vs 34 ms start-up for a minimal static Nuitka program).
# MIRROR (default: the first deb.debian.org-style URI of the host's apt sources) and
# SUITE (default bookworm) may be given.
set -eu
cd "$(dirname "$0")/.."
[ $# = 1 ] || { echo "usage: $0 TARGET" >&2; exit 2; }
target=$1
# shellcheck source=toolchains/recipe.sh
. toolchains/recipe.sh
recipe_resolve .venv/bin/python "$target"
SUITE=${SUITE:-bookworm}
if [ -z "${MIRROR:-}" ]; then
    MIRROR=$(cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null |
             sed -n 's|^URIs: *\([^ ]*debian\)/*$|\1|p; s|^deb  *\(http[^ ]*debian\)/* .*|\1|p' |
             head -n 1)
    MIRROR=${MIRROR:-http://deb.debian.org/debian}
fi
PACKAGES="python3.11-dev,libpython3.11-dev,zlib1g-dev,libexpat1-dev,gcc,libc6-dev,make,file,patchelf,ccache"
ROOTS=$CACHE/roots
root=$ROOTS/$target
stamp="$SUITE $DEB_ARCH $PACKAGES $(sha256sum "toolchains/$target.env" | cut -c1-16)"
if [ "$(cat "$root/.schema-init-root" 2>/dev/null)" = "$stamp" ]; then
    echo "$root"
    exit 0
fi
build/ensure-deps.sh debootstrap qemu-user-static >&2
host=$(dpkg --print-architecture)
if [ "$DEB_ARCH" != "$host" ]; then
    toolchains/binfmt.sh "$(basename "$QEMU" -static)" >&2
fi
mkdir -p "$ROOTS"
rm -rf "$root.tmp"
start=$(date +%s)
echo "mkroot: debootstrap $SUITE $DEB_ARCH into $root (a few minutes)" >&2
if ! debootstrap --variant=minbase --arch="$DEB_ARCH" --include="$PACKAGES" \
        "$SUITE" "$root.tmp" "$MIRROR" >"$ROOTS/$target.log" 2>&1; then
    tail -n 20 "$ROOTS/$target.log" >&2
    echo "mkroot: debootstrap failed (log: $ROOTS/$target.log)" >&2
    exit 1
fi
rm -rf "$root.tmp/var/cache/apt/archives"/*.deb
# What is inside, for the record: every package and version.
# shellcheck disable=SC2016 # ${Package} & co. are dpkg-query's fields, not sh's
chroot "$root.tmp" dpkg-query -W -f='${Package} ${Version} ${Architecture}\n' \
    > "$root.tmp/.schema-init-packages"
echo "$stamp" > "$root.tmp/.schema-init-root"
rm -rf "$root"
mv "$root.tmp" "$root"
echo "mkroot: $target root made in $(( $(date +%s) - start )) s" >&2
echo "$root"
