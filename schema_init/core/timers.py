"""Timer arithmetic: ``on_boot_sec``, ``on_active_sec`` and ``on_calendar``.

Pure: every function takes ``now`` (wall-clock epoch seconds for calendars, monotonic
seconds for intervals).  Calendar times are local time, read through the ``time``
module, so ``TZ`` decides the zone.

DST safety comes from comparing *wall-clock* tuples rather than epoch instants: an
occurrence is "after now" when its local (date, HH:MM) is later than now's local
(date, HH:MM:SS).  So a time that happens twice in the autumn fires once (the second
01:30 is not later, on the wall, than the first), and a time skipped in the spring
(02:30) fires at the first instant after the gap that ``mktime`` normalises it to.
"""

import time

WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")

DAILY, WEEKLY, MONTHLY = "daily", "weekly", "monthly"

# Far enough to reach the next 31st from any date (at most 62 days away).
_SEARCH_DAYS = 400


class Calendar:
    """A parsed ``on_calendar`` value: ``HH:MM``, ``Ddd HH:MM`` or ``D HH:MM``."""

    __slots__ = ("kind", "day", "hour", "minute", "text")

    def __init__(self, kind, day, hour, minute, text):
        self.kind = kind          # DAILY, WEEKLY (day = 0..6, Sun=0) or MONTHLY (day = 1..31)
        self.day = day
        self.hour = hour
        self.minute = minute
        self.text = text

    def __eq__(self, other):
        return (isinstance(other, Calendar) and
                (self.kind, self.day, self.hour, self.minute) ==
                (other.kind, other.day, other.hour, other.minute))

    def __hash__(self):
        return hash((self.kind, self.day, self.hour, self.minute))

    def __repr__(self):
        return "Calendar(%r)" % self.text


def _two_digit_number(text, low, high):
    if not text or len(text) > 2 or not text.isdigit() or not text.isascii():
        return None
    value = int(text)
    return value if low <= value <= high else None


def parse_calendar(text):
    """Returns ``(Calendar, None)`` or ``(None, reason)``."""
    want = "want HH:MM, 'Ddd HH:MM' (Sun..Sat) or 'D HH:MM' (day 1-31), 00:00-23:59"
    words = text.split()
    if len(words) == 1:
        day_word, clock = None, words[0]
    elif len(words) == 2:
        day_word, clock = words
    else:
        return None, want
    hh, sep, mm = clock.partition(":")
    hour = _two_digit_number(hh, 0, 23)
    minute = _two_digit_number(mm, 0, 59) if len(mm) == 2 else None
    if not sep or hour is None or minute is None:
        return None, want
    if day_word is None:
        return Calendar(DAILY, None, hour, minute, text), None
    if day_word.lower() in WEEKDAYS and len(day_word) == 3:
        return Calendar(WEEKLY, WEEKDAYS.index(day_word.lower()), hour, minute, text), None
    mday = _two_digit_number(day_word, 1, 31)
    if mday is None:
        return None, want
    return Calendar(MONTHLY, mday, hour, minute, text), None


def _local_date(day_offset, base):
    """(year, month, mday, weekday Sun=0) of the local date ``day_offset`` days from base's."""
    noon = time.mktime((base.tm_year, base.tm_mon, base.tm_mday + day_offset,
                        12, 0, 0, 0, 0, -1))
    t = time.localtime(noon)
    return t.tm_year, t.tm_mon, t.tm_mday, (t.tm_wday + 1) % 7


def _matches(cal, mday, weekday):
    if cal.kind == WEEKLY:
        return weekday == cal.day
    if cal.kind == MONTHLY:
        return mday == cal.day
    return True


def _candidates(cal, now, direction):
    base = time.localtime(now)
    for offset in range(_SEARCH_DAYS):
        year, month, mday, weekday = _local_date(offset * direction, base)
        if _matches(cal, mday, weekday):
            yield (year, month, mday, cal.hour, cal.minute, 0)


def _instant(wall):
    year, month, mday, hour, minute, second = wall
    return time.mktime((year, month, mday, hour, minute, second, 0, 0, -1))


def _wall(now):
    t = time.localtime(now)
    return (t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec)


def next_occurrence(cal, now, last_fire=None):
    """The first instant strictly after ``now`` (wall clock) at which ``cal`` fires.

    ``last_fire``: when the timer last fired.  A run that ends after the clocks went
    back must not fire again at the repeated wall time, so the wall clock of the last
    fire counts as "now" too.
    """
    now_wall = _wall(now)
    if last_fire is not None:
        now_wall = max(now_wall, _wall(last_fire))
    for wall in _candidates(cal, now, 1):
        if wall > now_wall:
            instant = _instant(wall)
            if instant > now:
                return instant
    return None


def last_occurrence(cal, now):
    """The latest instant at or before ``now`` at which ``cal`` fired; None if none found."""
    now_wall = _wall(now)
    for wall in _candidates(cal, now, -1):
        if wall <= now_wall:
            instant = _instant(wall)
            if instant <= now:
                return instant
    return None


def catch_up_due(cal, now, stamp):
    """Persistent timers: True when an occurrence was missed since the last completion.

    ``stamp`` is the epoch second of the last completion (None or 0: never ran, so
    nothing is owed; the caller writes a fresh stamp and arms normally).
    """
    if not stamp:
        return False
    last = last_occurrence(cal, now)
    return last is not None and last > stamp


def interval_first_fire(armed_at, on_boot_sec):
    """Monotonic instant of an interval timer's first fire after arming at boot.

    Only ``on_boot_sec`` delays it: an ``on_active_sec``-only timer fires at once, then
    every period after each completion (as in the original).
    """
    return armed_at + (on_boot_sec or 0)


def interval_next_fire(completed_at, on_active_sec):
    """After a run: the next fire, or None for a run-once (``on_boot_sec`` only) timer."""
    if on_active_sec is None or on_active_sec <= 0:
        return None
    return completed_at + on_active_sec


def randomized_delay(limit, name, armed_at):
    """``randomized_delay_sec``: how long one fire of the timer NAME, armed at ARMED_AT
    (monotonic seconds), waits past its time: 0 to LIMIT seconds.  Pure, but different
    for each fire and on each machine (the instant of arming, to the microsecond, is
    mixed with the name), so a fleet's daily jobs do not all start at 06:00:00."""
    if not limit:
        return 0.0
    value = 2166136261
    for byte in ("%s/%d" % (name, int(armed_at * 1000000))).encode("utf-8", "replace"):
        value = ((value ^ byte) * 16777619) & 0xFFFFFFFF
    value ^= value >> 16                   # spread the last bytes' effect over all bits
    value = (value * 0x85EBCA6B) & 0xFFFFFFFF
    value ^= value >> 13
    return limit * value / 4294967296.0
