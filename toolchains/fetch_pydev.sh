#!/bin/sh
# Fetch a target's Python 3.11 development files without a build root:
#   usage: toolchains/fetch_pydev.sh [--force] DEB_ARCH...      (arm64 armel armhf amd64)
# For each architecture, `apt-get download` fetches libpython3.11-dev:ARCH (Python.h, the
# multiarch pyconfig.h wrapper, the architecture's real pyconfig.h, libpython3.11.a and
# -pic.a, config.c) and, for the static link of the whole binary later, zlib1g-dev:ARCH
# and libexpat1-dev:ARCH; `dpkg -x` unpacks them into
#   build/tmp/cross/pydev/ARCH/root        (CROSS_CACHE replaces build/tmp/cross)
# apt runs with a private state (package lists in build/tmp/cross/apt) that knows the
# foreign architectures: the host's sources (and so its mirror or proxy) are used, its
# dpkg architectures and package lists are left alone (no dpkg --add-architecture), and
# apt checks every .deb against the signed indices as usual.  The host's own version of
# libpython3.11-dev is taken when the mirror still has it, else the newest (a warning
# says so; both are written to ARCH/VERSION).  An architecture already unpacked is
# skipped unless --force.
set -eu
cd "$(dirname "$0")/.."
FORCE=no
if [ "${1:-}" = "--force" ]; then FORCE=yes; shift; fi
[ $# -gt 0 ] || { echo "usage: $0 [--force] DEB_ARCH..." >&2; exit 2; }
CACHE=${CROSS_CACHE:-build/tmp/cross}
mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)
PKGS="libpython3.11-dev zlib1g-dev libexpat1-dev"

todo=""
for arch in "$@"; do
    case $arch in *[!a-z0-9]*|"") echo "fetch_pydev: bad architecture '$arch'" >&2; exit 2;; esac
    if [ $FORCE = yes ] || [ ! -s "$CACHE/pydev/$arch/VERSION" ]; then
        todo="$todo $arch"
    fi
done
[ -n "$todo" ] || exit 0

STATE=$CACHE/apt
mkdir -p "$STATE/lists/partial" "$STATE/cache/archives/partial"
set -- -q -o "Dir::State::Lists=$STATE/lists" -o "Dir::Cache=$STATE/cache" \
    -o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache="
for arch in $todo; do set -- "$@" -o "APT::Architectures::=$arch"; done
[ "$(id -u)" = 0 ] && set -- "$@" -o "APT::Sandbox::User=root"
# One index of the host's sources may fail (a foreign repository without these
# architectures, a mirror mid-sync): go on, the downloads below say if it mattered.
apt-get "$@" update >"$STATE/update.log" 2>&1 ||
    echo "fetch_pydev: apt-get update reported errors (see $STATE/update.log)" >&2

host_version=$(dpkg-query -W -f='${Version}' libpython3.11-dev 2>/dev/null || true)
for arch in $todo; do
    dir=$CACHE/pydev/$arch
    rm -rf "$dir.tmp"
    mkdir -p "$dir.tmp/debs" "$dir.tmp/root"
    versions=$(apt-cache "$@" madison "libpython3.11-dev:$arch" |
               awk -F'|' '{gsub(/ /, "", $2); print $2}')
    if [ -z "$versions" ]; then
        echo "fetch_pydev: no libpython3.11-dev for $arch in the host's apt sources" >&2
        exit 1
    fi
    if [ -n "$host_version" ] && printf '%s\n' "$versions" | grep -qxF "$host_version"; then
        version=$host_version
    else
        version=$(printf '%s\n' "$versions" | head -n 1)
        echo "fetch_pydev: $arch: libpython3.11-dev $version" \
             "(the host has ${host_version:-none})" >&2
    fi
    pkgs="libpython3.11-dev:$arch=$version"
    for p in $PKGS; do [ "$p" = libpython3.11-dev ] || pkgs="$pkgs $p:$arch"; done
    # shellcheck disable=SC2086 # $pkgs: PACKAGE:ARCH words, split on purpose
    (cd "$dir.tmp/debs" && apt-get "$@" download $pkgs >/dev/null)
    for deb in "$dir.tmp/debs"/*.deb; do
        dpkg -x "$deb" "$dir.tmp/root"
    done
    {
        echo "libpython3.11-dev:$arch $version"
        echo "host libpython3.11-dev ${host_version:-none}"
        for deb in "$dir.tmp/debs"/*.deb; do
            dpkg-deb -f "$deb" Package Version Architecture | tr '\n' ' '
            echo
        done
    } >"$dir.tmp/VERSION"
    rm -rf "$dir"
    mv "$dir.tmp" "$dir"
    echo "fetch_pydev: $arch: $(head -n 1 "$dir/VERSION") in $dir/root"
done
