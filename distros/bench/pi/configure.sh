#!/bin/sh
# build/mkpiroot.sh's CUSTOMIZE for the Pi benchmark (bench/pi_inits_bench.py): ROOT gets
# the probe, started by systemd (a unit wanted by multi-user.target) and by sysvinit (an
# inittab line run once on entering the runlevel).
set -eu
r=$1
here=$(cd "$(dirname "$0")" && pwd)
install -D -m 0755 "$here/pi-bench-probe" "$r/usr/local/sbin/pi-bench-probe"
cat > "$r/etc/systemd/system/pi-bench-probe.service" <<'UNIT'
[Unit]
Description=The Pi benchmark's probe

[Service]
ExecStart=/usr/local/sbin/pi-bench-probe

[Install]
WantedBy=multi-user.target
UNIT
mkdir -p "$r/etc/systemd/system/multi-user.target.wants"
ln -sf ../pi-bench-probe.service "$r/etc/systemd/system/multi-user.target.wants/"
echo 'pb:2345:once:/usr/local/sbin/pi-bench-probe' >> "$r/etc/inittab"
