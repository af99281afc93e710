"""Issue 21's server tier (make test-debian-servers): a Debian 12 root with postgresql,
mariadb-server, redis-server, nginx, postfix, tor and nftables as Debian installs them
(build/mkdebian.sh FLAVOUR=servers: sysvinit-core's root, schema-init's .deb, the daemons'
own systemd units imported by PID 1), booted in QEMU (TCG) with init=/usr/sbin/schema-init.

Checked over SSH, each daemon by its own client or protocol: psql's `select 1`,
`mysqladmin ping`, `redis-cli ping`, nginx's HTTP 200 on port 80, postfix's 220 banner on
port 25, tor's SOCKS5 answer on 9050; `nft list ruleset` has /etc/nftables.conf's table;
installing memcached (dpkg -i of its .deb in /root/debs/memcached: its maintainer scripts
as apt-get runs them) while running starts it;
`systemctl restart` gives each a new main process, `reload` keeps it and the daemon logs
the reload (a unit without ExecReload= is refused, as systemd does), `stop` closes its
port; and on a fresh disk, `poweroff` stops each its own way, read in the daemon's own
log on the powered-off disk: postgresql's ExecStop (pg_ctlcluster -m fast: "fast
shutdown", a plain SIGTERM is "smart"), nginx's (start-stop-daemon --retry QUIT/5:
SIGQUIT, not SIGTERM), postfix's (postmulti -p stop: postfix-script's "stopping"), tor's
KillSignal=SIGINT ("Interrupt", not "TERM"), mariadb's and redis's SIGTERM waited for to
their clean exit; then e2fsck -fn.

DEBIAN_SERVERS_INIT=systemd runs the same checks on the reference (FLAVOUR=servers-systemd
booted by systemd), which shows they pass on a machine that does it right.  Boot-to-ports
times of both: bench/debian_servers_bench.py.
"""

import os
import re
import subprocess
import time

import pytest

import debian_vm
from conftest import ROOT
import vm as vmlib

pytestmark = pytest.mark.debian_servers

INITS = {"schema-init": ("servers", "/usr/sbin/schema-init"),
         "systemd": ("servers-systemd", "/lib/systemd/systemd")}
INIT = os.environ.get("DEBIAN_SERVERS_INIT", "schema-init")
MEMORY = 1024
SIZE_MB = 3072
# Seconds from QEMU's start within which every daemon must answer (TCG, 2 shared cores:
# the reference answers in about a third of it).
BOOT_BOUND = float(os.environ.get("DEBIAN_SERVERS_BOOT_BOUND", "300"))


def bash_tcp(port, send, read):
    """A shell test of a TCP answer: connect, send SEND (printf's escapes), print READ."""
    return ("timeout 5 bash -c 'exec 3<>/dev/tcp/127.0.0.1/%d; printf \"%s\" >&3; %s <&3'"
            % (port, send, read))


# Each daemon's own client or protocol; a shell condition true when it answers.
# Each has a timeout: a socket held open by PID 1 for a daemon that never started
# accepts a connection and then says nothing.
PROBES = {
    "postgresql": "[ \"$(timeout 10 su postgres -c \"psql -Atc 'select 1'\")\" = 1 ]",
    "mariadb": "timeout 10 mysqladmin --connect-timeout=5 ping | grep -q 'is alive'",
    "redis": "[ \"$(timeout 5 redis-cli ping)\" = PONG ]",
    "nginx": bash_tcp(80, r"GET / HTTP/1.0\r\n\r\n", "head -n 1") + " | grep -q '^HTTP/1.1 200'",
    "postfix": bash_tcp(25, "", "head -n 1") + " | grep -q '^220 .*ESMTP Postfix'",
    "tor": bash_tcp(9050, r"\005\001\000", "head -c 2") + " | od -An -tx1 | grep -q '05 00'",
}
NFT = "timeout 10 nft list ruleset | grep -q '^table inet schema_test {'"
MEMCACHED = bash_tcp(11211, r"version\r\n", "head -n 1") + " | grep -q '^VERSION '"

# unit, main pid, and what the daemon logs when reloaded (None: no ExecReload=, refused)
DAEMONS = {
    "postgresql": ("postgresql", "head -n 1 /var/lib/postgresql/15/main/postmaster.pid",
                   ("/var/log/postgresql/postgresql-15-main.log",
                    "received SIGHUP, reloading configuration files")),
    "mariadb": ("mariadb", "pidof mariadbd", None),
    "redis": ("redis-server", "pidof redis-server", None),
    "nginx": ("nginx", "cat /run/nginx.pid",
              ("/var/log/nginx/error.log", "signal 1 (SIGHUP) received")),
    "postfix": ("postfix", "cat /var/spool/postfix/pid/master.pid",
                ("/var/log/postfix.log", "refreshing the Postfix mail system")),
    "tor": ("tor", "pidof tor", ("/var/log/tor/notices.log", "Received reload signal (hup)")),
}

# What each daemon's own stop leaves in its log (build/mkdebian-servers.sh points the logs
# at files), and what a plain SIGTERM would have left instead.
STOPS = {
    # ExecStop=pg_ctlcluster -m fast stop: SIGINT; SIGTERM would be "smart shutdown"
    "postgresql": ("/var/log/postgresql/postgresql-15-main.log",
                   "received fast shutdown request"),
    # no ExecStop=: KillSignal=SIGTERM, SendSIGKILL=no, TimeoutStopSec=900: a clean end
    "mariadb": ("/var/log/mysql/error.log", "Shutdown complete"),
    # no ExecStop=: SIGTERM, then redis saves and says goodbye (SIGKILL says nothing)
    "redis": ("/var/log/redis/redis-server.log", "ready to exit, bye bye"),
    # ExecStop=start-stop-daemon --quiet --stop --retry QUIT/5: a graceful SIGQUIT
    "nginx": ("/var/log/nginx/error.log", "signal 3 (SIGQUIT) received"),
    # ExecStop=postmulti -i - -p stop: postfix-script logs it before signalling master
    "postfix": ("/var/log/postfix.log", "stopping the Postfix mail system"),
    # no ExecStop=: KillSignal=SIGINT, "Catching signal TERM" were it SIGTERM
    "tor": ("/var/log/tor/notices.log", "Interrupt: exiting cleanly"),
}


def make_image(path, flavour):
    """A fresh disk of the servers root (made, or taken from build/tmp/debian's cache)."""
    subprocess.run([os.path.join(ROOT, "build", "mkdebian.sh"), path, str(SIZE_MB)],
                   check=True, env=dict(os.environ, FLAVOUR=flavour), timeout=1800)
    return path


def boot(directory, init=INIT):
    flavour, program = INITS[init]
    os.makedirs(str(directory), exist_ok=True)
    disk = make_image(os.path.join(str(directory), "servers.img"), flavour)
    return debian_vm.DebianVM(directory, init=program, memory=MEMORY, image=disk).start()


def probe(v, condition, timeout=60):
    try:
        return v.ssh("(%s) >/dev/null 2>&1" % condition, timeout=timeout).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def answering(v):
    """{name: seconds from QEMU's start} of the PROBES (and "nft") answering now, run
    at once in one SSH round trip.  Each probe stamps the guest's uptime when it
    answered; the host's clock when the round trip came back, against the guest's
    uptime when the last probe ended, turns those into seconds from QEMU's start (a
    little late by the way back)."""
    script = " ".join(
        "( if (%s) >/dev/null 2>&1; then echo OK:%s $(cut -d' ' -f1 /proc/uptime); fi ) &"
        % (condition, name) for name, condition in dict(PROBES, nft=NFT).items())
    try:
        out = v.ssh(script + " wait; echo END $(cut -d' ' -f1 /proc/uptime)",
                    timeout=120).stdout
    except subprocess.TimeoutExpired:
        return {}
    back = time.monotonic() - v.started
    end = re.search(r"^END ([\d.]+)$", out, re.M)
    if not end:
        return {}
    offset = back - float(end.group(1))
    return {name: float(uptime) + offset
            for name, uptime in re.findall(r"^OK:(\S+) ([\d.]+)$", out, re.M)}


def wait_until(v, condition, seconds, want=True):
    """Poll CONDITION (a shell test) until it is WANT; True when it was within SECONDS."""
    deadline = time.monotonic() + seconds
    while True:
        if probe(v, condition) == want:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(1)


def diagnosis(v, name=None):
    """What to show when a check fails: PID 1's view of the daemon (schema-init: its
    services' states, its rail and log lines; systemd: systemctl status) and the
    daemon's own log."""
    unit = DAEMONS[name][0] if name in DAEMONS else name or "nftables"
    script = (
        "if [ -S /run/schema-init.sock ]; then"
        " schema-ctl status 2>&1 | grep -v 'warning:' | grep -i -e '^  %(u)s' -e '^[^ ]';"
        " cat /var/log/schema-init/rail.log /run/log/schema-init/rail.log 2>/dev/null |"
        " grep ' %(u)s[-@ ]' | tail -n 8;"
        " for f in /var/log/schema-init/%(u)s*.log; do echo \"-- $f\"; tail -n 8 \"$f\"; done;"
        " else systemctl --no-pager status '%(u)s*' 2>&1 | tail -n 20; fi" % {"u": unit})
    text = "--- PID 1:\n" + v.ssh(script, timeout=60).stdout[-3000:]
    if name in STOPS:
        text += "--- %s:\n" % STOPS[name][0] + v.ssh("tail -n 10 %s" % STOPS[name][0],
                                                    timeout=60).stdout
    return text


def main_pid(v, name):
    """The daemon's main process, alive (postfix leaves its master.pid behind)."""
    out = v.ssh("for p in $(%s); do kill -0 $p && echo $p; done" % DAEMONS[name][1]
                ).stdout.split()
    return int(out[0]) if len(out) == 1 and out[0].isdigit() else None


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    """One machine for the checks of a running system: booted, SSH answering."""
    v = boot(tmp_path_factory.mktemp("running"))
    try:
        v.wait_ssh(BOOT_BOUND)
        yield v
    finally:
        v.kill()
        print("console: %s" % v.console_path)


@pytest.mark.parametrize("name", sorted(PROBES))
def test_each_daemon_answers_after_boot(running, name):
    left = BOOT_BOUND - (time.monotonic() - running.started)
    assert wait_until(running, PROBES[name], max(left, 5)), (
        "%s does not answer %d s after QEMU's start\n%s" % (name, BOOT_BOUND,
                                                            diagnosis(running, name)))


def test_nft_list_ruleset_has_the_table_of_etc_nftables_conf(running):
    left = BOOT_BOUND - (time.monotonic() - running.started)
    if not wait_until(running, NFT, max(left, 5)):
        raise AssertionError("no table inet schema_test in `nft list ruleset`:\n%s\n%s" % (
            running.ssh("nft list ruleset 2>&1").stdout, diagnosis(running)))


def test_installing_memcached_while_running_starts_it(running):
    assert not probe(running, MEMCACHED), "memcached answers before it is installed"
    # dpkg -i: offline (apt-get would fetch the same version from the mirror, reachable
    # through QEMU's user networking); the maintainer scripts are the same either way
    done = running.ssh("DEBIAN_FRONTEND=noninteractive dpkg -i /root/debs/memcached/*.deb",
                       timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert wait_until(running, MEMCACHED, 60), (
        "memcached installed but not answering on 11211 within 60 s:\n%s\n%s" % (
            done.stdout[-1500:] + done.stderr[-1500:], diagnosis(running, "memcached")))


@pytest.mark.parametrize("name", sorted(DAEMONS))
def test_systemctl_restart_gives_a_new_main_process_that_answers(running, name):
    before = main_pid(running, name)
    assert before, "%s has no main process before the restart\n%s" % (
        name, diagnosis(running, name))
    done = running.ssh("systemctl restart %s" % DAEMONS[name][0], timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr + diagnosis(running, name)
    assert wait_until(running, PROBES[name], 60), (
        "%s does not answer within 60 s of the restart\n%s" % (name, diagnosis(running, name)))
    after = main_pid(running, name)
    assert after and after != before, (name, before, after, diagnosis(running, name))


@pytest.mark.parametrize("name", sorted(DAEMONS))
def test_systemctl_reload_keeps_the_main_process(running, name):
    unit, _, logged = DAEMONS[name]
    before = main_pid(running, name)
    assert before, "%s has no main process before the reload\n%s" % (
        name, diagnosis(running, name))
    if logged is None:
        # no ExecReload=: systemd says "Job type reload is not applicable" and leaves it be
        done = running.ssh("systemctl reload %s" % unit, timeout=300)
        assert done.returncode != 0, "reload of %s (no ExecReload=) accepted: %s" % (
            unit, done.stdout + done.stderr)
    else:
        path, line = logged
        count = "grep -cF %s %s" % (shell_quote(line), path)
        old = int(running.ssh(count).stdout.strip() or 0)
        done = running.ssh("systemctl reload %s" % unit, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr + diagnosis(running, name)
        deadline = time.monotonic() + 30
        while int(running.ssh(count).stdout.strip() or 0) <= old:
            assert time.monotonic() < deadline, "%s did not log %r after `systemctl reload " \
                "%s`\n%s" % (name, line, unit, diagnosis(running, name))
            time.sleep(1)
    assert probe(running, PROBES[name]), "%s stopped answering after the reload" % name
    assert main_pid(running, name) == before, (name, before, main_pid(running, name))


@pytest.mark.parametrize("name", sorted(DAEMONS))
def test_systemctl_stop_closes_its_port_and_start_opens_it(running, name):
    unit = DAEMONS[name][0]
    assert probe(running, PROBES[name]), "%s does not answer before the stop\n%s" % (
        name, diagnosis(running, name))
    done = running.ssh("systemctl stop %s" % unit, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr + diagnosis(running, name)
    deadline = time.monotonic() + 60
    while main_pid(running, name) is not None:
        assert time.monotonic() < deadline, "%s still runs 60 s after `systemctl stop " \
            "%s`\n%s" % (name, unit, diagnosis(running, name))
        time.sleep(1)
    if name not in SOCKET_ACTIVATED:
        assert not probe(running, PROBES[name]), "%s answers after `systemctl stop %s`" % (
            name, unit)
    done = running.ssh("systemctl start %s" % unit, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr + diagnosis(running, name)
    assert wait_until(running, PROBES[name], 60), (
        "%s does not answer within 60 s of `systemctl start %s`\n%s" % (
            name, unit, diagnosis(running, name)))


# mariadb.socket (enabled by the package) keeps /run/mysqld/mysqld.sock and 3306 open
# after `systemctl stop mariadb`, as systemd does: a probe would start it again.
SOCKET_ACTIVATED = {"mariadb"}


def shell_quote(text):
    return "'" + text.replace("'", "'\\''") + "'"


@pytest.fixture(scope="module")
def powered_off(tmp_path_factory):
    """A fresh machine booted until every daemon answers (or the bound), powered off
    over SSH: {"text": console, "fsck": e2fsck -fn, "logs": {name: what the log got
    after the boot}} read off the disk."""
    v = boot(tmp_path_factory.mktemp("poweroff"))
    try:
        v.wait_ssh(BOOT_BOUND)
        while set(PROBES) - set(answering(v)) and time.monotonic() - v.started < BOOT_BOUND:
            time.sleep(2)
        sizes = {}
        for name, (path, _) in STOPS.items():
            size = v.ssh("stat -c %%s %s" % path).stdout.strip()
            sizes[name] = int(size) if size.isdigit() else 0
        v.ssh("poweroff")
        text = v.finish(600)
    finally:
        v.kill()
    logs = {}
    for name, (path, _) in STOPS.items():
        logs[name] = vmlib.read_file(v.disk, path)[sizes[name]:]
    return {"text": text, "fsck": debian_vm.fsck_clean(v.disk), "logs": logs}


def test_poweroff_powers_down_and_leaves_the_disk_clean(powered_off):
    assert vmlib.POWER_DOWN in powered_off["text"], powered_off["text"][-4000:]
    check = powered_off["fsck"]
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.parametrize("name", sorted(STOPS))
def test_poweroff_stops_each_daemon_its_own_way(powered_off, name):
    path, line = STOPS[name]
    got = powered_off["logs"][name]
    assert line in got, "%s: no %r in what %s got at the power-off:\n%s" % (
        name, line, path, got[-2000:] or "(nothing)")
