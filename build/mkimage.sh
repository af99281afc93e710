#!/bin/sh
# build/mkimage.sh [--dry-run] BOARD        (make image BOARD=rpi-zero-w)
# One flashable SD card image for a board, made without loop devices or mounts:
#   build/out/schema-init-BOARD.img  (and build/out/BOARD-slot/: the slot's two images)
# The armel root is debootstrap --variant=minbase bookworm plus what the board's
# services run (distros/raspberry-pi-zero-w/README.md), made once and cached in
# build/tmp/image/root while its stamp is unchanged; every build then copies it, adds the
# kernel modules, firmware, our armv6l binary as /sbin/init and the services, and packs it
# as squashfs.  The card is A/B from the first flash (issue 23; board.env has the
# layout): the selector FAT (bootcode.bin, autoboot.txt), boot partition A (FAT: firmware,
# kernel, dtb, initramfs, cmdline.txt naming root slot A), root slot A, an empty slot B
# (boot and root), the data partition.  The FATs are made with mkfs.vfat and filled with
# mcopy; the data partition with mkfs.ext4; the MBR (with its extended partition) with
# sfdisk; each written into the image with dd at its offset.  build/out/BOARD-slot/
# keeps boot A's FAT and the root for make bundle (build/mkbundle.sh).  Reproducible: SOURCE_DATE_EPOCH (default: the last commit's
# time) for every timestamp, fixed disk id, volume id and UUIDs: the same root, binary and
# firmware give the same bytes.
# The steps are the functions below, run in order at the end of this file; each says
# "mkimage: step N/8: NAME" on stderr when it starts.  --dry-run prints the settings and
# the steps, and stops there (nothing is fetched, made or written).
# The board's recipe: distros/<board>/board.env (plain NAME="value" lines, read by
# toolchains/recipe.sh).
# MIRROR: the Debian mirror (default: the host's first apt source, else deb.debian.org).
# SCHEMA_INIT_BIN: the binary (default build/out/armv6l/schema-init).
set -eu
dry_run=no
if [ "${1:-}" = --dry-run ]; then
    dry_run=yes
    shift
fi
board=${1:-rpi-zero-w}
top=$(cd "$(dirname "$0")/.." && pwd)
case $board in
    rpi-zero-w) dir=$top/distros/raspberry-pi-zero-w ;;
    *) echo "mkimage: unknown BOARD $board (known: rpi-zero-w)" >&2; exit 2 ;;
esac
# The identifiers are fixed (reproducible images) unless asked otherwise: DISK_ID,
# BOOT_VOLUME_ID, DATA_UUID, ROOT_UUID from the environment win over board.env's, taken
# as they are (recipe_read assigns them; nothing in them is expanded).
# shellcheck source=toolchains/recipe.sh
. "$top/toolchains/recipe.sh"
recipe_read "$dir/board.env" ${DISK_ID:+"DISK_ID=$DISK_ID"} \
    ${BOOT_VOLUME_ID:+"BOOT_VOLUME_ID=$BOOT_VOLUME_ID"} \
    ${SELECTOR_VOLUME_ID:+"SELECTOR_VOLUME_ID=$SELECTOR_VOLUME_ID"} \
    ${DATA_UUID:+"DATA_UUID=$DATA_UUID"} ${ROOT_UUID:+"ROOT_UUID=$ROOT_UUID"}
ROOTFS=${IMAGE_ROOTFS:-$ROOTFS}       # squashfs (chosen) or erofs, to compare
# IMAGE_SQUASHFS_COMP: squashfs's compressor (xz, chosen; zstd, gzip, lz4 to compare)
cache=${IMAGE_CACHE:-$top/build/tmp/image}
binary=${SCHEMA_INIT_BIN:-$top/build/out/armv6l/schema-init}
out=${IMAGE_OUT:-$top/build/out/schema-init-$board.img}
slot_out=${SLOT_OUT:-$top/build/out/$board-slot}
# The certificate bundles are checked against (build/mkbundle.sh makes a development
# pair in build/keys when none is given: UPDATE_CERT, UPDATE_KEY).
keys=${UPDATE_KEYS:-$top/build/keys}
update_cert=${UPDATE_CERT:-$keys/update.cert.pem}
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$top" log -1 --format=%ct 2>/dev/null || echo 0)}
export SOURCE_DATE_EPOCH
export E2FSPROGS_FAKE_TIME="$SOURCE_DATE_EPOCH"
# The root's version (the bundle's too): IMAGE_VERSION, else the package's version and
# the build time, which tell two builds apart.
version=${IMAGE_VERSION:-$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$top/schema_init/__init__.py").$SOURCE_DATE_EPOCH}
if [ -z "${MIRROR:-}" ]; then
    MIRROR=$(cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null |
             sed -n 's|^URIs: *\([^ ]*debian\)/*$|\1|p; s|^deb  *\(http[^ ]*debian\)/* .*|\1|p' |
             head -n 1)
    MIRROR=${MIRROR:-http://deb.debian.org/debian}
fi

# 1. The root, once: debootstrap (its armel programs run through qemu-user + binfmt_misc).
make_base_root() {
    mkdir -p "$cache"
    root=$cache/root
    stamp="bookworm $DEB_ARCH $ROOT_PACKAGES"
    if [ "$(cat "$root/.schema-image-root" 2>/dev/null)" != "$stamp" ]; then
        "$top/build/ensure-deps.sh" debootstrap qemu-user-static >&2
        "$top/toolchains/binfmt.sh" qemu-arm >&2
        rm -rf "$root.tmp"
        start=$(date +%s)
        echo "mkimage: debootstrap bookworm $DEB_ARCH into $root (a few minutes)" >&2
        debootstrap --variant=minbase --arch="$DEB_ARCH" --include="$ROOT_PACKAGES" \
            bookworm "$root.tmp" "$MIRROR" > "$cache/root.log" 2>&1 || {
            tail -n 20 "$cache/root.log" >&2; echo "mkimage: debootstrap failed" >&2; exit 1; }
        rm -rf "$root.tmp"/var/cache/apt/archives/*.deb "$root.tmp"/var/lib/apt/lists/*_Packages
        # shellcheck disable=SC2016 # ${Package} & co. are dpkg-query's fields, not sh's
        chroot "$root.tmp" dpkg-query -W -f='${Package} ${Version} ${Architecture}\n' \
            > "$root.tmp/.schema-image-packages"
        echo "$stamp" > "$root.tmp/.schema-image-root"
        rm -rf "$root"
        mv "$root.tmp" "$root"
        echo "mkimage: root made in $(( $(date +%s) - start )) s" >&2
    fi
}

# 2. The kernel (linux-image-rpi, shared with the cross tier) and the firmware packages
#    (non-free-firmware), fetched with apt-get download through a private apt state.
fetch_kernel_and_firmware() {
    "$top/toolchains/fetch_kernel.sh" "$DEB_ARCH" >&2
    kroot=${CROSS_CACHE:-$top/build/tmp/cross}/kernel/$DEB_ARCH/root
    kver=$(cat "$kroot/../KERNEL")
    firmware=$cache/firmware
    if [ "$(cat "$firmware/.packages" 2>/dev/null)" != "$FIRMWARE_PACKAGES" ]; then
        state=$cache/apt
        mkdir -p "$state/lists/partial" "$state/cache/archives/partial" "$state/etc"
        echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $MIRROR bookworm main non-free-firmware" \
            > "$state/etc/sources.list"
        firmware_apt update > "$state/update.log" 2>&1 || {
            cat "$state/update.log" >&2; echo "mkimage: apt-get update failed" >&2; exit 1; }
        rm -rf "$firmware.tmp"
        mkdir -p "$firmware.tmp/debs" "$firmware.tmp/root"
        # shellcheck disable=SC2086 # FIRMWARE_PACKAGES: package names, one word each
        (cd "$firmware.tmp/debs" && firmware_apt download $FIRMWARE_PACKAGES > /dev/null)
        for deb in "$firmware.tmp/debs"/*.deb; do
            dpkg -x "$deb" "$firmware.tmp/root"
            basename "$deb" >> "$firmware.tmp/VERSIONS"
        done
        rm -rf "$firmware.tmp/debs"
        echo "$FIRMWARE_PACKAGES" > "$firmware.tmp/.packages"
        rm -rf "$firmware"
        mv "$firmware.tmp" "$firmware"
    fi
}

# apt-get ARGS... with the firmware's private apt state ($state): its own package lists
# and sources.list (the mirror's main and non-free-firmware), the board's architecture.
firmware_apt() {
    if [ "$(id -u)" = 0 ]; then
        set -- -o APT::Sandbox::User=root "$@"
    fi
    apt-get -q -o "Dir::State::Lists=$state/lists" -o "Dir::Cache=$state/cache" \
        -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache= \
        -o "Dir::Etc::sourcelist=$state/etc/sources.list" -o Dir::Etc::sourceparts=/nonexistent \
        -o "APT::Architecture=$DEB_ARCH" -o "APT::Architectures::=$DEB_ARCH" "$@"
}

# 3. This build's root: the cached one, our binary as /sbin/init, modules, firmware,
#    the services and the board's scripts.
make_root() {
    start=$(date +%s)
    work=$cache/work
    rm -rf "$work"
    mkdir -p "$work"
    trap 'rm -rf "$work"' EXIT
    r=$work/root
    cp -a "$root" "$r"
    mv "$r/.schema-image-packages" "$r/usr/share/schema-init-image-packages"
    rm -f "$r/.schema-image-root" "$r/etc/machine-id" "$r/var/lib/dbus/machine-id" \
          "$r/etc/hostname" "$r/etc/dropbear/"*_host_key
    install -m 0755 "$binary" "$r/usr/sbin/init"
    for name in schema-init schema-ctl schema-subreaper schema-firstboot schema-metrics schema-update \
                schema-powerkey reboot poweroff halt shutdown telinit runlevel; do
        ln -sf init "$r/usr/sbin/$name"
    done
    rm -rf "$r/lib/modules"
    mkdir -p "$r/lib/modules"
    cp -a "$kroot/lib/modules/$kver" "$r/lib/modules/$kver"
    depmod -b "$r" "$kver"
    fw=$firmware/root/lib/firmware/brcm
    mkdir -p "$r/lib/firmware/brcm"
    for f in "$fw"/brcmfmac43430-sdio.*; do
        cp -a "$f" "$r/lib/firmware/brcm/"
    done
    # The board file the driver asks for first on a Zero W (the same chip as the Pi 3 B's).
    nvram=brcmfmac43430-sdio.raspberrypi,model-zero-w.txt
    if [ ! -e "$r/lib/firmware/brcm/$nvram" ]; then
        ln -s brcmfmac43430-sdio.raspberrypi,3-model-b.txt "$r/lib/firmware/brcm/$nvram"
    fi
    [ -e "$r/lib/firmware/brcm/brcmfmac43430-sdio.raspberrypi,3-model-b.txt" ] || {
        echo "mkimage: firmware-brcm80211 has no brcmfmac43430-sdio board file" >&2; exit 1; }
    rm -rf "$r/etc/schema-init"
    mkdir -p "$r/etc/schema-init" "$r/usr/lib/schema-init-board"
    cp -a "$top/services/$board" "$r/etc/schema-init/services"
    cp -a "$dir/lib/." "$r/usr/lib/schema-init-board/"
    mkdir -p "$r/data" "$r/boot/firmware" "$r/etc/schema-board"
    echo "$SOURCE_DATE_EPOCH" > "$r/usr/lib/schema-init-board/build-time"
    # The updater's facts (schema_init/update/): this root's version, the board's
    # compatible string, where the boot-attempt record is, and the keyring.
    echo "$version" > "$r/usr/lib/schema-init-board/version"
    echo "$BUNDLE_COMPATIBLE" > "$r/usr/lib/schema-init-board/compatible"
    echo "$AB_RECORD_SECTOR" > "$r/usr/lib/schema-init-board/ab-record-sector"
    echo "$AB_MODE" > "$r/usr/lib/schema-init-board/ab-mode"
    "$top/build/mkbundle.sh" --keys "$keys" >&2
    mkdir -p "$r/etc/schema-update"
    cp "$update_cert" "$r/etc/schema-update/keyring.pem"
    cp "$dir/trial.conf" "$r/etc/schema-update/trial.conf"
    cp "$dir/fstab" "$r/etc/fstab"
    echo "$board" > "$r/etc/hostname"     # replaced at boot (identity service)
    # The writable places live on the data partition (boot-data.sh); /tmp is a tmpfs.
    rm -rf "$r/tmp"/* "$r/var/tmp"/*
    # The image runs its own services only: the units its packages enabled for systemd
    # (chrony, wpa_supplicant, apt and e2scrub timers) would be imported by schema-init
    # beside them (docs/spec.md, "Services from systemd unit files").
    rm -rf "$r/etc/systemd/system/"*.wants
    # What a device never reads: manual pages, translations, documentation (each
    # package's copyright file stays), apt's caches.
    rm -rf "$r/usr/share/man" "$r/usr/share/info" "$r/usr/share/locale"/* \
           "$r/var/cache/apt"/*.bin "$r/var/lib/apt/lists"/*
    find "$r/usr/share/doc" -type f ! -name copyright -delete
    find "$r/usr/share/doc" -depth -type d -empty -delete
}

# 4. The root as a read-only filesystem.
pack_root() {
    rootfs=$work/root.$ROOTFS
    # Every file's time is SOURCE_DATE_EPOCH: what came from the checkout or depmod
    # carries the time it was made, which would change the bytes of every build.
    find "$r" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
    case $ROOTFS in
        squashfs) mksquashfs "$r" "$rootfs" -noappend -quiet -no-progress \
                      -comp "${IMAGE_SQUASHFS_COMP:-xz}" -b 262144 -processors 1 > /dev/null ;;
        erofs) mkfs.erofs -zlz4hc -T "$SOURCE_DATE_EPOCH" -U "$ROOT_UUID" "$rootfs" "$r" > /dev/null ;;
    esac
}

# 5. The initramfs: busybox, the SD card's and the root filesystem's modules, /init.
make_initramfs() {
    i=$work/initramfs
    mkdir -p "$i/bin" "$i/proc" "$i/sys" "$i/dev" "$i/root" "$i/lib/modules"
    cp "$kroot/bin/busybox" "$i/bin/busybox"
    for applet in sh mount umount switch_root insmod sleep cat reboot echo mkdir dd tr grep od \
                  printf wc mv sync; do
        ln -s busybox "$i/bin/$applet"
    done
    # The root filesystem's module: squashfs in board.env, erofs (which needs crc32c)
    # when IMAGE_ROOTFS says so.
    modules=$INITRAMFS_MODULES
    if [ "$ROOTFS" = erofs ]; then
        modules=$(echo "$modules" | sed "s/squashfs/crc32c_generic libcrc32c erofs/")
    fi
    for m in $modules; do
        path=$(find "$kroot/lib/modules/$kver" -name "$m.ko" | head -n 1)
        [ -n "$path" ] || { echo "mkimage: no module $m.ko in $kver" >&2; exit 1; }
        cp "$path" "$i/lib/modules/$m.ko"
        echo "$m" >> "$i/lib/modules/LIST"
    done
    install -m 0755 "$dir/initramfs-init" "$i/init"
    echo "$AB_RECORD_SECTOR" > "$i/ab-record-sector"
    find "$i" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
    (cd "$i" && find . | LC_ALL=C sort | cpio -o -H newc --reproducible --quiet) |
        gzip -n -9 > "$work/initrd.img"
}

# 6. The FATs: the selector (bootcode.bin, which the boot ROM loads from the first
#    partition; autoboot.txt, which sends the firmware to boot A, or to B on a tryboot;
#    a commented custom.toml for the operator) and boot A (the firmware, the kernel, its
#    device tree, the initramfs, config.txt, cmdline.txt naming root slot A).
make_boot_fat() {
    b=$work/boot
    mkdir -p "$b"
    for f in start.elf fixup.dat; do
        cp "$firmware/root/usr/lib/raspi-firmware/$f" "$b/$f"
    done
    cp "$firmware/root/usr/share/doc/raspi-firmware/copyright" "$b/firmware-copyright.txt"
    cp "$kroot/boot/vmlinuz-$kver" "$b/vmlinuz"
    cp "$kroot/usr/lib/linux-image-$kver/$DTB" "$b/$DTB"
    cp "$work/initrd.img" "$b/initrd.img"
    cp "$dir/boot/config.txt" "$b/"
    sed "s/rootfstype=squashfs/rootfstype=$ROOTFS/" "$dir/boot/cmdline.txt" > "$b/cmdline.txt"
    grep -q 'root=/dev/mmcblk0p5 ' "$b/cmdline.txt" || {
        echo "mkimage: cmdline.txt must name root slot A (root=/dev/mmcblk0p5)" >&2; exit 1; }
    fat=$work/boot.fat
    fat_from "$b" "$fat" BOOT "$BOOT_VOLUME_ID" "$BOOT_MB"
    s=$work/selector
    mkdir -p "$s"
    cp "$firmware/root/usr/lib/raspi-firmware/bootcode.bin" "$s/bootcode.bin"
    cp "$firmware/root/usr/share/doc/raspi-firmware/copyright" "$s/firmware-copyright.txt"
    cp "$dir/boot/autoboot.txt" "$dir/boot/custom.toml.example" "$s/"
    selector=$work/selector.fat
    fat_from "$s" "$selector" SELECTOR "$SELECTOR_VOLUME_ID" "$SELECTOR_MB"
}

# fat_from DIR FAT LABEL VOLUME_ID MIB: a FAT of MIB MiB holding DIR's files (sorted, with
# SOURCE_DATE_EPOCH times: the same bytes every build).
fat_from() {
    find "$1" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
    mkfs.vfat -C -n "$3" --invariant -i "$4" "$2" $(($5 * 1024)) > /dev/null
    (cd "$1" && LC_ALL=C ls) | while read -r f; do
        mcopy -i "$2" -m -o "$1/$f" "::$f"
    done
}

# 7. The data partition: an empty ext4 (boot-data.sh makes its directories: mkfs.ext4 -d
#    would copy the source files' ctime, which no option fixes); grown to the card's end
#    on first boot.
make_data_partition() {
    datafs=$work/data.ext4
    mkfs.ext4 -q -F -L data -U "$DATA_UUID" -E "hash_seed=$DATA_UUID,root_owner=0:0" \
        "$datafs" "${DATA_MB}M" > /dev/null
}

# 8. The card: MBR (sfdisk on the file) with the extended partition, the filesystems at
#    their offsets (slot B stays empty: holes), and the slot's two images kept for
#    make bundle.
assemble_card() {
    mib=2048                                  # sectors
    sel_start=$((BOOT_OFFSET_MB * mib)); sel_size=$((SELECTOR_MB * mib))
    boot_a=$((sel_start + sel_size)); boot_size=$((BOOT_MB * mib)); boot_b=$((boot_a + boot_size))
    ext_start=$((boot_b + boot_size)); slot=$((ROOT_SLOT_MB * mib))
    # each logical partition after a MiB for its EBR
    a_start=$((ext_start + mib)); b_start=$((a_start + slot + mib))
    data_start=$((b_start + slot + mib)); data_size=$((DATA_MB * mib))
    ext_size=$((IMAGE_MB * mib - ext_start))
    if [ "$AB_RECORD_SECTOR" -lt 1 ] || [ $((AB_RECORD_SECTOR + 3)) -gt "$sel_start" ]; then
        echo "mkimage: AB_RECORD_SECTOR $AB_RECORD_SECTOR is not in the gap before the selector" >&2
        exit 1
    fi
    [ "$(stat -c %s "$rootfs")" -le $((slot * 512)) ] || {
        echo "mkimage: the root ($(stat -c %s "$rootfs") B) does not fit a ${ROOT_SLOT_MB} MiB slot" >&2
        exit 1; }
    [ $(( (data_start + data_size) / mib )) -le "$IMAGE_MB" ] || {
        echo "mkimage: the partitions do not fit $IMAGE_MB MiB" >&2; exit 1; }
    img=$work/card.img
    rm -f "$img"
    truncate -s "${IMAGE_MB}M" "$img"
    sfdisk --quiet --no-reread --no-tell-kernel "$img" <<SFDISK
label: dos
label-id: $DISK_ID
unit: sectors

start=$sel_start, size=$sel_size, type=c
start=$boot_a, size=$boot_size, type=c, bootable
start=$boot_b, size=$boot_size, type=c
start=$ext_start, size=$ext_size, type=5
start=$a_start, size=$slot, type=83
start=$b_start, size=$slot, type=83
start=$data_start, size=$data_size, type=83
SFDISK
    put "$selector" "$sel_start"
    put "$fat" "$boot_a"
    put "$rootfs" "$a_start"
    put "$datafs" "$data_start"
    mkdir -p "$(dirname "$out")" "$slot_out"
    mv "$img" "$out"
    cp "$fat" "$slot_out/boot.vfat"
    cp "$rootfs" "$slot_out/root.img"
    echo "$version" > "$slot_out/version"
    echo "mkimage: $out ($IMAGE_MB MiB; root $ROOTFS $(stat -c %s "$rootfs") B in a $ROOT_SLOT_MB MiB slot; version $version) in $(( $(date +%s) - start )) s" >&2
}

# put FILE SECTOR: FILE written into the card at SECTOR (a whole MiB).
put() { dd if="$1" of="$img" bs=1M seek=$(($2 / mib)) conv=notrunc,sparse status=none; }

# step NUMBER FUNCTION: says which step starts, then runs it (--dry-run: only says) with
# everything its tools print going to $logs/N-FUNCTION.log; the step's own "mkimage:"
# lines are repeated here, then its time and log.  On a failure the log's last lines
# are shown (on_exit).
logs=${IMAGE_LOGS:-$top/build/tmp/image-logs}
current_log=
step() {
    echo "mkimage: step $1/8: $2" >&2
    if [ "$dry_run" = no ]; then
        mkdir -p "$logs"
        current_log=$logs/$1-$2.log
        began=$(date +%s)
        "$2" > "$current_log" 2>&1
        grep '^mkimage: ' "$current_log" >&2 || true
        echo "mkimage: step $1/8: $2 done in $(( $(date +%s) - began )) s ($current_log)" >&2
        current_log=
    fi
}

on_exit() {
    status=$?
    if [ "$status" -ne 0 ] && [ -n "$current_log" ]; then
        echo "mkimage: failed; the last lines of $current_log:" >&2
        tail -n 25 "$current_log" >&2
    fi
    exit "$status"
}
trap on_exit EXIT

# --dry-run: what the image would be made from (the board's recipe as overridden).
show_settings() {
    printf '%s=%s\n' board "$board" binary "$binary" out "$out" cache "$cache" version "$version" \
        MIRROR "$MIRROR" SOURCE_DATE_EPOCH "$SOURCE_DATE_EPOCH"
    recipe_show
}

if [ "$dry_run" = yes ]; then
    show_settings
fi
step 1 make_base_root
if [ "$dry_run" = no ] && [ "${ROOT_ONLY:-}" = 1 ]; then
    exit 0
fi
if [ "$dry_run" = no ] && [ ! -x "$binary" ]; then
    echo "mkimage: $binary missing (make armv6l)" >&2
    exit 1
fi
step 2 fetch_kernel_and_firmware
step 3 make_root
step 4 pack_root
step 5 make_initramfs
step 6 make_boot_fat
step 7 make_data_partition
step 8 assemble_card
[ "$dry_run" = yes ] || echo "mkimage: every tool's output: $logs/" >&2
