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
SIGKILL = 9
SIGTERM = 15

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
            (state, "oneshot_done", "finish_oneshot", (PERFECT,)),
            (state, "timer_done", "finish_timer_run", (PERFECT,)),
            (state, "no_restart_exit", "excise_no_restart", (EXCISED,)),
            (state, "operator_stop_exit", "excise_stopped", (EXCISED,)),
            (state, "stopped_exit", "retire", (EXCISED,)),
            (state, "op_stop", "terminate", (state,)),
            (state, "op_restart", "terminate", (state,)),
            (state, "shutdown", "terminate", (state,)),
        ]
    for state in IDLE:
        rows += [
            (state, "op_stop", "stop_idle", (EXCISED,)),
            (state, "op_restart", "requeue", (NEW_PROCESS,)),
        ]
    for state in (EXCISED, DORMANT, PERFECT):
        rows.append((state, "op_reset", "requeue_after_reset", (NEW_PROCESS,)))
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


def classify_exit(spec, intent, code, promoted=False):
    """The event a main process's exit is, given why it was asked to stop (if at all)
    and whether it had been promoted (FUNDAMENTAL)."""
    if intent in ("shutdown", "evict"):
        return "stopped_exit"
    if spec.is_timer and intent != "stop":
        return "timer_done"
    if code == 0 and spec.oneshot and intent != "restart":
        return "oneshot_done"
    if intent == "stop":
        return "operator_stop_exit"
    if spec.no_restart and intent != "restart":
        return "no_restart_exit"
    if intent == "restart":
        return "restart_exit"
    if spec.session and code == 0 and promoted:
        return "session_over"
    if spec.listen_on_demand and code == 0:
        return "idle_exit"
    return "died"


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
        "spawned_at", "ready_at", "boot_spawned_at", "boot_ready_at")

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
        """A process of this service (main or one being killed) is still alive."""
        return self.pid > 0 or self.dying > 0

    def deadlines(self):
        yield self.due
        yield self.kill_at
        yield self.failsafe_until
        if self.state == FULL_TRUST:
            yield self.promote_at
            yield self.start_timeout_at
            yield self.reprobe_at
        if self.state == FUNDAMENTAL:
            yield self.ready_lost_at
            if self.failures:
                yield self.budget_reset_at
