#!/bin/sh
# SSH (dropbear): host keys made once on the data partition (/data/ssh), then the server.
#   ssh.sh          the keys if missing, then dropbear in the foreground
#   ssh.sh keys     the keys if missing; prints each public host key: host_key TYPE BASE64
#                   (lib/firstboot.sh puts them in firstboot-report.txt on the FAT)
# The first-boot file's choices (schema-firstboot writes them) are files in
# /etc/schema-board:
#   ssh-disabled       [ssh] enabled = false: no server
#   ssh-no-passwords   [ssh] password_authentication = false: dropbear -s, keys only
#   ssh-root-keys      [schema-init] root_authorized_keys: root may log in with a key,
#                      never a password (dropbear -g); without it, dropbear -w: no root
#                      login at all
# SSH_KEYS, BOARD_DIR: other directories (tests).
keys=${SSH_KEYS:-/data/ssh}
board=${BOARD_DIR:-/etc/schema-board}
make_keys() {
    mkdir -p "$keys"
    for type in ed25519 ecdsa rsa; do
        key=$keys/dropbear_${type}_host_key
        if [ ! -s "$key" ]; then
            dropbearkey -t "$type" -f "$key.new" > /dev/null 2>&1 && sync && mv "$key.new" "$key" &&
                echo "ssh: made the $type host key" >&2
        fi
    done
}
case ${1:-serve} in
    keys)
        make_keys
        for type in ed25519 ecdsa rsa; do
            dropbearkey -y -f "$keys/dropbear_${type}_host_key" 2>/dev/null |
                awk '$1 ~ /^(ssh-|ecdsa-)/ { print "host_key", $1, $2 }'
        done
        exit 0 ;;
    serve) ;;
    *) echo "usage: $0 [keys]" >&2; exit 2 ;;
esac
if [ -e "$board/ssh-disabled" ]; then
    echo "ssh: disabled by the first-boot file ([ssh] enabled = false)" >&2
    exit 0
fi
make_keys
set -- -F -E -p 22 -r "$keys/dropbear_ed25519_host_key" \
    -r "$keys/dropbear_ecdsa_host_key" -r "$keys/dropbear_rsa_host_key"
if [ -e "$board/ssh-root-keys" ]; then
    set -- "$@" -g
else
    set -- "$@" -w
fi
if [ -e "$board/ssh-no-passwords" ]; then
    set -- "$@" -s
    echo "ssh: password logins off ([ssh] password_authentication = false)" >&2
fi
exec dropbear "$@"
