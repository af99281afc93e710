"""Dependency resolution, cycles through groups, the readiness gate, group worst case."""

from hypothesis import given, strategies as st

import cost
from schema_init.core import config, graph, schema as s


def svc(name, *deps, critical=False, timer=False):
    extra = {"on_boot_sec": 5} if timer else {}
    return config.ServiceSpec(name=name, exec="/bin/true", deps=tuple(deps), critical=critical,
                              path="/s/%s.svc" % name,
                              lines={"dep:" + d: i + 2 for i, d in enumerate(deps)}, **extra)


def grp(name, *members):
    return config.GroupSpec(name, members, "/s/%s.grp" % name,
                            {m: i + 2 for i, m in enumerate(members)})


def test_deps_resolve_to_services_before_groups():
    g = graph.resolve([svc("a"), svc("net"), svc("b", "net", "stack")], [grp("net", "a"),
                                                                           grp("stack", "a")])
    assert g.deps["b"] == (("service", "net"), ("group", "stack"))
    assert g.dependents["a"] == ["b"] and g.dependents["net"] == ["b"]


def test_unknown_dep_is_reported_and_never_satisfied():
    g = graph.resolve([svc("a", "typo")], [])
    assert [d.format() for d in g.diagnostics] == [
        "/s/a.svc:2: error: dep: unknown dependency 'typo': no service or group has that "
        "name; 'a' will wait for it"]
    assert graph.gate(g, "a", lambda n: s.FUNDAMENTAL) == (False, False, "typo")


def test_group_with_unknown_member_is_a_load_error():
    g = graph.resolve([svc("a"), svc("b", "stack")], [grp("stack", "a", "ghost")])
    assert "stack" not in g.groups
    assert [d.format() for d in g.diagnostics] == [
        "/s/b.svc:2: error: dep: unknown dependency 'stack': no service or group has that "
        "name; 'b' will wait for it",
        "/s/stack.grp:3: error: member: 'ghost' is not a service; the group 'stack' is not "
        "loaded"]


def test_self_dependency_is_a_cycle():
    g = graph.resolve([svc("a", "a"), svc("b")], [])
    assert g.cycles == [["a", "a"]]
    assert g.excised == {"a": "dependency cycle: a -> a"}


def test_cycle_between_services_is_reported_as_a_path_and_excised():
    g = graph.resolve([svc("a", "b"), svc("b", "c"), svc("c", "a"), svc("d", "a")], [])
    assert g.cycles == [["a", "b", "c", "a"]]
    assert set(g.excised) == {"a", "b", "c"}
    assert g.excised["b"] == "dependency cycle: a -> b -> c -> a"
    assert [d.format() for d in g.diagnostics] == [
        "/s/a.svc:2: error: dep: dependency cycle: a -> b -> c -> a; 'a', 'b', 'c' will be "
        "EXCISED"]


def test_cycle_through_group_is_reported():
    """The original only looked at service-to-service edges."""
    g = graph.resolve([svc("a", "stack"), svc("b", "a"), svc("c")], [grp("stack", "b", "c")])
    assert g.cycles == [["a", "stack", "b", "a"]]
    assert set(g.excised) == {"a", "b"}
    assert "c" not in g.excised


def test_two_separate_cycles_are_both_reported():
    g = graph.resolve([svc("a", "b"), svc("b", "a"), svc("x", "y"), svc("y", "x"), svc("z")], [])
    assert g.cycles == [["a", "b", "a"], ["x", "y", "x"]]


def test_boot_order_levels():
    g = graph.resolve([svc("app", "stack"), svc("db", "disk"), svc("disk"), svc("web", "db")],
                      [grp("stack", "web", "db")])
    assert graph.boot_order(g) == [["disk"], ["db"], ["web"], ["app"]]


def test_gate_soft_and_critical_excised_deps():
    """A non-critical EXCISED dep lets dependents start and promote."""
    g = graph.resolve([svc("soft"), svc("hard", critical=True), svc("a", "soft"),
                       svc("b", "hard")], [])
    states = {"soft": s.EXCISED, "hard": s.EXCISED}
    assert graph.gate(g, "a", states.get) == (True, True, None)
    assert graph.gate(g, "b", states.get) == (False, False, "hard")
    states = {"soft": s.FULL_TRUST, "hard": s.PERFECT}
    assert graph.gate(g, "a", states.get) == (True, False, "soft")
    assert graph.gate(g, "b", states.get) == (True, True, None)


def test_gate_on_group_treats_firing_timers_as_perfect():
    g = graph.resolve([svc("t", timer=True), svc("d"), svc("a", "stack")],
                      [grp("stack", "t", "d")])
    states = {"t": s.FULL_TRUST, "d": s.FUNDAMENTAL}
    assert graph.gate(g, "a", states.get) == (True, True, None)
    states = {"t": s.PERFECT, "d": s.DORMANT}
    assert graph.gate(g, "a", states.get) == (True, False, "stack")


def test_dependency_on_a_timer_warns():
    g = graph.resolve([svc("t", timer=True), svc("a", "t")], [])
    assert [d.severity for d in g.diagnostics] == ["warning"]


def test_group_state_is_true_worst_case():
    """The original returned the first bad member, and DORMANT looked healthy."""
    assert graph.group_state([]) == s.PERFECT
    assert graph.group_state([s.PERFECT, s.PERFECT]) == s.PERFECT
    assert graph.group_state([s.PERFECT, s.FUNDAMENTAL]) == s.FUNDAMENTAL
    assert graph.group_state([s.FUNDAMENTAL, s.DORMANT]) == s.DORMANT
    assert graph.group_state([s.RECOVERY, s.EXCISED]) == s.EXCISED
    assert graph.group_state([s.RECOVERY, s.FRICTION]) == s.FRICTION
    assert graph.group_state([s.FULL_TRUST, s.FUNDAMENTAL]) == s.NEW_PROCESS
    assert graph.group_state([s.SETTLED, s.FUNDAMENTAL]) == s.SETTLED
    assert graph.group_member_state(s.FULL_TRUST, True) == s.PERFECT
    assert graph.group_member_state(s.FULL_TRUST, False) == s.FULL_TRUST


ORDER = [s.EXCISED, s.FRICTION, s.RECOVERY, s.DORMANT, s.NEW_PROCESS, s.SETTLED,
         s.FUNDAMENTAL, s.PERFECT]


@given(st.lists(st.sampled_from(ORDER + [s.FULL_TRUST]), min_size=1, max_size=12))
def test_group_state_does_not_depend_on_member_order(states):
    result = graph.group_state(states)
    assert result == graph.group_state(list(reversed(states)))
    normalised = [s.NEW_PROCESS if x == s.FULL_TRUST else x for x in states]
    assert result == min(normalised, key=ORDER.index)


NAMES = st.sampled_from(["a", "b", "c", "d", "e"])


@given(st.dictionaries(NAMES, st.lists(NAMES, max_size=3, unique=True), min_size=1))
def test_every_cycle_path_follows_real_edges_and_acyclic_services_stay(deps):
    specs = [svc(n, *sorted(ds)) for n, ds in sorted(deps.items())]
    specs = [x for x in specs]
    g = graph.resolve(specs, [])
    for path in g.cycles:
        assert path[0] == path[-1]
        for a, b in zip(path, path[1:]):
            assert b in deps.get(a, ())
    # a service is excised only if it can reach itself
    for name in deps:
        seen, todo = set(), list(deps[name])
        while todo:
            n = todo.pop()
            if n not in seen and n in deps:
                seen.add(n)
                todo.extend(deps[n])
        assert (name in g.excised) == (name in seen)


def chain(length):
    return [config.ServiceSpec(name="s0", exec="/bin/true")] + [
        config.ServiceSpec(name="s%d" % i, exec="/bin/true", deps=("s%d" % (i - 1),))
        for i in range(1, length)]


def test_boot_order_of_a_deep_chain_is_linear_in_its_length():
    """Resolving and ordering a chain twice as long runs twice the lines of code (a
    quadratic walk would run four times as many); 10,000 deep it still comes out whole
    (no recursion limit).  The seconds: bench/supervisor_bench.py."""
    def order(specs):
        return graph.boot_order(graph.resolve(specs, []))
    levels, short = cost.lines_run(order, chain(2000))
    assert len(levels) == 2000
    _, double = cost.lines_run(order, chain(4000))
    assert double < 2.5 * short, "a chain of 2000: %d lines run, of 4000: %d" % (short, double)
    levels = order(chain(10000))
    assert len(levels) == 10000 and levels[0] == ["s0"] and levels[-1] == ["s9999"]


def after_svc(name, *after):
    return config.ServiceSpec(name=name, exec="/bin/true", after=tuple(after),
                              path="/s/%s.svc" % name,
                              lines={"after:" + d: i + 2 for i, d in enumerate(after)})


def test_after_waits_while_its_target_starts_and_not_once_it_failed():
    """systemd's After= alone: ssh after auditd starts once auditd's start is over, up or
    failed (a container's auditd never comes up; ssh must)."""
    g = graph.resolve([svc("auditd", critical=True), after_svc("ssh", "auditd")], [])
    assert g.deps["ssh"] == (("after-service", "auditd"),)
    assert g.dependents["auditd"] == ["ssh"]          # its changes wake ssh's gate
    for state in (s.NEW_PROCESS, s.FULL_TRUST):
        assert graph.gate(g, "ssh", lambda n, st=state: st) == (True, False, "auditd")
    for state in (s.FUNDAMENTAL, s.PERFECT, s.SETTLED, s.RECOVERY, s.FRICTION, s.DORMANT,
                  s.EXCISED):
        assert graph.gate(g, "ssh", lambda n, st=state: st) == (True, True, None), state


def test_dep_on_the_same_name_wins_over_after():
    g = graph.resolve([svc("db"), config.ServiceSpec(
        name="app", exec="/bin/true", deps=("db",), after=("db",), path="/s/app.svc")], [])
    assert g.deps["app"] == (("service", "db"),)
    assert graph.gate(g, "app", lambda n: s.DORMANT) == (True, False, "db")


def test_after_a_group_and_after_an_unknown_name():
    g = graph.resolve([svc("a"), svc("b"), after_svc("c", "net", "ghost")], [grp("net", "a", "b")])
    assert g.deps["c"] == (("after-group", "net"),)
    assert [d.format() for d in g.diagnostics] == [
        "/s/c.svc:3: warning: after: no service or group is called 'ghost': nothing to "
        "start after"]
    states = {"a": s.FUNDAMENTAL, "b": s.FULL_TRUST}
    assert graph.gate(g, "c", states.get) == (True, False, "net")
    states["b"] = s.EXCISED
    assert graph.gate(g, "c", states.get) == (True, True, None)


def test_an_after_cycle_is_a_cycle():
    g = graph.resolve([after_svc("a", "b"), after_svc("b", "a")], [])
    assert g.cycles and "a -> b -> a" in " ".join(d.format() for d in g.diagnostics)
