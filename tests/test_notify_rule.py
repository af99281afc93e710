"""Who gets a NOTIFY_SOCKET: one rule (``config.wants_notify_socket``), asked by the
spawn, by a re-exec's adoption in the core and by ``notify_socket``'s adoption."""

import ast
import os
import socket

import pytest

from conftest import ROOT
from fakes import FakeOps
from schema_init.core import config, graph, schema, supervisor


def spec(**keys):
    return config.ServiceSpec(name="a", exec="/bin/true", **keys)


@pytest.mark.parametrize("keys, wanted", [
    ({"notify": True}, True),                    # READY=1 promotes it
    ({"watchdog_sec": 5}, True),                 # WATCHDOG=1 pets it
    ({"notify": True, "watchdog_sec": 5}, True),
    ({}, False),                                 # neither: no socket
    ({"watchdog_sec": 0, "watchdog_timeout_ms": 500}, False),   # pets through schema-ctl
    ({"ready_path": "/run/a.ready"}, False),
])
def test_a_service_gets_a_notify_socket_for_notify_or_watchdog_sec(keys, wanted):
    assert bool(config.wants_notify_socket(spec(**keys))) is wanted


def test_the_rule_is_written_once():
    """No other expression of the package decides it from notify= and watchdog_sec=."""
    found = []
    package = os.path.join(ROOT, "schema_init")
    for dirpath, dirnames, filenames in os.walk(package):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        for name in filenames:
            if not name.endswith(".py"):
                continue
            path = os.path.join(dirpath, name)
            tree = ast.parse(open(path).read())
            for node in ast.walk(tree):
                if isinstance(node, ast.BoolOp):
                    names = {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)}
                    if {"notify", "watchdog_sec"} <= names:
                        found.append("%s:%d" % (os.path.relpath(path, ROOT), node.lineno))
    assert len(found) == 1 and found[0].startswith("schema_init/core/config.py:"), found


class WatchingOps(FakeOps):
    def __init__(self):
        super().__init__()
        self.notify_watched = []

    def watch_notify(self, name):
        self.notify_watched.append(name)


@pytest.mark.parametrize("keys, watched", [
    ({"notify": True}, ["a"]), ({"watchdog_sec": 3}, ["a"]), ({}, [])])
def test_an_adopted_service_gets_its_socket_back_by_the_rule(keys, watched):
    ops = WatchingOps()
    sup = supervisor.Supervisor(graph.resolve([spec(**keys)], []), ops, 0.0, 1e9)
    record = {"name": "a", "pid": 4321, "state": schema.FUNDAMENTAL, "restarts": 1,
              "failures": 0, "dormant": 0, "cgroup": "", "stable_time": None,
              "ready_seen": True}
    sup.fire(sup.services["a"], "adopt", 0.0, record=record)
    assert ops.notify_watched == watched


class Fds:
    """The loop's table (fdtable.FdTable), recording what is added."""

    def __init__(self):
        self.handlers = {}

    def add(self, fd, handler):
        self.handlers[fd] = handler

    def remove(self, fd):
        self.handlers.pop(fd, None)


class Record:
    def __init__(self, spec_):
        self.spec = spec_


def test_kept_notify_sockets_are_taken_back_only_for_services_the_rule_still_names():
    from schema_init.pid1 import notify_socket
    kept = {}
    for name in ("n", "w", "plain"):
        kept[name] = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    handed = [(name, os.dup(sock.fileno()), "schema-init/test/%s" % name)
              for name, sock in kept.items()]
    services = {"n": Record(spec(notify=True)), "w": Record(spec(watchdog_sec=2)),
                "plain": Record(spec())}
    fds = Fds()
    held = notify_socket.NotifySockets(fds, "rule")
    held.adopt(handed, services)
    try:
        assert held.names() == ["n", "w"]
        assert sorted(fds.handlers) == sorted(fd for name, fd, _ in handed if name != "plain")
        [plain_fd] = [fd for name, fd, _ in handed if name == "plain"]
        with pytest.raises(OSError):
            os.fstat(plain_fd)                     # closed, not adopted
    finally:
        for name in held.names():
            held.release(name)
        for sock in kept.values():
            sock.close()
