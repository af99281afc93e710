"""The service set: every service's record, the events that reach them, the one state writer.

Rules of this file:

* Pure: no OS, no clock.  Events come in as method calls with the clock passed in
  (``on_exit``, ``on_due``, ``on_ready_change``, ``settle``, the operator commands);
  effects go out through ``self.ops`` (fork, signal, watch a path, write the rail),
  each of which returns at once.
* A service's state changes only in :meth:`fire`, through the cell of
  ``lifecycle.TABLE`` for (its state, the event), whose action (``actions.py``) calls
  :meth:`enter`.  ``enter`` refuses a state the cell does not list.
* ``enter`` marks the services that wait for the changed one; :meth:`settle` then looks
  at exactly those.  Nothing polls: the runner sleeps until :meth:`next_deadline`.

The concerns around the set live beside it: ``actions`` (what each transition does),
``commands`` (the operator's commands and the reload plan), ``shutdown`` (stop order),
``deadman`` (the Dead Man Token).  Event words of the rail are the original's, plus
``stop`` and ``stopped`` (docs/spec.md, "The rail").
"""

from . import commands, config, deadman, graph, lifecycle, schedule, schema, shutdown
from .actions import Actions
from .lifecycle import Service, LifecycleError

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


# a service stopped on purpose keeps its listen= sockets (a client waits in the backlog
# for the next start, as under systemd's socket units); one that failed for good does not
KEEP_SOCKETS_EVENTS = ("operator_stop_exit", "op_stop", "stopped_exit", "stop_timeout",
                       "shutdown", "clean_end", "adopt")


class Ops:
    """The effects the supervisor asks for.  The runner provides the real ones
    (``effects.RealOps``); tests provide fakes.  Every method returns at once."""

    is_root = False

    def spawn(self, service, argv, env, nice, account):       # -> (pid, cgroup, problems)
        raise NotImplementedError

    def signal(self, service, pid, sig):
        raise NotImplementedError

    def spawn_control(self, service, argv, prefixes, env, nice, account):
        """A control command of the service (its cgroup, its log): -> (pid, cgroup)."""
        raise NotImplementedError

    def daemon_pid(self, service, parent):
        """forking=1: the daemon PARENT left (its pid_file, or the one process left
        in the service): -> (pid, None) or (0, why not)."""
        raise NotImplementedError

    def signal_process(self, pid, sig):                     # that one process only
        raise NotImplementedError

    def cleanup_cgroup(self, service):
        raise NotImplementedError

    def release_sockets(self, name):                         # a removed service's listen=
        pass

    def watch_notify(self, name):                  # an adopted service's NOTIFY_SOCKET
        pass

    def watch_listen(self, service):               # listen_on_demand: wait on its sockets
        pass                                       # (raises OSError if they cannot be made)

    def unwatch_listen(self, name):
        pass

    def close_listen(self, name):                  # DORMANT/EXCISED: its listen= closed
        pass

    def belongs(self, service, pid):               # pid is a process of the service
        return pid == service.pid

    def service_uid(self, service):                # the uid its processes run as (None:
        return 0                                   # unknown)

    def process_uids(self, pid):                   # (real, effective) uids; None if gone
        return None

    def shell(self, command, env):                           # -> pid
        raise NotImplementedError

    def exec_status(self, path):
        raise NotImplementedError

    def mem_available_kb(self):
        raise NotImplementedError

    def lookup_user(self, name):
        raise NotImplementedError

    def supplementary_groups(self, name, gid):
        return [gid]

    def path_identity(self, path):
        """(device, inode, ctime in ns) of the file at path, None if there is none."""
        return None

    def watch_ready(self, name, path):
        pass

    def unwatch_ready(self, name):
        pass

    def rail(self, name, event, state, weight, pid):
        pass

    def say(self, text):
        pass

    def group_changed(self, name, state, members):
        pass

    def read_env_file(self):                                 # -> bytes or None
        return None

    def read_stamp(self, name):
        return None

    def write_stamp(self, name, when):
        pass

    def pet_watchdog(self):
        pass

    def load_directory(self):                                # -> config.LoadResult
        raise NotImplementedError

    def load_service_file(self, path):                       # -> (spec or None, diags)
        raise NotImplementedError


class Supervisor:
    def __init__(self, graph_, ops, now, wall, env=None, time_scale=1.0,
                 watchdog_interval=None, started_at=None):
        self.ops = ops
        self.scale = time_scale
        self.env = dict(env or {})
        self.env.setdefault("PATH", DEFAULT_PATH)
        self.started_at = now if started_at is None else started_at
        self.clock_origin = (now, wall)   # to estimate the wall clock when none is given
        self.services = {}
        self.order = []               # names in table order (file-name order, then adds)
        self.graph = graph_
        self.pending = set()          # names whose start condition may have changed
        self.group_states = {}
        self.evictions = []           # [(pid, deadline)] of orphans from reload --evict
        self.unmanaged = set()        # pids of removed services, still reaped
        self.changed = True           # something visible changed since the last publish
        self.rejected = []            # errors of the files the last load rejected
        self.dropped = []             # what importing systemd units left out (warnings)
        self.actions = Actions(self)
        self.deadman = deadman.DeadManToken(watchdog_interval, now)
        self.shutdown = shutdown.ShutdownOrder(self)
        self.commands = commands.Commands(self)
        self._permits = []            # [(service, allowed states)] of transitions under way
        self.notify_budgets = {}      # name -> notify.Budget: the /proc reads it may cost
        for spec in graph_.services.values():
            self.add_service(spec, now, wall)
        self.refresh_groups()

    # --- the set -------------------------------------------------------------------

    def add_service(self, spec, now, wall):
        """Register a newly loaded service; it starts as soon as its gate opens."""
        service = Service(spec)
        service.state_since = now
        self.services[spec.name] = service
        self.order.append(spec.name)
        if spec.name in self.graph.excised:
            self.fire(service, "cycle", now, reason=self.graph.excised[spec.name])
        elif spec.is_timer:
            self.fire(service, "arm_timer", now, wall=wall, boot=True)
        self.pending.add(spec.name)
        self.changed = True
        return service

    def scaled(self, seconds):
        return seconds * self.scale

    def wall_clock(self, now, wall):
        if wall is not None:
            return wall
        return self.clock_origin[1] + (now - self.clock_origin[0])

    def state_of(self, name):
        service = self.services.get(name)
        return service.state if service is not None else schema.NEW_PROCESS

    def ordered(self):
        return [self.services[n] for n in self.order]

    def note_rejected(self, diagnostics):
        """Remember why files of the last load were rejected (``status`` shows them)."""
        self.rejected = [d for d in diagnostics if d.severity == config.ERROR]
        self.dropped = [d for d in diagnostics
                        if d.from_unit and d.severity != config.ERROR]
        self.changed = True

    @property
    def shutting_down(self):
        return self.shutdown.active

    # --- the one way a state changes -------------------------------------------------

    def fire(self, service, event, now, **facts):
        """Deliver ``event`` to ``service`` through its cell of the lifecycle table."""
        cell = lifecycle.TABLE.get((service.state, event))
        if cell is None:
            raise LifecycleError("%s: no transition for %s in %s" % (
                service.name, event, schema.state_name(service.state)))
        action, allowed = cell
        self._permits.append((service, allowed, event))
        try:
            getattr(self.actions, action)(service, now, **facts)
        finally:
            self._permits.pop()

    def enter(self, service, state, now, reason=None):
        """Write a state the transition under way allows; wake whatever waits for it."""
        for holder, allowed, event in reversed(self._permits):
            if holder is service:
                break
        else:
            raise LifecycleError("%s: state written outside a transition" % service.name)
        if state not in allowed:
            raise LifecycleError("%s: %s is not a next state of this transition" % (
                service.name, schema.state_name(state)))
        if reason is not None and reason != service.reason:
            service.reason = reason
            self.changed = True
        if state == service.state:
            return
        if service.awaiting:              # listen_on_demand: no longer waiting
            service.awaiting = False
            self.ops.unwatch_listen(service.name)
        service.state = state
        service.state_since = now
        self.changed = True
        if state != schema.FULL_TRUST:
            service.promote_at = service.start_timeout_at = service.reprobe_at = None
        if state not in (schema.RECOVERY, schema.DORMANT) and not service.spec.is_timer:
            service.due = None
        for dependent in self.graph.dependents.get(service.name, ()):
            self.pending.add(dependent)
        if state == schema.NEW_PROCESS:
            self.pending.add(service.name)
        if state in (schema.FRICTION, schema.EXCISED) and event != "adopt":
            self._trip_fuses(service, now)   # a handed-over state tripped them already
        if state in (schema.DORMANT, schema.EXCISED) and service.spec.listen and \
                event not in KEEP_SOCKETS_EVENTS:
            # systemd fails the socket with its service's start limit: a client is
            # refused, not left waiting on a backlog nothing will ever take; the next
            # spawn (or wait for a connection) makes the sockets again
            self.ops.close_listen(service.name)

    def _trip_fuses(self, dep, now):
        for name in self.graph.dependents.get(dep.name, ()):
            service = self.services.get(name)
            if service is not None and service.spec.fuse and service.state != schema.EXCISED:
                self.fire(service, "fuse", now, dep=dep)

    def rail(self, service, event):
        self.ops.rail(service.name, event, service.state, service.weight, service.pid)

    def request_stop(self, service, now, intent, detach=False, rail="stop"):
        """kill_signal (SIGTERM) to the service (its cgroup), SIGKILL at its stop timeout
        (send_sigkill=0: left running then, ``_stop_deadline``).

        ``detach``: the process's exit will decide nothing (the caller has decided):
        it is kept as ``dying`` so the next spawn waits until it is reaped.
        """
        pid = service.pid
        if not pid:
            return
        if detach:
            service.pid = 0
            service.dying = pid
            self.changed = True
            if service.spec.ready_path:
                self.ops.unwatch_ready(service.name)
        else:
            service.stop_intent = intent
        self.ops.signal(service, pid, service.spec.kill_signal)
        service.kill_at = schedule.stop_deadline(now, service.spec.stop_timeout_sec)
        if rail:
            self.rail(service, rail)

    def refresh_groups(self):
        for name, group in self.graph.groups.items():
            members = [graph.group_member_state(self.services[m].state,
                                                self.services[m].spec.is_timer)
                       for m in group.members if m in self.services]
            state = graph.group_state(members)
            if self.group_states.get(name) != state:
                self.group_states[name] = state
                self.changed = True
                self.ops.group_changed(name, state, len(group.members))

    # --- events ----------------------------------------------------------------------

    def settle(self, now):
        """Start whatever can start; called after every batch of events."""
        while self.pending:
            service = self.services.get(self.pending.pop())
            if service is None or self.shutting_down or service.state != schema.NEW_PROCESS:
                continue
            if service.failsafe_pid or service.dying or service.refused or \
                    service.control is not None or service.tail:
                continue               # held until the failsafe / old process / tail is gone
            present, ready, blocker = graph.gate(self.graph, service.name, self.state_of)
            if ready and service.spec.listen_on_demand and not service.demanded and \
                    self._await_connection(service):
                continue
            if ready:
                self.fire(service, "deps_ready", now, deps_present=present)
                continue
            waiting = "waiting for %s" % blocker
            if blocker not in self.services and blocker not in self.graph.groups:
                waiting = "waiting for unknown dependency '%s'" % blocker
            if service.reason != waiting:
                service.reason = waiting
                self.changed = True
        self.refresh_groups()

    def _await_connection(self, service):
        """listen_on_demand: watch the service's sockets instead of spawning it.  False
        when they cannot be made: the spawn is tried, and fails naming the socket."""
        try:
            self.ops.watch_listen(service)
        except OSError:
            return False
        service.awaiting = True
        waiting = "waiting for a connection"
        if service.reason != waiting:
            service.reason = waiting
            self.changed = True
        return True

    def on_connection(self, name, now):
        """A listen_on_demand service's socket became readable: spawn it (its sockets
        are not watched while it runs)."""
        service = self.services.get(name)
        if service is None:
            self.ops.unwatch_listen(name)
            return
        if not service.awaiting:
            return
        service.awaiting = False
        self.ops.unwatch_listen(name)
        service.demanded = True
        self.rail(service, "connection")
        self.pending.add(name)

    def on_ready_change(self, names, now):
        """The runner saw something change near these services' ready_path."""
        for name in names:
            service = self.services.get(name)
            if service is None or not service.spec.ready_path or not service.running():
                continue
            identity = self.ops.path_identity(service.spec.ready_path)
            if identity is None:
                # gone: whatever appears next is new; a FUNDAMENTAL service has
                # READY_LOST_GRACE_SECS to bring it back (a socket being rebound)
                service.ready_stale = None
                if service.ready_seen and service.state == schema.FUNDAMENTAL and \
                        service.ready_lost_at is None:
                    service.ready_lost_at = now + schedule.READY_LOST_GRACE_SECS
                    self.changed = True
            elif service.ready_seen or identity != service.ready_stale:
                service.ready_seen = True
                service.ready_lost_at = None
                if service.state == schema.FULL_TRUST and not service.spec.oneshot:
                    self.fire(service, "ready", now)

    def on_notify(self, name, sender, data, now):
        """A datagram on a service's NOTIFY_SOCKET; SENDER is the kernel's ``(pid, uid)``
        of the sending process (data None: it was dropped unread, truncated or carrying
        descriptors).  Who is heard is ``notify.standing``'s verdict on the credentials
        alone (a sender of another uid costs no /proc read), then ``ops.belongs``'s,
        within the service's ``notify.Budget``; what it means is ``notify.decide``'s."""
        service = self.services.get(name)
        if service is None:
            return
        if data is None:
            service.notify_dropped += 1
            return
        from . import notify          # only services with notify=1 ever send
        pid, uid = sender
        main = service.pid if service.running() else 0
        service_uid = self.ops.service_uid(service)
        standing = notify.standing(pid, uid, main, service_uid, service.spec.notify_access)
        if standing == notify.FOREIGN or not main:
            service.notify_dropped += 1
            return
        budget = self.notify_budgets.get(name)
        if budget is None:
            budget = self.notify_budgets[name] = notify.Budget(now)
        if standing == notify.MAIN:
            belongs = True
        elif budget.take(now):
            belongs = self.ops.belongs(service, pid)
        else:
            service.notify_dropped += 1          # a flood from root or the service's uid
            return
        fields = notify.parse(data)
        claimed = fields.get("MAINPID", "")
        claimed = int(claimed) if claimed.isdigit() and claimed.isascii() and \
            len(claimed) < 8 else 0
        claimed_belongs, claimed_uids = False, None
        if belongs and claimed > 0 and budget.take(now):
            claimed_belongs = self.ops.belongs(service, claimed)
            if claimed_belongs and standing != notify.MAIN and uid != 0:
                claimed_uids = self.ops.process_uids(claimed)
        facts = notify.Facts(service.spec.notify, belongs, claimed_belongs,
                             sender_main=standing == notify.MAIN, sender_uid=uid,
                             service_uid=service_uid, claimed_uids=claimed_uids)
        for verb, argument in notify.decide(facts, fields):
            self._apply_notify(service, verb, argument, now)

    def _apply_notify(self, service, verb, argument, now):
        if verb in ("drop", "refuse_mainpid"):
            service.notify_dropped += 1
        elif verb == "mainpid":
            if argument != service.pid:
                self.ops.say("[schema-init] %s: main pid %d -> %d (MAINPID=)"
                             % (service.name, service.pid, argument))
                service.pid = argument
                self.changed = True
        elif verb == "ready":
            service.ready_seen = True
            if service.state == schema.FULL_TRUST:
                self.fire(service, "ready", now)
        elif verb == "phase":
            service.notify_phase = argument
        elif verb == "status":
            service.notify_status = argument
        elif verb == "errno":
            service.notify_errno = argument
        elif verb == "extend":
            until = now + argument
            if service.state == schema.FULL_TRUST and service.start_timeout_at is not None:
                service.start_timeout_at = max(service.start_timeout_at, until)
            if service.kill_at is not None:
                service.kill_at = max(service.kill_at, until)
        elif verb == "watchdog_window":
            service.watchdog_ms = argument
            self.deadman.pet(service, now)
        elif verb == "pet":
            self.deadman.pet(service, now)
        elif verb == "watchdog_trigger":
            window = deadman.window_ms(service)
            if window:
                service.last_pet = now - window / 1000.0 - 1.0

    def on_exit(self, pid, status, now, wall=None):
        """A child was reaped.  Returns True if it belonged to a service."""
        for service in self.services.values():
            if service.pid == pid:
                self._main_exited(service, lifecycle.exit_code(status), now, wall)
                return True
            if service.control is not None and service.control.pid == pid:
                self._control_exited(service, lifecycle.exit_code(status), now, wall)
                return True
            if service.dying == pid:
                service.dying = 0
                service.kill_at = None
                self.ops.cleanup_cgroup(service)
                self.pending.add(service.name)
                self.changed = True
                self.actions.pump_tail(service, now)
                return True
            if service.failsafe_pid == pid:
                service.failsafe_pid = 0
                service.failsafe_until = None
                self.rail(service, "failsafe-done")
                self.pending.add(service.name)
                return True
        self.unmanaged.discard(pid)
        self.evictions = [(p, d) for p, d in self.evictions if p != pid]
        return False

    def _main_exited(self, service, code, now, wall):
        parent = service.forking_parent
        if parent:                        # forking=1: its daemon is looked for (forked)
            service.forking_parent = False
            service.daemon_wait = (service.pid, None)
        service.pid = 0
        service.kill_at = None
        self.changed = True
        if service.spec.ready_path:
            self.ops.unwatch_ready(service.name)
        intent, service.stop_intent = service.stop_intent, None
        event = lifecycle.classify_exit(service.spec, intent, code,
                                        service.state == schema.FUNDAMENTAL, parent)
        if event == "forked":
            self.fire(service, event, now)
            return
        self.fire(service, event, now, code=code, wall=self.wall_clock(now, wall))

    def _control_exited(self, service, code, now, wall):
        """A control command ended (command_actions): the next step of what it was part
        of, through the cell ``lifecycle.classify_step`` names."""
        control = self.actions.control_ended(service)
        self.changed = True
        facts = {"step": (control.kind, control.index), "code": code,
                 "timed_out": control.timed_out, "wall": self.wall_clock(now, wall)}
        if control.role == "tail":
            self.fire(service, "tail_exit", now, **facts)
            return
        intent = service.stop_intent
        if intent is not None and control.kind != "exec_stop":
            if service.pid:               # stopped first: the stop goes on with the main
                self.fire(service, "step_done", now, **facts)
                return
            # a stop while the start's commands ran: their end is the run's end
            service.stop_intent = None
            service.kill_at = None
            event = {"stop": "operator_stop_exit", "restart": "restart_exit"}.get(
                intent, "stopped_exit")
            self.fire(service, event, now, code=code, wall=facts["wall"])
            return
        event = lifecycle.classify_step(control.kind, control.prefixes, code, control.timed_out)
        self.fire(service, event, now, **facts)

    def on_due(self, now, wall):
        """Act on every deadline that has come."""
        for name in list(self.order):
            service = self.services.get(name)
            if service is not None:
                self._due(service, now, wall)
        kept = []
        for pid, deadline in self.evictions:
            if now >= deadline:
                self.ops.say("[schema-init] eviction grace expired: force-killed pid=%d" % pid)
                self.ops.signal(None, pid, lifecycle.SIGKILL)
            else:
                kept.append((pid, deadline))
        self.evictions = kept
        self.deadman.check(self, now)

    def _due(self, service, now, wall):
        control = service.control
        if control is not None and control.until is not None and now >= control.until:
            control.until = None
            self._control_overran(service, control, now)
        if service.kill_at is not None and now >= service.kill_at:
            service.kill_at = None
            self._stop_deadline(service, now)
        if service.failsafe_until is not None and now >= service.failsafe_until:
            service.failsafe_until = None
            if service.failsafe_pid:
                self.rail(service, "failsafe-timeout")
                self.ops.signal(None, service.failsafe_pid, lifecycle.SIGKILL)
        state = service.state
        if state == schema.FULL_TRUST:
            if service.start_timeout_at is not None and now >= service.start_timeout_at:
                self.fire(service, "start_timeout", now)
            elif service.pid_retry_at is not None and now >= service.pid_retry_at:
                service.pid_retry_at = None
                self.fire(service, "forked", now)
            elif not service.spec.oneshot and (
                    (service.promote_at is not None and now >= service.promote_at) or
                    (service.reprobe_at is not None and now >= service.reprobe_at)):
                service.promote_at = service.reprobe_at = None
                self.fire(service, "ready", now)
        elif state == schema.FUNDAMENTAL:
            if service.ready_lost_at is not None and now >= service.ready_lost_at:
                service.ready_lost_at = None
                if self.ops.path_identity(service.spec.ready_path) is None:
                    self.fire(service, "readiness_lost", now)
                    return
            if service.budget_reset_at is not None and now >= service.budget_reset_at:
                service.failures = 0
                service.budget_reset_at = None
        elif service.due is not None and now >= service.due:
            if state == schema.RECOVERY:
                service.due = None
                self.fire(service, "cooldown_over", now)
            elif state == schema.DORMANT:
                service.due = None
                self.fire(service, "wake", now)
            elif state == schema.PERFECT and service.spec.is_timer and service.timer_armed:
                self.fire(service, "timer_fire", now, wall=wall)

    def _control_overran(self, service, control, now):
        """A control command outlived its timeout: SIGKILL (its end says it timed out);
        with send_sigkill=0 the kill signal, and it is left running, its end decided."""
        control.timed_out = True
        spec = service.spec
        if spec.send_sigkill:
            self.ops.signal(None, control.pid, lifecycle.SIGKILL)
            return
        self.ops.signal(None, control.pid, spec.kill_signal)
        self.unmanaged.add(control.pid)
        self._control_exited(service, -spec.kill_signal, now, None)

    def _stop_deadline(self, service, now):
        """stop_timeout_sec after the kill signal: SIGKILL to what is left; with
        send_sigkill=0 it is left running instead (``stop_timeout``)."""
        control = service.control
        step = control.pid if control is not None and control.role == "step" and \
            not service.pid else 0
        if service.spec.send_sigkill:
            if service.dying or service.pid:
                self.ops.signal(service, service.dying or service.pid, lifecycle.SIGKILL)
            elif step:
                self.ops.signal(None, step, lifecycle.SIGKILL)
            return
        if service.dying:
            self.unmanaged.add(service.dying)
            service.dying = 0
            self.pending.add(service.name)
            self.changed = True
            self.actions.pump_tail(service, now)
        elif service.pid and service.stop_intent is not None and \
                service.state in lifecycle.RUNNING:
            self.fire(service, "stop_timeout", now)
        elif step:
            self.unmanaged.add(step)
            self._control_exited(service, -service.spec.kill_signal, now, None)

    def next_deadline(self):
        """The nearest instant anything is due (None: sleep until an event)."""
        services = schedule.next_deadline(instant for service in self.services.values()
                                           for instant in service.deadlines())
        return schedule.next_deadline([services, self.shutdown.deadline] +
                                      [deadline for _, deadline in self.evictions] +
                                      self.deadman.deadlines(self.services.values()))

    # --- the operator's commands (commands.py) and the shutdown (shutdown.py) ---------

    def cmd_pet(self, name, now):
        return self.commands.pet(name, now)

    def cmd_start(self, name, now):
        return self.commands.start(name, now)

    def cmd_stop(self, name, now):
        return self.commands.stop(name, now)

    def cmd_restart(self, name, now):
        return self.commands.restart(name, now)

    def cmd_reset(self, name, now):
        return self.commands.reset(name, now)

    def cmd_signal(self, argument, now):
        return self.commands.signal(argument, now)

    def cmd_add(self, path, now, wall):
        return self.commands.add(path, now, wall)

    def cmd_reload(self, evict, now, wall):
        return self.commands.reload(evict, now, wall)

    def apply_reload(self, loaded, evict, now, wall):
        return self.commands.apply_reload(loaded, evict, now, wall)

    def begin_shutdown(self, now):
        self.shutdown.begin(now)

    def shutdown_progress(self, now):
        return self.shutdown.progress(now)

    # --- views -------------------------------------------------------------------------

    def snapshot(self):
        """What the shared memory shows: per service the values of the extended
        entry (core/shmlayout.py's EXT_SVC_FIELDS, in its order), and the groups."""
        services = [(name.encode()[:63], s.state, s.weight, s.pid, s.restarts,
                     s.spec.flags, s.spawns, s.failed_runs, _micros(s.state_since),
                     _micros(s.spawned_at), _micros(s.ready_at), _micros(s.boot_spawned_at),
                     _micros(s.boot_ready_at), s.last_failure.encode("utf-8", "replace")[:127])
                    for name, s in ((n, self.services[n]) for n in self.order)]
        groups = [(name.encode()[:63], self.group_states.get(name, schema.NEW_PROCESS),
                   len(group.members)) for name, group in self.graph.groups.items()]
        return services, groups


def _micros(instant):
    """A monotonic instant (seconds, None: never) as the shared memory's microseconds."""
    return 0 if instant is None else int(instant * 1000000)
