"""The event loop: delivers events to the supervisor and carries out its effects.

One blocking call, ``Loop.wait``, with the nearest deadline as its timeout; no tick.
Each event is handled under one guard whose only job is that the loop survives: an
exception is printed with its traceback and the loop goes on.

The same loop runs as PID 1 (``pid1.py`` adds the duties only PID 1 has) and, with
``--services DIR --run-dir DIR --shm NAME``, beside a normal init (DECISIONS.md,
"Running when not PID 1").
"""

import os
import _signal as signal  # the C module: the signal.py wrapper loads enum (~1 MB in PID 1)
import time

from . import _fastloop, cgroup, config, control, graph, logs, schema, shm, spawn, supervisor

SIGNALS = (signal.SIGCHLD, signal.SIGHUP, signal.SIGTERM, signal.SIGINT,
           signal.SIGUSR1, signal.SIGUSR2)
READY_MASK = (_fastloop.IN_CREATE | _fastloop.IN_DELETE | _fastloop.IN_MOVED_FROM |
              _fastloop.IN_MOVED_TO | _fastloop.IN_DELETE_SELF | _fastloop.IN_MOVE_SELF |
              _fastloop.IN_ATTRIB | _fastloop.IN_ONLYDIR)
DEFAULT_PET_INTERVAL = 5.0


class Paths:
    """Where the runtime files go: under /run and /var as PID 1, under --run-dir else."""

    def __init__(self, pid1, run_dir=None):
        if pid1:
            self.socket = "/run/schema-init.sock"
            self.log_dir = "/var/log/schema-init"
            self.log_fallback = "/run/log/schema-init"
            self.env_file = "/run/schema-init/env"
            self.timers = "/var/lib/schema-init/timers"
        else:
            self.socket = os.path.join(run_dir, "schema-init.sock")
            self.log_dir = os.path.join(run_dir, "log")
            self.log_fallback = None
            self.env_file = os.path.join(run_dir, "schema-init", "env")
            self.timers = os.path.join(run_dir, "timers")

    def prepare_logs(self):
        for directory in (self.log_dir, self.log_fallback):
            if directory is None:
                continue
            try:
                os.makedirs(directory, 0o755, exist_ok=True)
                if os.access(directory, os.W_OK):
                    self.log_dir = directory
                    return
            except OSError:
                continue


class ReadyWatcher:
    """inotify on the directory of each ready_path (or its nearest existing ancestor).

    An event concerns a service only when it names the next component of its path
    (the file itself, or the missing directory on the way to it), so a directory
    shared by many services costs one check per event, not one per service.
    """

    SELF_EVENTS = _fastloop.IN_IGNORED | _fastloop.IN_DELETE_SELF | _fastloop.IN_MOVE_SELF

    def __init__(self, loop):
        self.fd = _fastloop.inotify_open()
        loop.register(self.fd)
        self.paths = {}          # service name -> ready_path
        self.by_wd = {}          # wd -> {service names}
        self.wd_of = {}          # service name -> (wd, the component it waits to see)

    def watch(self, name, path):
        self.unwatch(name)
        self.paths[name] = path
        directory, expect = os.path.dirname(path) or "/", os.path.basename(path)
        while True:
            try:
                wd = _fastloop.inotify_watch(self.fd, directory, READY_MASK)
                break
            except OSError:
                if directory in ("/", ""):
                    return
                directory, expect = os.path.dirname(directory), os.path.basename(directory)
        self.by_wd.setdefault(wd, set()).add(name)
        self.wd_of[name] = (wd, expect)

    def unwatch(self, name):
        self.paths.pop(name, None)
        wd, _ = self.wd_of.pop(name, (None, None))
        if wd is None:
            return
        names = self.by_wd.get(wd)
        if names is not None:
            names.discard(name)
            if not names:
                del self.by_wd[wd]
                _fastloop.inotify_unwatch(self.fd, wd)

    def changed(self):
        """Drain events; returns the services to look at (re-arming moved watches)."""
        names = set()
        for wd, mask, entry in _fastloop.inotify_read(self.fd):
            if wd < 0 or mask & _fastloop.IN_Q_OVERFLOW:
                names.update(self.paths)
                continue
            watchers = self.by_wd.get(wd, ())
            if mask & self.SELF_EVENTS:
                names.update(watchers)
                if mask & _fastloop.IN_IGNORED:
                    self.by_wd.pop(wd, None)
                continue
            for name in watchers:
                if self.wd_of[name][1] == entry:
                    names.add(name)
        for name in names:
            path = self.paths.get(name)
            if path is not None and (self.wd_of.get(name, (None, None))[1] !=
                                     os.path.basename(path) or
                                     self.wd_of[name][0] not in self.by_wd):
                self.watch(name, path)        # it watched an ancestor: move closer
        return names


class RealOps(supervisor.Ops):
    def __init__(self, runtime):
        self.rt = runtime
        self.is_root = os.geteuid() == 0

    def spawn(self, service, argv, env, nice, account):
        rt = self.rt
        path = rt.cgroups.create(service.name) if rt.cgroups.base else None
        log_path = os.path.join(rt.paths.log_dir, service.name + ".log")
        pid, placed, problems = spawn.start_service(argv, env, log_path, nice, account,
                                                    rt.cgroups, service.spec, path)
        return pid, placed, problems

    def signal(self, service, pid, sig):
        path = service.cgroup if service is not None else None
        spawn.signal_service(pid, sig, self.rt.cgroups if path else None, path)

    def cleanup_cgroup(self, service):
        if service.cgroup:
            self.rt.cgroups.kill(service.cgroup)
            if self.rt.cgroups.remove(service.cgroup):
                service.cgroup = None

    def shell(self, command, env):
        return spawn.start_shell(command, env)

    def exec_status(self, path):
        return spawn.exec_status(path)

    def mem_available_kb(self):
        return spawn.mem_available_kb()

    def lookup_user(self, name):
        return spawn.lookup_user(name)

    def supplementary_groups(self, name, gid):
        from . import accounts
        return accounts.supplementary_groups(name, gid)

    def watch_ready(self, name, path):
        self.rt.ready.watch(name, path)

    def unwatch_ready(self, name):
        self.rt.ready.unwatch(name)

    def rail(self, name, event, state, weight, pid):
        self.rt.rail.event(name, event, state, weight, pid)

    def say(self, text):
        self.rt.console.write(text + "\n")

    def group_changed(self, name, state, members):
        self.rt.console.write(logs.group_line(name, state, members))

    def read_env_file(self):
        data, _ = config.read_file(self.rt.paths.env_file)
        return data

    def _stamp_path(self, name):
        return os.path.join(self.rt.paths.timers, name + ".stamp")

    def read_stamp(self, name):
        data, _ = config.read_file(self._stamp_path(name))
        try:
            return int(data.strip()) if data else None
        except ValueError:
            return None

    def write_stamp(self, name, when):
        try:
            os.makedirs(self.rt.paths.timers, 0o755, exist_ok=True)
            tmp = self._stamp_path(name) + ".tmp"
            with open(tmp, "w") as f:
                f.write("%d\n" % when)
            os.replace(tmp, self._stamp_path(name))
        except OSError:
            pass

    def pet_watchdog(self):
        self.rt.pet_watchdog()

    def load_directory(self):
        return config.load_directory(self.rt.services_dir)


class Runtime:
    def __init__(self, options, pid1=False, console=None, env=None):
        self.pid1 = pid1
        self.options = options
        self.services_dir = options["services"]
        self.paths = Paths(pid1, options.get("run_dir"))
        self.console = console or logs.Console(1)
        self.scale = options.get("time_scale", 1.0)
        self.stopping = None              # None, "poweroff", "reboot", "halt", "exit"
        self.watchdog_fd = -1
        self.kernel_to_init = time.monotonic()
        self.env = env
        self.rescue_pid = 0
        self.reexec_requested = None

    # --- setup ---------------------------------------------------------------------

    def setup(self):
        self.handover = None
        if self.options.get("resume"):
            self.handover = read_handover(self.options["resume"])
            if self.handover["watchdog_fd"] >= 0:
                self.options["watchdog_fd"] = self.handover["watchdog_fd"]
        _fastloop.block_signals(SIGNALS)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        self.loop = _fastloop.Loop()
        self.sigfd = _fastloop.open_signalfd(SIGNALS)
        self.loop.register(self.sigfd)
        if not self.pid1:
            try:
                _fastloop.set_child_subreaper()
            except OSError:
                pass
        self.paths.prepare_logs()
        self.rail = logs.Rail(self.paths.log_dir, self.console)
        self.ready = ReadyWatcher(self.loop)
        tag = (self.options.get("shm") or "pid1").strip("/").replace("/", "_")
        self.cgroups = cgroup.Cgroups.detect(self.pid1, "%s.%d" % (tag, os.getpid()))
        if self.cgroups.note:
            self.console.write("[schema-init] %s\n" % self.cgroups.note)
        self._open_watchdog()
        loaded = config.load_directory(self.services_dir)
        resolved = graph.resolve(loaded.services, loaded.groups)
        for diag in sorted(loaded.diagnostics + resolved.diagnostics,
                           key=config.Diagnostic.sort_key):
            self.console.write("[schema-init] %s\n" % diag.format())
        for path in resolved.cycles:
            self.console.write("schema-init: dependency cycle: %s\n" % " -> ".join(path))
        if not resolved.cycles:
            self.console.write("[schema-init] dependency graph: no cycles\n")
        self.ops = RealOps(self)
        now = time.monotonic()
        interval = self.pet_interval() if self.watchdog_fd >= 0 else None
        self.supervisor = supervisor.Supervisor(resolved, self.ops, now, time.time(),
                                                env=self.env, time_scale=self.scale,
                                                watchdog_interval=interval,
                                                started_at=now)
        self.publisher = shm.Publisher(self.options.get("shm") or "/schema-init")
        self.server = control.Server(self.paths.socket, self.loop)
        if self.handover is not None:
            self.restore(self.handover, now)
        elif not loaded.services:
            self.nothing_to_boot(loaded)
        self.console.write(
            "[schema-init] boot rail\n  [1] kernel core alive\n  [2] init\n  [3] runlevel\n"
            "  [4] env load\n  [5] env active\n  [7] settled \u2014 %d service(s) queued\n"
            % len(self.supervisor.order))

    def pet_interval(self):
        """--watchdog-interval, else a third of the device's timeout, else 5 s (scaled)."""
        if self.options.get("watchdog_interval"):
            return self.options["watchdog_interval"]
        timeout = _fastloop.watchdog_timeout(self.watchdog_fd)
        if timeout:
            return timeout / 3.0
        return DEFAULT_PET_INTERVAL * self.scale

    def watchdog_appeared(self, now):
        """As PID 1 the device may come with a module a oneshot loads: try again."""
        if self.watchdog_fd >= 0 or not self.pid1:
            return
        self._open_watchdog(quiet=True)
        if self.watchdog_fd >= 0:
            self.supervisor.watchdog_interval = self.pet_interval()
            self.supervisor.next_pet = now

    def _open_watchdog(self, quiet=False):
        handed = self.options.get("watchdog_fd")
        if handed is not None:
            self.watchdog_fd = handed          # kept open (and armed) across re-exec
            os.set_inheritable(handed, False)
            return
        path = self.options.get("watchdog")
        candidates = [path] if path else (["/dev/watchdog0", "/dev/watchdog"] if self.pid1 else [])
        for candidate in candidates:
            try:
                self.watchdog_fd = os.open(candidate, os.O_WRONLY | os.O_CLOEXEC | os.O_NONBLOCK)
                self.console.write("[schema-init] opened hardware watchdog (%s)\n" % candidate)
                return
            except OSError:
                continue

    def pet_watchdog(self):
        if self.watchdog_fd >= 0:
            try:
                os.write(self.watchdog_fd, b"\0")
            except OSError:
                pass

    # --- the loop ------------------------------------------------------------------

    def guarded(self, function, *args):
        try:
            return function(*args)
        except Exception:
            self.console.write("[schema-init] internal error (the loop goes on):\n" +
                               logs.format_exception())
            return None

    def next_timeout(self, now):
        deadline = self.supervisor.next_deadline()
        client = self.server.next_deadline()
        if client is not None and (deadline is None or client < deadline):
            deadline = client
        if deadline is None:
            return None
        return max(0.0, deadline - now)

    def run(self):
        self.setup()
        sup = self.supervisor
        now = time.monotonic()
        self.guarded(self.reap, now)
        self.guarded(sup.settle, now)
        self.publish()
        self.release_startup_memory()
        while True:
            try:
                self.loop_until_stopped()
                break
            except BaseException as exc:        # noqa: B902 - PID 1 must not die of it
                self.console.write("[schema-init] fatal error, re-executing with the "
                                   "services handed over:\n" + logs.format_exception())
                self.reexec("fatal error: %r" % (exc,))
                # exec failed: carry on with this process, without flooding the console
                time.sleep(1)
        return self.finish()

    def release_startup_memory(self):
        """Parsing and set-up leave garbage behind: collect it and return the pages."""
        import gc
        gc.collect()
        gc.freeze()               # what is left lives for ever: keep it out of collections
        _fastloop.trim_heap()

    def loop_until_stopped(self):
        sup = self.supervisor
        while True:
            events = self.loop.wait(self.next_timeout(time.monotonic()))
            now = time.monotonic()
            wall = time.time()
            for fd, mask in events:
                self.guarded(self.dispatch, fd, mask, now, wall)
            self.guarded(sup.on_due, now, wall)
            self.server.expire(now)
            self.guarded(sup.settle, now)
            if self.stopping is not None and self.guarded(sup.shutdown_progress, now):
                self.publish()
                return
            self.publish()
            if self.reexec_requested:
                self.reexec(self.reexec_requested)
                self.reexec_requested = None

    # --- re-exec with the supervised children handed over ---------------------------

    def handover_path(self):
        base = "/run/schema-init" if self.pid1 else self.options["run_dir"]
        return os.path.join(base, "handover")

    def reexec(self, why):
        """exec() ourselves again; children stay ours (same pid) and are handed over."""
        path = self.handover_path()
        try:
            os.makedirs(os.path.dirname(path), 0o755, exist_ok=True)
            with open(path + ".tmp", "w") as f:
                f.write(handover_text(self.supervisor, self.watchdog_fd, self.rescue_pid))
            os.replace(path + ".tmp", path)
            with open("/proc/self/cmdline", "rb") as f:
                argv = [os.fsdecode(a) for a in f.read().split(b"\0")[:-1]]
            exe = os.readlink("/proc/self/exe")
            if exe.endswith(" (deleted)"):
                exe = exe[:-len(" (deleted)")]
            argv = strip_resume(argv) + ["--resume", path]
            if self.watchdog_fd >= 0:
                os.set_inheritable(self.watchdog_fd, True)
            self.console.write("[schema-init] re-executing %s (%s)\n" % (exe, why))
            self.server.close()
            try:
                os.execv(exe, argv)
            finally:                                  # only reached when exec failed
                self.server = control.Server(self.paths.socket, self.loop)
        except Exception as exc:
            self.console.write("[schema-init] re-exec failed: %s\n" % exc)

    def restore(self, handover, now):
        records = handover["services"]
        self.rescue_pid = handover["rescue"]
        self.supervisor.unmanaged.update(handover["unmanaged"])
        sup = self.supervisor
        for record in records:
            service = sup.services.get(record["name"])
            pid = record["pid"]
            if service is None:
                if pid:
                    sup.unmanaged.add(pid)
                continue
            service.pid = pid
            service.state = record["state"]
            service.restarts = record["restarts"]
            service.failures = record["failures"]
            service.dormant_count = record["dormant"]
            service.cgroup = record["cgroup"] or None
            service.stable_time = record["stable_time"]
            service.spawned_at = now
            service.last_pet = now
            service.ready_seen = record["ready_seen"]
            if pid and service.spec.ready_path:
                self.ready.watch(service.name, service.spec.ready_path)
            if service.state == schema.FULL_TRUST and pid and not service.spec.oneshot:
                service.promote_at = now
            if service.state in (schema.DORMANT, schema.RECOVERY):
                service.due = now
            sup.pending.add(service.name)
        sup.changed = True
        self.console.write("[schema-init] resumed: %d service(s) handed over\n" % len(records))

    # --- nothing to boot: the rescue shell ------------------------------------------

    def nothing_to_boot(self, loaded):
        why = loaded.errors[0].format() if loaded.errors else \
            "no services in %s" % self.services_dir
        self.console.write("[schema-init] nothing to boot (%s)\n" % why)
        if self.pid1:
            self.start_rescue_shell()

    def start_rescue_shell(self):
        from . import pid1
        self.rescue_pid = pid1.rescue_shell(self.services_dir, self.console)

    def rescue_done(self, now, wall):
        self.rescue_pid = 0
        self.console.write("[schema-init] rescue shell exited: re-reading %s\n"
                           % self.services_dir)
        lines = self.supervisor.cmd_reload(False, now, wall)
        if lines[0].startswith("err:"):
            self.start_rescue_shell()

    def dispatch(self, fd, mask, now, wall):
        if fd == self.sigfd:
            for signo, _sender in _fastloop.read_signals(fd):
                self.on_signal(signo, now, wall)
        elif fd == self.server.fd:
            self.server.accept(now)
        elif fd == self.ready.fd:
            self.supervisor.on_ready_change(self.ready.changed(), now)
        elif fd in self.server.clients:
            if mask & _fastloop.WRITABLE:
                self.server.writable(fd)
            else:
                self.server.readable(fd, now, lambda request, uid:
                                     self.handle_request(request, uid, now, wall))

    def handle_request(self, request, uid, now, wall):
        if request == "test-fatal" and uid == 0 and \
                os.environ.get("SCHEMA_INIT_TEST_HOOKS") == "1":
            raise FatalForTests("injected by schema-ctl test-fatal")
        try:
            return control.dispatch(request, uid, self.supervisor, self, now, wall)
        except Exception:
            self.console.write("[schema-init] internal error serving %r:\n%s"
                               % (request, logs.format_exception()))
            return ["err: internal error (see console)"]

    def reap(self, now):
        reaped = False
        for pid, status in _fastloop.reap():
            reaped = True
            if pid == self.rescue_pid:
                self.rescue_done(now, time.time())
                continue
            self.supervisor.on_exit(pid, status, now)
        if reaped:
            self.watchdog_appeared(now)

    def on_signal(self, signo, now, wall):
        if signo == signal.SIGCHLD:
            self.reap(now)
        elif signo == signal.SIGHUP:
            for line in self.supervisor.cmd_reload(False, now, wall):
                self.console.write("[schema-init] %s\n" % line)
        elif signo == signal.SIGINT:
            self.reboot()
        elif signo in (signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2):
            self.poweroff()

    # --- the actions control.dispatch may ask for ----------------------------------

    def _stop(self, how, system_state):
        if self.stopping is None:
            self.stopping = how
            self.publisher.set_system_state(system_state)
            self.console.write("[schema-init] shutting down (%s)\n" % how)
            self.supervisor.begin_shutdown(time.monotonic())

    def request_reexec(self):
        self.reexec_requested = "schema-ctl reexec"
        return ["ok: re-executing"]

    def reboot(self):
        self._stop("reboot", shm.SYSTEM_REBOOT)

    def poweroff(self):
        self._stop("poweroff", shm.SYSTEM_POWEROFF)

    def publish(self):
        sup = self.supervisor
        if sup.changed:
            sup.changed = False
            self.guarded(self.publisher.publish, *sup.snapshot())

    def finish(self):
        """Not PID 1: everything stopped; release what we hold and exit 0."""
        self.server.close()
        self.publisher.close(unlink=True)
        self.cgroups.remove_base()
        if self.watchdog_fd >= 0:
            try:
                os.write(self.watchdog_fd, b"V")
            except OSError:
                pass
            os.close(self.watchdog_fd)
        self.console.write("[schema-init] stopped\n")
        return 0



class FatalForTests(BaseException):
    """Raised by the test-only `test-fatal` request (SCHEMA_INIT_TEST_HOOKS=1)."""


HANDOVER_FIELDS = ("name", "pid", "state", "restarts", "failures", "dormant", "cgroup",
                   "stable_time", "ready_seen")


def handover_text(sup, watchdog_fd, rescue_pid):
    """Tab-separated state of every service that the next exec takes over."""
    lines = ["schema-init-handover 1", "watchdog_fd\t%d" % watchdog_fd,
             "rescue\t%d" % rescue_pid]
    for service in sup.ordered():
        if service.dying:
            sup.unmanaged.add(service.dying)
        lines.append("service\t" + "\t".join(str(v) for v in (
            service.name, service.pid, service.state, service.restarts, service.failures,
            service.dormant_count, service.cgroup or "",
            "" if service.stable_time is None else "%.6f" % service.stable_time,
            int(service.ready_seen))))
    for pid in sorted(sup.unmanaged):
        lines.append("unmanaged\t%d" % pid)
    return "\n".join(lines) + "\n"


def read_handover(path):
    result = {"services": [], "watchdog_fd": -1, "rescue": 0, "unmanaged": []}
    data, _ = config.read_file(path)
    try:
        os.unlink(path)
    except OSError:
        pass
    if not data or not data.startswith(b"schema-init-handover 1\n"):
        return result
    for line in data.decode("utf-8", "replace").splitlines()[1:]:
        fields = line.split("\t")
        try:
            if fields[0] == "watchdog_fd":
                result["watchdog_fd"] = int(fields[1])
            elif fields[0] == "rescue":
                result["rescue"] = int(fields[1])
            elif fields[0] == "unmanaged":
                result["unmanaged"].append(int(fields[1]))
            elif fields[0] == "service" and len(fields) == len(HANDOVER_FIELDS) + 1:
                name, pid, state, restarts, failures, dormant, cgroup_path, stable, ready = \
                    fields[1:]
                result["services"].append({
                    "name": name, "pid": int(pid), "state": int(state),
                    "restarts": int(restarts), "failures": int(failures),
                    "dormant": int(dormant), "cgroup": cgroup_path,
                    "stable_time": float(stable) if stable else None, "ready_seen": ready == "1"})
        except (ValueError, IndexError):
            continue
    return result


def strip_resume(argv):
    out, skip = [], False
    for word in argv:
        if skip:
            skip = False
            continue
        if word == "--resume":
            skip = True
            continue
        if word.startswith("--resume="):
            continue
        out.append(word)
    return out
