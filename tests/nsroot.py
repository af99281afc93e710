"""Run the static schema-init as PID 1 of a new PID + mount namespace, in a private root.

The root is a tmpfs holding a static busybox, the binary as /sbin/init and the
services; it is entered with pivot_root and the old root is detached, so even a bug
in PID 1's shutdown cannot remount the host's filesystems.  The host watches through
/proc/PID/root (the control socket, the shm, the logs) and the console (stdout).
"""

import os
import signal
import subprocess
import time

from conftest import ROOT, program

BUSYBOX = "/bin/busybox"
APPLETS = ("sh", "sleep", "cat", "echo", "touch", "ls", "mkdir", "rm", "kill", "true",
           "false", "ps", "grep", "sync", "mount", "umount", "date", "wc", "head")


def binary():
    return os.environ.get("SCHEMA_INIT_BIN") or os.path.join(ROOT, "build", "out", "schema-init")


class Namespace:
    def __init__(self, tmp_path, files, env=None, links=()):
        self.base = str(tmp_path)
        self.rootdir = os.path.join(self.base, "root")
        self.stage = os.path.join(self.base, "stage")
        self.console_path = os.path.join(self.base, "console.log")
        os.makedirs(self.rootdir)
        os.makedirs(os.path.join(self.stage, "services"))
        for name, text in files.items():
            path = os.path.join(self.stage, "services", name)
            if isinstance(text, tuple):
                os.symlink(text[1], path)
            else:
                with open(path, "w") as f:
                    f.write(text)
        self.env = env or {}
        self.links = links          # (path in the root, what it points to), made before boot
        self.proc = None
        self.init_pid = None

    def script(self):
        env_words = " ".join("%s=%s" % kv for kv in sorted(self.env.items()))
        links = " ".join(APPLETS)
        return """
set -eu
R=%(root)s
mount -t tmpfs -o size=64m,mode=0755 schema-root "$R"
mkdir -p "$R/bin" "$R/sbin" "$R/etc/schema-init" "$R/proc" "$R/sys" "$R/dev" "$R/run" \\
         "$R/tmp" "$R/var/log" "$R/oldroot"
cp %(busybox)s "$R/bin/busybox"
for a in %(links)s; do ln -s busybox "$R/bin/$a"; done
cp %(binary)s "$R/sbin/init"
ln -s init "$R/sbin/schema-ctl"
cp -a %(stage)s/services "$R/etc/schema-init/services"
%(extra)s
cd "$R"
pivot_root . oldroot
exec /bin/busybox env -i %(env)s /bin/busybox sh -c \\
    'umount -l /oldroot && rmdir /oldroot && exec /sbin/init'
""" % {"root": self.rootdir, "busybox": BUSYBOX, "links": links, "binary": binary(),
       "stage": self.stage, "env": env_words,
       "extra": "\n".join('mkdir -p "$R%s" && ln -s %s "$R%s"' % (
           os.path.dirname(path), target, path) for path, target in self.links)}

    def start(self, socket=True):
        self.console = open(self.console_path, "wb")
        self.proc = subprocess.Popen(
            ["unshare", "--pid", "--fork", "--mount", "--propagation", "private",
             "/bin/sh", "-c", self.script()],
            stdout=self.console, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.init_pid = self.wait(self._find_init, 20, "PID 1 of the namespace")
        if socket:
            self.wait(lambda: os.path.exists(self.socket), 20, "control socket")
        return self

    def _find_init(self):
        try:
            with open("/proc/%d/task/%d/children" % (self.proc.pid, self.proc.pid)) as f:
                children = f.read().split()
        except OSError:
            return None
        if not children:
            return None
        pid = int(children[0])
        try:
            if os.readlink("/proc/%d/exe" % pid).endswith("/sbin/init") or \
                    os.path.exists("/proc/%d/root/run/schema-init.sock" % pid):
                return pid
        except OSError:
            return None
        return None

    @property
    def socket(self):
        return "/proc/%d/root/run/schema-init.sock" % self.init_pid

    def path(self, inside):
        return "/proc/%d/root%s" % (self.init_pid, inside)

    def wait(self, predicate, timeout, what):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            if self.proc.poll() is not None:
                raise AssertionError("namespace ended (%s) while waiting for %s:\n%s"
                                     % (self.proc.returncode, what, self.console_text()))
            time.sleep(0.02)
        raise AssertionError("timed out waiting for %s:\n%s" % (what, self.console_text()[-4000:]))

    def ctl(self, *args):
        return subprocess.run([program("schema-ctl"), "--socket", self.socket, *args],
                              capture_output=True, text=True, timeout=30)

    def status(self):
        result = {}
        for line in self.ctl("status", "--kv").stdout.splitlines():
            if line.startswith("service."):
                key, _, value = line.partition("=")
                name, field = key[len("service."):].rsplit(".", 1)
                result.setdefault(name, {})[field] = value
        return result

    def wait_state(self, name, state, timeout=15):
        return self.wait(lambda: self.status().get(name, {}).get("state") == state, timeout,
                         "%s %s" % (name, state))

    def host_pid(self, ns_pid):
        """The host pid of a process whose pid inside the namespace is ns_pid."""
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open("/proc/%s/status" % entry) as f:
                    for line in f:
                        if line.startswith("NSpid:"):
                            pids = line.split()[1:]
                            if len(pids) == 2 and int(pids[1]) == ns_pid and \
                                    self._in_namespace(int(entry)):
                                return int(entry)
            except OSError:
                continue
        return None

    def _in_namespace(self, pid):
        try:
            return os.readlink("/proc/%d/ns/pid" % pid) == \
                os.readlink("/proc/%d/ns/pid" % self.init_pid)
        except OSError:
            return False

    def zombies(self):
        """Processes of the namespace that are zombies."""
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit() and self._in_namespace(int(entry)):
                try:
                    with open("/proc/%s/stat" % entry) as f:
                        state = f.read().rsplit(")", 1)[1].split()[0]
                except OSError:
                    continue
                if state == "Z":
                    found.append(int(entry))
        return found

    def rail(self):
        try:
            with open(self.path("/var/log/schema-init/rail.log")) as f:
                return f.read()
        except OSError:
            return ""

    def console_text(self):
        with open(self.console_path, errors="replace") as f:
            return f.read()

    def signal(self, sig):
        os.kill(self.init_pid, sig)

    def finish(self, timeout=60):
        """Wait for the namespace to end; returns the unshare child's wait status."""
        try:
            self.proc.wait(timeout)
        finally:
            self.console.close()
        return self.proc.returncode

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            if self.init_pid:
                try:
                    os.kill(self.init_pid, signal.SIGKILL)
                except OSError:
                    pass
            self.proc.kill()
            self.proc.wait(10)
