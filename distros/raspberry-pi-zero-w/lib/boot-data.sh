#!/bin/sh
# The data partition: grown to the card's end the first time, checked (e2fsck -p) and
# mounted on /data; if it cannot be mounted even after e2fsck -y, made anew (mkfs.ext4):
# the device then starts as on its first boot rather than not at all.  Then the writable
# places of the read-only root on it: overlays of /etc and /var, /home, /root; /tmp a tmpfs.
# If nothing works, the overlays go on a tmpfs: the device boots, nothing persists.
# DATA_DISK, DATA_PART, DATA_EXTENDED: the card, the partition and the extended partition
# that holds it (default /dev/mmcblk0, p7 and 4: the A/B card, issue 23; "" when the data
# partition is a primary one).
disk=${DATA_DISK:-/dev/mmcblk0}
part=${DATA_PART:-${disk}p7}
extended=${DATA_EXTENDED-4}
say() { echo "data: $*"; echo "data: $*" > /dev/console; }
modprobe -q ext4; modprobe -q overlay
n=0
while [ ! -b "$part" ] && [ $n -lt 50 ]; do sleep 0.1; n=$((n + 1)); done
grow() {
    block=$(basename "$disk"); p=$(basename "$part")
    total=$(cat "/sys/block/$block/size"); start=$(cat "/sys/block/$block/$p/start")
    size=$(cat "/sys/block/$block/$p/size")
    [ $((start + size + 2048)) -lt "$total" ] || return 1
    say "growing ${part} from $((size / 2048)) MiB to $(((total - start) / 2048)) MiB"
    # the extended partition first (it ends where the image ended), then the data in it
    if [ -n "$extended" ]; then
        echo ", +" | sfdisk --quiet --no-reread --no-tell-kernel -N "$extended" "$disk" || return 1
    fi
    echo ", +" | sfdisk --quiet --no-reread --no-tell-kernel -N "${part##*[!0-9]}" "$disk" &&
        resizepart "$disk" "${part##*[!0-9]}" $((total - start))
}
make_new() {
    say "$1: making a new filesystem on $part (the data of this device is lost)"
    mkfs.ext4 -q -F -L data "$part" && mount -t ext4 -o noatime "$part" /data
}
grown=no
grow && grown=yes
e2fsck -p "$part" > /run/data-fsck.log 2>&1
rc=$?
[ $rc -ge 1 ] && [ $rc -lt 4 ] && say "e2fsck repaired $part ($rc)"
if ! mount -t ext4 -o noatime "$part" /data 2>/dev/null; then
    e2fsck -y "$part" >> /run/data-fsck.log 2>&1
    mount -t ext4 -o noatime "$part" /data 2>/dev/null || make_new "cannot mount"
fi
if mountpoint -q /data; then
    [ $grown = yes ] && resize2fs "$part" > /dev/null 2>&1 && say "grown: $(df -h /data | awk 'NR==2 {print $2}')"
    base=/data
else
    say "no data partition: /etc and /var changes will not persist"
    mount -t tmpfs -o mode=0755 tmpfs /run/volatile 2>/dev/null || mkdir -p /run/volatile
    base=/run/volatile
fi
for d in overlay/etc/upper overlay/etc/work overlay/var/upper overlay/var/work home root \
         ssh state; do
    mkdir -p "$base/$d"
done
chmod 700 "$base/root" "$base/ssh"
ok=0
mount -t overlay overlay -o "lowerdir=/etc,upperdir=$base/overlay/etc/upper,workdir=$base/overlay/etc/work" /etc || ok=1
mount -t overlay overlay -o "lowerdir=/var,upperdir=$base/overlay/var/upper,workdir=$base/overlay/var/work" /var || ok=1
mount --bind "$base/home" /home || ok=1
mount --bind "$base/root" /root || ok=1
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /tmp || ok=1
[ $ok = 0 ] || say "some of the writable places could not be mounted"
say "$(findmnt -n -o SOURCE,SIZE,USED /data 2>/dev/null || echo 'on tmpfs') ready"
# Services an operator keeps in /etc/schema-init/services live on the data partition
# (the /etc overlay): schema-init read the directory before it was mounted.
schema-ctl reload > /dev/null 2>&1 || say "schema-ctl reload failed: services added in /etc/schema-init are not loaded"
exit $ok
