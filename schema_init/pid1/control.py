"""The control socket, server side: clients served inside the event loop.

The protocol (framing, verbs, limits, reply formats) is ``protocol``'s; this file only
moves bytes.  No client can block the loop: every fd is non-blocking; a request is at
most ``protocol.MAX_REQUEST`` bytes; a client that has not sent its line within
``protocol.CLIENT_DEADLINE`` seconds, or does not take its reply within that time, is
dropped.  Replies are built whole and sent as the socket accepts them; then the
server half-closes and reads whatever the client still sends until it closes, so a
client never sees a reset in place of its reply.

Fair sharing: a peer that is not root may hold at most ``PER_PEER_MAX`` connections,
and all such peers together leave ``ROOT_RESERVED`` slots free, so root (and so the
console) always gets in however many clients a member of the socket's group opens.
When ``accept`` fails for want of file descriptors (EMFILE), accepting pauses for
``ACCEPT_PAUSE`` seconds instead of spinning on the ever-ready listening socket.
"""

import os
import _socket as socket   # the C module: socket.py loads selectors and enum (~1 MB in PID 1)
import struct

from . import _fastloop
from schema_init.lib import accounts
from schema_init.core import protocol
from schema_init.core.protocol import CLIENT_DEADLINE, MAX_CLIENTS, MAX_REQUEST

ROOT_RESERVED = 16       # of MAX_CLIENTS, kept for root
PER_PEER_MAX = 8         # connections one user other than root may hold
ACCEPT_PAUSE = 0.25      # seconds without accepting after EMFILE and its kin
WAIT_LIMIT = 300.0       # seconds a client may wait for a reply given later (a reload)
BACKLOG = 128
_RESOURCE_ERRORS = (23, 24, 105, 12)     # ENFILE, EMFILE, ENOBUFS, ENOMEM


class Client:
    __slots__ = ("sock", "fd", "buffer", "reply", "deadline", "uid", "draining", "waiting")

    def __init__(self, sock, uid, deadline):
        self.sock = sock
        self.fd = sock.fileno()
        self.buffer = b""
        self.reply = None        # bytes still to send, once the request is complete
        self.deadline = deadline
        self.uid = uid
        self.draining = False    # reply sent and write side shut: read until the client closes
        self.waiting = False     # its reply comes later (protocol.LATER): out of the epoll set


def peer_uid(sock):
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        return struct.unpack("3i", creds)[1]
    except OSError:
        return -1


class Unavailable:
    """Stands in for the server while the socket cannot be made; the runner makes a
    new ``Server`` at ``retry_at``."""

    RETRY = 5.0

    def __init__(self, now):
        self.retry_at = now + self.RETRY

    def next_deadline(self):
        return self.retry_at

    def expire(self, now):
        pass

    def close(self):
        pass


class Server:
    """The listening socket and its clients, each in the loop's table (``fdtable``)
    with its handler; a complete request goes to ``handle(request, uid, now, wall)``,
    which returns the reply's lines."""

    retry_at = None

    def __init__(self, path, fds, handle):
        self.path = path
        self.fds = fds
        self.handle = handle
        self.serving = None          # the client whose request is being handled now
        self.clients = {}
        self.paused_until = None          # accepting paused after EMFILE
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_NONBLOCK
                                  | socket.SOCK_CLOEXEC)
        try:
            old = os.umask(0o177)              # never briefly world-accessible
            try:
                self.sock.bind(path)
            finally:
                os.umask(old)
            self.sock.listen(BACKLOG)
            self._permissions()
            self.fd = self.sock.fileno()
            fds.add(self.fd, self._on_listening)
        except BaseException:
            self.sock.close()
            raise

    def _permissions(self):
        mode = 0o600
        gid = accounts.group_id("schema")
        if gid is not None:
            try:
                os.chown(self.path, 0, gid)
                mode = 0o660
            except OSError:
                pass
        os.chmod(self.path, mode)

    def admits(self, uid):
        """Whether a new connection of ``uid`` fits the fair share."""
        if len(self.clients) >= MAX_CLIENTS:
            return False
        if uid == 0:
            return True
        others = [c for c in self.clients.values() if c.uid != 0]
        if len(others) >= MAX_CLIENTS - ROOT_RESERVED:
            return False
        return sum(1 for c in others if c.uid == uid) < PER_PEER_MAX

    def _on_listening(self, fd, mask, now, wall):
        self.accept(now)

    def _on_client(self, fd, mask, now, wall):
        if mask & _fastloop.WRITABLE:
            self.writable(fd)
        else:
            self.readable(fd, now, lambda request, uid: self.handle(request, uid, now, wall))

    def accept(self, now):
        while True:
            try:
                fd, _ = self.sock._accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in _RESOURCE_ERRORS:
                    self._pause(now)
                return
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, 0, fd)
            os.set_inheritable(fd, False)
            uid = peer_uid(sock)
            if not self.admits(uid):
                sock.close()
                continue
            sock.setblocking(False)
            client = Client(sock, uid, now + CLIENT_DEADLINE)
            self.clients[client.fd] = client
            self.fds.add(client.fd, self._on_client, _fastloop.READABLE)

    def _pause(self, now):
        if self.paused_until is None:
            self.fds.remove(self.fd)
        self.paused_until = now + ACCEPT_PAUSE

    def _resume(self):
        if self.paused_until is not None:
            self.paused_until = None
            self.fds.add(self.fd, self._on_listening)

    def readable(self, fd, now, handle):
        """Read what the client sent; when the line is complete call ``handle``."""
        client = self.clients.get(fd)
        if client is None:
            return
        if client.draining:
            self._drain(client)
            return
        if client.reply is not None:
            return
        try:
            data = client.sock.recv(MAX_REQUEST + 1 - len(client.buffer))
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.drop(client)
            return
        client.buffer += data
        newline = client.buffer.find(b"\n")
        if newline < 0 and data and len(client.buffer) <= MAX_REQUEST:
            return                                  # wait for the rest of the line
        if newline < 0 and not data and not client.buffer:
            self.drop(client)                       # connected and left: no reply
            return
        if newline < 0 and len(client.buffer) > MAX_REQUEST:
            lines = ["err: request longer than %d bytes" % MAX_REQUEST]
        else:
            line = client.buffer[:newline] if newline >= 0 else client.buffer
            request = line.rstrip(b"\r").decode("utf-8", "replace")
            self.serving = client
            try:
                lines = handle(request, client.uid)
            finally:
                self.serving = None
        client.buffer = b""
        if lines is protocol.LATER:
            return                                  # defer() took it: answered later
        self.respond(client, lines)

    def defer(self):
        """Called by the handler of the request being served: its reply will come later.
        Returns ``answer(lines)``; until then the client is out of the epoll set (what
        it sends meanwhile waits in its socket) and may wait ``WAIT_LIMIT`` seconds."""
        client = self.serving
        if client is None:
            return None
        client.waiting = True
        client.deadline += WAIT_LIMIT
        self.fds.remove(client.fd)

        def answer(lines):
            if self.clients.get(client.fd) is not client:
                return                              # dropped meanwhile (its deadline)
            client.waiting = False
            self.fds.add(client.fd, self._on_client, _fastloop.READABLE)
            self.respond(client, lines)
        return answer

    def respond(self, client, lines):
        client.reply = protocol.encode_reply(lines)
        self.writable(client.fd)

    def writable(self, fd):
        client = self.clients.get(fd)
        if client is None or client.reply is None or client.draining:
            return
        try:
            sent = client.sock.send(client.reply)
            client.reply = client.reply[sent:]
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            self.drop(client)
            return
        if client.reply:
            self.fds.modify(fd, _fastloop.WRITABLE)
            return
        try:
            client.sock.shutdown(socket.SHUT_WR)    # the reply is whole: say so
        except OSError:
            self.drop(client)
            return
        client.draining = True
        self.fds.modify(fd, _fastloop.READABLE)
        self._drain(client)

    def _drain(self, client):
        """Discard what the client still sends; drop it once it has closed."""
        for _ in range(16):
            try:
                data = client.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                break
            if not data:
                break
        self.drop(client)

    def expire(self, now):
        for client in list(self.clients.values()):
            if now >= client.deadline:
                self.drop(client)
        if self.paused_until is not None and now >= self.paused_until:
            self._resume()

    def next_deadline(self):
        deadlines = [c.deadline for c in self.clients.values()]
        if self.paused_until is not None:
            deadlines.append(self.paused_until)
        return min(deadlines) if deadlines else None

    def drop(self, client):
        self.clients.pop(client.fd, None)
        if not client.waiting:
            self.fds.remove(client.fd)
        try:
            client.sock.close()
        except OSError:
            pass
        self._resume()                    # an fd is free again

    def close(self):
        for client in list(self.clients.values()):
            self.drop(client)
        if self.paused_until is None:
            self.fds.remove(self.fd)
        self.paused_until = None
        self.sock.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass
