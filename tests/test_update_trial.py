"""Issue 23: the trial boot's verdict (schema_init/core/trial.py), with plain calls: every
state a required service can be in, at every moment that matters, and the settings."""

import itertools

import pytest

from schema_init.core import schema, trial
from schema_init.core.trial import COMMIT, FAIL, WAIT, Fact, Settings, decide

ALL_STATES = sorted(schema.STATE_NAMES)
DEFAULT = Settings()


def crit(name, state, failures=0, up_since=5.0, last=""):
    return Fact(name, state, critical=True, failures=failures, last_failure=last,
                up_since=up_since)


def test_every_critical_service_up_and_held_commits():
    facts = [crit("data", schema.PERFECT, up_since=8.0), crit("udev", schema.FUNDAMENTAL,
                                                              up_since=12.0),
             Fact("wifi", schema.FRICTION, failures=2)]        # not critical: no say
    assert decide(facts, 21.9, DEFAULT).action == WAIT
    verdict = decide(facts, 22.0, DEFAULT)
    assert verdict.action == COMMIT and "2 required services up for 10 s" in verdict.reason


def test_the_hold_restarts_when_a_required_service_comes_up_later():
    verdict = decide([crit("a", schema.FUNDAMENTAL, up_since=50.0)], 55.0, DEFAULT)
    assert verdict.action == WAIT and verdict.recheck == 60.0


def test_an_excised_required_service_fails_at_once_naming_it():
    verdict = decide([crit("db", schema.EXCISED, failures=1, last="exited 3"),
                      crit("udev", schema.FUNDAMENTAL)], 1.0, DEFAULT)
    assert verdict.action == FAIL
    assert verdict.reason == "required service db EXCISED after 1 failure (last: exited 3)"


def test_a_crashing_critical_service_fails_after_fail_after_failures():
    """critical=1 services are never excised: their failures count instead."""
    assert decide([crit("app", schema.RECOVERY, failures=2)], 30.0, DEFAULT).action == WAIT
    verdict = decide([crit("app", schema.FRICTION, failures=3, last="killed by SIGSEGV")],
                     30.0, DEFAULT)
    assert verdict.action == FAIL and "app FRICTION after 3 failures" in verdict.reason
    assert "killed by SIGSEGV" in verdict.reason
    no_limit = Settings(fail_after=0)
    assert decide([crit("app", schema.FRICTION, failures=50)], 30.0, no_limit).action == WAIT


def test_the_deadline_fails_a_boot_that_never_came_up_naming_what_was_down():
    facts = [crit("app", schema.NEW_PROCESS, up_since=None), crit("udev", schema.FUNDAMENTAL)]
    assert decide(facts, 119.9, DEFAULT).action == WAIT
    verdict = decide(facts, 120.0, DEFAULT)
    assert verdict.action == FAIL
    assert verdict.reason == "not healthy 120 s after the boot: app NEW_PROCESS"


def test_up_before_the_deadline_may_hold_past_it_but_not_go_down_past_it():
    up = [crit("a", schema.FUNDAMENTAL, up_since=115.0)]
    assert decide(up, 121.0, DEFAULT).action == WAIT
    assert decide(up, 125.0, DEFAULT).action == COMMIT
    assert decide([crit("a", schema.RECOVERY, failures=1)], 121.0, DEFAULT).action == FAIL


@pytest.mark.parametrize("state", ALL_STATES)
@pytest.mark.parametrize("elapsed", [0.0, 9.0, 15.0, 119.0, 120.0, 500.0])
@pytest.mark.parametrize("failures", [0, 2, 3])
def test_every_state_at_every_moment(state, elapsed, failures):
    """One required service in each state, at each moment: the verdict follows the rule
    of the module's docstring, and a wait always says when to look again."""
    fact = crit("s", state, failures=failures, up_since=5.0)
    verdict = decide([fact], elapsed, DEFAULT)
    if state == schema.EXCISED or failures >= 3:
        expected = FAIL
    elif state in trial.UP_STATES:
        expected = COMMIT if elapsed >= 15.0 else WAIT
    else:
        expected = FAIL if elapsed >= 120.0 else WAIT
    assert verdict.action == expected, (schema.state_name(state), elapsed, failures, verdict)
    if verdict.action == WAIT:
        assert verdict.recheck is not None and verdict.recheck > elapsed
    assert verdict.reason


def test_every_pair_of_states_for_two_required_services():
    for first, second in itertools.product(ALL_STATES, repeat=2):
        facts = [crit("a", first), crit("b", second)]
        verdict = decide(facts, 60.0, DEFAULT)
        if schema.EXCISED in (first, second):
            assert verdict.action == FAIL
        elif first in trial.UP_STATES and second in trial.UP_STATES:
            assert verdict.action == COMMIT
        else:
            assert verdict.action == WAIT


def test_no_critical_service_commits_after_the_hold():
    assert decide([Fact("x", schema.FRICTION)], 10.0, DEFAULT).action == COMMIT


def test_named_services_instead_of_the_critical_ones():
    settings, errors = trial.parse_settings("require = web db\n")
    assert not errors and settings.require == ("web", "db")
    facts = [Fact("web", schema.FUNDAMENTAL, up_since=1.0),
             Fact("db", schema.FUNDAMENTAL, up_since=2.0), crit("udev", schema.FRICTION)]
    assert decide(facts, 30.0, settings).action == COMMIT
    verdict = decide(facts[:1], 30.0, settings)
    assert verdict.action == FAIL and "db not in this slot's services" in verdict.reason


def test_settings_are_parsed_strictly_and_each_error_named():
    settings, errors = trial.parse_settings(
        "# the trial\ndeadline=300\nhold = 0\nfail_after=5\n")
    assert not errors
    assert (settings.deadline, settings.hold, settings.fail_after) == (300, 0, 5)
    settings, errors = trial.parse_settings("deadline=5\nhold=x\nspeed=3\nrequire=\n")
    assert settings.deadline == 120 and settings.hold == 10
    assert errors == ["line 1: deadline: a whole number of 10..3600",
                      "line 2: hold: a whole number of 0..600",
                      "line 3: unknown setting 'speed' (known: deadline, fail_after, hold, "
                      "require)", "line 4: require: 'critical' or service names"]
    assert "every critical=1 service" in DEFAULT.describe()
