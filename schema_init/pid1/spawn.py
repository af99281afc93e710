"""Starting and stopping processes: fork/exec with the exec barrier, signals.

Nothing here waits for a process.  ``start_service`` returns as soon as the child is
in its cgroup with its limits written and has been released through the barrier
(the exec barrier): the child blocks on a pipe until then, so it never runs a single
instruction of the service outside its cgroup.
"""

import os
import _signal as signal  # the C module: the signal.py wrapper loads enum (~1 MB in PID 1)

from . import _fastloop
from schema_init.core import killing

# Python ignores these; an ignored disposition survives exec, so children reset them.
_RESET_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ)


class SpawnError(Exception):
    """The spawn could not even fork; the message says why."""


def _child_common():
    """First steps of every child: a clean signal state and its own session."""
    _fastloop.clear_signal_mask()
    for sig in _RESET_SIGNALS:
        signal.signal(sig, signal.SIG_DFL)
    os.setsid()


def _child_fail(message):
    try:
        os.write(2, ("schema-init: %s\n" % message).encode(errors="replace"))
    finally:
        os._exit(127)


def _open_log(log_path):
    try:
        return os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
    except OSError:
        return os.open("/dev/null", os.O_WRONLY | os.O_CLOEXEC)


def _pass_listen_fds(fds, name, env):
    """Socket activation (sd_listen_fds(3)): FDS become 3, 4, ... in this child, with
    LISTEN_FDS, LISTEN_PID (this process: exec keeps it) and LISTEN_FDNAMES."""
    count = len(fds)
    base = max(max(fds), 2 + count) + 1      # above every source and every target
    for i, fd in enumerate(fds):
        os.dup2(fd, base + i)
    for i in range(count):
        os.dup2(base + i, 3 + i)             # inheritable: they survive the exec
    os.closerange(3 + count, 65536)
    env["LISTEN_FDS"] = str(count)
    env["LISTEN_PID"] = str(os.getpid())
    env["LISTEN_FDNAMES"] = ":".join([name] * count)


def _read_env_files(paths, env):
    """``env_file=`` lines into ``env`` (in the child: reading never blocks the loop).
    A file that cannot be read fails the spawn unless written ``-/path``."""
    from schema_init.core import config
    from . import loader
    for entry in paths:
        optional = entry.startswith("-")
        path = entry.lstrip("-")
        data, reason = loader.read_file(path)
        if data is None:
            if optional:
                continue
            _child_fail("env_file %s: %s" % (path, reason))
        env.update(config.parse_environment_file(data))


def _enter_workdir(workdir):
    """``workdir=`` (after the privileges are dropped, so it is the user's view); a
    directory that cannot be entered fails the spawn unless written ``-/path``."""
    path = workdir.lstrip("-") or "/"
    try:
        os.chdir(path)
    except OSError as exc:
        if not workdir.startswith("-"):
            _child_fail("workdir %s: %s" % (path, exc.strerror))
        os.chdir("/")


def _service_child(barrier, argv, env, log_path, nice, account, listen_fds=(), listen_name="",
                   notify_socket=None, watchdog_pid=False, context=None):
    try:
        _child_common()
        os.read(barrier, 1)             # released once we are in our cgroup (EOF releases too)
        os.close(barrier)
        null = os.open("/dev/null", os.O_RDONLY)
        os.dup2(null, 0)
        log = _open_log(log_path)
        os.dup2(log, 1)
        os.dup2(log, 2)
        if context is not None and context.env_file:
            env = dict(env)
            _read_env_files(context.env_file, env)
        if listen_fds:
            env = dict(env)
            _pass_listen_fds(listen_fds, listen_name, env)
        else:
            os.closerange(3, 65536)
        if notify_socket:                   # sd_notify(3): where READY=1 and the rest go
            env = dict(env)
            env["NOTIFY_SOCKET"] = notify_socket
            if watchdog_pid:
                env["WATCHDOG_PID"] = str(os.getpid())
        if nice:
            try:
                os.setpriority(os.PRIO_PROCESS, 0, nice)
            except OSError as exc:
                os.write(2, ("[schema-init] Warning: failed to set priority %d: %s\n"
                             % (nice, exc.strerror)).encode())
        if account is not None:
            name, uid, gid, runtime_dir, groups = account
            if runtime_dir:
                try:
                    os.mkdir(runtime_dir, 0o700)
                except FileExistsError:
                    pass
                try:
                    os.chown(runtime_dir, uid, gid)
                except OSError:
                    pass
            os.setgroups(groups)
            os.setgid(gid)
            os.setuid(uid)
            if os.getuid() != uid or os.geteuid() != uid:
                _child_fail("could not drop privileges to %s" % name)
        _enter_workdir(context.workdir if context is not None else "")
        os.execve(argv[0], argv, env)
    except BaseException as exc:            # noqa: B902 - the child must never return
        _child_fail("cannot start %s: %s" % (argv[0], exc))


def start_service(argv, env, log_path, nice=0, account=None, cgroups=None, spec=None,
                  cgroup_path=None, listen_fds=(), listen_name="", notify_socket=None,
                  watchdog_pid=False, prefixes=""):
    """Fork a service.  Returns ``(pid, cgroup path or None, limit problems)``.

    ``account``: ``(user name, uid, gid, XDG runtime dir, [gids])`` to drop to, or None.
    ``listen_fds``: sockets passed as fds 3.. (socket activation), named ``listen_name``.
    ``notify_socket``: the NOTIFY_SOCKET value (with WATCHDOG_PID when ``watchdog_pid``).
    ``prefixes``: a command line's prefixes (core/cmdline.py): ``+`` runs it with full
    privileges (no user drop, no sandbox), ``!`` without the user drop.
    """
    if "+" in prefixes or "!" in prefixes:
        account = None
    read_end, write_end = os.pipe2(os.O_CLOEXEC)
    try:
        pid = os.fork()
    except OSError as exc:
        os.close(read_end)
        os.close(write_end)
        raise SpawnError("fork failed: %s" % exc.strerror) from None
    if pid == 0:
        os.close(write_end)
        _service_child(read_end, argv, env, log_path, nice, account, listen_fds, listen_name,
                       notify_socket, watchdog_pid, context=spec)
    os.close(read_end)
    placed, problems = None, []
    try:
        if cgroups is not None and cgroup_path is not None:
            if cgroups.place(cgroup_path, pid):
                placed = cgroup_path
                problems = cgroups.apply_limits(cgroup_path, spec)
    finally:
        try:
            os.write(write_end, b"x")
        finally:
            os.close(write_end)
    return pid, placed, problems


def start_shell(command, env):
    """``/bin/sh -c command`` in its own session (fuse and failsafe commands)."""
    try:
        pid = os.fork()
    except OSError as exc:
        raise SpawnError("fork failed: %s" % exc.strerror) from None
    if pid == 0:
        try:
            _child_common()
            os.closerange(3, 65536)
            os.execve("/bin/sh", ["/bin/sh", "-c", command], env)
        except BaseException as exc:        # noqa: B902
            _child_fail("cannot run /bin/sh: %s" % exc)
    return pid


def signal_service(targets, pid, sig, cgroups=None, cgroup_path=None):
    """Send ``sig`` to the ``targets`` ``killing.signal_targets`` chose, in their order:
    the service's cgroup (CGROUP_KILL, CGROUP), the process group of ``pid`` (GROUP),
    ``pid`` itself (MAIN).  A process already gone is no error."""
    for target in targets:
        if target == killing.CGROUP_KILL:
            cgroups.kill(cgroup_path)
        elif target == killing.CGROUP:
            cgroups.signal(cgroup_path, sig)
        elif target in (killing.GROUP, killing.MAIN):
            try:
                os.kill(-pid if target == killing.GROUP else pid, sig)
            except OSError:
                pass


def has_children():
    """True while any child is alive or not yet reaped (does not reap it)."""
    try:
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return False
    return True


def exec_status(path):
    """(exists, executable) for an exec= path."""
    return os.path.exists(path), os.access(path, os.X_OK)


def mem_available_kb(meminfo="/proc/meminfo"):
    try:
        with open(meminfo, "rb") as f:
            for line in f:
                if line.startswith(b"MemAvailable:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 1 << 30      # unknown: do not let a missing /proc block every spawn


def lookup_user(name):
    """(name, uid, gid, home) for a user name, or None when there is no such user."""
    from schema_init.lib import accounts
    return accounts.user(name)
