"""Real Debian daemons supervised by a real schema-init (not PID 1), run from the Debian
root the Debian VM tier builds (build/mkdebian.sh, cached in build/tmp/debian/root) by
chroot: Debian's rsyslogd takes /dev/log's stand-in from schema-init by socket activation
(LISTEN_FDS), serves it, and nothing sent to it while it restarts is lost; Debian's sshd,
dbus-daemon and rsyslogd supervised with notify=1 are promoted by their own READY=1 (sent
by libsystemd to the abstract NOTIFY_SOCKET, reachable from the chroot), and the tests
print when they served and when they said so (run with -s to see it)."""

import os
import subprocess
import time
import uuid

import pytest

from conftest import ROOT
from harness import Supervised

pytestmark = pytest.mark.debian

DEBIAN_ROOT = os.path.join(ROOT, "build", "tmp", "debian", "root")


@pytest.fixture(scope="module")
def debian_root(tmp_path_factory):
    """The Debian tier's root: made (about a minute, once) if this checkout has none."""
    if not os.path.exists(os.path.join(DEBIAN_ROOT, "usr", "sbin", "rsyslogd")):
        image = tmp_path_factory.mktemp("root") / "debian.img"
        subprocess.run([os.path.join(ROOT, "build", "mkdebian.sh"), str(image)], check=True,
                       timeout=900)
        image.unlink()
    return DEBIAN_ROOT


def logged(path, text, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path):
            with open(path, errors="replace") as f:
                if text in f.read():
                    return True
        time.sleep(0.05)
    return False


def test_rsyslogd_takes_its_socket_from_schema_init_and_loses_nothing_on_restart(
        debian_root, tmp_path):
    tag = uuid.uuid4().hex[:8]
    sock = str(tmp_path / "log")            # a host path: rsyslogd, in the chroot, cannot
    inside = "/tmp/schema-test-%s" % tag     # bind it itself, only take it from LISTEN_FDS
    out = os.path.join(debian_root, inside.lstrip("/") + ".out")
    conf = os.path.join(debian_root, inside.lstrip("/") + ".conf")
    with open(conf, "w") as f:
        f.write('module(load="imuxsock" SysSock.Name="%s")\n'
                '*.* action(type="omfile" file="%s.out")\n' % (sock, inside))
    s = Supervised(tmp_path, {"rsyslog.svc": (
        "exec=/usr/sbin/chroot\nargs=%s\nargs=/usr/sbin/rsyslogd\nargs=-n\nargs=-iNONE\n"
        "args=-f\nargs=%s.conf\nlisten=dgram:%s\nstable_secs=1\n" % (debian_root, inside,
                                                                       sock))})
    try:
        s.start()
        s.wait_state("rsyslog", "FUNDAMENTAL")
        subprocess.run(["logger", "-u", sock, "first %s" % tag], check=True)
        assert logged(out, "first %s" % tag), s.log("rsyslog")
        # stopped: the datagram waits in schema-init's socket; started: it is written
        s.ctl("stop", "rsyslog")
        s.wait_state("rsyslog", ("EXCISED", "PERFECT", "DORMANT"))
        subprocess.run(["logger", "-u", sock, "while down %s" % tag], check=True)
        assert not logged(out, "while down %s" % tag, timeout=0.5)
        s.ctl("start", "rsyslog")
        assert logged(out, "while down %s" % tag), s.log("rsyslog")
    finally:
        s.stop()
        for path in (out, conf):
            if os.path.exists(path):
                os.unlink(path)


# --- sd_notify: promoted by their own READY=1, not by a guess -----------------------------

def boot_clock():
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def started_at(pid):
    """A process's start, on the boot clock (from /proc/PID/stat, in clock ticks)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[19]) / os.sysconf("SC_CLK_TCK")


def promotion_after_start(s, name):
    """Seconds from the supervisor's start to NAME's promotion (`timing`, in ms): the
    service is spawned in the first turn of the loop, so this is spawn -> READY=1 within
    the millisecond a fork takes."""
    for line in s.ctl("timing").stdout.splitlines()[1:]:
        if line.split()[0] == name:
            return float(line.split()[1].rstrip("s"))
    raise AssertionError("no timing for %s" % name)


def startup_window(s, name, listening, timeout=30.0):
    """Watch the service until it is FUNDAMENTAL: (serving, promoted) in seconds after
    its spawn, and the states seen meanwhile.  ``listening`` is polled every millisecond
    in a thread (the instant a ready_path or a port probe would have promoted it); its
    time after the spawn is known to /proc's clock tick (10 ms)."""
    import threading
    from adversary import raw_request
    served = []
    done = threading.Event()

    def probe():
        while not done.is_set():
            if listening():
                served.append(boot_clock())
                return
            time.sleep(0.001)
    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    seen, pid = [], 0
    try:
        while time.monotonic() < deadline:
            reply, error, _ = raw_request(s.socket, b"status --kv\n", 5)
            text = reply.decode(errors="replace")
            state = pid_text = None
            for line in text.splitlines():
                if line.startswith("service.%s.state=" % name):
                    state = line.split("=", 1)[1]
                elif line.startswith("service.%s.pid=" % name):
                    pid_text = line.split("=", 1)[1]
            if pid_text and pid_text != "0":
                pid = int(pid_text)
            seen.append(state)
            if state == "FUNDAMENTAL":
                thread.join(5)
                spawned = started_at(pid)
                serving = served[0] - spawned if served else None
                return serving, promotion_after_start(s, name), seen
            assert state in ("NEW_PROCESS", "FULL_TRUST", None), (state, s.log(name))
            time.sleep(0.003)
    finally:
        done.set()
    raise AssertionError("%s never FUNDAMENTAL; log:\n%s\nconsole:\n%s"
                         % (name, s.log(name), s.console_text()[-3000:]))


def report_window(name, serving, promoted, guess, guess_at):
    """One line: when it served, when it said READY=1, and how early (or late) a guess
    promoting at ``guess_at`` (seconds after the spawn) would have been."""
    early = (promoted - guess_at) * 1000
    print("%-9s spawn +0 ms, serving +%d ms, READY=1 (promotion) +%d ms; %s: %d ms %s"
          % (name, serving * 1000, promoted * 1000, guess, abs(early),
             "early" if early >= 0 else "late"))


def assert_promoted_by_ready_only(s, name, serving, seen):
    assert serving is not None                         # it did serve
    assert seen[-1] == "FUNDAMENTAL" and "FUNDAMENTAL" not in seen[:-1]
    assert s.events(name) == ["spawn", "promote"]     # stable_secs=3600: by READY=1


def free_port():
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_sshd_is_promoted_by_its_ready_not_by_stable_secs(debian_root, tmp_path):
    """Debian's sshd -D says READY=1 (libsystemd) once it listens: the reference set's
    stable_secs=2 guess would promote it two seconds after the spawn, whatever it did;
    notify=1 promotes it when it says so (stable_secs=3600 here proves it is not that)."""
    import socket
    port = free_port()
    os.makedirs(os.path.join(debian_root, "run", "sshd"), exist_ok=True)
    s = Supervised(tmp_path, {"ssh.svc": (
        "exec=/usr/sbin/chroot\nargs=%s\nargs=/usr/sbin/sshd\nargs=-D\nargs=-e\nargs=-p\n"
        "args=%d\nargs=-o\nargs=ListenAddress=127.0.0.1\nargs=-o\nargs=PidFile=none\n"
        "notify=1\nstable_secs=3600\nkill_mode=process\n" % (debian_root, port))})

    def listening():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            return False
    try:
        s.start()
        serving, promoted, seen = startup_window(s, "ssh", listening)
        report_window("sshd", serving, promoted, "stable_secs=0", 0)
        report_window("sshd", serving, promoted, "stable_secs=2 (distros/debian)", 2)
        assert_promoted_by_ready_only(s, "ssh", serving, seen)
        assert "notify_dropped" not in s.status()["ssh"]
    finally:
        s.stop()


def test_dbus_daemon_is_promoted_by_its_ready_not_by_its_socket(debian_root, tmp_path):
    """dbus-daemon --nofork (a session bus with its config in the root's /tmp) sends
    READY=1 once it serves; its socket file, what a ready_path= guess watches, appears
    before that."""
    tag = uuid.uuid4().hex[:8]
    inside = "/tmp/schema-test-%s" % tag
    conf = os.path.join(debian_root, inside.lstrip("/") + ".conf")
    bus = os.path.join(debian_root, inside.lstrip("/") + ".bus")
    with open(conf, "w") as f:
        f.write('<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration '
                '1.0//EN" "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">\n'
                '<busconfig><type>session</type><listen>unix:path=%s.bus</listen>'
                '<auth>EXTERNAL</auth><policy context="default"><allow send_destination="*"/>'
                '<allow own="*"/></policy></busconfig>\n' % inside)
    s = Supervised(tmp_path, {"dbus.svc": (
        "exec=/usr/sbin/chroot\nargs=%s\nargs=/usr/bin/dbus-daemon\nargs=--config-file=%s.conf\n"
        "args=--nofork\nargs=--nopidfile\nnotify=1\nstable_secs=3600\n" % (debian_root, inside))})
    try:
        s.start()
        serving, promoted, seen = startup_window(s, "dbus", lambda: os.path.exists(bus))
        report_window("dbus", serving, promoted, "ready_path= on its socket", serving)
        assert_promoted_by_ready_only(s, "dbus", serving, seen)
    finally:
        s.stop()
        for path in (conf, bus):
            if os.path.exists(path):
                os.unlink(path)


def test_rsyslogd_is_promoted_by_its_ready_not_by_dev_log(debian_root, tmp_path):
    """rsyslogd -n sends READY=1 when its inputs and outputs are set up; the reference
    set's ready_path=/dev/log guess would promote it as soon as it bound the socket."""
    tag = uuid.uuid4().hex[:8]
    inside = "/tmp/schema-test-%s" % tag
    sock = os.path.join(debian_root, inside.lstrip("/") + ".log")
    out = os.path.join(debian_root, inside.lstrip("/") + ".out")
    conf = os.path.join(debian_root, inside.lstrip("/") + ".conf")
    with open(conf, "w") as f:
        f.write('module(load="imuxsock" SysSock.Name="%s.log")\n'
                '*.* action(type="omfile" file="%s.out")\n' % (inside, inside))
    s = Supervised(tmp_path, {"rsyslog.svc": (
        "exec=/usr/sbin/chroot\nargs=%s\nargs=/usr/sbin/rsyslogd\nargs=-n\nargs=-iNONE\n"
        "args=-f\nargs=%s.conf\nnotify=1\nstable_secs=3600\n" % (debian_root, inside))})
    try:
        s.start()
        serving, promoted, seen = startup_window(s, "rsyslog", lambda: os.path.exists(sock))
        report_window("rsyslogd", serving, promoted, "ready_path=/dev/log (distros/debian)",
                      serving)
        assert_promoted_by_ready_only(s, "rsyslog", serving, seen)
        subprocess.run(["logger", "-u", sock, "ready %s" % tag], check=True)
        assert logged(out, "ready %s" % tag), s.log("rsyslog")
    finally:
        s.stop()
        for path in (out, conf, sock):
            if os.path.exists(path):
                os.unlink(path)
