"""The event loop: delivers events to the supervisor and carries out its effects.

One blocking call, ``Loop.wait``, with the nearest deadline as its timeout; no tick.
Each event is handled under one guard whose only job is that the loop survives: an
exception is printed with its traceback and the loop goes on.

This is the loop of a supervisor beside a normal init (``--services DIR --run-dir DIR
--shm NAME``; docs/spec.md, "Running when not PID 1").  ``pid1.Pid1Runtime`` is the
same loop with PID 1's duties filled into the hooks marked below; this file never
asks whether it is PID 1.
"""

import os
import _signal as signal  # the C module: the signal.py wrapper loads enum (~1 MB in PID 1)
import time

from . import _fastloop, cgroup, control, effects, lastresort, loader, logs, shm, watchdog
from schema_init.core import config, graph, handover, protocol, schedule, supervisor
from .fdtable import FdTable
from .readywatch import ReadyWatcher

# The shared memory's system state while stopping (the original's values have no "halt").
STOP_STATES = {"reboot": shm.SYSTEM_REBOOT, "poweroff": shm.SYSTEM_POWEROFF,
               "halt": shm.SYSTEM_POWEROFF}
SIGNALS = (signal.SIGCHLD, signal.SIGHUP, signal.SIGTERM, signal.SIGINT,
           signal.SIGUSR1, signal.SIGUSR2)


class Runtime:
    def __init__(self, options, console=None, env=None):
        self.options = options
        self.services_dir = options["services"]
        self.unit_dirs = [] if options.get("no_units") else list(options.get("units") or ())
        self.paths = self.make_paths()
        self.console = console or logs.Console(1)
        self.scale = options.get("time_scale", 1.0)
        self.stopping = None              # None, "poweroff", "reboot" or "halt"
        self.scheduled = None             # (action, monotonic deadline): shutdown +N
        self.watchdog = watchdog.HardwareWatchdog(self.console)
        self.kernel_to_init = time.monotonic()
        self.supervisor_pid = os.getpid()
        self.env = dict(os.environ if env is None else env)
        self.rescue_pid = 0
        self.reexec_requested = None
        self.server = None
        self.reloading = None             # a reload read in slices (reloading.ReloadJob)
        self.reload_next = None           # [evict, answers]: asked while one was read
        self.sockets = None     # listen= sockets (sockets.Sockets), made once one is needed
        self.notify = None      # NOTIFY_SOCKETs (notify_socket.NotifySockets), likewise

    # --- hooks: what PID 1 does differently (pid1.Pid1Runtime) ------------------------

    def make_paths(self):
        return effects.Paths.under(self.options["run_dir"])

    def prepare_process(self):
        """Not PID 1: orphans of our services must come to us, not to the real init."""
        try:
            _fastloop.set_child_subreaper()
        except OSError:
            pass

    def detect_cgroups(self):
        tag = (self.options.get("shm") or "pid1").strip("/").replace("/", "_")
        return cgroup.Cgroups.detect(False, "%s.%d" % (tag, os.getpid()))

    def watchdog_candidates(self):
        path = self.options.get("watchdog")
        return [path] if path else []

    def nothing_to_boot(self, loaded):
        why = loaded.errors[0].format() if loaded.errors else \
            "no services in %s" % self.services_dir
        self.console.write("[schema-init] nothing to boot (%s)\n" % why)

    def reaped_own_child(self, pid, now):
        """A child that is not a service's (PID 1's rescue shell): True if handled."""
        return False

    def after_reap(self, now):
        pass

    def finish(self):
        """Not PID 1: everything stopped; release what we hold and exit 0."""
        self.server.close()
        self.publisher.close(unlink=True)
        self.cgroups.remove_base()
        self.watchdog.disarm()
        self.console.write("[schema-init] stopped\n")
        return 0

    # --- setup ---------------------------------------------------------------------

    def setup(self):
        self.handover = None
        if self.options.get("resume"):
            data, _ = loader.read_file(self.options["resume"])
            try:
                os.unlink(self.options["resume"])
            except OSError:
                pass
            self.handover = handover.parse_handover(data)
        _fastloop.block_signals(SIGNALS)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        self.loop = _fastloop.Loop()
        self.fds = FdTable(self.loop)
        self.sigfd = _fastloop.open_signalfd(SIGNALS)
        self.fds.add(self.sigfd, self.on_signalfd)
        self.prepare_process()
        self.paths.prepare_logs()
        self.rail = logs.Rail(self.paths.log_dir, self.console)
        self.ready = ReadyWatcher(self.fds, lambda names, now:
                                  self.supervisor.on_ready_change(names, now))
        self.cgroups = self.detect_cgroups()
        if self.cgroups.note:
            self.console.write("[schema-init] %s\n" % self.cgroups.note)
        handed = self.handover["watchdog_fd"] if self.handover else -1
        self.watchdog.open(self.watchdog_candidates(), handed if handed >= 0 else None)
        loaded = self.guarded(loader.load_directory, self.services_dir, self.unit_dirs) or \
            config.unreadable_directory(self.services_dir, "internal error (see above)")
        resolved = self.guarded(graph.resolve, loaded.services, loaded.groups) or \
            graph.resolve([], [])
        for diag in sorted(loaded.diagnostics + resolved.diagnostics,
                           key=config.Diagnostic.sort_key):
            self.console.write("[schema-init] %s\n" % diag.format())
        for path in resolved.cycles:
            self.console.write("schema-init: dependency cycle: %s\n" % " -> ".join(path))
        if not resolved.cycles:
            self.console.write("[schema-init] dependency graph: no cycles\n")
        self.ops = effects.RealOps(self)
        now = time.monotonic()
        interval = self.pet_interval() if self.watchdog.fd >= 0 else None
        self.supervisor = supervisor.Supervisor(resolved, self.ops, now, time.time(),
                                                env=self.env, time_scale=self.scale,
                                                watchdog_interval=interval,
                                                started_at=now)
        self.supervisor.note_rejected(loaded.diagnostics)
        self.publisher = shm.Publisher(self.options.get("shm") or "/schema-init",
                                       say=lambda text: self.console.write(text + "\n"))
        self.publisher.set_origin(os.getpid(), self.kernel_to_init, now)
        self.server = self.open_control(now)
        if self.handover is not None:
            self.restore(self.handover, now)
        elif not loaded.services:
            self.nothing_to_boot(loaded)
        self.make_listen_sockets()
        self.console.write(
            "[schema-init] boot rail\n  [1] kernel core alive\n  [2] init\n  [3] runlevel\n"
            "  [4] env load\n  [5] env active\n  [7] settled \u2014 %d service(s) queued\n"
            % len(self.supervisor.order))

    def make_listen_sockets(self):
        """Every service's listen= sockets made before any service starts, as systemd
        makes its sockets before its services: a client (a logger writing to /dev/log)
        that runs before the daemon's first start is queued, not refused."""
        for name in self.supervisor.order:
            spec = self.supervisor.services[name].spec
            if spec.listen:
                try:
                    self.sockets_for(spec)
                except OSError:
                    pass          # said when the service starts: its spawn fails, naming it

    def sockets_for(self, spec):
        """The service's listen= sockets (made now if it has none, or its lines changed)."""
        return self.listen_sockets().for_service(spec.name, spec.listen, spec.socket_mode,
                                                 spec.socket_user, spec.socket_group,
                                                 spec.user)

    def notify_tag(self):
        """Part of the NOTIFY_SOCKET names: tells apart supervisors with one pid (PID 1
        of several PID namespaces) by their control socket; the same after a re-exec."""
        value = 2166136261
        for byte in self.paths.socket.encode():
            value = ((value ^ byte) * 16777619) & 0xFFFFFFFF
        return "%08x" % value

    def pet_interval(self):
        return self.watchdog.interval(self.options.get("watchdog_interval"), self.scale)

    def listen_sockets(self):
        """The listen= sockets' holder, its module loaded only now (for the first
        service that has listen= lines)."""
        if self.sockets is None:
            from . import sockets
            self.sockets = sockets.Sockets(self.fds, lambda name, now:
                                           self.supervisor.on_connection(name, now))
        return self.sockets

    def notify_sockets(self):
        """The NOTIFY_SOCKETs' holder, its module loaded only now (for the first service
        that uses one)."""
        if self.notify is None:
            from . import notify_socket
            self.notify = notify_socket.NotifySockets(
                self.fds, self.notify_tag(), lambda name, sender, data, now:
                self.supervisor.on_notify(name, sender, data, now))
        return self.notify

    # --- the loop ------------------------------------------------------------------

    def guarded(self, function, *args):
        try:
            return function(*args)
        except Exception:
            self.console.write("[schema-init] internal error (the loop goes on):\n" +
                               logs.format_exception())
            return None

    def open_control(self, now):
        """The control socket, or a stand-in that tries again in a few seconds (a
        read-only or full /run, no file descriptors left): never a reason to stop."""
        try:
            server = control.Server(self.paths.socket, self.fds, self.handle_request)
        except OSError as exc:
            if not isinstance(self.server, control.Unavailable):
                self.console.write("[schema-init] control socket %s unavailable (%s): "
                                   "trying again every %g s\n" % (
                                       self.paths.socket, exc.strerror or exc,
                                       control.Unavailable.RETRY))
            return control.Unavailable(now)
        if isinstance(self.server, control.Unavailable):
            self.console.write("[schema-init] control socket %s open\n" % self.paths.socket)
        return server

    def next_timeout(self, now):
        if self.reloading is not None:
            return 0                      # files still to read: one more slice at once
        paused = self.notify.next_deadline() if self.notify else None    # a flooded one
        deadline = schedule.next_deadline((self.supervisor.next_deadline(),
                                           self.server.next_deadline(), paused,
                                           self.scheduled[1] if self.scheduled else None))
        return schedule.sleep_timeout(deadline, now)

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
            if self.reloading is not None:
                self.guarded(self.reload_step, now, wall)
            self.guarded(sup.on_due, now, wall)
            if self.scheduled is not None and now >= self.scheduled[1]:
                action, self.scheduled = self.scheduled[0], None
                self._stop(action, STOP_STATES[action])
            self.server.expire(now)
            if self.notify is not None:
                self.notify.expire(now)          # a NOTIFY_SOCKET paused by a flood
            if self.server.retry_at is not None and now >= self.server.retry_at:
                self.server = self.open_control(now)
            self.guarded(sup.settle, now)
            if self.stopping is not None and self.guarded(sup.shutdown_progress, now):
                self.publish()
                return
            self.publish()
            if self.reexec_requested and self.reloading is None:
                self.reexec(self.reexec_requested)
                self.reexec_requested = None

    # --- re-exec with the supervised children handed over ---------------------------

    def reexec(self, why):
        """exec() ourselves again; children stay ours (same pid) and are handed over."""
        path = self.paths.handover
        try:
            os.makedirs(os.path.dirname(path), 0o755, exist_ok=True)
            kept = self.sockets.keep_across_exec() if self.sockets else []
            notify = self.notify.keep_across_exec() if self.notify else []
            with open(path + ".tmp", "w") as f:
                f.write(handover.handover_text(self.supervisor, self.watchdog.fd,
                                               self.rescue_pid, self.scheduled, kept,
                                               notify, self.kernel_to_init))
            os.replace(path + ".tmp", path)
            exe, argv = lastresort.own_command()
            argv = handover.strip_resume(argv) + ["--resume", path]
            self.watchdog.keep_across_exec()
            self.console.write("[schema-init] re-executing %s (%s)\n" % (exe, why))
            self.server.close()
            try:
                os.execv(exe, argv)
            finally:                                  # only reached when exec failed
                if self.sockets:
                    self.sockets.close_on_exec()
                if self.notify:
                    self.notify.close_on_exec()
                self.server = self.open_control(time.monotonic())
        except Exception as exc:
            self.console.write("[schema-init] re-exec failed: %s\n" % exc)

    def restore(self, facts, now):
        """Adopt what the previous process handed over (through the lifecycle table)."""
        sup = self.supervisor
        self.rescue_pid = facts["rescue"]
        self.scheduled = facts["scheduled"]
        sup.unmanaged.update(facts["unmanaged"])
        if facts.get("origin"):              # the boot's clock, not this exec's
            self.kernel_to_init, sup.started_at = facts["origin"]
            self.publisher.set_origin(os.getpid(), self.kernel_to_init, sup.started_at)
        # the listen= sockets and NOTIFY_SOCKETs kept open across the exec: taken back
        # for the services still configured alike (a queued datagram is still there)
        if facts.get("listen"):
            self.listen_sockets().adopt(facts["listen"], sup.services)
        if facts.get("notify"):
            self.notify_sockets().adopt(facts["notify"], sup.services)
        for record in facts["services"]:
            service = sup.services.get(record["name"])
            if service is None:
                if record["pid"]:
                    sup.unmanaged.add(record["pid"])
                continue
            record["times"] = facts["times"].get(record["name"])
            sup.fire(service, "adopt", now, record=record)
        sup.changed = True
        self.console.write("[schema-init] resumed: %d service(s) handed over\n"
                           % len(facts["services"]))

    # --- events ----------------------------------------------------------------------

    def dispatch(self, fd, mask, now, wall):
        """One ready fd: to the handler its owner put in the table (``fdtable``)."""
        self.fds.dispatch(fd, mask, now, wall)

    def on_signalfd(self, fd, mask, now, wall):
        for signo, _sender in _fastloop.read_signals(fd):
            self.on_signal(signo, now, wall)

    def handle_request(self, request, uid, now, wall):
        if request in ("test-fatal", "test-modules", "test-mallocstats") and uid == 0 and \
                os.environ.get("SCHEMA_INIT_TEST_HOOKS") == "1":
            import sys
            if request == "test-modules":        # what this process has imported
                return sorted(sys.modules)
            if request == "test-mallocstats":    # pymalloc's arenas and pools, on stderr
                sys._debugmallocstats()
                return ["ok"]
            raise FatalForTests("injected by schema-ctl test-fatal")
        try:
            return protocol.dispatch(request, uid, self.supervisor, self, now, wall)
        except Exception:
            self.console.write("[schema-init] internal error serving %r:\n%s"
                               % (request, logs.format_exception()))
            return ["err: internal error (see console)"]

    def reap(self, now):
        reaped = False
        wall = time.time()
        for pid, status in _fastloop.reap():
            reaped = True
            if not self.reaped_own_child(pid, now):
                self.supervisor.on_exit(pid, status, now, wall)
        if reaped:
            if self.cgroups.leftover:
                self.cgroups.retry_removals()
            self.after_reap(now)

    def on_signal(self, signo, now, wall):
        if signo == signal.SIGCHLD:
            self.reap(now)
        elif signo == signal.SIGHUP:
            self.begin_reload(False, self.say_reload)
        elif signo == signal.SIGINT:
            self.reboot()
        elif signo in (signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2):
            self.poweroff()

    # --- reloading: the files read in slices (reloading.py) ---------------------------

    def begin_reload(self, evict, answer):
        """Start a reload, or join the one after the reload being read (files may have
        changed since it began); ``answer(lines)`` gets the reply when it is done."""
        if self.reloading is None:
            from . import reloading
            self.console.write("[schema-init] reloading configuration...\n")
            self.reloading = reloading.ReloadJob(self.services_dir, self.unit_dirs, evict)
            self.reloading.answers.append(answer)
            return
        if self.reload_next is None:
            self.reload_next = [evict, []]
        self.reload_next[0] = self.reload_next[0] or evict
        self.reload_next[1].append(answer)

    def reload_step(self, now, wall):
        """One slice of the reload being read; when every file is read, the plan."""
        job = self.reloading
        if self.stopping is not None:
            lines = ["err: reload not done — shutting down"]
        else:
            try:
                if not job.step():
                    return
                lines = self.supervisor.apply_reload(job.result(), job.evict, now, wall)
            except Exception:
                self.console.write("[schema-init] internal error while reloading:\n" +
                                   logs.format_exception())
                lines = ["err: reload failed: internal error (see console)"]
        self.reloading = None
        for answer in job.answers:
            answer(lines)
        if self.reload_next is not None:
            evict, answers = self.reload_next
            self.reload_next = None
            for answer in answers:
                self.begin_reload(evict, answer)

    def say_reload(self, lines):
        for line in lines:
            self.console.write("[schema-init] %s\n" % line)

    # --- what protocol.dispatch may ask of the host ---------------------------------

    def reload(self, evict, now, wall):
        """``schema-ctl reload``: the reply comes when the files are read, a slice per
        loop turn, the control socket and every service served between them."""
        answer = self.server.defer()
        if answer is None:                       # not from a client: all at once
            return self.supervisor.cmd_reload(evict, now, wall)
        self.begin_reload(evict, answer)
        return protocol.LATER

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

    def halt(self):
        self._stop("halt", STOP_STATES["halt"])

    def schedule(self, action, seconds, now):
        self.scheduled = (action, now + seconds)
        self.console.write("[schema-init] %s scheduled in %d s\n" % (action, seconds))

    def cancel(self):
        self.scheduled = None
        self.console.write("[schema-init] scheduled shutdown cancelled\n")

    def publish(self):
        sup = self.supervisor
        if sup.changed:
            sup.changed = False
            self.guarded(self.publisher.publish, *sup.snapshot())


class FatalForTests(BaseException):
    """Raised by the test-only `test-fatal` request (SCHEMA_INIT_TEST_HOOKS=1)."""


