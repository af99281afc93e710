"""The command set's actions of the lifecycle table (see ``actions``, whose rules apply).

What runs around ``exec=`` (docs/spec.md, "The command set"): a start's ``condition``
and ``exec_pre`` lines before the main process and its ``exec_post`` lines once it is
started, a reload's ``exec_reload``, a stop's ``exec_stop`` before the kill, and the
run's *tail* once it is over (``exec_stop`` when no stop ran them, ``exec_stop_post``).
Each is a control process of the service (``ops.spawn_control``: its cgroup, its user
unless the line's ``+`` or ``!`` says otherwise, ``$MAINPID`` while there is a main
process), one at a time.  Its end comes back through ``Supervisor.on_exit`` as the cell
``lifecycle.classify_step`` names (``tail_exit`` for the tail); one that overruns
``lifecycle.control_timeout`` is killed by ``Supervisor._due``.  Nothing here waits.

forking=1: the first process's exit 0 is ``forked``: the daemon's pid (its pid_file,
or the one process left) is looked for at once and every ``DAEMON_RETRY_SECS`` for
``DAEMON_WAIT_SECS``, and becomes the main pid; the service is then started (its
readiness, unless notify=1).
"""

from . import lifecycle, schedule, schema
from .lifecycle import SIGKILL, Control


def _steps(spec, kind, first=0):
    return [(kind, index) for index in range(first, len(getattr(spec, kind)))]


class CommandActions:
    # --- one control command ------------------------------------------------------------

    def _run_control(self, service, now, kind, index, role="step"):
        """Start line ``index`` of ``kind``.  A step that cannot start ends at once as a
        failed command (exit 127); a tail's is skipped (returns False)."""
        sup, spec = self.sup, service.spec
        prefixes, argv = getattr(spec, kind)[index]
        label = lifecycle.step_label(spec, kind, index)
        account, problem, pid = None, None, 0
        if spec.user and "+" not in prefixes and "!" not in prefixes:
            account = self._account(spec.user)
            if account is None:
                problem = "unknown user '%s'" % spec.user
        if kind == "exec_pre":
            service.past_conditions = True
        if problem is None:
            env = self.service_env(spec, account)
            if service.pid:
                env["MAINPID"] = str(service.pid)
            try:
                pid, cgroup = sup.ops.spawn_control(service, list(argv), prefixes, env,
                                                    self.nice_of(spec), account)
            except Exception as exc:
                problem = str(exc)
        if not pid:
            sup.ops.say("[schema-init] %s: %s not started: %s" % (service.name, label, problem))
            if role == "tail":
                return False
            sup.fire(service, lifecycle.classify_step(kind, prefixes, 127), now,
                     step=(kind, index), code=127)
            return True
        if cgroup:
            service.cgroup = cgroup
        shown = service.reason
        service.control = Control(pid, kind, index, prefixes, role,
                                  now + lifecycle.control_timeout(spec, kind), shown)
        service.reason = "%s; %s" % (shown, label) if shown else label
        sup.changed = True
        return True

    def control_ended(self, service):
        """The control process was reaped: forget it, and show the reason it covered
        (unless a transition wrote a new one meanwhile)."""
        control, service.control = service.control, None
        label = lifecycle.step_label(service.spec, control.kind, control.index)
        if service.reason == ("%s; %s" % (control.shown, label) if control.shown else label):
            service.reason = control.shown
        return control

    def _say_failed(self, service, step, code, timed_out):
        kind, index = step
        what = "timed out" if timed_out else lifecycle.describe_end(code)
        self.sup.ops.say("[schema-init] %s: %s %s" % (
            service.name, lifecycle.step_label(service.spec, kind, index), what))

    # --- the start ------------------------------------------------------------------------

    def _first_start_step(self, spec):
        for kind in ("condition", "exec_pre"):
            if getattr(spec, kind):
                return kind
        return None

    def _reach_started(self, service, now):
        """The run reached its started point: exec_post runs now (True: it runs, the
        readiness waits for it)."""
        if service.spec.exec_post:
            self._run_control(service, now, "exec_post", 0)
            return True
        service.started = True
        return False

    def next_step(self, service, now, step, code, timed_out=False, wall=None):
        """A control command of the start, a reload or a stop ended well enough: the
        next line, or what follows its kind (the main process, the readiness, the kill)."""
        sup, spec = self.sup, service.spec
        kind, index = step
        if code != 0 or timed_out:
            self._say_failed(service, step, code, timed_out)
        if service.stop_intent is not None and kind != "exec_stop":
            self._stop_main(service, now, service.stop_intent, None)   # asked meanwhile
            return
        if index + 1 < len(getattr(spec, kind)) and not (kind == "exec_stop" and timed_out):
            self._run_control(service, now, kind, index + 1)
        elif kind == "condition" and spec.exec_pre:
            self._run_control(service, now, "exec_pre", 0)
        elif kind in ("condition", "exec_pre"):
            self._launch_after_steps(service, now)
        elif kind == "exec_post":
            service.started = True
            if spec.oneshot and not service.pid:
                self._oneshot_finished(service, now)
            elif service.ready_pending:
                service.ready_pending = False
                sup.fire(service, "ready", now)
        elif kind == "exec_reload":
            sup.rail(service, "reloaded")
            if service.ready_pending:        # READY=1 came while it ran
                service.ready_pending = False
                sup.fire(service, "ready", now)
        elif kind == "exec_stop":
            sup.request_stop(service, now, service.stop_intent, rail=None)

    def _launch_after_steps(self, service, now):
        spec = service.spec
        account = None
        if spec.user:
            account = self._account(spec.user)
            if account is None:
                self._refuse(service, now, "spawn refused: unknown user '%s'" % spec.user)
                self._end_run(service, now, cleanup=False)
                return
        self._launch_main(service, now, account, counted=True)

    def skip_start(self, service, now, step, code, timed_out=False, wall=None):
        """A condition said no: the start is skipped, nothing failed."""
        sup = self.sup
        kind, index = step
        sup.enter(service, schema.PERFECT, now, reason="%s %s: start skipped" % (
            lifecycle.step_label(service.spec, kind, index), lifecycle.describe_end(code)))
        sup.rail(service, "condition-skip")
        self._end_run(service, now)
        if service.spec.is_timer:
            self.schedule_next_run(service, now, sup.wall_clock(now, wall))

    def fail_start(self, service, now, step=None, code=None, timed_out=False, wall=None,
                   why=None):
        """The start failed (a command, or the daemon not found): a failed run, as a
        death is, that restart= may not restart."""
        sup, spec = self.sup, service.spec
        if why is None:
            kind, index = step
            why = "%s %s" % (lifecycle.step_label(spec, kind, index), "timed out" if
                             timed_out else lifecycle.describe_end(code))
        sup.rail(service, "start-failed")
        sup.request_stop(service, now, None, detach=True, rail=None)   # exec_post's main
        self._start_failsafe(service, now)
        cause = "timeout" if timed_out else "failure" if code is None else None
        if not spec.restart or lifecycle.restart_wanted(spec, code, cause):
            sup.enter(service, schema.RECOVERY, now, reason=why)
            self._fail(service, now)
        else:
            sup.enter(service, schema.EXCISED, now, reason="%s (restart=%s)" % (why, spec.restart))
            service.count_failure()
            sup.rail(service, "76-no-restart")
        self._end_run(service, now)

    # --- forking=1 ------------------------------------------------------------------------

    def find_daemon(self, service, now):
        """The first process exited 0: its daemon's pid becomes the main pid."""
        sup, spec = self.sup, service.spec
        parent, until = service.daemon_wait or (0, None)
        if until is None:
            until = now + lifecycle.DAEMON_WAIT_SECS
            service.daemon_wait = (parent, until)
        pid, why = sup.ops.daemon_pid(service, parent)
        if not pid:
            if now < until:
                service.pid_retry_at = now + lifecycle.DAEMON_RETRY_SECS
                return
            sup.fire(service, "start_failed", now, why="forking: %s" % why)
            return
        service.pid = pid
        service.daemon_wait = service.pid_retry_at = None
        sup.changed = True
        sup.rail(service, "forked")
        if self._reach_started(service, now):
            service.ready_pending = not spec.notify
        elif not spec.notify:
            sup.fire(service, "ready", now)

    # --- ends -----------------------------------------------------------------------------

    def finish_clean(self, service, now, code, wall=None):
        """restart= does not restart a clean end: the service rests, not failed."""
        sup = self.sup
        service.failures = 0
        sup.enter(service, schema.PERFECT, now, reason="%s (restart=%s)" % (
            lifecycle.describe_end(code), service.spec.restart))
        sup.rail(service, "exited")
        self._end_run(service, now)

    def restart_clean(self, service, now, code, wall=None):
        """restart= restarts a clean end: after the cooldown, through the budget (a loop
        of clean exits ends in FRICTION as a crash loop does), not a failed run."""
        sup = self.sup
        sup.enter(service, schema.RECOVERY, now, reason="%s: restart=%s" % (
            lifecycle.describe_end(code), service.spec.restart or "force"))
        sup.rail(service, "died")
        service.failures += 1
        service.due = now + sup.scaled(schedule.respawn_cooldown(service.failures))
        self._end_run(service, now)

    def abandon_stop(self, service, now):
        """send_sigkill=0 and the main process outlived the stop: it is left running
        (reaped when it ends), the service excised as a failed run."""
        sup = self.sup
        pid = service.pid
        sup.unmanaged.add(pid)
        service.pid = 0
        service.stop_intent = None
        if service.spec.ready_path:
            sup.ops.unwatch_ready(service.name)
        why = "stop timed out after %d s: pid %d left running (send_sigkill=0)" % (
            service.spec.stop_timeout_sec, pid)
        sup.enter(service, schema.EXCISED, now, reason=why)
        service.count_failure()
        sup.rail(service, "stop-abandoned")
        sup.pending.update(sup.graph.dependents.get(service.name, ()))
        self._end_run(service, now, cleanup=False)

    def stop_remaining(self, service, now, intent):
        """The shutdown finds a remain_after_exit oneshot started: its stop commands."""
        self.sup.enter(service, schema.EXCISED, now, reason="stopped")
        self.sup.rail(service, "stopped")
        self._end_run(service, now, cleanup=False)

    # --- reload and stop ------------------------------------------------------------------

    def reload(self, service, now):
        self.sup.rail(service, "reload")
        self._run_control(service, now, "exec_reload", 0)

    def reload_exited(self, service, now):
        """A remain_after_exit service (PERFECT: its run is over, it counts as up) is
        reloaded: its exec_reload lines run one after another, as a tail that leaves
        what the run started in the cgroup alone (an init script's daemon)."""
        self.sup.rail(service, "reload")
        service.tail += tuple(_steps(service.spec, "exec_reload"))
        self.pump_tail(service, now)

    def _stop_main(self, service, now, intent, rail):
        """A stop of a run under way: a start or reload command is stopped first (its
        end goes on with the stop), then exec_stop once started, then the kill."""
        sup, spec = self.sup, service.spec
        control = service.control
        if control is not None and control.role == "step":
            service.stop_intent = intent
            if control.kind != "exec_stop":
                sup.ops.signal(None, control.pid, spec.kill_signal)
                service.kill_at = schedule.stop_deadline(now, spec.stop_timeout_sec)
            if rail:
                sup.rail(service, rail)
            return
        if not service.pid:          # forking, its daemon not found yet: nothing runs
            event = {"stop": "operator_stop_exit", "restart": "restart_exit"}.get(
                intent, "stopped_exit")
            sup.fire(service, event, now, code=0)
            return
        if service.started and spec.exec_stop and not service.stop_ran:
            service.stop_intent = intent
            service.stop_ran = True
            if rail:
                sup.rail(service, rail)
            self._run_control(service, now, "exec_stop", 0)
            return
        sup.request_stop(service, now, intent, rail=rail)

    # --- the run's end and its tail ---------------------------------------------------------

    def _end_run(self, service, now, cleanup=True, post=False):
        """The run is over, its state decided: a start or reload command still running
        is killed (an exec_stop finishes), and the tail is queued: exec_post (a timer's
        run that exited 0: ``post``), exec_stop when no stop ran them and the run had
        started, exec_stop_post once an exec_pre or the main process ran.  ``cleanup``:
        what is left in the cgroup goes (after the tail, when there is one)."""
        sup, spec = self.sup, service.spec
        service.ready_pending = service.forking_parent = False
        service.daemon_wait = service.pid_retry_at = None
        tail = []
        control = service.control
        if control is not None and control.role == "step":
            control.role = "tail"
            if control.kind == "exec_stop":
                tail += _steps(spec, "exec_stop", control.index + 1)
            else:
                sup.ops.signal(None, control.pid, SIGKILL)
        if post:
            tail += _steps(spec, "exec_post")
        if (service.started or post) and not service.stop_ran:
            tail += _steps(spec, "exec_stop")
        if service.past_conditions:
            tail += _steps(spec, "exec_stop_post")
        service.started = service.stop_ran = service.past_conditions = False
        service.tail += tuple(tail)
        if cleanup:
            if service.control is None and not service.dying:
                sup.ops.cleanup_cgroup(service)
            else:
                service.tail_cleanup = True
        if service.tail or service.control is not None:
            self.pump_tail(service, now)

    def pump_tail(self, service, now):
        """Start the tail's next command once nothing of the run is left; when the tail
        is done, the service may start again."""
        if service.control is not None or service.dying or service.pid:
            return
        while service.tail:
            (kind, index), service.tail = service.tail[0], service.tail[1:]
            if self._run_control(service, now, kind, index, "tail"):
                # a reload of a remain_after_exit run leaves its cgroup as it is
                service.tail_cleanup = service.tail_cleanup or kind != "exec_reload"
                return
        if service.tail_cleanup:
            service.tail_cleanup = False
            self.sup.ops.cleanup_cgroup(service)
        self.sup.pending.add(service.name)

    def run_tail(self, service, now, step, code, timed_out=False, wall=None):
        if code != 0 or timed_out:
            self._say_failed(service, step, code, timed_out)
        self.pump_tail(service, now)
