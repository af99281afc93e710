#!/bin/sh
# The fleet manifest's poll (services/rpi-zero-w/update-poll.svc): off unless
# /etc/schema-update/manifest-url names one; UPDATE_EVERY seconds between polls (3600).
url_file=${MANIFEST_URL_FILE:-/etc/schema-update/manifest-url}
if [ ! -s "$url_file" ]; then
    echo "update-poll: off (no $url_file)"
    exit 0
fi
read -r url < "$url_file"
exec /usr/sbin/schema-update poll "$url" --every "${UPDATE_EVERY:-3600}"
