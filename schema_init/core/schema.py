"""The weight-state machine: states, probe flag bits, weights and the pure step.

Rules of this file:

* Everything that decides a service's next state from a probe word lives here, and
  nothing here touches the OS, the clock or a process.  Callers gather the facts,
  build a word with the ``*_word`` functions and call :func:`step`.
* The numbers are a compatibility surface (shared memory, logs, the control socket):
  state values, flag values, masks and thresholds are those of the original.

Theory of operation.  A probe turns facts into a bit word; ``weight`` is the number
of bits set inside the family's mask; the next state follows from comparing the
weight with the family's threshold:

    NEW_PROCESS --F8>=5--> FULL_TRUST --F8 all 8--> FUNDAMENTAL
        |  F8<5                |
        v                      v  (death, refusal, start timeout)
    RECOVERY --F9>=8--> SETTLED (rewritten at once to NEW_PROCESS: a quick retry)
        |  F9<8
        v
    FRICTION --F6>=3--> RECOVERY (rewritten to NEW_PROCESS: a deep retry)
        |  F6<3
        v
    "EXCISED" verdict -> DORMANT (backoff) or EXCISED (terminal)

The original's F9 could never pass (at most 6 of its bits were ever set against a
threshold of 8).  Here every F9 bit means something and a healthy service passes:
five bits carry the restart budget, so an exhausted budget always fails F9
(12 - 5 = 7 < 8), while the softer facts (memory, the binary, a critical
dependency, permission) can each fail without stopping a retry on their own.
"""

FUNDAMENTAL = 1
FRICTION = 6
SETTLED = 7
NEW_PROCESS = 8
RECOVERY = 9
FULL_TRUST = 10
DORMANT = 75
EXCISED = 76
PERFECT = 88

STATE_NAMES = {
    FUNDAMENTAL: "FUNDAMENTAL",
    FRICTION: "FRICTION",
    SETTLED: "SETTLED",
    NEW_PROCESS: "NEW_PROCESS",
    RECOVERY: "RECOVERY",
    FULL_TRUST: "FULL_TRUST",
    DORMANT: "DORMANT",
    EXCISED: "EXCISED",
    PERFECT: "PERFECT",
}

# States that satisfy a dependency (SETTLED is transient but counts, as in the original).
SATISFYING_STATES = (FUNDAMENTAL, SETTLED, PERFECT)


def state_name(state):
    return STATE_NAMES.get(state, "UNKNOWN")


# --- F8: "can we spawn?" ------------------------------------------------------------
F8_HW_EXISTS = 0x01      # the exec path exists
F8_HW_RESPONDS = 0x02    # the exec path is executable
F8_DEP_PRESENT = 0x04    # every dep resolves and none is a critical EXCISED one
F8_DEP_STATE = 0x08      # every dep satisfies the readiness gate
F8_MEM_AVAIL = 0x10      # MemAvailable > 0
F8_MEM_SAFE = 0x20       # MemAvailable >= MEM_MIN_KB
F8_PERM_PRESENT = 0x40   # always set
F8_PERM_AUTH = 0x80      # not needs_root, or running as root
F8_MASK = 0xFF
F8_THRESHOLD = 5

# --- F9: "can we recover?" ----------------------------------------------------------
F9_RETRY_COUNT = 0x001    # budget: consecutive failures < max_restarts
F9_RETRY_WIN = 0x002      # the cooldown for this failure has elapsed
F9_FALL_EXISTS = 0x004    # the exec path exists
F9_FALL_HEALTH = 0x008    # the exec path is executable
F9_MEM_FREE = 0x010       # MemAvailable > 0
F9_MEM_SUFF = 0x020       # MemAvailable >= MEM_MIN_KB
F9_ESC_PATH = 0x040       # no critical dependency is EXCISED
F9_ESC_AUTH = 0x080       # not needs_root, or running as root
F9_TIMEOUT_WIN = 0x100    # budget
F9_TIMEOUT_EXT = 0x200    # budget
F9_PARTIAL_LOAD = 0x400   # budget
F9_PARTIAL_MIN = 0x800    # budget
F9_MASK = 0xFFF
F9_THRESHOLD = 8
F9_BUDGET_BITS = (F9_RETRY_COUNT | F9_TIMEOUT_WIN | F9_TIMEOUT_EXT
                  | F9_PARTIAL_LOAD | F9_PARTIAL_MIN)

# --- F6: "last chance" --------------------------------------------------------------
F6_ERR_PATH = 0x01        # budget
F6_ERR_RES = 0x02         # MemAvailable >= MEM_MIN_KB
F6_ROLL_STATE = 0x04      # never (reserved, as in the original)
F6_ROLL_SAFE = 0x08       # never
F6_ESC_LIMIT = 0x10       # budget
F6_ESC_PATTERN = 0x20     # always
F6_MASK = 0x3F
F6_THRESHOLD = 3

MEM_MIN_KB = 8192

# Every flag, by family, in bit order: docs, the C header and tests read this.
FLAG_BITS = {
    "F8": (("F8_HW_EXISTS", F8_HW_EXISTS), ("F8_HW_RESPONDS", F8_HW_RESPONDS),
           ("F8_DEP_PRESENT", F8_DEP_PRESENT), ("F8_DEP_STATE", F8_DEP_STATE),
           ("F8_MEM_AVAIL", F8_MEM_AVAIL), ("F8_MEM_SAFE", F8_MEM_SAFE),
           ("F8_PERM_PRESENT", F8_PERM_PRESENT), ("F8_PERM_AUTH", F8_PERM_AUTH)),
    "F9": (("F9_RETRY_COUNT", F9_RETRY_COUNT), ("F9_RETRY_WIN", F9_RETRY_WIN),
           ("F9_FALL_EXISTS", F9_FALL_EXISTS), ("F9_FALL_HEALTH", F9_FALL_HEALTH),
           ("F9_MEM_FREE", F9_MEM_FREE), ("F9_MEM_SUFF", F9_MEM_SUFF),
           ("F9_ESC_PATH", F9_ESC_PATH), ("F9_ESC_AUTH", F9_ESC_AUTH),
           ("F9_TIMEOUT_WIN", F9_TIMEOUT_WIN), ("F9_TIMEOUT_EXT", F9_TIMEOUT_EXT),
           ("F9_PARTIAL_LOAD", F9_PARTIAL_LOAD), ("F9_PARTIAL_MIN", F9_PARTIAL_MIN)),
    "F6": (("F6_ERR_PATH", F6_ERR_PATH), ("F6_ERR_RES", F6_ERR_RES),
           ("F6_ROLL_STATE", F6_ROLL_STATE), ("F6_ROLL_SAFE", F6_ROLL_SAFE),
           ("F6_ESC_LIMIT", F6_ESC_LIMIT), ("F6_ESC_PATTERN", F6_ESC_PATTERN)),
}


def weight(word, mask):
    """Number of bits of ``word`` inside ``mask``."""
    return bin(word & mask).count("1")


def step(state, word):
    """The pure transition: returns ``(next_state, weight)``.

    ``weight`` is None where the original leaves the stored weight untouched
    (FULL_TRUST and every resting state).
    """
    if state == NEW_PROCESS:
        w = weight(word, F8_MASK)
        return (FULL_TRUST if w >= F8_THRESHOLD else RECOVERY), w
    if state == RECOVERY:
        w = weight(word, F9_MASK)
        return (SETTLED if w >= F9_THRESHOLD else FRICTION), w
    if state == FRICTION:
        w = weight(word, F6_MASK)
        return (RECOVERY if w >= F6_THRESHOLD else EXCISED), w
    if state == FULL_TRUST:
        if word & F8_MASK == F8_MASK:
            return FUNDAMENTAL, None
        if word == 0:
            return EXCISED, None
        return FULL_TRUST, None
    return state, None


def _bits(*pairs):
    word = 0
    for condition, bit in pairs:
        if condition:
            word |= bit
    return word


def f8_word(exec_exists, exec_runnable, deps_present, deps_ready, mem_kb, permitted):
    return _bits((exec_exists, F8_HW_EXISTS), (exec_runnable, F8_HW_RESPONDS),
                 (deps_present, F8_DEP_PRESENT), (deps_ready, F8_DEP_STATE),
                 (mem_kb > 0, F8_MEM_AVAIL), (mem_kb >= MEM_MIN_KB, F8_MEM_SAFE),
                 (True, F8_PERM_PRESENT), (permitted, F8_PERM_AUTH))


def f9_word(budget_left, cooldown_over, exec_exists, exec_runnable, mem_kb,
            no_critical_dep_excised, permitted):
    return _bits((budget_left, F9_BUDGET_BITS), (cooldown_over, F9_RETRY_WIN),
                 (exec_exists, F9_FALL_EXISTS), (exec_runnable, F9_FALL_HEALTH),
                 (mem_kb > 0, F9_MEM_FREE), (mem_kb >= MEM_MIN_KB, F9_MEM_SUFF),
                 (no_critical_dep_excised, F9_ESC_PATH), (permitted, F9_ESC_AUTH))


def f6_word(budget_left, mem_kb):
    return _bits((budget_left, F6_ERR_PATH | F6_ESC_LIMIT),
                 (mem_kb >= MEM_MIN_KB, F6_ERR_RES), (True, F6_ESC_PATTERN))


def spawn_refusal(word):
    """Why an F8 word forbids exec'ing at all, or None when a spawn may go ahead."""
    if not word & F8_HW_EXISTS:
        return "exec path does not exist"
    if not word & F8_HW_RESPONDS:
        return "exec path is not executable"
    if not word & F8_PERM_AUTH:
        return "needs_root, but schema-init is not running as root"
    return None
