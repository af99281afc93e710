"""Dependencies and groups: resolution, cycles, the readiness gate, group aggregation.

Pure: takes specs (and, for the gate, a function giving a service's current state)
and returns facts and diagnostics.  Service names shadow group names in ``dep=``.

Decisions kept here (docs/decisions.md):

* an unknown ``dep=`` name is an error in the service's file and never satisfied;
* a group member that names no service rejects the group (a load-time error);
* cycles are found through services *and* groups; every service on a cycle is
  EXCISED with the cycle as its reason, everything else boots;
* a group's state is the true worst case of its members;
* a dependency on a non-critical EXCISED service (or on a group whose excised members
  are all non-critical) is satisfied: the dependent spawns and promotes normally.
"""

from . import config, schema

SERVICE, GROUP, UNKNOWN = "service", "group", "unknown"
# after= (systemd's After= alone): ordered after it while it starts, never held by its
# failure; a name nothing has is no wait at all
AFTER_SERVICE, AFTER_GROUP = "after-service", "after-group"
AFTER_KINDS = {AFTER_SERVICE: SERVICE, AFTER_GROUP: GROUP}
# a start that ended in a failure: what after= no longer waits for
FAILED_STATES = (schema.RECOVERY, schema.FRICTION, schema.DORMANT, schema.EXCISED)

# Worst first: the aggregate of a group is the first of these any member is in.
_GROUP_SEVERITY = (schema.EXCISED, schema.FRICTION, schema.RECOVERY, schema.DORMANT,
                   schema.NEW_PROCESS, schema.SETTLED, schema.FUNDAMENTAL, schema.PERFECT)


class Graph:
    """The resolved configuration."""

    __slots__ = ("services", "groups", "deps", "dependents", "cycles", "excised",
                 "diagnostics")

    def __init__(self):
        self.services = {}      # name -> ServiceSpec, in load order
        self.groups = {}        # name -> GroupSpec, only groups whose members all resolve
        self.deps = {}          # service name -> ((kind, target), ...) in declared order
        self.dependents = {}    # service name -> [service names that wait for it] (if any)
        self.cycles = []        # [[name, name, ..., first name again]]
        self.excised = {}       # service name -> reason, for services on a cycle
        self.diagnostics = []


def _diag(spec_path, line, key, severity, message):
    return config.Diagnostic(spec_path, line, key, severity, message)


def resolve(services, groups):
    """Resolve ``dep=`` names and group members, and find cycles."""
    graph = Graph()
    for spec in services:
        graph.services[spec.name] = spec
    for group in groups:
        missing = [m for m in group.members if m not in graph.services]
        for member in missing:
            graph.diagnostics.append(_diag(
                group.path, group.line_of_member(member), "member", config.ERROR,
                "'%s' is not a service; the group '%s' is not loaded" % (member, group.name)))
        if not missing:
            graph.groups[group.name] = group

    for spec in services:
        resolved = []
        for dep in spec.deps:
            if dep in graph.services:
                kind = SERVICE
                if graph.services[dep].is_timer:
                    graph.diagnostics.append(_diag(
                        spec.path, spec.line_of("dep:" + dep), "dep", config.WARNING,
                        "'%s' is a timer: '%s' waits while it runs" % (dep, spec.name)))
            elif dep in graph.groups:
                kind = GROUP
            else:
                kind = UNKNOWN
                graph.diagnostics.append(_diag(
                    spec.path, spec.line_of("dep:" + dep), "dep", config.ERROR,
                    "unknown dependency '%s': no service or group has that name; "
                    "'%s' will wait for it" % (dep, spec.name)))
            resolved.append((kind, dep))
        for dep in spec.after:
            if dep in spec.deps:
                continue                 # dep= waits for it already
            if dep in graph.services:
                resolved.append((AFTER_SERVICE, dep))
            elif dep in graph.groups:
                resolved.append((AFTER_GROUP, dep))
            else:
                graph.diagnostics.append(_diag(
                    spec.path, spec.line_of("after:" + dep), "after", config.WARNING,
                    "no service or group is called '%s': nothing to start after" % dep))
        graph.deps[spec.name] = tuple(resolved)

    for name, deps in graph.deps.items():
        for target in sorted(set(_service_targets(graph, deps))):
            graph.dependents.setdefault(target, []).append(name)

    _find_cycles(graph)
    graph.diagnostics.sort(key=config.Diagnostic.sort_key)
    return graph


def _service_targets(graph, deps):
    for kind, target in deps:
        kind = AFTER_KINDS.get(kind, kind)
        if kind == SERVICE:
            yield target
        elif kind == GROUP:
            yield from graph.groups[target].members


def _edges(graph, node):
    kind, name = node
    if kind == SERVICE:
        return [(AFTER_KINDS.get(k, k), t) for k, t in graph.deps[name] if k != UNKNOWN]
    return [(SERVICE, m) for m in graph.groups[name].members]


def _strongly_connected(graph):
    """Tarjan's algorithm, iterative, over service and group nodes; deterministic order."""
    nodes = [(SERVICE, n) for n in graph.services] + [(GROUP, n) for n in graph.groups]
    index, low, on_stack, stack, components = {}, {}, set(), [], []
    counter = 0
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(_edges(graph, root)))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            advanced = False
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(_edges(graph, nxt))))
                    advanced = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(component)
    return components, nodes


def _cycle_path(graph, component, order):
    """One cycle inside a strongly connected component, starting at its first node."""
    members = set(component)
    start = min(component, key=order.__getitem__)
    # Breadth-first search from start back to start, inside the component.
    previous = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in _edges(graph, node):
                if nxt not in members:
                    continue
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    path.reverse()
                    return [name for _, name in path] + [start[1]]
                if nxt not in previous:
                    previous[nxt] = node
                    following.append(nxt)
        frontier = following
    return [start[1], start[1]]


def _find_cycles(graph):
    components, nodes = _strongly_connected(graph)
    order = {node: i for i, node in enumerate(nodes)}
    cyclic = []
    for component in components:
        node = component[0]
        if len(component) > 1 or node in _edges(graph, node):
            cyclic.append(component)
    cyclic.sort(key=lambda c: min(order[n] for n in c))
    for component in cyclic:
        path = _cycle_path(graph, component, order)
        graph.cycles.append(path)
        text = " -> ".join(path)
        reason = "dependency cycle: %s" % text
        services = [name for kind, name in sorted(component, key=order.__getitem__)
                    if kind == SERVICE]
        for name in services:
            graph.excised[name] = reason
        first = graph.services[services[0]] if services else None
        if first is not None:
            second = path[1]
            graph.diagnostics.append(_diag(
                first.path, first.line_of("dep:" + second), "dep", config.ERROR,
                "%s; %s will be EXCISED" % (reason, ", ".join("'%s'" % s for s in services))))


def boot_order(graph):
    """Services in levels: each level waits only for services of earlier levels.

    Services on a cycle are left out (they are EXCISED); unknown deps are ignored here
    (the service waits for ever, which its diagnostic says).  Linear in services and
    edges (Kahn's algorithm by levels), so a 10,000-deep chain costs nothing.
    """
    remaining = [n for n in graph.services if n not in graph.excised]
    waiting_on = {}
    for name in remaining:
        targets = {t for t in _service_targets(graph, graph.deps[name])
                   if t not in graph.excised and t != name}
        waiting_on[name] = len(targets)
    position = {name: i for i, name in enumerate(remaining)}
    level = [n for n in remaining if waiting_on[n] == 0]
    levels, placed = [], 0
    while level:
        levels.append(level)
        placed += len(level)
        following = []
        for name in level:
            for dependent in graph.dependents.get(name, ()):
                if dependent in waiting_on:
                    waiting_on[dependent] -= 1
                    if waiting_on[dependent] == 0:
                        following.append(dependent)
        level = sorted(following, key=position.__getitem__)
    if placed < len(remaining):      # cannot happen once cycles are excised; stay total
        levels.append([n for n in remaining if waiting_on[n] > 0])
    return levels


def dependency_satisfied(state, critical):
    """The readiness gate for one service dependency."""
    if state in schema.SATISFYING_STATES:
        return True
    return state == schema.EXCISED and not critical


def group_member_state(state, is_timer):
    """A firing timer does not make its group 'starting': it is shown as PERFECT."""
    if is_timer and state in (schema.NEW_PROCESS, schema.FULL_TRUST):
        return schema.PERFECT
    return state


def group_state(member_states):
    """True worst case of the members' (projected) states; PERFECT when empty."""
    worst = len(_GROUP_SEVERITY) - 1
    for state in member_states:
        if state == schema.FULL_TRUST:
            state = schema.NEW_PROCESS
        rank = _GROUP_SEVERITY.index(state) if state in _GROUP_SEVERITY else 0
        if rank < worst:
            worst = rank
    return _GROUP_SEVERITY[worst]


def gate(graph, name, state_of):
    """Can ``name`` start?  Returns ``(present, ready, blocker)``.

    ``present``: every dep resolves and none is a critical EXCISED service (F8_DEP_PRESENT).
    ``ready``: every dep satisfies the readiness gate (F8_DEP_STATE).
    ``blocker``: the first dep that is not ready, for status and logs (None when ready).
    ``state_of(service_name)`` gives a service's current state.
    """
    present, ready, blocker = True, True, None
    for kind, target in graph.deps.get(name, ()):
        if kind == UNKNOWN:
            present = ready = False
            blocker = blocker or target
            continue
        ordering = kind in AFTER_KINDS
        kind = AFTER_KINDS.get(kind, kind)
        members = (target,) if kind == SERVICE else graph.groups[target].members
        for member in members:
            spec = graph.services[member]
            state = state_of(member)
            if kind == GROUP:
                state = group_member_state(state, spec.is_timer)
            if ordering:
                if not (state in FAILED_STATES or dependency_satisfied(state, False)):
                    ready = False
                    blocker = blocker or target
                continue
            if state == schema.EXCISED and spec.critical:
                present = False
            if not dependency_satisfied(state, spec.critical):
                ready = False
                blocker = blocker or target
    return present, ready, blocker

