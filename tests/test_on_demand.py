"""listen_on_demand=1 (a service started by its first connection or datagram) and listen=
sockets kept across `schema-ctl reexec`: the decisions with a fake OS (plain calls), the
socket hand-over in one process, and real sockets, real clients, a real re-exec."""

import os
import socket
import sys
import time

import pytest

from fakes import FakeOps
from schema_init.core import config, graph, handover, schema, supervisor
from schema_init.pid1 import sockets

SERVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "listen_server.py")
TCP = (("tcp", ("127.0.0.1", 8080)),)


# --- the decisions (fake OS) -------------------------------------------------------------

class DemandOps(FakeOps):
    def __init__(self):
        super().__init__()
        self.watching = set()
        self.watch_calls = 0
        self.refuse = False

    def watch_listen(self, service):
        if self.refuse:
            raise OSError("listen=tcp:127.0.0.1:8080: Address already in use")
        self.watch_calls += 1
        self.watching.add(service.name)

    def unwatch_listen(self, name):
        self.watching.discard(name)


def make(**keys):
    ops = DemandOps()
    spec = config.ServiceSpec(name="web", exec="/bin/true", listen=TCP, listen_on_demand=True,
                              stable_secs=0, **keys)
    sup = supervisor.Supervisor(graph.resolve([spec], []), ops, 0.0, 1e9)
    sup.settle(0.0)
    return sup, ops, sup.services["web"]


def test_not_spawned_at_boot_but_waiting_on_its_sockets():
    sup, ops, web = make()
    assert web.state == schema.NEW_PROCESS and ops.spawned == []
    assert ops.watching == {"web"} and web.reason == "waiting for a connection"
    assert sup.next_deadline() is None                     # no polling: the loop sleeps
    sup.on_connection("web", 5.0)
    assert ops.watching == set()                           # not watched while it runs
    sup.settle(5.0)
    assert [name for name, _, _ in ops.spawned] == ["web"]
    assert web.state == schema.FUNDAMENTAL and not web.demanded
    sup.on_connection("web", 6.0)                          # a stray event changes nothing
    sup.settle(6.0)
    assert len(ops.spawned) == 1


def test_an_idle_exit_waits_again_without_a_failure():
    sup, ops, web = make()
    sup.on_connection("web", 1.0)
    sup.settle(1.0)
    sup.on_exit(web.pid, 0, 2.0)
    assert web.state == schema.RECOVERY and web.failures == 0 and web.reason == "exited 0 (idle)"
    sup.on_due(2.0, 1e9)
    sup.settle(2.0)
    assert web.state == schema.NEW_PROCESS and ops.watching == {"web"}
    assert len(ops.spawned) == 1
    assert ("web", "idle-exit") in ops.rails


def test_a_failing_run_counts_and_then_waits_again():
    sup, ops, web = make()
    sup.on_connection("web", 1.0)
    sup.settle(1.0)
    sup.on_exit(web.pid, 256, 2.0)
    assert web.state == schema.RECOVERY and web.failures == 1
    sup.on_due(web.due, 1e9)
    sup.settle(web.due or 3.0)
    assert web.state == schema.NEW_PROCESS and ops.watching == {"web"}


def test_stop_while_waiting_unwatches():
    sup, ops, web = make()
    sup.cmd_stop("web", 1.0)
    assert web.state == schema.EXCISED and ops.watching == set()
    sup.cmd_start("web", 2.0)
    sup.settle(2.0)
    assert web.state == schema.NEW_PROCESS and ops.watching == {"web"} and not ops.spawned


def test_sockets_that_cannot_be_made_fail_through_the_spawn():
    ops = DemandOps()
    ops.refuse = True
    spec = config.ServiceSpec(name="web", exec="/bin/true", listen=TCP, listen_on_demand=True)
    sup = supervisor.Supervisor(graph.resolve([spec], []), ops, 0.0, 1e9)
    sup.settle(0.0)
    assert [name for name, _, _ in ops.spawned] == ["web"]   # the spawn then names it


def test_listen_on_demand_needs_listen_lines():
    spec, diags = config.parse_service("/s/a.svc", b"exec=/bin/true\nlisten_on_demand=1\n")
    assert spec.listen_on_demand is False
    assert [d.format() for d in diags] == [
        "/s/a.svc:2: warning: listen_on_demand: needs listen= lines (a socket to wait on); "
        "ignored"]
    spec, diags = config.parse_service("/s/a.svc", b"exec=/bin/true\nlisten=tcp:80\n"
                                       b"listen_on_demand=1\n")
    assert spec.listen_on_demand is True and diags == []


# --- sockets across exec, in one process -----------------------------------------------------

class FakeLoop:
    def __init__(self):
        self.fds = set()

    def register(self, fd, mask=1):
        self.fds.add(fd)

    def unregister(self, fd):
        self.fds.discard(fd)


class Record:
    def __init__(self, spec):
        self.spec = spec


def test_handover_lines_carry_the_listen_sockets():
    spec = config.ServiceSpec(name="web", exec="/bin/true")
    sup = supervisor.Supervisor(graph.resolve([spec], []), FakeOps(), 0.0, 1e9)
    text = handover.handover_text(sup, -1, 0, None, [("web", 7, "tcp:127.0.0.1:80", 0o666,
                                                      "", "www")])
    assert handover.parse_handover(text.encode())["listen"] == [
        ("web", 7, "tcp:127.0.0.1:80", 0o666, "", "www")]


def test_kept_sockets_are_taken_back_only_for_an_alike_spec(tmp_path):
    path = str(tmp_path / "a.sock")
    listen = (("unix-stream", path), ("udp", ("127.0.0.1", 0)))
    spec = config.ServiceSpec(name="a", exec="/bin/true", listen=listen)
    before = sockets.Sockets(FakeLoop())
    made = before.for_service("a", spec.listen, spec.socket_mode)
    kept = before.keep_across_exec()
    assert [k[0] for k in kept] == ["a", "a"]
    assert all(os.get_inheritable(sock.fileno()) for sock in made)
    # the successor gets copies of the descriptors (an exec would keep the numbers)
    handed = [(n, os.dup(fd), d, m, u, g) for n, fd, d, m, u, g in kept]
    after = sockets.Sockets(FakeLoop())
    after.adopt(handed, {"a": Record(spec)})
    taken = after.for_service("a", spec.listen, spec.socket_mode)
    assert [sock.fileno() for sock in taken] == [h[1] for h in handed]
    assert not any(os.get_inheritable(sock.fileno()) for sock in taken)
    assert os.fstat(taken[0].fileno()).st_ino == os.fstat(made[0].fileno()).st_ino
    # changed lines: the handed descriptors are closed, not adopted
    other = [(n, os.dup(fd), d, m, u, g) for n, fd, d, m, u, g in kept]
    changed = sockets.Sockets(FakeLoop())
    changed.adopt(other, {"a": Record(spec.replace(socket_mode=0o600))})
    assert changed.held == {}
    for entry in other:
        with pytest.raises(OSError):
            os.fstat(entry[1])
    before.close_on_exec()
    assert not any(os.get_inheritable(sock.fileno()) for sock in made)
    for sock in made + taken:
        sock.close()


def test_a_listen_option_changed_across_reexec_makes_the_socket_anew(tmp_path):
    """The options after a listen= address are part of what is compared: a socket kept
    across a re-exec is taken back only with the same mode=/user=/group=/ipv6only."""
    path = str(tmp_path / "o.sock")
    with_mode = (("unix-stream", path, (("mode", 0o600),)),)
    spec = config.ServiceSpec(name="o", exec="/bin/true", listen=with_mode)
    before = sockets.Sockets(FakeLoop())
    made = before.for_service("o", spec.listen, spec.socket_mode)
    assert os.stat(path).st_mode & 0o777 == 0o600
    kept = before.keep_across_exec()
    assert kept[0][2] == "stream:%s mode=0600" % path
    handed = [(n, os.dup(fd), d, m, u, g) for n, fd, d, m, u, g in kept]
    same = sockets.Sockets(FakeLoop())
    same.adopt(handed, {"o": Record(spec)})
    assert list(same.held) == ["o"]
    other = [(n, os.dup(fd), d, m, u, g) for n, fd, d, m, u, g in kept]
    changed = sockets.Sockets(FakeLoop())
    changed.adopt(other, {"o": Record(spec.replace(
        listen=(("unix-stream", path, (("mode", 0o660),)),)))})
    assert changed.held == {}
    for sock in made + same.held["o"][1]:
        sock.close()


# --- real sockets ------------------------------------------------------------------------

def ask(path, timeout=20.0):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
        c.settimeout(timeout)
        c.connect(path)
        data = b""
        while not data.endswith(b"\n"):
            chunk = c.recv(200)
            if not chunk:
                break
            data += chunk
    return data.decode().split(" ", 3)


def switches(pid):
    for line in open("/proc/%d/status" % pid):
        if line.startswith("voluntary_ctxt_switches"):
            return int(line.split()[1])


@pytest.mark.process
def test_the_first_connection_starts_the_service(supervise, tmp_path):
    path = str(tmp_path / "web.sock")
    s = supervise({"web.svc": "exec=%s\nargs=%s\nlisten=%s\nlisten_on_demand=1\n"
                   "stable_secs=0\n" % (sys.executable, SERVER, path)})
    s.wait(lambda: s.status().get("web", {}).get("reason") == "waiting for a connection", 10,
           "web waiting")
    assert os.path.exists(path) and s.status()["web"]["pid"] == "0"
    time.sleep(0.3)
    before = switches(s.proc.pid)                  # waiting costs no wake-up
    time.sleep(1.5)
    assert switches(s.proc.pid) - before == 0
    assert s.events("web") == []                   # never spawned
    pid, count, names, _ = ask(path)               # this connection starts it
    assert (count, names) == ("1", "web")
    assert s.status()["web"]["pid"] == pid
    assert s.events("web")[:2] == ["connection", "spawn"]
    assert ask(path)[0] == pid                      # served by the same daemon


@pytest.mark.process
def test_a_datagram_starts_it_and_an_idle_exit_waits_for_the_next(supervise, tmp_path):
    path = str(tmp_path / "in.sock")
    out = tmp_path / "got"
    script = ("import socket; s = socket.socket(fileno=3); "
              "open(%r, 'ab').write(s.recv(100) + b'\\n')" % str(out))
    s = supervise({"once.svc": "exec=%s\nargs=-c\nargs=%s\nlisten=dgram:%s\n"
                   "listen_on_demand=1\nstable_secs=0\n" % (sys.executable, script, path)})
    s.wait(lambda: os.path.exists(path), 10, "the socket")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as c:
        c.sendto(b"first", path)
        s.wait(lambda: out.exists() and out.read_bytes() == b"first\n", 10, "first read")
        s.wait(lambda: s.status()["once"].get("reason") == "waiting for a connection", 10,
               "waiting again after its idle exit")
        c.sendto(b"second", path)
        s.wait(lambda: out.read_bytes() == b"first\nsecond\n", 10, "second read")
    assert s.events("once").count("spawn") == 2
    assert "died" not in s.events("once")


@pytest.mark.process
def test_listen_sockets_and_their_backlog_survive_reexec(supervise, tmp_path):
    path = str(tmp_path / "web.sock")
    s = supervise({"web.svc": "exec=%s\nargs=%s\nlisten=%s\nstable_secs=0\n"
                   % (sys.executable, SERVER, path)})
    s.wait_state("web", "FUNDAMENTAL")
    first = ask(path)[0]
    s.ctl("stop", "web")
    s.wait_state("web", "EXCISED")
    assert s.ctl("reexec").stdout.startswith("ok")
    s.wait(lambda: "resumed:" in s.console_text(), 20, "the re-exec")
    s.wait(lambda: s.ctl("status").returncode == 0, 20, "the control socket")
    waiting = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    waiting.settimeout(20)
    waiting.connect(path)                  # the kept socket: queued, not refused
    s.ctl("start", "web")
    reply = waiting.recv(200).decode().split(" ")
    waiting.close()
    assert reply[0] != first and reply[1] == "1"


@pytest.mark.process
def test_an_on_demand_service_still_waits_after_reexec(supervise, tmp_path):
    path = str(tmp_path / "lazy.sock")
    s = supervise({"lazy.svc": "exec=%s\nargs=%s\nlisten=%s\nlisten_on_demand=1\n"
                   "stable_secs=0\n" % (sys.executable, SERVER, path)})
    s.wait(lambda: s.status().get("lazy", {}).get("reason") == "waiting for a connection",
           10, "lazy waiting")
    inode = os.stat(path).st_ino
    assert s.ctl("reexec").stdout.startswith("ok")
    s.wait(lambda: "resumed:" in s.console_text(), 20, "the re-exec")
    s.wait(lambda: s.status().get("lazy", {}).get("reason") == "waiting for a connection",
           20, "lazy waiting again")
    pid, count, _, _ = ask(path)
    assert count == "1" and s.status()["lazy"]["pid"] == pid
    assert os.stat(path).st_ino == inode          # the same socket file: never remade
    assert s.events("lazy")[:2] == ["connection", "spawn"]
