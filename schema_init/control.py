"""The control socket, server side: the wire protocol and every command (§12).

Framing (kept from the original): the client sends one request line; the server
answers with reply lines, then a line holding a single ``.``, then closes.

What is fixed (C1, C2, C3): clients are served inside the event loop without ever
blocking it.  Every fd is non-blocking; a request is at most ``MAX_REQUEST`` bytes; a
client that has not sent its line within ``CLIENT_DEADLINE`` seconds, or does not take
its reply within that time, is dropped.  Replies are built whole and sent as the
socket accepts them.  JSON is escaped properly.
"""

import os
import _socket as socket   # the C module: socket.py loads selectors and enum (~1 MB in PID 1)
import struct

from . import _fastloop, schema

MAX_REQUEST = 4096
CLIENT_DEADLINE = 2.0
MAX_CLIENTS = 64
READ_ONLY_VERBS = ("status", "list", "timing")
TERMINATOR = ".\n"


def json_string(text):
    out = ['"']
    for ch in text:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ch < " " or ch == "\x7f":
            out.append("\\u%04x" % ord(ch))
        elif "\ud800" <= ch <= "\udfff":
            out.append("\\ufffd")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


# --- formats (§12.4); extra facts only where a service has a reason to show ------------

def format_status(supervisor):
    services = supervisor.ordered()
    lines = ["services: %d  groups: %d" % (len(services), len(supervisor.graph.groups))]
    for s in services:
        line = "  %-24s  pid=%-6d  state=%-14s  restarts=%d" % (
            s.name, s.pid, schema.state_name(s.state), s.restarts)
        if s.reason:
            line += "  (%s)" % s.reason
        lines.append(line)
    return lines


def format_status_json(supervisor):
    services = supervisor.ordered()
    lines = ["{", '  "services_count": %d,' % len(services),
             '  "groups_count": %d,' % len(supervisor.graph.groups), '  "services": [']
    for i, s in enumerate(services):
        lines += ["    {", '      "name": %s,' % json_string(s.name),
                  '      "pid": %d,' % s.pid,
                  '      "state": "%s",' % schema.state_name(s.state)]
        if s.reason:
            lines.append('      "reason": %s,' % json_string(s.reason))
        lines.append('      "restarts": %d' % s.restarts)
        lines.append("    }," if i < len(services) - 1 else "    }")
    lines += ["  ]", "}"]
    return lines


def format_status_kv(supervisor):
    services = supervisor.ordered()
    lines = ["services_count=%d" % len(services), "groups_count=%d" % len(supervisor.graph.groups)]
    for s in services:
        lines += ["service.%s.pid=%d" % (s.name, s.pid),
                  "service.%s.state=%s" % (s.name, schema.state_name(s.state)),
                  "service.%s.restarts=%d" % (s.name, s.restarts)]
        if s.reason:
            lines.append("service.%s.reason=%s" % (s.name, s.reason.replace("\n", " ")))
    return lines


def format_timing(supervisor, kernel_to_init):
    lines = ["kernel \u2192 PID 1:            %.3fs" % kernel_to_init]
    for s in supervisor.ordered():
        if s.stable_time is not None:
            lines.append("  %-24s %.3fs" % (s.name, s.stable_time))
    return lines


def dispatch(request, uid, supervisor, actions, now, wall):
    """One request -> reply lines (without the terminator).

    ``actions`` provides what the supervisor cannot do itself: ``reboot()``,
    ``poweroff()``, ``request_reexec()`` and ``kernel_to_init``.
    """
    first = request.split(" ", 1)[0] if request else ""
    if uid != 0 and first not in READ_ONLY_VERBS:
        return ["err: '%s' requires root (uid %d has read-only access)" % (request, uid)]
    if request.startswith("status"):
        option = request[6:].strip(" ")
        if option == "--json":
            return format_status_json(supervisor)
        if option == "--kv":
            return format_status_kv(supervisor)
        return format_status(supervisor)
    if request.startswith("pet "):
        return supervisor.cmd_pet(request[4:], now)
    if request == "list":
        return [s.name for s in supervisor.ordered()]
    for prefix, command in (("start ", supervisor.cmd_start), ("up ", supervisor.cmd_start),
                            ("stop ", supervisor.cmd_stop), ("down ", supervisor.cmd_stop),
                            ("restart ", supervisor.cmd_restart)):
        if request.startswith(prefix):
            return command(request[len(prefix):], now)
    if request.startswith("reset"):
        return supervisor.cmd_reset(request[5:].lstrip(" "), now)
    if request.startswith("add "):
        return supervisor.cmd_add(request[4:], now, wall)
    if request.startswith("reload"):
        return supervisor.cmd_reload(request[6:].strip(" ") == "--evict", now, wall)
    if request == "timing":
        return format_timing(supervisor, actions.kernel_to_init)
    if request == "reboot":
        actions.reboot()
        return ["ok: rebooting"]
    if request == "poweroff":
        actions.poweroff()
        return ["ok: powering off"]
    if request == "reexec":
        return actions.request_reexec()
    return ["err: unknown: %s" % request]


# --- the socket ------------------------------------------------------------------------

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
        from . import accounts
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
        body = "".join(line + "\n" for line in lines) + TERMINATOR
        client.reply = body.encode("utf-8", "replace")
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
