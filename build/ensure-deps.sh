#!/bin/sh
# Install the Debian packages a target needs, only those missing (apt-get update once).
# usage: build/ensure-deps.sh PACKAGE...
set -eu
missing=""
for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" ||
        missing="$missing $pkg"
done
[ -z "$missing" ] && exit 0
echo "installing:$missing"
export DEBIAN_FRONTEND=noninteractive
SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
$SUDO apt-get update -qq
# shellcheck disable=SC2086 # $missing: package names, one word each
$SUDO apt-get install -y -qq --no-install-recommends $missing
