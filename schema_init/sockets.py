"""Socket activation: the listening sockets of ``listen=`` services, held by schema-init.

A service with ``listen=`` lines gets its sockets from schema-init, as fds 3, 4, ... with
``LISTEN_FDS``, ``LISTEN_PID`` and ``LISTEN_FDNAMES`` (the protocol of sd_listen_fds(3)).
The sockets are made at the service's first spawn and kept by schema-init across its
restarts: a client that connects while the daemon restarts waits in the backlog instead
of being refused. They are closed when the service's listen= or socket_mode= lines change
(at its next spawn) or when a reload removes the service.
"""

import errno
import os
import _socket as socket   # the C module: socket.py loads selectors and enum (~1 MB in PID 1)

BACKLOG = 128


def owner(user, group):
    """(uid, gid) for socket_user=/socket_group= (-1: unchanged).  Raises OSError for a
    name the machine does not know."""
    from . import accounts
    uid = gid = -1
    if user:
        found = accounts.user(user)
        if found is None:
            raise OSError("socket_user: unknown user '%s'" % user)
        uid, gid = found[1], found[2]
    if group:
        gid = accounts.group_id(group)
        if gid is None:
            raise OSError("socket_group: unknown group '%s'" % group)
    return uid, gid


def _bind_unix(kind, path, mode, ids=(-1, -1)):
    sock = socket.socket(socket.AF_UNIX, kind | socket.SOCK_CLOEXEC)
    try:
        try:
            os.unlink(path)             # a stale socket file from an earlier run
        except FileNotFoundError:
            pass
        except IsADirectoryError:
            raise OSError("%s is a directory" % path) from None
        os.makedirs(os.path.dirname(path) or "/", 0o755, exist_ok=True)
        sock.bind(path)
        os.chmod(path, mode)
        if ids != (-1, -1):
            os.chown(path, *ids)
    except BaseException:
        sock.close()
        raise
    return sock


def _bind_inet(kind, host, port):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if not host:
        family, host = socket.AF_INET6, "::"      # every address, IPv4 mapped too
    try:
        sock = socket.socket(family, kind | socket.SOCK_CLOEXEC)
    except OSError as exc:
        if family == socket.AF_INET6 and host == "::" and exc.errno == errno.EAFNOSUPPORT:
            return _bind_inet(kind, "0.0.0.0", port)      # a kernel without IPv6
        raise
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            try:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            except OSError:
                pass
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        no_ipv6 = exc.errno in (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL)
        if family == socket.AF_INET6 and host == "::" and no_ipv6:
            return _bind_inet(kind, "0.0.0.0", port)      # a kernel without IPv6
        raise
    return sock


def open_listen(listen, mode, ids=(-1, -1)):
    """A listening socket for one parsed listen= value (config.parse_listen); a unix
    socket file gets MODE and the owner IDS (uid, gid; -1 leaves one as it is)."""
    kind, address = listen
    stream = kind in ("unix-stream", "tcp")
    sock_type = socket.SOCK_STREAM if stream else socket.SOCK_DGRAM
    if kind.startswith("unix-"):
        sock = _bind_unix(sock_type, address, mode, ids)
    else:
        sock = _bind_inet(sock_type, address[0], address[1])
    if stream:
        try:
            sock.listen(BACKLOG)
        except OSError:
            sock.close()
            raise
    return sock


def describe(listen):
    kind, address = listen
    if kind.startswith("unix-"):
        return "%s:%s" % (kind[5:], address)
    host, port = address
    return "%s:%s%d" % (kind, ("[%s]:" % host if ":" in host else host + ":") if host else "",
                        port)


class Sockets:
    """Every service's sockets: {name: (the spec's listen, socket_mode, socket_user,
    socket_group), [socket])}."""

    def __init__(self):
        self.held = {}

    def for_service(self, name, listen, mode, user="", group=""):
        """The service's sockets, made now if it has none or its lines changed.  Raises
        OSError naming the listen= value (or the owner) that could not be made."""
        want = (tuple(listen), mode, user, group)
        held = self.held.get(name)
        if held is not None and held[0] == want:
            return held[1]
        self.release(name)
        ids = owner(user, group)
        made = []
        for value in listen:
            try:
                made.append(open_listen(value, mode, ids))
            except OSError as exc:
                for sock in made:
                    sock.close()
                raise OSError("listen=%s: %s" % (describe(value), exc.strerror or exc)) \
                    from None
        self.held[name] = (want, made)
        return made

    def release(self, name):
        held = self.held.pop(name, None)
        if held is None:
            return
        for value, sock in zip(held[0][0], held[1]):
            sock.close()
            if value[0].startswith("unix-"):
                try:
                    os.unlink(value[1])
                except OSError:
                    pass

    def names(self):
        return sorted(self.held)
