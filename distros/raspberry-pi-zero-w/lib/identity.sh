#!/bin/sh
# The device's identity from its board serial, without rebuilding the image:
#   identity.sh serial             the serial (device tree serial-number, else /proc/cpuinfo)
#   identity.sh hostname PATTERN   PATTERN with {serial} = the serial's last 8 hex digits
#   identity.sh name               the host name this device takes (the pattern's)
#   identity.sh machine-id         32 hex digits derived from the serial
#   identity.sh apply              /etc/hostname, the kernel's, /etc/hosts, /etc/machine-id
# The pattern is /etc/schema-board/hostname.pattern (custom.toml [system] hostname),
# else "pizw-{serial}"; a name longer than 63 characters (a pattern from a card the fleet
# tool did not check) falls back to that.  DT_SERIAL, CPUINFO, BOARD_DIR: other files
# (tests use fixtures).
dt=${DT_SERIAL:-/proc/device-tree/serial-number}
board=${BOARD_DIR:-/etc/schema-board}
cpuinfo=${CPUINFO:-/proc/cpuinfo}
default_pattern='pizw-{serial}'
serial() {
    # read once per run (apply): every call after is the value, not five more processes
    [ -z "${serial_read:-}" ] || { printf '%s\n' "$serial_read"; return; }
    s=""
    [ -r "$dt" ] && s=$(tr -d '\000' < "$dt")
    [ -n "$s" ] || s=$(sed -n 's/^Serial[[:space:]]*:[[:space:]]*\([0-9a-fA-F]*\).*/\1/p' "$cpuinfo" | head -n 1)
    s=$(printf '%s' "$s" | tr -cd '0-9a-fA-F' | tr 'A-F' 'a-f')
    printf '%016s\n' "${s:-0}" | tr ' ' 0
}
hostname_of() {
    s=$(serial)
    short=$(printf '%s' "$s" | tail -c 8)
    printf '%s\n' "$1" | sed "s/{serial}/$short/g"
}
host_name() {
    pattern=$(cat "$board/hostname.pattern" 2>/dev/null)
    name=$(hostname_of "${pattern:-$default_pattern}")
    if [ ${#name} -gt 63 ]; then
        echo "identity: $name is longer than 63 characters: $default_pattern instead" >&2
        name=$(hostname_of "$default_pattern")
    fi
    printf '%s\n' "$name"
}
machine_id() {
    printf 'schema-init machine-id %s\n' "$(serial)" | md5sum | cut -c1-32
}
case ${1:-} in
    serial) serial ;;
    hostname) hostname_of "${2:-$default_pattern}" ;;
    name) host_name ;;
    machine-id) machine_id ;;
    apply)
        serial_read=$(serial)       # (on the boot's critical path: seconds in an emulator)
        name=$(host_name)
        printf '%s\n' "$name" > /etc/hostname
        printf '%s' "$name" > /proc/sys/kernel/hostname
        printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n::1\tlocalhost ip6-localhost\n' "$name" > /etc/hosts
        machine_id > /etc/machine-id
        ip link set lo up 2>/dev/null || busybox ip link set lo up
        echo "identity: serial $(serial), host $name, machine-id $(cat /etc/machine-id)"
        [ "$(serial)" = 0000000000000000 ] && echo "identity: no board serial (an emulator?): every such device gets this name"
        exit 0 ;;
    *) echo "usage: $0 serial|hostname PATTERN|name|machine-id|apply" >&2; exit 2 ;;
esac
