"""The shared-memory layout: the one definition of both segments.

The writer (``pid1/shm.py``, through the compiled loop's ``ShmWriter``), the readers
(``core/shmdecode.py`` for ``schema-ctl top`` and ``schema-metrics``) and the C header
(``native/schema_shm.h``, printed by ``python -m schema_init.pid1.shm``) all come from
the tables below; nothing else states an offset.

Two segments:

* the compatible one (``/schema-init`` as PID 1), exactly the original's 6032 bytes
  (docs/spec.md, "Shared memory"): the first 64 services and 16 groups, ``system_state``;
* the extended one (same name + ``.ext``), which carries *every* service and group
  behind a header with a magic number, a version and its own sizes, and per service
  what a live board and a metrics helper need beyond the original's fields: monotonic
  counters, the moments of the last state change, spawn and readiness (and the first
  ones: the boot), the last failure's reason.

Both use ``seq`` as a seqlock: odd while the writer changes the entries, even when
they are consistent; it moves only when something changed.  A reader copies the
segment between two even, equal reads of ``seq``.

Times are CLOCK_MONOTONIC in microseconds (0: never), the clock a reader on the same
machine reads as ``time.monotonic()``; they are written at a transition, never by a
tick, so an idle system writes nothing.

Pure: constants, tables and text; no file is opened here.
"""

NAME_WIDTH = 64
REASON_WIDTH = 128
MAX_SERVICES = 64
MAX_GROUPS = 16

SYSTEM_RUNNING = 0
SYSTEM_POWEROFF = 13
SYSTEM_REBOOT = 14

# A/B image: which root slot booted and whether it is committed.  0 in both: the machine
# has no A/B slots (every machine today; the A/B update will write them).
AB_NONE = 0
AB_SLOTS = {1: "A", 2: "B"}
AB_COMMITS = {1: "trial", 2: "committed"}

# C type -> (struct code, size)
C_TYPES = {"char": ("s", 1), "uint8_t": ("B", 1), "int32_t": ("i", 4),
           "uint32_t": ("I", 4), "int64_t": ("q", 8)}

# --- compatible segment --------------------------------------------------------------
# (field, C type, offset, size); entries are NAME_WIDTH-byte names then the numbers.
SVC_FIELDS = (("name", "char", 0, NAME_WIDTH), ("state", "uint8_t", 64, 1),
              ("weight", "uint8_t", 65, 1), ("child_pid", "int32_t", 68, 4),
              ("restart_count", "int32_t", 72, 4))
SVC_SIZE = 76
GROUP_FIELDS = (("name", "char", 0, NAME_WIDTH), ("state", "uint8_t", 64, 1),
                ("member_count", "int32_t", 68, 4))
GROUP_SIZE = 72
SEQ_OFFSET = 0
COUNT_OFFSET = 4
SVC_OFFSET = 8
GROUP_COUNT_OFFSET = SVC_OFFSET + MAX_SERVICES * SVC_SIZE            # 4872
GROUPS_OFFSET = GROUP_COUNT_OFFSET + 4                                 # 4876
SYSTEM_STATE_OFFSET = GROUPS_OFFSET + MAX_GROUPS * GROUP_SIZE         # 6028
SEGMENT_SIZE = SYSTEM_STATE_OFFSET + 4                                 # 6032
STRUCT_FORMAT = "<Ii" + "64sBB2xii" * MAX_SERVICES + "i" + "64sB3xi" * MAX_GROUPS + "B3x"

# --- extended segment ----------------------------------------------------------------
EXT_MAGIC = 0x58484353           # "SCHX" read as little-endian bytes
EXT_VERSION = 2
EXT_SUFFIX = ".ext"
EXT_HEADER_FIELDS = (
    ("seq", "uint32_t", 0, 4), ("magic", "uint32_t", 4, 4), ("version", "uint32_t", 8, 4),
    ("header_size", "uint32_t", 12, 4), ("entry_size", "uint32_t", 16, 4),
    ("count", "uint32_t", 20, 4), ("group_entry_size", "uint32_t", 24, 4),
    ("group_count", "uint32_t", 28, 4), ("groups_offset", "uint32_t", 32, 4),
    ("total_size", "uint32_t", 36, 4), ("system_state", "uint8_t", 40, 1),
    ("ab_slot", "uint8_t", 41, 1),             # AB_SLOTS, 0: no A/B slots
    ("ab_commit", "uint8_t", 42, 1),           # AB_COMMITS, 0: no A/B slots
    ("supervisor_pid", "int32_t", 44, 4),      # 1 as PID 1; a reader's /proc/PID/status
    ("init_start_us", "int64_t", 48, 8),       # schema-init's start (as PID 1: the
                                               # kernel's time before it)
    ("supervisor_start_us", "int64_t", 56, 8))  # the supervisor's start: the boot's origin
EXT_HEADER_SIZE = 64
EXT_SVC_FIELDS = SVC_FIELDS + (
    ("flags", "uint32_t", 76, 4),
    ("spawns", "uint32_t", 80, 4),             # real spawns since loaded (never reset)
    ("failures", "uint32_t", 84, 4),           # failed runs since loaded (never reset)
    ("state_since_us", "int64_t", 88, 8),      # the current state entered
    ("spawned_us", "int64_t", 96, 8),          # the last spawn
    ("ready_us", "int64_t", 104, 8),           # its readiness (0: not ready since)
    ("boot_spawned_us", "int64_t", 112, 8),    # the first spawn (the boot)
    ("boot_ready_us", "int64_t", 120, 8),      # the first readiness (the boot)
    ("last_failure", "char", 128, REASON_WIDTH))  # why the last failed run failed
EXT_SVC_SIZE = 256
EXT_GROUP_FIELDS = GROUP_FIELDS
EXT_GROUP_SIZE = GROUP_SIZE

assert SEGMENT_SIZE == 6032


def field_offset(fields, name):
    for field in fields:
        if field[0] == name:
            return field[2]
    raise KeyError(name)


def writer_layout(fields):
    """The compiled writer's view of an entry's fields after the name: ``((offset,
    code, width), ...)`` in table order, code one of ``s B i I q``."""
    return tuple((offset, C_TYPES[ctype][0], width)
                 for name, ctype, offset, width in fields[1:])


def ext_size(service_capacity, group_capacity):
    return EXT_HEADER_SIZE + service_capacity * EXT_SVC_SIZE + group_capacity * EXT_GROUP_SIZE


def capacity(count):
    """Room for ``count`` entries: 64 times a power of two."""
    size = MAX_SERVICES
    while size < count:
        size *= 2
    return size


def c_header():
    """The generated ``native/schema_shm.h``."""
    out = ["/* schema_shm.h: generated by `python -m schema_init.pid1.shm` from",
           "   schema_init/core/shmlayout.py; do not edit. */",
           "#ifndef SCHEMA_SHM_H", "#define SCHEMA_SHM_H", "", "#include <stdint.h>", "",
           "#define SCHEMA_SHM_MAX %d" % MAX_SERVICES,
           "#define SCHEMA_SHM_MAX_GROUPS %d" % MAX_GROUPS,
           "#define SCHEMA_SHM_NAME_WIDTH %d" % NAME_WIDTH,
           "#define SCHEMA_SHM_REASON_WIDTH %d" % REASON_WIDTH,
           "#define SCHEMA_SHM_SIZE %d" % SEGMENT_SIZE,
           "#define SCHEMA_SYSTEM_RUNNING %d" % SYSTEM_RUNNING,
           "#define SCHEMA_SYSTEM_POWEROFF %d" % SYSTEM_POWEROFF,
           "#define SCHEMA_SYSTEM_REBOOT %d" % SYSTEM_REBOOT,
           "#define SCHEMA_SHM_EXT_MAGIC 0x%08xu" % EXT_MAGIC,
           "#define SCHEMA_SHM_EXT_VERSION %d" % EXT_VERSION,
           "#define SCHEMA_SHM_EXT_SUFFIX \"%s\"" % EXT_SUFFIX, ""]

    def struct_lines(name, fields, size):
        lines = ["typedef struct {"]
        position = 0
        pad = 0
        for field, ctype, offset, width in fields:
            if offset > position:
                lines.append("    uint8_t _pad%d[%d];" % (pad, offset - position))
                pad += 1
            if ctype == "char":
                lines.append("    char %s[%d];" % (field, width))
            else:
                lines.append("    %s %s;" % (ctype, field))
            position = offset + width
        if size > position:
            lines.append("    uint8_t _pad%d[%d];" % (pad, size - position))
        lines.append("} %s;" % name)
        lines.append("_Static_assert(sizeof(%s) == %d, \"%s size\");" % (name, size, name))
        return lines + [""]

    out += struct_lines("shm_svc_t", SVC_FIELDS, SVC_SIZE)
    out += struct_lines("shm_group_t", GROUP_FIELDS, GROUP_SIZE)
    out += ["typedef struct {", "    uint32_t seq;      /* seqlock: odd while writing */",
            "    int32_t count;", "    shm_svc_t svc[SCHEMA_SHM_MAX];", "    int32_t group_count;",
            "    shm_group_t groups[SCHEMA_SHM_MAX_GROUPS];", "    uint8_t system_state;",
            "    uint8_t _pad[3];", "} schema_shm_t;",
            "_Static_assert(sizeof(schema_shm_t) == %d, \"schema_shm_t size\");" % SEGMENT_SIZE,
            ""]
    out += struct_lines("shm_ext_header_t", EXT_HEADER_FIELDS, EXT_HEADER_SIZE)
    out += struct_lines("shm_ext_svc_t", EXT_SVC_FIELDS, EXT_SVC_SIZE)
    out += ["/* Extended segment: shm_ext_header_t, then `count` shm_ext_svc_t entries at",
            "   header_size (stride entry_size), then `group_count` shm_group_t at",
            "   groups_offset (stride group_entry_size).  magic 0 means: re-open.",
            "   *_us: CLOCK_MONOTONIC microseconds, 0 never; ab_slot 1 A, 2 B, ab_commit",
            "   1 trial, 2 committed, 0 in both: no A/B slots. */",
            "", "#endif", ""]
    return "\n".join(out)
