"""Drives every service through the weight-state machine.  Decides; never blocks.

Rules of this file:

* The supervisor owns each service's runtime record (:class:`Service`).  Events come
  in as method calls with the clock passed in (``on_exit``, ``on_due``,
  ``on_ready_change``, the operator commands); effects go out through ``self.ops``
  (fork, signal, watch a path, write the rail), each of which returns at once.
* Every state change goes through :meth:`Supervisor.set_state`, which marks the
  services that wait for the changed one; :meth:`settle` then looks at exactly
  those.  Nothing polls: the runner sleeps until :meth:`next_deadline`.
* Probe words come from ``schema``; times from ``schedule`` and ``timers``;
  dependency facts from ``graph``.  This file only puts them together.

Event words of the rail are the original's (§9), plus ``stop`` and ``stopped``.
"""

import os
import _signal as signal  # the C module: the signal.py wrapper loads enum (~1 MB in PID 1)

from . import config, graph, schedule, schema, timers
from .spawn import NICE

RUNNING_STATES = (schema.FULL_TRUST, schema.FUNDAMENTAL)
EVICT_GRACE_SECS = 3


class Service:
    """Runtime record of one service."""

    __slots__ = (
        "spec", "next_spec", "state", "weight", "word", "pid", "restarts", "failures",
        "dormant_count", "due", "spawned_at", "promote_at", "start_timeout_at", "reprobe_at",
        "promoted_at", "budget_reset_at", "stable_time", "ready_seen", "stop_intent",
        "kill_at", "dying", "reason", "last_pet", "pet_missed", "timer_armed", "timer_wall",
        "last_fire", "failsafe_pid", "failsafe_until", "cgroup", "refused")

    def __init__(self, spec):
        self.spec = spec
        self.next_spec = None        # an edited file, applied at the next start
        self.state = schema.NEW_PROCESS
        self.weight = 0
        self.word = 0
        self.pid = 0
        self.restarts = 0            # spawns since the last start/reset (shown as restarts)
        self.failures = 0            # consecutive failed runs: the restart budget
        self.dormant_count = 0
        self.due = None              # RECOVERY cooldown end, DORMANT wake, timer fire
        self.spawned_at = None
        self.promote_at = None
        self.start_timeout_at = None
        self.reprobe_at = None
        self.promoted_at = None
        self.budget_reset_at = None
        self.stable_time = None      # seconds from supervisor start to FUNDAMENTAL/PERFECT
        self.ready_seen = False
        self.stop_intent = None      # "stop", "restart", "shutdown", "evict"
        self.kill_at = None          # SIGKILL deadline for pid or dying
        self.dying = 0               # a killed process whose exit decides nothing
        self.reason = ""
        self.last_pet = None
        self.pet_missed = False
        self.timer_armed = False
        self.timer_wall = None       # calendar timers: the wall-clock instant of ``due``
        self.last_fire = None
        self.failsafe_pid = 0
        self.failsafe_until = None
        self.cgroup = None
        self.refused = False         # slot gate refused: never retried until start/reset

    @property
    def name(self):
        return self.spec.name

    def running(self):
        return self.pid > 0

    def deadlines(self):
        yield self.due
        yield self.kill_at
        yield self.failsafe_until
        if self.state == schema.FULL_TRUST:
            yield self.promote_at
            yield self.start_timeout_at
            yield self.reprobe_at
        if self.state == schema.FUNDAMENTAL and self.failures:
            yield self.budget_reset_at


class Ops:
    """The effects the supervisor asks for.  The runner provides the real ones;
    tests may provide fakes.  Every method returns at once."""

    is_root = os.geteuid() == 0 if hasattr(os, "geteuid") else False

    def spawn(self, service, argv, env, nice, account):       # -> (pid, cgroup, problems)
        raise NotImplementedError

    def signal(self, service, pid, sig):
        raise NotImplementedError

    def cleanup_cgroup(self, service):
        raise NotImplementedError

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

    def path_exists(self, path):
        return os.path.exists(path)

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

    def load_directory(self):
        raise NotImplementedError


class Supervisor:
    def __init__(self, graph_, ops, now, wall, env=None, time_scale=1.0,
                 watchdog_interval=None, started_at=None):
        self.ops = ops
        self.scale = time_scale
        self.env = dict(env if env is not None else os.environ)
        self.env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        self.started_at = now if started_at is None else started_at
        self.services = {}
        self.order = []               # names in table order (file-name order, then adds)
        self.graph = None
        self.pending = set()          # names whose start condition may have changed
        self.group_states = {}
        self.watchdog_interval = watchdog_interval   # None: no hardware watchdog open
        self.next_pet = now if watchdog_interval else None
        self.shutting_down = False
        self.shutdown_deadline = None
        self.evictions = []           # [(pid, deadline)] of orphans from reload --evict
        self.unmanaged = set()        # pids of removed services, still reaped
        self.changed = True           # something visible changed since the last publish
        self._install(graph_, now, wall)

    # --- configuration -------------------------------------------------------------

    def _install(self, graph_, now, wall):
        self.graph = graph_
        for spec in graph_.services.values():
            service = Service(spec)
            self.services[spec.name] = service
            self.order.append(spec.name)
            reason = graph_.excised.get(spec.name)
            if reason:
                self.set_state(service, schema.EXCISED, now, reason=reason)
            elif spec.is_timer:
                self._arm_timer(service, now, wall, boot=True)
        self.pending.update(self.order)
        self._refresh_groups()

    def scaled(self, seconds):
        return seconds * self.scale

    # --- state changes -------------------------------------------------------------

    def set_state(self, service, state, now, reason=None):
        """Change state; wake whatever waits for this service."""
        if reason is not None:
            service.reason = reason
        if state == service.state:
            return
        service.state = state
        self.changed = True
        if state != schema.FULL_TRUST:
            service.promote_at = service.start_timeout_at = service.reprobe_at = None
        if state != schema.RECOVERY and state != schema.DORMANT and not service.spec.is_timer:
            service.due = None
        if state in (schema.FRICTION, schema.EXCISED):
            self._trip_fuses(service, now)
        for dependent in self.graph.dependents.get(service.name, ()):
            self.pending.add(dependent)
        if state == schema.NEW_PROCESS:
            self.pending.add(service.name)


    def rail(self, service, event):
        self.ops.rail(service.name, event, service.state, service.weight, service.pid)

    def _refresh_groups(self):
        for name, group in self.graph.groups.items():
            members = [graph.group_member_state(self.services[m].state,
                                                self.services[m].spec.is_timer)
                       for m in group.members if m in self.services]
            state = graph.group_state(members)
            if self.group_states.get(name) != state:
                self.group_states[name] = state
                self.changed = True
                self.ops.group_changed(name, state, len(group.members))

    # --- the readiness gate and spawning ------------------------------------------

    def _state_of(self, name):
        service = self.services.get(name)
        return service.state if service is not None else schema.NEW_PROCESS

    def settle(self, now):
        """Start whatever can start; called after every batch of events."""
        while self.pending:
            name = self.pending.pop()
            service = self.services.get(name)
            if service is None or self.shutting_down:
                continue
            if service.state == schema.NEW_PROCESS:
                self._try_start(service, now)
        self._refresh_groups()

    def _f8(self, service, deps_present, deps_ready):
        exists, runnable = self.ops.exec_status(service.spec.exec)
        permitted = not service.spec.needs_root or self.ops.is_root
        return schema.f8_word(exists, runnable, deps_present, deps_ready,
                              self.ops.mem_available_kb(), permitted)

    def _try_start(self, service, now):
        if service.failsafe_pid or service.dying or service.refused:
            return                     # held until the failsafe / old process is gone
        present, ready, blocker = graph.gate(self.graph, service.name, self._state_of)
        if not ready:
            waiting = "waiting for %s" % blocker
            if blocker not in self.services and blocker not in self.graph.groups:
                waiting = "waiting for unknown dependency '%s'" % blocker
            if service.reason != waiting:
                service.reason = waiting
                self.changed = True
            return
        if service.next_spec is not None:
            service.spec, service.next_spec = service.next_spec, None
        spec = service.spec
        word = self._f8(service, present, ready)
        service.word = word
        state, weight = schema.step(schema.NEW_PROCESS, word)
        service.weight = weight
        if state == schema.RECOVERY:
            self.set_state(service, schema.RECOVERY, now, reason="F8 weight %d < 5" % weight)
            self.rail(service, "blocked")
            self._fail(service, now)
            return
        refusal = schema.spawn_refusal(word)
        if refusal is None and spec.allowed_slot_min >= 0:
            if self._slot_refused(service, now):
                return
        account = None
        if refusal is None and spec.user:
            account = self._account(spec.user)
            if account is None:
                refusal = "unknown user '%s'" % spec.user
        if refusal is not None:
            self.set_state(service, schema.RECOVERY, now, reason="spawn refused: %s (%s)"
                      % (refusal, spec.exec if "exec" in refusal else spec.user or spec.exec))
            self.rail(service, "spawn-fail")
            self._fail(service, now)
            return
        self._spawn(service, now, account)

    def _slot_refused(self, service, now):
        spec = service.spec
        raw = self.env.get("SLOT_ID")
        slot = int(raw) if raw is not None and raw.strip().isdigit() else -1
        high = spec.allowed_slot_max
        if slot >= spec.allowed_slot_min and (high < 0 or slot <= high):
            return False
        allowed = "[%d,%s]" % (spec.allowed_slot_min, high if high >= 0 else "inf")
        self.ops.say("[schema-init] HAZARD: '%s' slot constraint violation (SLOT_ID=%s, "
                     "allowed=%s) \u2014 spawn refused" % (spec.name, raw if raw is not None
                                                           else "unset", allowed))
        service.refused = True
        self.set_state(service, schema.EXCISED, now, reason="slot gate: SLOT_ID=%s not in %s"
                  % (raw if raw is not None else "unset", allowed))
        self.rail(service, "spawn-fail")
        return True

    def _account(self, user):
        entry = self.ops.lookup_user(user)
        if entry is None:
            return None
        name, uid, gid, _home = entry
        runtime_dir = "/run/user/%d" % uid if uid != 0 and self.ops.is_root else None
        return name, uid, gid, runtime_dir, self.ops.supplementary_groups(name, gid)

    def service_env(self, spec, account=None):
        env = dict(self.env)
        at = spec.name.find("@")
        if at >= 0:
            instance = spec.name[at + 1:]
            if instance:
                env["INSTANCE"] = instance
            elif "SLOT_ID" in env:
                env["INSTANCE"] = env["SLOT_ID"]
        if account is not None and account[3]:
            env["XDG_RUNTIME_DIR"] = account[3]
        return env

    def _spawn(self, service, now, account):
        spec = service.spec
        argv = [spec.exec] + list(spec.args)
        env = self.service_env(spec, account)
        try:
            pid, cgroup, problems = self.ops.spawn(service, argv, env,
                                                   NICE.get(spec.priority, 0), account)
        except Exception as exc:          # fork failed: the recovery arc retries
            self.set_state(service, schema.RECOVERY, now, reason="spawn failed: %s" % exc)
            self.rail(service, "spawn-fail")
            self._fail(service, now)
            return
        service.pid = pid
        service.cgroup = cgroup
        service.restarts += 1
        service.spawned_at = now
        service.last_pet = now
        service.pet_missed = False
        service.ready_seen = False
        service.stop_intent = None
        service.reason = ("limits not applied: %s" % ", ".join(problems)) if problems else ""
        self.set_state(service, schema.FULL_TRUST, now)
        service.start_timeout_at = schedule.start_timeout_deadline(now, spec.start_timeout_sec)
        self.rail(service, "spawn")
        if not spec.oneshot:
            service.promote_at = schedule.promotion_deadline(now, spec.stable_secs)
            if spec.ready_path:
                self.ops.watch_ready(spec.name, spec.ready_path)
                if self.ops.path_exists(spec.ready_path):
                    service.ready_seen = True
                    self._promote(service, now)
                    return
            if spec.stable_secs == 0 and not spec.ready_path:
                self._promote(service, now)

    # --- promotion and liveness ----------------------------------------------------

    def _promote(self, service, now):
        present, ready, _ = graph.gate(self.graph, service.name, self._state_of)
        word = self._f8(service, present, ready)
        service.word = word
        state, _ = schema.step(schema.FULL_TRUST, word)
        if state == schema.FUNDAMENTAL:
            self.set_state(service, schema.FUNDAMENTAL, now, reason="")
            service.promoted_at = now
            service.stable_time = now - self.started_at
            service.budget_reset_at = schedule.budget_reset_deadline(now, service.spec.stable_secs)
            self.rail(service, "promote")
        else:
            service.reprobe_at = now + self.scaled(schedule.PROMOTION_REPROBE_SECS)
            missing = [n for n, bit in schema.FLAG_BITS["F8"] if not word & bit]
            reason = "promotion held: %s" % " ".join(missing)
            if reason != service.reason:
                service.reason = reason
                self.changed = True

    def on_ready_change(self, names, now):
        """The runner saw something change near these services' ready_path."""
        for name in names:
            service = self.services.get(name)
            if service is None or not service.spec.ready_path or not service.running():
                continue
            exists = self.ops.path_exists(service.spec.ready_path)
            if exists:
                service.ready_seen = True
                if service.state == schema.FULL_TRUST and not service.spec.oneshot:
                    self._promote(service, now)
            elif service.ready_seen and service.state == schema.FUNDAMENTAL:
                self._readiness_lost(service, now)

    def _readiness_lost(self, service, now):
        self.rail(service, "readiness-lost")
        self._kill_running(service, now)
        self._start_failsafe(service, now)
        service.dormant_count += 1
        self._dormant_or_excise(service, now, "readiness lost: %s disappeared"
                                % service.spec.ready_path)

    # --- exits ---------------------------------------------------------------------

    def on_exit(self, pid, status, now):
        """A child was reaped.  Returns True if it belonged to a service."""
        for service in self.services.values():
            if service.pid == pid:
                self._main_exited(service, status, now)
                return True
            if service.dying == pid:
                service.dying = 0
                service.kill_at = None
                self.ops.cleanup_cgroup(service)
                self.pending.add(service.name)
                self.changed = True
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

    def _main_exited(self, service, status, now):
        spec = service.spec
        code = os.waitstatus_to_exitcode(status)
        service.pid = 0
        service.kill_at = None
        self.changed = True
        if spec.ready_path:
            self.ops.unwatch_ready(spec.name)
        intent, service.stop_intent = service.stop_intent, None
        if intent in ("shutdown", "evict"):
            self.ops.cleanup_cgroup(service)
            self.set_state(service, schema.EXCISED, now, reason="stopped")
            self.rail(service, "stopped")
            self.pending.update(self.graph.dependents.get(service.name, ()))
            return
        if spec.is_timer and intent != "stop":
            self.set_state(service, schema.PERFECT, now, reason="" if code == 0 else
                      "last run exited %d" % code)
            self.rail(service, "timer-done" if code == 0 else "timer-failed")
            service.stable_time = now - self.started_at
            self._rearm_timer(service, now)
            return
        if code == 0 and spec.oneshot and intent != "restart":
            service.failures = 0
            service.stable_time = now - self.started_at
            self.set_state(service, schema.PERFECT, now, reason="")
            self.rail(service, "oneshot-done")
            if spec.name == config.SLOT_DETECT:
                self._load_env_file()
            return
        self.ops.cleanup_cgroup(service)
        if intent == "stop" or (spec.no_restart and intent != "restart"):
            self.set_state(service, schema.EXCISED, now,
                      reason="stopped by operator" if intent == "stop" else
                      "exited %d (no_restart)" % code)
            self.rail(service, "76-no-restart")
            return
        if intent == "restart":
            self.set_state(service, schema.RECOVERY, now, reason="restarting")
            self.rail(service, "died")
            service.due = now
            return
        self.set_state(service, schema.RECOVERY, now, reason="exited %d" % code if code >= 0 else
                  "killed by signal %d" % -code)
        self.rail(service, "died")
        self._start_failsafe(service, now)
        self._fail(service, now)

    def _fail(self, service, now):
        """Count a failed run and schedule the F9 verdict after the cooldown."""
        service.failures += 1
        service.due = now + self.scaled(schedule.respawn_cooldown(service.failures))

    # --- deadlines -----------------------------------------------------------------

    def next_deadline(self):
        nearest = None
        for service in self.services.values():
            for instant in service.deadlines():
                if instant is not None and (nearest is None or instant < nearest):
                    nearest = instant
        for instant in (self.next_pet, self.shutdown_deadline):
            if instant is not None and (nearest is None or instant < nearest):
                nearest = instant
        for _, instant in self.evictions:
            if nearest is None or instant < nearest:
                nearest = instant
        if self.watchdog_interval:
            for service in self.services.values():
                if service.running() and service.spec.watchdog_timeout_ms and \
                        not service.pet_missed:
                    instant = service.last_pet + service.spec.watchdog_timeout_ms / 1000.0
                    if nearest is None or instant < nearest:
                        nearest = instant
        return nearest

    def on_due(self, now, wall):
        """Act on every deadline that has come."""
        for name in list(self.order):
            service = self.services.get(name)
            if service is None:
                continue
            if service.kill_at is not None and now >= service.kill_at:
                service.kill_at = None
                target = service.dying or service.pid
                if target:
                    self.ops.signal(service, target, signal.SIGKILL)
            if service.failsafe_until is not None and now >= service.failsafe_until:
                service.failsafe_until = None
                if service.failsafe_pid:
                    self.rail(service, "failsafe-timeout")
                    self.ops.signal(None, service.failsafe_pid, signal.SIGKILL)
            state = service.state
            if state == schema.FULL_TRUST:
                self._due_full_trust(service, now)
            elif state == schema.FUNDAMENTAL:
                if service.budget_reset_at is not None and now >= service.budget_reset_at:
                    service.failures = 0
                    service.budget_reset_at = None
            elif service.due is not None and now >= service.due:
                if state == schema.RECOVERY:
                    service.due = None
                    self._recover(service, now)
                elif state == schema.DORMANT:
                    service.due = None
                    self.set_state(service, schema.NEW_PROCESS, now, reason="")
                    self.rail(service, "dormant-wake")
                elif state == schema.PERFECT and service.spec.is_timer and service.timer_armed:
                    self._due_timer(service, now, wall)
        kept = []
        for pid, deadline in self.evictions:
            if now >= deadline:
                self.ops.say("[schema-init] eviction grace expired: force-killed pid=%d" % pid)
                self.ops.signal(None, pid, signal.SIGKILL)
            else:
                kept.append((pid, deadline))
        self.evictions = kept
        self._watchdog(now)

    def _due_full_trust(self, service, now):
        if service.start_timeout_at is not None and now >= service.start_timeout_at:
            self.rail(service, "start-timeout")
            self._kill_running(service, now)
            self._start_failsafe(service, now)
            outcome = schedule.start_timeout_outcome(service.spec.critical,
                                                     service.spec.no_excise)
            reason = "start timeout (%d s)" % service.spec.start_timeout_sec
            self.set_state(service, outcome, now, reason=reason)
            if outcome == schema.EXCISED:
                self.rail(service, "76-excised")
            else:
                self.rail(service, "timeout-recovery")
                self._fail(service, now)
            return
        if service.spec.oneshot:
            return
        if (service.promote_at is not None and now >= service.promote_at) or \
                (service.reprobe_at is not None and now >= service.reprobe_at):
            service.promote_at = service.reprobe_at = None
            self._promote(service, now)

    def _recover(self, service, now):
        spec = service.spec
        exists, runnable = self.ops.exec_status(spec.exec)
        present, _, _ = graph.gate(self.graph, service.name, self._state_of)
        mem = self.ops.mem_available_kb()
        word = schema.f9_word(schedule.budget_left(service.failures, spec.max_restarts), True,
                              exists, runnable, mem, present,
                              not spec.needs_root or self.ops.is_root)
        service.word = word
        state, service.weight = schema.step(schema.RECOVERY, word)
        if state == schema.SETTLED:
            self.set_state(service, schema.NEW_PROCESS, now)
            self.rail(service, "retry")
            return
        self.set_state(service, schema.FRICTION, now)
        self.rail(service, "friction")
        word = schema.f6_word(schedule.budget_left(service.failures, spec.max_restarts), mem)
        service.word = word
        state, service.weight = schema.step(schema.FRICTION, word)
        if state == schema.RECOVERY:
            self.set_state(service, schema.NEW_PROCESS, now)
            self.rail(service, "retry-deep")
            return
        self.ops.cleanup_cgroup(service)
        service.dormant_count += 1
        last = service.reason or "failed"
        self._dormant_or_excise(service, now, "restart budget exhausted (%d failed runs, last: "
                                "%s)" % (service.failures, last))

    def _dormant_or_excise(self, service, now, why):
        spec = service.spec
        state, delay = schedule.friction_verdict(service.dormant_count, spec.critical,
                                                 spec.no_excise)
        if state == schema.EXCISED:
            self.set_state(service, schema.EXCISED, now, reason="%s; excised after %d dormant "
                      "periods" % (why, service.dormant_count - 1))
            self.rail(service, "76-excised")
            return
        service.due = now + self.scaled(delay)
        self.set_state(service, schema.DORMANT, now, reason="%s; dormant %g s"
                  % (why, self.scaled(delay)))
        self.rail(service, "dormant")

    # --- killing, failsafe, fuse ---------------------------------------------------

    def _kill_running(self, service, now):
        """Kill the main process; its exit will decide nothing (the caller decides)."""
        if not service.pid:
            return
        pid = service.pid
        service.pid = 0
        service.dying = pid
        self.changed = True
        if service.spec.ready_path:
            self.ops.unwatch_ready(service.name)
        self.ops.signal(service, pid, signal.SIGTERM)
        service.kill_at = now + service.spec.stop_timeout_sec

    def _start_failsafe(self, service, now):
        command = service.spec.failsafe
        if not command or service.failsafe_pid:
            return
        try:
            service.failsafe_pid = self.ops.shell(command, self.service_env(service.spec))
        except Exception:
            self.rail(service, "failsafe-fork-fail")
            return
        timeout = service.spec.failsafe_timeout_ms or 500
        service.failsafe_until = now + timeout / 1000.0
        self.rail(service, "failsafe-exec")

    def _trip_fuses(self, dep, now):
        for name in self.graph.dependents.get(dep.name, ()):
            service = self.services.get(name)
            if service is None or not service.spec.fuse or service.state == schema.EXCISED:
                continue
            if service.spec.fuse_cmd:
                try:
                    self.ops.shell(service.spec.fuse_cmd, self.service_env(service.spec))
                    self.rail(service, "fuse-cmd-exec")
                except Exception:
                    pass
            self._kill_running(service, now)
            self.set_state(service, schema.EXCISED, now, reason="fuse tripped: %s is %s"
                      % (dep.name, schema.state_name(dep.state)))
            self.rail(service, "fuse-tripped")

    # --- timers --------------------------------------------------------------------

    def _arm_timer(self, service, now, wall, boot=False):
        spec = service.spec
        service.state = schema.PERFECT
        service.timer_armed = True
        if spec.is_calendar:
            if boot and spec.persistent:
                stamp = self.ops.read_stamp(spec.name)
                if not stamp:
                    self.ops.write_stamp(spec.name, int(wall))
                elif timers.catch_up_due(spec.on_calendar, wall, stamp):
                    service.due = now
                    service.timer_wall = wall
                    self.rail(service, "timer-catchup")
                    return
            fire = timers.next_occurrence(spec.on_calendar, wall, service.last_fire)
            if fire is None:
                service.timer_armed = False
                return
            service.timer_wall = fire
            service.due = now + (fire - wall)
        else:
            service.due = timers.interval_first_fire(now, spec.on_boot_sec)

    def _rearm_timer(self, service, now):
        spec = service.spec
        import time
        wall = time.time()
        if spec.is_calendar:
            if spec.persistent:
                self.ops.write_stamp(spec.name, int(wall))
            self._arm_timer(service, now, wall)
            return
        service.due = timers.interval_next_fire(now, spec.on_active_sec)
        service.timer_armed = service.due is not None

    def _due_timer(self, service, now, wall):
        if service.spec.is_calendar and service.timer_wall is not None and \
                wall < service.timer_wall - 0.5:
            service.due = now + (service.timer_wall - wall)     # the wall clock went back
            return
        service.due = None
        service.last_fire = wall
        self.set_state(service, schema.NEW_PROCESS, now)
        self.rail(service, "timer-fire")

    def _load_env_file(self):
        data = self.ops.read_env_file()
        if data is None:
            return
        for key, value in config.parse_env_file(data):
            self.env[key] = value

    # --- the Dead Man Token ----------------------------------------------------------

    def _watchdog(self, now):
        if not self.watchdog_interval:
            return
        healthy = True
        for service in self.services.values():
            window = service.spec.watchdog_timeout_ms
            if not window or not service.running():
                continue
            elapsed = (now - service.last_pet) * 1000.0
            if elapsed > window:
                healthy = False
                if not service.pet_missed:
                    service.pet_missed = True
                    self.ops.say("[schema-init] watchdog: service '%s' missed pet window "
                                 "(%dms > %dms)" % (service.name, elapsed, window))
        if healthy and self.next_pet is not None and now >= self.next_pet:
            self.ops.pet_watchdog()
            self.next_pet = now + self.watchdog_interval
        elif not healthy:
            self.next_pet = None          # stop petting: the hardware resets the machine

    # --- operator commands (reply lines without the terminator) -----------------------

    def cmd_pet(self, name, now):
        service = self.services.get(name)
        if service is None:
            return ["err: not found: %s" % name]
        service.last_pet = now
        if service.pet_missed:
            service.pet_missed = False
            if self.watchdog_interval and self.next_pet is None:
                self.next_pet = now
        return ["ok"]

    def cmd_start(self, name, now):
        service = self.services.get(name)
        if service is None:
            return ["err: not found: %s" % name]
        if service.state not in (schema.EXCISED, schema.PERFECT):
            return ["err: %s is %s" % (name, schema.state_name(service.state))]
        self._requeue(service, now)
        return ["ok: %s queued" % name]

    def _requeue(self, service, now):
        service.restarts = 0
        service.failures = 0
        service.refused = False
        service.due = None
        service.timer_armed = False
        self.set_state(service, schema.NEW_PROCESS, now, reason="")
        self.pending.add(service.name)

    def cmd_stop(self, name, now):
        service = self.services.get(name)
        if service is None:
            return ["err: not found: %s" % name]
        if service.running():
            pid = service.pid
            service.stop_intent = "stop"
            self.ops.signal(service, pid, signal.SIGTERM)
            service.kill_at = now + service.spec.stop_timeout_sec
            self.rail(service, "stop")
            return ["ok: SIGTERM \u2192 %s (pid %d)" % (name, pid)]
        service.due = None
        service.timer_armed = False
        self.set_state(service, schema.EXCISED, now, reason="stopped by operator")
        return ["ok: %s stopped (was not running)" % name]

    def cmd_restart(self, name, now):
        service = self.services.get(name)
        if service is None:
            return ["err: not found: %s" % name]
        if service.running():
            service.stop_intent = "restart"
            self.ops.signal(service, service.pid, signal.SIGTERM)
            service.kill_at = now + service.spec.stop_timeout_sec
            return ["ok: SIGTERM \u2192 %s \u2014 recovery arc will respawn" % name]
        self._requeue(service, now)
        return ["ok: %s requeued" % name]

    def cmd_reset(self, name, now):
        targets = list(self.order) if not name else [name]
        if name and name not in self.services:
            return ["err: not found: %s" % name]
        queued = False
        for target in targets:
            service = self.services[target]
            service.restarts = 0
            service.failures = 0
            service.dormant_count = 0
            service.refused = False
            if service.stop_intent == "stop":
                service.stop_intent = None
            if service.state in (schema.EXCISED, schema.DORMANT, schema.PERFECT) and \
                    not service.running():
                service.due = None
                service.timer_armed = False
                self.set_state(service, schema.NEW_PROCESS, now, reason="")
                queued = True
        self.changed = True
        if not name:
            return ["ok: reset all services"]
        service = self.services[name]
        if queued:
            return ["ok: reset and queued %s" % name]
        return ["ok: reset restart count for %s (current state: %s)"
                % (name, schema.state_name(service.state))]

    def cmd_add(self, path, now, wall):
        spec, diags = config.load_service_file(path)
        errors = [d for d in diags if d.severity == config.ERROR]
        if spec is None:
            return ["err: failed to load %s" % path] + ["  " + d.format() for d in errors]
        if spec.name in self.services:
            return ["err: '%s' already loaded" % spec.name]
        specs = [self.services[n].spec for n in self.order] + [spec]
        candidate = graph.resolve(specs, list(self.graph.groups.values()))
        if spec.name in candidate.excised:
            return ["err: '%s' introduces a dependency cycle \u2014 rejected" % spec.name]
        self.graph = candidate
        service = Service(spec)
        self.services[spec.name] = service
        self.order.append(spec.name)
        if spec.is_timer:
            self._arm_timer(service, now, wall, boot=True)
        self.pending.add(spec.name)
        self.changed = True
        return ["ok: %s queued" % spec.name]

    def cmd_reload(self, evict, now, wall):
        mode = "evict mode" if evict else "graceful"
        self.ops.say("[schema-init] reloading configuration...")
        loaded = self.ops.load_directory()
        if not loaded.services:
            reason = "no services loaded from configuration"
            self.ops.say("[schema-init] reload failed: %s" % reason)
            return ["err: reload rejected \u2014 %s" % reason]
        # A file that no longer parses keeps its running service on the old spec.
        specs = {s.name: s for s in loaded.services}
        broken = {d.path for d in loaded.errors}
        for name in self.order:
            old = self.services[name].spec
            if name not in specs and old.path in broken:
                specs[name] = old
        ordered = [specs[n] for n in self.order if n in specs] + \
            [s for s in loaded.services if s.name not in self.services]
        new_graph = graph.resolve(ordered, loaded.groups)
        if new_graph.cycles:
            reason = "dependency cycle in new configuration: %s" % \
                "; ".join(" -> ".join(c) for c in new_graph.cycles)
            self.ops.say("[schema-init] reload rejected: %s" % reason)
            return ["err: reload rejected \u2014 %s" % reason]
        added, changed, removed = [], [], []
        for name in list(self.order):
            if name in specs:
                continue
            removed.append(name)
            service = self.services.pop(name)
            self.order.remove(name)
            if service.running() or service.dying:
                pid = service.pid or service.dying
                self.ops.say("[schema-init] service '%s' is orphaned in new configuration" % name)
                if service.spec.ready_path:
                    self.ops.unwatch_ready(name)
                if evict:
                    self.ops.say("[schema-init] evicting orphaned service '%s' (pid=%d)"
                                 % (name, pid))
                    self.ops.signal(service, pid, signal.SIGTERM)
                    self.evictions.append((pid, now + self.scaled(EVICT_GRACE_SECS)))
                else:
                    self.ops.say("[schema-init] service '%s' (pid=%d) running unmanaged to "
                                 "natural death" % (name, pid))
                    self.unmanaged.add(pid)
        for spec in ordered:
            service = self.services.get(spec.name)
            if service is None:
                service = Service(spec)
                self.services[spec.name] = service
                self.order.append(spec.name)
                added.append(spec.name)
                if spec.is_timer:
                    self._arm_timer(service, now, wall, boot=True)
                self.pending.add(spec.name)
            elif spec.content_hash != service.spec.content_hash or spec != service.spec:
                changed.append(spec.name)
                if service.running() or service.dying:
                    service.next_spec = spec       # picked up at its next start
                else:
                    service.spec = spec
                    if spec.is_timer and not service.timer_armed and \
                            service.state == schema.PERFECT:
                        self._arm_timer(service, now, wall, boot=True)
                    self.pending.add(spec.name)
        self.graph = new_graph
        self.group_states = {k: v for k, v in self.group_states.items() if k in new_graph.groups}
        self.changed = True
        self.ops.say("[schema-init] configuration reload completed successfully")
        lines = ["ok: reload (%s)" % mode]
        for word, names in (("added", added), ("changed", changed), ("removed", removed)):
            if names:
                lines.append("  %s: %s" % (word, " ".join(names)))
        for diag in loaded.diagnostics + new_graph.diagnostics:
            lines.append("  " + diag.format())
        return lines

    # --- shutdown ------------------------------------------------------------------

    def begin_shutdown(self, now):
        """Stop every service, dependents before their dependencies."""
        self.shutting_down = True
        longest = 0
        for service in self.services.values():
            longest = max(longest, service.spec.stop_timeout_sec)
            service.due = None
            service.timer_armed = False
        self.shutdown_deadline = now + longest + 1
        self._stop_ready_services(now)

    def _stop_ready_services(self, now):
        for name in reversed(self.order):
            service = self.services[name]
            if not service.running() or service.stop_intent == "shutdown":
                continue
            waiting = [d for d in self.graph.dependents.get(name, ())
                       if self.services[d].running() or self.services[d].dying]
            if waiting:
                continue
            service.stop_intent = "shutdown"
            self.ops.signal(service, service.pid, signal.SIGTERM)
            service.kill_at = now + service.spec.stop_timeout_sec
            self.rail(service, "stop")

    def shutdown_progress(self, now):
        """Called after each event while shutting down; True once nothing runs."""
        if now >= (self.shutdown_deadline or now):
            for service in self.services.values():
                target = service.pid or service.dying
                if target:
                    self.ops.signal(service, target, signal.SIGKILL)
            self.shutdown_deadline = now + 1
        else:
            self._stop_ready_services(now)
        return not any(s.pid or s.dying for s in self.services.values())

    # --- views -------------------------------------------------------------------

    def snapshot(self):
        services = [(name.encode()[:63], s.state, s.weight, s.pid, s.restarts,
                     s.spec.flags) for name, s in ((n, self.services[n]) for n in self.order)]
        groups = [(name.encode()[:63], self.group_states.get(name, schema.NEW_PROCESS),
                   len(group.members)) for name, group in self.graph.groups.items()]
        return services, groups

    def ordered(self):
        return [self.services[n] for n in self.order]
