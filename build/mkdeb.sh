#!/bin/sh
# build/mkdeb.sh [BINARY] [DEB_ARCH]: the Debian package of schema-init,
# OUTDIR/schema-init_VERSION_ARCH.deb (OUTDIR: build/out), made with dpkg-deb from
#   BINARY     the static binary (build/out/schema-init)
#   DEB_ARCH   amd64, arm64, armel, ...: else from TARGET (x86_64, aarch64, armv6l), else
#              from BINARY's directory (build/out/aarch64/ -> arm64, build/out/armv6l/ ->
#              armel), else `dpkg --print-architecture`
#   SERVICES   the services for /etc/schema-init/services (services/debian)
# and distros/debian/package/ (control template, maintainer scripts, copyright,
# changelog.Debian, schema-init-switch, man pages).  VERSION is the top entry of
# changelog.Debian, whose upstream part must be schema_init.__version__.
# Files under /etc are conffiles; the services' template instances (links such as
# getty@tty1.svc -> getty@.svc) are made by postinst on the first installation.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
pkg=$top/distros/debian/package
binary=${1:-$top/build/out/schema-init}
services=${SERVICES:-$top/services/debian}
outdir=${OUTDIR:-$top/build/out}

die() { echo "mkdeb: $*" >&2; exit 1; }

arch=${2:-}
if [ -z "$arch" ] && [ -n "${TARGET:-}" ]; then
    case $TARGET in
        x86_64) arch=amd64 ;;
        aarch64) arch=arm64 ;;
        armv6l) arch=armel ;;
        *) die "unknown TARGET $TARGET (x86_64, aarch64, armv6l)" ;;
    esac
fi
if [ -z "$arch" ]; then
    case $(basename "$(dirname "$binary")") in
        aarch64) arch=arm64 ;;
        armv6l) arch=armel ;;
        *) arch=$(dpkg --print-architecture) ;;
    esac
fi

if [ ! -f "$binary" ] || [ ! -x "$binary" ]; then
    die "no executable $binary (make builds it)"
fi
# The ELF machine must be the architecture's (a script is packaged as it is: tests).
if [ "$(head -c 4 "$binary" | od -An -c | tr -d ' ')" = '177ELF' ]; then
    machine=$(od -An -tu2 -j18 -N2 "$binary" | tr -d ' ')
    case $arch in
        amd64) want=62 ;; arm64) want=183 ;; armel|armhf) want=40 ;;
        i386) want=3 ;; riscv64) want=243 ;; *) want=$machine ;;
    esac
    [ "$machine" = "$want" ] || die "$binary is ELF machine $machine, not $arch's ($want)"
fi

upstream=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$top/schema_init/__init__.py")
version=$(sed -n '1s/^schema-init (\([^)]*\)).*/\1/p' "$pkg/changelog.Debian")
[ -n "$upstream" ] || die "no __version__ in schema_init/__init__.py"
[ "${version%-*}" = "$upstream" ] ||
    die "changelog.Debian's top entry is $version, not $upstream-N: add an entry for $upstream"

ls "$services"/*.svc >/dev/null 2>&1 || die "no .svc files in $services"

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
d=$stage/root
umask 022
mkdir -p "$d/DEBIAN" "$d/usr/sbin" "$d/usr/bin" "$d/etc/schema-init/services" \
         "$d/usr/share/schema-init" "$d/usr/share/doc/schema-init" \
         "$d/usr/share/man/man8" "$d/usr/share/lintian/overrides"

# the binary and its names (schema_init/__main__.py decides by argv[0])
install -m 0755 "$binary" "$d/usr/sbin/schema-init"
for name in schema-ctl schema-subreaper schema-powerkey reboot poweroff halt shutdown \
            telinit runlevel; do
    ln -s schema-init "$d/usr/sbin/$name"
done
ln -s ../sbin/schema-init "$d/usr/bin/systemctl"
install -m 0755 "$pkg/schema-init-switch" "$d/usr/sbin/schema-init-switch"

# the services: files as conffiles, links recorded for postinst
: > "$d/usr/share/schema-init/default-instances"
for f in "$services"/*; do
    name=$(basename "$f")
    if [ -L "$f" ]; then
        target=$(readlink "$f")
        case $target in
            */*) die "$f: a link must name a file of the same directory, not $target" ;;
        esac
        [ -f "$services/$target" ] || die "$f: its template $target is not there"
        echo "$name $target" >> "$d/usr/share/schema-init/default-instances"
    elif [ -f "$f" ]; then
        install -m 0644 "$f" "$d/etc/schema-init/services/$name"
    else
        die "$f: neither a file nor a link"
    fi
done
chmod 0644 "$d/usr/share/schema-init/default-instances"

# documentation
install -m 0644 "$pkg/copyright" "$d/usr/share/doc/schema-init/copyright"
gzip -9n < "$pkg/changelog.Debian" > "$d/usr/share/doc/schema-init/changelog.Debian.gz"
install -m 0644 "$top/distros/debian/README.md" "$d/usr/share/doc/schema-init/README.Debian"
for page in "$pkg"/man/*.8; do
    sed "s/@VERSION@/$version/" "$page" | gzip -9n > "$d/usr/share/man/man8/$(basename "$page").gz"
done
ln -s schema-init.8.gz "$d/usr/share/man/man8/schema-subreaper.8.gz"
ln -s schema-init.8.gz "$d/usr/share/man/man8/schema-powerkey.8.gz"
install -m 0644 "$pkg/lintian-overrides" "$d/usr/share/lintian/overrides/schema-init"
chmod 0644 "$d"/usr/share/doc/schema-init/* "$d"/usr/share/man/man8/*.gz

# control area
for script in preinst postinst prerm postrm; do
    install -m 0755 "$pkg/$script" "$d/DEBIAN/$script"
done
(cd "$d" && find etc -type f | sort | sed 's|^|/|') > "$d/DEBIAN/conffiles"
(cd "$d" && find . -path ./DEBIAN -prune -o -type f -print | sed 's|^\./||' | sort |
    xargs md5sum) > "$d/DEBIAN/md5sums"
size=$(du -k -s --apparent-size --exclude=DEBIAN "$d" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@INSTALLED_SIZE@/$size/" \
    "$pkg/control.in" > "$d/DEBIAN/control"
chmod 0644 "$d/DEBIAN/control" "$d/DEBIAN/conffiles" "$d/DEBIAN/md5sums"

mkdir -p "$outdir"
deb=$outdir/schema-init_${version}_$arch.deb
dpkg-deb --root-owner-group -Z"${DEB_COMPRESS:-xz}" --build "$d" "$deb.tmp" >/dev/null
mv "$deb.tmp" "$deb"
echo "$deb"
