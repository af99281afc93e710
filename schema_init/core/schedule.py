"""Pure time decisions: cooldowns, the restart budget, dormancy, promotion, timeouts.

The supervisor computes its deadlines with these rules and sleeps until the nearest
(``next_deadline``; ``sleep_timeout`` turns it into the wait's timeout).

Nothing here reads a clock: ``now`` and the instants are passed in (monotonic seconds
unless a name says otherwise), so each rule is tested with plain numbers.  Built-in
constants are given in real seconds; the supervisor multiplies them by its
``time_scale`` (1.0 in production, smaller in tests).  Values read from .svc files
(``stable_secs``, ``start_timeout_sec``, ...) are never scaled.
"""

from . import schema

COOLDOWN_CAP_SECS = 5
DORMANT_BASE_SECS = 300
DORMANT_CAP_SECS = 3600
# A non-critical service sleeps through this many dormant periods (300, 600, 1200,
# 2400, 3600 s); the next failed verdict excises it.
DORMANT_PERIODS_BEFORE_EXCISE = 5
DEFAULT_STOP_TIMEOUT_SECS = 10
ONESHOT_START_TIMEOUT_SECS = 90
# How often a FULL_TRUST daemon whose F8 word is not yet all ones is probed again.
PROMOTION_REPROBE_SECS = 1
# A FUNDAMENTAL service's ready_path may vanish this long (a daemon unlinking and
# rebinding its socket) before its readiness counts as lost.
READY_LOST_GRACE_SECS = 2


def respawn_cooldown(consecutive_failures):
    """Seconds between a death and the respawn: 1, 2, 4, then 5 for every later one."""
    if consecutive_failures <= 1:
        return 1
    if consecutive_failures >= 4:
        return COOLDOWN_CAP_SECS
    return min(1 << (consecutive_failures - 1), COOLDOWN_CAP_SECS)


def budget_left(consecutive_failures, max_restarts):
    """True while another quick retry is allowed."""
    return consecutive_failures < max_restarts


def dormant_delay(dormant_count):
    """Length of the ``dormant_count``-th dormant period (1-based), capped at an hour."""
    if dormant_count < 1:
        dormant_count = 1
    if dormant_count > 5:                      # 300 << 4 already exceeds the cap
        return DORMANT_CAP_SECS
    return min(DORMANT_BASE_SECS << (dormant_count - 1), DORMANT_CAP_SECS)


def friction_verdict(dormant_count, critical, no_excise):
    """What an F6 failure leads to, given the dormant count *after* counting it.

    Returns ``(schema.EXCISED, None)`` or ``(schema.DORMANT, delay_seconds)``.
    Critical and ``no_excise`` services are never excised this way: they retry
    hourly for ever.
    """
    if not (critical or no_excise) and dormant_count > DORMANT_PERIODS_BEFORE_EXCISE:
        return schema.EXCISED, None
    return schema.DORMANT, dormant_delay(dormant_count)


def promotion_deadline(spawned_at, stable_secs):
    """When a daemon without a ``ready_path`` (or whose path has not appeared) promotes."""
    return spawned_at + stable_secs


def start_timeout_deadline(spawned_at, start_timeout_sec):
    """When an unpromoted daemon or a running oneshot is killed; None when disabled."""
    if start_timeout_sec <= 0:
        return None
    return spawned_at + start_timeout_sec


def start_timeout_outcome(critical, no_excise):
    """A start timeout excises an ordinary service; critical ones go round again."""
    if critical or no_excise:
        return schema.RECOVERY
    return schema.EXCISED


def budget_reset_deadline(promoted_at, stable_secs):
    """A service that stays FUNDAMENTAL this long has its failure count cleared."""
    return promoted_at + max(stable_secs, 1)


def stop_deadline(stop_requested_at, stop_timeout_sec):
    """When a service that ignores SIGTERM gets SIGKILL."""
    return stop_requested_at + stop_timeout_sec


def next_deadline(deadlines):
    """The earliest of the given instants, ignoring None; None when there is none."""
    nearest = None
    for instant in deadlines:
        if instant is not None and (nearest is None or instant < nearest):
            nearest = instant
    return nearest


def sleep_timeout(nearest, now):
    """Seconds to sleep until ``nearest`` (0 when overdue, None for 'until an event')."""
    if nearest is None:
        return None
    return max(0.0, nearest - now)
