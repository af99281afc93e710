#!/bin/sh
# build/mkpiroot.sh CARD [SIZE_MB]
# The Pi Zero W benchmark's other card (bench/pi_inits_bench.py, make bench
# BOARD=rpi-zero-w): the Debian armel root the image is made from (board.env's
# ROOT_PACKAGES), with systemd and sysvinit-core beside each other, Debian's start-up
# scripts for the same daemons (dropbear, its service files) and Debian's own kernel
# package (linux-image-rpi: the image's kernel, and an initramfs-tools initrd that finds
# an ext4 root on the SD card).  The daemons are enabled the Debian way, by their
# packages; what the image keeps off (the Prometheus exporter, Wi-Fi without a network to
# join) is off here too.  The root is made once and cached, keyed by this recipe; each
# CARD is an ext4 filesystem of the whole card (root=/dev/mmcblk0), SIZE_MB a power of 2
# (QEMU's SD card must be).  Its kernel, initrd and device tree are copied beside CARD
# as CARD.vmlinuz, CARD.initrd and CARD.dtb, its version in CARD.kver.  Test-only
# settings: root has no password (serial login).
set -eu
card=$1
size=${2:-1024}
top=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=distros/raspberry-pi-zero-w/board.env
. "$top/distros/raspberry-pi-zero-w/board.env"
cache=${IMAGE_CACHE:-$top/build/tmp/image}
root=$cache/bench-root
PACKAGES="$ROOT_PACKAGES,systemd,sysvinit-core,orphan-sysvinit-scripts,dropbear"
PACKAGES="$PACKAGES,$KERNEL_PACKAGE,initramfs-tools"
# the root's recipe: the lines between the two markers below
recipe=$(sed -n '/^# root-recipe-begin/,/^# root-recipe-end/p' "$0" | cksum)
stamp="bookworm $DEB_ARCH $PACKAGES $recipe"
# root-recipe-begin
if [ "$(cat "$root/.schema-piroot" 2>/dev/null)" != "$stamp" ]; then
    "$top/build/ensure-deps.sh" debootstrap qemu-user-static e2fsprogs >&2
    mirror=$(sed -n 's|^URIs: *\([^ ]*debian\)/*$|\1|p' /etc/apt/sources.list.d/*.sources \
             2>/dev/null | head -n 1)
    mkdir -p "$cache"
    rm -rf "$root.tmp"
    start=$(date +%s)
    echo "mkpiroot: debootstrap bookworm $DEB_ARCH with systemd and sysvinit (10-20 min)" >&2
    debootstrap --variant=minbase --arch="$DEB_ARCH" --include="$PACKAGES" \
        bookworm "$root.tmp" "${mirror:-http://deb.debian.org/debian}" > "$root.log" 2>&1 || {
        tail -n 20 "$root.log" >&2; echo "mkpiroot: debootstrap failed" >&2; exit 1; }
    r=$root.tmp
    rm -f "$r"/var/cache/apt/archives/*.deb
    echo rpi-zero-w > "$r/etc/hostname"
    printf '127.0.0.1 localhost\n127.0.1.1 rpi-zero-w\n' > "$r/etc/hosts"
    printf '/dev/mmcblk0 / ext4 rw,noatime 0 1\n' > "$r/etc/fstab"
    chroot "$r" passwd -d root > /dev/null
    # sysvinit's inittab: a getty on the header's serial port, as the image has
    echo 'T1:23:respawn:/sbin/getty -L ttyS1 115200 vt100' >> "$r/etc/inittab"
    # Off, as in the image: the exporter (custom.toml turns it on there) and Wi-Fi's
    # D-Bus service (no D-Bus here; the image's wifi service has no network in QEMU).
    for unit in prometheus-node-exporter.service wpa_supplicant.service; do
        find "$r/etc/systemd/system" -name "$unit" -type l -delete
    done
    if [ -e "$r/etc/init.d/prometheus-node-exporter" ]; then
        chroot "$r" update-rc.d -f prometheus-node-exporter remove > /dev/null
    fi
    # shellcheck disable=SC2016 # ${Package} & co. are dpkg-query's fields, not sh's
    chroot "$r" dpkg-query -W -f='${Package} ${Version} ${Architecture}\n' \
        > "$r/.schema-piroot-packages"
    echo "$stamp" > "$r/.schema-piroot"
    rm -rf "$root"
    mv "$r" "$root"
    echo "mkpiroot: root made in $(( $(date +%s) - start )) s" >&2
fi
# root-recipe-end
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -a "$root" "$work/root"
# CUSTOMIZE=SCRIPT: SCRIPT ROOT adds to the card (the benchmark's probe).
if [ -n "${CUSTOMIZE:-}" ]; then
    "$CUSTOMIZE" "$work/root"
fi
kernel=$(find "$root/boot" -name 'vmlinuz-*' | sort -V | tail -n 1)
initrd=$root/boot/initrd.img-${kernel##*/vmlinuz-}
[ -f "$initrd" ] || { echo "mkpiroot: no initrd for $kernel" >&2; exit 1; }
kver=${kernel##*/vmlinuz-}
cp "$kernel" "$card.vmlinuz"
cp "$initrd" "$card.initrd"
cp "$root/usr/lib/linux-image-$kver/$DTB" "$card.dtb"
echo "$kver" > "$card.kver"
rm -f "$card"
mkfs.ext4 -q -F -L piroot -d "$work/root" "$card" "${size}M"
