#!/bin/sh
# SSH (dropbear): host keys made once on the data partition (/data/ssh), then the server.
# custom.toml [ssh] enabled = false leaves it off.
keys=/data/ssh
if [ -e /etc/schema-board/ssh-disabled ]; then
    echo "ssh: disabled by the first-boot file ([ssh] enabled = false)" >&2
    exit 0
fi
mkdir -p "$keys"
for type in ed25519 ecdsa rsa; do
    key=$keys/dropbear_${type}_host_key
    if [ ! -s "$key" ]; then
        dropbearkey -t "$type" -f "$key.new" > /dev/null 2>&1 && sync && mv "$key.new" "$key" &&
            echo "ssh: made the $type host key"
    fi
done
exec dropbear -F -E -p 22 -r "$keys/dropbear_ed25519_host_key" \
    -r "$keys/dropbear_ecdsa_host_key" -r "$keys/dropbear_rsa_host_key"
