"""Start a real schema-init (not PID 1) on a temporary services directory and observe it."""

import os
import re
import signal
import subprocess
import time
import uuid

from conftest import program
from schema_init.pid1 import shm

RAIL_RE = re.compile(r"^\[(\d\d:\d\d:\d\d)\] (\S+)\s+(\S+)\s+state=(\S+)\s+wt=(\d+)\s+pid=(\d+)$")


class Supervised:
    def __init__(self, root, files, scale=1.0, env=None, args=()):
        self.root = str(root)
        self.services = os.path.join(self.root, "services")
        self.run_dir = os.path.join(self.root, "run")
        self.socket = os.path.join(self.run_dir, "schema-init.sock")
        self.shm_name = "/schema-test-%s" % uuid.uuid4().hex[:12]
        self.console_path = os.path.join(self.root, "console.log")
        os.makedirs(self.services, exist_ok=True)
        os.makedirs(self.run_dir, exist_ok=True)
        for name, text in files.items():
            self.write(name, text)
        self.scale = scale
        self.env = dict(os.environ if env is None else env)
        self.args = list(args)
        self.proc = None

    def write(self, name, text):
        path = os.path.join(self.services, name)
        if isinstance(text, tuple) and text[0] == "symlink":
            os.symlink(text[1], path)
        else:
            with open(path, "w") as f:
                f.write(text)
        return path

    def start(self, wait=True):
        self.console = open(self.console_path, "wb")
        self.proc = subprocess.Popen(
            [program("schema-init"), "--services", self.services, "--run-dir", self.run_dir,
             "--shm", self.shm_name, "--time-scale", str(self.scale)] + self.args,
            stdout=self.console, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=self.env)
        if wait:
            self.wait(lambda: os.path.exists(self.socket), 20, "control socket")
        return self

    def wait(self, predicate, timeout=10.0, what="condition"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError("schema-init exited (%s) while waiting for %s:\n%s"
                                     % (self.proc.returncode, what, self.console_text()))
            time.sleep(0.02)
        raise AssertionError("timed out waiting for %s; status:\n%s\nconsole:\n%s"
                             % (what, self.ctl("status").stdout, self.console_text()[-4000:]))

    def ctl(self, *args, uid=None, timeout=30):
        kwargs = {}
        if uid is not None:
            kwargs["user"] = uid
            kwargs["group"] = uid
            kwargs["extra_groups"] = []
        return subprocess.run([program("schema-ctl"), "--socket", self.socket, *args],
                              capture_output=True, text=True, timeout=timeout, **kwargs)

    def status(self):
        out = self.ctl("status", "--kv").stdout
        result = {}
        for line in out.splitlines():
            if line.startswith("service."):
                key, _, value = line.partition("=")
                _, rest = key.split(".", 1)
                name, field = rest.rsplit(".", 1)
                result.setdefault(name, {})[field] = value
        return result

    def state(self, name):
        return self.status().get(name, {}).get("state")

    def wait_state(self, name, state, timeout=10.0):
        states = state if isinstance(state, tuple) else (state,)
        return self.wait(lambda: self.state(name) in states, timeout,
                         "%s to be %s" % (name, "/".join(states)))

    def wait_trapped(self, name, *signals, timeout=10.0):
        """Wait until NAME's main process catches or ignores each of SIGNALS (SIGTERM when
        none is given). stable_secs=0 promotes a service at its spawn, before its shell has
        run its ``trap``: a signal sent earlier would meet the default action instead.
        Between fork and exec the process is still a copy of the supervisor, with the
        supervisor's own handlers: only a process that runs another program counts."""
        signals = signals or (signal.SIGTERM,)
        supervisor = os.readlink("/proc/%d/exe" % self.proc.pid)

        def trapped():
            pid = int(self.status().get(name, {}).get("pid", "0") or 0)
            try:
                if pid <= 0 or os.readlink("/proc/%d/exe" % pid) == supervisor:
                    return False
            except OSError:
                return False
            return all(handles(pid, sig) for sig in signals)
        return self.wait(trapped, timeout, "%s to trap %s" % (
            name, "+".join(signal.Signals(sig).name for sig in signals)))

    def rail(self):
        path = os.path.join(self.run_dir, "log", "rail.log")
        try:
            with open(path) as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            return []
        out = []
        for line in lines:
            m = RAIL_RE.match(line)
            assert m, "malformed rail line: %r" % line
            out.append((m.group(2), m.group(3), m.group(4), int(m.group(6))))
        return out

    def events(self, name):
        return [event for service, event, _, _ in self.rail() if service == name]

    def log(self, name):
        try:
            with open(os.path.join(self.run_dir, "log", name + ".log")) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def console_text(self):
        try:
            with open(self.console_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def shm(self):
        with open("/dev/shm" + self.shm_name, "rb") as f:
            return shm.read_snapshot(f.read())

    def stop(self, timeout=20):
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("schema-init did not stop on SIGTERM:\n" + self.console_text())
        finally:
            self.console.close()


def daemon(*lines, **keys):
    """A .svc text running ``/bin/sh -c`` with the given script lines."""
    script = "; ".join(lines) if lines else "exec sleep 1000"
    text = "exec=/bin/sh\nargs=-c\nargs=%s\n" % script
    for key, value in keys.items():
        if isinstance(value, (list, tuple)):
            text += "".join("%s=%s\n" % (key, v) for v in value)
        else:
            text += "%s=%s\n" % (key, value)
    return text


def handles(pid, sig):
    """Whether process PID catches or ignores SIG (its SigCgt/SigIgn masks)."""
    masks = 0
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(("SigCgt:", "SigIgn:")):
                    masks |= int(line.split()[1], 16)
    except OSError:
        return False
    return bool(masks & (1 << (int(sig) - 1)))


def process_gone(pid):
    """Whether PID has ended (a zombie counts): reaped between two reads is gone too."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True
