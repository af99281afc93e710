"""The control socket, server side: clients served inside the event loop.

The protocol (framing, verbs, limits, reply formats) is ``protocol``'s; this file only
moves bytes.  No client can block the loop: every fd is non-blocking; a request is at
most ``protocol.MAX_REQUEST`` bytes; a client that has not sent its line within
``protocol.CLIENT_DEADLINE`` seconds, or does not take its reply within that time, is
dropped.  Replies are built whole and sent as the socket accepts them.
"""

import os
import _socket as socket   # the C module: socket.py loads selectors and enum (~1 MB in PID 1)
import struct

from . import _fastloop, accounts, protocol
from .protocol import CLIENT_DEADLINE, MAX_CLIENTS, MAX_REQUEST


class Client:
    __slots__ = ("sock", "fd", "buffer", "reply", "deadline", "uid")

    def __init__(self, sock, uid, deadline):
        self.sock = sock
        self.fd = sock.fileno()
        self.buffer = b""
        self.reply = None        # bytes still to send, once the request is complete
        self.deadline = deadline
        self.uid = uid


def peer_uid(sock):
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        return struct.unpack("3i", creds)[1]
    except OSError:
        return -1


class Server:
    """The listening socket and its clients; the runner calls these on readiness."""

    def __init__(self, path, loop):
        self.path = path
        self.loop = loop
        self.clients = {}
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_NONBLOCK
                                  | socket.SOCK_CLOEXEC)
        old = os.umask(0o177)                  # never briefly world-accessible
        try:
            self.sock.bind(path)
        finally:
            os.umask(old)
        self.sock.listen(16)
        self._permissions()
        self.fd = self.sock.fileno()
        loop.register(self.fd)

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

    def accept(self, now):
        while True:
            try:
                fd, _ = self.sock._accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            os.set_inheritable(fd, False)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, 0, fd)
            if len(self.clients) >= MAX_CLIENTS:
                sock.close()
                continue
            sock.setblocking(False)
            client = Client(sock, peer_uid(sock), now + CLIENT_DEADLINE)
            self.clients[client.fd] = client
            self.loop.register(client.fd, _fastloop.READABLE)

    def readable(self, fd, now, handle):
        """Read what the client sent; when the line is complete call ``handle``."""
        client = self.clients.get(fd)
        if client is None or client.reply is not None:
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
            lines = handle(request, client.uid)
        self.respond(client, lines)

    def respond(self, client, lines):
        client.reply = protocol.encode_reply(lines)
        self.writable(client.fd)

    def writable(self, fd):
        client = self.clients.get(fd)
        if client is None or client.reply is None:
            return
        try:
            sent = client.sock.send(client.reply)
            client.reply = client.reply[sent:]
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            self.drop(client)
            return
        if not client.reply:
            self.drop(client)
            return
        self.loop.modify(fd, _fastloop.WRITABLE)

    def expire(self, now):
        for client in list(self.clients.values()):
            if now >= client.deadline:
                self.drop(client)

    def next_deadline(self):
        if not self.clients:
            return None
        return min(c.deadline for c in self.clients.values())

    def drop(self, client):
        self.clients.pop(client.fd, None)
        self.loop.unregister(client.fd)
        try:
            client.sock.close()
        except OSError:
            pass

    def close(self):
        for client in list(self.clients.values()):
            self.drop(client)
        self.loop.unregister(self.fd)
        self.sock.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass
