"""The shared-memory layout: the one definition (the C header is generated from it).

Two segments:

* the compatible one (``/schema-init`` as PID 1), exactly the original's 6032 bytes
  (docs/spec.md, "Shared memory"): the first 64 services and 16 groups, ``system_state``;
* the extended one (same name + ``.ext``), which carries *every* service and group
  behind a header with a magic number, a version and its own sizes.

Both use ``seq`` as a seqlock: odd while the writer changes the entries, even when
they are consistent; it moves only when something changed.  A reader copies the
segment between two even, equal reads of ``seq``.

``python -m schema_init.pid1.shm`` prints the C header (``native/schema_shm.h``).
"""

import os
import struct

NAME_WIDTH = 64
MAX_SERVICES = 64
MAX_GROUPS = 16

SYSTEM_RUNNING = 0
SYSTEM_POWEROFF = 13
SYSTEM_REBOOT = 14

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
EXT_VERSION = 1
# header: (field, C type, offset)
EXT_HEADER_FIELDS = (("seq", "uint32_t", 0), ("magic", "uint32_t", 4),
                     ("version", "uint32_t", 8), ("header_size", "uint32_t", 12),
                     ("entry_size", "uint32_t", 16), ("count", "uint32_t", 20),
                     ("group_entry_size", "uint32_t", 24), ("group_count", "uint32_t", 28),
                     ("groups_offset", "uint32_t", 32), ("total_size", "uint32_t", 36),
                     ("system_state", "uint8_t", 40))
EXT_HEADER_SIZE = 48
EXT_SVC_FIELDS = SVC_FIELDS + (("flags", "uint32_t", 76, 4),)
EXT_SVC_SIZE = 80
EXT_GROUP_FIELDS = GROUP_FIELDS
EXT_GROUP_SIZE = GROUP_SIZE

assert SEGMENT_SIZE == 6032 == struct.calcsize(STRUCT_FORMAT)


def _field(fields, name):
    for field in fields:
        if field[0] == name:
            return field[2]
    raise KeyError(name)


def ext_size(service_capacity, group_capacity):
    return EXT_HEADER_SIZE + service_capacity * EXT_SVC_SIZE + group_capacity * EXT_GROUP_SIZE


def _capacity(count):
    size = MAX_SERVICES
    while size < count:
        size *= 2
    return size


class Segment:
    """One mapped POSIX shared-memory object under /dev/shm, created by us alone.

    Whatever is already there under the name is removed first and the object is
    created with O_EXCL: a segment another user made in advance (to feed readers forged
    entries through its own open fd) is never adopted.  Every page is allocated before
    it is mapped (``posix_fallocate``), so a full /dev/shm is an error here, never a
    SIGBUS when a page is first written.
    """

    def __init__(self, name, size):
        from . import _fastloop
        self.name = name
        self.path = "/dev/shm/" + name.lstrip("/")
        fd = self._create()
        try:
            os.fchmod(fd, 0o644)
            os.ftruncate(fd, size)
            os.posix_fallocate(fd, 0, size)
            self.writer = _fastloop.ShmWriter(fd, size, SEQ_OFFSET)
        except BaseException:
            os.close(fd)
            self._unlink()
            raise
        os.close(fd)
        self.size = size

    def _create(self):
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW
        for _attempt in range(3):
            self._unlink()
            try:
                return os.open(self.path, flags, 0o644)
            except FileExistsError:
                continue                      # re-created under our feet: again
        raise OSError(17, "%s keeps being re-created by someone else" % self.path)

    def _unlink(self):
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def close(self, unlink=True):
        self.writer.release()
        if unlink:
            try:
                os.unlink(self.path)
            except OSError:
                pass


class Publisher:
    """Writes the supervisor's snapshot into both segments, only when it changed.

    Shared memory is a view, never a reason to stop supervising: when a segment
    cannot be made (/dev/shm full, not writable, squatted and not removable) the
    publisher says so once through ``say``, keeps the snapshot, and tries again at
    the next change; it says so again when it works.
    """

    def __init__(self, name, say=None):
        self.name = name
        self.say = say or (lambda text: None)
        self.compat = None
        self.ext = None
        self.ext_capacity = (0, 0)
        self.last = None
        self.system_state = SYSTEM_RUNNING
        self.problem = None
        self._open_compat()

    def _open_compat(self):
        if self.compat is not None:
            return True
        try:
            self.compat = Segment(self.name, SEGMENT_SIZE)
            return True
        except OSError as exc:
            self._failed(exc)
            return False

    def _failed(self, exc):
        reason = exc.strerror or str(exc)
        if self.problem is None:
            self.say("[schema-init] shared memory /dev/shm%s unavailable (%s): the control "
                     "socket still answers; trying again at the next change"
                     % (self.name if self.name.startswith("/") else "/" + self.name, reason))
        self.problem = reason

    def publish(self, services, groups, system_state=None):
        """``services``: [(name bytes, state, weight, pid, restarts, flags)];
        ``groups``: [(name bytes, state, member_count)].  Returns True if written."""
        if system_state is not None:
            self.system_state = system_state
        snapshot = (services, groups, self.system_state)
        if snapshot == self.last or not self._open_compat():
            return False
        try:
            self._write_compat(services, groups)
            self._write_ext(services, groups)
        except OSError as exc:
            self._failed(exc)
            return False
        if self.problem is not None:
            self.problem = None
            self.say("[schema-init] shared memory available again")
        self.last = snapshot
        return True

    def _write_compat(self, services, groups):
        w = self.compat.writer
        shown = services[:MAX_SERVICES]
        shown_groups = groups[:MAX_GROUPS]
        w.begin()
        # The original's count is the number of valid entries; beyond 64 the extended
        # segment is the place to look (its header says how many exist).
        w.put_i32(COUNT_OFFSET, len(shown))
        w.put_entries(SVC_OFFSET, SVC_SIZE, shown, NAME_WIDTH,
                      _field(SVC_FIELDS, "state"), _field(SVC_FIELDS, "weight"),
                      _field(SVC_FIELDS, "child_pid"), _field(SVC_FIELDS, "restart_count"))
        w.put_i32(GROUP_COUNT_OFFSET, len(shown_groups))
        for i, (name, state, members) in enumerate(shown_groups):
            at = GROUPS_OFFSET + i * GROUP_SIZE
            w.put_name(at, name, NAME_WIDTH)
            w.put_u8(at + _field(GROUP_FIELDS, "state"), state)
            w.put_i32(at + _field(GROUP_FIELDS, "member_count"), members)
        w.put_u8(SYSTEM_STATE_OFFSET, self.system_state)
        w.end()

    def _ensure_ext(self, count, group_count):
        want = (_capacity(count), _capacity(group_count))
        if self.ext is not None and want[0] <= self.ext_capacity[0] \
                and want[1] <= self.ext_capacity[1]:
            return
        if self.ext is not None:
            # A reader holding the old mapping sees magic 0 and re-opens.
            self.ext.writer.begin()
            self.ext.writer.put_i32(_ext_offset("magic"), 0)
            self.ext.writer.end()
            self.ext.close(unlink=True)
            self.ext, self.ext_capacity = None, (0, 0)
        self.ext = Segment(self.name + ".ext", ext_size(*want))
        self.ext_capacity = want
        w = self.ext.writer
        w.begin()
        for field, value in (("magic", EXT_MAGIC), ("version", EXT_VERSION),
                             ("header_size", EXT_HEADER_SIZE), ("entry_size", EXT_SVC_SIZE),
                             ("group_entry_size", EXT_GROUP_SIZE),
                             ("groups_offset", EXT_HEADER_SIZE + want[0] * EXT_SVC_SIZE),
                             ("total_size", ext_size(*want))):
            w.put_i32(_ext_offset(field), value)
        w.end()

    def _write_ext(self, services, groups):
        self._ensure_ext(len(services), len(groups))
        w = self.ext.writer
        groups_offset = EXT_HEADER_SIZE + self.ext_capacity[0] * EXT_SVC_SIZE
        w.begin()
        w.put_i32(_ext_offset("count"), len(services))
        w.put_entries(EXT_HEADER_SIZE, EXT_SVC_SIZE, services, NAME_WIDTH,
                      _field(EXT_SVC_FIELDS, "state"), _field(EXT_SVC_FIELDS, "weight"),
                      _field(EXT_SVC_FIELDS, "child_pid"),
                      _field(EXT_SVC_FIELDS, "restart_count"), _field(EXT_SVC_FIELDS, "flags"))
        w.put_i32(_ext_offset("group_count"), len(groups))
        for i, (name, state, members) in enumerate(groups):
            at = groups_offset + i * EXT_GROUP_SIZE
            w.put_name(at, name, NAME_WIDTH)
            w.put_u8(at + _field(GROUP_FIELDS, "state"), state)
            w.put_i32(at + _field(GROUP_FIELDS, "member_count"), members)
        w.put_u8(_ext_offset("system_state"), self.system_state)
        w.end()

    def set_system_state(self, state):
        self.system_state = state
        if self.compat is None:
            return
        for segment, offset in ((self.compat, SYSTEM_STATE_OFFSET),
                                (self.ext, _ext_offset("system_state"))):
            if segment is not None:
                segment.writer.begin()
                segment.writer.put_u8(offset, state)
                segment.writer.end()
        if self.last is not None:
            self.last = (self.last[0], self.last[1], state)

    def close(self, unlink=True):
        if self.compat is not None:
            self.compat.close(unlink)
        if self.ext is not None:
            self.ext.close(unlink)


def _ext_offset(name):
    for field, _, offset in EXT_HEADER_FIELDS:
        if field == name:
            return offset
    raise KeyError(name)


def read_snapshot(data):
    """Decode a compatible segment's bytes (for tests and tools)."""
    values = struct.unpack(STRUCT_FORMAT, data[:SEGMENT_SIZE])
    seq, count = values[0], values[1]
    services = []
    for i in range(min(count, MAX_SERVICES)):
        name, state, weight, pid, restarts = values[2 + 5 * i: 7 + 5 * i]
        services.append((name.split(b"\0", 1)[0].decode(), state, weight, pid, restarts))
    base = 2 + 5 * MAX_SERVICES
    group_count = values[base]
    groups = []
    for i in range(min(group_count, MAX_GROUPS)):
        name, state, members = values[base + 1 + 3 * i: base + 4 + 3 * i]
        groups.append((name.split(b"\0", 1)[0].decode(), state, members))
    return {"seq": seq, "services": services, "groups": groups, "system_state": values[-1]}


def c_header():
    """The generated ``native/schema_shm.h``."""
    out = ["/* schema_shm.h: generated by `python -m schema_init.pid1.shm`; do not edit. */",
           "#ifndef SCHEMA_SHM_H", "#define SCHEMA_SHM_H", "", "#include <stdint.h>", "",
           "#define SCHEMA_SHM_MAX %d" % MAX_SERVICES,
           "#define SCHEMA_SHM_MAX_GROUPS %d" % MAX_GROUPS,
           "#define SCHEMA_SHM_NAME_WIDTH %d" % NAME_WIDTH,
           "#define SCHEMA_SHM_SIZE %d" % SEGMENT_SIZE,
           "#define SCHEMA_SYSTEM_RUNNING %d" % SYSTEM_RUNNING,
           "#define SCHEMA_SYSTEM_POWEROFF %d" % SYSTEM_POWEROFF,
           "#define SCHEMA_SYSTEM_REBOOT %d" % SYSTEM_REBOOT,
           "#define SCHEMA_SHM_EXT_MAGIC 0x%08xu" % EXT_MAGIC,
           "#define SCHEMA_SHM_EXT_VERSION %d" % EXT_VERSION,
           "#define SCHEMA_SHM_EXT_SUFFIX \".ext\"", ""]

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
    header_fields = [(f, t, o, 1 if t == "uint8_t" else 4) for f, t, o in EXT_HEADER_FIELDS]
    out += struct_lines("shm_ext_header_t", header_fields, EXT_HEADER_SIZE)
    out += struct_lines("shm_ext_svc_t", EXT_SVC_FIELDS, EXT_SVC_SIZE)
    out += ["/* Extended segment: shm_ext_header_t, then `count` shm_ext_svc_t entries at",
            "   header_size (stride entry_size), then `group_count` shm_group_t at",
            "   groups_offset (stride group_entry_size).  magic 0 means: re-open. */",
            "", "#endif", ""]
    return "\n".join(out)


if __name__ == "__main__":
    import sys
    sys.stdout.write(c_header())
