"""schema-subreaper PROGRAM [ARGS...]: run a program that daemonises, as one service.

It becomes a child subreaper, so whatever the program forks and abandons is adopted by
it, not by PID 1; forwards SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 to the
program's process group and to everything it adopted; waits until all of them are gone; and exits with the
*program's* own status (exit code, or 128 + signal), not its own.
"""

import os
import signal
import sys

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT,
             signal.SIGUSR1, signal.SIGUSR2)


def _exit_code(status):
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code


def main(argv):
    if not argv:
        sys.stderr.write("Usage: schema-subreaper <program> [args...]\n")
        return 1
    from schema_init.pid1 import _fastloop, spawn
    try:
        _fastloop.set_child_subreaper()
    except OSError as exc:
        sys.stderr.write("schema-subreaper: prctl(PR_SET_CHILD_SUBREAPER): %s\n" % exc.strerror)
        return 1
    _fastloop.block_signals(FORWARDED + (signal.SIGCHLD,))
    sigfd = _fastloop.open_signalfd(FORWARDED + (signal.SIGCHLD,))
    try:
        program = os.fork()
    except OSError as exc:
        sys.stderr.write("schema-subreaper: fork: %s\n" % exc.strerror)
        return 1
    if program == 0:
        _fastloop.clear_signal_mask()
        os.setpgid(0, 0)          # its own group: a signal to -pid reaches what it forks
        try:
            os.execvp(argv[0], argv)
        except OSError as exc:
            sys.stderr.write("schema-subreaper: %s: %s\n" % (argv[0], exc.strerror))
        os._exit(127)
    loop = _fastloop.Loop()
    loop.register(sigfd)
    children = {program}
    result = None
    while True:
        for pid, status in _fastloop.reap():
            children.discard(pid)
            if pid == program:
                result = _exit_code(status)
        if result is not None and not spawn.has_children():
            return result
        loop.wait(None)
        for signo, _ in _fastloop.read_signals(sigfd):
            if signo == signal.SIGCHLD:
                continue
            _forward(signo, program if result is None else None)


def _forward(signo, program):
    """To the program's process group and to every process we adopted."""
    if program is not None:
        for target in (-program, program):
            try:
                os.kill(target, signo)
            except OSError:
                pass
    me = str(os.getpid())
    try:
        entries = os.listdir("/proc")
    except OSError:
        return
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry, "rb") as f:
                ppid = f.read().rsplit(b")", 1)[1].split()[1]
        except (OSError, IndexError):
            continue
        if ppid.decode() == me:
            try:
                os.kill(int(entry), signo)
            except OSError:
                pass
