#!/bin/sh
# Fetch what an emulated boot of a target needs, without touching the host's apt state:
#   usage: toolchains/fetch_kernel.sh DEB_ARCH...          (arm64, armel)
# arm64: linux-image-arm64's kernel (QEMU -M virt); armel: linux-image-rpi's kernel and
# the Pi Zero W device tree (QEMU -M raspi0); both: their modules and busybox-static for
# the initramfs.  The packages come from the host's apt sources through the private apt
# state of fetch_pydev.sh (build/tmp/cross/apt), are checked by apt as usual, and are
# unpacked with dpkg -x into build/tmp/cross/kernel/DEB_ARCH/root; KERNEL names the
# kernel release (e.g. 6.1.0-50-arm64).  An architecture already there is skipped.
set -eu
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || { echo "usage: $0 DEB_ARCH..." >&2; exit 2; }
CACHE=${CROSS_CACHE:-build/tmp/cross}
mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)
STATE=$CACHE/apt
mkdir -p "$STATE/lists/partial" "$STATE/cache/archives/partial"
# private_apt PROGRAM ARGS...: apt-get or apt-cache with the private state.
private_apt() {
    program=$1
    shift
    if [ "$(id -u)" = 0 ]; then
        set -- -o APT::Sandbox::User=root "$@"
    fi
    "$program" -q -o "Dir::State::Lists=$STATE/lists" -o "Dir::Cache=$STATE/cache" \
        -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache= \
        -o APT::Architectures::=amd64 -o APT::Architectures::=arm64 \
        -o APT::Architectures::=armel -o APT::Architectures::=armhf "$@"
}
updated=no
for arch in "$@"; do
    case $arch in
        arm64) meta=linux-image-arm64 ;;
        armel) meta=linux-image-rpi ;;
        *) echo "fetch_kernel: no emulated boot for $arch" >&2; exit 2 ;;
    esac
    dir=$CACHE/kernel/$arch
    [ -s "$dir/KERNEL" ] && continue
    if [ $updated = no ]; then
        private_apt apt-get update >"$STATE/update.log" 2>&1 ||
            echo "fetch_kernel: apt-get update reported errors (see $STATE/update.log)" >&2
        updated=yes
    fi
    image=$(private_apt apt-cache depends "$meta:$arch" | sed -n 's/^ *Depends: \(linux-image-[^:]*\).*/\1/p' |
            head -n 1)
    [ -n "$image" ] || { echo "fetch_kernel: $meta:$arch not in the apt sources" >&2; exit 1; }
    rm -rf "$dir.tmp"
    mkdir -p "$dir.tmp/debs" "$dir.tmp/root"
    (cd "$dir.tmp/debs" && private_apt apt-get download "$image:$arch" "busybox-static:$arch" >/dev/null)
    for deb in "$dir.tmp/debs"/*.deb; do
        dpkg -x "$deb" "$dir.tmp/root"
    done
    rm -rf "$dir.tmp/debs"
    echo "${image#linux-image-}" > "$dir.tmp/KERNEL"
    rm -rf "$dir"
    mv "$dir.tmp" "$dir"
    echo "fetch_kernel: $arch: kernel $(cat "$dir/KERNEL") in $dir/root"
done
