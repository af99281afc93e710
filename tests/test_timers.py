"""Calendar and interval timers: parsing, next/last occurrence, DST, catch-up."""

import os
import time

import pytest

from schema_init.core import timers


@pytest.fixture
def tz():
    """Set the local zone for one test (TZ + tzset), restoring it after."""
    saved = os.environ.get("TZ")

    def use(name):
        os.environ["TZ"] = name
        time.tzset()
    yield use
    if saved is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = saved
    time.tzset()


def epoch(tz_name, *wall):
    os.environ["TZ"] = tz_name
    time.tzset()
    return time.mktime(tuple(wall) + (0,) * (6 - len(wall)) + (0, 0, -1))


@pytest.mark.parametrize("text,kind,day,hour,minute", [
    ("03:00", timers.DAILY, None, 3, 0),
    ("0:05", timers.DAILY, None, 0, 5),
    ("23:59", timers.DAILY, None, 23, 59),
    ("Mon 07:30", timers.WEEKLY, 1, 7, 30),
    ("sun 00:00", timers.WEEKLY, 0, 0, 0),
    ("SAT 12:00", timers.WEEKLY, 6, 12, 0),
    ("1 04:00", timers.MONTHLY, 1, 4, 0),
    ("31 23:00", timers.MONTHLY, 31, 23, 0),
])
def test_calendar_forms_parse(text, kind, day, hour, minute):
    cal, reason = timers.parse_calendar(text)
    assert reason is None
    assert (cal.kind, cal.day, cal.hour, cal.minute) == (kind, day, hour, minute)


@pytest.mark.parametrize("text", [
    "", "24:00", "03:60", "3", "03:", ":30", "03:00x", "03:00 junk", "0 03:00", "32 03:00",
    "Monday 03:00", "Mo 03:00", "03:0", "-1:00", "3:000", "\u0663:00", "03 : 00", "a b c",
])
def test_bad_calendar_values_are_rejected_with_a_reason(text):
    cal, reason = timers.parse_calendar(text)
    assert cal is None and "HH:MM" in reason


def test_daily_next_occurrence_in_utc(tz):
    tz("UTC")
    now = epoch("UTC", 2024, 1, 1, 0, 0)
    cal, _ = timers.parse_calendar("03:00")
    assert timers.next_occurrence(cal, now) == now + 3 * 3600
    # exactly at the fire time: the next one is tomorrow (strictly in the future)
    assert timers.next_occurrence(cal, now + 3 * 3600) == now + 27 * 3600
    assert timers.last_occurrence(cal, now + 3 * 3600) == now + 3 * 3600
    assert timers.last_occurrence(cal, now + 3600) == now - 21 * 3600


def test_weekly_and_monthly_next_occurrence(tz):
    tz("UTC")
    now = epoch("UTC", 2024, 1, 1, 12, 0)          # a Monday
    mon, _ = timers.parse_calendar("Mon 07:30")
    assert timers.next_occurrence(mon, now) == epoch("UTC", 2024, 1, 8, 7, 30)
    sun, _ = timers.parse_calendar("Sun 23:00")
    assert timers.next_occurrence(sun, now) == epoch("UTC", 2024, 1, 7, 23, 0)
    the31st, _ = timers.parse_calendar("31 01:00")
    after_jan = epoch("UTC", 2024, 1, 31, 2, 0)
    assert timers.next_occurrence(the31st, after_jan) == epoch("UTC", 2024, 3, 31, 1, 0)
    leap, _ = timers.parse_calendar("29 00:00")
    assert timers.next_occurrence(leap, epoch("UTC", 2023, 1, 30)) == epoch("UTC", 2023, 3, 29)


def test_spring_forward_gap_fires_once_after_the_gap(tz):
    tz("America/New_York")
    cal, _ = timers.parse_calendar("02:30")        # 2024-03-10 02:30 does not exist there
    before = epoch("America/New_York", 2024, 3, 10, 1, 0)
    fire = timers.next_occurrence(cal, before)
    assert before < fire <= before + 2 * 3600
    assert time.localtime(fire).tm_mday == 10
    following = timers.next_occurrence(cal, fire + 5)
    assert time.localtime(following)[:5] == (2024, 3, 11, 2, 30)


def test_repeated_autumn_hour_fires_only_once(tz):
    tz("America/New_York")
    cal, _ = timers.parse_calendar("01:30")        # 2024-11-03 01:30 happens twice
    before = epoch("America/New_York", 2024, 11, 3, 0, 0)
    first = timers.next_occurrence(cal, before)
    assert time.localtime(first)[:5] == (2024, 11, 3, 1, 30)
    following = timers.next_occurrence(cal, first + 60)
    assert time.localtime(following)[:5] == (2024, 11, 4, 1, 30)
    # a run fired at 01:30 that ends after the clocks went back (01:10 the second
    # time) must not fire again at the repeated 01:30
    fired = epoch("UTC", 2024, 11, 3, 5, 30)           # 01:30 EDT
    ended = epoch("UTC", 2024, 11, 3, 6, 10)           # 01:10 EST
    tz("America/New_York")
    assert time.localtime(ended)[3:5] == (1, 10)
    again = timers.next_occurrence(cal, ended, last_fire=fired)
    assert time.localtime(again)[:5] == (2024, 11, 4, 1, 30)
    # without the last fire, the wall clock alone would fire at 01:30 EST that day
    assert time.localtime(timers.next_occurrence(cal, ended))[:3] == (2024, 11, 3)


def test_daily_occurrences_across_dst_are_23_and_25_hours_apart(tz):
    tz("Europe/Berlin")
    cal, _ = timers.parse_calendar("12:00")
    before = epoch("Europe/Berlin", 2024, 3, 30, 13, 0)
    a = timers.next_occurrence(cal, before)
    assert timers.next_occurrence(cal, a) - a == 24 * 3600   # 31 Mar noon -> 1 Apr noon
    spring = timers.next_occurrence(cal, epoch("Europe/Berlin", 2024, 3, 30, 11, 0))
    assert timers.next_occurrence(cal, spring) - spring == 23 * 3600


def test_persistent_catch_up_from_stamp(tz):
    tz("UTC")
    cal, _ = timers.parse_calendar("00:10")
    now = epoch("UTC", 2024, 1, 5, 9, 0)
    assert not timers.catch_up_due(cal, now, None)                 # never ran: nothing owed
    assert not timers.catch_up_due(cal, now, 0)
    ran_today = epoch("UTC", 2024, 1, 5, 0, 11)
    assert not timers.catch_up_due(cal, now, ran_today)
    ran_days_ago = epoch("UTC", 2024, 1, 2, 0, 11)
    assert timers.catch_up_due(cal, now, ran_days_ago)
    # machine off at 00:10 today, on at 00:05: yesterday's run covers it
    early = epoch("UTC", 2024, 1, 5, 0, 5)
    assert not timers.catch_up_due(cal, early, epoch("UTC", 2024, 1, 4, 0, 10, 30))


def test_interval_timers():
    assert timers.interval_first_fire(100.0, 30) == 130.0
    assert timers.interval_first_fire(100.0, None) == 100.0     # on_active_sec only: at once
    assert timers.interval_next_fire(200.0, 60) == 260.0
    assert timers.interval_next_fire(200.0, None) is None        # run-once


def test_a_randomized_delay_stays_below_its_limit_and_differs_by_timer_and_instant():
    delays = [timers.randomized_delay(600, "apt-daily", 1000.0 + n * 0.001) for n in range(200)]
    assert all(0 <= d < 600 for d in delays)
    assert len({round(d) for d in delays}) > 100          # spread, not a few values
    assert max(delays) - min(delays) > 400
    assert timers.randomized_delay(600, "apt-daily", 5.0) == \
        timers.randomized_delay(600, "apt-daily", 5.0)    # pure
    assert timers.randomized_delay(600, "apt-daily", 5.0) != \
        timers.randomized_delay(600, "man-db", 5.0)
    assert timers.randomized_delay(0, "apt-daily", 5.0) == 0.0


def test_the_supervisor_delays_each_fire_by_the_randomized_delay():
    from fakes import FakeOps
    from schema_init.core import config, graph, supervisor
    from schema_init.core.schema import FULL_TRUST
    wall = 1.7e9
    specs = [config.ServiceSpec(name="tick", exec="/bin/true", oneshot=True, on_boot_sec=10,
                                on_active_sec=60, randomized_delay_sec=100),
             config.ServiceSpec(name="cal", exec="/bin/true", oneshot=True,
                                on_calendar=timers.parse_calendar("03:00")[0],
                                randomized_delay_sec=3600)]
    sup = supervisor.Supervisor(graph.resolve(specs, []), FakeOps(), 0.0, wall)
    tick, cal = sup.services["tick"], sup.services["cal"]
    first = timers.randomized_delay(100, "tick", 0.0)
    assert 0 < first < 100 and tick.due == 10 + first
    fire = timers.next_occurrence(specs[1].on_calendar, wall)
    assert cal.due == (fire - wall) + timers.randomized_delay(3600, "cal", 0.0)
    sup.on_due(tick.due, wall + tick.due)                   # its run starts
    sup.settle(tick.due)
    assert tick.state == FULL_TRUST and tick.pid
    sup.on_exit(tick.pid, 0, 500.0, wall + 500)             # and ends
    assert tick.due == 560.0 + timers.randomized_delay(100, "tick", 500.0)
