"""schema-journald: the journal sink, an ordinary schema-init service (never PID 1).

It takes its sockets from schema-init (listen= lines, LISTEN_FDS): a unix datagram
socket whose file is named ``socket`` speaks the native journal protocol, any other
datagram socket is syslog (/dev/log), a stream socket is the stdout stream protocol.
PID 1 holds them, so datagrams sent while the sink restarts wait in the socket.  It
also reads the services' own log files (schema-init's ``NAME.log``), so
``journalctl -u NAME`` shows a service's stdout and stderr with nothing changed in how
services are started.

Entries go at once to the runtime tier (``--runtime``, /run: tmpfs, RAM) and, in
batches every ``--flush-interval`` seconds (or when ``--pending-max`` bytes wait), to
the persistent tier (``--storage``).  Both are per-service files of JSON lines, rotated
by size.  Nothing here blocks for a sender: a full disk drops the oldest waiting
entries, counts them and says so once.  Parsing is ``journal.py``'s (pure); this file
moves bytes.
"""

import errno
import os
import select
import struct
import _signal as signal   # the C modules: their wrappers load enum, selectors, ...
import _socket as socket
import sys
import time

from . import journal

IN_MODIFY = 0x2
IN_CREATE = 0x100
IN_MOVED_TO = 0x80
IN_MOVED_FROM = 0x40

USAGE = """\
Usage: schema-journald [--runtime DIR] [--storage DIR|none] [--service-logs DIR|none]...
                       [--flush-interval SECONDS] [--runtime-max BYTES] [--runtime-files N]
                       [--storage-max BYTES]
                       [--storage-files N] [--pending-max BYTES] [--max-streams N]
                       [--rate-limit-interval SECONDS] [--rate-limit-burst N]
Sockets come from schema-init (LISTEN_FDS); sizes take K and M; a rate limit interval of
0 turns the per-sender rate limit off.
"""

DEFAULTS = {
    "runtime": "/run/schema-journal",
    "storage": "/var/log/schema-journal",
    "service_logs": None,              # None: /var/log/schema-init and /run/log/schema-init
    "flush_interval": 300.0,
    "runtime_max": 512 * 1024,         # per service file in /run (two kept: FILE, FILE.1)
    "runtime_files": 1,                # rotated runtime files kept besides the current one
    "storage_max": 4 * 1024 * 1024,    # per service file on disk
    "storage_files": 3,                # rotated files kept on disk besides the current one
    "pending_max": 1024 * 1024,        # bytes waiting for the disk (an early flush beyond)
    "max_streams": 64,
    "rate_limit_interval": journal.RATE_INTERVAL,   # per sender (a service, or a uid
    "rate_limit_burst": journal.RATE_BURST,         # outside any service), as journald
    "max_line": journal.MAX_LINE,
    "boot_id_file": "/proc/sys/kernel/random/boot_id",
}
DATAGRAM_MAX = 256 * 1024     # a longer datagram is cut (MSG_TRUNC) and kept
PER_WAKE = 256                # datagrams per socket, reads per stream or file, per wake-up
BATCH_MAX = 4 * 1024 * 1024   # bytes of entries one wake-up gathers (the rest: next one)
READ_CHUNK = 64 * 1024
BACKLOG_BYTES = 1024 * 1024   # a service log file never seen before: its last MiB
PID_CACHE = 4096
MAX_ORPHANS = 64              # renamed-away log files still followed
PID_CACHE_SECONDS = 5.0
SIZE_SUFFIX = {"k": 1024, "m": 1024 * 1024, "g": 1024 * 1024 * 1024}


class UsageError(Exception):
    pass


def parse_args(argv):
    """Options into a dict (DEFAULTS' keys); UsageError says what is wrong."""
    options = dict(DEFAULTS)
    logs = []
    args = list(argv)
    while args:
        word = args.pop(0)
        if "=" in word and word.startswith("--"):
            word, value = word.split("=", 1)
            args.insert(0, value)
        key = word[2:].replace("-", "_") if word.startswith("--") else None
        if word in ("-h", "--help"):
            raise UsageError("")
        if key not in DEFAULTS:
            raise UsageError("unknown option %r" % word)
        if not args:
            raise UsageError("%s needs a value" % word)
        value = args.pop(0)
        if key == "service_logs":
            logs.append(value)
        elif key in ("runtime", "storage", "boot_id_file"):
            options[key] = value
        elif key in ("flush_interval", "rate_limit_interval"):
            try:
                options[key] = float(value)
            except ValueError:
                raise UsageError("%s: %r is not a number of seconds" % (word, value))
            if not (0 <= options[key] if key == "rate_limit_interval" else 0 < options[key]) \
                    or not options[key] < 1e7:
                raise UsageError("%s: give %s seconds" % (
                    word, "0 or more" if key == "rate_limit_interval" else "more than 0"))
        else:
            number = value.lower()
            scale = SIZE_SUFFIX.get(number[-1:], 1)
            number = number[:-1] if number[-1:] in SIZE_SUFFIX else number
            if not (number.isascii() and number.isdigit() and len(number) < 16) or \
                    int(number) * scale < 1:
                raise UsageError("%s: %r is not a positive number" % (word, value))
            options[key] = int(number) * scale
    if logs:
        options["service_logs"] = [] if logs == ["none"] else [p for p in logs if p != "none"]
    if options["storage"] == "none":
        options["storage"] = None
    return options


def _say(text):
    try:
        os.write(2, ("schema-journald: %s\n" % text).encode("utf-8", "replace"))
    except OSError:
        pass


def _read_text(path, limit=4096):
    try:
        with open(path, "rb") as f:
            return f.read(limit).decode("utf-8", "replace")
    except OSError:
        return ""


def _write_all(fd, data):
    """Write DATA; returns the bytes written before an error (and the error)."""
    done = 0
    while done < len(data):
        try:
            done += os.write(fd, data[done:])
        except InterruptedError:
            continue
        except OSError as exc:
            return done, exc
    return done, None


def _size_of(path):
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def last_entries(path, tail=256 * 1024):
    """The entries of the last TAIL bytes of a stored file (newest last)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - tail))
            data = f.read(tail)
    except OSError:
        return []
    lines = data.split(b"\n")
    if size > tail:
        lines = lines[1:]                 # the first may be the end of a line
    return [e for e in (journal.decode(line) for line in lines if line) if e is not None]


class Tier:
    """One directory of per-service files ``KEY.jsonl`` rotated by size: at the cap the
    new data is written to ``KEY.jsonl.new`` first, then ``KEY.jsonl.N-1`` -> ``.N`` ...
    ``KEY.jsonl`` -> ``.1`` and ``.new`` -> ``KEY.jsonl``, so a reader following the name
    finishes the old file (its open fd) and then finds the new one."""

    def __init__(self, directory, cap, keep, name):
        self.directory = directory
        self.cap = cap
        self.keep = keep
        self.name = name
        self.files = {}            # key -> [fd, size, ended_partial]
        self.problem = None
        self.dropped = 0

    def path(self, key, suffix=""):
        return os.path.join(self.directory, key + ".jsonl" + suffix)

    def _open(self, key):
        held = self.files.get(key)
        if held is not None:
            return held
        os.makedirs(self.directory, 0o755, exist_ok=True)
        fd = os.open(self.path(key), os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC,
                     0o640)
        size = os.fstat(fd).st_size
        held = self.files[key] = [fd, size, False]
        return held

    def close(self):
        for fd, _size, _partial in self.files.values():
            os.close(fd)
        self.files.clear()

    def append(self, key, data, count, sync=False):
        """Append whole lines; True if all of them were written.  A failure counts COUNT
        entries dropped and is said once (and once more when it clears)."""
        try:
            held = self._open(key)
            if held[2]:
                data = b"\n" + data          # end the partial line a full disk left
            if held[1] and held[1] + len(data) > self.cap:
                self._rotate(key, data, sync)
            else:
                written, exc = _write_all(held[0], data)
                held[1] += written
                if exc is not None:
                    held[2] = written > 0 and data[written - 1:written] != b"\n"
                    raise exc
                held[2] = False
                if sync:
                    os.fdatasync(held[0])
        except OSError as exc:
            self.dropped += count
            if self.problem is None:
                self.problem = exc.strerror or str(exc)
                _say("%s: %s: %s" % (self.directory, self.problem, (
                    "entries wait in memory until it can be written" if self.name == "storage"
                    else "entries are dropped (and counted) until it can be written")))
            return False
        if self.problem is not None:
            _say("%s: writable again%s" % (self.directory, "" if self.name == "storage" else
                                           "; %d entries were dropped" % self.dropped))
            self.problem = None
        return True

    def _rotate(self, key, data, sync):
        fresh = self.path(key, ".new")
        fd = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o640)
        try:
            written, exc = _write_all(fd, data)
            if exc is None and sync:
                os.fdatasync(fd)
        except BaseException:
            os.close(fd)
            raise
        if exc is not None:
            os.close(fd)
            os.unlink(fresh)
            raise exc
        for i in range(self.keep, 1, -1):
            try:
                os.rename(self.path(key, ".%d" % (i - 1)), self.path(key, ".%d" % i))
            except FileNotFoundError:
                pass
        old = self.files.pop(key)
        os.close(old[0])
        if self.keep:
            os.rename(self.path(key), self.path(key, ".1"))
        os.rename(fresh, self.path(key))
        self.files[key] = [fd, len(data), False]

    def would_rotate(self, key, size):
        held = self.files.get(key)
        current = held[1] if held is not None else _size_of(self.path(key))
        return bool(current) and current + size > self.cap

    def keys(self):
        try:
            names = os.listdir(self.directory)
        except OSError:
            return []
        return sorted(n[:-6] for n in names if n.endswith(".jsonl"))


class Store:
    """The runtime tier (every entry at once) and the persistent tier (in batches)."""

    def __init__(self, options, boot_id):
        self.runtime = Tier(options["runtime"], options["runtime_max"],
                            options["runtime_files"], "runtime")
        self.storage = None
        if options["storage"]:
            self.storage = Tier(options["storage"], options["storage_max"],
                                options["storage_files"], "storage")
        self.pending = {}           # key -> [[bytes, count], ...] not yet on disk
        self.pending_bytes = 0
        self.rotations = {}         # key -> runtime rotations since its last flush
        self.pending_max = options["pending_max"]
        self.boot_id = boot_id
        self.seqnum = 0
        self.dropped_pending = 0
        self.said_pending = False

    def recover(self):
        """After a restart: the next sequence number, and what the runtime tier has of
        this boot that the persistent tier does not (a sink killed before a flush)."""
        for key in self.runtime.keys():
            runtime = []
            suffixes = [".%d" % i for i in range(self.runtime.keep, 0, -1)] + [""]
            for suffix in suffixes:
                for entry in last_entries(self.runtime.path(key, suffix), 1 << 30):
                    if entry.get("_BOOT_ID") == self.boot_id:
                        runtime.append(entry)
            if runtime:
                self.seqnum = max(self.seqnum, max(journal.seq_of(e) for e in runtime))
            if self.storage is None:
                continue
            stored = [e for e in last_entries(self.storage.path(key))
                      if e.get("_BOOT_ID") == self.boot_id]
            flushed = journal.seq_of(stored[-1]) if stored else 0
            missing = [journal.encode(e) for e in runtime if journal.seq_of(e) > flushed]
            if missing:
                self._queue(key, b"".join(missing), len(missing))
        if self.storage is not None:
            for key in self.storage.keys():
                for entry in last_entries(self.storage.path(key), 64 * 1024)[-1:]:
                    if entry.get("_BOOT_ID") == self.boot_id:
                        self.seqnum = max(self.seqnum, journal.seq_of(entry))

    def next_seq(self):
        self.seqnum += 1
        return self.seqnum

    def add(self, by_key):
        """{key: [encoded lines]} from one wake-up."""
        for key, lines in by_key.items():
            data = b"".join(lines)
            if self.storage is not None and self.runtime.would_rotate(key, len(data)):
                # the rotation drops the oldest runtime file: what of it is not on disk
                # goes there first (so a reader that fell behind finds it on disk)
                if self.rotations.get(key, 0) >= self.runtime.keep and key in self.pending:
                    self.flush([key])
                self.rotations[key] = self.rotations.get(key, 0) + 1
            self.runtime.append(key, data, len(lines))
            if self.storage is not None:
                self._queue(key, data, len(lines))
        if self.pending_bytes > self.pending_max:
            self.flush()

    def _queue(self, key, data, count):
        self.pending.setdefault(key, []).append([data, count])
        self.pending_bytes += len(data)

    def flush(self, keys=None):
        """Write what waits to the persistent tier, one append (and one fdatasync) per
        file.  What cannot be written waits, up to pending_max; beyond, the oldest is
        dropped and counted."""
        if self.storage is None or not self.pending:
            return
        for key in list(self.pending) if keys is None else keys:
            self.rotations[key] = 0
            chunks = self.pending[key]
            data = b"".join(c[0] for c in chunks)
            count = sum(c[1] for c in chunks)
            before = self.storage.dropped
            if self.storage.append(key, data, count, sync=True):
                del self.pending[key]
                self.pending_bytes -= len(data)
            else:
                self.storage.dropped = before      # not dropped yet: still waiting
                self.pending[key] = [[data, count]]
        while self.pending_bytes > self.pending_max and self.pending:
            key = max(self.pending, key=lambda k: len(self.pending[k][0][0]))
            data, count = self.pending.pop(key)[0]
            lines = data.split(b"\n")[:-1]
            keep = []
            size = self.pending_bytes
            for line in lines:               # the oldest go first
                if size > self.pending_max:
                    size -= len(line) + 1
                    self.dropped_pending += 1
                else:
                    keep.append(line + b"\n")
            self.pending_bytes = size
            if keep:
                self.pending[key] = [[b"".join(keep), len(keep)]]
            if not self.said_pending:
                self.said_pending = True
                _say("the persistent storage cannot be written: the oldest waiting entries "
                     "are dropped (they stay in %s while it holds them)"
                     % self.runtime.directory)
        try:
            from schema_init.pid1 import _fastloop
            _fastloop.trim_heap()          # the batch's buffers back to the kernel
        except (ImportError, AttributeError):
            pass
        if not self.pending and self.said_pending:
            _say("persistent storage written again; %d entries were dropped before it"
                 % self.dropped_pending)
            self.said_pending = False

    def close(self):
        self.runtime.close()
        if self.storage is not None:
            self.storage.close()


class Senders:
    """(pid, uid) -> (unit, comm), read from /proc and kept a few seconds (bounded).

    The pid is the kernel's (SCM_CREDENTIALS, SO_PEERCRED), but the process may have
    exited and its pid gone to another by the time /proc is read: a /proc/PID whose
    uids do not include the sender's uid is another process, and the entry gets no
    unit (a sender outside a service cannot borrow a service's identity by dying at
    the right moment, unless the service runs as its own uid).  The uid is part of
    the cache key for the same reason."""

    def __init__(self, proc="/proc"):
        self.proc = proc
        self.cache = {}

    def lookup(self, pid, uid, now):
        if pid <= 0:
            return "", ""
        hit = self.cache.get((pid, uid))
        if hit is not None and hit[0] > now:
            return hit[1], hit[2]
        if len(self.cache) >= PID_CACHE:
            self.cache.clear()
        unit = journal.unit_of_cgroup(_read_text("%s/%d/cgroup" % (self.proc, pid)))
        comm = _read_text("%s/%d/comm" % (self.proc, pid), 64).strip()
        if uid >= 0 and not self._runs_as(pid, uid):
            unit = comm = ""
        self.cache[(pid, uid)] = (now + PID_CACHE_SECONDS, unit, comm)
        return unit, comm

    def _runs_as(self, pid, uid):
        for line in _read_text("%s/%d/status" % (self.proc, pid), 8192).splitlines():
            if line.startswith("Uid:"):
                return str(uid) in line[4:].split()
        return False


class StreamConn:
    def __init__(self, sock, pid, uid, gid):
        self.sock = sock
        self.pid, self.uid, self.gid = pid, uid, gid
        self.parser = journal.Stream()


class ServiceLog:
    """One NAME.log being followed: its fd, inode, the offset read up to."""

    def __init__(self, path, fd, inode, offset, unit):
        self.path, self.fd, self.inode, self.offset, self.unit = path, fd, inode, offset, unit
        self.lines = journal.Lines()


class Sink:
    def __init__(self, options, fds):
        self.options = options
        self.boot_id = _read_text(options["boot_id_file"], 64).strip() or "unknown"
        self.hostname = os.uname().nodename
        self.store = Store(options, self.boot_id)
        self.store.recover()
        self.senders = Senders()
        self.limiter = journal.RateLimit(options["rate_limit_interval"],
                                         options["rate_limit_burst"])
        self.epoll = select.epoll()
        self.buffer = bytearray(DATAGRAM_MAX)
        self.ancillary = socket.CMSG_SPACE(12) + socket.CMSG_SPACE(4 * 16)
        self.datagrams = {}     # fd -> (socket, "syslog" | "journal")
        self.listeners = {}     # fd -> socket
        self.streams = {}       # fd -> StreamConn
        self.paused = False     # listeners unwatched: at max_streams
        self.batch = {}
        self.batch_bytes = 0
        self.busy = set()       # fds with more to read than one wake-up takes
        self.refused_fds = 0
        self.bad_headers = 0
        self.stopping = False
        for fd in fds:
            self._adopt(fd)
        self.logs = {}          # path -> ServiceLog
        self.orphans = []       # ServiceLogs renamed away, still written to
        self.log_dirs = {}      # inotify wd -> directory
        self.inotify = -1
        self._watch_logs()
        self.offsets_dirty = False

    # --- sockets ---

    def _adopt(self, fd):
        sock = socket.socket(fileno=fd)
        sock.setblocking(False)
        if sock.type == socket.SOCK_STREAM:
            self.listeners[fd] = sock
            self.epoll.register(fd, select.EPOLLIN)
            return
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        except OSError:
            pass
        name = sock.getsockname() if sock.family == socket.AF_UNIX else ""
        if isinstance(name, bytes):
            name = name.decode("utf-8", "replace")
        kind = "journal" if os.path.basename(name or "") == "socket" else "syslog"
        self.datagrams[fd] = (sock, kind)
        self.epoll.register(fd, select.EPOLLIN)

    def _recv_datagrams(self, fd, now):
        sock, kind = self.datagrams[fd]
        view = memoryview(self.buffer)
        for _ in range(PER_WAKE):
            if self.batch_bytes > BATCH_MAX:
                break
            try:
                size, ancdata, _flags, _addr = sock.recvmsg_into([view], self.ancillary)
            except (BlockingIOError, InterruptedError):
                self.busy.discard(fd)
                return
            except OSError:
                self.busy.discard(fd)
                return
            pid = uid = gid = -1
            passed = False
            for level, ctype, cdata in ancdata:
                if level != socket.SOL_SOCKET:
                    continue
                if ctype == socket.SCM_CREDENTIALS and len(cdata) >= 12:
                    pid, uid, gid = struct.unpack_from("iii", cdata)
                    if pid <= 0:               # sent before SO_PASSCRED: none really
                        pid = uid = gid = -1
                elif ctype == socket.SCM_RIGHTS:
                    passed = True
                    for (passed_fd,) in struct.iter_unpack("i", cdata[:len(cdata) // 4 * 4]):
                        try:
                            os.close(passed_fd)
                        except OSError:
                            pass
            if passed:
                self.refused_fds += 1          # memfd-passed entries are not read
                if self.refused_fds in (1, 100, 10000):
                    _say("refused %d entries passed as file descriptors (memfd)"
                         % self.refused_fds)
                if not size:
                    continue
            data = bytes(view[:size])
            if kind == "syslog":
                fields = journal.parse_syslog(data)
                transport = "syslog"
            else:
                fields, _problem = journal.parse_native(data)
                transport = "journal"
                if not fields:
                    continue
            self._add(fields, transport, pid, uid, gid, now)
        self.busy.add(fd)

    def _accept(self, fd, now):
        listener = self.listeners[fd]
        while len(self.streams) < self.options["max_streams"]:
            try:
                conn = socket.socket(fileno=listener._accept()[0])
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    self._pause()
                return
            conn.setblocking(False)
            try:
                pid, uid, gid = struct.unpack("iii", conn.getsockopt(
                    socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
            except OSError:
                pid = uid = gid = -1
            try:
                conn.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            self.streams[conn.fileno()] = StreamConn(conn, pid, uid, gid)
            self.epoll.register(conn.fileno(), select.EPOLLIN)
        self._pause()

    def _pause(self):
        if not self.paused:
            self.paused = True
            for fd in self.listeners:
                self.epoll.unregister(fd)

    def _resume(self):
        if self.paused and len(self.streams) < self.options["max_streams"]:
            self.paused = False
            for fd in self.listeners:
                self.epoll.register(fd, select.EPOLLIN)

    def _read_stream(self, fd, now):
        conn = self.streams[fd]
        for _ in range(PER_WAKE // 16):
            if self.batch_bytes > BATCH_MAX:
                break
            try:
                data = conn.sock.recv(READ_CHUNK)
            except (BlockingIOError, InterruptedError):
                self.busy.discard(fd)
                return
            except OSError:
                data = b""
            try:
                entries = conn.parser.feed(data) if data else conn.parser.finish()
            except journal.StreamHeaderError as exc:
                self.bad_headers += 1
                if self.bad_headers in (1, 100, 10000):
                    _say("closed %d stdout streams with a bad header (%s)"
                         % (self.bad_headers, exc))
                entries, data = [], b""
            for fields in entries:
                self._add(fields, "stdout", conn.pid, conn.uid, conn.gid, now)
            if not data:
                self._close_stream(fd)
                return
        self.busy.add(fd)

    def _close_stream(self, fd):
        conn = self.streams.pop(fd)
        self.busy.discard(fd)
        try:
            self.epoll.unregister(fd)
        except (OSError, ValueError):
            pass
        conn.sock.close()
        self._resume()

    # --- the services' own log files ---

    def _watch_logs(self):
        dirs = self.options["service_logs"]
        if dirs is None:
            dirs = [d for d in ("/var/log/schema-init", "/run/log/schema-init")
                    if os.path.isdir(d)]
        if not dirs:
            return
        from schema_init.pid1 import _fastloop
        self.inotify = _fastloop.inotify_open()
        self.epoll.register(self.inotify, select.EPOLLIN)
        self._inotify_read = _fastloop.inotify_read
        for directory in dirs:
            try:
                wd = _fastloop.inotify_watch(self.inotify, directory,
                                             IN_MODIFY | IN_CREATE | IN_MOVED_TO |
                                             IN_MOVED_FROM)
            except OSError as exc:
                _say("cannot watch %s: %s" % (directory, exc.strerror))
                continue
            self.log_dirs[wd] = directory
        self.saved_offsets = self._load_offsets()
        for directory in self.log_dirs.values():
            try:
                names = sorted(os.listdir(directory))
            except OSError:
                continue
            for name in names:
                self._follow(os.path.join(directory, name))

    def _offsets_paths(self):
        paths = [os.path.join(self.options["runtime"], "offsets.json")]
        if self.options["storage"]:
            paths.append(os.path.join(self.options["storage"], "offsets.json"))
        return paths

    def _load_offsets(self):
        import json
        for path in self._offsets_paths():
            try:
                with open(path) as f:
                    saved = json.load(f)
                if isinstance(saved, dict):
                    return saved
            except (OSError, ValueError):
                continue
        return {}

    def save_offsets(self, where=None):
        import json
        state = {path: [log.inode, log.offset] for path, log in self.logs.items()}
        data = json.dumps(state).encode()
        for path in (where or self._offsets_paths()[:1]):
            try:
                os.makedirs(os.path.dirname(path), 0o755, exist_ok=True)
                with open(path + ".tmp", "wb") as f:
                    f.write(data)
                os.rename(path + ".tmp", path)
            except OSError:
                pass
        self.offsets_dirty = False

    def _follow(self, path):
        """Start following PATH if it is a service log file not yet followed."""
        name = os.path.basename(path)
        if path in self.logs or not name.endswith(".log") or len(self.logs) >= 1024:
            return None
        unit = "" if name == "rail.log" else name[:-4]
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError:
            return None
        st = os.fstat(fd)
        if not (st.st_mode & 0o170000 == 0o100000):
            os.close(fd)
            return None
        saved = self.saved_offsets.get(path)
        if saved and saved[0] == st.st_ino and 0 <= saved[1] <= st.st_size:
            offset = saved[1]
        else:
            offset = max(0, st.st_size - BACKLOG_BYTES)
        log = self.logs[path] = ServiceLog(path, fd, st.st_ino, offset, unit)
        self.busy.add(("log", path))
        return log

    def _read_log(self, path, now):
        log = self.logs.get(path)
        if log is None:
            return
        for _ in range(PER_WAKE // 16):
            if self.batch_bytes > BATCH_MAX:
                self.busy.add(("log", path))       # the rest at the next wake-up
                return
            try:
                size = os.fstat(log.fd).st_size
                if size < log.offset:            # truncated (copytruncate)
                    log.offset = 0
                data = os.pread(log.fd, READ_CHUNK, log.offset)
            except OSError:
                data = b""
            if data:
                log.offset += len(data)
                self.offsets_dirty = True
                for line in log.lines.feed(data):
                    self._log_line(log, line, now)
            if len(data) < READ_CHUNK:
                break
        else:
            self.busy.add(("log", path))
            return
        self.busy.discard(("log", path))
        try:
            st = os.stat(path)
        except OSError:
            st = None
        if st is None or st.st_ino != log.inode:
            # renamed away (or removed): the service still writes to it until it is
            # restarted (schema-init opens its log at the spawn), so it is followed on as
            # an orphan until it is deleted; a new file under the name is followed too
            del self.logs[path]
            self.saved_offsets.pop(path, None)
            self._orphan(log)
            if st is not None:
                new = self._follow(path)
                if new is not None:
                    new.offset = 0
                    self._read_log(path, now)

    def _orphan(self, log):
        self.orphans.append(log)
        while len(self.orphans) > MAX_ORPHANS:
            self._drop_orphan(self.orphans[0])

    def _drop_orphan(self, log):
        self.orphans.remove(log)
        for line in log.lines.rest():
            self._log_line(log, line, time.monotonic())
        os.close(log.fd)

    def _read_orphans(self, now):
        for log in list(self.orphans):
            while self.batch_bytes <= BATCH_MAX:
                try:
                    data = os.pread(log.fd, READ_CHUNK, log.offset)
                except OSError:
                    data = b""
                log.offset += len(data)
                for line in log.lines.feed(data):
                    self._log_line(log, line, now)
                if len(data) < READ_CHUNK:
                    break
            try:
                gone = os.fstat(log.fd).st_nlink == 0
            except OSError:
                gone = True
            if gone:
                self._drop_orphan(log)

    def _inotify(self, now):
        for wd, mask, name in self._inotify_read(self.inotify):
            directory = self.log_dirs.get(wd)
            if directory is None or not name:
                continue
            path = os.path.join(directory, name)
            if path not in self.logs:
                log = self._follow(path)
                if log is not None:
                    log.offset = 0 if mask & (IN_CREATE | IN_MOVED_TO) else log.offset
            if path in self.logs:
                self._read_log(path, now)
        if self.orphans:
            self._read_orphans(now)

    # --- entries ---

    def _log_line(self, log, line, now):
        """A line of a service's log file (rail.log: schema-init's own).  The file's
        name is the service: schema-init opened it for that service alone.  Not rate
        limited: the line is on disk in the file already, and it fills only that
        service's journal files."""
        self._store({"MESSAGE": journal._text(line), "PRIORITY": "6",
                     "SYSLOG_IDENTIFIER": log.unit or "schema-init"}, "stdout",
                    -1, -1, -1, "", log.unit)

    def _add(self, fields, transport, pid, uid, gid, now):
        """An entry from a socket: who sent it is the kernel's word (PID, UID, GID)
        and its cgroup's, never the entry's; each sender has its own rate limit."""
        unit, comm = self.senders.lookup(pid, uid, now) if pid > 0 else ("", "")
        key = journal.sender_key(unit, uid)
        allowed, suppressed = self.limiter.allow(key, now)
        if suppressed:
            self._say_suppressed(key, suppressed)
        if allowed:
            self._store(fields, transport, pid, uid, gid, comm, unit, key)

    def _say_suppressed(self, key, count):
        """Stored with the sender's own entries (its file, its unit), from the sink."""
        self._store(journal.suppressed_fields(key, count), "driver", -1, -1, -1, "",
                    "" if key.startswith("+") else key, key)

    def _store(self, fields, transport, pid, uid, gid, comm, unit, key=None):
        entry = journal.complete(fields, time.time_ns() // 1000,
                                 time.monotonic_ns() // 1000, self.store.next_seq(),
                                 self.boot_id, self.hostname, transport, pid, uid, gid,
                                 comm, unit)
        line = journal.encode(entry)
        self.batch_bytes += len(line)
        self.batch.setdefault(key or journal.storage_key(entry), []).append(line)

    def say_ended_suppressions(self, now, everything=False):
        for key, count in self.limiter.ended(now, everything):
            self._say_suppressed(key, count)

    # --- the loop ---

    def wake(self, timeout):
        now = time.monotonic()
        try:
            events = self.epoll.poll(timeout, 64)
        except InterruptedError:
            events = []
        again = set(self.busy)
        for fd, _mask in events:
            again.discard(fd)
            self._dispatch(fd, now)
        for item in again:
            if isinstance(item, tuple):
                self._read_log(item[1], now)
            elif item in self.datagrams or item in self.streams:
                self._dispatch(item, now)
        if self.limiter.suppressing:
            self.say_ended_suppressions(now)
        if self.batch:
            batch, self.batch, self.batch_bytes = self.batch, {}, 0
            self.store.add(batch)
        if self.offsets_dirty:
            self.save_offsets()

    def _dispatch(self, fd, now):
        if fd in self.datagrams:
            self._recv_datagrams(fd, now)
        elif fd in self.streams:
            self._read_stream(fd, now)
        elif fd in self.listeners:
            self._accept(fd, now)
        elif fd == self.inotify:
            self._inotify(now)
        elif fd == self.signal_read:
            try:
                os.read(fd, 64)
            except OSError:
                pass

    def run(self):
        read_end, write_end = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.signal_read = read_end
        self.epoll.register(read_end, select.EPOLLIN)
        signal.set_wakeup_fd(write_end)

        def stop(_sig, _frame):
            self.stopping = True
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)     # a file-size limit: EFBIG
        interval = self.options["flush_interval"]
        deadline = None
        while not self.stopping:
            if self.busy:
                timeout = 0
            elif self.store.pending:
                if deadline is None:
                    deadline = time.monotonic() + interval
                timeout = max(0.0, deadline - time.monotonic())
            else:
                deadline, timeout = None, -1          # idle: no timer at all
            said = self.limiter.next_end()            # a suppression to say when it ends
            if said is not None:
                wait = max(0.0, said - time.monotonic())
                timeout = wait if timeout < 0 else min(timeout, wait)
            self.wake(timeout)
            if self.store.pending and deadline is not None and time.monotonic() >= deadline:
                self.store.flush()
                self.save_offsets(self._offsets_paths())
                deadline = None
        # SIGTERM: what the sockets hold now, then everything to disk
        self.wake(0)
        self.say_ended_suppressions(time.monotonic(), everything=True)
        if self.batch:
            batch, self.batch, self.batch_bytes = self.batch, {}, 0
            self.store.add(batch)
        self.store.flush()
        self.save_offsets(self._offsets_paths())
        self.store.close()
        return 0


def listen_fds(environ=os.environ):
    """The fds schema-init passed (sd_listen_fds(3)): 3 .. 3+LISTEN_FDS-1."""
    try:
        if int(environ.get("LISTEN_PID", "0")) != os.getpid():
            return []
        count = int(environ.get("LISTEN_FDS", "0"))
    except ValueError:
        return []
    return list(range(3, 3 + max(0, min(count, 64))))


def main(argv):
    try:
        options = parse_args(argv)
    except UsageError as exc:
        if not str(exc):                      # -h, --help
            sys.stdout.write(USAGE)
            return 0
        sys.stderr.write("schema-journald: %s\n" % exc)
        sys.stderr.write(USAGE)
        return 2
    fds = listen_fds()
    if not fds and options["service_logs"] == []:
        sys.stderr.write("schema-journald: no sockets (LISTEN_FDS) and no service logs: "
                         "nothing to read\n")
        return 1
    for name in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)
    return Sink(options, fds).run()
