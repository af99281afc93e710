#!/bin/sh
# Prometheus metrics on or off (services/rpi-zero-w/metrics.svc): custom.toml's
# [schema-init] metrics = true makes the first boot leave $board/metrics-enabled; then
# the two optional services are added to the running schema-init (their files are not in
# the services directory, so nothing of them is loaded or run otherwise) and the
# textfile directory is made on tmpfs (no SD card writes).
# BOARD_DIR, OPTIONAL_DIR, TEXTFILE_DIR, SCHEMA_CTL: other places (tests).
board=${BOARD_DIR:-/etc/schema-board}
optional=${OPTIONAL_DIR:-/etc/schema-init/services/optional}
textfile=${TEXTFILE_DIR:-/run/prometheus-node-exporter}
ctl=${SCHEMA_CTL:-/usr/sbin/schema-ctl}
if [ ! -e "$board/metrics-enabled" ]; then
    echo "metrics: off (custom.toml [schema-init] metrics = true turns them on)"
    exit 0
fi
mkdir -p "$textfile"
chown prometheus:prometheus "$textfile" 2>/dev/null || true
chmod 0755 "$textfile"
for service in schema-metrics node-exporter; do
    "$ctl" add "$optional/$service.svc" || exit 1
done
echo "metrics: schema-metrics and node_exporter (:9100) added"
