"""cgroup v2: one directory per service, limits written before the service may exec.

As PID 1 the services live in ``/sys/fs/cgroup/schema-init/<name>``.  Not as PID 1
they live below the supervisor's own cgroup, in ``schema-init.<pid>/<name>``, so two
supervisors never share a directory.  Where no writable cgroup2 hierarchy exists the
supervisor says so once and runs services without cgroups (process groups are used
for stopping instead).  Controllers are enabled one by one, so one missing
controller does not disable the others.
"""

import os
import time
import _signal as signal  # the C module: the signal.py wrapper loads enum (~1 MB in PID 1)

CONTROLLERS = ("cpu", "memory", "cpuset", "pids", "io")
WEIGHTS = {"critical": 1000, "standard": 100, "peripheral": 10}


def _write(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _read(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def find_cgroup2_mount(mountinfo="/proc/self/mountinfo"):
    """Mount point of the cgroup2 hierarchy, or None."""
    for line in _read(mountinfo).splitlines():
        left, sep, right = line.partition(" - ")
        if sep and right.split(" ", 1)[0] == "cgroup2":
            fields = left.split(" ")
            if len(fields) > 4:
                return fields[4].replace("\\040", " ")
    return None


def own_cgroup(proc_cgroup="/proc/self/cgroup"):
    for line in _read(proc_cgroup).splitlines():
        if line.startswith("0::"):
            return line[3:].strip() or "/"
    return None


class Cgroups:
    """Per-service cgroup directories below one base; every method is best-effort."""

    def __init__(self, base, limits, note):
        self.base = base            # None: no cgroups at all
        self.limits = limits        # controllers enabled in base's subtree
        self.note = note            # one line for the console about what is missing
        self.leftover = set()       # killed directories whose processes had not gone yet

    @classmethod
    def detect(cls, pid1, tag=None):
        mount = find_cgroup2_mount()
        if mount is None:
            return cls(None, (), "no cgroup2 hierarchy: services run without cgroups or limits")
        if pid1:
            parent = mount
            base = os.path.join(mount, "schema-init")
        else:
            own = own_cgroup() or "/"
            parent = os.path.normpath(mount + "/" + own)
            base = os.path.join(parent, "schema-init.%s" % (tag or os.getpid()))
        try:
            os.makedirs(base, 0o755, exist_ok=True)
        except OSError as exc:
            return cls(None, (), "cgroup2 at %s is not writable (%s): services run without "
                       "cgroups or limits" % (mount, exc.strerror))
        available = _read(os.path.join(parent, "cgroup.controllers")).split()
        if pid1:
            for name in CONTROLLERS:
                if name in available:
                    try:
                        _write(os.path.join(parent, "cgroup.subtree_control"), "+" + name)
                    except OSError:
                        pass
        enabled = []
        for name in CONTROLLERS:
            if name in _read(os.path.join(base, "cgroup.controllers")).split():
                try:
                    _write(os.path.join(base, "cgroup.subtree_control"), "+" + name)
                    enabled.append(name)
                except OSError:
                    pass
        missing = [c for c in ("cpu", "memory") if c not in enabled]
        note = None
        if missing:
            note = ("cgroup controllers %s unavailable at %s: the matching limits are not "
                    "applied" % ("+".join(missing), base))
        return cls(base, tuple(enabled), note)

    def path_for(self, name):
        return None if self.base is None else os.path.join(self.base, name)

    def create(self, name):
        path = self.path_for(name)
        if path is None:
            return None
        try:
            os.mkdir(path, 0o755)
        except FileExistsError:
            pass
        except OSError:
            return None
        return path

    def place(self, path, pid):
        """Move ``pid`` into ``path``; False when that failed (run without a cgroup)."""
        try:
            _write(os.path.join(path, "cgroup.procs"), "%d\n" % pid)
            return True
        except OSError:
            return False

    def apply_limits(self, path, spec):
        """Write the spec's limits (the original's values, docs/spec.md), returning what failed."""
        wanted = []
        if 1 <= spec.cpu_limit <= 100:
            wanted.append(("cpu.max", "%d 100000\n" % (spec.cpu_limit * 1000)))
        if spec.mem_limit > 0:
            wanted.append(("memory.max", "%d\n" % (spec.mem_limit * 1048576)))
        if "cpu" in self.limits:
            wanted.append(("cpu.weight", "%d\n" % WEIGHTS.get(spec.priority, 100)))
        if spec.cpuset:
            wanted.append(("cpuset.cpus", spec.cpuset))
        failed = []
        for name, value in wanted:
            try:
                _write(os.path.join(path, name), value)
            except OSError:
                failed.append(name)
        return failed

    def pids(self, path):
        text = _read(os.path.join(path, "cgroup.procs"))
        return [int(x) for x in text.split() if x.isdigit()]

    def signal(self, path, sig):
        """Send ``sig`` to every process of the cgroup; returns how many got it."""
        count = 0
        for pid in self.pids(path):
            try:
                os.kill(pid, sig)
                count += 1
            except OSError:
                pass
        return count

    def kill(self, path):
        """SIGKILL the whole cgroup (cgroup.kill, or each process where that is missing)."""
        try:
            _write(os.path.join(path, "cgroup.kill"), "1")
            return
        except OSError:
            pass
        self.signal(path, signal.SIGKILL)

    def remove(self, path):
        """rmdir; a directory still busy (its killed processes not gone yet) is kept in
        ``leftover`` and removed by ``retry_removals`` once it is empty."""
        try:
            os.rmdir(path)
            self.leftover.discard(path)
            return True
        except FileNotFoundError:
            self.leftover.discard(path)
            return True
        except OSError:
            self.leftover.add(path)
            return False

    def retry_removals(self):
        """After children were reaped: remove the leftover directories now empty."""
        for path in list(self.leftover):
            if not self.pids(path):
                self.remove(path)

    def remove_base(self, wait=2.0):
        """Kill what is left in every service directory and remove them and the base,
        waiting up to ``wait`` seconds for killed processes to be gone (used on exit)."""
        if self.base is None:
            return
        try:
            children = [os.path.join(self.base, e) for e in os.listdir(self.base)]
        except OSError:
            return
        children = [path for path in children if os.path.isdir(path)]
        for path in children:
            self.kill(path)
        deadline = time.monotonic() + wait
        while True:
            busy = [path for path in children if not self.remove(path)]
            if not busy or time.monotonic() >= deadline:
                break
            time.sleep(0.01)
        try:
            os.rmdir(self.base)
        except OSError:
            pass
