#!/bin/sh
# Time without an RTC: at start, the clock is put forward to the last saved time (or the
# image's build time), then saved every 10 minutes and at the stop; NTP (ntp.svc) corrects it.
saved=/data/state/clock
floor=$(cat /usr/lib/schema-init-board/build-time 2>/dev/null || echo 0)
last=$(cat "$saved" 2>/dev/null || echo 0)
case $last in ''|*[!0-9]*) last=0 ;; esac
[ "$last" -gt "$floor" ] || last=$floor
if [ "$(date +%s)" -lt "$last" ]; then
    date -s "@$last" > /dev/null && echo "clock: restored to $(date -u '+%F %T') UTC"
fi
save() { date +%s > "$saved.new" && mv "$saved.new" "$saved"; }
trap 'save; exit 0' TERM
while :; do save; sleep 600 & wait $!; done
