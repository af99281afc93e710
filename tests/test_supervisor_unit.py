"""The supervisor's decisions with a fake OS: plain calls, a clock passed in, no process."""

import signal

from fakes import FakeOps
from schema_init.core import config, graph, schema, supervisor


def spec(name, *deps, **keys):
    return config.ServiceSpec(name=name, exec=keys.pop("exec", "/bin/true"), deps=deps, **keys)


def make(*specs, groups=(), now=0.0, **kwargs):
    ops = FakeOps()
    sup = supervisor.Supervisor(graph.resolve(list(specs), list(groups)), ops, now, 1e9,
                                env={"SLOT_ID": "5"}, **kwargs)
    sup.settle(now)
    return sup, ops


def pid_of(sup, name):
    return sup.services[name].pid


def test_chain_starts_in_dependency_order():
    sup, ops = make(spec("c", "b", stable_secs=0), spec("b", "a", stable_secs=0),
                    spec("a", stable_secs=0))
    assert [name for name, _, _ in ops.spawned] == ["a", "b", "c"]
    assert all(s.state == schema.FUNDAMENTAL for s in sup.ordered())


def test_stable_secs_promotion_is_a_deadline_not_a_poll():
    sup, ops = make(spec("a", stable_secs=10))
    assert sup.services["a"].state == schema.FULL_TRUST
    assert sup.next_deadline() == 10.0
    sup.on_due(9.9, 1e9)
    assert sup.services["a"].state == schema.FULL_TRUST
    sup.on_due(10.0, 1e9)
    assert sup.services["a"].state == schema.FUNDAMENTAL


def test_death_waits_its_cooldown_then_retries():
    sup, ops = make(spec("a", stable_secs=0))
    sup.on_exit(pid_of(sup, "a"), 256, 50.0)           # exit status 1
    a = sup.services["a"]
    assert a.state == schema.RECOVERY and a.due == 51.0 and a.reason == "exited 1"
    sup.on_due(50.5, 1e9)
    assert a.state == schema.RECOVERY
    sup.on_due(51.0, 1e9)
    sup.settle(51.0)
    assert a.state == schema.FUNDAMENTAL and len(ops.spawned) == 2
    assert ("a", "retry") in ops.rails


def test_exhausted_budget_goes_friction_then_dormant_for_300_scaled_seconds():
    sup, ops = make(spec("a", stable_secs=0, max_restarts=2), time_scale=0.5)
    now = 0.0
    for _ in range(2):
        sup.on_exit(pid_of(sup, "a"), 256, now)
        now = sup.services["a"].due
        sup.on_due(now, 1e9)
        sup.settle(now)
    a = sup.services["a"]
    assert a.state == schema.DORMANT and a.due == now + 150.0
    assert [e for n, e in ops.rails][-2:] == ["friction", "dormant"]


def test_failures_reset_after_stable_secs_in_fundamental():
    sup, ops = make(spec("a", stable_secs=5, max_restarts=2))
    sup.on_due(5.0, 1e9)
    sup.on_exit(pid_of(sup, "a"), 256, 6.0)
    sup.on_due(7.0, 1e9)
    sup.settle(7.0)
    sup.on_due(12.0, 1e9)                               # promoted again
    a = sup.services["a"]
    assert a.state == schema.FUNDAMENTAL and a.failures == 1
    sup.on_due(17.0, 1e9)
    assert a.failures == 0


def test_start_timeout_excises_and_kills_asynchronously():
    sup, ops = make(spec("hang", oneshot=True, start_timeout_sec=3, stop_timeout_sec=2),
                    spec("next", "hang", oneshot=True))
    pid = pid_of(sup, "hang")
    sup.on_due(3.0, 1e9)
    sup.settle(3.0)
    assert sup.services["hang"].state == schema.EXCISED
    assert (pid, signal.SIGTERM) in ops.signals
    assert sup.services["next"].state == schema.FULL_TRUST     # a soft dep: it proceeds
    sup.on_due(5.0, 1e9)
    assert (pid, signal.SIGKILL) in ops.signals


def test_slot_gate_refuses_once():
    sup, ops = make(spec("gated", allowed_slot_min=0, allowed_slot_max=3))
    assert sup.services["gated"].state == schema.EXCISED
    assert len([s for s in ops.said if "HAZARD" in s]) == 1
    for t in (1.0, 10.0, 100.0):
        sup.on_due(t, 1e9)
        sup.settle(t)
    assert ops.spawned == [] and len([s for s in ops.said if "HAZARD" in s]) == 1


def test_missing_binary_is_refused_not_spawned():
    sup, ops = make(spec("ghost", exec="/missing"))
    assert ops.spawned == []
    assert sup.services["ghost"].state == schema.RECOVERY
    assert "exec path does not exist" in sup.services["ghost"].reason


def test_instance_environment():
    sup, ops = make(spec("motor@7"), spec("slot@"))
    assert sorted((n, i) for n, _, i in ops.spawned) == [("motor@7", "7"), ("slot@", "5")]


def test_shutdown_stops_dependents_first():
    sup, ops = make(spec("base", stable_secs=0), spec("top", "base", stable_secs=0))
    base, top = pid_of(sup, "base"), pid_of(sup, "top")
    sup.begin_shutdown(0.0)
    assert ops.signals == [(top, signal.SIGTERM)]
    sup.on_exit(top, 15, 0.1)
    assert not sup.shutdown_progress(0.1)
    assert ops.signals[-1] == (base, signal.SIGTERM)
    sup.on_exit(base, 15, 0.2)
    assert sup.shutdown_progress(0.2)


def test_dead_man_token_stops_petting_when_a_service_misses_its_window():
    sup, ops = make(spec("dmt", stable_secs=0, watchdog_timeout_ms=1000), watchdog_interval=0.5)
    sup.on_due(0.0, 1e9)
    assert ops.pets == 1
    sup.cmd_pet("dmt", 0.6)
    sup.on_due(0.6, 1e9)
    assert ops.pets == 2
    sup.on_due(1.7, 1e9)                                 # 1.1 s since the last pet
    assert ops.pets == 2 and any("missed pet window" in s for s in ops.said)
    sup.cmd_pet("dmt", 1.8)
    sup.on_due(1.8, 1e9)
    assert ops.pets == 3


def test_group_state_follows_members():
    sup, ops = make(spec("a", stable_secs=0), spec("b", stable_secs=0, no_restart=True),
                    groups=[config.GroupSpec("g", ("a", "b"))])
    assert sup.group_states["g"] == schema.FUNDAMENTAL
    sup.on_exit(pid_of(sup, "b"), 256, 1.0)
    sup.settle(1.0)
    assert sup.group_states["g"] == schema.EXCISED


def test_a_slot_id_that_is_not_an_ascii_number_is_refused_by_the_gate():
    for slot in ("\u00b2", "\u0663", "9" * 5000, "-1", ""):
        ops = FakeOps()
        sup = supervisor.Supervisor(graph.resolve([spec("gated", allowed_slot_min=0)], []),
                                    ops, 0.0, 1e9, env={"SLOT_ID": slot})
        sup.settle(0.0)
        gated = sup.services["gated"]
        assert gated.state == schema.EXCISED and gated.reason.startswith("slot gate"), slot
        assert ops.spawned == []


def test_status_lists_rejected_files_with_their_reasons():
    from schema_init.core import protocol
    loaded = config.parse_directory("/d", [("a.svc", b"exec=/bin/true\n", None),
                                           ("b.svc", b"stable_secs=1\n", None)])
    sup, ops = make(*loaded.services)
    sup.note_rejected(loaded.diagnostics)
    text = protocol.format_status(sup)
    assert text[-1] == "rejected: /d/b.svc: error: exec: missing: every service needs exec=/path"
    kv = protocol.format_status_kv(sup)
    assert kv[-1] == "rejected.0=/d/b.svc: error: exec: missing: every service needs exec=/path"
    import json
    parsed = json.loads("\n".join(protocol.format_status_json(sup)))
    assert parsed["rejected"] == [text[-1][len("rejected: "):]]
    assert [s["name"] for s in parsed["services"]] == ["a"]


def test_a_ready_path_left_from_before_the_spawn_is_not_readiness():
    """initramfs-tools hands /run over with /run/udev/control still in it: that file,
    there before the spawn, promotes nothing; the daemon's own new one does."""
    ops = FakeOps()
    ops.exists["/run/udev/control"] = (1, 50, 7)                  # the stale socket
    sup = supervisor.Supervisor(graph.resolve([spec("udev", ready_path="/run/udev/control",
                                                    stable_secs=60)], []), ops, 0.0, 1e9)
    sup.settle(0.0)
    udev = sup.services["udev"]
    assert udev.state == schema.FULL_TRUST
    sup.on_ready_change(["udev"], 0.5)                   # an attribute change, same file
    assert udev.state == schema.FULL_TRUST
    ops.exists["/run/udev/control"] = (1, 51, 9)        # unlinked and bound again
    sup.on_ready_change(["udev"], 0.6)
    assert udev.state == schema.FUNDAMENTAL


def test_a_ready_path_gone_and_back_within_the_grace_is_not_lost():
    ops = FakeOps()
    sup = supervisor.Supervisor(graph.resolve([spec("log", ready_path="/dev/log",
                                                    stable_secs=60)], []), ops, 0.0, 1e9)
    sup.settle(0.0)
    ops.exists["/dev/log"] = (1, 10, 1)
    sup.on_ready_change(["log"], 0.1)
    log = sup.services["log"]
    assert log.state == schema.FUNDAMENTAL
    del ops.exists["/dev/log"]                                     # rsyslog rebinding
    sup.on_ready_change(["log"], 5.0)
    assert log.state == schema.FUNDAMENTAL
    assert sup.next_deadline() == 5.0 + supervisor.schedule.READY_LOST_GRACE_SECS
    ops.exists["/dev/log"] = (1, 11, 2)
    sup.on_ready_change(["log"], 5.5)
    sup.on_due(8.0, 1e9)
    assert log.state == schema.FUNDAMENTAL and ("log", "readiness-lost") not in ops.rails
    del ops.exists["/dev/log"]                                     # gone for good
    sup.on_ready_change(["log"], 10.0)
    sup.on_due(11.9, 1e9)
    assert log.state == schema.FUNDAMENTAL
    sup.on_due(12.0, 1e9)
    assert ("log", "readiness-lost") in ops.rails
    assert log.state != schema.FUNDAMENTAL


def test_a_getty_logout_is_not_a_failure_but_a_quick_death_still_is():
    sup, ops = make(spec("getty", session=True, stable_secs=5))
    getty = sup.services["getty"]
    sup.on_due(5.0, 1e9)
    assert getty.state == schema.FUNDAMENTAL
    sup.on_exit(getty.pid, 0, 600.0)                         # the user logged out
    assert ("getty", "session-end") in ops.rails and getty.failures == 0
    sup.on_due(600.0, 1e9)
    sup.settle(600.0)
    assert getty.state == schema.FULL_TRUST and len(ops.spawned) == 2
    sup.on_exit(getty.pid, 0, 600.5)                         # exit 0 before promotion
    assert getty.failures == 1 and ("getty", "died") in ops.rails
