#!/bin/sh
# The first-boot files on the boot partition (custom.toml, userconf.txt, ssh,
# wpa_supplicant.conf): the FAT is mounted only while schema-firstboot
# (schema_init/firstboot/) reads them, applies them, overwrites them with zeros and
# removes them.  After a boot that found such files, the device's record goes on the FAT
# as firstboot-report.txt: its card name, serial, host name, machine-id and the public
# SSH host keys, made here with the FAT unmounted (fleet.py check CARD reads them back).
# The result goes to the console too; a bad file fails this oneshot, never the boot.
# BOOT_DIR (a directory instead of the mounted partition), BOOT_PART, BOARD_LIB,
# FIRSTBOOT, BOARD_DIR: other places (tests).
boot=${BOOT_DIR:-/boot/firmware}
part=${BOOT_PART:-/dev/mmcblk0p1}
lib=${BOARD_LIB:-/usr/lib/schema-init-board}
board=${BOARD_DIR:-/etc/schema-board}
mount_boot() {    # MODE: ro (the look for files), rw
    [ -z "${BOOT_DIR:-}" ] || return 0
    modprobe -q vfat
    mount -t vfat -o "$1,noatime,flush,fmask=0177,dmask=0077" "$part" "$boot" && return 0
    echo "firstboot: cannot mount the boot partition $part" | tee /dev/console
    return 1
}
umount_boot() {
    sync
    [ -n "${BOOT_DIR:-}" ] || umount "$boot"
}
# The look is read-only: a boot without first-boot files writes nothing to the FAT (a
# read-write mount sets its dirty flag until the unmount, which a power cut would leave)
mount_boot ro || exit 1
found=no
for name in custom.toml userconf.txt userconf ssh ssh.txt wpa_supplicant.conf; do
    [ -e "$boot/$name" ] && found=yes
done
if [ $found = no ]; then
    # what schema-firstboot would say, without starting it: every boot but the first
    # (a Python start is seconds of an emulated ARM1176's boot,
    # bench/REPORT-inits-rpi-zero-w.md)
    [ -n "${BOOT_DIR:-}" ] || umount "$boot"
    out="firstboot: no first-boot file on the boot partition"
    printf '%s\n' "$out"
    [ -n "${BOOT_DIR:-}" ] || printf '%s\n' "$out" > /dev/console
    exit 0
fi
if [ -z "${BOOT_DIR:-}" ] && ! mount -o remount,rw "$boot"; then
    echo "firstboot: cannot write the boot partition $part" | tee /dev/console
    umount "$boot"
    exit 1
fi
out=$("${FIRSTBOOT:-/usr/sbin/schema-firstboot}" --boot "$boot" 2>&1)
rc=$?
umount_boot
printf '%s\n' "$out"
[ -n "${BOOT_DIR:-}" ] || printf '%s\n' "$out" > /dev/console
[ $found = yes ] || exit $rc
record=$(
    echo "# this device's record, written at its first boot (lib/firstboot.sh)"
    echo "device $(cat "$board/device-name" 2>/dev/null)"
    echo "serial $("$lib/identity.sh" serial)"
    echo "hostname $("$lib/identity.sh" name)"
    echo "machine_id $("$lib/identity.sh" machine-id)"
    echo "firstboot_exit $rc"
    [ -e "$board/ssh-disabled" ] || "$lib/ssh.sh" keys
)
if mount_boot rw; then
    printf '%s\n' "$record" > "$boot/firstboot-report.txt.new" &&
        mv -f "$boot/firstboot-report.txt.new" "$boot/firstboot-report.txt"
    umount_boot
fi
exit $rc
