"""Pure time rules: cooldowns, budget, dormancy, deadlines."""

from hypothesis import given, strategies as st

from schema_init.core import schedule, schema


def test_respawn_cooldown_grows_1_2_4_then_caps_at_5():
    assert [schedule.respawn_cooldown(n) for n in range(1, 8)] == [1, 2, 4, 5, 5, 5, 5]
    assert schedule.respawn_cooldown(0) == 1


def test_budget_counts_consecutive_failures():
    assert schedule.budget_left(4, 5)
    assert not schedule.budget_left(5, 5)
    assert not schedule.budget_left(0, 0)


def test_dormant_schedule_is_300_600_1200_2400_3600_then_stays_capped():
    assert [schedule.dormant_delay(n) for n in range(1, 9)] == \
        [300, 600, 1200, 2400, 3600, 3600, 3600, 3600]


@given(st.integers(min_value=-5, max_value=10 ** 6))
def test_dormant_schedule_is_monotonic_and_capped(n):
    assert schedule.dormant_delay(n) <= schedule.dormant_delay(n + 1) <= 3600
    assert schedule.dormant_delay(n) >= 300


def test_non_critical_service_is_excised_after_the_fifth_dormant_period():
    verdicts = [schedule.friction_verdict(n, critical=False, no_excise=False)
                for n in range(1, 7)]
    assert verdicts[:5] == [(schema.DORMANT, d) for d in (300, 600, 1200, 2400, 3600)]
    assert verdicts[5] == (schema.EXCISED, None)


@given(st.integers(min_value=1, max_value=10 ** 9))
def test_critical_service_is_never_excised_by_dormancy(n):
    """The original's 8-bit counter wrapped; ours retries hourly for ever."""
    state, delay = schedule.friction_verdict(n, critical=True, no_excise=False)
    assert state == schema.DORMANT and 300 <= delay <= 3600
    assert schedule.friction_verdict(n, critical=False, no_excise=True)[0] == schema.DORMANT


def test_start_timeout_excises_ordinary_and_recovers_critical_services():
    assert schedule.start_timeout_outcome(critical=False, no_excise=False) == schema.EXCISED
    assert schedule.start_timeout_outcome(critical=True, no_excise=False) == schema.RECOVERY
    assert schedule.start_timeout_outcome(critical=False, no_excise=True) == schema.RECOVERY


def test_deadlines():
    assert schedule.promotion_deadline(100.0, 10) == 110.0
    assert schedule.start_timeout_deadline(100.0, 90) == 190.0
    assert schedule.start_timeout_deadline(100.0, 0) is None
    assert schedule.budget_reset_deadline(50.0, 10) == 60.0
    assert schedule.budget_reset_deadline(50.0, 0) == 51.0   # never instantly
    assert schedule.stop_deadline(7.0, 10) == 17.0


def test_nearest_deadline_and_sleep_timeout():
    assert schedule.next_deadline([None, 5.0, 3.0, None]) == 3.0
    assert schedule.next_deadline([None, None]) is None
    assert schedule.sleep_timeout(None, 10.0) is None      # nothing due: sleep until an event
    assert schedule.sleep_timeout(12.5, 10.0) == 2.5
    assert schedule.sleep_timeout(9.0, 10.0) == 0.0
