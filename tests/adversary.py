"""Helpers of the adversarial suite (tests/test_adversarial.py, issue 9).

* ``Adversary``: a ``harness.Supervised`` that may start behind a prefix (``unshare``
  for a private mount namespace, ``prlimit``) and cleans up after itself whatever
  happened: its process, every process it started (found by a tag in their
  environment, so orphans and setuid services too), its cgroup directories and its
  /dev/shm files.
* ``raw_request``: one request sent byte for byte over the control socket.
* ``Prober``: ``status`` every 10 ms from a thread, recording each round trip: the
  longest is how long the loop was blocked.
* ``Starts``: the start times a fast-respawning service appends to a file: the
  longest gap between two starts bounds how late its exits were reaped.
* ``ControlFuzzer`` and ``FileFuzzer``: seeded generators of hostile requests and
  hostile .svc/.grp files.
* ``update_report``: a section of bench/REPORT-adversarial.md (full mode).

Size: ``ADVERSARIAL_SCALE`` unset is the short form (``make test``), ``full`` the long
one (``make test-adversarial``).
"""

import json
import os
import random
import shutil
import signal
import socket
import statistics
import stat
import subprocess
import sys
import threading
import time
import uuid

import pytest

from conftest import ROOT, program
from harness import Supervised
from schema_init.pid1 import cgroup
from schema_init.core import protocol

SCALE = os.environ.get("ADVERSARIAL_SCALE", "").strip().lower()
FULL = SCALE == "full"
MAX_REQUEST = 4096
CLIENT_DEADLINE = protocol.CLIENT_DEADLINE     # a stalled client is dropped after this
TERMINATOR = b".\n"
TOO_LONG = b"err: request longer than 4096 bytes\n.\n"
REPORT = os.path.join(ROOT, "bench", "REPORT-adversarial.md")
TAG_VARIABLE = "SCHEMA_ADVERSARY_TAG"
NOBODY = 65534


def size(smoke, full):
    """The short form's value, or the long form's under ADVERSARIAL_SCALE=full."""
    return full if FULL else smoke


def seed_for(name):
    """A seed for a fuzzer: ADVERSARIAL_SEED if given, else a fresh one; printed so a
    failure can be replayed (ADVERSARIAL_SEED=<seed>)."""
    given = os.environ.get("ADVERSARIAL_SEED")
    seed = int(given) if given else random.SystemRandom().randrange(1 << 32)
    print("%s: seed %d (replay with ADVERSARIAL_SEED=%d)" % (name, seed, seed))
    return seed


def require_root(*tools):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    for tool in tools:
        if shutil.which(tool) is None:
            pytest.skip("needs %s" % tool)


def is_complete(reply):
    """A reply that ends with the terminator as a whole line."""
    return reply == TERMINATOR or reply.endswith(b"\n" + TERMINATOR)


# --- one request, byte for byte --------------------------------------------------------

def raw_request(path, payload, timeout=5.0):
    """Send ``payload`` as it is and read until the server closes.

    Returns ``(reply bytes, error or None, seconds)``; a reset, a refused connection
    or a timeout is the error (the bytes read before it are still returned)."""
    started = time.monotonic()
    chunks, error = [], None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
        if payload:
            sock.sendall(payload)
        while True:
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
    except OSError as exc:
        error = exc
    finally:
        sock.close()
    return b"".join(chunks), error, time.monotonic() - started


def status_ok(path, timeout=5.0):
    reply, error, _ = raw_request(path, b"status\n", timeout)
    return error is None and is_complete(reply) and reply.startswith(b"services:")


# --- the supervisor under attack ---------------------------------------------------------

def in_mount_namespace(script):
    """An argv prefix: run the shell ``script`` in a private mount namespace, then exec
    the command that follows (the supervisor keeps the pid ``Popen`` returns)."""
    return ["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c",
            "set -e\n" + script + '\nexec "$@"', "adversary-ns"]


class Adversary(Supervised):
    """``Supervised`` behind an optional argv ``prefix``; ``proc_root`` reaches the run
    directory through /proc/PID/root (for a run directory mounted over in the
    supervisor's own mount namespace)."""

    def __init__(self, root, files, prefix=(), proc_root=False, env=None, **kwargs):
        self.tag = uuid.uuid4().hex
        env = dict(os.environ if env is None else env)
        env[TAG_VARIABLE] = self.tag
        Supervised.__init__(self, root, files, env=env, **kwargs)
        self.prefix = list(prefix)
        self.proc_root = proc_root
        self.host_socket = self.socket
        self.pid = None

    def start(self, wait=True, timeout=20):
        self.console = open(self.console_path, "wb")
        self.proc = subprocess.Popen(
            self.prefix + [program("schema-init"), "--services", self.services,
                           "--run-dir", self.run_dir, "--shm", self.shm_name,
                           "--time-scale", str(self.scale)] + self.args,
            stdout=self.console, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=self.env)
        self.pid = self.proc.pid
        if self.proc_root:
            self.socket = self.inside(self.host_socket)
        if wait:
            self.wait(lambda: os.path.exists(self.socket), timeout, "control socket")
            self.wait(lambda: status_ok(self.socket), timeout, "a first status reply")
        return self

    def inside(self, path):
        """``path`` as the supervisor's mount namespace sees it."""
        return "/proc/%d/root%s" % (self.pid, path)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def request(self, payload, timeout=5.0):
        if isinstance(payload, str):
            payload = payload.encode()
        return raw_request(self.socket, payload, timeout)

    def says(self, text):
        return text in self.console_text()

    def internal_errors(self):
        return [line for line in self.console_text().splitlines() if "internal error" in line]

    def cgroup_base(self):
        """Where this supervisor puts its services' cgroups (cgroup.py: not PID 1,
        ``schema-init.<shm tag>.<pid>`` below its own cgroup), or None."""
        mount = cgroup2_mount()
        own = own_cgroup(self.pid) or own_cgroup("self")
        if mount is None or own is None:
            return None
        tag = self.shm_name.strip("/").replace("/", "_")
        return os.path.normpath("%s/%s/schema-init.%s.%d" % (mount, own, tag, self.pid))

    def stop(self, timeout=20):
        try:
            return Supervised.stop(self, timeout)
        finally:
            if not self.console.closed:
                self.console.close()

    def cleanup(self):
        """Everything this instance left, whatever state it is in."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "console", None) is not None and not self.console.closed:
            self.console.close()
        kill_tagged(self.tag)
        if self.pid is not None:
            remove_cgroup_tree(self.cgroup_base())
        for suffix in ("", ".ext"):
            try:
                os.unlink("/dev/shm" + self.shm_name + suffix)
            except OSError:
                pass


def tagged_pids(tag):
    """Processes whose environment carries this tag (a supervisor's services and
    everything they started)."""
    needle = ("%s=%s" % (TAG_VARIABLE, tag)).encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open("/proc/%s/environ" % entry, "rb") as f:
                if needle in f.read().split(b"\0"):
                    found.append(int(entry))
        except OSError:
            continue
    return found


def is_zombie(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True                 # gone


def cgroup_pids(path):
    """Every process in the cgroup ``path`` and below."""
    pids = []
    for directory in cgroup_dirs(path) if path and os.path.isdir(path) else []:
        try:
            with open(os.path.join(directory, "cgroup.procs")) as f:
                pids += [int(x) for x in f.read().split()]
        except OSError:
            pass
    return pids


def kill_tagged(tag, rounds=100):
    """SIGKILL every process whose environment carries this tag (services, orphans,
    services running as other users) until none is left."""
    for _ in range(rounds):
        found = tagged_pids(tag)
        if not found:
            return
        for pid in found:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.05)


def cgroup2_mount():
    return cgroup.find_cgroup2_mount()


def own_cgroup(pid):
    return cgroup.own_cgroup("/proc/%s/cgroup" % pid)


def cgroup_dirs(path):
    """Every directory at and below ``path``, deepest first."""
    found = []
    for top, dirs, _files in os.walk(path):
        found.extend(os.path.join(top, d) for d in dirs)
    return sorted(found, key=lambda p: -p.count("/")) + [path]


def remove_cgroup_tree(base):
    if not base or not os.path.isdir(base):
        return
    for path in cgroup_dirs(base):
        try:
            with open(os.path.join(path, "cgroup.kill"), "w") as f:
                f.write("1")
        except OSError:
            pass
    deadline = time.monotonic() + 5
    for path in cgroup_dirs(base):
        while True:
            try:
                os.rmdir(path)
                break
            except FileNotFoundError:
                break
            except OSError:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.02)


def cpu_seconds(pid):
    """utime + stime of a process, in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fd_count(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return -1


# --- measuring the loop ------------------------------------------------------------------

class Prober(threading.Thread):
    """Sends ``status`` every ``interval`` seconds and records every round trip
    ``(sent at, seconds, problem or None)``; a round trip is as long as the loop kept
    the request waiting."""

    def __init__(self, path, interval=0.01, timeout=5.0, request=b"status\n"):
        threading.Thread.__init__(self, daemon=True)
        self.path = path
        self.interval = interval
        self.timeout = timeout
        self.payload = request
        self.samples = []
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            sent = time.monotonic()
            reply, error, seconds = raw_request(self.path, self.payload, self.timeout)
            problem = None
            if error is not None:
                problem = "%s: %s" % (type(error).__name__, error)
            elif not is_complete(reply):
                problem = "reply without terminator: %r" % reply[-80:]
            self.samples.append((sent, seconds, problem))
            self.halt.wait(max(0.0, self.interval - (time.monotonic() - sent)))

    def stop(self):
        self.halt.set()
        self.join(self.timeout + 5)
        return self

    def between(self, start, end):
        return [s for s in self.samples if s[0] + s[1] >= start and s[0] <= end]

    def worst(self, samples=None):
        samples = self.samples if samples is None else samples
        return max(samples, key=lambda s: s[1]) if samples else (0.0, 0.0, None)

    def longest(self, samples=None):
        return self.worst(samples)[1]

    def median(self):
        return statistics.median(s[1] for s in self.samples) if self.samples else 0.0

    def failures(self):
        return [s for s in self.samples if s[2] is not None]


class Starts:
    """Start times a service appends to a file (``date +%s.%N >> FILE``)."""

    def __init__(self, path):
        self.path = path

    def script(self):
        return "date +%%s.%%N >> %s" % self.path

    def times(self):
        try:
            with open(self.path) as f:
                words = f.read().split()
        except FileNotFoundError:
            return []
        out = []
        for word in words:
            try:
                out.append(float(word))
            except ValueError:
                pass
        return out

    def gaps(self, start_wall=None, end_wall=None):
        """Gaps between consecutive starts (wall clock), counting the time from
        ``start_wall`` to the first start and from the last start to ``end_wall``."""
        times = self.times()
        if start_wall is not None:
            times = [t for t in times if t >= start_wall]
            times = [start_wall] + times
        if end_wall is not None:
            times = [t for t in times if t <= end_wall] + [end_wall]
        return [b - a for a, b in zip(times, times[1:])]


def flapper(starts, **keys):
    """A .svc that records its start and exits at once, restarted for ever."""
    text = "exec=/bin/sh\nargs=-c\nargs=%s\nmax_restarts=1000000\n" % starts.script()
    return text + "".join("%s=%s\n" % kv for kv in keys.items())


# --- reports -----------------------------------------------------------------------------

def write_json(path, data):
    with open(path, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True, default=str)
        f.write("\n")


def update_report(section, markdown):
    """Replace one section of bench/REPORT-adversarial.md (the other sections stay)."""
    begin, end = "<!-- begin %s -->" % section, "<!-- end %s -->" % section
    try:
        with open(REPORT) as f:
            text = f.read()
    except FileNotFoundError:
        text = ("# Adversarial suite (issue 9): measurements\n\n"
                "Written by `make test-adversarial` (ADVERSARIAL_SCALE=full "
                "tests/test_adversarial.py); each section by its test.\n\n")
    block = "%s\n%s\n%s" % (begin, markdown.rstrip("\n"), end)
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        tail = rest.split(end, 1)[1]
        text = head + block + tail
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    with open(REPORT, "w") as f:
        f.write(text)


def program_label():
    return os.environ.get("SCHEMA_INIT_BIN") or "venv (%s)" % program("schema-init")


# --- clients run as another user -----------------------------------------------------------

HAMMER = r"""
import json, os, select, socket, sys, time
path, count, stop_file, limit = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
stats = {"connects": 0, "failed_connects": 0, "dropped": 0}
open_ = {}
def connect():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.setblocking(False)
    try:
        s.connect(path)
    except OSError:
        s.close()
        stats["failed_connects"] += 1
        return
    stats["connects"] += 1
    open_[s.fileno()] = s
end = time.monotonic() + limit
told = False
poller = select.poll()
while time.monotonic() < end and not os.path.exists(stop_file):
    while len(open_) < count:
        before = len(open_)
        connect()
        if len(open_) == before:
            break
    if not told:
        print("ready", flush=True)
        told = True
    poller = select.poll()
    for fd in open_:
        poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
    for fd, _ in poller.poll(10):
        s = open_.pop(fd)
        try:
            s.recv(65536)
        except OSError:
            pass
        s.close()
        stats["dropped"] += 1
print(json.dumps(stats), flush=True)
"""

HOLDER = r"""
import json, select, socket, sys, time
path, count, settle = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
socks, refused = [], 0
for _ in range(count):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(2)
    try:
        s.connect(path)
        s.setblocking(False)
        socks.append(s)
    except OSError:
        s.close()
        refused += 1
time.sleep(settle)
held = []
for s in socks:
    p = select.poll()
    p.register(s.fileno(), select.POLLIN | select.POLLHUP | select.POLLERR)
    if p.poll(0):
        s.close()                     # the server closed it (EOF) or it failed
    else:
        held.append(s)
print(json.dumps({"connected": len(socks), "refused": refused, "held": len(held)}), flush=True)
sys.stdin.readline()
for s in held:
    try:
        s.send(b"status\n")
    except OSError:
        pass
served = 0
deadline = time.monotonic() + 3
for s in held:
    data = b""
    s.settimeout(max(0.05, deadline - time.monotonic()))
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    if data.startswith(b"services:") and data.endswith(b"\n.\n"):
        served += 1
    s.close()
print(json.dumps({"served": served}), flush=True)
"""

SQUATTER = r"""
import json, os, sys
fds = {}
for path in sys.argv[1:]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    os.fchmod(fd, 0o666)
    os.ftruncate(fd, 65536)
    fds[path] = fd
print(json.dumps({p: os.fstat(fd).st_ino for p, fd in fds.items()}), flush=True)
sys.stdin.readline()
for fd in fds.values():
    os.pwrite(fd, b"\xab\xcd" * 32768, 0)
print("written", flush=True)
sys.stdin.readline()
"""


def as_nobody(code, *args, groups=()):
    """A Python child running ``code`` as uid/gid 65534 with the given extra groups."""
    return subprocess.Popen([sys.executable, "-c", code] + [str(a) for a in args],
                            user=NOBODY, group=NOBODY, extra_groups=list(groups),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd="/")


def finish(child, timeout=10):
    if child.poll() is None:
        child.kill()
    try:
        child.communicate(timeout=timeout)
    except (subprocess.TimeoutExpired, ValueError):
        pass


def free_gid(start=64990):
    used = set()
    with open("/etc/group") as f:
        for line in f:
            fields = line.split(":")
            if len(fields) > 2 and fields[2].isdigit():
                used.add(int(fields[2]))
    gid = start
    while gid in used:
        gid -= 1
    return gid


# --- the control-socket fuzzer ----------------------------------------------------------

DESTRUCTIVE = {"reboot", "poweroff", "reexec", "test-fatal"}
NAMED = {"start", "up", "stop", "down", "restart", "pet", "reset"}


def server_view(payload, closes):
    """The request line the server would act on (protocol: up to the first newline,
    or the whole buffer when the client closes first), as it decodes it; None if no
    request is handled."""
    head = payload[:MAX_REQUEST + 1]
    newline = head.find(b"\n")
    if newline >= 0:
        line = head[:newline]
    elif len(head) > MAX_REQUEST or not closes:
        return None
    else:
        line = head
    return line.rstrip(b"\r").decode("utf-8", "replace")


def harmless(payload, closes, names):
    """False for a request that would stop the supervisor or touch a service the
    measurement depends on (``names``): the fuzzer attacks the parser and the loop,
    not the machine."""
    text = server_view(payload, closes)
    if text is None:
        return True
    verb, _, argument = text.partition(" ")
    argument = argument.strip(" ")
    if verb in DESTRUCTIVE:
        return False
    if verb in NAMED and (argument in names or not argument):
        return False
    if verb == "add" and argument.endswith(".svc") and "\x00" not in argument:
        return False            # only paths that cannot name a real service file
    return True


class ControlMessage:
    __slots__ = ("index", "kind", "payload", "chunks", "delay", "closes", "read", "wait")

    def __init__(self, index, kind, payload, chunks=1, delay=0.0, closes=False, read=True):
        self.wait = kind == "stalled"   # holds its incomplete line until the server drops it
        self.index = index
        self.kind = kind
        self.payload = payload
        self.chunks = chunks        # the payload is written in this many pieces
        self.delay = delay          # seconds between pieces
        self.closes = closes        # the client shuts its write side after sending
        self.read = read            # False: it closes without reading the reply

    @property
    def expects_reply(self):
        """A complete request (a newline within the limit, or more than the limit) from
        a client that waits for the reply must get one, with its terminator."""
        head = self.payload[:MAX_REQUEST + 1]
        return self.read and (b"\n" in head or len(head) > MAX_REQUEST)

    @property
    def expects_too_long(self):
        return self.read and b"\n" not in self.payload[:MAX_REQUEST + 1] and \
            len(self.payload) > MAX_REQUEST


class ControlFuzzer:
    VERBS = ("status", "status --json", "status --kv", "list", "timing", "start", "stop",
             "restart", "reset", "reload", "reload --evict", "pet", "up", "down", "add")

    def __init__(self, seed, names):
        self.rng = random.Random(seed)
        self.names = set(names)

    def _garbage(self, n, alphabet=None):
        r = self.rng
        if alphabet is None:
            return bytes(r.randrange(256) for _ in range(n))
        return bytes(r.choice(alphabet) for _ in range(n))

    def _invalid_utf8(self):
        r = self.rng
        pieces = [b"\xff", b"\xfe", b"\xc0\xaf", b"\xe0\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80",
                  b"\x80", b"\xc3", "\u00e9".encode(), "\u2603".encode(), b"\xf0\x9f\x98"]
        return b"".join(r.choice(pieces) for _ in range(r.randint(1, 12)))

    def payload(self, kind):
        r = self.rng
        verb = r.choice(self.VERBS).encode()
        if kind == "valid":
            return r.choice([b"status", b"status --json", b"status --kv", b"list",
                             b"timing", b"reset nosuch", b"stop nosuch", b"pet nosuch",
                             b"start nosuch", b"restart nosuch"]) + b"\n"
        if kind == "garbage-argument":
            return verb + b" " + self._garbage(r.randint(1, 200)).replace(b"\n", b"") + b"\n"
        if kind == "random":
            return self._garbage(r.randint(0, 300))
        if kind == "random-line":
            return self._garbage(r.randint(0, 300)).replace(b"\n", b"") + b"\n"
        if kind == "nul":
            word = bytearray(verb + b" " + self._garbage(r.randint(0, 20), b"abc/ ."))
            for _ in range(r.randint(1, 4)):
                word.insert(r.randint(0, len(word)), 0)
            return bytes(word) + b"\n"
        if kind == "invalid-utf8":
            return verb + b" " + self._invalid_utf8() + b"\n"
        if kind == "huge":
            n = r.choice([MAX_REQUEST + 1, MAX_REQUEST + 2, 5000, 20000, 65536, 200000])
            newline = r.random() < 0.5
            return verb + b" " + b"A" * n + (b"\n" if newline else b"")
        if kind == "boundary":
            n = r.choice([MAX_REQUEST - 2, MAX_REQUEST - 1, MAX_REQUEST, MAX_REQUEST + 1])
            body = (b"status " + b"x" * n)[:n]
            return body + b"\n"
        if kind == "crlf":
            return r.choice([b"status\r\n", b"\r\n", b"\n", b"status\r\r\n", b"list\r\n",
                             b" status\n", b"status \n", b"STATUS\n", b"status\t--kv\n"])
        if kind == "multi":
            return b"status\n" + self._garbage(r.randint(0, 50)) + b"\nlist\n"
        if kind in ("partial", "slow", "half-close", "no-read"):
            return r.choice([b"status", b"list", b"timing", b"status --kv"]) + b"\n"
        if kind == "early-close":
            return self._garbage(r.randint(0, 40)).replace(b"\n", b"")
        if kind == "mutated":
            data = bytearray(r.choice([b"status", b"status --json", b"status --kv", b"list",
                                       b"timing", b"reset nosuch", b"pet nosuch",
                                       b"stop nosuch", b"reload"]) + b"\n")
            for _ in range(r.randint(1, 4)):
                op = r.randrange(3)
                if op == 0:
                    data[r.randrange(len(data))] = r.randrange(256)
                elif op == 1:
                    data.insert(r.randint(0, len(data)), r.randrange(256))
                elif len(data) > 1:
                    del data[r.randrange(len(data))]
            return bytes(data)
        if kind == "stalled":
            return r.choice([b"", b"stat", b"status --", self._garbage(30).replace(b"\n", b"")])
        raise ValueError(kind)

    KINDS = (("valid", 10), ("garbage-argument", 12), ("random", 10), ("random-line", 10),
             ("nul", 8), ("invalid-utf8", 8), ("huge", 6), ("boundary", 5), ("crlf", 6),
             ("multi", 5), ("partial", 6), ("slow", 1), ("half-close", 4), ("no-read", 4),
             ("early-close", 5), ("mutated", 10), ("stalled", 0.2))

    def messages_lazily(self, count):
        """``count`` messages, made as they are taken (a long run never holds them all)."""
        kinds = [k for k, _ in self.KINDS]
        weights = [w for _, w in self.KINDS]
        made = 0
        while made < count:
            kind = self.rng.choices(kinds, weights)[0]
            payload = self.payload(kind)
            chunks, delay, closes, read = 1, 0.0, False, True
            if kind == "partial":
                chunks, delay = self.rng.randint(2, 6), self.rng.uniform(0, 0.02)
            elif kind == "slow":
                chunks = len(payload)
                delay = min(0.05, 1.0 / max(1, chunks))      # whole line within ~1 s
            elif kind == "half-close":
                payload = payload.rstrip(b"\n")
                closes = True
            elif kind == "no-read":
                read = False
            elif kind == "early-close":
                closes, read = True, False
            elif kind == "random":
                closes = self.rng.random() < 0.5
            if not harmless(payload, closes or not read, self.names):
                continue
            yield ControlMessage(made, kind, payload, chunks, delay, closes, read)
            made += 1


def send_message(path, message, timeout=5.0):
    """Play one fuzz message; returns ``(reply, error or None, start, end)``."""
    start = time.monotonic()
    chunks, error = [], None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
        data = message.payload
        if message.chunks > 1 and data:
            step = max(1, -(-len(data) // message.chunks))
            for i in range(0, len(data), step):
                sock.sendall(data[i:i + step])
                if message.delay:
                    time.sleep(message.delay)
        elif data:
            sock.sendall(data)
        if message.closes:
            sock.shutdown(socket.SHUT_WR)
        if message.read:
            if not message.expects_reply and not message.closes and not message.wait:
                sock.settimeout(0.05)       # an incomplete line: no reply is due
            elif message.wait:
                sock.settimeout(CLIENT_DEADLINE + 3)
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
    except socket.timeout as exc:
        error = None if not message.expects_reply and not message.wait else exc
    except OSError as exc:
        error = exc
    finally:
        sock.close()
    return b"".join(chunks), error, start, time.monotonic()


def judge(message, reply, error):
    """What is wrong with the outcome of one fuzz message, or None."""
    if b"internal error" in reply:
        return "internal error in the reply: %r" % reply[:200]
    if message.wait:
        # an incomplete line held open: dropped at the client deadline, without a reply
        if error is not None:
            return "%s: %s while holding an incomplete line" % (type(error).__name__, error)
        if reply:
            return "a reply to an incomplete line: %r" % reply[:120]
        return None
    if not message.expects_reply:
        return None
    if error is not None:
        return "%s: %s (read %d bytes)" % (type(error).__name__, error, len(reply))
    if not is_complete(reply):
        return "reply without its terminator: %r" % reply[-120:]
    if message.expects_too_long and reply != TOO_LONG:
        return "a request over %d bytes got %r" % (MAX_REQUEST, reply[:120])
    return None


# --- the file fuzzer -----------------------------------------------------------------------

SAFE_EXEC = (b"/bin/true", b"/bin/false", b"/bin/sh", b"/bin/sleep", b"/nonexistent/fz")
SHELL_METACHARACTERS = b"<>|&;`$()\\*?~{}[]!'\"^"


def defuse(data):
    """Keep a fuzzed file from doing anything but load: ``exec`` only of harmless
    programs, no shell metacharacters in what a shell would run (args, failsafe,
    fuse_cmd).  The parser still sees every other byte as generated."""
    out = []
    for line in data.split(b"\n"):
        body = line[:-1] if line.endswith(b"\r") else line
        key, sep, value = body.partition(b"=")
        key = key.strip(b" \t")
        if sep and key == b"exec":
            if value.split(b"#", 1)[0].strip(b" \t") not in SAFE_EXEC:
                line = b"exec=/nonexistent/fz"
        elif sep and key in (b"args", b"failsafe", b"fuse_cmd"):
            line = body.partition(b"=")[0] + b"=" + bytes(
                c for c in value if c not in SHELL_METACHARACTERS)
        out.append(line)
    return b"\n".join(out)


class FuzzFile:
    """One entry to place in the services directory: bytes, or a special file."""

    __slots__ = ("name", "data", "special", "target", "kind")

    def __init__(self, name, kind, data=None, special=None, target=None):
        self.name = name            # bytes: any file name
        self.kind = kind
        self.data = data
        self.special = special      # None (a regular file), "symlink", "fifo", "dir"
        self.target = target

    def place(self, directory):
        """Create the entry; None when the name is already taken (within a batch)."""
        path = os.path.join(os.fsencode(directory), self.name)
        if os.path.lexists(path):
            return None
        if self.special == "symlink":
            os.symlink(self.target, path)
        elif self.special == "fifo":
            os.mkfifo(path)
        elif self.special == "dir":
            os.mkdir(path)
        else:
            with open(path, "wb") as f:
                f.write(self.data)
        return path


def remove_entry(path):
    try:
        st = os.lstat(path)
    except OSError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path, ignore_errors=True)
    else:
        os.unlink(path)


KEYS = (b"name", b"exec", b"args", b"dep", b"oneshot", b"needs_root", b"critical",
        b"no_restart", b"max_restarts", b"stable_secs", b"ready_path", b"ready_poll_hz",
        b"priority", b"fuse", b"fuse_cmd", b"failsafe", b"failsafe_timeout_ms", b"no_excise",
        b"watchdog_timeout_ms", b"cpu_limit", b"mem_limit", b"cpuset", b"cpuset_partition",
        b"allowed_slot_min", b"allowed_slot_max", b"start_timeout_sec", b"stop_timeout_sec",
        b"on_boot_sec", b"on_active_sec", b"on_calendar", b"persistent", b"user",
        b"no_new_privs", b"env")
INT_KEYS = (b"max_restarts", b"stable_secs", b"ready_poll_hz", b"failsafe_timeout_ms",
            b"watchdog_timeout_ms", b"cpu_limit", b"mem_limit", b"allowed_slot_min",
            b"allowed_slot_max", b"start_timeout_sec", b"stop_timeout_sec", b"on_boot_sec",
            b"on_active_sec")


def unknown_keys_text(rng, approx):
    """A .svc of about ``approx`` bytes: exec=/bin/true, then unknown keys with random
    names, half of them as long as real keys (+-2: the costliest for a did-you-mean
    search), half long (20-400 characters)."""
    lengths = [len(k) for k in KEYS]
    letters = b"abcdefghijklmnopqrstuvwxyz_"
    lines, total = [b"exec=/bin/true", b"oneshot=1"], 0
    while total < approx:
        if rng.random() < 0.5:
            n = max(1, rng.choice(lengths) + rng.randint(-2, 2))
        else:
            n = rng.randint(20, 400)
        line = bytes(rng.choice(letters) for _ in range(n)) + b"=1"
        lines.append(line)
        total += len(line) + 1
    return b"\n".join(lines) + b"\n"


class FileFuzzer:
    """Seeded hostile .svc/.grp entries.  Every name starts with ``fz`` so it sorts
    after the suite's own files (``0...``): a duplicate name never displaces them."""

    READ_LIMIT = 1 << 20

    def __init__(self, seed, extra_dir):
        self.rng = random.Random(seed)
        self.counter = 0
        self.extra_dir = extra_dir

    def _name(self, suffix=b".svc", stem=None):
        self.counter += 1
        return (stem or b"fz%05d" % self.counter) + suffix

    def _valid(self, name=None):
        r = self.rng
        script = r.choice([b"sleep 2", b"exit 3", b"true", b"sleep 0.2", b"echo hi"])
        lines = [b"exec=/bin/sh", b"args=-c", b"args=" + script]
        for _ in range(r.randint(0, 6)):
            key = r.choice(KEYS)
            if key in INT_KEYS:
                value = str(r.choice([0, 1, 2, 5, -1, 100, 1000])).encode()
            elif key in (b"dep",):
                value = r.choice([b"0anchor", b"nosuch", b"fz%05d" % r.randint(1, self.counter + 1)])
            elif key == b"priority":
                value = r.choice([b"critical", b"standard", b"peripheral", b"bogus"])
            elif key == b"on_calendar":
                value = r.choice([b"12:00", b"Mon 03:30", b"15 04:00", b"25:99", b"*"])
            elif key in (b"exec",):
                continue
            elif key in (b"args", b"failsafe", b"fuse_cmd"):
                value = b"true"
            else:
                value = r.choice([b"1", b"0", b"yes", b"/tmp/nonexistent-ready", b"x"])
            lines.append(key + b"=" + value)
        if name is not None:
            lines.append(b"name=" + name)
        return b"\n".join(lines) + b"\n"

    def _mutate(self, data):
        r = self.rng
        data = bytearray(data)
        for _ in range(r.randint(1, 8)):
            op = r.randrange(6)
            if op == 0 and data:
                data[r.randrange(len(data))] = r.randrange(256)
            elif op == 1:
                data.insert(r.randint(0, len(data)), r.randrange(256))
            elif op == 2 and data:
                del data[r.randrange(len(data))]
            elif op == 3:
                lines = bytes(data).split(b"\n")
                i = r.randrange(len(lines))
                lines.insert(i, lines[i] * r.randint(1, 3))
                data = bytearray(b"\n".join(lines))
            elif op == 4 and data:
                i = r.randrange(len(data))
                data[i:i] = bytes(data[i:i + r.randint(1, 64)]) * r.randint(1, 50)
            else:
                data += r.choice([b"=", b"\n", b"#", b"\0", b"\r", b" ", b"\t", b"=="])
        return bytes(data)

    def _unknown_keys(self, approx):
        return unknown_keys_text(self.rng, approx)

    def batch(self, budget):
        """1..3 entries (or a family: chain, cycle, template), at most ``budget``."""
        r = self.rng
        kind = r.choices(
            ["bytes", "mutated", "valid", "huge-number", "unknown-keys", "nul", "long-line",
             "near-limit", "symlink-zero", "fifo", "odd-symlink", "directory", "chain",
             "cycle", "template", "group", "odd-name", "empty"],
            [10, 20, 6, 8, 6, 6, 4, 1, 2, 2, 2, 1, 1, 3, 3, 8, 4, 2])[0]
        entries = self._make(kind, budget)
        for entry in entries:
            if entry.data is not None:
                entry.data = defuse(entry.data)
        return kind, entries

    def _make(self, kind, budget):
        r = self.rng
        if kind == "bytes":
            n = r.choice([0, 1, 16, 200, 2048, 30000])
            data = bytes(r.randrange(256) for _ in range(n))
            return [FuzzFile(self._name(r.choice([b".svc", b".grp"])), kind, data)]
        if kind == "mutated":
            base = self._valid() if r.random() < 0.8 else \
                b"name=g%d\nmember=0anchor\nmember=fz%05d\n" % (self.counter, self.counter)
            suffix = b".svc" if base.startswith(b"exec") else b".grp"
            return [FuzzFile(self._name(suffix), kind, defuse(self._mutate(base)))]
        if kind == "valid":
            return [FuzzFile(self._name(), kind, self._valid())]
        if kind == "huge-number":
            key = r.choice(INT_KEYS)
            digits = r.choice([19, 20, 40, 4300, 4301, 5000, 100000, 900000])
            sign = r.choice([b"", b"-", b"+"])
            number = sign + (r.choice([b"9", b"1"]) + b"0" * (digits - 1))
            data = self._valid() + key + b"=" + number + b"\n"
            return [FuzzFile(self._name(), kind, data)]
        if kind == "unknown-keys":
            return [FuzzFile(self._name(), kind, self._unknown_keys(r.choice([2000, 50000, 200000])))]
        if kind == "nul":
            data = bytearray(self._valid())
            for _ in range(r.randint(1, 10)):
                data.insert(r.randint(0, len(data)), 0)
            return [FuzzFile(self._name(), kind, defuse(bytes(data)))]
        if kind == "long-line":
            n = r.choice([5000, 70000, 500000])
            key = r.choice([b"args", b"name", b"dep", b"exec", b"x" * 100, b"cpuset", b""])
            data = self._valid() + key + b"=" + b"y" * n + b"\n"
            return [FuzzFile(self._name(), kind, defuse(data))]
        if kind == "near-limit":
            n = self.READ_LIMIT + r.randint(-64, 64)
            head = self._valid()
            filler = r.choice([b"#", b"x=", b" "])
            line = filler + b"z" * 70 + b"\n"
            body = head + line * ((n - len(head)) // len(line) + 1)
            return [FuzzFile(self._name(), kind, body[:n])]
        if kind == "symlink-zero":
            return [FuzzFile(self._name(), kind, special="symlink",
                             target=r.choice([b"/dev/zero", b"/dev/urandom", b"/dev/null"]))]
        if kind == "fifo":
            return [FuzzFile(self._name(r.choice([b".svc", b".grp"])), kind, special="fifo")]
        if kind == "odd-symlink":
            name = self._name()
            target = r.choice([name, b"/", b"/nonexistent/x.svc", b"/proc/self/fd/0",
                               b"/proc/self/mem", b"../" * 20])
            return [FuzzFile(name, kind, special="symlink", target=target)]
        if kind == "directory":
            return [FuzzFile(self._name(r.choice([b".svc", b".grp"])), kind, special="dir")]
        if kind == "chain":
            length = min(max(5, budget // 4), r.choices([5, 20, 50, 300], [4, 3, 2, 1])[0])
            stem = b"fzc%05d-" % self.counter
            self.counter += 1
            root_dep = r.choice([b"nosuch-root", b"0anchor"])
            files = []
            for i in range(length):
                dep = root_dep if i == 0 else stem + b"%d" % (i - 1)
                data = b"exec=/bin/true\noneshot=1\ndep=" + dep + b"\n"
                files.append(FuzzFile(stem + b"%d.svc" % i, kind, data))
            return files
        if kind == "cycle":
            length = r.randint(1, 4)
            stem = b"fzy%05d-" % self.counter
            self.counter += 1
            files = []
            for i in range(length):
                data = b"exec=/bin/true\ndep=" + stem + b"%d\n" % ((i + 1) % length)
                if length == 1 or r.random() < 0.3:
                    data += b"dep=" + stem + b"g\n"
                files.append(FuzzFile(stem + b"%d.svc" % i, kind, data))
            files.append(FuzzFile(stem + b"g.grp", kind,
                                  b"name=" + stem + b"g\nmember=" + stem + b"0\n"))
            return files
        if kind == "template":
            stem = b"fzt%05d" % self.counter
            self.counter += 1
            body = b"exec=/bin/sh\nargs=-c\nargs=sleep 1\n"
            if r.random() < 0.3:
                body = defuse(self._mutate(body))
            files = [FuzzFile(stem + b"@.svc", kind, body)]
            for instance in r.sample([b".", b"1", b"x" * 40, b"a b", b"\x01", b"\xff\xfe",
                                      b"..", b"@", b"ok", b"-", b"x" * 31, b"\xc3\xa9"], 3):
                files.append(FuzzFile(stem + b"@" + instance + b".svc", kind,
                                      special="symlink", target=stem + b"@.svc"))
            return files
        if kind == "group":
            stem = b"fzg%05d" % self.counter
            self.counter += 1
            members = r.choice([1, 5, 64, 65, 500])
            lines = [b"name=" + r.choice([stem, b"0anchor", b"", b"bad name", b"x" * 80])]
            for i in range(members):
                lines.append(b"member=" + r.choice([b"0anchor", b"nosuch", stem,
                                                      b"m%d" % i, b"\xff", b""]))
            data = b"\n".join(lines) + b"\n"
            if r.random() < 0.3:
                data = self._mutate(data)
            return [FuzzFile(stem + b".grp", kind, data)]
        if kind == "odd-name":
            name = r.choice([b"fz" + b"n" * 240 + b".svc", b"fz\n.svc", b"fz\xff\xfe.svc",
                             b"fz .svc", b"fz\x01.grp", b"fz-.svc", b"fz\xc3\xa9.svc",
                             b"fz%d.SVC" % self.counter, b"fz.svc.svc", b"fz@@.svc"])
            self.counter += 1
            return [FuzzFile(name, kind, self._valid())]
        if kind == "empty":
            return [FuzzFile(self._name(r.choice([b".svc", b".grp"])), kind, b"")]
        raise ValueError(kind)
