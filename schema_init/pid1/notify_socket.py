"""The NOTIFY_SOCKETs of notify=1 (and watchdog_sec=) services: thin socket I/O.

One abstract AF_UNIX datagram socket per service (``@schema-init/PID/TAG/notify/NAME``):
abstract, so a daemon started by chroot reaches it too.  SO_PASSCRED makes the kernel
attach the sender's pid to every datagram (SCM_CREDENTIALS), and only datagrams from a
process of the service are heard: its main pid, a process in its cgroup, in its
session, or a descendant of its main pid (``belongs``).  What a datagram means is
``notify``'s (pure) decision.

Bounded: a datagram is read into DATAGRAM_MAX bytes (a truncated one is dropped, so is
one carrying file descriptors, which are closed); reads never block; at most
``PER_WAKE`` datagrams are taken per wake-up of the loop, the rest on the next turn.
Across a re-exec the sockets stay open and are taken back (``keep_across_exec``,
``adopt``), so a datagram sent meanwhile waits in its socket.  Loaded only when a
service uses notify=1: PID 1 without it carries none of this.
"""

import errno
import os
import _socket as socket   # the C module: socket.py loads selectors and enum (~1 MB in PID 1)
import struct

from schema_init.core.config import wants_notify_socket
from schema_init.core.notify import DATAGRAM_MAX, abstract_name

PER_WAKE = 64                  # datagrams handled per wake-up, per socket
_CREDS = struct.Struct("3i")   # struct ucred: pid, uid, gid
_ANCILLARY = socket.CMSG_SPACE(_CREDS.size)
_ANCESTRY_MAX = 64             # parent links followed to find the main pid


def _stat_fields(pid):
    """(ppid, session) of a process from /proc/PID/stat, None if it is gone."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            data = f.read(1024)
    except (OSError, ValueError):
        return None
    rest = data[data.rfind(b")") + 2:].split()     # the name may hold blanks and ')'
    try:
        return int(rest[1]), int(rest[3])
    except (IndexError, ValueError):
        return None


def _in_cgroup(pid, cgroup_path):
    try:
        with open(os.path.join(cgroup_path, "cgroup.procs"), "rb") as f:
            return str(pid).encode() in f.read().split()
    except OSError:
        return False


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
        self.fds.remove(sock.fileno())
        sock.close()

    def _on_readable(self, fd, mask, now, wall):
        name, datagrams = self.receive(fd)
        for sender, data in datagrams:
            self.on_datagram(name, sender, data, now)

    def receive(self, fd):
        """Up to PER_WAKE datagrams: ``(name, [(sender pid, bytes or None)])``; None
        stands for a datagram dropped unread (truncated, or carrying descriptors)."""
        name = self.names_by_fd.get(fd)
        sock = self.held.get(name)
        got = []
        if sock is None:
            return name, got
        for _ in range(PER_WAKE):
            try:
                data, ancillary, flags, _ = sock.recvmsg(DATAGRAM_MAX, _ANCILLARY)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
            pid = 0
            for level, kind, payload in ancillary:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS and \
                        len(payload) >= _CREDS.size:
                    pid = _CREDS.unpack_from(payload)[0]
                elif level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    for (passed,) in struct.iter_unpack("i", payload[:len(payload) // 4 * 4]):
                        try:
                            os.close(passed)
                        except OSError:
                            pass
                    flags |= socket.MSG_CTRUNC
            if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
                data = None
            got.append((pid, data))
        return name, got

    def names(self):
        return sorted(self.held)
