"""The rail (state events) and console lines, in the original's formats
(docs/spec.md, "The rail").

Rail line: ``[HH:MM:SS] %-20s  %-12s  state=%-12s  wt=%d  pid=%d`` (local time),
at most 255 bytes, to the console and appended to ``rail.log`` (reopened for each
line, so rotation by rename or copytruncate both work).  Group changes go to the
console only.  Writes never block the loop for long: the console fd is written with
a short bounded attempt and lines are dropped rather than waited on.
"""

import os
import sys
import time

from schema_init.core import schema

GROUP_WORDS = {
    schema.FUNDAMENTAL: "fundamental", schema.SETTLED: "settled", schema.PERFECT: "perfect",
    schema.NEW_PROCESS: "new-process", schema.RECOVERY: "recovery",
    schema.FRICTION: "friction", schema.EXCISED: "excised", schema.DORMANT: "dormant",
}


def rail_line(name, event, state, weight, pid, clock=None):
    stamp = time.strftime("%H:%M:%S", time.localtime(clock))
    line = "[%s] %-20s  %-12s  state=%-12s  wt=%d  pid=%d" % (
        stamp, name, event, schema.state_name(state), weight, pid)
    data = line.encode("utf-8", "replace")[:254]
    return data.decode("utf-8", "ignore") + "\n"


def group_line(name, state, members, clock=None):
    stamp = time.strftime("%H:%M:%S", time.localtime(clock))
    return "[%s] [group] %-20s  %-12s  state=%s  members=%d\n" % (
        stamp, name, "state-change", GROUP_WORDS.get(state, "?"), members)


def format_exception():
    """The exception being handled, as a traceback (file, line, function per frame).

    Written here rather than with the ``traceback`` module, which would bring
    linecache, textwrap and their friends into PID 1 for the rare bad day.
    """
    kind, value, tb = sys.exc_info()
    lines = ["Traceback (most recent call last):"]
    while tb is not None:
        code = tb.tb_frame.f_code
        lines.append('  File "%s", line %d, in %s' % (code.co_filename, tb.tb_lineno,
                                                       code.co_name))
        tb = tb.tb_next
    name = kind.__name__ if kind is not None else "None"
    lines.append("%s: %s" % (name, value) if str(value) else name)
    return "\n".join(lines) + "\n"


class Console:
    """Where PID 1's own lines go (the console, or stdout when not PID 1).

    ``aside`` (PID 1 sets it while a getty runs on the console) sends them to the kernel
    log (/dev/kmsg, one record a line) instead, so they do not land in a login prompt;
    ``loud`` lines (shutdown, fatal errors) always reach the console."""

    KMSG_RECORD = 900                # bytes of one /dev/kmsg record we write

    def __init__(self, fd=1):
        self.fd = fd
        self.kmsg = -1
        self.aside = False

    def write(self, text):
        if self.aside and self.kmsg >= 0:
            for line in text.splitlines():
                # <31>: daemon.debug, below the console's default log level (7), so the
                # kernel does not print it on the console either; dmesg shows it
                record = ("<31>schema-init: %s" % line).encode("utf-8", "replace")[
                    :self.KMSG_RECORD]
                try:
                    os.write(self.kmsg, record)
                except OSError:
                    pass
            return
        self.loud(text)

    def loud(self, text):
        data = text.encode("utf-8", "replace")
        try:
            while data:
                written = os.write(self.fd, data)
                data = data[written:]
        except OSError:
            pass

    def set_aside(self, aside):
        """Lines to the kernel log (True) or the console (False); False if no /dev/kmsg."""
        if aside and self.kmsg < 0:
            try:
                self.kmsg = os.open("/dev/kmsg", os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            except OSError:
                return False
        if aside != self.aside:
            self.loud("[schema-init] %s\n" % ("a getty has the console: my lines go to the "
                                               "kernel log (dmesg) and rail.log" if aside
                                               else "my lines are back on the console"))
        self.aside = aside
        return aside


class Rail:
    def __init__(self, log_dir, console):
        self.log_dir = log_dir
        self.path = os.path.join(log_dir, "rail.log")
        self.console = console
        self.problem = None          # why rail.log cannot be written (said once)

    def event(self, name, event, state, weight, pid):
        line = rail_line(name, event, state, weight, pid)
        self.console.write(line)
        self.append(line)

    def append(self, line):
        """Append to rail.log; a full or read-only disk loses the line (the console has
        it), says so once, and is tried again with every line."""
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
            try:
                os.write(fd, line.encode("utf-8", "replace"))
            finally:
                os.close(fd)
        except OSError as exc:
            if self.problem is None:
                self.problem = exc.strerror or str(exc)
                self.console.write("[schema-init] %s: %s: rail lines go to the console only "
                                   "until it can be written\n" % (self.path, self.problem))
            return
        if self.problem is not None:
            self.problem = None
            self.console.write("[schema-init] %s: writable again\n" % self.path)
