"""The boot as a timeline: ``schema-ctl timing --kv`` read back, and the two text views
drawn from it, ``blame`` and ``critical-chain`` (the chart is ``plot.py``).

Every instant is one PID 1 recorded at a transition (``lifecycle.Service``: the first
spawn and the first readiness of each service, the current state's start), on the
monotonic clock; here they become seconds since schema-init started.  For a boot the
first run is the one that counts: a service restarted an hour later still shows when
it first came up.

Pure: text in, lines out.
"""

STARTING_STATES = ("NEW_PROCESS", "FULL_TRUST")
RESTING_STATES = ("FUNDAMENTAL", "PERFECT", "EXCISED", "DORMANT")


class ServiceTimes:
    __slots__ = ("name", "state", "kind", "deps", "spawned", "ready", "boot_spawned",
                 "boot_ready", "since")

    def __init__(self, name):
        self.name = name
        self.state = "NEW_PROCESS"
        self.kind = "daemon"
        self.deps = ()
        self.spawned = self.ready = self.boot_spawned = self.boot_ready = None
        self.since = None

    @property
    def activation(self):
        """Seconds from its first spawn to its first readiness (None: never ready)."""
        if self.boot_spawned is None or self.boot_ready is None:
            return None
        return max(0.0, self.boot_ready - self.boot_spawned)


class Timeline:
    """``timing --kv`` parsed: instants are seconds since schema-init started (as PID 1
    the kernel's own time is ``kernel`` seconds before that)."""

    def __init__(self):
        self.kernel = 0.0             # the kernel's time before schema-init (PID 1 only)
        self.pid1 = False
        self.now = 0.0
        self.services = {}            # name -> ServiceTimes, in table order
        self.groups = {}              # name -> [member names]

    @classmethod
    def parse(cls, text):
        timeline = cls()
        values = {}
        for line in text.splitlines():
            key, eq, value = line.partition("=")
            if not eq:
                continue
            if key.startswith("service."):
                name, _, field = key[len("service."):].rpartition(".")
                if name:
                    values.setdefault(name, {})[field] = value
            elif key.startswith("group.") and key.endswith(".members"):
                timeline.groups[key[len("group."):-len(".members")]] = value.split()
            else:
                values.setdefault("", {})[key] = value
        top = values.pop("", {})
        origin = _seconds(top.get("supervisor_start")) or 0.0
        kernel_to_init = _seconds(top.get("kernel_to_init")) or 0.0
        timeline.pid1 = top.get("supervisor_pid") == "1"
        # as PID 1 the monotonic clock starts with the kernel: its time is shown;
        # otherwise that number is the host's uptime, not this boot's
        timeline.kernel = kernel_to_init if timeline.pid1 else 0.0
        timeline.now = (_seconds(top.get("now")) or origin) - origin
        for name, fields in values.items():
            times = ServiceTimes(name)
            times.state = fields.get("state", times.state)
            times.kind = fields.get("kind", times.kind)
            times.deps = tuple(fields.get("deps", "").split())
            for field in ("spawned", "ready", "boot_spawned", "boot_ready", "since"):
                instant = _seconds(fields.get(field))
                setattr(times, field, None if instant is None else instant - origin)
            timeline.services[name] = times
        return timeline

    def members(self, dep):
        """The services a ``dep=`` name stands for (a group: its members)."""
        if dep in self.services:
            return [dep]
        return [m for m in self.groups.get(dep, ()) if m in self.services]

    def last_ready(self):
        """The service whose first readiness came last (the end of the boot), or None."""
        ready = [s for s in self.services.values() if s.boot_ready is not None]
        return max(ready, key=lambda s: s.boot_ready).name if ready else None


def _seconds(text):
    try:
        return float(text) if text not in (None, "") else None
    except ValueError:
        return None


def blame(timeline):
    """``systemd-analyze blame``'s view: each service by its time from first spawn to
    first readiness, slowest first; those never ready after, with their state."""
    ready = sorted((s for s in timeline.services.values() if s.activation is not None),
                   key=lambda s: (-s.activation, s.name))
    lines = ["%10s %s" % (_duration(s.activation), s.name) for s in ready]
    for s in timeline.services.values():
        if s.activation is None:
            why = "never spawned" if s.boot_spawned is None else "never ready"
            lines.append("%10s %s (%s, %s)" % ("-", s.name, why, s.state))
    return lines


def decisive_dependency(timeline, service):
    """The dependency that decided when ``service`` could start: of the services its
    ``dep=`` names (a group: its members), the one that became ready last, no later
    than the service's first spawn.  None: nothing held it back."""
    if service.boot_spawned is None:
        return None
    candidates = []
    for dep in service.deps:
        for name in timeline.members(dep):
            other = timeline.services[name]
            if other.boot_ready is not None and other.boot_ready <= service.boot_spawned + 1e-6:
                candidates.append(other)
    if not candidates:
        return None
    return max(candidates, key=lambda s: (s.boot_ready, s.name))


CHAIN_LEGEND = ["The time after @ is when the service became ready (seconds since "
                "schema-init started),",
                "the time after + how long it took from its spawn."]


def critical_chain(timeline, name=None):
    """``systemd-analyze critical-chain``'s view: from ``name`` (default: the service
    ready last) down the dependencies that decided each start, one link a line."""
    if name is None:
        name = timeline.last_ready()
        if name is None:
            return ["no service has become ready yet"]
    if name not in timeline.services:
        return ["err: not found: %s" % name]
    lines = list(CHAIN_LEGEND)
    if timeline.pid1:
        lines.append("The kernel ran %s before schema-init started." % _duration(timeline.kernel))
    lines.append("")
    service, depth, seen = timeline.services[name], 0, set()
    while service is not None and service.name not in seen:
        seen.add(service.name)
        lines.append("%s%s %s" % ("  " * (depth - 1) + "\u2514\u2500" if depth else "",
                                  service.name, _link_times(service)))
        service = decisive_dependency(timeline, service)
        depth += 1
    return lines


def _link_times(service):
    if service.boot_ready is None:
        spawned = "" if service.boot_spawned is None else \
            " (spawned @%s)" % _duration(service.boot_spawned)
        return "not ready: %s%s" % (service.state, spawned)
    return "@%s +%s" % (_duration(service.boot_ready), _duration(service.activation))


def _duration(seconds):
    if seconds >= 60:
        return "%dmin %.3fs" % (seconds // 60, seconds % 60)
    if seconds >= 1:
        return "%.3fs" % seconds
    return "%dms" % round(seconds * 1000)

