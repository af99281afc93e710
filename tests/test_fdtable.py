"""The loop's one table of file descriptors (schema_init/pid1/fdtable.py).

The runtime's ``dispatch`` is a lookup in a table its fds' owners fill: each owner
(the runtime's signalfd, readywatch, the control server, the listen= sockets, the
NOTIFY_SOCKETs) adds an fd with its handler when it opens it and removes it before
closing it; the epoll set and the table are changed together, in one place.
"""

import ast
import os
import socket

import pytest

from conftest import ROOT
from schema_init.pid1 import _fastloop, control, fdtable, notify_socket, readywatch, runtime, \
    sockets


class FakeLoop:
    """The epoll set as ``_fastloop.Loop`` keeps it: fd -> mask (EEXIST on a second add)."""

    def __init__(self):
        self.registered = {}

    def register(self, fd, mask=_fastloop.READABLE):
        if fd in self.registered:
            raise OSError(17, "File exists")
        self.registered[fd] = mask

    def modify(self, fd, mask):
        if fd not in self.registered:
            raise OSError(2, "No such file or directory")
        self.registered[fd] = mask

    def unregister(self, fd):
        self.registered.pop(fd, None)


def in_step(fds):
    """The epoll set and the table name the same fds."""
    return set(fds.loop.registered) == set(fds.handlers)


def test_a_registered_handler_gets_its_fd_s_events():
    fds = fdtable.FdTable(FakeLoop())
    calls = []
    fds.add(42, lambda *args: calls.append(args))
    assert fds.loop.registered == {42: _fastloop.READABLE}
    fds.dispatch(42, _fastloop.READABLE, 1.5, 1e9)
    assert calls == [(42, _fastloop.READABLE, 1.5, 1e9)]
    fds.modify(42, _fastloop.WRITABLE)
    assert fds.loop.registered == {42: _fastloop.WRITABLE} and 42 in fds.handlers
    fds.remove(42)
    assert fds.loop.registered == {} and fds.handlers == {}
    fds.remove(42)                                 # twice: nothing
    assert fds.strays == 0


def test_an_unknown_fd_is_ignored_and_counted():
    fds = fdtable.FdTable(FakeLoop())
    calls = []
    fds.add(5, lambda *args: calls.append(args))
    fds.dispatch(6, _fastloop.READABLE, 1.0, 1e9)
    fds.remove(5)
    fds.dispatch(5, _fastloop.READABLE, 1.0, 1e9)  # removed earlier in the same wake-up
    assert calls == [] and fds.strays == 2


def test_a_refused_registration_records_no_handler():
    fds = fdtable.FdTable(FakeLoop())
    fds.add(7, lambda *args: None)
    with pytest.raises(OSError):
        fds.add(7, lambda *args: None)
    fds.remove(7)
    assert in_step(fds) and fds.handlers == {}


def test_the_runtime_s_dispatch_is_a_lookup_in_its_table(tmp_path):
    rt = runtime.Runtime({"services": str(tmp_path), "run_dir": str(tmp_path)})
    rt.fds = fdtable.FdTable(FakeLoop())
    calls = []
    rt.fds.add(9, lambda *args: calls.append(args))
    rt.dispatch(9, _fastloop.WRITABLE, 3.0, 2e9)
    rt.dispatch(10, _fastloop.READABLE, 3.0, 2e9)
    assert calls == [(9, _fastloop.WRITABLE, 3.0, 2e9)] and rt.fds.strays == 1
    # no chain of fd kinds comes back: dispatch asks nothing about the fd itself
    tree = ast.parse(open(os.path.join(ROOT, "schema_init", "pid1", "runtime.py")).read())
    [method] = [node for node in ast.walk(tree)
                if isinstance(node, ast.FunctionDef) and node.name == "dispatch"]
    assert not [node for node in ast.walk(method) if isinstance(node, (ast.If, ast.Compare))]


def test_only_the_table_registers_fds_with_the_loop():
    """Registration and the table cannot drift apart: no other module of pid1 calls the
    loop's register, modify or unregister."""
    pid1 = os.path.join(ROOT, "schema_init", "pid1")
    found = []
    for name in sorted(os.listdir(pid1)):
        if not name.endswith(".py") or name == "fdtable.py":
            continue
        tree = ast.parse(open(os.path.join(pid1, name)).read())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                    node.func.attr in ("register", "unregister", "modify"):
                owner = node.func.value
                # .fds: the table; .poller: loader.UnitImport's own one-fd poller of the
                # import helper's pipe (a Loop of its own, never the runtime's).
                if not (isinstance(owner, ast.Attribute) and owner.attr in ("fds", "poller")):
                    found.append("%s:%d" % (name, node.lineno))
    assert found == []


# --- each owner adds its fds with their handler, and removes them -------------------------

def test_the_control_server_keeps_its_listening_fd_and_clients_in_the_table(tmp_path):
    fds = fdtable.FdTable(FakeLoop())
    asked = []

    def handle(request, uid, now, wall):
        asked.append((request, uid, now, wall))
        return ["ok: " + request]
    server = control.Server(str(tmp_path / "ctl.sock"), fds, handle)
    try:
        assert set(fds.handlers) == {server.fd} and in_step(fds)
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.connect(str(tmp_path / "ctl.sock"))
        fds.dispatch(server.fd, _fastloop.READABLE, 1.0, 1e9)         # accept
        [client_fd] = set(fds.handlers) - {server.fd}
        assert in_step(fds) and fds.loop.registered[client_fd] == _fastloop.READABLE
        client.sendall(b"status\n")
        fds.dispatch(client_fd, _fastloop.READABLE, 2.0, 2e9)         # the request
        assert asked == [("status", os.getuid(), 2.0, 2e9)]
        client.settimeout(5)
        assert client.recv(100).startswith(b"ok: status")
        client.close()
        fds.dispatch(client_fd, _fastloop.READABLE, 3.0, 3e9)         # gone: dropped
        assert set(fds.handlers) == {server.fd} and in_step(fds)
    finally:
        server.close()
    assert fds.handlers == {} and in_step(fds)


def test_the_control_server_leaves_the_table_while_accepting_is_paused(tmp_path):
    fds = fdtable.FdTable(FakeLoop())
    server = control.Server(str(tmp_path / "ctl.sock"), fds, lambda *args: [])
    server._pause(1.0)
    assert fds.handlers == {} and in_step(fds)
    server.expire(1.0 + control.ACCEPT_PAUSE)
    assert set(fds.handlers) == {server.fd} and in_step(fds)
    server._pause(2.0)
    server.close()                                # closed while paused
    assert fds.handlers == {} and in_step(fds)


def test_watched_listen_sockets_say_a_connection_with_their_service_s_name():
    fds = fdtable.FdTable(FakeLoop())
    connections = []
    held = sockets.Sockets(fds, lambda name, now: connections.append((name, now)))
    try:
        [sock] = held.for_service("web", [("tcp", ("127.0.0.1", 0))], 0o666)
        assert fds.handlers == {}                  # made, not watched yet
        held.watch("web")
        assert set(fds.handlers) == {sock.fileno()} and in_step(fds)
        fds.dispatch(sock.fileno(), _fastloop.READABLE, 4.0, 4e9)
        assert connections == [("web", 4.0)]
        held.unwatch("web")
        assert fds.handlers == {} and in_step(fds)
        held.watch("web")
    finally:
        held.release("web")                        # release unwatches too
    assert fds.handlers == {} and in_step(fds)


def test_notify_sockets_hand_each_datagram_on_with_their_service_s_name():
    fds = fdtable.FdTable(FakeLoop())
    heard = []
    held = notify_socket.NotifySockets(fds, "fdt%d" % os.getpid(),
                                       lambda name, sender, data, now:
                                       heard.append((name, data, now)))
    try:
        address = "\0" + held.for_service("n")[1:]
        [fd] = fds.handlers
        assert in_step(fds)
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
            sender.sendto(b"READY=1", address)
            sender.sendto(b"STATUS=up", address)
        fds.dispatch(fd, _fastloop.READABLE, 5.0, 5e9)
        assert heard == [("n", b"READY=1", 5.0), ("n", b"STATUS=up", 5.0)]
    finally:
        held.release("n")
    assert fds.handlers == {} and in_step(fds)


def test_the_ready_watcher_says_which_services_to_look_at(tmp_path):
    fds = fdtable.FdTable(FakeLoop())
    changes = []
    watcher = readywatch.ReadyWatcher(fds, lambda names, now: changes.append((names, now)))
    try:
        assert set(fds.handlers) == {watcher.fd} and in_step(fds)
        watcher.watch("a", str(tmp_path / "ready"))
        (tmp_path / "ready").write_text("")
        fds.dispatch(watcher.fd, _fastloop.READABLE, 6.0, 6e9)
        assert changes == [({"a"}, 6.0)]
    finally:
        os.close(watcher.fd)
