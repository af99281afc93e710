"""kill_mode=: the pure core decides whom a signal reaches (schema_init/core/killing.py);
``spawn``/``effects`` send exactly that and decide nothing."""

import types

import pytest

from schema_init.core import config, killing
from schema_init.core.killing import CGROUP, CGROUP_KILL, GROUP, MAIN
from schema_init.core.lifecycle import SIGKILL, SIGTERM
from schema_init.pid1 import effects, spawn

SIGHUP = 1

# (kill_mode, signal, main pid, has a cgroup) -> the targets, in order
CASES = [
    ("control-group", SIGTERM, 100, True, (CGROUP, GROUP, MAIN)),
    ("control-group", SIGKILL, 100, True, (CGROUP_KILL, GROUP, MAIN)),
    ("control-group", SIGHUP, 100, True, (CGROUP, GROUP, MAIN)),
    ("control-group", SIGTERM, 100, False, (GROUP, MAIN)),
    ("control-group", SIGKILL, 100, False, (GROUP, MAIN)),
    ("control-group", SIGKILL, 0, True, (CGROUP_KILL,)),      # main gone, the rest left
    ("control-group", SIGTERM, 0, True, (CGROUP,)),
    ("control-group", SIGTERM, 0, False, ()),
    ("mixed", SIGTERM, 100, True, (MAIN,)),
    ("mixed", SIGHUP, 100, True, (MAIN,)),
    ("mixed", SIGTERM, 100, False, (MAIN,)),
    ("mixed", SIGKILL, 100, True, (CGROUP_KILL, GROUP, MAIN)),
    ("mixed", SIGKILL, 100, False, (GROUP, MAIN)),
    ("mixed", SIGTERM, 0, True, ()),
    ("mixed", SIGKILL, 0, True, (CGROUP_KILL,)),
    ("process", SIGTERM, 100, True, (MAIN,)),
    ("process", SIGKILL, 100, True, (MAIN,)),
    ("process", SIGKILL, 100, False, (MAIN,)),
    ("process", SIGKILL, 0, True, ()),
    (None, SIGTERM, 100, False, (GROUP, MAIN)),               # no service's: a failsafe
    (None, SIGKILL, 100, False, (GROUP, MAIN)),
]


@pytest.mark.parametrize("mode, sig, pid, cgroup, expected", CASES)
def test_kill_mode_decides_the_targets(mode, sig, pid, cgroup, expected):
    assert killing.signal_targets(mode, sig, pid, cgroup) == expected


def test_every_kill_mode_of_the_files_has_its_cases():
    assert {case[0] for case in CASES} == set(config.KILL_MODES) | {None}


@pytest.mark.parametrize("mode, killed", [("control-group", True), ("mixed", True),
                                          ("process", False)])
def test_what_the_main_process_leaves_is_killed_unless_kill_mode_is_process(mode, killed):
    assert killing.kills_leftovers(mode) is killed


class FakeCgroups:
    def __init__(self, calls):
        self.calls = calls

    def kill(self, path):
        self.calls.append(("cgroup.kill", path))

    def signal(self, path, sig):
        self.calls.append(("cgroup", path, sig))
        return 0

    def remove(self, path):
        self.calls.append(("rmdir", path))
        return True


@pytest.fixture
def sent(monkeypatch):
    """What spawn sends: cgroup writes and kill() calls, in order (none reaches a
    process)."""
    calls = []

    def kill(pid, sig):
        calls.append(("kill", pid, sig))
        if pid == -100:
            raise ProcessLookupError(3, "No such process")   # a group already gone
    monkeypatch.setattr(spawn.os, "kill", kill)
    return calls


def test_spawn_sends_the_targets_in_their_order_and_nothing_else(sent):
    cgroups = FakeCgroups(sent)
    spawn.signal_service((CGROUP_KILL, GROUP, MAIN), 100, SIGKILL, cgroups, "/cg/a")
    assert sent == [("cgroup.kill", "/cg/a"), ("kill", -100, SIGKILL), ("kill", 100, SIGKILL)]
    del sent[:]
    spawn.signal_service((CGROUP,), 0, SIGTERM, cgroups, "/cg/a")
    assert sent == [("cgroup", "/cg/a", SIGTERM)]
    del sent[:]
    spawn.signal_service((), 100, SIGTERM, cgroups, "/cg/a")
    assert sent == []


def real_ops(calls):
    ops = effects.RealOps.__new__(effects.RealOps)     # no runtime: only its cgroups
    ops.rt = types.SimpleNamespace(cgroups=FakeCgroups(calls))
    return ops


def service(mode, cgroup="/cg/a", pid=100):
    spec = config.ServiceSpec(name="a", exec="/bin/true", kill_mode=mode)
    return types.SimpleNamespace(name="a", spec=spec, cgroup=cgroup, pid=pid)


@pytest.mark.parametrize("mode, sig, expected", [
    ("control-group", SIGTERM, [("cgroup", "/cg/a", SIGTERM), ("kill", -100, SIGTERM),
                                ("kill", 100, SIGTERM)]),
    ("mixed", SIGTERM, [("kill", 100, SIGTERM)]),
    ("mixed", SIGKILL, [("cgroup.kill", "/cg/a"), ("kill", -100, SIGKILL),
                        ("kill", 100, SIGKILL)]),
    ("process", SIGKILL, [("kill", 100, SIGKILL)]),
])
def test_the_effects_carry_out_the_core_s_decision(sent, mode, sig, expected):
    real_ops(sent).signal(service(mode), 100, sig)
    assert sent == expected


def test_a_pid_that_is_no_service_s_gets_its_group_then_itself(sent):
    real_ops(sent).signal(None, 100, SIGKILL)
    assert sent == [("kill", -100, SIGKILL), ("kill", 100, SIGKILL)]


@pytest.mark.parametrize("mode, expected", [
    ("control-group", [("cgroup.kill", "/cg/a"), ("rmdir", "/cg/a")]),
    ("mixed", [("cgroup.kill", "/cg/a"), ("rmdir", "/cg/a")]),
    ("process", [("rmdir", "/cg/a")]),
])
def test_the_cgroup_cleanup_follows_kill_mode(sent, mode, expected):
    record = service(mode)
    real_ops(sent).cleanup_cgroup(record)
    assert sent == expected and record.cgroup is None
