#!/bin/sh
# Wi-Fi: brcmfmac (udev loads it for the SDIO chip; firmware-brcm80211's 43430 files and the
# Zero W board file are in /lib/firmware/brcm), then wpa_supplicant with the first-boot
# file's networks (several, with priorities, hidden ones, WPA-Enterprise: the file
# schema-firstboot wrote).  Without the chip (QEMU's raspi0 has none) or a network, it
# says why and stops.
#   wifi.sh supplicant | dhcp
# dhcp: an address by DHCP (busybox udhcpc), or the static one of the first-boot file
# ([schema-init.network] -> /etc/schema-board/wlan0.network: address, gateway4,
# gateway6, nameserver lines), kept until the service stops.  With static IPv6 only,
# IPv4 still comes from DHCP.
# WLAN_SYS, WPA_CONF, STATIC_NET, RESOLV_CONF, WIFI_WAIT: other places and waits (tests).
conf=${WPA_CONF:-/etc/wpa_supplicant/wpa_supplicant-wlan0.conf}
static=${STATIC_NET:-/etc/schema-board/wlan0.network}
resolv=${RESOLV_CONF:-/etc/resolv.conf}
wlan=${WLAN_SYS:-/sys/class/net/wlan0}
modprobe -q brcmfmac 2>/dev/null
# 10 s by the clock, however slow the board is while it boots (the service is promoted
# only after 30 s: a board without the chip never looks as if it had Wi-Fi)
up() { cut -d. -f1 /proc/uptime; }
end=$(( $(up) + ${WIFI_WAIT:-10} ))
while [ ! -e "$wlan" ] && [ "$(up)" -lt $end ]; do sleep 0.2; done
if [ ! -e "$wlan" ]; then
    echo "wifi: no wlan0: brcmfmac found no Wi-Fi chip on this board (an emulator has none)" >&2
    exit 1
fi
# ip through busybox: the image has no iproute2
ip_() { busybox ip "$@"; }
# a route, tried for 30 s: the gateway is reachable once the address is on a link that is up
route_add() {
    n=0
    until ip_ "$@" 2>/dev/null; do
        n=$((n + 1))
        if [ $n -ge 30 ]; then
            echo "wifi: ip $* failed" >&2
            return 1
        fi
        sleep 1
    done
}
static_address() {
    v4=no; gw4=""; gw6=""; servers=""
    ip_ link set wlan0 up
    while read -r kind value; do
        case $kind in
            address)
                ip_ addr add "$value" dev wlan0 && echo "wifi: static address $value"
                case $value in *:*) ;; *) v4=yes ;; esac ;;
            gateway4) gw4=$value ;;
            gateway6) gw6=$value ;;
            nameserver) servers="$servers $value" ;;
            ''|'#'*) ;;
            *) echo "wifi: $static: unknown line: $kind" >&2 ;;
        esac
    done < "$static"
    [ -z "$gw4" ] || route_add route add default via "$gw4" dev wlan0
    [ -z "$gw6" ] || route_add -6 route add default via "$gw6" dev wlan0
    if [ -n "$servers" ]; then
        for server in $servers; do echo "nameserver $server"; done > "$resolv.new" &&
            mv "$resolv.new" "$resolv"
    fi
}
case ${1:-} in
    supplicant)
        if [ ! -s "$conf" ]; then
            echo "wifi: no network configured (custom.toml [wlan] ssid, password, country)" >&2
            exit 1
        fi
        exec wpa_supplicant -i wlan0 -D nl80211 -c "$conf" ;;
    dhcp)
        if [ -s "$static" ]; then
            static_address
            if [ "$v4" = yes ]; then
                trap 'ip_ addr flush dev wlan0; exit 0' TERM
                while :; do sleep 3600 & wait $!; done
            fi
        fi
        exec udhcpc -f -i wlan0 -S -x "hostname:$(cat /proc/sys/kernel/hostname)" ;;
esac
echo "usage: $0 supplicant|dhcp" >&2
exit 2
