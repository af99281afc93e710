"""Debian VM tier (make test-debian): a stock Debian 12 root, the host's kernel and
initramfs-tools initrd, init=/usr/sbin/schema-init, services/debian.

Every test ends with the VM powered off (or rebooted) and `e2fsck -fn` clean.
"""

import os
import re
import time

import pytest

import debian_vm
from conftest import started_each
import vm as vmlib

pytestmark = pytest.mark.debian


@pytest.fixture
def debian(tmp_path):
    yield from started_each(
        lambda count, **kwargs: debian_vm.DebianVM(tmp_path / ("vm%d" % count), **kwargs))


def states(v):
    out = v.ssh("schema-ctl status").stdout
    return {m.group(1): (m.group(3), int(m.group(2))) for m in
            re.finditer(r"^  (\S+)\s+pid=(\d+)\s+state=(\S+)", out, re.M)}


def settled(v, timeout=60):
    """Wait until every service is FUNDAMENTAL or PERFECT; returns the states."""
    deadline = time.monotonic() + timeout
    while True:
        now = states(v)
        if now and all(state in ("FUNDAMENTAL", "PERFECT") for state, _ in now.values()):
            return now
        if time.monotonic() > deadline:
            raise AssertionError("not settled: %r\n%s" % (now, v.text()[-3000:]))
        time.sleep(1)


def powered_off_clean(v, typed="poweroff", serial=False):
    """``typed`` at the serial shell (logged in) or else over SSH; then e2fsck -fn."""
    if serial:
        v.type(typed)
    else:
        v.ssh(typed)
    text = v.finish(180)
    assert vmlib.POWER_DOWN in text or vmlib.RESTART in text, text[-3000:]
    check = debian_vm.fsck_clean(v.disk)
    assert check.returncode == 0, check.stdout + check.stderr
    return text


def test_boots_to_ssh_and_serial_login_every_service_up_then_poweroff_clean(debian):
    v = debian()
    seconds = v.wait_ssh()
    now = settled(v)
    assert set(now) >= {"udev", "udev-trigger", "check-root", "mount-all", "rsyslog", "dbus",
                        "cron", "ssh", "networking", "getty@ttyS0", "boot-record"}
    assert "system boot" in v.ssh("who -b").stdout
    assert v.ssh("runlevel").stdout == "N 5\n"
    assert v.ssh("ls /dev/disk/by-uuid | wc -l").stdout.strip() != "0", "udev coldplugged"
    environ = v.ssh("tr '\\0' '\\n' < /proc/$(pidof cron)/environ").stdout.split("\n")
    assert "LANG=C.UTF-8" in environ and not any(e.startswith(("rootmnt=", "init="))
                                                 for e in environ), environ
    assert v.ssh("test -d /run/systemd/system").returncode == 0, "systemctl is ours: claimed"
    network_ready_once_up(v)
    boot_views(v)
    v.login_serial()
    v.type("schema-ctl status | grep -c FUNDAMENTAL; echo SERIAL-$((40+2))")
    v.wait_for("SERIAL-42", 30)
    text = powered_off_clean(v, serial=True)
    assert "[schema-init] PID 1 poweroff" in text
    print("QEMU start -> sshd answering: %.1f s" % seconds)


def network_ready_once_up(v):
    """networking is ready (as Debian's networking.service) only once every auto
    interface is up: after dhclient wrote eth0's lease, not a guessed second after its
    spawn. And its hooks ran without an error: if-up.d/mountnfs asks `systemctl
    list-jobs`, which once answered "Too few arguments." three times a boot."""
    out = v.ssh("read up _ < /proc/uptime; echo $up $(date +%s.%N) "
                "$(date -r /var/lib/dhcp/dhclient.eth0.leases +%s.%N); "
                "schema-ctl timing --kv | grep '^service.networking.ready='; "
                "cat /var/log/schema-init/networking.log", check=True).stdout.splitlines()
    uptime, wall, lease = (float(word) for word in out[0].split())
    ready = float(out[1].split("=", 1)[1])
    leased = lease - (wall - uptime)                  # the lease's moment on PID 1's clock
    assert ready >= leased - 0.05, (ready, leased, out)
    assert not any("Too few arguments" in line or "networking:" in line for line in out[2:]), \
        out[2:]


def boot_views(v):
    """The boot as PID 1 recorded it, read in the guest: `schema-ctl blame` names every
    service that became ready, `critical-chain ssh` starts at ssh, `plot` is an SVG with a
    bar per service.  BOOT_VIEWS_OUT=DIR keeps them (docs/debian-boot.svg and
    docs/debian-boot.txt in the README are a run of this)."""
    import xml.etree.ElementTree as ET
    blame = v.ssh("schema-ctl blame", check=True).stdout
    chain = v.ssh("schema-ctl critical-chain ssh", check=True).stdout
    svg = v.ssh("schema-ctl plot", check=True).stdout
    named = {line.split()[-1] for line in blame.splitlines() if line.strip()}
    assert {"udev", "rsyslog", "ssh", "cron"} <= named, blame
    assert any(line.startswith("ssh @") for line in chain.splitlines()), chain
    root = ET.fromstring(svg)
    text = " ".join(t.text or "" for t in root.iter() if t.tag.endswith("text"))
    assert all(name in text for name in ("udev", "ssh", "rsyslog")), text[:500]
    out = os.environ.get("BOOT_VIEWS_OUT")
    if out:
        with open(os.path.join(out, "debian-boot.svg"), "w") as f:
            f.write(svg)
        with open(os.path.join(out, "debian-boot.txt"), "w") as f:
            f.write("$ schema-ctl blame\n%s\n$ schema-ctl critical-chain ssh\n%s" % (
                blame, chain))


def test_an_allow_hotplug_interface_comes_up(debian):
    """Debian's installer writes `allow-hotplug` for the first NIC. udev's ifupdown-hotplug
    then asks `systemctl start ifup@eth0.service` (/run/systemd/system exists), which
    schema-init has no instance of: networking brings it up itself, after the settle."""
    v = debian()
    v.wait_ssh()
    v.ssh("sed -i 's/^auto eth0$/allow-hotplug eth0/' /etc/network/interfaces", check=True)
    assert "allow-hotplug eth0" in v.ssh("cat /etc/network/interfaces").stdout
    powered_off_clean(v)
    again = debian(image=v.disk)
    again.wait_ssh()
    assert "inet 10.0.2.15/" in again.ssh("ip -4 addr show eth0", check=True).stdout
    network_ready_once_up(again)
    powered_off_clean(again)


def test_reboot_typed_in_a_shell(debian):
    v = debian()
    v.login_serial()
    text = powered_off_clean(v, "reboot", serial=True)
    assert "shutting down (reboot)" in text and vmlib.RESTART in text
    assert vmlib.POWER_DOWN not in text


RAIL_LINE = re.compile(r"^\[[\d:]+\] (\S+)\s+(\S+)\s+state=\S+\s+wt=\d+\s+pid=(\d+)$", re.M)


def test_killed_rsyslog_and_dbus_are_respawned_once_after_the_first_cooldown_and_ready(debian):
    """kill -9: after the old process's promotion the rail shows one death, one retry
    (so the first cooldown, schedule.respawn_cooldown(1) = 1 s: tests/test_schedule.py),
    one spawn and that new process promoted by its ready_path; the socket is there
    again.  How many seconds it takes: bench/debian_boot_bench.py."""
    v = debian()
    v.wait_ssh()
    before = settled(v)
    for service, program, socket in (("rsyslog", "rsyslogd", "/dev/log"),
                                     ("dbus", "dbus-daemon", "/run/dbus/system_bus_socket")):
        t0 = time.monotonic()
        assert v.ssh("kill -9 %d" % before[service][1]).returncode == 0
        while True:
            state, pid = states(v)[service]
            if state == "FUNDAMENTAL" and pid not in (0, before[service][1]):
                break
            assert time.monotonic() - t0 < 30, (service, state, pid)
            time.sleep(0.2)
        assert v.ssh("test -S %s" % socket).returncode == 0
        rails = v.ssh("cat /var/log/schema-init/rail.log /run/log/schema-init/rail.log "
                      "2>/dev/null").stdout
        events = [(event, int(p)) for name, event, p in RAIL_LINE.findall(rails)
                  if name == service]
        assert events[-5:] == [("promote", before[service][1]), ("died", 0), ("retry", 0),
                               ("spawn", pid), ("promote", pid)], events[-12:]
    powered_off_clean(v)


def test_reinstalling_cron_restarts_it_with_a_new_pid(debian):
    """dpkg runs cron's maintainer scripts: deb-systemd-invoke/invoke-rc.d call systemctl."""
    v = debian()
    v.wait_ssh()
    first = settled(v)["cron"][1]
    done = v.ssh("dpkg -i /root/debs/cron_*.deb", timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    deadline = time.monotonic() + 30
    while states(v)["cron"][1] in (0, first):
        assert time.monotonic() < deadline, "cron was not restarted:\n" + done.stdout
        time.sleep(0.5)
    powered_off_clean(v)


def test_single_gives_sulogin_before_any_service_then_boots(debian):
    v = debian(append="single")
    v.wait_for("single-user mode (kernel command line)", 180)
    v.wait_for("Control-D", 60)
    assert "spawn" not in v.text().split("single-user mode", 1)[1]
    v.type("")                                  # root has no password in the test image
    v.wait_for("root@(none):~#", 30)           # typed earlier, bash's start would drop it
    v.type("echo SINGLE-SHELL-$((6*7)); exit")
    v.wait_for("SINGLE-SHELL-42", 30)
    v.wait_for("single-user shell ended: booting", 30)
    v.wait_ssh()
    settled(v)
    v.ssh("poweroff")
    text = v.finish(180)
    assert vmlib.POWER_DOWN in text
    assert debian_vm.fsck_clean(v.disk).returncode == 0


def test_a_root_booted_ro_is_checked_then_made_read_write(debian):
    v = debian(append="ro")
    v.wait_ssh()
    settled(v)
    # / was read-only when the logs opened: they are in /run/log/schema-init
    log = v.ssh("cat /var/log/schema-init/check-root.log /run/log/schema-init/check-root.log "
                "2>/dev/null").stdout
    assert re.search(r"check-root: /dev/vda checked \(0\), now read-write", log), log
    assert v.ssh("touch /var/tmp/written && echo ok").stdout == "ok\n"
    assert "/ left read-only (ro on the kernel command line)" in v.text()
    v.ssh("poweroff")
    text = v.finish(180)
    assert vmlib.POWER_DOWN in text
    assert debian_vm.fsck_clean(v.disk).returncode == 0


def test_the_power_button_powers_off_cleanly(debian):
    """QEMU's system_powerdown is the ACPI power button; schema-powerkey hears it."""
    v = debian()
    v.wait_ssh()
    settled(v)
    rollup = v.ssh("cat /proc/$(pidof schema-powerkey)/smaps_rollup").stdout
    sizes = dict(re.findall(r"^(Rss|Private_Dirty):\s+(\d+) kB", rollup, re.M))
    # the C helper, not the interpreter: its own memory (RssAnon) a small part of what
    # the interpreter of PID 1 holds (the kB: bench/debian_boot_bench.py)
    anon = {who: int(re.search(r"^RssAnon:\s+(\d+) kB", v.ssh(
        "cat /proc/%s/status" % pid).stdout, re.M).group(1))
        for who, pid in (("powerkey", "$(pidof schema-powerkey)"), ("pid1", "1"))}
    assert anon["powerkey"] * 10 < anon["pid1"], anon
    v.monitor("system_powerdown")
    text = v.finish(180)
    assert "shutting down (poweroff)" in text and vmlib.POWER_DOWN in text
    assert debian_vm.fsck_clean(v.disk).returncode == 0
    print("schema-powerkey: Rss %s kB, Private_Dirty %s kB" % (sizes["Rss"],
                                                              sizes["Private_Dirty"]))
