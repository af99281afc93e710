"""The command set around exec= (issue 21): condition, exec_pre, exec_post, exec_reload,
exec_stop, exec_stop_post, restart= and its exit-status lists, remain_after_exit,
forking/pid_file, kill_signal and send_sigkill (docs/spec.md, "The command set").

First the pure table with a fake OS and a clock passed in (as tests/test_lifecycle.py),
then real processes under a real schema-init (as tests/test_supervisor_process.py):
each control command appends its name to one file, whose lines are the order.
"""

import os
import signal
import time

import pytest

from fakes import FakeOps
from schema_init.core import config, graph, lifecycle, schema, shmdecode, supervisor
from schema_init.core.lifecycle import (EXCISED, FULL_TRUST, FUNDAMENTAL, NEW_PROCESS,
                                        PERFECT, RECOVERY)

WALL = 1.7e9


def line(*argv, prefixes=""):
    return (prefixes, tuple(argv))


def lines(*names, prefixes=""):
    return tuple(line("/bin/" + name, prefixes=prefixes) for name in names)


def make(now=0.0, fail_controls=False, **keys):
    keys.setdefault("stable_secs", 0)
    spec = config.ServiceSpec(name="s", exec=keys.pop("exec", "/bin/main"), **keys)
    ops = FakeOps()
    ops.fail_controls = fail_controls
    sup = supervisor.Supervisor(graph.resolve([spec], []), ops, now, WALL, env={})
    sup.settle(now)
    return sup, ops, sup.services["s"]


def ran(ops):
    """The control commands started, by their program's name."""
    return [argv[0].rsplit("/", 1)[1] for _, _, argv, _, _ in ops.controls]


def end_control(sup, service, now, status=0):
    pid = service.control.pid
    assert sup.on_exit(pid, status, now)
    sup.settle(now)


def end_main(sup, service, now, status=0):
    assert sup.on_exit(service.pid, status, now)
    sup.settle(now)


def test_the_start_runs_conditions_then_pre_then_main_then_post_then_promotes():
    sup, ops, s = make(condition=lines("c1", "c2"), exec_pre=lines("p1"), exec_post=lines("q"))
    assert ran(ops) == ["c1"] and ops.spawned == [] and s.state == FULL_TRUST
    assert s.reason == "condition 1/2" and s.restarts == 1
    end_control(sup, s, 1.0)
    end_control(sup, s, 2.0)
    assert ran(ops) == ["c1", "c2", "p1"] and ops.spawned == []
    end_control(sup, s, 3.0)
    assert len(ops.spawned) == 1 and ran(ops)[-1] == "q"
    assert s.state == FULL_TRUST, "stable_secs=0, but the promotion waits for exec_post"
    assert ops.controls[-1][4] == str(s.pid), "exec_post sees $MAINPID"
    end_control(sup, s, 4.0)
    assert s.state == FUNDAMENTAL and s.started and s.restarts == 1


def test_a_failing_exec_pre_fails_the_start_and_runs_exec_stop_post():
    sup, ops, s = make(exec_pre=lines("p1", "p2"), exec_stop=lines("stop"),
                       exec_stop_post=lines("post"))
    end_control(sup, s, 1.0, status=3 << 8)
    assert s.state == RECOVERY and s.last_failure == "exec_pre 1/2 exited 3"
    assert s.reason == "exec_pre 1/2 exited 3; exec_stop_post 1/1", "status shows the tail"
    assert s.failed_runs == 1 and s.failures == 1
    assert ops.spawned == [] and ran(ops) == ["p1", "post"], "no exec_stop: never started"
    end_control(sup, s, 1.5)
    sup.on_due(2.0, WALL)
    sup.settle(2.0)
    assert ran(ops)[-1] == "p1" and s.state == FULL_TRUST, "the next start"


def test_a_dash_exec_pre_may_fail():
    sup, ops, s = make(exec_pre=lines("p1", prefixes="-"))
    end_control(sup, s, 1.0, status=1 << 8)
    assert s.state == FUNDAMENTAL and len(ops.spawned) == 1 and s.failed_runs == 0


def test_condition_1_to_254_skips_255_and_signals_fail():
    for status, state, failed in ((1 << 8, PERFECT, 0), (254 << 8, PERFECT, 0),
                                  (255 << 8, RECOVERY, 1), (9, RECOVERY, 1)):
        sup, ops, s = make(condition=lines("c"), exec_stop_post=lines("post"))
        end_control(sup, s, 1.0, status=status)
        assert (s.state, s.failed_runs) == (state, failed), status
        assert ops.spawned == [] and ran(ops) == ["c"], "nothing after a condition"


def test_a_skipped_start_is_not_a_failure_and_a_start_runs_it_again():
    sup, ops, s = make(condition=lines("c"))
    end_control(sup, s, 1.0, status=1 << 8)
    assert s.reason == "condition 1/1 exited 1: start skipped"
    assert ("s", "condition-skip") in ops.rails and s.failures == 0
    assert sup.cmd_start("s", 2.0) == ["ok: s queued"]
    sup.settle(2.0)
    assert ran(ops) == ["c", "c"]


def test_exec_stop_runs_with_mainpid_then_the_kill_signal_then_exec_stop_post():
    sup, ops, s = make(exec_stop=lines("stop"), exec_stop_post=lines("post"),
                       kill_signal=signal.SIGINT)
    main = s.pid
    assert sup.cmd_stop("s", 1.0) == ["ok: exec_stop 1/1 \u2192 s (pid %d)" % main]
    assert ops.controls[-1][4] == str(main) and ops.signals == []
    end_control(sup, s, 2.0)
    assert ops.signals == [(main, signal.SIGINT)]
    end_main(sup, s, 3.0, status=signal.SIGINT)
    assert s.state == EXCISED and ran(ops) == ["stop", "post"]
    assert ops.controls[-1][4] is None, "no $MAINPID once it is gone"
    end_control(sup, s, 4.0)
    assert not s.busy()


def test_exec_stop_timing_out_is_killed_and_the_stop_goes_on():
    sup, ops, s = make(exec_stop=lines("stop1", "stop2"), stop_timeout_sec=5)
    main = s.pid
    sup.cmd_stop("s", 0.0)
    stop1 = s.control.pid
    assert sup.next_deadline() == 5.0
    sup.on_due(5.0, WALL)
    assert (stop1, signal.SIGKILL) in ops.signals
    end_control(sup, s, 5.1, status=signal.SIGKILL)
    assert ran(ops) == ["stop1"], "the rest of exec_stop is skipped after a timeout"
    assert (main, signal.SIGTERM) in ops.signals


def test_a_death_runs_exec_stop_then_exec_stop_post_without_mainpid():
    sup, ops, s = make(exec_stop=lines("stop"), exec_stop_post=lines("post"))
    end_main(sup, s, 1.0, status=1 << 8)
    assert s.state == RECOVERY and ran(ops) == ["stop"] and ops.controls[0][4] is None
    sup.on_due(2.0, WALL)
    sup.settle(2.0)
    assert s.state == NEW_PROCESS and len(ops.spawned) == 1, "the respawn waits for the tail"
    end_control(sup, s, 2.1)
    assert ran(ops) == ["stop", "post"]
    end_control(sup, s, 2.2)
    assert s.state == FUNDAMENTAL and len(ops.spawned) == 2


def test_exec_reload_replaces_sighup():
    sup, ops, s = make(exec_reload=lines("r1", "r2"))
    assert sup.cmd_signal("s HUP", 1.0) == ["ok: exec_reload \u2192 s (pid %d)" % s.pid]
    assert ops.signals == [] and ran(ops) == ["r1"] and s.state == FUNDAMENTAL
    assert sup.cmd_signal("s HUP", 1.0)[0].startswith("err: s is busy")
    end_control(sup, s, 2.0, status=1 << 8)          # a failed reload: said, not obeyed
    end_control(sup, s, 3.0)
    assert ran(ops) == ["r1", "r2"] and ("s", "reloaded") in ops.rails
    assert s.state == FUNDAMENTAL
    plain, pops, p = make()
    plain.cmd_signal("s HUP", 1.0)
    assert pops.signals == [(p.pid, signal.SIGHUP)]


def test_notify_runs_exec_post_after_ready_1_and_a_reload_waits_for_the_start():
    sup, ops, s = make(notify=True, exec_post=lines("post"), exec_reload=lines("reload"))
    assert s.state == FULL_TRUST and ran(ops) == []
    assert sup.cmd_signal("s HUP", 0.5) == ["err: s is not started yet"]
    sup.on_notify("s", (s.pid, 0), b"READY=1", 1.0)
    assert ran(ops) == ["post"] and s.state == FULL_TRUST
    end_control(sup, s, 2.0)
    assert s.state == FUNDAMENTAL
    assert sup.cmd_signal("s HUP", 3.0)[0].startswith("ok: exec_reload")


def test_a_start_timeout_while_waiting_for_the_daemon_cleans_up():
    cleaned = []
    sup, ops, s = make(forking=True, start_timeout_sec=2)
    ops.cleanup_cgroup = lambda service: cleaned.append(service.name)
    end_main(sup, s, 1.0)
    sup.on_due(2.0, WALL)
    assert s.state == EXCISED and cleaned == ["s"] and s.daemon_wait is None


def test_a_oneshot_is_perfect_after_its_exec_post_and_remain_after_exit_keeps_it_started():
    sup, ops, s = make(oneshot=True, exec_post=lines("post"), exec_stop=lines("stop"),
                       exec_stop_post=lines("stop_post"), remain_after_exit=True)
    end_main(sup, s, 1.0)
    assert s.state == FULL_TRUST and ran(ops) == ["post"]
    end_control(sup, s, 2.0)
    assert s.state == PERFECT and s.started and not s.busy()
    sup.cmd_stop("s", 3.0)
    assert s.state == EXCISED and ran(ops) == ["post", "stop"]
    end_control(sup, s, 4.0)
    assert ran(ops) == ["post", "stop", "stop_post"]


def test_a_oneshot_without_remain_after_exit_is_stopped_at_once():
    sup, ops, s = make(oneshot=True, exec_stop=lines("stop"))
    end_main(sup, s, 1.0)
    assert s.state == PERFECT and ran(ops) == ["stop"] and not s.started


def test_a_stop_during_exec_pre_kills_it_and_ends_the_run():
    sup, ops, s = make(exec_pre=lines("p"), exec_stop_post=lines("post"))
    pre = s.control.pid
    assert sup.cmd_stop("s", 1.0) == ["ok: s stopping"]
    assert ops.signals == [(pre, signal.SIGTERM)] and s.state == FULL_TRUST
    end_control(sup, s, 1.5, status=signal.SIGTERM)
    assert s.state == EXCISED and ops.spawned == [] and ran(ops) == ["p", "post"]


def test_a_start_timeout_during_exec_pre_kills_it():
    sup, ops, s = make(exec_pre=lines("p"), start_timeout_sec=3)
    pre = s.control.pid
    sup.on_due(3.0, WALL)
    assert s.state == EXCISED and (pre, signal.SIGKILL) in ops.signals
    sup.on_exit(pre, signal.SIGKILL, 3.1)
    assert not s.busy()


def test_forking_waits_for_the_daemon_then_it_is_the_main_pid():
    sup, ops, s = make(forking=True, pid_file="/run/d.pid", exec_post=lines("post"))
    parent = s.pid
    end_main(sup, s, 1.0)
    assert s.state == FULL_TRUST and s.pid == 0 and s.pid_retry_at == 1.05
    ops.daemon = (4321, None)
    sup.on_due(1.05, WALL)
    assert s.pid == 4321 and ran(ops) == ["post"] and ops.controls[0][4] == "4321"
    assert s.daemon_wait is None and parent != 4321
    end_control(sup, s, 1.2)
    assert s.state == FUNDAMENTAL, "a forking service is ready when its daemon is known"
    end_main(sup, s, 5.0, status=9)
    assert s.state == RECOVERY and s.reason == "killed by signal 9"


def test_forking_without_a_daemon_fails_after_the_wait():
    sup, ops, s = make(forking=True)
    end_main(sup, s, 1.0)
    now = 1.0
    while s.state == FULL_TRUST:
        now = sup.next_deadline()
        sup.on_due(now, WALL)
    assert s.state == RECOVERY and now >= 1.0 + lifecycle.DAEMON_WAIT_SECS
    assert s.reason == "forking: no process left by the first one"


def test_forking_parent_failing_is_a_death():
    sup, ops, s = make(forking=True)
    end_main(sup, s, 1.0, status=1 << 8)
    assert s.state == RECOVERY and s.reason == "exited 1"


def spec_of(**keys):
    return config.ServiceSpec(name="x", exec="/bin/x", **keys)


@pytest.mark.parametrize("policy, ends", [
    # ends: exit 0, exit 1, SIGTERM (clean for a daemon), SIGSEGV, timeout, watchdog
    ("no", (False, False, False, False, False, False)),
    ("always", (True, True, True, True, True, True)),
    ("on-success", (True, False, True, False, False, False)),
    ("on-failure", (False, True, False, True, True, True)),
    ("on-abnormal", (False, False, False, True, True, True)),
    ("on-abort", (False, False, False, True, False, False)),
    ("on-watchdog", (False, False, False, False, False, True)),
])
def test_restart_is_systemds_table(policy, ends):
    spec = spec_of(restart=policy)
    got = (lifecycle.restart_wanted(spec, 0), lifecycle.restart_wanted(spec, 1),
           lifecycle.restart_wanted(spec, -15), lifecycle.restart_wanted(spec, -11),
           lifecycle.restart_wanted(spec, None, "timeout"),
           lifecycle.restart_wanted(spec, None, "watchdog"))
    assert got == ends


def test_exit_statuses_and_restart_prevent_and_force():
    spec = spec_of(restart="on-failure", success_exit_status=(3, -10))
    assert not lifecycle.restart_wanted(spec, 3) and not lifecycle.restart_wanted(spec, -10)
    assert lifecycle.classify_exit(spec, None, 3) == "clean_end"
    assert lifecycle.classify_exit(spec, None, 4) == "died"
    prevent = spec_of(restart="always", restart_prevent_exit_status=(4,),
                      restart_force_exit_status=(4,))
    assert lifecycle.classify_exit(prevent, None, 4) == "no_restart_exit", "prevent wins"
    force = spec_of(restart="no", restart_force_exit_status=(0, 7))
    assert lifecycle.classify_exit(force, None, 0) == "clean_restart"
    assert lifecycle.classify_exit(force, None, 7) == "died"
    assert lifecycle.classify_exit(force, None, 1) == "no_restart_exit"
    oneshot = spec_of(oneshot=True, restart="on-failure", success_exit_status=(2,))
    assert lifecycle.classify_exit(oneshot, None, 2) == "oneshot_done"
    assert lifecycle.classify_exit(oneshot, None, -15) == "died", "no clean signal for a oneshot"
    unset = spec_of(success_exit_status=(3,))
    assert lifecycle.classify_exit(unset, None, 3) == "died", "restart unset: as before"
    assert lifecycle.classify_exit(unset, None, 0) == "died"


def test_a_clean_end_not_restarted_rests_perfect_and_an_unclean_one_is_excised():
    sup, ops, s = make(restart="on-failure")
    end_main(sup, s, 1.0)
    assert s.state == PERFECT and s.failed_runs == 0 and s.reason == "exited 0 (restart=on-failure)"
    sup, ops, s = make(restart="no")
    end_main(sup, s, 1.0, status=1 << 8)
    assert s.state == EXCISED and s.failed_runs == 1 and s.reason == "exited 1 (restart=no)"


def test_a_clean_restart_spends_the_budget_but_is_not_a_failed_run():
    sup, ops, s = make(restart="always", max_restarts=3)
    now, runs = 0.0, 0
    while s.state == FUNDAMENTAL:
        runs += 1
        end_main(sup, s, now)
        assert s.state == RECOVERY and s.failed_runs == 0 and "restart=always" in s.reason
        now = s.due
        sup.on_due(now, WALL)
        sup.settle(now)
    assert s.state == schema.DORMANT and runs == 3, "a loop of clean exits is a loop"
    assert s.failed_runs == 0


def test_send_sigkill_0_leaves_the_process_and_excises():
    sup, ops, s = make(send_sigkill=False, stop_timeout_sec=2)
    main = s.pid
    sup.cmd_stop("s", 0.0)
    sup.on_due(2.0, WALL)
    assert (main, signal.SIGKILL) not in ops.signals
    assert s.state == EXCISED and s.pid == 0 and main in sup.unmanaged
    assert "left running (send_sigkill=0)" in s.reason and s.failed_runs == 1


def test_the_shutdown_stops_a_remaining_oneshot_and_waits_for_its_commands():
    sup, ops, s = make(oneshot=True, remain_after_exit=True, exec_stop=lines("stop"))
    end_main(sup, s, 1.0)
    assert s.state == PERFECT
    sup.begin_shutdown(2.0)
    assert s.state == EXCISED and ran(ops) == ["stop"]
    assert not sup.shutdown_progress(2.1)
    end_control(sup, s, 2.2)
    assert sup.shutdown_progress(2.3)


def test_a_control_command_overrunning_its_timeout_is_killed():
    sup, ops, s = make(exec_pre=lines("p"), start_timeout_sec=0)
    pre = s.control.pid
    assert sup.next_deadline() == lifecycle.CONTROL_TIMEOUT_SECS
    sup.on_due(lifecycle.CONTROL_TIMEOUT_SECS, WALL)
    assert (pre, signal.SIGKILL) in ops.signals
    end_control(sup, s, 91.0, status=signal.SIGKILL)
    assert s.state == RECOVERY and s.reason == "exec_pre 1/1 timed out"


def test_a_control_command_that_cannot_start_fails_its_step():
    sup, ops, s = make(exec_pre=lines("p"), fail_controls=True)
    assert s.state == RECOVERY and s.reason == "exec_pre 1/1 exited 127"
    assert ops.spawned == [] and s.control is None
    sup, ops, s = make(exec_pre=lines("p", prefixes="-"), fail_controls=True)
    assert s.state == FUNDAMENTAL, "a - line may even fail to start"
    sup, ops, s = make(exec_stop_post=lines("p"), fail_controls=True)
    end_main(sup, s, 1.0, status=1 << 8)
    assert s.state == RECOVERY and not s.busy(), "a tail's command is skipped"


# --- real processes -------------------------------------------------------------------


def svc(order, script, **keys):
    """A .svc running ``/bin/sh -c SCRIPT``; command keys take shell lines (run with the
    : prefix: the shell, not schema-exec, expands $MAINPID) or lists of them."""
    text = "exec=/bin/sh\nargs=-c\nargs=%s\n" % script.replace("ORDER", order)
    for key, value in keys.items():
        for item in value if isinstance(value, list) else [value]:
            if key in lifecycle.COMMAND_KINDS:
                item = ':/bin/sh -c "%s"' % str(item).replace("ORDER", order)
            text += "%s=%s\n" % (key, item)
    return text


def order_of(path):
    try:
        with open(path) as f:
            return f.read().split("\n")[:-1]
    except FileNotFoundError:
        return []


def ext_entry(s, name):
    with open("/dev/shm" + s.shm_name + ".ext", "rb") as f:
        data = f.read()
    for entry in shmdecode.decode_ext(data)["services"]:
        if entry["name"] == name:
            return entry
    raise AssertionError(name)


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture
def order(tmp_path):
    return str(tmp_path / "order")


@pytest.mark.process
def test_process_order_of_the_whole_command_set(supervise, order):
    s = supervise({"a.svc": svc(
        order, "trap 'echo term >> ORDER; exit 0' TERM; echo main >> ORDER; "
        "sleep 1000 & wait", stable_secs=0,
        condition="echo condition >> ORDER",
        exec_pre=["echo pre1 >> ORDER", "echo pre2 >> ORDER"],
        exec_post="sleep 0.5; echo post >> ORDER",
        exec_stop="echo stop $MAINPID >> ORDER",
        exec_stop_post="echo stop_post >> ORDER")})
    s.wait_state("a", "FULL_TRUST")
    assert s.status()["a"].get("reason", "").startswith(("exec_post", "condition", "exec_pre"))
    s.wait_state("a", "FUNDAMENTAL")
    assert order_of(order)[-1] == "post", "promoted only after exec_post"
    s.wait_trapped("a")
    pid = int(s.status()["a"]["pid"])
    assert s.ctl("stop", "a").stdout.startswith("ok: exec_stop 1/1")
    s.wait(lambda: "stop_post" in order_of(order), 10, "exec_stop_post")
    got = order_of(order)
    assert got[:3] == ["condition", "pre1", "pre2"]
    assert set(got[3:5]) == {"main", "post"}     # a simple service's main runs beside it
    assert got[5:] == ["stop %d" % pid, "term", "stop_post"]
    assert s.state("a") == "EXCISED"


@pytest.mark.process
def test_process_a_failing_exec_pre_fails_the_start(supervise, order):
    s = supervise({"bad.svc": svc(order, "echo main >> ORDER; exec sleep 1000",
                                  max_restarts=10, exec_pre="echo pre >> ORDER; exit 3",
                                  exec_stop_post="echo stop_post >> ORDER")})
    s.wait(lambda: "stop_post" in order_of(order), 10, "exec_stop_post after it")
    assert order_of(order)[:2] == ["pre", "stop_post"] and "main" not in order_of(order)
    assert s.state("bad") in ("RECOVERY", "NEW_PROCESS", "FULL_TRUST")
    assert ext_entry(s, "bad")["failures"] >= 1
    assert "start-failed" in s.events("bad")


@pytest.mark.process
def test_process_a_dash_prefixed_exec_pre_may_fail(supervise, order):
    text = svc(order, "echo main >> ORDER; exec sleep 1000", stable_secs=0)
    text += "exec_pre=-:/bin/sh -c \"echo pre >> %s; exit 5\"\n" % order
    s = supervise({"a.svc": text})
    s.wait_state("a", "FUNDAMENTAL")
    # stable_secs=0: promoted at its spawn, maybe before its shell wrote its line
    s.wait(lambda: len(order_of(order)) >= 2, 10, "main's line")
    assert order_of(order) == ["pre", "main"] and ext_entry(s, "a")["failures"] == 0


@pytest.mark.process
def test_process_condition_exit_1_skips_without_a_failure(supervise, order):
    s = supervise({"skip.svc": svc(order, "echo main >> ORDER; exec sleep 1000",
                                   condition="echo condition >> ORDER; exit 1"),
                   "after.svc": "exec=/bin/true\noneshot=1\ndep=skip\n",
                   "fail.svc": svc(order, "exec sleep 1000", condition="exit 255",
                                   max_restarts=10)})
    s.wait_state("skip", "PERFECT")
    s.wait_state("after", "PERFECT")           # a skipped dependency does not hold it
    assert order_of(order) == ["condition"]
    assert "start skipped" in s.status()["skip"]["reason"]
    assert ext_entry(s, "skip")["failures"] == 0 and "condition-skip" in s.events("skip")
    s.wait(lambda: ext_entry(s, "fail")["failures"] >= 1, 10, "condition 255 failing")


@pytest.mark.process
def test_process_exec_reload_runs_instead_of_sighup(supervise, order):
    s = supervise({"a.svc": svc(order, "trap 'echo hup >> ORDER' HUP; "
                                "while :; do sleep 0.1; done", stable_secs=0,
                                exec_reload="echo reload $MAINPID >> ORDER")})
    s.wait_state("a", "FUNDAMENTAL")
    pid = int(s.status()["a"]["pid"])
    assert s.ctl("signal", "a", "HUP").stdout.startswith("ok: exec_reload")
    s.wait(lambda: order_of(order), 10, "the reload")
    time.sleep(0.5)
    assert order_of(order) == ["reload %d" % pid]
    assert int(s.status()["a"]["pid"]) == pid and s.state("a") == "FUNDAMENTAL"


@pytest.mark.process
def test_process_exec_stop_post_runs_after_a_crash(supervise, order):
    s = supervise({"a.svc": svc(order, "echo main >> ORDER; sleep 0.3; exit 3",
                                stable_secs=0, max_restarts=10,
                                exec_stop="echo stop [$MAINPID] >> ORDER",
                                exec_stop_post="echo stop_post >> ORDER")})
    s.wait(lambda: "stop_post" in order_of(order), 10, "exec_stop_post after the crash")
    assert order_of(order)[:3] == ["main", "stop []", "stop_post"]
    s.wait(lambda: order_of(order).count("main") >= 2, 10, "the respawn")


@pytest.mark.process
def test_process_remain_after_exit_stops_with_its_commands(supervise, order):
    s = supervise({"a.svc": svc(order, "echo main >> ORDER", oneshot=1, remain_after_exit=1,
                                exec_post="echo post >> ORDER",
                                exec_stop="echo stop >> ORDER",
                                exec_stop_post="echo stop_post >> ORDER")})
    s.wait_state("a", "PERFECT")
    time.sleep(0.3)
    assert order_of(order) == ["main", "post"]
    s.ctl("stop", "a")
    s.wait(lambda: "stop_post" in order_of(order), 10, "its stop")
    assert order_of(order) == ["main", "post", "stop", "stop_post"]
    assert s.state("a") == "EXCISED"


DAEMON = "( sleep 1000 & echo $! > %s ) ; exit 0"


@pytest.mark.process
@pytest.mark.parametrize("with_pid_file", [True, False])
def test_process_forking_is_tracked_and_restarted(supervise, tmp_path, with_pid_file):
    pid_path = str(tmp_path / "daemon.pid")
    seen = str(tmp_path / "seen.pid")
    keys = {"forking": 1, "restart": "on-failure", "max_restarts": 10}
    if with_pid_file:
        keys["pid_file"] = pid_path
    s = supervise({"d.svc": svc("", DAEMON % (pid_path if with_pid_file else seen), **keys)})
    s.wait_state("d", "FUNDAMENTAL")
    daemon = int(open(pid_path if with_pid_file else seen).read())
    assert int(s.status()["d"]["pid"]) == daemon and alive(daemon)
    assert "forked" in s.events("d")
    os.kill(daemon, signal.SIGKILL)
    s.wait(lambda: s.status()["d"].get("pid") not in ("0", str(daemon)) and
           s.state("d") == "FUNDAMENTAL", 15, "the daemon's death noticed, restarted")
    assert "died" in s.events("d")
    again = int(s.status()["d"]["pid"])
    assert again != daemon and alive(again)
    s.ctl("stop", "d")
    s.wait_state("d", "EXCISED")
    s.wait(lambda: not alive(again), 10, "the daemon stopped")


@pytest.mark.process
def test_process_restart_on_failure_and_success_exit_status(supervise, tmp_path):
    runs = str(tmp_path / "runs")

    def counting(name, code, **keys):
        return svc("", "echo %s >> %s; sleep 0.3; exit %d" % (name, runs, code),
                   restart="on-failure", stable_secs=0, **keys)
    s = supervise({"zero.svc": counting("zero", 0), "one.svc": counting("one", 1),
                   "three.svc": counting("three", 3, success_exit_status=3)},
                  scale=0.1)
    s.wait_state("zero", "PERFECT")
    s.wait_state("three", "PERFECT")
    s.wait(lambda: order_of(runs).count("one") >= 3, 15, "exit 1 restarted")
    time.sleep(0.5)
    assert order_of(runs).count("zero") == 1 and order_of(runs).count("three") == 1
    assert "restart=on-failure" in s.status()["three"]["reason"]
    assert ext_entry(s, "zero")["failures"] == 0


@pytest.mark.process
def test_process_restart_prevent_and_force(supervise, tmp_path):
    runs = str(tmp_path / "runs")
    s = supervise({
        "prevent.svc": svc("", "echo prevent >> %s; sleep 0.2; exit 4" % runs,
                           restart="always", restart_prevent_exit_status=4, stable_secs=0),
        "force.svc": svc("", "echo force >> %s; sleep 0.2; exit 0" % runs,
                         restart="no", restart_force_exit_status=0, stable_secs=0,
                         max_restarts=50)}, scale=0.1)
    s.wait_state("prevent", "EXCISED")
    s.wait(lambda: order_of(runs).count("force") >= 3, 15, "exit 0 forced to restart")
    assert order_of(runs).count("prevent") == 1


@pytest.mark.process
def test_process_kill_signal_sigint_is_what_the_stop_sends(supervise, order):
    s = supervise({"a.svc": svc(order, "trap 'echo int >> ORDER; exit 0' INT; "
                                "trap 'echo term >> ORDER; exit 0' TERM; "
                                "while :; do sleep 0.1; done", stable_secs=0,
                                kill_signal="SIGINT")})
    s.wait_state("a", "FUNDAMENTAL")
    s.wait_trapped("a", signal.SIGINT, signal.SIGTERM)
    assert s.ctl("stop", "a").stdout.startswith("ok: SIGINT")
    s.wait_state("a", "EXCISED")
    assert order_of(order) == ["int"]


@pytest.mark.process
def test_process_send_sigkill_0_leaves_a_term_ignoring_process(supervise, order):
    s = supervise({"a.svc": svc(order, "trap '' TERM; echo main >> ORDER; "
                                "while :; do sleep 0.1; done", stable_secs=0,
                                send_sigkill=0, stop_timeout_sec=1)})
    s.wait_state("a", "FUNDAMENTAL")
    s.wait_trapped("a")
    pid = int(s.status()["a"]["pid"])
    s.ctl("stop", "a")
    s.wait_state("a", "EXCISED", timeout=5)
    try:
        time.sleep(0.5)
        assert alive(pid), "never SIGKILLed"
        assert "left running (send_sigkill=0)" in s.status()["a"]["reason"]
        assert "stop-abandoned" in s.events("a")
    finally:
        os.kill(pid, signal.SIGKILL)
