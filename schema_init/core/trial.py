"""The trial boot's verdict: commit the slot, wait, or fail it (issue 23).

Rules of this file:

* Everything that decides whether a freshly installed slot is good lives here, and
  nothing here touches the OS, the clock or a process: the caller (pid1/slots.py) hands
  in the services' facts, the seconds since the boot began and the settings, and gets
  a :class:`Verdict` back.  What a verdict does (rewrite autoboot.txt, reboot) is the
  caller's.
* A verdict names its reason in words an operator reads on ``schema-ctl status``, in
  the metrics and in the old slot after a rollback.

Theory of operation.  A trial boot is the first boot of a slot after an update, which
the firmware (tryboot) or the boot-attempt counter will not repeat.  It is good when
the health condition holds: every required service (by default every ``critical=1``
service) is up (FUNDAMENTAL, or PERFECT for a oneshot) and has stayed so for ``hold``
seconds.  It is bad as soon as a required service is EXCISED, or has failed
``fail_after`` times (a critical service is never excised: it would retry for ever),
or when ``deadline`` seconds pass with a required service not up (once all are up, the
hold may end after the deadline).  Until then: wait,
and look again at ``Verdict.recheck`` (or when a service changes state).
"""

from . import schema

WAIT, COMMIT, FAIL = "wait", "commit", "fail"
UP_STATES = (schema.FUNDAMENTAL, schema.PERFECT)

# key: (default, lowest, highest) for the numbers; require is "critical" or names
DEFAULTS = {"deadline": 120, "hold": 10, "fail_after": 3, "require": "critical"}
LIMITS = {"deadline": (10, 3600), "hold": (0, 600), "fail_after": (0, 1000)}


class Settings:
    """The health condition: ``require`` ("critical", or service names), ``deadline``
    and ``hold`` (seconds), ``fail_after`` (failures of one required service; 0: no
    limit but EXCISED and the deadline)."""
    __slots__ = ("require", "deadline", "hold", "fail_after")

    def __init__(self, require="critical", deadline=120, hold=10, fail_after=3):
        self.require = require
        self.deadline = deadline
        self.hold = hold
        self.fail_after = fail_after

    def describe(self):
        who = "every critical=1 service" if self.require == "critical" else \
            "services %s" % ", ".join(self.require)
        return "%s FUNDAMENTAL (or PERFECT) for %d s, none EXCISED%s, within %d s of the " \
            "boot" % (who, self.hold, ", none failed %d times" % self.fail_after
                      if self.fail_after else "", self.deadline)


def parse_settings(text):
    """``key=value`` lines (``#`` comments) -> (Settings, [error text]); a bad line is
    named and its key keeps its default."""
    values, errors = dict(DEFAULTS), []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, eq, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not eq or key not in DEFAULTS:
            errors.append("line %d: unknown setting %r (known: %s)"
                          % (number, key, ", ".join(sorted(DEFAULTS))))
        elif key == "require":
            names = value.split()
            if not names:
                errors.append("line %d: require: 'critical' or service names" % number)
            else:
                values[key] = "critical" if names == ["critical"] else tuple(names)
        elif not (value.isascii() and value.isdigit() and len(value) < 8) or \
                not LIMITS[key][0] <= int(value) <= LIMITS[key][1]:
            errors.append("line %d: %s: a whole number of %d..%d" % ((number, key) +
                                                                    LIMITS[key]))
        else:
            values[key] = int(value)
    return Settings(**values), errors


class Fact:
    """One service as the trial sees it."""
    __slots__ = ("name", "state", "critical", "failures", "last_failure", "up_since")

    def __init__(self, name, state, critical=False, failures=0, last_failure="",
                 up_since=None):
        self.name = name
        self.state = state
        self.critical = critical
        self.failures = failures
        self.last_failure = last_failure
        self.up_since = up_since            # seconds since boot it entered its state


class Verdict:
    __slots__ = ("action", "reason", "recheck")

    def __init__(self, action, reason, recheck=None):
        self.action = action
        self.reason = reason
        self.recheck = recheck              # seconds since boot to look again (wait)

    def __repr__(self):
        return "Verdict(%r, %r, %r)" % (self.action, self.reason, self.recheck)


def _why_not_up(fact):
    text = "%s %s" % (fact.name, schema.state_name(fact.state))
    if fact.failures:
        text += " after %d failure%s" % (fact.failures, "s" if fact.failures != 1 else "")
    if fact.last_failure:
        text += " (last: %s)" % fact.last_failure
    return text


def required(facts, settings):
    """The facts the condition is about, and the names it requires that are missing."""
    if settings.require == "critical":
        return [f for f in facts if f.critical], []
    by_name = {f.name: f for f in facts}
    return ([by_name[n] for n in settings.require if n in by_name],
            [n for n in settings.require if n not in by_name])


def decide(facts, elapsed, settings):
    """The verdict ``elapsed`` seconds after the boot began, from the services' facts."""
    needed, missing = required(facts, settings)
    for fact in needed:
        if fact.state == schema.EXCISED:
            return Verdict(FAIL, "required service %s" % _why_not_up(fact))
        if settings.fail_after and fact.failures >= settings.fail_after:
            return Verdict(FAIL, "required service %s" % _why_not_up(fact))
    if missing:
        return Verdict(FAIL, "required service%s %s not in this slot's services"
                       % ("s" if len(missing) > 1 else "", ", ".join(missing)))
    down = [f for f in needed if f.state not in UP_STATES]
    if down:
        if elapsed >= settings.deadline:
            return Verdict(FAIL, "not healthy %d s after the boot: %s"
                           % (settings.deadline, "; ".join(_why_not_up(f) for f in down)))
        return Verdict(WAIT, "waiting for %s" % ", ".join(f.name for f in down),
                       settings.deadline)
    # every required service is up: since when (the latest of them)
    since = max([f.up_since for f in needed if f.up_since is not None] or [0.0])
    held_until = since + settings.hold
    if elapsed >= held_until:
        return Verdict(COMMIT, "%d required service%s up for %d s"
                       % (len(needed), "" if len(needed) == 1 else "s", settings.hold))
    # up before the deadline: the hold may end after it (going down then fails)
    return Verdict(WAIT, "holding: up since %.0f s" % since, held_until)
