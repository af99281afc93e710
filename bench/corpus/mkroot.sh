#!/bin/sh
# bench/corpus/mkroot.sh [main|alt]...
# The Debian 12 roots the unit corpus harness (bench/units_corpus.py) boots: every package
# of bench/corpus/packages.txt INSTALLED, as `apt-get install` leaves it, units enabled
# by the packages' own postinst (deb-systemd-helper writes the .wants links even when
# nothing may start).  Two roots, because apt refuses some pairs on one machine:
#   root      the packages without root=alt
#   root-alt  the root=alt ones (exim4 beside postfix, ntpsec beside chrony, ...)
# Both start from one debootstrap --variant=minbase bookworm (base), made once.
# During the install /usr/sbin/policy-rc.d exits 101 (nothing starts) and apt runs in a
# PID + mount + network + UTS namespace of its own (a postinst that starts a daemon
# anyway reaches neither the host's ports nor its processes; /proc is the namespace's);
# policy-rc.d is removed afterwards.  Recommends are not installed (the root stays a
# few GB); apt's downloaded .debs are removed.
# Cached outside the checkout in $CORPUS_CACHE (default /var/cache/schema-init-build/corpus):
# each root holds .corpus-stamp, the hash of packages.txt (its package names and root=
# fields for that root: a comment or a boot= group changes nothing installed) and of this
# script; a root whose stamp differs is made anew (from nothing on a machine without the
# cache).  apt's downloads are kept in $CORPUS_CACHE/archives for the next rebuild.
# Prints nothing on a cache hit.  Run as root.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
cache=${CORPUS_CACHE:-/var/cache/schema-init-build/corpus}
list=$here/packages.txt
[ "$#" -gt 0 ] || set -- main alt
base_key=$(sed -n '/^# --- base/,/^# --- end base/p' "$0" | sha256sum | cut -d' ' -f1)
mkdir -p "$cache"

packages() {   # the packages of one root: main (no root=alt) or alt
    grep -v '^[[:space:]]*#' "$list" | awk -v want="$1" 'NF {
        alt = 0; for (i = 3; i <= NF; i++) if ($i == "root=alt") alt = 1
        if ((want == "alt") == alt) print $1 }'
}

mirror() {
    sed -n 's|^URIs: *\([^ ]*debian\)/*$|\1|p' /etc/apt/sources.list.d/*.sources \
        2>/dev/null | head -n 1
}

# --- base: debootstrap once ---------------------------------------------------------
make_base() {
    base=$cache/base
    [ "$(cat "$base/.corpus-stamp" 2>/dev/null)" = "$base_key" ] && return 0
    "$top/build/ensure-deps.sh" debootstrap >&2
    rm -rf "$base.tmp"
    echo "mkroot: debootstrap --variant=minbase bookworm into $base" >&2
    m=$(mirror)
    debootstrap --variant=minbase bookworm "$base.tmp" "${m:-http://deb.debian.org/debian}" \
        > "$cache/base.log" 2>&1 || { tail -n 20 "$cache/base.log" >&2; exit 1; }
    # the host's sources (bookworm, -updates, -security: the versions apt-get download
    # fetched for the index), else the mirror's bookworm
    rm -f "$base.tmp/etc/apt/sources.list"
    if ls /etc/apt/sources.list.d/*.sources >/dev/null 2>&1; then
        cp /etc/apt/sources.list.d/*.sources "$base.tmp/etc/apt/sources.list.d/"
    else
        echo "deb ${m:-http://deb.debian.org/debian} bookworm main" \
            > "$base.tmp/etc/apt/sources.list"
    fi
    echo corpus > "$base.tmp/etc/hostname"
    printf '127.0.0.1 localhost\n127.0.1.1 corpus\n' > "$base.tmp/etc/hosts"
    echo "$base_key" > "$base.tmp/.corpus-stamp"
    rm -rf "$base"
    mv "$base.tmp" "$base"
}
# --- end base -----------------------------------------------------------------------

in_root() {    # in_root ROOT NETWORK(yes|no) CMD...: CMD chrooted, in namespaces of its own
    r=$1 net=$2
    shift 2
    netflag=--net
    [ "$net" = yes ] && netflag=
    archives=$cache/archives
    mkdir -p "$archives/partial"
    # shellcheck disable=SC2086,SC2016 # netflag: one word or none; the script is sh -c's
    archives=$archives unshare --pid --fork --mount --uts --ipc $netflag \
        --propagation private sh -c '
        r=$1; shift
        mount -t proc proc "$r/proc"
        mount -t sysfs sysfs "$r/sys" 2>/dev/null || true
        mount --bind /dev "$r/dev"
        mount -t devpts -o newinstance,ptmxmode=0666 devpts "$r/dev/pts" 2>/dev/null || true
        mount -t tmpfs tmpfs "$r/run"
        mount -t tmpfs tmpfs "$r/tmp"
        mount --bind "$archives" "$r/var/cache/apt/archives"
        cp /etc/resolv.conf "$r/etc/resolv.conf" 2>/dev/null || true
        # postfix'"'"'s newaliases wants an interface up, make-ssl-cert a host name that
        # resolves (/etc/hosts: corpus)
        hostname corpus
        ip link set lo up 2>/dev/null || true
        exec chroot "$r" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
            DEBIAN_FRONTEND=noninteractive DEBCONF_NONINTERACTIVE_SEEN=true "$@"
    ' in-root "$r" "$@"
}

make_root() {   # make_root main|alt
    which=$1
    case $which in
        main) root=$cache/root ;;
        alt) root=$cache/root-alt ;;
        *) echo "mkroot: main or alt, not $which" >&2; exit 2 ;;
    esac
    pkgs=$(packages "$which" | tr '\n' ' ')
    key=$( (echo "$which: $pkgs"; cat "$0") | sha256sum | cut -d' ' -f1)
    [ "$(cat "$root/.corpus-stamp" 2>/dev/null)" = "$key" ] && return 0
    started=$(date +%s)
    make_base
    # python3: the harness may run schema-init from the checkout with the root's Python
    extra=python3
    echo "mkroot: $which root: apt-get install $(echo "$pkgs" | wc -w) packages into $root" >&2
    rm -rf "$root.tmp"
    cp -a "$cache/base" "$root.tmp"
    r=$root.tmp
    printf '#!/bin/sh\n# mkroot.sh: nothing starts while the corpus is installed\nexit 101\n' \
        > "$r/usr/sbin/policy-rc.d"
    chmod 755 "$r/usr/sbin/policy-rc.d"
    log=$cache/$which-install.log
    : > "$log"
    # shellcheck disable=SC2086 # one word a package
    { in_root "$r" yes apt-get update &&
      in_root "$r" yes apt-get install -y --no-install-recommends --download-only \
          $pkgs $extra &&
      in_root "$r" no apt-get install -y --no-install-recommends \
          -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold $pkgs $extra
    } >> "$log" 2>&1 || { tail -n 30 "$log" >&2; exit 1; }
    rm -f "$r/usr/sbin/policy-rc.d" "$r"/var/cache/apt/*.bin
    # shellcheck disable=SC2016 # ${Package} & co. are dpkg-query's fields, not sh's
    chroot "$r" dpkg-query -W -f='${Package}\t${Version}\t${db:Status-Abbrev}\n' \
        > "$r/.corpus-packages"
    echo "$key" > "$r/.corpus-stamp"
    echo $(($(date +%s) - started)) > "$r/.corpus-seconds"   # for the report
    rm -rf "$root"
    mv "$r" "$root"
    echo "mkroot: $which root ready ($(du -sh "$root" | cut -f1))" >&2
}

for which in "$@"; do
    make_root "$which"
done
