"""utmp and wtmp records: who is logged in (for ``wall``), and the boot, run-level and
shutdown records ``who -b``, ``runlevel`` and ``last reboot`` read.

glibc's ``struct utmp`` is 384 bytes on x86_64 (32-bit times kept for its 32-bit
programs) and on 32-bit ARM, and 400 on aarch64 (``long`` session, 64-bit ``timeval``):
``layout()`` picks the one of the machine; ``tests/test_cross.py`` checks both against
the C library of each target.
"""

import os
import struct
import time

UTMP = "/run/utmp"
WTMP = "/var/log/wtmp"
RUN_LVL, BOOT_TIME, USER_PROCESS = 1, 2, 7
FIELDS = ("type", "pid", "line", "id", "user", "host", "exit_termination", "exit_status",
          "session", "tv_sec", "tv_usec", "addr0", "addr1", "addr2", "addr3")


def layout(machine=None):
    machine = machine or os.uname().machine
    if machine == "aarch64":
        return struct.Struct("hi32s4s32s256shhqqq4i20x4x")       # 400 bytes
    return struct.Struct("hi32s4s32s256shhiii4i20x")             # 384 bytes


def records(data, machine=None):
    """Every whole record of utmp/wtmp bytes, as dicts (a torn last one is skipped)."""
    shape = layout(machine)
    found = []
    for offset in range(0, len(data) - shape.size + 1, shape.size):
        found.append(dict(zip(FIELDS, shape.unpack_from(data, offset))))
    return found


def text(value):
    return value.split(b"\0", 1)[0].decode("utf-8", "replace")


def logged_in_terminals(path=UTMP, machine=None):
    """The /dev paths of the terminals utmp lists as user sessions."""
    try:
        with open(path, "rb") as f:
            data = f.read(layout(machine).size * 4096)
    except OSError:
        return []
    lines = []
    for record in records(data, machine):
        name = text(record["line"])
        if record["type"] == USER_PROCESS and name and ".." not in name and \
                "/" not in name.replace("pts/", "", 1) and name not in lines:
            lines.append(name)
    return ["/dev/" + name for name in lines]


def record(kind, user, line="~", pid=0, when=None, machine=None):
    """One record's bytes (BOOT_TIME "reboot", RUN_LVL "runlevel"/"shutdown")."""
    when = time.time() if when is None else when
    seconds = int(when)
    return layout(machine).pack(kind, pid, line.encode(), b"~~", user.encode(), b"", 0, 0, 0,
                                seconds, int((when - seconds) * 1e6), 0, 0, 0, 0)


def runlevel_pid(current, previous="N"):
    """sysvinit keeps the run level in ut_pid: current + 256 * previous."""
    return ord(current) + 256 * ord(previous)


def boot_records(now=None, uptime=None, machine=None):
    """The BOOT_TIME record (the boot's wall-clock time) and RUN_LVL 5 ("N 5")."""
    now = time.time() if now is None else now
    booted = now - (uptime if uptime is not None else read_uptime())
    return (record(BOOT_TIME, "reboot", when=booted, machine=machine) +
            record(RUN_LVL, "runlevel", pid=runlevel_pid("5"), when=now, machine=machine))


def read_uptime():
    try:
        with open("/proc/uptime") as f:
            return float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 0.0


def write_boot(utmp=UTMP, wtmp=WTMP):
    """At boot: utmp starts anew with the boot records; wtmp gets them appended."""
    data = boot_records()
    problems = []
    for path, flags in ((utmp, os.O_TRUNC), (wtmp, os.O_APPEND)):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | flags, 0o664)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
        except OSError as exc:
            problems.append("%s: %s" % (path, exc.strerror or exc))
    return problems


def append_shutdown(wtmp=WTMP, level="0"):
    """Before a shutdown: the "shutdown" record ``last`` shows (run level 0 or 6)."""
    try:
        fd = os.open(wtmp, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
    except OSError:
        return False                      # no wtmp kept here: nothing to add to
    try:
        os.write(fd, record(RUN_LVL, "shutdown", pid=runlevel_pid(level, "5")))
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
