"""Starting and stopping processes: fork/exec with the exec barrier, signals.

Nothing here waits for a process.  ``start_service`` returns as soon as the child is
in its cgroup with its limits written and has been released through the barrier
(the exec barrier): the child blocks on a pipe until then, so it never runs a single
instruction of the service outside its cgroup.

A service with an execution context (limits, directories, sandboxing, capabilities:
``ServiceSpec.context``) is not set up here: the child execs schema-exec (native/exec.c,
the same binary) with the context written as its arguments, and schema-exec applies it
as root and execs the service.  PID 1 only writes the arguments; a service without a
context is exec'd straight from the child, as before.
"""

import os
import _signal as signal  # the C module: the signal.py wrapper loads enum (~1 MB in PID 1)

from . import _fastloop
from schema_init.core import killing

# An ignored disposition survives exec (Python ignores SIGPIPE and SIGXFSZ; whoever
# started this process may have ignored more), so children reset every signal a handler
# can be set for (32 and 33, glibc's own, are refused: skipped).
_CATCHABLE = tuple(sorted(int(s) for s in signal.valid_signals()
                          if s not in (signal.SIGKILL, signal.SIGSTOP)))

# schema-exec's statuses for the two steps the child does before it (the table:
# docs/spec.md, "The execution context"; native/exec.c).
EXIT_EXEC = 203
EXIT_GROUP = 216

# The directory keys: where each lives, and schema-exec's option for it.
_DIRECTORIES = (("runtime_dir", "/run", "--runtime-dir"),
                ("state_dir", "/var/lib", "--state-dir"),
                ("cache_dir", "/var/cache", "--cache-dir"),
                ("logs_dir", "/var/log", "--logs-dir"),
                ("config_dir", "/etc", "--config-dir"))
# The sandbox: none of it applies to a command with the + prefix.
_SANDBOX_FLAGS = (("private_tmp", "--private-tmp"), ("private_devices", "--private-devices"),
                  ("private_network", "--private-network"),
                  ("protect_kernel_tunables", "--protect-kernel-tunables"),
                  ("protect_kernel_modules", "--protect-kernel-modules"),
                  ("protect_control_groups", "--protect-control-groups"),
                  ("no_new_privs", "--no-new-privs"))
_SANDBOX_WORDS = (("protect_system", "--protect-system"), ("protect_home", "--protect-home"),
                  ("cap_bounding", "--cap-bounding"), ("ambient_caps", "--ambient-caps"),
                  ("restrict_address_families", "--restrict-address-families"))
_SANDBOX_PATHS = (("read_write_paths", "--read-write"), ("read_only_paths", "--read-only"),
                  ("inaccessible_paths", "--inaccessible"))


class SpawnError(Exception):
    """The spawn could not even fork; the message says why."""


def default_signals():
    """In a child before exec: no signal blocked and every one at its default action, as
    the kernel starts a program, whatever this process ignores or whoever started it
    ignored (a supervisor started by nohup or as a script's background job ignores SIGHUP
    or SIGINT, and the shell of a service cannot trap a signal ignored at its start)."""
    _fastloop.clear_signal_mask()
    for sig in _CATCHABLE:
        try:
            signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError):
            pass


def _child_common():
    """First steps of every child: a clean signal state and its own session."""
    default_signals()
    os.setsid()


def _child_fail(message, status=127):
    try:
        os.write(2, ("schema-init: %s\n" % message).encode(errors="replace"))
    finally:
        os._exit(status)


def _open_log(log_path):
    try:
        return os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
    except OSError:
        return os.open("/dev/null", os.O_WRONLY | os.O_CLOEXEC)


def _pass_listen_fds(fds, names, env):
    """Socket activation (sd_listen_fds(3)): FDS become 3, 4, ... in this child, with
    LISTEN_FDS, LISTEN_PID (this process: exec keeps it) and LISTEN_FDNAMES (NAMES, one
    a socket)."""
    count = len(fds)
    base = max(max(fds), 2 + count) + 1      # above every source and every target
    for i, fd in enumerate(fds):
        os.dup2(fd, base + i)
    for i in range(count):
        os.dup2(base + i, 3 + i)             # inheritable: they survive the exec
    os.closerange(3 + count, 65536)
    env["LISTEN_FDS"] = str(count)
    env["LISTEN_PID"] = str(os.getpid())
    env["LISTEN_FDNAMES"] = ":".join(names)


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


def _make_user_runtime_dir(account):
    """XDG_RUNTIME_DIR (/run/user/UID), made while still root."""
    _name, uid, gid, runtime_dir, _groups = account[:5]
    if runtime_dir:
        try:
            os.mkdir(runtime_dir, 0o700)
        except FileExistsError:
            pass
        try:
            os.chown(runtime_dir, uid, gid)
        except OSError:
            pass


def _drop_privileges(account):
    name, uid, gid, _runtime_dir, groups = account[:5]
    os.setgroups(groups)
    os.setgid(gid)
    os.setuid(uid)
    if os.getuid() != uid or os.geteuid() != uid:
        _child_fail("could not drop privileges to %s" % name)


def _resolve_workdir(workdir, account):
    """``workdir=`` with ``~`` as the home of the service's user (root's without one)."""
    if workdir.lstrip("-") != "~":
        return workdir
    from schema_init.lib import accounts
    entry = accounts.user(account[0] if account is not None else "root")
    home = entry[3] if entry is not None and entry[3] else "/root"
    return ("-" if workdir.startswith("-") else "") + home


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


def schema_exec_program(environ=None):
    """The file to exec as schema-exec, or None.  The compiled binary is schema-exec
    itself: /proc/self/exe (which still reaches it after an upgrade replaced the file).
    Run from Python (the tests, a checkout), SCHEMA_EXEC=/path names a built binary, else
    the checkout's own build/out/schema-init."""
    if "__compiled__" in globals():
        return "/proc/self/exe"
    environ = os.environ if environ is None else environ
    path = environ.get("SCHEMA_EXEC") or os.path.join(
        os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
        "build", "out", "schema-init")
    return path if os.access(path, os.X_OK) else None


def _limit_word(value):
    return "infinity" if value < 0 else str(value)


def _expands(spec, words, prefixes):
    """$VAR expansion, systemd.service(5)'s rule: a command line (exec_pre= ...) always,
    unless its prefixes have ``:``; the main command (exec=, args=, verbatim as the .svc
    format says) only with expand_args=1.  Only when a word has a ``$``."""
    wanted = spec.expand_args if prefixes is None else ":" not in prefixes
    return wanted and any("$" in word for word in words[1:])


def exec_options(spec, words, prefixes, owner, drop, workdir):
    """schema-exec's arguments for one command: the context as options, ``--``, the
    command's words (docs/spec.md, "The execution context").  Pure.

    ``prefixes``: a command line's (None for the main command); ``+`` leaves out the
    user drop and the whole sandbox, ``!`` the user drop.  ``owner``: (uid, gid) the
    service's directories get.  ``drop``: (uid, gid, [gids]), each None to keep root's,
    or None to stay root.  ``workdir``: with ``~`` already resolved."""
    context = dict(spec.context)
    marks = prefixes or ""
    out = []
    for name, soft, hard in context.get("limit", ()):
        out += ["--limit", "%s=%s:%s" % (name, _limit_word(soft), _limit_word(hard))]
    for key in ("nice", "oom_score_adj"):
        if key in context:
            out += ["--" + key.replace("_", "-"), str(context[key])]
    if "umask" in context:
        out += ["--umask", "%04o" % context["umask"]]
    directories = []
    for key, base, option in _DIRECTORIES:
        mode = getattr(spec, key + "_mode")
        directories += [word for name in context.get(key, ())
                        for word in (option, "%s/%s:%04o" % (base, name, mode))]
    if directories:
        out += ["--owner", "%d:%d" % owner] + directories
    if "+" not in marks:
        out += [option for key, option in _SANDBOX_FLAGS if context.get(key)]
        for key, option in _SANDBOX_WORDS:
            if context.get(key, "no") not in ("no", ""):
                out += [option, context[key]]
        for key, option in _SANDBOX_PATHS:
            out += [word for path in context.get(key, ()) for word in (option, path)]
    if drop is not None:
        uid, gid, groups = drop
        for option, value in (("--uid", uid), ("--gid", gid)):
            if value is not None:
                out += [option, str(value)]
        if groups is not None:
            out += ["--groups", ",".join(str(gid) for gid in groups)]
    if workdir:
        out += ["--workdir", workdir]
    if _expands(spec, words, prefixes):
        out.append("--expand")
    if "@" in marks:
        out.append("--at")
    return out + ["--"] + list(words)


def uses_schema_exec(spec, words, prefixes=None):
    """Whether this command goes through schema-exec: a context key that applies to it,
    the ``@`` prefix, or a ``$`` to expand.  Otherwise the child execs it directly."""
    if spec is None or (prefixes is None and not spec.context):
        return False
    marks = prefixes or ""
    keys = dict(spec.context)
    if ("group" in keys or "supplementary_group" in keys) and not ("+" in marks or
                                                                  "!" in marks):
        return True
    return len(exec_options(spec, words, prefixes, (0, 0), None, "")) > len(words) + 1


def _identity(account, context):
    """(uid, gid, [gids]) of the service, each None for root's: its user's, with group=
    and supplementary_group= looked up here, in the child (the loop reads no file for
    them).  An unknown group fails the spawn."""
    from schema_init.lib import accounts
    uid = gid = groups = None
    members = []
    if account is not None:
        _name, uid, gid, _xdg, gids = account[:5]
        members = list(gids[1:])
    if context.get("group"):
        gid = accounts.group_id(context["group"])
        if gid is None:
            _child_fail("group=%s: no such group" % context["group"], EXIT_GROUP)
    extras = []
    for name in context.get("supplementary_group", ()):
        value = accounts.group_id(name)
        if value is None:
            _child_fail("supplementary_group=%s: no such group" % name, EXIT_GROUP)
        extras.append(value)
    if account is not None or context.get("group") or extras:
        groups = []
        for value in ([gid] if gid is not None else []) + members + extras:
            if value not in groups:
                groups.append(value)
    return uid, gid, groups


def _exec_schema_exec(words, env, spec, prefixes, owner_account, workdir):
    """The child's last step for a service with a context: exec schema-exec."""
    program = schema_exec_program()
    if program is None:
        _child_fail("cannot start %s: schema-exec not found (build/out/schema-init; "
                    "SCHEMA_EXEC=/path names it)" % words[0], EXIT_EXEC)
    uid, gid, groups = _identity(owner_account, dict(spec.context))
    marks = prefixes or ""
    drop = None
    if "+" not in marks and "!" not in marks and (uid, gid, groups) != (None, None, None):
        drop = (uid, gid, groups)
    owner = (uid or 0, gid or 0)
    options = exec_options(spec, words, prefixes, owner, drop, workdir)
    try:
        os.execve(program, ["schema-exec"] + options, env)
    except OSError as exc:
        _child_fail("cannot start %s: schema-exec (%s): %s" % (words[0], program,
                                                                exc.strerror), EXIT_EXEC)


def _service_child(barrier, argv, env, log_path, nice, account, listen_fds=(),
                   listen_names=(), notify_socket=None, watchdog_pid=False, context=None, prefixes=None,
                   owner_account=None, via_schema_exec=False):
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
            _pass_listen_fds(listen_fds, listen_names, env)
        else:
            os.closerange(3, 65536)
        if notify_socket:                   # sd_notify(3): where READY=1 and the rest go
            env = dict(env)
            env["NOTIFY_SOCKET"] = notify_socket
            if watchdog_pid:
                env["WATCHDOG_PID"] = str(os.getpid())
        if nice and not (via_schema_exec and "nice" in dict(context.context)):
            try:
                os.setpriority(os.PRIO_PROCESS, 0, nice)
            except OSError as exc:
                os.write(2, ("[schema-init] Warning: failed to set priority %d: %s\n"
                             % (nice, exc.strerror)).encode())
        if account is not None:
            _make_user_runtime_dir(account)
        workdir = _resolve_workdir(context.workdir if context is not None else "",
                                   owner_account)
        if via_schema_exec:
            _exec_schema_exec(argv, env, context, prefixes, owner_account, workdir)
        if account is not None:
            _drop_privileges(account)
        _enter_workdir(workdir)
        os.execve(argv[0], argv, env)
    except BaseException as exc:            # noqa: B902 - the child must never return
        _child_fail("cannot start %s: %s" % (argv[0], exc))


def start_service(argv, env, log_path, nice=0, account=None, cgroups=None, spec=None,
                  cgroup_path=None, listen_fds=(), listen_names=(), notify_socket=None,
                  watchdog_pid=False, prefixes=None):
    """Fork a service.  Returns ``(pid, cgroup path or None, limit problems)``.

    ``account``: ``(user name, uid, gid, XDG runtime dir, [gids])`` to drop to, or None.
    ``listen_fds``: sockets passed as fds 3.. (socket activation), named ``listen_names``
    (one a socket).
    ``notify_socket``: the NOTIFY_SOCKET value (with WATCHDOG_PID when ``watchdog_pid``).
    ``prefixes``: a command line's prefixes (core/cmdline.py), "" for one without;
    None (the default) for the main command, exec= and args=.  ``+`` runs it with full
    privileges (no user drop, no sandbox), ``!`` without the user drop, ``@`` takes
    the second word as argv[0], ``:`` expands no ``$VAR`` (a command line's words are
    expanded otherwise, the main command's only with expand_args=1).
    """
    owner_account = account
    if prefixes is not None and ("+" in prefixes or "!" in prefixes):
        account = None
    via_schema_exec = uses_schema_exec(spec, argv, prefixes)
    read_end, write_end = os.pipe2(os.O_CLOEXEC)
    try:
        pid = os.fork()
    except OSError as exc:
        os.close(read_end)
        os.close(write_end)
        raise SpawnError("fork failed: %s" % exc.strerror) from None
    if pid == 0:
        os.close(write_end)
        _service_child(read_end, argv, env, log_path, nice, account, listen_fds, listen_names,
                       notify_socket, watchdog_pid, context=spec, prefixes=prefixes,
                       owner_account=owner_account, via_schema_exec=via_schema_exec)
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


def remove_runtime_dirs(spec, restarting=False):
    """Remove a stopped service's runtime_dir= directories, unless runtime_dir_preserve=
    keeps them (``yes``; ``restart`` when ``restarting``).  A forked child does it, so the
    loop never waits on a large tree: returns its pid (reaped like any other child), or
    None when there is nothing to remove."""
    preserve = spec.runtime_dir_preserve
    if not spec.runtime_dir or preserve == "yes" or (preserve == "restart" and restarting):
        return None
    try:
        pid = os.fork()
    except OSError:
        return None
    if pid == 0:
        try:
            _fastloop.clear_signal_mask()
            for name in spec.runtime_dir:
                _remove_tree("/run/" + name)
        finally:
            os._exit(0)
    return pid


def _remove_tree(path):
    """rm -r PATH through directory fds, following no link: the service's user owned
    what is inside and may have left links anywhere."""
    try:
        for _top, dirs, files, fd in os.fwalk(path, topdown=False):
            for name in files + dirs:
                try:
                    try:
                        (os.rmdir if name in dirs else os.unlink)(name, dir_fd=fd)
                    except NotADirectoryError:      # a link to a directory
                        os.unlink(name, dir_fd=fd)
                except OSError:                     # what cannot go stays; the rest goes
                    pass
        os.rmdir(path)
    except NotADirectoryError:
        os.unlink(path)
    except OSError:
        pass


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
