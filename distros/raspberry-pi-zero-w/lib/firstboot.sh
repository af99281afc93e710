#!/bin/sh
# The first-boot files on the boot partition (custom.toml, userconf.txt, ssh): the FAT
# is mounted only while schema-firstboot (schema_init/firstboot/firstboot.py) reads them, applies them and removes them.
# The result goes to the console too; a bad file fails this oneshot, never the boot.
boot=/boot/firmware
part=${BOOT_PART:-/dev/mmcblk0p1}
modprobe -q vfat
if ! mount -t vfat -o rw,noatime,flush "$part" "$boot"; then
    echo "firstboot: cannot mount the boot partition $part" | tee /dev/console
    exit 1
fi
out=$(/usr/sbin/schema-firstboot --boot "$boot" 2>&1)
rc=$?
sync
umount "$boot"
printf '%s\n' "$out"
printf '%s\n' "$out" > /dev/console
exit $rc
