"""The operator's commands: reply lines (without the terminator) for the control socket.

Pure: every state change goes through ``Supervisor.fire``; reading files is asked of
``ops`` (``load_service_file``, ``load_directory``).  :func:`plan_reload` decides a
reload from the running set and the new files without changing anything, so the plan
can be tested and shown before it is applied.
"""

from . import config, graph, lifecycle, schema

EVICT_GRACE_SECS = 3



# What ``signal`` sends (Linux numbering, the same on x86_64, aarch64 and arm).
SIGNAL_NUMBERS = {"HUP": 1, "INT": 2, "QUIT": 3, "KILL": 9, "USR1": 10, "USR2": 12,
                  "TERM": 15, "CONT": 18, "STOP": 19, "WINCH": 28}

def signal_name(number):
    """SIGTERM for 15 (config.SIGNALS' names), SIG<number> for one it has no name for."""
    for name, value in config.SIGNALS.items():
        if value == number:
            return "SIG" + name
    return "SIG%d" % number


class ReloadPlan:
    """What a reload would do.  ``error`` set: the reload is rejected as a whole."""

    __slots__ = ("error", "failed", "graph", "specs", "added", "changed", "removed",
                 "diagnostics")

    def __init__(self, error=None, graph_=None, specs=(), added=(), changed=(), removed=(),
                 diagnostics=(), failed=False):
        self.error = error
        self.failed = failed              # nothing could be loaded (not merely rejected)
        self.graph = graph_
        self.specs = list(specs)          # every spec of the new set, in table order
        self.added = list(added)          # names
        self.changed = list(changed)      # names whose spec differs
        self.removed = list(removed)      # names no longer configured
        self.diagnostics = list(diagnostics)


def plan_reload(current, order, loaded):
    """``current``: name -> spec now; ``order``: names in table order; ``loaded``: the
    directory's new ``config.LoadResult``."""
    if not loaded.services:
        return ReloadPlan(error="no services loaded from configuration", failed=True)
    # A file that no longer parses keeps its service on the old spec.
    specs = {s.name: s for s in loaded.services}
    broken = {d.path for d in loaded.errors}
    for name in order:
        old = current[name]
        if name not in specs and old.path in broken:
            specs[name] = old
    ordered = [specs[n] for n in order if n in specs] + \
        [s for s in loaded.services if s.name not in current]
    new_graph = graph.resolve(ordered, loaded.groups)
    if new_graph.cycles:
        return ReloadPlan(error="dependency cycle in new configuration: %s" %
                          "; ".join(" -> ".join(c) for c in new_graph.cycles))
    added = [s.name for s in ordered if s.name not in current]
    changed = [s.name for s in ordered if s.name in current and
               (s.content_hash != current[s.name].content_hash or s != current[s.name])]
    removed = [n for n in order if n not in specs]
    return ReloadPlan(None, new_graph, ordered, added, changed, removed,
                      loaded.diagnostics + new_graph.diagnostics)


class Commands:
    def __init__(self, sup):
        self.sup = sup

    def _find(self, name):
        return self.sup.services.get(name)

    def pet(self, name, now):
        service = self._find(name)
        if service is None:
            return ["err: not found: %s" % name]
        self.sup.deadman.pet(service, now)
        return ["ok"]

    def start(self, name, now):
        service = self._find(name)
        if service is None:
            return ["err: not found: %s" % name]
        if service.state not in (schema.EXCISED, schema.PERFECT):
            return ["err: %s is %s" % (name, schema.state_name(service.state))]
        self.sup.fire(service, "op_start", now)
        return ["ok: %s queued" % name]

    def _stopping(self, service):
        """What a stop sent: exec_stop, the start command it stops first, or the kill
        signal (SIGTERM unless kill_signal= says)."""
        control = service.control
        if control is not None and control.role == "step":
            return lifecycle.step_label(service.spec, control.kind, control.index)
        return signal_name(service.spec.kill_signal)

    def _bound_to(self, name, key):
        """The services whose ``key`` (part_of, reload_from) names NAME."""
        return [s for s in self.sup.services.values() if name in getattr(s.spec, key)]

    def stop(self, name, now, seen=None):
        service = self._find(name)
        if service is None:
            return ["err: not found: %s" % name]
        seen = seen if seen is not None else set()
        seen.add(service.name)
        said = self._stop_one(service, name, now)
        for other in self._bound_to(service.name, "part_of"):     # PartOf=
            if other.name not in seen:
                said += self.stop(other.name, now, seen)
        return said

    def _stop_one(self, service, name, now):
        pid = service.pid
        if service.state in lifecycle.RUNNING:
            self.sup.fire(service, "op_stop", now, intent="stop")
            if pid:
                return ["ok: %s \u2192 %s (pid %d)" % (self._stopping(service), name, pid)]
            return ["ok: %s stopping" % name]
        self.sup.fire(service, "op_stop", now)
        if service.control is not None:           # a remain_after_exit run's exec_stop
            return ["ok: %s stopped (%s)" % (name, lifecycle.step_label(
                service.spec, service.control.kind, service.control.index))]
        return ["ok: %s stopped (was not running)" % name]

    def restart(self, name, now, seen=None):
        service = self._find(name)
        if service is None:
            return ["err: not found: %s" % name]
        seen = seen if seen is not None else set()
        seen.add(service.name)
        said = self._restart_one(service, name, now)
        for other in self._bound_to(service.name, "part_of"):     # PartOf=: if it runs
            if other.name not in seen and other.state in lifecycle.RUNNING:
                said += self.restart(other.name, now, seen)
        return said

    def _restart_one(self, service, name, now):
        running = service.state in lifecycle.RUNNING
        self.sup.fire(service, "op_restart", now, **({"intent": "restart"} if running else {}))
        if running:
            return ["ok: %s \u2192 %s \u2014 recovery arc will respawn"
                    % (self._stopping(service), name)]
        return ["ok: %s requeued" % name]

    def signal(self, argument, now):
        """``signal NAME SIG``: SIG to the main process only (a reload: SIGHUP, or the
        service's exec_reload= lines instead when it has some)."""
        name, _, word = argument.partition(" ")
        service = self._find(name)
        if service is None:
            return ["err: not found: %s" % name]
        number = SIGNAL_NUMBERS.get(word.strip().upper().replace("SIG", "", 1))
        if number is None:
            return ["err: unknown signal %r (one of %s)" % (
                word.strip(), " ".join(sorted(SIGNAL_NUMBERS)))]
        if number == SIGNAL_NUMBERS["HUP"]:
            return self.reload_service(service, name, now, set())
        if not service.pid:
            return ["err: %s is not running" % name]
        self.sup.ops.signal_process(service.pid, number)
        return ["ok: SIG%s \u2192 %s (pid %d)" % (word.strip().upper().replace("SIG", "", 1),
                                              name, service.pid)]

    def reload_service(self, service, name, now, seen):
        """A reload (``signal NAME HUP``): exec_reload= lines, else SIGHUP to the main
        process; refused with no_reload=1; a remain_after_exit service (PERFECT) runs
        its exec_reload= lines; then each service whose reload_from= names it."""
        seen.add(service.name)
        said = self._reload_one(service, name, now)
        if said[0].startswith("err:"):
            return said
        for other in self._bound_to(service.name, "reload_from"):   # ReloadPropagatedFrom=
            if other.name not in seen and (other.pid or other.state == schema.PERFECT):
                said += [line for line in self.reload_service(other, other.name, now, seen)
                         if not line.startswith("err:")]
        return said

    def _reload_one(self, service, name, now):
        if service.spec.no_reload:
            return ["err: %s cannot be reloaded (no_reload=1: no exec_reload)" % name]
        exited = not service.pid and service.state == schema.PERFECT and \
            service.spec.remain_after_exit
        if exited:
            if service.control is not None or service.tail:
                return ["err: %s is busy" % name]
            if service.spec.exec_reload:
                self.sup.fire(service, "op_reload", now)
                return ["ok: exec_reload \u2192 %s (its run is over)" % name]
            return ["ok: %s has nothing to reload (its run is over)" % name]
        if not service.pid:
            return ["err: %s is not running" % name]
        if service.spec.exec_reload:
            if service.control is not None:
                return ["err: %s is busy (%s)" % (name, lifecycle.step_label(
                    service.spec, service.control.kind, service.control.index))]
            if not service.started:
                return ["err: %s is not started yet" % name]
            self.sup.fire(service, "op_reload", now)
            return ["ok: exec_reload \u2192 %s (pid %d)" % (name, service.pid)]
        self.sup.ops.signal_process(service.pid, SIGNAL_NUMBERS["HUP"])
        return ["ok: SIGHUP \u2192 %s (pid %d)" % (name, service.pid)]

    def reset(self, name, now):
        sup = self.sup
        if name and name not in sup.services:
            return ["err: not found: %s" % name]
        queued = False
        for target in [name] if name else list(sup.order):
            service = sup.services[target]
            service.restarts = 0
            service.failures = 0
            service.dormant_count = 0
            service.refused = False
            if service.stop_intent == "stop":
                service.stop_intent = None
            if service.state in (schema.EXCISED, schema.DORMANT, schema.PERFECT) and \
                    not service.running():
                sup.fire(service, "op_reset", now)
                queued = True
        sup.changed = True
        if not name:
            return ["ok: reset all services"]
        if queued:
            return ["ok: reset and queued %s" % name]
        return ["ok: reset restart count for %s (current state: %s)"
                % (name, schema.state_name(sup.services[name].state))]

    def add(self, path, now, wall):
        sup = self.sup
        spec, diags = sup.ops.load_service_file(path)
        if spec is None:
            errors = [d for d in diags if d.severity == config.ERROR]
            return ["err: failed to load %s" % path] + ["  " + d.format() for d in errors]
        if spec.name in sup.services:
            return ["err: '%s' already loaded" % spec.name]
        specs = [sup.services[n].spec for n in sup.order] + [spec]
        candidate = graph.resolve(specs, list(sup.graph.groups.values()))
        if spec.name in candidate.excised:
            return ["err: '%s' introduces a dependency cycle \u2014 rejected" % spec.name]
        sup.graph = candidate
        sup.add_service(spec, now, wall)
        return ["ok: %s queued" % spec.name]

    def reload(self, evict, now, wall):
        """The whole reload at once (the runtime reads the files in slices and calls
        ``apply_reload``: ``pid1/reloading.py``)."""
        self.sup.ops.say("[schema-init] reloading configuration...")
        return self.apply_reload(self.sup.ops.load_directory(), evict, now, wall)

    def apply_reload(self, loaded, evict, now, wall):
        """The directory's new ``config.LoadResult`` -> the plan, carried out."""
        sup = self.sup
        current = {name: sup.services[name].spec for name in sup.order}
        plan = plan_reload(current, list(sup.order), loaded)
        if plan.error is not None:
            sup.ops.say("[schema-init] reload %s: %s" % ("failed" if plan.failed else "rejected",
                                                         plan.error))
            return ["err: reload rejected \u2014 %s" % plan.error]
        sup.note_rejected(loaded.diagnostics)
        for name in plan.removed:
            self._forget(sup.services[name], evict, now)
        sup.graph = plan.graph
        for spec in plan.specs:
            if spec.name in plan.added:
                sup.add_service(spec, now, wall)
            elif spec.name in plan.changed:
                self._apply_edit(sup.services[spec.name], spec, now, wall)
        sup.group_states = {k: v for k, v in sup.group_states.items() if k in plan.graph.groups}
        sup.changed = True
        sup.ops.say("[schema-init] configuration reload completed successfully")
        lines = ["ok: reload (%s)" % ("evict mode" if evict else "graceful")]
        for word, names in (("added", plan.added), ("changed", plan.changed),
                            ("removed", plan.removed)):
            if names:
                lines.append("  %s: %s" % (word, " ".join(names)))
        lines += ["  " + diag.format() for diag in plan.diagnostics]
        return lines

    def _forget(self, service, evict, now):
        """A service no longer configured: it leaves the table; its process may stay."""
        sup = self.sup
        name = service.name
        del sup.services[name]
        sup.order.remove(name)
        sup.ops.release_sockets(name)
        if not service.busy():
            return
        if service.control is not None:          # a control command: reaped, not waited
            sup.unmanaged.add(service.control.pid)
        pid = service.pid or service.dying
        if not pid:
            return
        sup.ops.say("[schema-init] service '%s' is orphaned in new configuration" % name)
        if service.spec.ready_path:
            sup.ops.unwatch_ready(name)
        if evict:
            sup.ops.say("[schema-init] evicting orphaned service '%s' (pid=%d)" % (name, pid))
            sup.ops.signal(service, pid, lifecycle.SIGTERM)
            sup.evictions.append((pid, now + sup.scaled(EVICT_GRACE_SECS)))
        else:
            sup.ops.say("[schema-init] service '%s' (pid=%d) running unmanaged to natural "
                        "death" % (name, pid))
            sup.unmanaged.add(pid)

    def _apply_edit(self, service, spec, now, wall):
        if service.busy():
            service.next_spec = spec           # picked up at its next start
            return
        service.spec = spec
        if spec.is_timer and not service.timer_armed and service.state == schema.PERFECT:
            self.sup.fire(service, "arm_timer", now, wall=wall, boot=True)
        self.sup.pending.add(spec.name)
