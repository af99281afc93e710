#!/bin/sh
# Make this kernel run a target's programs through qemu-user-static:
#   usage: toolchains/binfmt.sh QEMU_NAME...        (qemu-aarch64, qemu-arm)
# Mounts binfmt_misc if it is not, and registers each QEMU_NAME from qemu-user-static's
# own /usr/lib/binfmt.d/QEMU_NAME.conf unless an entry of that name is there already.
# Its flags include F (the interpreter is opened now, so it works inside a chroot).
# This is machine-wide state (the kernel's), which debootstrap's second stage and the
# build roots of toolchains/build-target.sh need; nothing else is touched.
set -eu
BINFMT=/proc/sys/fs/binfmt_misc
if [ ! -e "$BINFMT/register" ]; then
    mount -t binfmt_misc binfmt_misc "$BINFMT"
fi
for name in "$@"; do
    case $name in qemu-*) ;; *) echo "binfmt: not a qemu name: $name" >&2; exit 2;; esac
    [ -e "$BINFMT/$name" ] && continue
    conf=/usr/lib/binfmt.d/$name.conf
    if [ ! -r "$conf" ]; then
        echo "binfmt: $conf missing (is qemu-user-static installed?)" >&2
        exit 3
    fi
    grep -v '^#' "$conf" | head -n 1 > "$BINFMT/register"
done
