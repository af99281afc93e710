"""The weight-state machine: numbers, weights, the step table, the probe words."""

from hypothesis import given, strategies as st

from schema_init.core import schema as s


def test_state_numbers_and_names_are_the_originals():
    assert (s.FUNDAMENTAL, s.FRICTION, s.SETTLED, s.NEW_PROCESS, s.RECOVERY,
            s.FULL_TRUST, s.DORMANT, s.EXCISED, s.PERFECT) == (1, 6, 7, 8, 9, 10, 75, 76, 88)
    for value, name in s.STATE_NAMES.items():
        assert s.state_name(value) == name
    assert s.state_name(2) == "UNKNOWN"
    assert s.state_name(255) == "UNKNOWN"


def test_flag_bits_masks_and_thresholds_are_the_originals():
    assert [v for _, v in s.FLAG_BITS["F8"]] == [1 << i for i in range(8)]
    assert [v for _, v in s.FLAG_BITS["F9"]] == [1 << i for i in range(12)]
    assert [v for _, v in s.FLAG_BITS["F6"]] == [1 << i for i in range(6)]
    assert (s.F8_MASK, s.F9_MASK, s.F6_MASK) == (0xFF, 0xFFF, 0x3F)
    assert (s.F8_THRESHOLD, s.F9_THRESHOLD, s.F6_THRESHOLD) == (5, 8, 3)
    assert s.FLAG_BITS["F9"][11] == ("F9_PARTIAL_MIN", 0x800)


@given(st.integers(min_value=0, max_value=(1 << 32) - 1))
def test_weight_is_popcount_of_masked_word(word):
    assert s.weight(word, s.F8_MASK) == bin(word & 0xFF).count("1")
    assert s.weight(word, s.F9_MASK) == bin(word & 0xFFF).count("1")


def test_new_process_steps_by_f8_threshold():
    assert s.step(s.NEW_PROCESS, 0b11111) == (s.FULL_TRUST, 5)
    assert s.step(s.NEW_PROCESS, 0b1111) == (s.RECOVERY, 4)
    # bits outside the mask do not count
    assert s.step(s.NEW_PROCESS, 0xF00 | 0b1111) == (s.RECOVERY, 4)


def test_recovery_steps_by_f9_threshold():
    assert s.step(s.RECOVERY, 0xFF) == (s.SETTLED, 8)
    assert s.step(s.RECOVERY, 0x7F) == (s.FRICTION, 7)


def test_friction_steps_by_f6_threshold():
    assert s.step(s.FRICTION, 0b111) == (s.RECOVERY, 3)
    assert s.step(s.FRICTION, 0b11) == (s.EXCISED, 2)


def test_full_trust_promotes_only_with_all_eight_f8_bits():
    assert s.step(s.FULL_TRUST, 0xFF) == (s.FUNDAMENTAL, None)
    assert s.step(s.FULL_TRUST, 0x7F) == (s.FULL_TRUST, None)
    assert s.step(s.FULL_TRUST, 0) == (s.EXCISED, None)


@given(st.sampled_from([s.FUNDAMENTAL, s.SETTLED, s.DORMANT, s.EXCISED, s.PERFECT, 2, 200]),
       st.integers(min_value=0, max_value=0xFFFF))
def test_resting_states_do_not_move(state, word):
    assert s.step(state, word) == (state, None)


HEALTHY = dict(budget_left=True, cooldown_over=True, exec_exists=True, exec_runnable=True,
               mem_kb=1 << 20, no_critical_dep_excised=True, permitted=True)


def test_healthy_service_passes_f9_so_recovery_is_a_quick_retry():
    """The original's F9 could never pass."""
    word = s.f9_word(**HEALTHY)
    assert word == s.F9_MASK
    assert s.step(s.RECOVERY, word) == (s.SETTLED, 12)


def test_exhausted_budget_fails_f9_even_when_everything_else_is_fine():
    word = s.f9_word(**dict(HEALTHY, budget_left=False))
    assert s.step(s.RECOVERY, word)[0] == s.FRICTION


def test_one_soft_fact_failing_does_not_stop_a_retry():
    for fact, value in (("mem_kb", 100), ("exec_exists", False), ("permitted", False),
                        ("no_critical_dep_excised", False), ("cooldown_over", False)):
        word = s.f9_word(**dict(HEALTHY, **{fact: value}))
        assert s.step(s.RECOVERY, word)[0] == s.SETTLED, fact


def test_f6_passes_with_budget_and_fails_without():
    assert s.step(s.FRICTION, s.f6_word(True, 1 << 20))[0] == s.RECOVERY
    assert s.step(s.FRICTION, s.f6_word(False, 1 << 20))[0] == s.EXCISED
    # budget left but memory short still passes (ERR_PATH, ESC_LIMIT, ESC_PATTERN)
    assert s.step(s.FRICTION, s.f6_word(True, 0))[0] == s.RECOVERY


def test_f8_word_bits_follow_the_facts():
    full = s.f8_word(True, True, True, True, 1 << 20, True)
    assert full == 0xFF
    assert s.f8_word(True, True, True, True, 4096, True) == 0xFF & ~s.F8_MEM_SAFE
    assert s.f8_word(True, True, True, True, 0, True) == 0xFF & ~(s.F8_MEM_SAFE | s.F8_MEM_AVAIL)
    assert s.f8_word(True, True, True, False, 1 << 20, True) == 0xFF & ~s.F8_DEP_STATE


def test_missing_binary_or_root_refuses_the_spawn_instead_of_exec_failing():
    """The original spawned anyway (F8 weight 7 >= 5)."""
    no_binary = s.f8_word(False, False, True, True, 1 << 20, True)
    assert s.step(s.NEW_PROCESS, no_binary)[0] == s.FULL_TRUST  # weight alone would allow it
    assert s.spawn_refusal(no_binary) == "exec path does not exist"
    not_root = s.f8_word(True, True, True, True, 1 << 20, False)
    assert "needs_root" in s.spawn_refusal(not_root)
    not_runnable = s.f8_word(True, False, True, True, 1 << 20, True)
    assert s.spawn_refusal(not_runnable) == "exec path is not executable"
    assert s.spawn_refusal(0xFF) is None
