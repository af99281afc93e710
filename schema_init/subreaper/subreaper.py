"""schema-subreaper PROGRAM [ARGS...]: run a program that daemonises, as one service.

It becomes a child subreaper, so whatever the program forks and abandons is adopted by
it, not by PID 1; forwards SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 to the
program's process group and to everything it adopted; waits until all of them are gone; and exits with the
*program's* own status (exit code, or 128 + signal), not its own.

schema-subreaper --accept [--max N] [--stdio] PROGRAM [ARGS...]: a service per connection
(systemd's Accept=yes, the unit importer's mapping): the listening socket is its fd 3
(``listen=``, LISTEN_FDS=1); each connection accepted starts PROGRAM with the connection
as its fd 3 (LISTEN_FDS=1, LISTEN_PID, LISTEN_FDNAMES=connection, REMOTE_ADDR and
REMOTE_PORT for an IP peer) or, with --stdio, as its stdin and stdout; at most N at once
(default 64: the others wait in the backlog).  SIGTERM and SIGINT stop the accepting and
go to every connection's process; it exits 0 once they are all gone.
"""

import os
import signal
import sys

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT,
             signal.SIGUSR1, signal.SIGUSR2)


def _exit_code(status):
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code


USAGE = ("Usage: schema-subreaper <program> [args...]\n"
         "       schema-subreaper --accept [--max N] [--stdio] <program> [args...]\n")
LISTEN_FD = 3
MAX_CONNECTIONS = 64


def main(argv):
    if argv[:1] == ["--accept"]:
        return accept_main(argv[1:])
    if not argv:
        sys.stderr.write(USAGE)
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


def accept_options(argv):
    """``(max, stdio, program argv)`` of --accept's arguments, or None."""
    limit, stdio = MAX_CONNECTIONS, False
    while argv[:1] in (["--max"], ["--stdio"]):
        if argv[0] == "--stdio":
            stdio, argv = True, argv[1:]
            continue
        if len(argv) < 2 or not argv[1].isdigit() or not argv[1].isascii() or \
                len(argv[1]) > 6 or int(argv[1]) < 1:
            return None
        limit, argv = int(argv[1]), argv[2:]
    return (limit, stdio, argv) if argv else None


def accept_main(argv):
    options = accept_options(argv)
    if options is None:
        sys.stderr.write(USAGE)
        return 1
    limit, stdio, program = options
    import _socket
    from schema_init.pid1 import _fastloop, spawn
    if os.environ.get("LISTEN_FDS") != "1":
        sys.stderr.write("schema-subreaper: --accept needs its listening socket as fd 3 "
                         "(LISTEN_FDS=1: one listen= line)\n")
        return 1
    try:
        listener = _socket.socket(fileno=LISTEN_FD)
        _fastloop.set_child_subreaper()
    except OSError as exc:
        sys.stderr.write("schema-subreaper: fd 3: %s\n" % exc)
        return 1
    listener.setblocking(False)
    for name in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)
    _fastloop.block_signals(FORWARDED + (signal.SIGCHLD,))
    sigfd = _fastloop.open_signalfd(FORWARDED + (signal.SIGCHLD,))
    loop = _fastloop.Loop()
    loop.register(sigfd)
    loop.register(LISTEN_FD)
    watching, stopping, children = True, False, set()
    while True:
        for pid, _status in _fastloop.reap():
            children.discard(pid)
        if stopping and not spawn.has_children():
            return 0
        if not stopping and watching != (len(children) < limit):
            watching = not watching
            (loop.register if watching else loop.unregister)(LISTEN_FD)
        ready = [fd for fd, _ in loop.wait(None)]
        for signo, _ in _fastloop.read_signals(sigfd):
            if signo == signal.SIGCHLD:
                continue
            if signo in (signal.SIGTERM, signal.SIGINT) and not stopping:
                stopping = True
                if watching:
                    loop.unregister(LISTEN_FD)
                    watching = False
            _forward(signo, None)
        if LISTEN_FD in ready and watching and not stopping:
            pid = serve_one(listener, stdio, program)
            if pid:
                children.add(pid)


def serve_one(listener, stdio, program):
    """Accept one connection and start PROGRAM for it; its pid, or None."""
    try:
        fd, peer = listener._accept()
    except OSError:
        return None                       # gone meanwhile (EAGAIN), or a transient error
    try:
        pid = os.fork()
    except OSError as exc:
        os.close(fd)
        sys.stderr.write("schema-subreaper: fork: %s\n" % exc.strerror)
        return None
    if pid:
        os.close(fd)
        return pid
    from schema_init.pid1 import _fastloop
    try:
        _fastloop.clear_signal_mask()
        env = dict(os.environ)
        if isinstance(peer, tuple) and len(peer) >= 2:
            env["REMOTE_ADDR"], env["REMOTE_PORT"] = str(peer[0]), str(peer[1])
        if stdio:
            os.dup2(fd, 0)
            os.dup2(fd, 1)
            os.close(LISTEN_FD)
        else:
            os.dup2(fd, LISTEN_FD)
            env.update(LISTEN_FDS="1", LISTEN_PID=str(os.getpid()),
                       LISTEN_FDNAMES="connection")
        if fd not in (0, 1, LISTEN_FD):
            os.close(fd)
        os.execvpe(program[0], program, env)
    except OSError as exc:
        sys.stderr.write("schema-subreaper: %s: %s\n" % (program[0], exc.strerror))
    os._exit(127)
