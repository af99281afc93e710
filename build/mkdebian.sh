#!/bin/sh
# build/mkdebian.sh IMAGE [SIZE_MB]
# A stock Debian 12 machine for the Debian VM tier (make test-debian): the root is made
# once with debootstrap --variant=minbase and the packages a small server has (udev,
# dbus, openssh-server, cron, rsyslog, ifupdown + isc-dhcp-client, agetty, sysvinit-core
# to compare with) and cached in build/tmp/debian/root; each IMAGE is an ext4 disk made
# from it, with the modules of the host's newest kernel (the one the VM boots) and the
# current binary installed by its .deb (build/mkdeb.sh): /usr/sbin/schema-init and its
# names (schema-ctl, reboot, ..., systemctl; sysvinit's own diverted to NAME.distrib) and
# services/debian in /etc/schema-init/services (SERVICES=DIR: another set).
# Test-only settings: root has no password (serial login), build/tmp/debian/key is
# allowed to log in as root over SSH.
# ARCH=arm64 (default amd64): the same machine for another Debian architecture, made
# through qemu-user-static (binfmt); its root is cached apart (ROOT-arm64), has Debian's
# kernel (linux-image-arm64: /boot/vmlinuz-*, an initramfs-tools initrd, the modules)
# and its serial console is ttyAMA0 (QEMU virt's PL011) instead of ttyS0; SCHEMA_INIT_BIN
# is then the cross binary (build/out/aarch64/schema-init).
set -eu
image=$1
size=${2:-1536}
top=$(cd "$(dirname "$0")/.." && pwd)
cache=${DEBIAN_CACHE:-$top/build/tmp/debian}
arch=${ARCH:-amd64}
case $arch in
    amd64) suffix=; console=ttyS0; kernel_pkg=; binary_default=$top/build/out/schema-init ;;
    arm64) suffix=-arm64; console=ttyAMA0; kernel_pkg=,linux-image-arm64
           binary_default=$top/build/out/aarch64/schema-init ;;
    *) echo "mkdebian: ARCH is amd64 or arm64" >&2; exit 2 ;;
esac
binary=${SCHEMA_INIT_BIN:-$binary_default}
# FLAVOUR=systemd: the same machine with Debian's default init (systemd, systemd-sysv)
# instead of sysvinit-core, to compare with (bench/debian_boot_bench.py --flavour systemd).
COMMON="udev,dbus,openssh-server,cron,rsyslog,ifupdown,isc-dhcp-client,procps,kmod,e2fsprogs,util-linux,iproute2,less,logrotate"
case ${FLAVOUR:-sysvinit} in
    # orphan-sysvinit-scripts: Debian 12's rsyslog ships no init script without it
    sysvinit) root=$cache/root; PACKAGES="$COMMON,sysvinit-core,orphan-sysvinit-scripts,systemd-standalone-tmpfiles" ;;
    systemd) root=$cache/root-systemd; PACKAGES="$COMMON,systemd,systemd-sysv" ;;
    # FLAVOUR=bench: every init side by side (bench/inits_bench.py, make bench-inits):
    # sysvinit-core is /sbin/init, systemd (without systemd-sysv), runit (without
    # runit-init) and busybox-static are started by init= alone. No dbus: not every init
    # here would start it, and the service set must be the same for all.
    bench) root=$cache/root-bench
           PACKAGES="${COMMON%%,dbus*},${COMMON#*dbus,},sysvinit-core,orphan-sysvinit-scripts,systemd,runit,runit-services,busybox-static" ;;
    # FLAVOUR=servers / servers-systemd: issue 21's server tier (make test-debian-servers),
    # the sysvinit / systemd machine with SERVERS added by build/mkdebian-servers.sh (and
    # EXTRA's .debs in /root/debs/EXTRA, not installed); the stamp has both and its text.
    servers) root=$cache/root-servers; second=servers
             PACKAGES="$COMMON,sysvinit-core,orphan-sysvinit-scripts,systemd-standalone-tmpfiles" ;;
    servers-systemd) root=$cache/root-servers-systemd; second=servers
             PACKAGES="$COMMON,systemd,systemd-sysv" ;;
    *) echo "mkdebian: FLAVOUR is sysvinit, systemd, bench, servers or servers-systemd" >&2
       exit 2 ;;
esac
root=$root$suffix
PACKAGES=$PACKAGES$kernel_pkg
stamp="bookworm $PACKAGES cron-deb-kept no-diversions"
[ "$arch" = amd64 ] || stamp="$stamp arch=$arch console=$console"
SERVERS="postgresql,mariadb-server,redis-server,nginx,postfix,tor,nftables"; EXTRA=memcached
[ -z "${second:-}" ] || stamp="$stamp + $SERVERS $EXTRA $(cksum < "$top/build/mkdebian-$second.sh")"
mkdir -p "$cache"
if [ "$(cat "$root/.schema-debian" 2>/dev/null)" != "$stamp" ]; then
    "$top/build/ensure-deps.sh" debootstrap e2fsprogs openssh-client >&2
    mirror=$(sed -n 's|^URIs: *\([^ ]*debian\)/*$|\1|p' /etc/apt/sources.list.d/*.sources \
             2>/dev/null | head -n 1)
    rm -rf "$root.tmp"
    echo "mkdebian: debootstrap bookworm $arch into $root (about a minute; arm64: more)" >&2
    debootstrap --variant=minbase --arch="$arch" --include="$PACKAGES" bookworm "$root.tmp" \
        "${mirror:-http://deb.debian.org/debian}" > "$root.log" 2>&1 || {
        tail -n 20 "$root.log" >&2; exit 1; }
    r=$root.tmp
    mkdir -p "$r/root/debs"
    cp "$r"/var/cache/apt/archives/cron_*.deb "$r/root/debs/"   # apt-get install --reinstall, offline
    rm -f "$r"/var/cache/apt/archives/*.deb
    echo debian-schema > "$r/etc/hostname"
    printf '127.0.0.1 localhost\n127.0.1.1 debian-schema\n' > "$r/etc/hosts"
    printf '/dev/vda / ext4 errors=remount-ro 0 1\n' > "$r/etc/fstab"
    printf 'auto lo\niface lo inet loopback\n\nauto eth0\niface eth0 inet dhcp\n' \
        > "$r/etc/network/interfaces"
    echo 'LANG=C.UTF-8' > "$r/etc/default/locale"
    chroot "$r" passwd -d root >/dev/null
    # sysvinit's inittab: a getty on the serial console too (for the comparison boots)
    [ -f "$r/etc/inittab" ] && echo "T0:23:respawn:/sbin/getty -L $console 115200 vt100" >> "$r/etc/inittab"
    mkdir -p "$r/root/.ssh"
    [ -f "$cache/key" ] || ssh-keygen -q -t ed25519 -N '' -f "$cache/key"
    cp "$cache/key.pub" "$r/root/.ssh/authorized_keys"
    chmod 700 "$r/root/.ssh"; chmod 600 "$r/root/.ssh/authorized_keys"
    [ -z "${second:-}" ] || "$top/build/mkdebian-$second.sh" "$r" "$SERVERS" "$EXTRA" \
        >> "$root.log" 2>&1 || { tail -n 30 "$root.log" >&2; exit 1; }
    # shellcheck disable=SC2016 # ${Package} & co. are dpkg-query's fields, not sh's
    chroot "$r" dpkg-query -W -f='${Package} ${Version}\n' > "$r/.schema-debian-packages"
    echo "$stamp" > "$r/.schema-debian"
    rm -rf "$root"
    mv "$r" "$root"
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# schema-init goes in as users install it: our .deb (build/mkdeb.sh, with SERVICES as its
# service set when given), dpkg -i in the image (a copy: dpkg and its triggers write).
deb=$(OUTDIR="$work" SERVICES="${SERVICES:-$top/services/debian}" \
      "$top/build/mkdeb.sh" "$binary" "$arch")
cp -a "$root" "$work/image"
cp "$deb" "$work/image/tmp/schema-init.deb"
chroot "$work/image" dpkg -i /tmp/schema-init.deb > "$work/dpkg.log" 2>&1 || {
    cat "$work/dpkg.log" >&2; exit 1; }
rm -f "$work/image/tmp/schema-init.deb"
# schema-init's getty on the serial console: ttyAMA0 on arm64 (the .deb's instance is ttyS0)
services_dir=$work/image/etc/schema-init/services
if [ "$console" != ttyS0 ] && [ -L "$services_dir/getty@ttyS0.svc" ]; then
    rm -f "$services_dir/getty@ttyS0.svc"
    ln -s getty@.svc "$services_dir/getty@$console.svc"
fi
# The modules of the kernel that boots it (the host's, as the VM tier's kernel is), for
# udev to load what it finds (evdev, the ACPI button, ...).  arm64: the root's own kernel
# (linux-image-arm64) boots it, its modules are already there.
kver=${KERNEL_VERSION:-$(find /boot -maxdepth 1 -name 'vmlinuz-*' -printf '%f\n' |
                          sed -n 's/^vmlinuz-//p' | sort -V | tail -n 1)}
if [ "$arch" = amd64 ] && [ -d "/lib/modules/$kver" ]; then
    mkdir -p "$work/image/lib/modules"
    cp -al "/lib/modules/$kver" "$work/image/lib/modules/" 2>/dev/null ||
        cp -a "/lib/modules/$kver" "$work/image/lib/modules/"
fi
# CUSTOMIZE=SCRIPT: SCRIPT ROOT adds a configuration to the image (build/mkbenchimage.sh).
if [ -n "${CUSTOMIZE:-}" ]; then
    DEBIAN_CONSOLE=$console "$CUSTOMIZE" "$work/image"
fi
rm -f "$image"
mkfs.ext4 -q -F -L debroot -d "$work/image" "$image" "${size}M"
