#!/bin/sh
# build/mkdebian-servers.sh ROOT PACKAGES EXTRA
# The second step of build/mkdebian.sh's FLAVOUR=servers and servers-systemd (issue 21's
# server tier, make test-debian-servers): into the debootstrap'd ROOT, apt-get installs
# PACKAGES (comma-separated) as Debian's maintainer scripts do it, nothing started
# (policy-rc.d); postfix preseeded "Local only". EXTRA's .debs and those of its
# dependencies not installed go to /root/debs/EXTRA (apt-get install of it while the
# machine runs, offline). Then the test settings:
# - /etc/nftables.conf: the table inet schema_test, nftables.service enabled as Debian
#   does it (systemctl enable with systemd; deb-systemd-helper's same links without);
# - each daemon logs its own stop to a file the tests read off the powered-off disk:
#   nginx at notice (which signal came), postfix to /var/log/postfix.log (postfix-script's
#   "stopping"), mariadb to /var/log/mysql/error.log, tor to /var/log/tor/notices.log;
#   postgresql and redis-server log to /var/log/postgresql and /var/log/redis already.
set -eu
r=$1
packages=$(echo "$2" | tr , ' ')
extra=$3
mount -t proc proc "$r/proc"
trap 'umount "$r/proc"' EXIT
printf '#!/bin/sh\nexit 101\n' > "$r/usr/sbin/policy-rc.d"
chmod 755 "$r/usr/sbin/policy-rc.d"
in_root() { chroot "$r" env DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 "$@"; }
printf '%s\n' "postfix postfix/main_mailer_type select Local only" \
    "postfix postfix/mailname string debian-schema" | in_root debconf-set-selections
in_root apt-get update -q
# shellcheck disable=SC2086 # one word a package
in_root apt-get install -y -q --no-install-recommends $packages
in_root apt-get clean
in_root apt-get install -y -q --no-install-recommends --download-only "$extra"
mkdir -p "$r/root/debs/$extra"
mv "$r"/var/cache/apt/archives/*.deb "$r/root/debs/$extra/"
in_root apt-get clean
rm -f "$r/usr/sbin/policy-rc.d"

cat > "$r/etc/nftables.conf" <<'EOF'
#!/usr/sbin/nft -f
# schema-init's server tier: the table its tests look for in `nft list ruleset`
flush ruleset
table inet schema_test {
	chain input {
		type filter hook input priority 0; policy accept;
	}
}
EOF
if [ -x "$r/lib/systemd/systemd" ]; then
    in_root systemctl enable nftables.service
else
    in_root env DPKG_MAINTSCRIPT_PACKAGE=nftables deb-systemd-helper enable nftables.service
fi
sed -i '1i error_log /var/log/nginx/error.log notice;' "$r/etc/nginx/nginx.conf"
in_root postconf -e maillog_file=/var/log/postfix.log
printf '[mariadbd]\nlog_error = /var/log/mysql/error.log\n' \
    > "$r/etc/mysql/mariadb.conf.d/99-schema-test.cnf"
in_root install -d -o mysql -g adm -m 2750 /var/log/mysql
echo 'Log notice file /var/log/tor/notices.log' >> "$r/etc/tor/torrc"
