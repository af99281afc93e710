#!/bin/sh
# distros/bench/configure.sh ROOT: the benchmark's configuration of every init in one
# Debian root (build/mkdebian.sh calls it with FLAVOUR=bench, CUSTOMIZE=this script).
# The same services for each: udev, ifupdown, rsyslog, cron (and its periodic job),
# sshd, busybox httpd, a oneshot, a getty on tty1 and on ttyS0. Each init keeps Debian's
# own configuration otherwise.
# DEBIAN_CONSOLE (build/mkdebian.sh sets it; ttyS0 by default): the serial console whose
# getty each init runs and bench-probe waits for (ttyAMA0 on the aarch64 board).
set -eu
r=$1
here=$(cd "$(dirname "$0")" && pwd)
console=${DEBIAN_CONSOLE:-ttyS0}
install -D -m 0755 "$here/common/bench-oneshot" "$r/usr/local/sbin/bench-oneshot"
install -D -m 0755 "$here/common/bench-probe" "$r/usr/local/sbin/bench-probe"
[ "$console" = ttyS0 ] || sed -i "s|/dev/ttyS0|/dev/$console|" "$r/usr/local/sbin/bench-probe"
install -D -m 0644 "$here/common/bench-periodic" "$r/etc/cron.d/bench-periodic"
# BENCH_BEFORE_BIN (inits_bench.py --before): an earlier schema-init, booted by init= in
# the same run (its file name is schema-init's: the binary is what it is called)
if [ -n "${BENCH_BEFORE_BIN:-}" ]; then
    install -D -m 0755 "$BENCH_BEFORE_BIN" "$r/usr/local/lib/schema-before/schema-init"
fi
install -D -m 0644 "$here/common/index.html" "$r/srv/www/index.html"
# sysvinit (and runit's stage 2, which runs the rc2.d scripts that have no /etc/sv dir):
# two more init.d scripts; inittab's gettys trimmed to tty1 and ttyS0, as the others have.
for s in bench-httpd bench-oneshot; do
    install -m 0755 "$here/sysvinit/$s" "$r/etc/init.d/$s"
    chroot "$r" update-rc.d "$s" defaults > /dev/null
done
sed -i 's/^\([2-6]:23:respawn:\)/#\1/' "$r/etc/inittab"
# systemd: two native units, enabled (its own gettys: getty@tty1, serial-getty@ttyS0;
# getty-static, which starts tty2-6 when logind is not there, masked).
ln -sf /dev/null "$r/etc/systemd/system/getty-static.service"
for u in bench-httpd.service bench-oneshot.service; do
    install -m 0644 "$here/systemd/$u" "$r/etc/systemd/system/$u"
    mkdir -p "$r/etc/systemd/system/multi-user.target.wants"
    ln -sf "/etc/systemd/system/$u" "$r/etc/systemd/system/multi-user.target.wants/$u"
done
# runit: Debian's sv dirs (cron, rsyslog, ssh) plus the HTTP server and the two gettys.
for s in bench-httpd getty-tty1 getty-ttyS0; do
    d=$s
    [ "$s" != getty-ttyS0 ] || d=getty-$console
    mkdir -p "$r/etc/sv/$d"
    install -m 0755 "$here/runit/$s/run" "$r/etc/sv/$d/run"
    [ "$d" = "$s" ] || sed -i "s/ttyS0/$console/g" "$r/etc/sv/$d/run"
    ln -sf "/run/runit/supervise/$d" "$r/etc/sv/$d/supervise"
    ln -sf "/etc/sv/$d" "$r/etc/runit/runsvdir/default/$d"
done
# busybox init: init=/usr/local/sbin/busybox-init.
install -m 0644 "$here/busybox/inittab" "$r/etc/inittab.busybox"
[ "$console" = ttyS0 ] || sed -i "s/ttyS0/$console/g" "$r/etc/inittab.busybox"
install -D -m 0755 "$here/busybox/busybox-init" "$r/usr/local/sbin/busybox-init"
mkdir -p "$r/usr/local/lib/busybox-init"
ln -sf /bin/busybox "$r/usr/local/lib/busybox-init/init"
# schema-init: its Debian profile (installed by the .deb) without dbus (not installed
# here) and the power button (no other init here handles it), plus the two services.
rm -f "$r/etc/schema-init/services/dbus.svc" "$r/etc/schema-init/services/power-button.svc"
install -m 0644 "$here/../../services/bench/"*.svc "$r/etc/schema-init/services/"
