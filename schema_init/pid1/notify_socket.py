"""The NOTIFY_SOCKETs of notify=1 (and watchdog_sec=) services: thin socket I/O.

One abstract AF_UNIX datagram socket per service (``@schema-init/PID/TAG/notify/NAME``):
abstract, so a daemon started by chroot reaches it too, and so also known to every
local user (/proc/net/unix lists it).  SO_PASSCRED makes the kernel attach the sender's
pid and uid to every datagram (SCM_CREDENTIALS); ``receive`` hands them on with the
bytes and reads nothing else.  Whether the sender is heard is the supervisor's
decision (``notify.standing`` on the credentials first, with no /proc read; then
``belongs``, which reads /proc, for a sender of root or the service's uid only);
what a datagram means is ``notify``'s (pure) decision.

Bounded: a datagram is read into DATAGRAM_MAX bytes (a truncated one is dropped, so is
one carrying file descriptors: the ancillary buffer has room for the credentials only,
so the kernel installs none of them in PID 1, and any that did arrive are closed);
reads never block; at most ``PER_WAKE`` datagrams are taken per wake-up of the loop,
the rest on the next turn; and at most ``notify.READ_RATE`` a second per socket
(``READ_BURST`` at once): a socket over that budget is paused, out of the loop's table
for ``READ_PAUSE`` seconds (``next_deadline``, ``expire``, as the control server pauses
its listening socket), so a flood costs PID 1 a bounded share of a CPU.  Across a
re-exec the sockets stay open and are taken back (``keep_across_exec``, ``adopt``), so
a datagram sent meanwhile waits in its socket.  Loaded only when a service uses
notify=1: PID 1 without it carries none of this.  Every /proc read of this file goes
through ``_read_proc`` (the tests count them).
"""

import errno
import os
import time
import _socket as socket   # the C module: socket.py loads selectors and enum (~1 MB in PID 1)
import struct

from schema_init.core.config import wants_notify_socket
from schema_init.core.notify import DATAGRAM_MAX, READ_BURST, READ_PAUSE, READ_RATE, \
    Budget, abstract_name

PER_WAKE = 64                  # datagrams handled per wake-up, per socket
_CREDS = struct.Struct("iII")   # struct ucred: pid, uid, gid
_ANCILLARY = socket.CMSG_SPACE(_CREDS.size)
_ANCESTRY_MAX = 64             # parent links followed to find the main pid


def _read_proc(path, limit):
    """At most LIMIT bytes of a /proc file, None if it cannot be read (the process is
    gone)."""
    try:
        with open(path, "rb") as f:
            return f.read(limit)
    except (OSError, ValueError):
        return None


def _stat_fields(pid):
    """(ppid, session) of a process from /proc/PID/stat, None if it is gone."""
    data = _read_proc("/proc/%d/stat" % pid, 1024)
    if data is None:
        return None
    rest = data[data.rfind(b")") + 2:].split()     # the name may hold blanks and ')'
    try:
        return int(rest[1]), int(rest[3])
    except (IndexError, ValueError):
        return None


def _in_cgroup(pid, cgroup_path):
    data = _read_proc(os.path.join(cgroup_path, "cgroup.procs"), 1 << 20)
    return data is not None and str(pid).encode() in data.split()


def process_uids(pid):
    """(real, effective) uid of process PID from /proc/PID/status, None if it is gone."""
    data = _read_proc("/proc/%d/status" % pid, 4096) if pid > 0 else None
    if data is None:
        return None
    for line in data.split(b"\n"):
        if line.startswith(b"Uid:"):
            try:
                real, effective = (int(word) for word in line.split()[1:3])
            except ValueError:
                return None
            return real, effective
    return None


def belongs(pid, main_pid, cgroup_path=None):
    """Whether process PID is one of the service whose main process is MAIN_PID."""
    if pid <= 0 or main_pid <= 0:
        return False
    if pid == main_pid:
        return True
    if cgroup_path and _in_cgroup(pid, cgroup_path):
        return True
    mine = _stat_fields(main_pid)
    facts = _stat_fields(pid)
    if facts is None:
        return False
    if mine is not None and mine[1] == facts[1] and facts[1] > 1:
        return True                    # the main process's session (spawn made it)
    for _ in range(_ANCESTRY_MAX):
        parent = facts[0]
        if parent == main_pid:
            return True
        if parent <= 1:
            return False
        facts = _stat_fields(parent)
        if facts is None:
            return False
    return False


class NotifySockets:
    """Every notify service's socket: {name: socket}, and {fd: name} for the loop.  Each
    socket is in the loop's table (``fdtable``); what arrives on it goes to
    ``on_datagram(name, sender, data, now)``, one call per datagram ``receive`` took."""

    def __init__(self, fds, tag, on_datagram=None):
        self.fds = fds
        self.tag = tag
        self.on_datagram = on_datagram
        self.held = {}
        self.names_by_fd = {}
        self.addresses = {}
        self.budgets = {}       # fd -> notify.Budget: datagrams it may still be read of
        self.paused = {}        # fd -> when it is read again (out of the table until then)

    def for_service(self, name):
        """The NOTIFY_SOCKET value for the service, its socket made now if need be.
        Raises OSError when it cannot be made."""
        if name in self.held:
            return self.addresses[name]
        address = abstract_name(os.getpid(), self.tag, name)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC |
                             socket.SOCK_NONBLOCK)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
            try:
                sock.bind("\0" + address)
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
                # another supervisor of this network namespace has the name (one with
                # our pid and control socket path, in another PID namespace): a unique
                # one, which a re-exec will not keep
                address += "." + os.urandom(4).hex()
                sock.bind("\0" + address)
            self.fds.add(sock.fileno(), self._on_readable)
        except BaseException:
            sock.close()
            raise
        self.held[name] = sock
        self.names_by_fd[sock.fileno()] = name
        self.addresses[name] = "@" + address
        return self.addresses[name]

    def keep_across_exec(self):
        """Before a re-exec: every socket inheritable, and ``[(name, fd, address)]`` for
        the successor's ``adopt``."""
        kept = []
        for name, sock in sorted(self.held.items()):
            os.set_inheritable(sock.fileno(), True)
            kept.append((name, sock.fileno(), self.addresses[name][1:]))
        return kept

    def close_on_exec(self):
        for sock in self.held.values():
            os.set_inheritable(sock.fileno(), False)

    def adopt(self, handed, services):
        """After a re-exec: take back the sockets ``keep_across_exec`` listed for the
        services (name -> service) that still use one; close the others."""
        for name, fd, address in handed:
            service = services.get(name)
            wanted = service is not None and name not in self.held and \
                wants_notify_socket(service.spec)
            try:
                os.set_inheritable(fd, False)
                if not wanted:
                    os.close(fd)
                    continue
                sock = socket.socket(fileno=fd)
            except OSError:
                continue
            try:
                self.fds.add(fd, self._on_readable)
            except OSError:
                sock.close()
                continue
            self.held[name] = sock
            self.names_by_fd[fd] = name
            self.addresses[name] = "@" + address

    def release(self, name):
        sock = self.held.pop(name, None)
        if sock is None:
            return
        self.names_by_fd.pop(sock.fileno(), None)
        self.addresses.pop(name, None)
        self.budgets.pop(sock.fileno(), None)
        if self.paused.pop(sock.fileno(), None) is None:
            self.fds.remove(sock.fileno())
        sock.close()

    def _on_readable(self, fd, mask, now, wall):
        name, datagrams = self.receive(fd, now)
        for sender, data in datagrams:
            self.on_datagram(name, sender, data, now)

    def receive(self, fd, now=None):
        """Up to PER_WAKE datagrams, and no more than the socket's ``Budget`` allows:
        ``(name, [((sender pid, sender uid), bytes or None)])``, the credentials the
        kernel's (pid 0, uid -1 if it gave none); None stands for a datagram dropped
        unread (truncated, or carrying descriptors).  A socket whose budget ran out is
        paused: out of the loop's table until READ_PAUSE seconds later (``expire``),
        what was sent meanwhile waiting in it."""
        name = self.names_by_fd.get(fd)
        sock = self.held.get(name)
        got = []
        if sock is None:
            return name, got
        now = time.monotonic() if now is None else now
        budget = self.budgets.get(fd)
        if budget is None:
            budget = self.budgets[fd] = Budget(now, READ_RATE, READ_BURST)
        allowed = min(PER_WAKE, int(budget.available(now)))
        for _ in range(allowed):
            try:
                data, ancillary, flags, _ = sock.recvmsg(DATAGRAM_MAX, _ANCILLARY)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
            pid, uid = 0, -1
            for level, kind, payload in ancillary:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS and \
                        len(payload) >= _CREDS.size:
                    pid, uid, _gid = _CREDS.unpack_from(payload)
                elif level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    for (passed,) in struct.iter_unpack("i", payload[:len(payload) // 4 * 4]):
                        try:
                            os.close(passed)
                        except OSError:
                            pass
                    flags |= socket.MSG_CTRUNC
            if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
                data = None
            got.append(((pid, uid), data))
        budget.take(now, len(got))
        if len(got) == allowed and budget.available(now) < 1.0 and fd not in self.paused:
            self.fds.remove(fd)                  # over budget: a flood, left for later
            self.paused[fd] = now + READ_PAUSE
        return name, got

    def next_deadline(self):
        """When the first paused socket is to be read again (None: none is paused)."""
        return min(self.paused.values()) if self.paused else None

    def expire(self, now):
        """Put the paused sockets whose pause is over back in the loop's table."""
        for fd, until in list(self.paused.items()):
            if now >= until:
                del self.paused[fd]
                if fd in self.names_by_fd:
                    self.fds.add(fd, self._on_readable)

    def names(self):
        return sorted(self.held)
