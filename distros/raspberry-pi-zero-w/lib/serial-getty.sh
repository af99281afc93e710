#!/bin/sh
# agetty on the serial console the kernel was given last (/sys/class/tty/console/active
# lists the console= devices; tty1, tty2... are screens, not serial lines).
tty=""
consoles=""
if [ -r /sys/class/tty/console/active ]; then
    read -r consoles < /sys/class/tty/console/active || true
fi
for t in $consoles; do
    case $t in tty[0-9]*) ;; *) tty=$t ;; esac
done
if [ -z "$tty" ] || [ ! -c "/dev/$tty" ]; then
    echo "serial-getty: no serial console= on the kernel command line (cmdline.txt)" >&2
    exit 1
fi
exec /sbin/agetty -L 115200 "$tty" vt100
