"""What each transition of the lifecycle table does: one method per action name.

Rules of this file:

* A method here runs only inside ``Supervisor.fire`` for a cell of
  ``lifecycle.TABLE`` naming it, and changes the service's state only by
  ``sup.enter``, to a state that cell lists.  The argument list is the event's facts.
* Pure: probes come from ``schema``, times from ``schedule`` and ``timers``, the
  dependency facts from ``graph``; effects go through ``sup.ops``.
"""

from . import config, graph, lifecycle, schedule, schema
from .command_actions import CommandActions
from .timer_actions import TimerActions

NICE = {"critical": -10, "standard": 0, "peripheral": 10}


def slot_allowed(raw, spec):
    """Whether a SLOT_ID value (None: unset) is inside the service's slot gate."""
    text = raw.strip() if raw is not None else ""
    slot = int(text) if text.isdigit() and text.isascii() and len(text) < 10 else -1
    high = spec.allowed_slot_max
    return slot >= spec.allowed_slot_min and (high < 0 or slot <= high)


def slot_range(spec):
    high = spec.allowed_slot_max
    return "[%d,%s]" % (spec.allowed_slot_min, high if high >= 0 else "inf")


def account_for(ops, user):
    """(name, uid, gid, XDG runtime dir or None, [gids], home) to run as, or None if
    unknown."""
    entry = ops.lookup_user(user)
    if entry is None:
        return None
    name, uid, gid, home = entry
    runtime_dir = "/run/user/%d" % uid if uid != 0 and ops.is_root else None
    return name, uid, gid, runtime_dir, ops.supplementary_groups(name, gid), home


def service_env(base, spec, account=None):
    """A service's environment: the supervisor's, its INSTANCE, its runtime dir; for a
    user= service USER, LOGNAME and HOME as systemd sets them for User= (rabbitmq's
    Erlang cannot start without HOME)."""
    env = dict(base)
    _prefix, at, instance = spec.name.partition("@")
    if at:
        if instance:
            env["INSTANCE"] = instance
        elif "SLOT_ID" in env:
            env["INSTANCE"] = env["SLOT_ID"]
    if account is not None and account[3]:
        env["XDG_RUNTIME_DIR"] = account[3]
    if account is not None:
        env["USER"] = env["LOGNAME"] = account[0]
        if len(account) > 5 and account[5]:
            env["HOME"] = account[5]
    env.update(spec.env)                  # env= lines: the service's word is the last
    return env


def watchdog_window(spec):
    """The Dead Man window watchdog_sec= asks for, in ms (None: watchdog_timeout_ms=)."""
    return spec.watchdog_sec * 1000 if spec.watchdog_sec else None


class Actions(TimerActions, CommandActions):
    def __init__(self, sup):
        self.sup = sup

    @staticmethod
    def nice_of(spec):
        return NICE.get(spec.priority, 0)

    # --- loading -------------------------------------------------------------------

    def excise_cycle(self, service, now, reason):
        self.sup.enter(service, schema.EXCISED, now, reason=reason)

    def adopt(self, service, now, record):
        """After a re-exec: the state and counters the previous process handed over."""
        sup = self.sup
        service.pid = record["pid"]
        service.restarts = record["restarts"]
        service.failures = record["failures"]
        service.dormant_count = record["dormant"]
        service.cgroup = record["cgroup"] or None
        service.stable_time = record["stable_time"]
        service.last_pet = now
        service.ready_seen = record["ready_seen"]
        service.watchdog_ms = watchdog_window(service.spec)
        state = record["state"]
        spec = service.spec
        if state in lifecycle.RUNNING and not service.pid:
            # the exec came while the start's commands ran (they were not handed over)
            state = schema.RECOVERY
            service.due = now
            service.reason = "re-executed during its start commands: started again"
        # what the command set needs of a run handed over (exec_stop at its stop)
        service.started = state == schema.FUNDAMENTAL or (
            state == schema.FULL_TRUST and not (spec.notify or spec.forking or spec.oneshot)) \
            or (state == schema.PERFECT and spec.remain_after_exit and service.restarts > 0)
        service.past_conditions = service.started
        service.forking_parent = spec.forking and state == schema.FULL_TRUST and not spec.notify
        sup.enter(service, state, now)
        for key, value in (record.get("times") or {}).items():
            setattr(service, key, value)     # handover.TIMES_FIELDS: the boot's instants
        if service.pid and service.spec.ready_path:
            sup.ops.watch_ready(service.name, service.spec.ready_path)
        if service.pid and config.wants_notify_socket(service.spec):
            sup.ops.watch_notify(service.name)      # the same address as before the exec
        if service.state == schema.FULL_TRUST and service.pid and not service.spec.oneshot \
                and (not service.spec.notify or service.ready_seen):
            service.promote_at = now
        if service.state in (schema.DORMANT, schema.RECOVERY):
            service.due = now
        sup.pending.add(service.name)

    # --- starting ------------------------------------------------------------------

    def _f8(self, service, deps_present, deps_ready):
        exists, runnable = self.sup.ops.exec_status(service.spec.exec)
        permitted = not service.spec.needs_root or self.sup.ops.is_root
        return schema.f8_word(exists, runnable, deps_present, deps_ready,
                              self.sup.ops.mem_available_kb(), permitted)

    def spawn(self, service, now, deps_present):
        sup = self.sup
        if service.next_spec is not None:
            service.spec, service.next_spec = service.next_spec, None
        spec = service.spec
        word = self._f8(service, deps_present, True)
        state, service.weight = schema.step(schema.NEW_PROCESS, word)
        if state == schema.RECOVERY:
            sup.enter(service, schema.RECOVERY, now, reason="F8 weight %d < 5" % service.weight)
            sup.rail(service, "blocked")
            self._fail(service, now)
            return
        refusal = schema.spawn_refusal(word)
        if refusal is None and spec.allowed_slot_min >= 0 and self._slot_refused(service, now):
            return
        account = None
        if refusal is None and spec.user:
            account = self._account(spec.user)
            if account is None:
                refusal = "unknown user '%s'" % spec.user
        if refusal is not None:
            what = spec.exec if "exec" in refusal else spec.user or spec.exec
            self._refuse(service, now, "spawn refused: %s (%s)" % (refusal, what))
            return
        first = self._first_start_step(spec)
        if first is None:
            self._launch_main(service, now, account)
            return
        # the start's commands first (command_actions): the run begins now
        self._count_spawn(service, now)
        self._reset_run(service, now, None)
        sup.enter(service, schema.FULL_TRUST, now, reason="")
        service.start_timeout_at = schedule.start_timeout_deadline(now, spec.start_timeout_sec)
        self._run_control(service, now, first, 0)

    def _count_spawn(self, service, now):
        service.restarts += 1
        service.spawns += 1
        service.spawned_at = now
        service.ready_at = None
        if service.boot_spawned_at is None:
            service.boot_spawned_at = now

    def _reset_run(self, service, now, stale):
        service.last_pet = now
        service.pet_missed = False
        service.ready_seen = False
        service.ready_stale = stale
        service.ready_lost_at = None
        service.stop_intent = None
        service.watchdog_ms = watchdog_window(service.spec)
        service.demanded = False          # listen_on_demand: this connection is served
        service.notify_status = ""
        service.notify_phase = None
        service.notify_errno = None
        service.started = service.stop_ran = service.ready_pending = False
        service.past_conditions = service.forking_parent = False
        service.daemon_wait = service.pid_retry_at = None

    def _launch_main(self, service, now, account, counted=False):
        """Fork the main process (``counted``: the run began with its start commands)."""
        sup, spec = self.sup, service.spec
        # A ready_path already there before the spawn (left by an earlier run, handed
        # over in /run by the initramfs) is not readiness: only a new file is.
        stale = sup.ops.path_identity(spec.ready_path) if spec.ready_path else None
        env = self.service_env(spec, account)
        if spec.watchdog_sec:
            env["WATCHDOG_USEC"] = str(spec.watchdog_sec * 1000000)
        try:
            pid, cgroup, problems = sup.ops.spawn(service, [spec.exec] + list(spec.args),
                                                  env, NICE.get(spec.priority, 0), account)
        except Exception as exc:          # fork failed: the recovery arc retries
            self._refuse(service, now, "spawn failed: %s" % exc)
            if counted:
                self._end_run(service, now, cleanup=False)
            return
        service.pid = pid
        service.cgroup = cgroup
        if not counted:
            self._count_spawn(service, now)
        self._reset_run(service, now, stale)
        service.past_conditions = True
        service.reason = ("limits not applied: %s" % ", ".join(problems)) if problems else \
            "waiting for READY=1" if spec.notify and not spec.oneshot else ""
        sup.enter(service, schema.FULL_TRUST, now)
        if not counted:
            service.start_timeout_at = schedule.start_timeout_deadline(now,
                                                                       spec.start_timeout_sec)
        sup.rail(service, "spawn")
        if spec.forking:
            service.forking_parent = True   # its exit 0 hands over to the daemon (forked)
            return
        if spec.oneshot or spec.notify:
            return                        # notify=1: only READY=1 promotes (on_notify)
        if self._reach_started(service, now) and service.state != schema.FULL_TRUST:
            return                        # exec_post could not even start: failed
        service.promote_at = schedule.promotion_deadline(now, spec.stable_secs)
        if spec.ready_path:
            sup.ops.watch_ready(spec.name, spec.ready_path)
            identity = sup.ops.path_identity(spec.ready_path)
            if identity is not None and identity != stale:
                service.ready_seen = True
                sup.fire(service, "ready", now)
        elif spec.stable_secs == 0:
            sup.fire(service, "ready", now)

    def _refuse(self, service, now, reason):
        self.sup.enter(service, schema.RECOVERY, now, reason=reason)
        self.sup.rail(service, "spawn-fail")
        self._fail(service, now)

    def _slot_refused(self, service, now):
        sup, spec = self.sup, service.spec
        raw = sup.env.get("SLOT_ID")
        allowed = slot_range(spec)
        if slot_allowed(raw, spec):
            return False
        shown = raw if raw is not None else "unset"
        sup.ops.say("[schema-init] HAZARD: '%s' slot constraint violation (SLOT_ID=%s, "
                    "allowed=%s) \u2014 spawn refused" % (spec.name, shown, allowed))
        service.refused = True
        sup.enter(service, schema.EXCISED, now,
                  reason="slot gate: SLOT_ID=%s not in %s" % (shown, allowed))
        sup.rail(service, "spawn-fail")
        return True

    def _account(self, user):
        return account_for(self.sup.ops, user)

    def service_env(self, spec, account=None):
        return service_env(self.sup.env, spec, account)

    def promote(self, service, now):
        sup = self.sup
        if (service.control is not None and service.control.role == "step") or \
                (not service.started and self._reach_started(service, now)):
            service.ready_pending = True  # exec_post first (command_actions.next_step)
            return
        present, ready, _ = graph.gate(sup.graph, service.name, sup.state_of)
        word = self._f8(service, present, ready)
        state, _ = schema.step(schema.FULL_TRUST, word)
        if state == schema.FUNDAMENTAL:
            sup.enter(service, schema.FUNDAMENTAL, now, reason="")
            service.stable_time = now - sup.started_at
            service.mark_ready(now)
            service.budget_reset_at = schedule.budget_reset_deadline(now, service.spec.stable_secs)
            sup.rail(service, "promote")
            return
        service.reprobe_at = now + sup.scaled(schedule.PROMOTION_REPROBE_SECS)
        missing = [n for n, bit in schema.FLAG_BITS["F8"] if not word & bit]
        sup.enter(service, schema.FULL_TRUST, now, reason="promotion held: %s" % " ".join(missing))

    def time_out(self, service, now):
        sup, spec = self.sup, service.spec
        sup.rail(service, "start-timeout")
        nothing_killed = not service.pid     # its start commands, or a forking daemon lost
        sup.request_stop(service, now, None, detach=True, rail=None)
        self._start_failsafe(service, now)
        outcome = schedule.start_timeout_outcome(spec.critical, spec.no_excise)
        if spec.restart and lifecycle.restart_wanted(spec, None, "timeout"):
            outcome = schema.RECOVERY
        sup.enter(service, outcome, now, reason="start timeout (%d s)" % spec.start_timeout_sec)
        if outcome == schema.EXCISED:
            service.count_failure()
            sup.rail(service, "76-excised")
        else:
            sup.rail(service, "timeout-recovery")
            self._fail(service, now)
        self._end_run(service, now, cleanup=nothing_killed)

    def lose_readiness(self, service, now):
        self.sup.rail(service, "readiness-lost")
        self.sup.request_stop(service, now, None, detach=True, rail=None)
        self._start_failsafe(service, now)
        service.dormant_count += 1
        why = "readiness lost: %s disappeared" % service.spec.ready_path
        service.count_failure(why)
        self._dormant_or_excise(service, now, why)
        self._end_run(service, now, cleanup=False)

    # --- exits ---------------------------------------------------------------------

    def recover_later(self, service, now, code, wall=None):
        reason = lifecycle.describe_end(code)
        self.sup.enter(service, schema.RECOVERY, now, reason=reason)
        self.sup.rail(service, "died")
        self._start_failsafe(service, now)
        self._fail(service, now)
        self._end_run(service, now)

    def respawn_now(self, service, now, code, wall=None):
        self.sup.enter(service, schema.RECOVERY, now, reason="restarting")
        self.sup.rail(service, "died")
        service.due = now
        self._end_run(service, now)

    def await_demand(self, service, now, code, wall=None):
        """A listen_on_demand service exited 0 (idle): not a failure; through the quick
        retry it goes back to waiting for a connection."""
        self.sup.enter(service, schema.RECOVERY, now, reason="exited 0 (idle)")
        self.sup.rail(service, "idle-exit")
        service.due = now
        self._end_run(service, now)

    def respawn_session(self, service, now, code, wall=None):
        """A getty's user logged out: a new one at once, nothing counted against it."""
        self.sup.enter(service, schema.RECOVERY, now, reason="session ended")
        self.sup.rail(service, "session-end")
        service.due = now
        self._end_run(service, now)

    def finish_oneshot(self, service, now, code, wall=None):
        """A oneshot exited well: its exec_post lines first (it is PERFECT after them)."""
        if service.state == schema.FULL_TRUST and service.spec.exec_post:
            self._run_control(service, now, "exec_post", 0)
            return
        service.started = True
        self._oneshot_finished(service, now)

    def _oneshot_finished(self, service, now):
        sup = self.sup
        service.failures = 0
        service.stable_time = now - sup.started_at
        service.mark_ready(now)
        sup.enter(service, schema.PERFECT, now, reason="")
        sup.rail(service, "oneshot-done")
        if service.name == config.SLOT_DETECT:
            data = sup.ops.read_env_file()
            if data is not None:
                sup.env.update(config.parse_env_file(data))
        if not service.spec.remain_after_exit:
            self._end_run(service, now, cleanup=False)    # its stop follows at once

    def excise_stopped(self, service, now, code, wall=None):
        self.sup.enter(service, schema.EXCISED, now, reason="stopped by operator")
        self.sup.rail(service, "76-no-restart")
        self._end_run(service, now)

    def excise_no_restart(self, service, now, code, wall=None):
        spec = service.spec
        if spec.restart:
            reason = "%s (restart=%s)" % (lifecycle.describe_end(code), spec.restart)
        else:
            reason = "exited %d (no_restart)" % code
        self.sup.enter(service, schema.EXCISED, now, reason=reason)
        if code != 0:
            service.count_failure()
        self.sup.rail(service, "76-no-restart")
        self._end_run(service, now)

    def retire(self, service, now, code, wall=None):
        sup = self.sup
        sup.enter(service, schema.EXCISED, now, reason="stopped")
        sup.rail(service, "stopped")
        sup.pending.update(sup.graph.dependents.get(service.name, ()))
        self._end_run(service, now)

    # --- recovery ------------------------------------------------------------------

    def _fail(self, service, now):
        """Count a failed run and schedule the F9 verdict after the cooldown."""
        service.count_failure()
        service.failures += 1
        service.due = now + self.sup.scaled(schedule.respawn_cooldown(service.failures))

    def judge_recovery(self, service, now):
        sup, spec = self.sup, service.spec
        exists, runnable = sup.ops.exec_status(spec.exec)
        present, _, _ = graph.gate(sup.graph, service.name, sup.state_of)
        word = schema.f9_word(schedule.budget_left(service.failures, spec.max_restarts), True,
                              exists, runnable, sup.ops.mem_available_kb(), present,
                              not spec.needs_root or sup.ops.is_root)
        state, service.weight = schema.step(schema.RECOVERY, word)
        if state == schema.SETTLED:            # never stored: a quick retry at once
            sup.enter(service, schema.NEW_PROCESS, now)
            sup.rail(service, "retry")
            return
        sup.enter(service, schema.FRICTION, now)
        sup.rail(service, "friction")
        sup.fire(service, "last_chance", now)

    def judge_friction(self, service, now):
        sup, spec = self.sup, service.spec
        word = schema.f6_word(schedule.budget_left(service.failures, spec.max_restarts),
                              sup.ops.mem_available_kb())
        state, service.weight = schema.step(schema.FRICTION, word)
        if state == schema.RECOVERY:
            sup.enter(service, schema.NEW_PROCESS, now)
            sup.rail(service, "retry-deep")
            return
        sup.ops.cleanup_cgroup(service)
        service.dormant_count += 1
        last = service.reason or "failed"
        self._dormant_or_excise(service, now, "restart budget exhausted (%d failed runs, last: "
                                "%s)" % (service.failures, last))

    def _dormant_or_excise(self, service, now, why):
        sup, spec = self.sup, service.spec
        state, delay = schedule.friction_verdict(service.dormant_count, spec.critical,
                                                 spec.no_excise)
        if state == schema.EXCISED:
            sup.enter(service, schema.EXCISED, now, reason="%s; excised after %d dormant "
                      "periods" % (why, service.dormant_count - 1))
            sup.rail(service, "76-excised")
            return
        service.due = now + sup.scaled(delay)
        sup.enter(service, schema.DORMANT, now, reason="%s; dormant %g s"
                  % (why, sup.scaled(delay)))
        sup.rail(service, "dormant")

    def wake(self, service, now):
        self.sup.enter(service, schema.NEW_PROCESS, now, reason="")
        self.sup.rail(service, "dormant-wake")

    # --- failsafe and fuse -----------------------------------------------------------

    def _start_failsafe(self, service, now):
        sup = self.sup
        command = service.spec.failsafe
        if not command or service.failsafe_pid:
            return
        try:
            service.failsafe_pid = sup.ops.shell(command, self.service_env(service.spec))
        except Exception:
            sup.rail(service, "failsafe-fork-fail")
            return
        timeout = service.spec.failsafe_timeout_ms or 500
        service.failsafe_until = now + timeout / 1000.0
        sup.rail(service, "failsafe-exec")

    def trip_fuse(self, service, now, dep):
        sup = self.sup
        if service.spec.fuse_cmd:
            try:
                sup.ops.shell(service.spec.fuse_cmd, self.service_env(service.spec))
                sup.rail(service, "fuse-cmd-exec")
            except Exception:
                pass
        sup.request_stop(service, now, None, detach=True, rail=None)
        sup.enter(service, schema.EXCISED, now, reason="fuse tripped: %s is %s"
                  % (dep.name, schema.state_name(dep.state)))
        sup.rail(service, "fuse-tripped")
        self._end_run(service, now, cleanup=False)

    # --- the operator ----------------------------------------------------------------

    def requeue(self, service, now):
        service.restarts = 0
        service.failures = 0
        service.refused = False
        service.due = None
        service.timer_armed = False
        self.sup.enter(service, schema.NEW_PROCESS, now, reason="")
        self._end_run(service, now, cleanup=False)    # a remain_after_exit run stops first

    def requeue_after_reset(self, service, now):
        service.due = None
        service.timer_armed = False
        self.sup.enter(service, schema.NEW_PROCESS, now, reason="")
        self._end_run(service, now, cleanup=False)

    def stop_idle(self, service, now):
        service.due = None
        service.timer_armed = False
        self.sup.enter(service, schema.EXCISED, now, reason="stopped by operator")
        self._end_run(service, now, cleanup=False)    # a remain_after_exit run: exec_stop

    def terminate(self, service, now, intent):
        self._stop_main(service, now, intent, None if intent == "restart" else "stop")
