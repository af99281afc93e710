"""The lifecycle table, walked cell by cell, with a fake OS and plain numbers for clocks.

Every (state, event, next state) of ``lifecycle.TRANSITIONS`` is produced by one
scenario below; the test fails if a cell writes a state it does not list, if a
scenario's outcome changes, or if a cell or outcome has no scenario.
"""

import os
import subprocess
import sys

import pytest

from fakes import FakeOps
from schema_init.core import config, graph, lifecycle, schema, supervisor
from schema_init import reference
from schema_init.core.lifecycle import (DORMANT, EXCISED, FRICTION, FULL_TRUST, FUNDAMENTAL,
                                   NEW_PROCESS, PERFECT, RECOVERY)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WALL = 1.7e9


def build(keys=None, env=None):
    keys = dict(keys or {})
    specs = [config.ServiceSpec(name="s", exec=keys.pop("exec", "/bin/true"),
                                deps=("d",), stable_secs=keys.pop("stable_secs", 30), **keys),
             config.ServiceSpec(name="d", exec="/bin/true")]
    ops = FakeOps()
    sup = supervisor.Supervisor(graph.resolve(specs, []), ops, 0.0, WALL,
                                env=env if env is not None else {"SLOT_ID": "1"})
    writes = []
    enter = sup.enter

    def recording_enter(service, state, now, reason=None):
        if service.name == "s":
            writes.append(state)
        return enter(service, state, now, reason)
    sup.enter = recording_enter
    return sup, ops, writes


def put(sup, state, pid=None, **record):
    """Bring service s into ``state`` (through the table's adopt cell)."""
    service = sup.services["s"]
    if service.state not in (NEW_PROCESS, PERFECT, EXCISED):
        raise AssertionError("s is not adoptable from %s" % service.state)
    if pid is None:
        pid = 4242 if state in lifecycle.RUNNING else 0
    facts = {"name": "s", "pid": pid, "state": state, "restarts": 1, "failures": 0,
             "dormant": 0, "cgroup": "", "stable_time": None, "ready_seen": False}
    facts.update(record)
    sup.fire(service, "adopt", 0.0, record=facts)
    return service


# Scenarios: (state, event, next state expected, spec keys, setup(sup, ops, s), facts)
SCENARIOS = []


def scenario(state, event, expected, keys=None, setup=None, **facts):
    SCENARIOS.append((state, event, expected, keys or {}, setup, facts))


def dep_ready(sup, ops, s):
    put_dep = sup.services["d"]
    sup.fire(put_dep, "adopt", 0.0, record={
        "name": "d", "pid": 77, "state": FUNDAMENTAL, "restarts": 1, "failures": 0,
        "dormant": 0, "cgroup": "", "stable_time": 0.0, "ready_seen": False})


def low_memory(sup, ops, s):
    dep_ready(sup, ops, s)
    ops.mem_kb = 100


def budget_spent(sup, ops, s):
    s.failures = s.spec.max_restarts


def dormant_limit(sup, ops, s):
    s.dormant_count = 5
    s.failures = s.spec.max_restarts


def clock_went_back(sup, ops, s):
    s.timer_wall = WALL + 600
    s.timer_armed = True


scenario(NEW_PROCESS, "cycle", EXCISED, reason="dependency cycle: s -> d -> s")
for state in (NEW_PROCESS, PERFECT):
    scenario(state, "arm_timer", PERFECT, {"on_active_sec": 5}, wall=WALL, boot=True)
scenario(NEW_PROCESS, "deps_ready", FULL_TRUST, deps_present=True)
scenario(NEW_PROCESS, "deps_ready", RECOVERY, {"exec": "/missing"}, deps_present=True)
scenario(NEW_PROCESS, "deps_ready", EXCISED, {"allowed_slot_min": 5}, deps_present=True)
scenario(FULL_TRUST, "ready", FUNDAMENTAL, setup=dep_ready)
scenario(FULL_TRUST, "ready", FULL_TRUST, setup=low_memory)
scenario(FULL_TRUST, "start_timeout", EXCISED, {"start_timeout_sec": 5})
scenario(FULL_TRUST, "start_timeout", RECOVERY, {"start_timeout_sec": 5, "critical": True})
scenario(FUNDAMENTAL, "readiness_lost", DORMANT, {"ready_path": "/run/s"})
scenario(FUNDAMENTAL, "readiness_lost", EXCISED, {"ready_path": "/run/s"}, setup=dormant_limit)
scenario(RECOVERY, "cooldown_over", NEW_PROCESS)
scenario(RECOVERY, "cooldown_over", FRICTION, setup=budget_spent)
scenario(FRICTION, "last_chance", NEW_PROCESS)
scenario(FRICTION, "last_chance", DORMANT, setup=budget_spent)
scenario(FRICTION, "last_chance", EXCISED, setup=dormant_limit)
scenario(DORMANT, "wake", NEW_PROCESS)
scenario(PERFECT, "timer_fire", NEW_PROCESS, {"on_active_sec": 5}, wall=WALL)
scenario(PERFECT, "timer_fire", PERFECT, {"on_calendar": config.timers.parse_calendar(
    "12:00")[0]}, setup=clock_went_back, wall=WALL)
for state in (EXCISED, PERFECT):
    scenario(state, "op_start", NEW_PROCESS)
for state in lifecycle.RUNNING:
    scenario(state, "died", RECOVERY, code=1, wall=WALL)
    scenario(state, "restart_exit", RECOVERY, code=0, wall=WALL)
    scenario(state, "session_over", RECOVERY, {"session": True}, code=0, wall=WALL)
    scenario(state, "idle_exit", RECOVERY, {"listen_on_demand": True,
                                            "listen": (("tcp", ("", 8080)),)},
             code=0, wall=WALL)
    scenario(state, "oneshot_done", PERFECT, {"oneshot": True}, code=0, wall=WALL)
    scenario(state, "timer_done", PERFECT, {"on_active_sec": 5}, code=0, wall=WALL)
    scenario(state, "no_restart_exit", EXCISED, {"no_restart": True}, code=3, wall=WALL)
    scenario(state, "operator_stop_exit", EXCISED, code=0, wall=WALL)
    scenario(state, "stopped_exit", EXCISED, code=0, wall=WALL)
    scenario(state, "op_stop", state, intent="stop")
    scenario(state, "op_restart", state, intent="restart")
    scenario(state, "shutdown", state, intent="shutdown")
for state in lifecycle.IDLE:
    scenario(state, "op_stop", EXCISED)
    scenario(state, "op_restart", NEW_PROCESS)
for state in (EXCISED, DORMANT, PERFECT):
    scenario(state, "op_reset", NEW_PROCESS)
for state in lifecycle.STORED_STATES:
    if state != EXCISED:
        scenario(state, "fuse", EXCISED, {"fuse": True})
for state in (NEW_PROCESS, PERFECT, EXCISED):
    for target in lifecycle.STORED_STATES:
        scenario(state, "adopt", target)

# The command set (schema_init/core/command_actions.py).
ONE = (("", ("/bin/c",)),)
TWO = ONE + (("", ("/bin/d",)),)


def no_main(sup, ops, s):
    s.pid = 0


scenario(FULL_TRUST, "condition_skip", PERFECT, {"condition": ONE},
         step=("condition", 0), code=1)
scenario(FULL_TRUST, "start_failed", RECOVERY, {"exec_pre": ONE}, step=("exec_pre", 0), code=1)
scenario(FULL_TRUST, "start_failed", EXCISED, {"exec_pre": ONE, "restart": "no"},
         step=("exec_pre", 0), code=1)
scenario(FULL_TRUST, "forked", FULL_TRUST, {"forking": True}, setup=no_main)
scenario(FULL_TRUST, "step_done", FULL_TRUST, {"exec_pre": TWO}, step=("exec_pre", 0), code=0)
scenario(FULL_TRUST, "step_done", RECOVERY, {"exec_pre": ONE, "user": "nobody"},
         setup=no_main, step=("exec_pre", 0), code=0)
scenario(FULL_TRUST, "step_done", PERFECT, {"oneshot": True, "exec_post": ONE},
         setup=no_main, step=("exec_post", 0), code=0)
scenario(FUNDAMENTAL, "step_done", FUNDAMENTAL, {"exec_reload": ONE},
         step=("exec_reload", 0), code=0)
scenario(FULL_TRUST, "oneshot_done", FULL_TRUST, {"oneshot": True, "exec_post": ONE},
         code=0, wall=WALL)
for state in lifecycle.RUNNING:
    scenario(state, "clean_end", PERFECT, {"restart": "on-failure"}, code=0, wall=WALL)
    scenario(state, "clean_restart", RECOVERY, {"restart": "always"}, code=0, wall=WALL)
    scenario(state, "stop_timeout", EXCISED, {"send_sigkill": False})
    scenario(state, "op_reload", state, {"exec_reload": ONE})
scenario(PERFECT, "shutdown", EXCISED, {"oneshot": True, "remain_after_exit": True},
         intent="shutdown")
scenario(PERFECT, "op_reload", PERFECT, {"oneshot": True, "remain_after_exit": True,
                                         "exec_reload": ONE})
for state in lifecycle.IDLE:
    scenario(state, "tail_exit", state, {"exec_stop_post": ONE},
             step=("exec_stop_post", 0), code=0)


@pytest.mark.parametrize("state,event,expected,keys,setup,facts", SCENARIOS,
                         ids=["%s-%s-%s" % (schema.state_name(s), e, schema.state_name(x))
                              for s, e, x, _, _, _ in SCENARIOS])
def test_cell(state, event, expected, keys, setup, facts):
    sup, ops, writes = build(keys)
    service = sup.services["s"]
    if service.state != state:
        put(sup, state)
    assert service.state == state
    if setup is not None:
        setup(sup, ops, service)
    del writes[:]
    facts = dict(facts)
    if event == "fuse":
        facts["dep"] = sup.services["d"]
    if event == "adopt":
        facts["record"] = {"name": "s", "pid": 4242 if expected in lifecycle.RUNNING else 0,
                           "state": expected, "restarts": 0, "failures": 0, "dormant": 0,
                           "cgroup": "", "stable_time": None, "ready_seen": False}
    action, allowed = lifecycle.TABLE[(state, event)]
    sup.fire(service, event, 10.0, **facts)
    first = writes[0] if writes else state        # a cell may keep the state unwritten
    assert first == expected, "%s/%s wrote %s" % (
        schema.state_name(state), event, [schema.state_name(w) for w in writes])
    assert first in allowed


def test_every_cell_and_outcome_has_a_scenario():
    covered = {(s, e, x) for s, e, x, _, _, _ in SCENARIOS}
    wanted = {(s, e, x) for s, e, _, nexts in lifecycle.TRANSITIONS for x in nexts}
    assert wanted - covered == set()
    assert covered - wanted == set()


def test_a_state_write_outside_the_table_is_refused():
    sup, ops, writes = build()
    service = sup.services["s"]
    with pytest.raises(lifecycle.LifecycleError):
        sup.enter(service, FUNDAMENTAL, 0.0)
    with pytest.raises(lifecycle.LifecycleError):
        sup.fire(service, "wake", 0.0)              # NEW_PROCESS has no wake cell
    assert service.state == NEW_PROCESS


def test_an_action_cannot_write_a_state_its_cell_does_not_list(monkeypatch):
    sup, ops, writes = build()
    service = put(sup, DORMANT)
    monkeypatch.setattr(sup.actions, "wake",
                        lambda s, now: sup.enter(s, FUNDAMENTAL, now))
    with pytest.raises(lifecycle.LifecycleError):
        sup.fire(service, "wake", 0.0)
    assert service.state == DORMANT


def test_exit_classification_follows_intent_then_kind_then_code():
    plain = config.ServiceSpec(name="a", exec="/bin/true")
    oneshot = plain.replace(oneshot=True)
    timer = plain.replace(on_active_sec=5)
    no_restart = plain.replace(no_restart=True)
    classify = lifecycle.classify_exit
    assert classify(plain, "shutdown", 1) == "stopped_exit"
    assert classify(timer, "evict", 0) == "stopped_exit"
    assert classify(timer, None, 1) == "timer_done"
    assert classify(timer, "stop", 0) == "oneshot_done"      # a timer run is a oneshot
    assert classify(timer, "stop", 1) == "operator_stop_exit"
    assert classify(oneshot, None, 0) == "oneshot_done"
    assert classify(oneshot, "restart", 0) == "restart_exit"
    assert classify(no_restart, None, 0) == "no_restart_exit"
    assert classify(no_restart, "restart", 0) == "restart_exit"
    assert classify(plain, None, 0) == "died"
    on_demand = plain.replace(listen_on_demand=True, listen=(("tcp", ("", 80)),))
    assert classify(on_demand, None, 0) == "idle_exit"
    assert classify(on_demand, None, 1) == "died"
    assert classify(on_demand, "stop", 0) == "operator_stop_exit"
    assert lifecycle.exit_code(256) == 1 and lifecycle.exit_code(9) == -9
    assert lifecycle.exit_code(0) == 0 and lifecycle.exit_code(0x8b) == -11


def test_docs_lifecycle_is_generated_from_the_table():
    with open(os.path.join(ROOT, "docs", "lifecycle.md")) as f:
        assert f.read() == reference.lifecycle_markdown(), \
            "regenerate: python -m schema_init.reference lifecycle > docs/lifecycle.md"


# Every module of the pure core's folder (tests/test_layout.py keeps its imports inside it).
PURE_MODULES = tuple(sorted(name[:-3] for name in os.listdir(os.path.join(ROOT, "schema_init",
                                                                          "core"))
                            if name.endswith(".py") and name != "__init__.py"))

PURE_CORE_SCRIPT = r"""
import builtins, os, sys
sys.modules["_schema_fastloop"] = None            # the compiled loop cannot be imported
sys.modules["schema_init.pid1._fastloop"] = None

def refuse(name):
    def call(*args, **kwargs):
        raise AssertionError("the pure core called os." + name)
    return call
for name in ("open", "read", "write", "close", "fork", "execv", "execve", "kill", "killpg",
             "waitpid", "stat", "lstat", "listdir", "scandir", "mkdir", "makedirs", "unlink",
             "rmdir", "rename", "replace", "access", "geteuid", "getuid", "getpid",
             "setsid", "pipe", "dup2", "chdir", "chmod", "chown", "system", "popen"):
    if hasattr(os, name):
        setattr(os, name, refuse(name))
os.path.exists = refuse("path.exists")
builtins.open = refuse("open (builtin)")

from schema_init.core import MODULES
from schema_init.core import config, graph, lifecycle, protocol, schema, supervisor

class Ops(supervisor.Ops):
    is_root = True
    def __init__(self):
        self.pid = 100
        self.events = []
    def spawn(self, service, argv, env, nice, account):
        self.pid += 1
        return self.pid, None, []
    def signal(self, service, pid, sig):
        self.events.append(("signal", pid, sig))
    def cleanup_cgroup(self, service):
        pass
    def exec_status(self, path):
        return True, True
    def mem_available_kb(self):
        return 1 << 20
    def rail(self, name, event, state, weight, pid):
        self.events.append((name, event))

files = [("a.svc", b"exec=/bin/a\nstable_secs=0\n", None),
         ("b.svc", b"exec=/bin/b\ndep=a\nstable_secs=5\n", None),
         ("g.grp", b"name=g\nmember=a\nmember=b\n", None)]
loaded = config.parse_directory("/etc/schema-init/services", files)
ops = Ops()
sup = supervisor.Supervisor(graph.resolve(loaded.services, loaded.groups), ops, 0.0, 1.7e9,
                            env={"PATH": "/bin"})
sup.settle(0.0)
assert sup.services["a"].state == schema.FUNDAMENTAL, sup.services["a"].state
assert sup.services["b"].state == schema.FULL_TRUST
assert sup.next_deadline() == 5.0
sup.on_due(5.0, 1.7e9 + 5)
assert sup.services["b"].state == schema.FUNDAMENTAL
sup.on_exit(sup.services["a"].pid, 256, 6.0)
assert sup.services["a"].state == schema.RECOVERY
sup.on_due(7.0, 1.7e9 + 7)
sup.settle(7.0)
assert sup.services["a"].state == schema.FUNDAMENTAL
class Host:
    scheduled = ("reboot", 68.0)
reply = protocol.dispatch("status", 0, sup, Host(), 8.0, 1.7e9 + 8)
assert reply[-1] == "shutdown scheduled: reboot in 60 s", reply
assert reply[0] == "services: 2  groups: 1", reply
assert protocol.dispatch("stop b", 1000, sup, None, 8.0, 0)[0].startswith("err:")
sup.begin_shutdown(9.0)
assert ("signal", sup.services["b"].pid, lifecycle.SIGTERM) in ops.events
print("pure core ok")
"""


def test_pure_core_runs_without_the_os_or_the_compiled_loop():
    """The deciding modules import and drive a scenario with the OS's process and file
    functions replaced by ones that raise, and the compiled loop blocked."""
    script = PURE_CORE_SCRIPT.replace("MODULES", ", ".join(PURE_MODULES))
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "pure core ok" in result.stdout


def test_the_package_has_no_import_cycle():
    """Nothing below calls back up, module by module (tests/test_layout.py checks the
    rooms): e.g. runtime never imports machine (PID 1 fills hooks)."""
    import ast
    import glob
    imports = {}
    for path in glob.glob(os.path.join(ROOT, "schema_init", "**", "*.py"), recursive=True):
        rel = os.path.relpath(path, ROOT)[:-3].split(os.sep)
        package = rel[:-1]
        name = ".".join(rel[:-1] if rel[-1] == "__init__" else rel)
        with open(path) as f:
            tree = ast.parse(f.read())
        found = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package[:len(package) - node.level + 1] +
                                    ([base] if base else []))
                if not base.startswith("schema_init"):
                    continue
                for alias in node.names:
                    candidate = base + "." + alias.name
                    found.add(candidate if glob.glob(os.path.join(
                        ROOT, *candidate.split(".")) + ".py") else base)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name.startswith("schema_init"))
        imports[name] = found - {name}

    def reaches(start, target, seen):
        for dep in imports.get(start, ()):
            if dep == target or (dep not in seen and reaches(dep, target, seen | {dep})):
                return True
        return False
    assert len(imports) > 40 and "schema_init.core.supervisor" in imports
    assert "schema_init.core.config" in imports["schema_init.core.supervisor"]
    cyclic = sorted(name for name in imports if reaches(name, name, {name}))
    assert cyclic == []
    assert "schema_init.pid1.machine" not in imports["schema_init.pid1.runtime"]
