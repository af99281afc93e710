"""The shared-memory writer: PID 1's side of ``core/shmlayout.py``.

The layout (both segments, every offset, the C header) is defined once in
``schema_init.core.shmlayout``; this file makes the segments and writes the
supervisor's snapshot into them through the compiled loop's ``ShmWriter``, under
the seqlock, only when something changed.

``python -m schema_init.pid1.shm`` prints the C header (``native/schema_shm.h``).
"""

import os

from schema_init.core.shmlayout import (  # noqa: F401 - the layout's names, for callers
    COUNT_OFFSET, EXT_GROUP_FIELDS, EXT_GROUP_SIZE, EXT_HEADER_FIELDS, EXT_HEADER_SIZE,
    EXT_MAGIC, EXT_SUFFIX, EXT_SVC_FIELDS, EXT_SVC_SIZE, EXT_VERSION, GROUP_COUNT_OFFSET,
    GROUP_FIELDS, GROUP_SIZE, GROUPS_OFFSET, MAX_GROUPS, MAX_SERVICES, NAME_WIDTH,
    SEGMENT_SIZE, SEQ_OFFSET, STRUCT_FORMAT, SVC_FIELDS, SVC_OFFSET, SVC_SIZE,
    SYSTEM_POWEROFF, SYSTEM_REBOOT, SYSTEM_RUNNING, SYSTEM_STATE_OFFSET, c_header,
    capacity, ext_size, field_offset, writer_layout)

COMPAT_LAYOUT = writer_layout(SVC_FIELDS)
EXT_LAYOUT = writer_layout(EXT_SVC_FIELDS)


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
        # the extended header's facts about the supervisor (set_origin) and the A/B
        # image (set_ab; 0, 0: no A/B slots)
        self.origin = (0, 0, 0)
        self.ab = (0, 0)
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

    def set_origin(self, supervisor_pid, init_start, supervisor_start):
        """The supervisor's pid and the monotonic instants (seconds) schema-init and
        its supervisor started: written with the next snapshot."""
        self.origin = (supervisor_pid, _micros(init_start), _micros(supervisor_start))
        self.last = None

    def set_ab(self, slot, commit):
        self.ab = (slot, commit)
        self.last = None

    def publish(self, services, groups, system_state=None):
        """``services``: one tuple per service, the values of ``EXT_SVC_FIELDS`` in
        its order (name bytes first; times in monotonic microseconds); ``groups``:
        [(name bytes, state, member_count)].  Returns True if written."""
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
        w.put_entries(SVC_OFFSET, SVC_SIZE, shown, NAME_WIDTH, COMPAT_LAYOUT)
        w.put_i32(GROUP_COUNT_OFFSET, len(shown_groups))
        for i, (name, state, members) in enumerate(shown_groups):
            at = GROUPS_OFFSET + i * GROUP_SIZE
            w.put_name(at, name, NAME_WIDTH)
            w.put_u8(at + field_offset(GROUP_FIELDS, "state"), state)
            w.put_i32(at + field_offset(GROUP_FIELDS, "member_count"), members)
        w.put_u8(SYSTEM_STATE_OFFSET, self.system_state)
        w.end()

    def _ensure_ext(self, count, group_count):
        want = (capacity(count), capacity(group_count))
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
        self.ext = Segment(self.name + EXT_SUFFIX, ext_size(*want))
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
        w.put_entries(EXT_HEADER_SIZE, EXT_SVC_SIZE, services, NAME_WIDTH, EXT_LAYOUT)
        w.put_i32(_ext_offset("group_count"), len(groups))
        for i, (name, state, members) in enumerate(groups):
            at = groups_offset + i * EXT_GROUP_SIZE
            w.put_name(at, name, NAME_WIDTH)
            w.put_u8(at + field_offset(GROUP_FIELDS, "state"), state)
            w.put_i32(at + field_offset(GROUP_FIELDS, "member_count"), members)
        w.put_u8(_ext_offset("system_state"), self.system_state)
        w.put_u8(_ext_offset("ab_slot"), self.ab[0])
        w.put_u8(_ext_offset("ab_commit"), self.ab[1])
        pid, init_start, supervisor_start = self.origin
        w.put_i32(_ext_offset("supervisor_pid"), pid)
        w.put_i64(_ext_offset("init_start_us"), init_start)
        w.put_i64(_ext_offset("supervisor_start_us"), supervisor_start)
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
    return field_offset(EXT_HEADER_FIELDS, name)


def _micros(seconds):
    """A monotonic instant in seconds (None: never) as the segment's microseconds."""
    return 0 if seconds is None else int(seconds * 1000000)


def read_snapshot(data):
    """Decode a compatible segment's bytes (for tests; readers use core/shmdecode)."""
    from schema_init.core import shmdecode       # never loaded by PID 1
    return shmdecode.decode_compat(data)


if __name__ == "__main__":
    import sys
    sys.stdout.write(c_header())
