#!/bin/sh
# build/mkinitramfs.sh OUT.cpio.gz SERVICES_DIR [KERNEL_VERSION]
# An initramfs whose /sbin/init is the static schema-init: busybox for the shell tools,
# the services in /etc/schema-init/services, and the kernel modules the VM services load.
# TARGET=aarch64 or armv6l: that board's binary (build/out/TARGET/schema-init), busybox and
# kernel modules (toolchains/fetch_kernel.sh), and the modules its emulated machine needs.
set -eu
out=$1
services=$2
top=$(cd "$(dirname "$0")/.." && pwd)
target=${TARGET:-x86_64}
case $target in
    x86_64)
        sysroot=""
        binary=${SCHEMA_INIT_BIN:-$top/build/out/schema-init}
        modules="virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci
virtio_blk crc16 mbcache jbd2 crc32c_generic ext4 watchdog i6300esb" ;;
    aarch64|armv6l)
        arch=$( [ "$target" = aarch64 ] && echo arm64 || echo armel )
        sysroot=${CROSS_CACHE:-$top/build/tmp/cross}/kernel/$arch/root
        [ -x "$sysroot/bin/busybox" ] || "$top/toolchains/fetch_kernel.sh" "$arch" >&2
        binary=${SCHEMA_INIT_BIN:-$top/build/out/$target/schema-init}
        if [ "$target" = aarch64 ]; then
            modules="virtio_ring virtio virtio_mmio virtio_pci_legacy_dev virtio_pci_modern_dev
virtio_pci virtio_blk crc16 mbcache jbd2 crc32c_generic ext4 watchdog i6300esb"
        else
            modules="sdhci sdhci-pltfm sdhci-iproc crc16 mbcache jbd2 crc32c_generic ext4"
        fi ;;
    *) echo "mkinitramfs: unknown TARGET $target" >&2; exit 2 ;;
esac
kver=${3:-$(find "$sysroot/lib/modules" -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -n 1)}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
r=$work/root
mkdir -p "$r/bin" "$r/sbin" "$r/etc/schema-init" "$r/proc" "$r/sys" "$r/dev" "$r/run" \
         "$r/tmp" "$r/var/log" "$r/root" "$r/data" "$r/lib/modules/schema"
cp "$sysroot/bin/busybox" "$r/bin/busybox"
for applet in $(/bin/busybox --list); do       # the host's busybox-static: the same applets
    [ "$applet" = busybox ] || ln -s busybox "$r/bin/$applet"
done
cp "$binary" "$r/sbin/init"
ln -s init "$r/sbin/schema-init"
ln -s ../sbin/init "$r/bin/schema-ctl"
ln -s init "$r/sbin/schema-ctl"
ln -s init "$r/sbin/schema-subreaper"
cp -a "$services" "$r/etc/schema-init/services"
mknod -m 600 "$r/dev/console" c 5 1
mknod -m 666 "$r/dev/null" c 1 3
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$r/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$r/etc/group"
: > "$r/lib/modules/schema/LIST"
for m in $modules; do
    path=$(find "$sysroot/lib/modules/$kver" -name "$m.ko" | head -n 1)
    if [ -n "$path" ]; then
        cp "$path" "$r/lib/modules/schema/$m.ko"
        echo "$m" >> "$r/lib/modules/schema/LIST"
    fi
done
echo "i6300esb heartbeat=${WATCHDOG_HEARTBEAT:-30}" > "$r/lib/modules/schema/PARAMS"
(cd "$r" && find . | cpio -o -H newc --quiet) | gzip -1 > "$out"
