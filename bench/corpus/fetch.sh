#!/bin/sh
# bench/corpus/fetch.sh: the unit corpus's files, straight from the packages.
# Each package of bench/corpus/packages.txt is fetched with `apt-get download` (the
# package alone, not its dependencies) into $CORPUS_CACHE/debs (default
# /var/cache/schema-init-build/corpus: outside the checkout), extracted with
# `dpkg-deb -x` into $CORPUS_CACHE/extract/PACKAGE, and what an init system reads of
# it goes into $CORPUS_CACHE/index.tsv, one file a line:
#     package  version  kind  path  install
# kind: unit (lib/systemd/system, usr/lib/systemd/system), alias (a unit that is a
# link), dropin (UNIT.d/*.conf), generator (lib/systemd/system-generators), initscript
# (etc/init.d); install: a unit's [Install] lines (WantedBy=, RequiredBy=, Alias=,
# Also=, DefaultInstance=) joined by spaces, "-" when it has none (a static unit).
# $CORPUS_CACHE/packages.tsv: package, version, category, options.
# Cached: $CORPUS_CACHE/fetch.stamp holds the hash of packages.txt and of this script;
# a re-run with the same ones does nothing (a .deb already downloaded is not fetched
# again either).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cache=${CORPUS_CACHE:-/var/cache/schema-init-build/corpus}
list=$here/packages.txt
stamp=$cache/fetch.stamp
key=$(cat "$list" "$0" | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" = "$key" ] && [ -s "$cache/index.tsv" ]; then
    exit 0
fi
started=$(date +%s)
mkdir -p "$cache/debs" "$cache/extract"
names=$(grep -v '^[[:space:]]*#' "$list" | awk 'NF { print $1 }')
count=$(echo "$names" | wc -w)
echo "fetch: $count packages into $cache/debs" >&2
cd "$cache/debs"
for pkg in $names; do
    set -- "${pkg}"_*.deb
    [ -e "$1" ] && continue
    apt-get download -q -o APT::Sandbox::User=root "$pkg" >/dev/null || {
        echo "fetch: apt-get download $pkg failed" >&2; exit 1; }
done

install_lines() {   # a unit file's [Install] settings, on one line ("-": none)
    awk '/^[[:space:]]*\[/ { inst = ($0 ~ /^[[:space:]]*\[Install\]/) ; next }
         inst && /^[[:space:]]*(WantedBy|RequiredBy|Alias|Also|DefaultInstance)[[:space:]]*=/ {
             gsub(/[[:space:]]*=[[:space:]]*/, "="); gsub(/^[[:space:]]+|[[:space:]]+$/, "")
             gsub(/[[:space:]]+/, " "); out = out (out ? " " : "") $0 }
         END { print (out ? out : "-") }' "$1"
}

tab=$(printf '\t')
index=$cache/index.tsv.tmp
: > "$index"
: > "$cache/packages.tsv.tmp"
for pkg in $names; do
    set -- "${pkg}"_*.deb
    deb=$1 version=$(dpkg-deb -f "$1" Version)   # the newest, if an older one is still here
    for other in "$@"; do
        v=$(dpkg-deb -f "$other" Version)
        if dpkg --compare-versions "$v" gt "$version"; then deb=$other version=$v; fi
    done
    dir=$cache/extract/$pkg
    rm -rf "$dir"
    mkdir -p "$dir"
    dpkg-deb -x "$deb" "$dir"
    grep -v '^[[:space:]]*#' "$list" | awk -v p="$pkg" -v v="$version" -v OFS="$tab" \
        '$1 == p { opts = ""; for (i = 3; i <= NF; i++) opts = opts (opts ? " " : "") $i
                   print p, v, $2, (opts ? opts : "-") }' >> "$cache/packages.tsv.tmp"
    found=0
    for sub in lib/systemd/system usr/lib/systemd/system; do
        [ -d "$dir/$sub" ] || continue
        for path in "$dir/$sub"/* "$dir/$sub"/*.d/*.conf; do
            [ -e "$path" ] || [ -L "$path" ] || continue
            rel=${path#"$dir"}
            case $path in
                *.d/*.conf) kind=dropin ;;
                *.wants|*.requires|*.d) continue ;;
                *) if [ -L "$path" ]; then kind="alias"; else kind="unit"; fi ;;
            esac
            [ -d "$path" ] && continue
            install=-
            [ "$kind" = unit ] && install=$(install_lines "$path")
            [ "$kind" = alias ] && install="-> $(readlink "$path")"
            printf '%s\t%s\t%s\t%s\t%s\n' "$pkg" "$version" "$kind" "$rel" "$install" >> "$index"
            found=$((found + 1))
        done
        # links a package ships in a .wants directory of its own (static enablement)
        for path in "$dir/$sub"/*.wants/* "$dir/$sub"/*.requires/*; do
            [ -L "$path" ] || [ -e "$path" ] || continue
            rel=${path#"$dir"}
            printf '%s\t%s\t%s\t%s\t%s\n' "$pkg" "$version" wants "$rel" "-> $(readlink "$path")" >> "$index"
        done
    done
    for sub in lib/systemd/system-generators usr/lib/systemd/system-generators etc/init.d; do
        [ -d "$dir/$sub" ] || continue
        kind=generator
        [ "$sub" = etc/init.d ] && kind=initscript
        for path in "$dir/$sub"/*; do
            [ -e "$path" ] || continue
            printf '%s\t%s\t%s\t%s\t-\n' "$pkg" "$version" "$kind" "${path#"$dir"}" >> "$index"
            found=$((found + 1))
        done
    done
    [ "$found" -gt 0 ] || printf '%s\t%s\tnone\t-\t-\n' "$pkg" "$version" >> "$index"
done
mv "$index" "$cache/index.tsv"
mv "$cache/packages.tsv.tmp" "$cache/packages.tsv"
echo "$key" > "$stamp"
echo $(($(date +%s) - started)) > "$cache/fetch.seconds"   # for the report
echo "fetch: $(grep -c "${tab}unit${tab}" "$cache/index.tsv") units, $(grep -c "${tab}generator${tab}" "$cache/index.tsv") generators, $(grep -c "${tab}initscript${tab}" "$cache/index.tsv") init scripts in $cache/index.tsv" >&2
