"""NOTIFY_SOCKETs against local users (docs/security.md, "notify"): a process of another
uid below a service cannot move its main pid, a flood from another uid costs PID 1 no
/proc read, descriptors passed with a datagram never stay in PID 1, and a re-exec under
a flood keeps the sockets and the services.

The abstract names are listed in /proc/net/unix, so anyone may send: the tests that
need a sender of another uid become nobody (65534) and are skipped when not root.
"""

import array
import os
import re
import socket
import sys
import time

import pytest

from adversary import is_complete, raw_request
from fakes import FakeOps
from schema_init.core import config, graph, notify, supervisor

NOBODY = 65534
DAEMON = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "notify_daemon.py")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="becomes nobody: needs root")


def become_nobody():
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)


# --- who is heard: the credentials first (pure) ------------------------------------------

def test_standing_sorts_senders_by_their_credentials_alone():
    assert notify.standing(50, NOBODY, 50, 0) == notify.MAIN       # a daemon that dropped
    assert notify.standing(51, 0, 50, 1000) == notify.KIN          # root
    assert notify.standing(51, 1000, 50, 1000) == notify.KIN       # the service's own uid
    assert notify.standing(51, NOBODY, 50, 0) == notify.FOREIGN    # a session under sshd
    assert notify.standing(51, 1000, 50, None) == notify.FOREIGN   # user= unknown now
    assert notify.standing(0, 0, 50, 0) == notify.FOREIGN          # no credentials
    assert notify.standing(50, NOBODY, 0, 0) == notify.FOREIGN     # nothing runs


def test_notify_access_widens_or_narrows_who_is_heard_as_systemd_s_notifyaccess():
    # all: a worker that dropped to another user itself (squid's) is KIN, to be checked
    assert notify.standing(51, NOBODY, 50, 0, "all") == notify.KIN
    assert notify.standing(50, NOBODY, 50, 0, "all") == notify.MAIN
    # main: only the main process, not even root's other processes
    assert notify.standing(51, 0, 50, 0, "main") == notify.FOREIGN
    assert notify.standing(50, NOBODY, 50, 0, "main") == notify.MAIN
    # none: nobody
    assert notify.standing(50, 0, 50, 0, "none") == notify.FOREIGN
    assert notify.standing(51, NOBODY, 50, 0, "default") == notify.FOREIGN


def test_mainpid_needs_the_main_process_root_or_the_service_s_uid_on_both_ends():
    def decide(**facts):
        base = dict(notify=True, sender_belongs=True, claimed_belongs=True,
                    sender_main=False, sender_uid=1000, service_uid=1000,
                    claimed_uids=(1000, 1000))
        base.update(facts)
        return notify.decide(notify.Facts(**base), {"MAINPID": "77"})[0][0]
    assert decide() == "mainpid"
    assert decide(claimed_uids=(NOBODY, NOBODY)) == "refuse_mainpid"
    assert decide(claimed_uids=(NOBODY, 1000)) == "refuse_mainpid"      # setuid binary
    assert decide(claimed_uids=None) == "refuse_mainpid"                # gone
    assert decide(claimed_uids=None, sender_main=True) == "mainpid"     # the daemon's word
    assert decide(claimed_uids=None, sender_uid=0) == "mainpid"         # root's
    assert decide(claimed_belongs=False, sender_main=True) == "refuse_mainpid"


class CountingOps(FakeOps):
    """A fake OS in which ``members`` belong to the service, counting membership checks
    (each one reads /proc in the real OS)."""

    def __init__(self, service_uid=0):
        super().__init__()
        self.members = set()
        self.checks = 0
        self.uid = service_uid

    def belongs(self, service, pid):
        self.checks += 1
        return pid == service.pid or pid in self.members

    def service_uid(self, service):
        return self.uid

    def process_uids(self, pid):
        self.checks += 1
        return (NOBODY, NOBODY) if pid >= 9000 else (self.uid, self.uid)


def notify_service(ops):
    spec = config.ServiceSpec(name="sshd", exec="/bin/true", notify=True)
    sup = supervisor.Supervisor(graph.resolve([spec], []), ops, 0.0, 1e9)
    sup.settle(0.0)
    return sup, sup.services["sshd"]


def test_a_session_of_another_uid_cannot_take_the_main_pid():
    ops = CountingOps(service_uid=0)
    sup, sshd = notify_service(ops)
    main = sshd.pid
    ops.members.add(9001)                         # below sshd, but running as nobody
    sup.on_notify("sshd", (9001, NOBODY), b"MAINPID=9001\nREADY=1\nSTATUS=mine", 1.0)
    assert sshd.pid == main and sshd.notify_dropped == 1 and sshd.notify_status == ""
    assert sshd.state != "FUNDAMENTAL" and not sshd.ready_seen
    sup.on_notify("sshd", (main, 0), b"MAINPID=9001", 2.0)        # root's word for it
    assert sshd.pid == 9001


def test_the_service_s_uid_may_hand_over_only_to_its_own_uid():
    ops = CountingOps(service_uid=1000)
    sup, web = notify_service(ops)
    main = web.pid
    ops.members.update({500, 9002})
    sup.on_notify("sshd", (500, 1000), b"MAINPID=9002", 1.0)      # 9002 runs as nobody
    assert web.pid == main and web.notify_dropped == 1
    ops.members.add(600)
    sup.on_notify("sshd", (500, 1000), b"MAINPID=600", 2.0)
    assert web.pid == 600


def test_a_flood_from_another_uid_costs_no_membership_check():
    ops = CountingOps()
    sup, sshd = notify_service(ops)
    for i in range(5000):
        sup.on_notify("sshd", (4000 + i % 50, NOBODY), b"MAINPID=%d\nREADY=1" % i, 1.0)
    assert ops.checks == 0 and sshd.notify_dropped == 5000


def test_a_flood_from_the_service_s_own_uid_costs_a_bounded_number_of_checks():
    ops = CountingOps()
    sup, sshd = notify_service(ops)
    for i in range(5000):                          # root, not of the service: one check each
        sup.on_notify("sshd", (4000 + i % 50, 0), b"READY=1", 1.0 + i / 1e6)
    assert ops.checks <= notify.CHECK_BURST + 1 and sshd.notify_dropped == 5000
    sup.on_notify("sshd", (sshd.pid, 0), b"READY=1", 1.0)        # the main pid: no check
    assert sshd.ready_seen
    before = ops.checks
    sup.on_notify("sshd", (4000, 0), b"READY=1", 3.0)            # refilled after a while
    assert ops.checks == before + 1


# --- the receive path against the real kernel: /proc reads counted ----------------------

class Fds:
    """The loop's table (fdtable.FdTable) as far as NotifySockets uses it."""

    def add(self, fd, handler, *mask):
        pass

    def remove(self, fd):
        pass

    register = add
    unregister = remove


class ProcOps(CountingOps):
    """The real membership test (``notify_socket.belongs``, which reads /proc), the real
    uid lookups; spawns are fake."""

    def belongs(self, service, pid):
        from schema_init.pid1 import notify_socket
        return notify_socket.belongs(pid, service.pid, service.cgroup)

    def process_uids(self, pid):
        from schema_init.pid1 import notify_socket
        return notify_socket.process_uids(pid)


def flood_and_receive(count, sender_setup, monkeypatch, payload=b"MAINPID=1\nREADY=1"):
    """COUNT datagrams from a forked sender (SENDER_SETUP runs in it first) through
    ``NotifySockets.receive`` to ``Supervisor.on_notify``; returns (/proc reads, the
    service, the datagrams received)."""
    from schema_init.pid1 import notify_socket
    reads = []
    real_read = notify_socket._read_proc
    monkeypatch.setattr(notify_socket, "_read_proc",
                        lambda path, limit: reads.append(path) or real_read(path, limit))
    ops = ProcOps(service_uid=0)
    sup, sshd = notify_service(ops)
    sshd.pid = os.getpid()                 # a real main process: this one
    held = notify_socket.NotifySockets(Fds(), "hostile%d" % os.getpid())
    address = "\0" + held.for_service("sshd")[1:]
    fd = list(held.names_by_fd)[0]
    child = os.fork()
    if child == 0:
        try:
            sender_setup()
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                for _ in range(count):
                    sock.sendto(payload, address)     # blocks while the queue is full
        finally:
            os._exit(0)
    got = 0
    deadline = time.monotonic() + 60
    try:
        while got < count and time.monotonic() < deadline:
            name, datagrams = held.receive(fd)
            assert len(datagrams) <= notify_socket.PER_WAKE
            for sender, data in datagrams:
                sup.on_notify(name, sender, data, 1.0)
            got += len(datagrams)
            if not datagrams:
                time.sleep(0.0005)
    finally:
        os.waitpid(child, 0)
        held.release("sshd")
    return reads, sshd, got


@needs_root
def test_a_flood_from_another_uid_makes_no_proc_read(monkeypatch):
    reads, sshd, got = flood_and_receive(500, become_nobody, monkeypatch)
    print("500 datagrams from nobody: %d /proc reads" % len(reads))
    assert got == 500 and sshd.notify_dropped == 500
    assert reads == []


def test_a_flood_from_root_outside_the_service_reads_proc_a_bounded_number_of_times(
        monkeypatch):
    def leave_the_session():
        os.setsid()                        # not in this process's session any more
    reads, sshd, got = flood_and_receive(500, leave_the_session, monkeypatch)
    checks = len([path for path in reads if path.endswith("/stat")])
    print("500 datagrams from a stranger of the service's uid: %d /proc reads" % len(reads))
    assert got == 500 and sshd.notify_dropped >= 500 - notify.CHECK_BURST
    # each check walks the stranger's ancestry (a few reads); never more than the budget
    assert len(reads) <= notify.CHECK_BURST * 12 and checks > 0


class RecordingFds(Fds):
    def __init__(self):
        self.watched = set()

    def add(self, fd, handler, *mask):
        assert fd not in self.watched
        self.watched.add(fd)

    def remove(self, fd):
        self.watched.discard(fd)


def test_a_flooded_notify_socket_is_paused_then_read_again():
    """Past READ_BURST datagrams (and READ_RATE a second) a socket leaves the loop's
    table for READ_PAUSE seconds: a flood costs a bounded number of reads per second,
    and the loop never spins on a socket it does not read."""
    from schema_init.pid1 import notify_socket
    fds = RecordingFds()
    held = notify_socket.NotifySockets(fds, "pause%d" % os.getpid())
    address = "\0" + held.for_service("a")[1:]
    fd = list(held.names_by_fd)[0]
    read = 0
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
            sender.setblocking(False)

            def fill():
                for _ in range(notify_socket.PER_WAKE):
                    try:
                        sender.sendto(b"WATCHDOG=1", address)
                    except BlockingIOError:
                        return
            for _ in range(2000):             # the clock stands still: no refill
                if fd not in fds.watched:
                    break
                fill()
                read += len(held.receive(fd, now=5.0)[1])
                assert read <= notify.READ_BURST
            assert read == notify.READ_BURST
            assert held.next_deadline() == 5.0 + notify.READ_PAUSE
            fill()
            assert held.receive(fd, now=5.0)[1] == []          # paused: nothing read
            held.expire(5.0 + notify.READ_PAUSE / 2)
            assert fd not in fds.watched
            held.expire(5.0 + notify.READ_PAUSE)
            assert fd in fds.watched and held.next_deadline() is None
            again = held.receive(fd, now=5.0 + notify.READ_PAUSE)[1]
            assert 0 < len(again) <= notify.READ_RATE * notify.READ_PAUSE
    finally:
        held.release("a")
    assert fd not in fds.watched and held.paused == {}


def send_descriptors(address, count, each):
    """Fork a process that drops to nobody and sends COUNT ``FDSTORE=1`` datagrams to
    ADDRESS, each carrying EACH descriptors of /dev/null; returns its pid."""
    child = os.fork()
    if child == 0:
        try:
            passed = [os.open("/dev/null", os.O_RDONLY) for _ in range(each)]
            become_nobody()
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                for _ in range(count):
                    sock.sendmsg([b"FDSTORE=1\nFDNAME=x"], [(
                        socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", passed))],
                        0, address)
        finally:
            os._exit(0)
    return child


@needs_root
def test_descriptors_sent_with_datagrams_never_stay_in_the_receiver():
    from schema_init.pid1 import notify_socket
    ops = CountingOps()
    sup, sshd = notify_service(ops)
    held = notify_socket.NotifySockets(Fds(), "fds%d" % os.getpid())
    address = "\0" + held.for_service("sshd")[1:]
    fd = list(held.names_by_fd)[0]
    before = len(os.listdir("/proc/self/fd"))
    child = send_descriptors(address, 500, 8)
    got, most = 0, before
    try:
        while got < 500:
            name, datagrams = held.receive(fd)
            for sender, data in datagrams:
                assert data is None                # dropped unread
                sup.on_notify(name, sender, data, 1.0)
            got += len(datagrams)
            most = max(most, len(os.listdir("/proc/self/fd")))
    finally:
        os.waitpid(child, 0)
        held.release("sshd")
    assert sshd.notify_dropped == 500
    assert most <= before + 1, "descriptors stayed in the receiver: %d -> %d" % (before, most)


# --- a real supervisor (process tier) ----------------------------------------------------

HIJACKER = r'''
import os, socket, sys, time
address = os.environ["NOTIFY_SOCKET"]
address = "\0" + address[1:] if address.startswith("@") else address
ready_r, ready_w = os.pipe()
child = os.fork()
if child == 0:                            # a login session below the daemon
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.sendto(b"MAINPID=%d\nSTATUS=hijacked" % os.getpid(), address)
    os.write(ready_w, b"x")
    while True:
        time.sleep(1000)
os.read(ready_r, 1)
print("MAIN=%d SESSION=%d" % (os.getpid(), child), flush=True)
with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
    s.sendto(b"READY=1\nSTATUS=serving", address)
while True:
    time.sleep(1000)
'''


WORKER = r'''
import os, socket, time
address = os.environ["NOTIFY_SOCKET"]
address = "\0" + address[1:] if address.startswith("@") else address
child = os.fork()
if child == 0:                            # a worker that drops to another user itself
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)
    print("WORKER=%d" % os.getpid(), flush=True)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.sendto(b"READY=1\nSTATUS=worker ready", address)
    while True:
        time.sleep(1000)
while True:
    time.sleep(1000)
'''


@needs_root
@pytest.mark.process
@pytest.mark.parametrize("access", ["all", "default"])
def test_a_worker_of_another_user_is_heard_only_with_notify_access_all(supervise, tmp_path,
                                                                      access):
    """squid (Type=notify, NotifyAccess=all) says READY=1 from a worker that dropped to
    the proxy user: heard with notify_access=all, as under systemd; by default such a
    sender is another user's process and is dropped unread."""
    script = tmp_path / "squid.py"
    script.write_text(WORKER)
    s = supervise({"squid.svc": "exec=%s\nargs=%s\nnotify=1\nnotify_access=%s\n"
                   % (sys.executable, script, access)})
    worker = int(s.wait(lambda: re.search(r"WORKER=(\d+)", s.log("squid")), 10,
                        "the worker").group(1))
    try:
        if access == "all":
            s.wait_state("squid", "FUNDAMENTAL")
            assert s.status()["squid"].get("status") == "worker ready"
        else:
            s.wait(lambda: s.status()["squid"].get("notify_dropped") == "1", 10,
                   "the worker's datagram dropped")
            assert s.state("squid") == "FULL_TRUST"
    finally:
        kill_quietly(worker)


def kill_quietly(pid):
    try:
        os.kill(pid, 9)
    except OSError:
        pass


@needs_root
@pytest.mark.process
def test_a_session_of_another_uid_cannot_make_the_daemon_unsupervisable(supervise, tmp_path):
    script = tmp_path / "sshd.py"
    script.write_text(HIJACKER)
    s = supervise({"sshd.svc": "exec=%s\nargs=%s\nnotify=1\n" % (sys.executable, script)})
    found = s.wait(lambda: re.search(r"MAIN=(\d+) SESSION=(\d+)", s.log("sshd")), 10,
                   "the daemon and its session")
    main, session = int(found.group(1)), int(found.group(2))
    try:
        s.wait_state("sshd", "FUNDAMENTAL")
        before = s.status()["sshd"]
        os.kill(main, 9)                          # the real daemon dies
        s.wait(lambda: "died" in s.events("sshd"), 10, "the death of the real daemon")
        s.wait(lambda: s.events("sshd").count("spawn") == 2, 20, "the restart")
        assert s.status()["sshd"]["pid"] not in (str(main), str(session))
        assert before["pid"] == str(main), before      # the session never was the main pid
        assert before.get("status") == "serving" and before["notify_dropped"] == "1"
    finally:
        kill_quietly(session)
        for other in re.findall(r"SESSION=(\d+)", s.log("sshd")):
            kill_quietly(int(other))


def proc_io(pid):
    """/proc/PID/io as a dict (syscr: read-type system calls; recvmsg is not one)."""
    with open("/proc/%d/io" % pid) as f:
        return {key: int(value) for key, value in (line.split(": ") for line in f)}


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def notify_address(s, name):
    return "\0" + s.wait(lambda: re.search(r"NOTIFY_SOCKET=@(\S+)", s.log(name)), 10,
                         "%s's NOTIFY_SOCKET" % name).group(1)


class Flood:
    """Senders running as nobody, each sending PAYLOAD to ADDRESS as fast as the kernel
    takes it until ``stop`` (which returns how many they sent in all)."""

    def __init__(self, address, senders=1, payload=b"MAINPID=1\nREADY=1\nSTATUS=forged"):
        self.pids = []
        self.counts, counter = os.pipe()
        go, self.running = os.pipe()               # closing ``running`` stops them
        for _ in range(senders):
            pid = os.fork()
            if pid == 0:
                try:
                    os.close(self.counts)
                    os.close(self.running)
                    os.set_blocking(go, False)
                    become_nobody()
                    self.send(address, payload, go, counter)
                finally:
                    os._exit(0)
            self.pids.append(pid)
        os.close(counter)
        os.close(go)

    @staticmethod
    def send(address, payload, go, counter):
        sent = 0
        give_up = time.monotonic() + 120
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.settimeout(0.1)
            while time.monotonic() < give_up:
                for _ in range(64):
                    try:
                        sock.sendto(payload, address)
                        sent += 1
                    except (socket.timeout, BlockingIOError):
                        pass
                    except OSError:
                        time.sleep(0.01)         # the socket is away for a moment
                try:
                    if os.read(go, 1) == b"":
                        break                    # EOF: stop
                except BlockingIOError:
                    pass
        os.write(counter, b"%d\n" % sent)

    def stop(self):
        os.close(self.running)
        for pid in self.pids:
            os.waitpid(pid, 0)
        with os.fdopen(self.counts) as f:
            return sum(int(line) for line in f.read().split())


@needs_root
@pytest.mark.process
def test_a_flood_from_another_uid_costs_the_supervisor_no_file_read_and_few_reads(
        supervise, tmp_path):
    """Three seconds of datagrams from nobody: the supervisor reads no file for them
    (read() calls, /proc/PID/io), takes no more of them than its per-socket budget, and
    another service's READY=1 meanwhile is heard at once."""
    trigger = tmp_path / "go"
    s = supervise({"victim.svc": "exec=%s\nargs=%s\nargs=env\nargs=send=READY=1\nnotify=1\n"
                                 % (sys.executable, DAEMON),
                   "other.svc": "exec=%s\nargs=%s\nargs=wait-file=%s\nargs=send=READY=1\n"
                                "notify=1\n" % (sys.executable, DAEMON, trigger)})
    address = notify_address(s, "victim")
    s.wait_state("victim", "FUNDAMENTAL")
    main = s.status()["victim"]["pid"]
    time.sleep(0.3)
    io_before, cpu_before = proc_io(s.proc.pid), cpu_seconds(s.proc.pid)
    started = time.monotonic()
    flood = Flood(address)
    time.sleep(1.5)
    trigger.write_text("")                    # the other service's READY=1, mid-flood
    s.wait_state("other", "FUNDAMENTAL", timeout=3)
    time.sleep(1.5)
    io_after, cpu_after = proc_io(s.proc.pid), cpu_seconds(s.proc.pid)
    taken = int(s.status()["victim"].get("notify_dropped", 0))
    elapsed = time.monotonic() - started
    sent = flood.stop()
    reads = io_after["syscr"] - io_before["syscr"]
    print("flood from nobody, %.1f s: %d datagrams sent, %d taken; supervisor read() "
          "calls %d, CPU %.2f s" % (elapsed, sent, taken, reads, cpu_after - cpu_before))
    # the code before the fix read /proc/PID/stat of the sender and its ancestors for
    # every datagram (several read() calls each) and took every datagram it could
    assert reads < 40, reads                  # the status requests' own, at most
    assert taken <= notify.READ_BURST + notify.READ_RATE * elapsed + 64, taken
    assert taken >= notify.READ_BURST         # it was heard, and refused
    status = s.status()["victim"]
    assert status["state"] == "FUNDAMENTAL" and status["pid"] == main
    assert status.get("status") != "forged"


@needs_root
@pytest.mark.process
def test_datagrams_with_descriptors_leave_none_in_the_supervisor(supervise, tmp_path):
    s = supervise({"victim.svc": "exec=%s\nargs=%s\nargs=env\nargs=send=READY=1\nnotify=1\n"
                                 % (sys.executable, DAEMON)})
    address = notify_address(s, "victim")
    s.wait_state("victim", "FUNDAMENTAL")
    fds = "/proc/%d/fd" % s.proc.pid
    time.sleep(0.3)
    before = len(os.listdir(fds))
    child = send_descriptors(address, 500, 16)
    most = before
    while os.waitpid(child, os.WNOHANG) == (0, 0):
        most = max(most, len(os.listdir(fds)))
        time.sleep(0.005)
    s.wait(lambda: int(s.status()["victim"].get("notify_dropped", 0)) >= 500, 20,
           "the 500 datagrams dropped")
    s.wait(lambda: len(os.listdir(fds)) == before, 5, "the supervisor's fd count back")
    print("500 datagrams x 16 descriptors: supervisor fds %d before, at most %d during"
          % (before, most))
    assert most <= before + 2          # a control connection at most, never 16 more


def notify_inode(address):
    for line in open("/proc/net/unix").read().splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 8 and fields[7] == "@" + address[1:]:
            return int(fields[6])
    return None


@needs_root
@pytest.mark.process
def test_reexec_during_a_flood_keeps_the_notify_sockets_and_the_services(supervise, tmp_path):
    trigger = tmp_path / "go"
    s = supervise({"keep.svc": "exec=%s\nargs=%s\nargs=env\nargs=send=READY=1\n"
                               "args=wait-file=%s\nargs=send=STATUS=after the re-exec\n"
                               "notify=1\n" % (sys.executable, DAEMON, trigger),
                   "steady.svc": "exec=/bin/sleep\nargs=1000\nstable_secs=0\n"})
    address = notify_address(s, "keep")
    s.wait_state("keep", "FUNDAMENTAL")
    s.wait_state("steady", "FUNDAMENTAL")
    before = {name: s.status()[name]["pid"] for name in ("keep", "steady")}
    inode = s.wait(lambda: notify_inode(address), 10, "the socket in /proc/net/unix")
    flood = Flood(address)
    try:
        time.sleep(0.5)
        assert s.ctl("reexec").stdout.startswith("ok")
        s.wait(lambda: "resumed:" in s.console_text(), 30, "the re-exec")
        s.wait(lambda: s.ctl("status").returncode == 0, 30, "the control socket")
        time.sleep(0.5)
        reply, error, _ = raw_request(s.socket, b"status --kv\n", 10)
        assert error is None and is_complete(reply)
    finally:
        flood.stop()
    assert notify_inode(address) == inode          # the same socket, still bound
    status = s.status()
    assert {name: status[name]["pid"] for name in before} == before
    assert status["keep"]["state"] == "FUNDAMENTAL"
    trigger.write_text("")                         # the daemon is still heard
    s.wait(lambda: s.status()["keep"].get("status") == "after the re-exec", 10,
           "STATUS= after the re-exec")
    assert s.status()["keep"]["pid"] == before["keep"]
