"""The real effects behind ``supervisor.Ops``, and where the runtime files live.

Each method does one small, non-blocking thing to the OS on the supervisor's behalf;
the supervisor decides, this file acts.
"""

import os
import stat

from schema_init.lib import accounts
from . import loader, logs, spawn
from schema_init.core import config, killing, supervisor


class Paths:
    """Where the runtime files go: under /run and /var as PID 1, under --run-dir else."""

    def __init__(self, socket, log_dir, log_fallback, env_file, timers, handover):
        self.socket = socket
        self.log_dir = log_dir
        self.log_fallback = log_fallback
        self.env_file = env_file
        self.timers = timers
        self.handover = handover

    @classmethod
    def for_pid1(cls):
        return cls("/run/schema-init.sock", "/var/log/schema-init", "/run/log/schema-init",
                   "/run/schema-init/env", "/var/lib/schema-init/timers",
                   "/run/schema-init/handover")

    @classmethod
    def under(cls, run_dir):
        join = os.path.join
        return cls(join(run_dir, "schema-init.sock"), join(run_dir, "log"), None,
                   join(run_dir, "schema-init", "env"), join(run_dir, "timers"),
                   join(run_dir, "handover"))

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


class RealOps(supervisor.Ops):
    def __init__(self, runtime):
        self.rt = runtime
        self.service_uids = {}          # name -> the uid its processes run as (its spawn)
        self.is_root = os.geteuid() == 0

    def spawn(self, service, argv, env, nice, account):
        rt = self.rt
        spec = service.spec
        # listen= sockets first: one that cannot be made fails the spawn, naming it
        held = ()
        if spec.listen:
            held = self.rt.sockets_for(spec)
        notify_address = None
        if config.wants_notify_socket(spec):
            notify_address = self.watch_notify(service.name)
            self.service_uids[service.name] = account[1] if account is not None else \
                os.getuid()
        elif rt.notify is not None:
            rt.notify.release(service.name)
        path = rt.cgroups.create(service.name) if rt.cgroups.base else None
        log_path = os.path.join(rt.paths.log_dir, service.name + ".log")
        pid, placed, problems = spawn.start_service(
            argv, env, log_path, nice, account, rt.cgroups, spec, path,
            listen_fds=[sock.fileno() for sock in held],
            listen_names=[config.listen_options(value).get("name", service.name)
                          for value in spec.listen] if held else (),
            notify_socket=notify_address, watchdog_pid=spec.watchdog_sec > 0)
        return pid, placed, problems

    def spawn_control(self, service, argv, prefixes, env, nice, account):
        """A control command (exec_pre, exec_stop, ...): in the service's cgroup, its
        output in the service's log, without its sockets."""
        rt = self.rt
        path = rt.cgroups.create(service.name) if rt.cgroups.base else None
        log_path = os.path.join(rt.paths.log_dir, service.name + ".log")
        pid, placed, _problems = spawn.start_service(
            argv, env, log_path, nice, account, rt.cgroups, service.spec, path,
            prefixes=prefixes)
        return pid, placed

    def daemon_pid(self, service, parent):
        """forking=1: the daemon's pid from its pid_file (a process of the service: in
        its cgroup, else ours to reap or of PARENT's session), or else the one process
        left in its cgroup (else in PARENT's session) -- of several, the one whose
        parent we are."""
        spec = service.spec
        own = os.getpid()
        if spec.pid_file:
            pid, why = read_pid_file(spec.pid_file)
            if not pid:
                return 0, why
            facts = process_facts(pid)
            if facts is None:
                return 0, "pid %d of %s is not running" % (pid, spec.pid_file)
            if service.cgroup:
                ours = pid in self.rt.cgroups.pids(service.cgroup)
            else:
                ours = facts[1] == own or parent in (facts[2], facts[3])
            if not ours:
                return 0, "pid %d of %s is not a process of the service" % (pid, spec.pid_file)
            return pid, None
        if service.cgroup:
            left = [p for p in self.rt.cgroups.pids(service.cgroup)
                    if (process_facts(p) or "Z")[0] != "Z"]
        else:
            left = session_members(parent)
        if len(left) > 1:
            left = [p for p in left if (process_facts(p) or (0, 0))[1] == own] or left
        if len(left) == 1:
            return left[0], None
        if not left:
            return 0, "no process left by the first one"
        return 0, "%d processes left (pid_file= names the daemon)" % len(left)

    def watch_listen(self, service):
        self.rt.sockets_for(service.spec)
        self.rt.sockets.watch(service.name)

    def unwatch_listen(self, name):
        if self.rt.sockets is not None:
            self.rt.sockets.unwatch(name)

    def close_listen(self, name):
        if self.rt.sockets is not None:
            self.rt.sockets.release(name)

    def release_sockets(self, name):
        self.service_uids.pop(name, None)
        if self.rt.sockets is not None:
            self.rt.sockets.release(name)
        if self.rt.notify is not None:
            self.rt.notify.release(name)

    def service_uid(self, service):
        """The uid the service's processes run as: its last spawn's; for one handed over
        by a re-exec, its user='s (None: a user the machine no longer knows), else ours.
        Looked up once, not per datagram."""
        name = service.name
        if name not in self.service_uids:
            user = service.spec.user
            if not user:
                self.service_uids[name] = os.getuid()
            else:
                entry = spawn.lookup_user(user)
                self.service_uids[name] = entry[1] if entry is not None else None
        return self.service_uids[name]

    def process_uids(self, pid):
        from . import notify_socket
        return notify_socket.process_uids(pid)

    def watch_notify(self, name):
        """The service's NOTIFY_SOCKET address, its socket made (and in the loop) if need
        be."""
        return self.rt.notify_sockets().for_service(name)

    def belongs(self, service, pid):
        from . import notify_socket
        return notify_socket.belongs(pid, service.pid, service.cgroup)

    def signal(self, service, pid, sig):
        """Whom ``sig`` reaches is ``killing``'s decision (kill_mode=); a pid that is no
        service's (service None) has no kill_mode and no cgroup."""
        path = service.cgroup if service is not None else None
        mode = service.spec.kill_mode if service is not None else None
        targets = killing.signal_targets(mode, sig, pid, bool(path))
        spawn.signal_service(targets, pid, sig, self.rt.cgroups, path)

    def signal_process(self, pid, sig):
        try:
            os.kill(pid, sig)
        except OSError:
            pass

    def cleanup_cgroup(self, service):
        """After the main process ended: what is left of the service goes too, unless
        kill_mode=process leaves it (its directory is removed once it is empty);
        send_sigkill=0: it only gets the kill signal."""
        if service.cgroup:
            spec = service.spec
            sig = killing.leftover_signal(spec.kill_mode, spec.kill_signal, spec.send_sigkill)
            if sig == killing.SIGKILL:
                self.rt.cgroups.kill(service.cgroup)
            elif sig:
                self.rt.cgroups.signal(service.cgroup, sig)
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
        return accounts.supplementary_groups(name, gid)

    def path_identity(self, path):
        try:
            st = os.stat(path)
        except (OSError, ValueError):
            return None
        return (st.st_dev, st.st_ino, st.st_ctime_ns)

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
        data, _ = loader.read_file(self.rt.paths.env_file)
        return data

    def _stamp_path(self, name):
        return os.path.join(self.rt.paths.timers, name + ".stamp")

    def read_stamp(self, name):
        data, _ = loader.read_file(self._stamp_path(name))
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
        self.rt.watchdog.pet()

    def load_directory(self):
        return loader.load_directory(self.rt.services_dir, self.rt.unit_dirs)

    def load_service_file(self, path):
        return loader.load_service_file(path)


PID_FILE_MAX = 64


def read_pid_file(path):
    """(pid, None) from a pid file, or (0, why): one bounded, non-blocking read of a
    regular file (a FIFO or a device there never holds PID 1)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        return 0, "%s: %s" % (path, exc.strerror)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return 0, "%s is not a regular file" % path
        data = os.read(fd, PID_FILE_MAX)
    except OSError as exc:
        return 0, "%s: %s" % (path, exc.strerror)
    finally:
        os.close(fd)
    text = data.strip()
    if not text.isdigit() or len(text) > 10 or int(text) < 2:
        return 0, "%s holds no pid" % path
    return int(text), None


def process_facts(pid):
    """(state letter, parent pid, process group, session) of a process, None if gone."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            data = f.read(1024)
    except OSError:
        return None
    fields = data[data.rfind(b")") + 2:].split()
    try:
        return fields[0].decode(), int(fields[1]), int(fields[2]), int(fields[3])
    except (IndexError, ValueError):
        return None


def session_members(leader):
    """The live processes of LEADER's session or process group (spawn's setsid made
    them the first process's pid): without a cgroup, what a forking service left."""
    found = []
    try:
        names = os.listdir("/proc")
    except OSError:
        return found
    for name in names:
        if not name.isdigit():
            continue
        facts = process_facts(int(name))
        if facts is not None and facts[0] != "Z" and leader in (facts[2], facts[3]):
            found.append(int(name))
    return found
