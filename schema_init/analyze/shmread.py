"""The extended shared-memory segment, read under its seqlock, without PID 1 knowing.

``ShmReader.read()`` copies ``/dev/shm/NAME.ext`` with ``pread``: ``seq`` first, the
whole segment, ``seq`` again; the copy holds when both are even and equal
(``shmdecode.seq_consistent``), else it is taken again.  A read is three system calls
on a file of at most a few hundred kB and touches nothing of PID 1's: PID 1 is not
woken, signalled or asked (the live board and the metrics helper are measured for
it: tests/test_top.py).  A segment being replaced (magic 0) or gone is opened again.

``supervisor_status(pid)`` reads the supervisor's own memory and wake-ups from
``/proc/PID/status`` (readable by every user), again without waking it.
"""

import os
import struct
import time

from schema_init.core import shmdecode, shmlayout

DEFAULT_NAME = "/schema-init"


def segment_path(name):
    return "/dev/shm/" + name.lstrip("/") + shmlayout.EXT_SUFFIX


class ShmReader:
    def __init__(self, name=DEFAULT_NAME):
        self.path = segment_path(name)
        self.fd = -1

    def _open(self):
        self.close()
        try:
            self.fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            self.fd = -1
        return self.fd >= 0

    def close(self):
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def _seq(self):
        data = os.pread(self.fd, 4, 0)
        return struct.unpack("<I", data)[0] if len(data) == 4 else None

    def read(self, patience=1.0):
        """The latest consistent snapshot (``shmdecode.decode_ext``'s dict), or None
        when there is no segment (no schema-init, or another name)."""
        give_up = time.monotonic() + patience
        reopened = False
        while True:
            if self.fd < 0 and not self._open():
                return None
            before = self._seq()
            header = os.pread(self.fd, shmlayout.EXT_HEADER_SIZE, 0)
            decoded = shmdecode.ext_header(header)
            if before is None or decoded is None:
                if reopened:                  # replaced or damaged twice running
                    return None
                self._open()                  # magic 0: a larger segment replaced it
                reopened = True
                continue
            data = os.pread(self.fd, decoded["total_size"], 0)
            after = self._seq()
            if shmdecode.seq_consistent(before, after):
                snapshot = shmdecode.decode_ext(data)
                if snapshot is not None:
                    return snapshot
            if time.monotonic() > give_up:
                return None
            time.sleep(0.001)                 # the writer is inside: a moment, again

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


STATUS_KEYS = {"VmRSS": "rss_kb", "RssAnon": "anon_kb", "VmHWM": "peak_kb",
               "voluntary_ctxt_switches": "voluntary", "nonvoluntary_ctxt_switches":
               "involuntary"}


def supervisor_status(pid):
    """``{"rss_kb", "anon_kb", "peak_kb", "voluntary", "involuntary"}`` of PID from
    /proc/PID/status (the keys present), {} when it cannot be read."""
    if pid <= 0:
        return {}
    try:
        with open("/proc/%d/status" % pid, "rb") as f:
            text = f.read().decode("ascii", "replace")
    except OSError:
        return {}
    found = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in STATUS_KEYS:
            words = value.split()
            if words and words[0].isdigit():
                found[STATUS_KEYS[key]] = int(words[0])
    return found
