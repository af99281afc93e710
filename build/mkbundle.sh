#!/bin/sh
# build/mkbundle.sh [BOARD]                  (make bundle BOARD=rpi-zero-w)
# build/mkbundle.sh --keys DIR               (the development signing pair, if missing)
# One signed update bundle for a board, made by RAUC 1.8 (`rauc bundle`, format=verity):
#   build/out/schema-init-BOARD-VERSION.raucb
# from the slot that build/mkimage.sh made last (build/out/BOARD-slot/: boot.vfat, the
# boot partition of slot A with cmdline.txt naming root slot A; root.img, the read-only
# root; version).  boot.vfat's cmdline.txt names root slot A once (root=/dev/mmcblk0p5,
# checked here): the installer finds it and writes 6 there when it writes slot B
# (schema_init/update/install.py).  The payload's squashfs is made with
# its tables and data uncompressed (-noI -noD -noF -noX -no-fragments): the device reads
# an image's place in it with a few range requests and streams the image's bytes as
# they are (HTTP or a file; never the whole bundle on the card).
# Keys: UPDATE_KEY and UPDATE_CERT (PEM) sign; without them a development pair is made
# once in build/keys (update.key.pem, update.cert.pem: an EC P-256 key, a self-signed
# certificate that is also the device's keyring, /etc/schema-update/keyring.pem of the
# image).  A fleet's own pair: give both to make image and make bundle.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
keys=${UPDATE_KEYS:-$top/build/keys}

make_keys() {
    [ -s "$1/update.key.pem" ] && [ -s "$1/update.cert.pem" ] && return 0
    mkdir -p "$1"
    chmod 700 "$1"
    openssl ecparam -name prime256v1 -genkey -noout -out "$1/update.key.pem.new" 2>/dev/null
    chmod 600 "$1/update.key.pem.new"
    openssl req -x509 -new -key "$1/update.key.pem.new" -out "$1/update.cert.pem.new" \
        -days 36500 -subj "/O=schema-init/CN=schema-init development update key" \
        -addext basicConstraints=critical,CA:TRUE \
        -addext keyUsage=critical,digitalSignature,keyCertSign 2>/dev/null
    mv "$1/update.key.pem.new" "$1/update.key.pem"
    mv "$1/update.cert.pem.new" "$1/update.cert.pem"
    echo "mkbundle: made a development signing pair in $1 (UPDATE_KEY, UPDATE_CERT: your own)" >&2
}

if [ "${1:-}" = --keys ]; then
    keys=${2:?--keys DIR}
    if [ -z "${UPDATE_KEY:-}" ]; then
        make_keys "$keys"
    fi
    exit 0
fi

board=${1:-rpi-zero-w}
case $board in
    rpi-zero-w) dir=$top/distros/raspberry-pi-zero-w ;;
    *) echo "mkbundle: unknown BOARD $board (known: rpi-zero-w)" >&2; exit 2 ;;
esac
# shellcheck source=toolchains/recipe.sh
. "$top/toolchains/recipe.sh"
recipe_read "$dir/board.env"
slot=${SLOT_OUT:-$top/build/out/$board-slot}
for f in boot.vfat root.img version; do
    [ -s "$slot/$f" ] || { echo "mkbundle: $slot/$f missing (make image BOARD=$board)" >&2; exit 1; }
done
command -v rauc > /dev/null || "$top/build/ensure-deps.sh" rauc squashfs-tools >&2
make_keys "$keys"
key=${UPDATE_KEY:-$keys/update.key.pem}
cert=${UPDATE_CERT:-$keys/update.cert.pem}
version=$(cat "$slot/version")
out=${BUNDLE_OUT:-$top/build/out/schema-init-$board-$version.raucb}
work=${BUNDLE_TMP:-$top/build/tmp/bundle}
rm -rf "$work"
mkdir -p "$work/content" "$(dirname "$out")"
trap 'rm -rf "$work"' EXIT
cp "$slot/boot.vfat" "$slot/root.img" "$work/content/"
marker='root=/dev/mmcblk0p5 '
found=$(grep -obUa "$marker" "$work/content/boot.vfat" | cut -d: -f1)
[ "$(echo "$found" | wc -w)" = 1 ] || {
    echo "mkbundle: boot.vfat must hold '$marker' once (found at: $found)" >&2; exit 1; }
cat > "$work/content/manifest.raucm" <<EOF
[update]
compatible=$BUNDLE_COMPATIBLE
version=$version
description=schema-init $board image $version

[bundle]
format=verity

[image.boot]
filename=boot.vfat

[image.rootfs]
filename=root.img
EOF
rm -f "$out"
start=$(date +%s)
rauc bundle --cert "$cert" --key "$key" \
    --mksquashfs-args="-noI -noD -noF -noX -no-fragments" "$work/content" "$out" > "$work/rauc.log" 2>&1 || {
    cat "$work/rauc.log" >&2; echo "mkbundle: rauc bundle failed" >&2; exit 1; }
rauc info --keyring "$cert" "$out" > "$work/info.log" 2>&1 || {
    cat "$work/info.log" >&2; echo "mkbundle: rauc info does not accept the bundle" >&2; exit 1; }
echo "mkbundle: $out ($(stat -c %s "$out") B, version $version, signed by $(openssl x509 -in "$cert" -noout -subject 2>/dev/null | sed 's/^subject=//')) in $(( $(date +%s) - start )) s" >&2
echo "$out"
