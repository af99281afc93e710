"""The service lifecycle: every (state, event) -> (action, next states) in one table.

Rules of this file:

* ``TRANSITIONS`` is the one definition of how a service moves between states.  The
  supervisor changes a service's state only inside :meth:`Supervisor.fire`, which
  looks the (state, event) cell up here, runs the cell's action (a method of
  ``actions.Actions`` of the same name) and lets that action write only a state the
  cell allows.  A write outside a transition, or to a state the cell does not list,
  raises :class:`LifecycleError`.
* Pure: no OS, no clock.  ``docs/lifecycle.md`` is generated from this table
  (``python -m schema_init.reference lifecycle > docs/lifecycle.md``) and a test keeps it
  fresh.

Theory of operation.  A service is born in NEW_PROCESS.  When its dependencies are
ready it is spawned (FULL_TRUST) and promoted (FUNDAMENTAL) once it is stable or its
``ready_path`` appears; a oneshot that exits 0 and a timer between runs rest in
PERFECT.  A death enters RECOVERY; when the cooldown is over the F9 probe decides
between a quick retry (SETTLED, rewritten to NEW_PROCESS at once) and FRICTION, where
the F6 probe decides between a deep retry, a DORMANT sleep and EXCISED.  Operator
commands, fuses, a dependency cycle and the adoption of handed-over services after a
re-exec are events like any other.  Events that find a service running but change no
state (a stop request, the shutdown) are cells too, with the same state as their only
next state.

The command set (docs/spec.md, "The command set").  A start runs the ``condition``
lines, then ``exec_pre``, then the main ``exec``; ``exec_post`` runs once the service is
started, and its promotion (or a oneshot's PERFECT) waits for it.  Each is a control
process of the service, one at a time, and its end is an event here (``step_done``,
``condition_skip``, ``start_failed``) while the service is FULL_TRUST or FUNDAMENTAL.
A stop runs ``exec_stop`` before the kill.  Once a run is over and its state decided,
what is left (``exec_stop`` when the service had started and was not stopped by them,
then ``exec_stop_post``) runs as the run's *tail*: each end is a ``tail_exit`` cell
that keeps the state, and the next start waits until the tail is done.  ``restart=``
(``classify_exit``, ``restart_wanted``) decides between restarting an end and resting
after it: a clean end not restarted is PERFECT, an unclean one EXCISED.
"""

from . import schema

NEW_PROCESS = schema.NEW_PROCESS
FULL_TRUST = schema.FULL_TRUST
FUNDAMENTAL = schema.FUNDAMENTAL
PERFECT = schema.PERFECT
RECOVERY = schema.RECOVERY
FRICTION = schema.FRICTION
SETTLED = schema.SETTLED
DORMANT = schema.DORMANT
EXCISED = schema.EXCISED

# Signal numbers the supervisor asks for (the same on every Linux architecture).
SIGHUP = 1
SIGINT = 2
SIGKILL = 9
SIGPIPE = 13
SIGTERM = 15
# A daemon killed by one of these ended cleanly (restart=, success_exit_status=).
CLEAN_SIGNALS = (SIGHUP, SIGINT, SIGPIPE, SIGTERM)

# The command set: the keys of control commands, by where they run.
START_KINDS = ("condition", "exec_pre", "exec_post")
STOP_KINDS = ("exec_stop", "exec_stop_post")
COMMAND_KINDS = START_KINDS + ("exec_reload",) + STOP_KINDS
# A control command's timeout when start_timeout_sec (start side, exec_reload) or
# stop_timeout_sec (stop side) is 0: none would leave a hung command holding the service.
CONTROL_TIMEOUT_SECS = 90
# forking=1: how long the daemon's pid is looked for after the first process exited 0
# (its pid_file may be written a moment later), and how often.
DAEMON_WAIT_SECS = 5
DAEMON_RETRY_SECS = 0.05

RUNNING = (FULL_TRUST, FUNDAMENTAL)
IDLE = (NEW_PROCESS, PERFECT, RECOVERY, FRICTION, DORMANT, EXCISED)
# SETTLED (an F9 pass) is never stored: judge_recovery rewrites it to NEW_PROCESS.
STORED_STATES = (NEW_PROCESS, FULL_TRUST, FUNDAMENTAL, PERFECT, RECOVERY, FRICTION,
                 DORMANT, EXCISED)

# What each event means (docs and the table walk read this).
EVENTS = {
    "cycle": "the service is on a dependency cycle (found at load)",
    "arm_timer": "a timer service is loaded or its file changed: schedule its next run",
    "deps_ready": "every dependency satisfies the readiness gate: try to spawn",
    "ready": "ready_path appeared, stable_secs passed, READY=1 came (notify=1), or a "
             "held promotion is re-probed",
    "start_timeout": "not promoted (daemon) or not finished (oneshot) within start_timeout_sec",
    "readiness_lost": "the ready_path of a FUNDAMENTAL service disappeared and did not "
                      "come back within READY_LOST_GRACE_SECS",
    "died": "the main process exited on its own and that is a failure",
    "restart_exit": "the main process exited after `restart`",
    "session_over": "a session=1 service (a getty) exited 0 after its promotion: a logout",
    "idle_exit": "a listen_on_demand=1 service exited 0: it waits for the next connection",
    "oneshot_done": "a oneshot exited 0",
    "timer_done": "a timer's run ended (any status)",
    "no_restart_exit": "a no_restart service exited",
    "operator_stop_exit": "the main process exited after `stop`",
    "stopped_exit": "the main process exited after the shutdown or an eviction asked it to",
    "cooldown_over": "the respawn cooldown of a failed run has passed: the F9 probe",
    "last_chance": "FRICTION was entered: the F6 probe",
    "wake": "a dormant period is over",
    "timer_fire": "a timer's time has come",
    "fuse": "a dependency of a fuse=1 service entered FRICTION or EXCISED",
    "op_start": "`start` (or `up`)",
    "op_stop": "`stop` (or `down`)",
    "op_restart": "`restart`",
    "op_reset": "`reset` of an excised, dormant or finished service",
    "shutdown": "the machine (or the supervisor) is stopping",
    "adopt": "after a re-exec: take over the state the previous process handed over",
    "condition_skip": "a condition= line exited 1-254 (or failed with -): the start is "
                      "skipped, not failed",
    "step_done": "a control command of a start, reload or stop under way ended: a "
                 "condition, exec_pre or exec_post line exiting 0 (or failing with -), "
                 "any end of an exec_reload or exec_stop line; the next one, or what "
                 "follows them",
    "start_failed": "a start command failed (a condition exiting 255 or killed, an "
                    "exec_pre or exec_post line failing without -, one timing out), or "
                    "a forking service's daemon could not be found",
    "forked": "a forking=1 service's first process exited 0, or its daemon is looked "
              "for again: the daemon's pid becomes the main pid",
    "clean_end": "restart= is set and does not restart a clean end (0, "
                 "success_exit_status, a daemon's HUP, INT, PIPE or TERM)",
    "clean_restart": "restart= restarts a clean end (always, on-success, "
                     "restart_force_exit_status)",
    "stop_timeout": "send_sigkill=0: the main process outlived stop_timeout_sec after "
                    "the kill signal",
    "op_reload": "`signal NAME HUP` to a service with exec_reload= lines (PERFECT: a "
                 "remain_after_exit service, counted up)",
    "tail_exit": "a command run after the run was over (exec_stop after an end the "
                 "stop did not ask for, exec_stop_post) ended: the next one",
}


def _rows():
    rows = [
        (NEW_PROCESS, "cycle", "excise_cycle", (EXCISED,)),
        (NEW_PROCESS, "arm_timer", "arm_timer", (PERFECT,)),
        (PERFECT, "arm_timer", "arm_timer", (PERFECT,)),
        (NEW_PROCESS, "deps_ready", "spawn", (FULL_TRUST, RECOVERY, EXCISED)),
        (FULL_TRUST, "ready", "promote", (FUNDAMENTAL, FULL_TRUST)),
        (FULL_TRUST, "start_timeout", "time_out", (EXCISED, RECOVERY)),
        (FUNDAMENTAL, "readiness_lost", "lose_readiness", (DORMANT, EXCISED)),
        (RECOVERY, "cooldown_over", "judge_recovery", (NEW_PROCESS, FRICTION)),
        (FRICTION, "last_chance", "judge_friction", (NEW_PROCESS, DORMANT, EXCISED)),
        (FULL_TRUST, "condition_skip", "skip_start", (PERFECT,)),
        (FULL_TRUST, "start_failed", "fail_start", (RECOVERY, EXCISED)),
        (FULL_TRUST, "forked", "find_daemon", (FULL_TRUST,)),
        (FULL_TRUST, "step_done", "next_step", (FULL_TRUST, RECOVERY, PERFECT)),
        (FUNDAMENTAL, "step_done", "next_step", (FUNDAMENTAL,)),
        (DORMANT, "wake", "wake", (NEW_PROCESS,)),
        (PERFECT, "timer_fire", "fire_timer", (NEW_PROCESS, PERFECT)),
        (EXCISED, "op_start", "requeue", (NEW_PROCESS,)),
        (PERFECT, "op_start", "requeue", (NEW_PROCESS,)),
    ]
    for state in RUNNING:
        rows += [
            (state, "died", "recover_later", (RECOVERY,)),
            (state, "restart_exit", "respawn_now", (RECOVERY,)),
            (state, "session_over", "respawn_session", (RECOVERY,)),
            (state, "idle_exit", "await_demand", (RECOVERY,)),
            (state, "oneshot_done", "finish_oneshot",
             (PERFECT, FULL_TRUST) if state == FULL_TRUST else (PERFECT,)),
            (state, "timer_done", "finish_timer_run", (PERFECT,)),
            (state, "no_restart_exit", "excise_no_restart", (EXCISED,)),
            (state, "operator_stop_exit", "excise_stopped", (EXCISED,)),
            (state, "stopped_exit", "retire", (EXCISED,)),
            (state, "op_stop", "terminate", (state,)),
            (state, "op_restart", "terminate", (state,)),
            (state, "shutdown", "terminate", (state,)),
            (state, "clean_end", "finish_clean", (PERFECT,)),
            (state, "clean_restart", "restart_clean", (RECOVERY,)),
            (state, "stop_timeout", "abandon_stop", (EXCISED,)),
            (state, "op_reload", "reload", (state,)),
        ]
    for state in IDLE:
        rows += [
            (state, "op_stop", "stop_idle", (EXCISED,)),
            (state, "op_restart", "requeue", (NEW_PROCESS,)),
        ]
    rows.append((PERFECT, "shutdown", "stop_remaining", (EXCISED,)))   # remain_after_exit
    rows.append((PERFECT, "op_reload", "reload_exited", (PERFECT,)))   # remain_after_exit
    for state in (EXCISED, DORMANT, PERFECT):
        rows.append((state, "op_reset", "requeue_after_reset", (NEW_PROCESS,)))
    for state in IDLE:
        rows.append((state, "tail_exit", "run_tail", (state,)))
    for state in STORED_STATES:
        if state != EXCISED:
            rows.append((state, "fuse", "trip_fuse", (EXCISED,)))
    for state in (NEW_PROCESS, PERFECT, EXCISED):          # what loading can leave
        rows.append((state, "adopt", "adopt", STORED_STATES))
    return tuple(rows)


# (state, event, action, next states), in reading order.
TRANSITIONS = _rows()
# (state, event) -> (action, next states)
TABLE = {(state, event): (action, nexts) for state, event, action, nexts in TRANSITIONS}
assert len(TABLE) == len(TRANSITIONS), "a (state, event) cell is defined twice"


class LifecycleError(Exception):
    """A state write the table does not allow: a bug in the supervisor."""


def exit_code(status):
    """A wait status as an exit code: the code, or minus the signal that killed it."""
    signo = status & 0x7F
    if signo == 0:
        return (status >> 8) & 0xFF
    return -signo


def clean_end(spec, code):
    """Whether an end is clean (systemd's sense): exit 0, one of success_exit_status, or
    for a daemon (not a oneshot) a HUP, INT, PIPE or TERM."""
    if code == 0 or code in spec.success_exit_status:
        return True
    return code < 0 and -code in CLEAN_SIGNALS and not spec.oneshot


def restart_wanted(spec, code, cause=None):
    """Whether restart= restarts an end: ``code`` an exit code or minus a signal, or
    ``cause`` "timeout", "watchdog" or "failure" (a start that failed otherwise: the
    daemon not found) with no code.  restart_prevent_exit_status wins over everything,
    then restart_force_exit_status over restart=."""
    if cause is None:
        if code in spec.restart_prevent_exit_status:
            return False
        if code in spec.restart_force_exit_status:
            return True
    clean = cause is None and clean_end(spec, code)
    killed = cause is None and code < 0 and not clean      # an uncaught signal
    policy = spec.restart
    if policy == "always":
        return True
    if policy == "on-success":
        return clean
    if policy == "on-failure":
        return not clean
    if policy == "on-abnormal":
        return killed or cause in ("timeout", "watchdog")
    if policy == "on-abort":
        return killed
    if policy == "on-watchdog":
        return cause == "watchdog"
    return False


def classify_exit(spec, intent, code, promoted=False, forking_parent=False):
    """The event a main process's exit is, given why it was asked to stop (if at all),
    whether it had been promoted (FUNDAMENTAL) and whether it was a forking service's
    first process (whose exit 0 hands over to the daemon)."""
    if intent in ("shutdown", "evict"):
        return "stopped_exit"
    if forking_parent and code == 0 and intent is None:
        return "forked"
    if spec.is_timer and intent != "stop":
        return "timer_done"
    if spec.oneshot and intent != "restart" and (code == 0 or code in spec.success_exit_status):
        return "oneshot_done"
    if intent == "stop":
        return "operator_stop_exit"
    if spec.no_restart and not spec.restart and intent != "restart":
        return "no_restart_exit"
    if intent == "restart":
        return "restart_exit"
    if spec.session and code == 0 and promoted:
        return "session_over"
    if spec.listen_on_demand and code == 0:
        return "idle_exit"
    if spec.restart:
        clean = clean_end(spec, code)
        if restart_wanted(spec, code):
            return "clean_restart" if clean else "died"
        return "clean_end" if clean else "no_restart_exit"
    return "died"


def classify_step(kind, prefixes, code, timed_out=False):
    """The event a control command's end is, while its start, reload or stop is under
    way: ``kind`` its key, ``prefixes`` its line's (``-``: a failure is none)."""
    if kind == "condition":
        if code == 0 and not timed_out:
            return "step_done"
        if not timed_out and (1 <= code <= 254 or "-" in prefixes):
            return "condition_skip"
        return "start_failed"
    if kind in ("exec_pre", "exec_post"):
        if timed_out or (code != 0 and "-" not in prefixes):
            return "start_failed"
    return "step_done"          # exec_reload, exec_stop: a failure is said, not obeyed


def control_timeout(spec, kind):
    """Seconds a control command of ``kind`` may run before it is killed."""
    seconds = spec.stop_timeout_sec if kind in STOP_KINDS else spec.start_timeout_sec
    return seconds if seconds > 0 else CONTROL_TIMEOUT_SECS


def step_label(spec, kind, index):
    """What status shows while a control command runs: ``exec_pre 2/3``."""
    return "%s %d/%d" % (kind, index + 1, len(getattr(spec, kind)))


def describe_end(code):
    return "exited %d" % code if code >= 0 else "killed by signal %d" % -code


class Control:
    """The one control process a service may have: which line runs, and for what.

    ``role``: "step" while a start, reload or stop waits for it (its end is an event of
    a running state), "tail" once the run is over (its end only starts the next one)."""

    __slots__ = ("pid", "kind", "index", "prefixes", "role", "until", "timed_out", "shown")

    def __init__(self, pid, kind, index, prefixes, role, until, shown):
        self.pid = pid
        self.kind = kind
        self.index = index
        self.prefixes = prefixes
        self.role = role
        self.until = until          # killed then (control_timeout)
        self.timed_out = False
        self.shown = shown          # the reason it replaced in status, restored at its end


class Service:
    """The runtime record of one service: its spec, its state and what it waits for."""

    __slots__ = (
        "spec", "next_spec", "state", "weight", "pid", "restarts", "failures",
        "dormant_count", "due", "promote_at", "start_timeout_at", "reprobe_at",
        "budget_reset_at", "stable_time", "ready_seen", "ready_stale", "ready_lost_at",
        "stop_intent", "kill_at", "dying",
        "reason", "last_pet", "pet_missed", "timer_armed", "timer_wall", "last_fire",
        "failsafe_pid", "failsafe_until", "cgroup", "refused",
        "watchdog_ms", "notify_status", "notify_phase", "notify_errno", "notify_dropped",
        "awaiting", "demanded", "spawns", "failed_runs", "last_failure", "state_since",
        "spawned_at", "ready_at", "boot_spawned_at", "boot_ready_at",
        "control", "tail", "started", "past_conditions", "stop_ran", "ready_pending",
        "tail_cleanup", "forking_parent", "daemon_wait", "pid_retry_at")

    def __init__(self, spec):
        self.spec = spec
        self.next_spec = None        # an edited file, applied at the next start
        self.state = NEW_PROCESS
        self.weight = 0
        self.pid = 0
        self.restarts = 0            # spawns since the last start/reset (shown as restarts)
        self.failures = 0            # consecutive failed runs: the restart budget
        self.dormant_count = 0
        self.due = None              # RECOVERY cooldown end, DORMANT wake, timer fire
        self.promote_at = None
        self.start_timeout_at = None
        self.reprobe_at = None
        self.budget_reset_at = None
        self.stable_time = None      # seconds from supervisor start to FUNDAMENTAL/PERFECT
        self.ready_seen = False
        self.ready_stale = None      # the ready_path's identity at the spawn: not readiness
        self.ready_lost_at = None    # the ready_path vanished: lost unless back by then
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
        self.watchdog_ms = None      # Dead Man window from watchdog_sec/WATCHDOG_USEC
        self.notify_status = ""      # sd_notify: the last STATUS= text
        self.notify_phase = None     # sd_notify: "reloading" or "stopping"
        self.notify_errno = None     # sd_notify: the last ERRNO=
        self.notify_dropped = 0      # datagrams refused (not from the service, truncated)
        self.awaiting = False        # listen_on_demand: its sockets are watched
        self.demanded = False        # listen_on_demand: a connection came; spawn it
        # What the live board, the boot chart and the metrics read (shm, timing --kv):
        # counters never reset, and the monotonic instants of transitions (None: never).
        self.spawns = 0              # real spawns since loaded
        self.failed_runs = 0         # failed runs since loaded
        self.last_failure = ""       # why the last failed run failed
        self.state_since = None      # the current state entered
        self.spawned_at = None       # the last spawn
        self.ready_at = None         # its readiness (promotion, oneshot or timer done)
        self.boot_spawned_at = None  # the first spawn and readiness: the boot
        self.boot_ready_at = None
        # The command set (docs/spec.md, "The command set"):
        self.control = None          # the running control process (lifecycle.Control)
        self.tail = ()               # ((kind, index), ...) still to run after the run ended
        self.tail_cleanup = False    # the cgroup is cleaned up once the tail is done
        self.started = False         # this run reached its started point (exec_post)
        self.past_conditions = False  # an exec_pre or the main ran: exec_stop_post applies
        self.stop_ran = False        # exec_stop ran for this run's stop
        self.ready_pending = False   # readiness came while exec_post ran: promote after
        self.forking_parent = False  # pid is a forking service's first process
        self.daemon_wait = None      # forking: (first process's pid, give-up instant)
        self.pid_retry_at = None     # forking: look for the daemon again then

    @property
    def name(self):
        return self.spec.name

    def running(self):
        return self.pid > 0

    def mark_ready(self, now):
        """This run became ready (promoted, oneshot or timer run done)."""
        self.ready_at = now
        if self.boot_ready_at is None:
            self.boot_ready_at = now

    def count_failure(self, reason=None):
        """One more failed run, and why (default: the reason its state was entered with)."""
        self.failed_runs += 1
        self.last_failure = self.reason if reason is None else reason

    def busy(self):
        """A process of this service (main, one being killed, a control command) is
        still alive, or the run's tail is still to run."""
        return self.pid > 0 or self.dying > 0 or self.control is not None or bool(self.tail)

    def stoppable(self):
        """A stop (the shutdown's too) has something to do: a run under way, or a
        remain_after_exit oneshot still started."""
        return self.state in RUNNING or (self.state == PERFECT and self.started)

    def deadlines(self):
        yield self.due
        yield self.kill_at
        yield self.failsafe_until
        if self.control is not None:
            yield self.control.until
        if self.state == FULL_TRUST:
            yield self.pid_retry_at
            yield self.promote_at
            yield self.start_timeout_at
            yield self.reprobe_at
        if self.state == FUNDAMENTAL:
            yield self.ready_lost_at
            if self.failures:
                yield self.budget_reset_at
