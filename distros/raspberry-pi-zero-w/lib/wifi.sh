#!/bin/sh
# Wi-Fi: brcmfmac (udev loads it for the SDIO chip; firmware-brcm80211's 43430 files and the
# Zero W board file are in /lib/firmware/brcm), then wpa_supplicant with custom.toml's
# network.  Without the chip (QEMU's raspi0 has none) or a network, it says why and stops.
#   wifi.sh supplicant | dhcp
conf=/etc/wpa_supplicant/wpa_supplicant-wlan0.conf
modprobe -q brcmfmac 2>/dev/null
# 10 s by the clock, however slow the board is while it boots (the service is promoted
# only after 30 s: a board without the chip never looks as if it had Wi-Fi)
up() { cut -d. -f1 /proc/uptime; }
end=$(( $(up) + 10 ))
while [ ! -e /sys/class/net/wlan0 ] && [ "$(up)" -lt $end ]; do sleep 0.2; done
if [ ! -e /sys/class/net/wlan0 ]; then
    echo "wifi: no wlan0: brcmfmac found no Wi-Fi chip on this board (an emulator has none)" >&2
    exit 1
fi
case ${1:-} in
    supplicant)
        if [ ! -s "$conf" ]; then
            echo "wifi: no network configured (custom.toml [wlan] ssid, password, country)" >&2
            exit 1
        fi
        exec wpa_supplicant -i wlan0 -D nl80211 -c "$conf" ;;
    dhcp) exec udhcpc -f -i wlan0 -S -x "hostname:$(cat /proc/sys/kernel/hostname)" ;;
esac
echo "usage: $0 supplicant|dhcp" >&2
exit 2
