"""Socket activation: the listening sockets of ``listen=`` services, held by schema-init.

A service with ``listen=`` lines gets its sockets from schema-init, as fds 3, 4, ... with
``LISTEN_FDS``, ``LISTEN_PID`` and ``LISTEN_FDNAMES`` (the protocol of sd_listen_fds(3)).
The sockets are made at the service's first spawn and kept by schema-init across its
restarts: a client that connects while the daemon restarts waits in the backlog instead
of being refused. They are closed when the service's listen= or socket_mode= lines change
(at its next spawn) or when a reload removes the service. A listen_on_demand=1 service's
sockets are made when it could start, and watched by the loop (epoll) until the first
connection or datagram spawns it; they are not watched while it runs. Across a
``schema-ctl reexec`` they stay open (inheritable for the exec) and are taken back by
the successor (``keep_across_exec``, ``adopt``), so the backlog survives that too.
"""

import errno
import os
import _socket as socket   # the C module: socket.py loads selectors and enum (~1 MB in PID 1)

BACKLOG = 128


def owner(user, group):
    """(uid, gid) for socket_user=/socket_group= (-1: unchanged).  Raises OSError for a
    name the machine does not know."""
    from schema_init.lib import accounts
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
        if not stream:
            # the kernel records a sender's credentials only while the receiving socket
            # asks for them: a datagram queued before the daemon's first start (to
            # /dev/log, say) would otherwise arrive without its pid
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
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
    socket_group), [socket])}; and {fd: name} of those the loop watches for a
    listen_on_demand service (``watch``: readable means a connection or a datagram,
    said to ``on_connection(name, now)``).  ``fds``: the loop's table (``fdtable``)."""

    def __init__(self, fds=None, on_connection=None):
        self.held = {}
        self.fds = fds
        self.on_connection = on_connection
        self.watched = {}

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

    def watch(self, name):
        """Put the service's sockets in the loop's epoll set (once)."""
        for sock in self.held.get(name, ((), ()))[1]:
            fd = sock.fileno()
            if fd not in self.watched:
                self.fds.add(fd, self._on_readable)
                self.watched[fd] = name

    def _on_readable(self, fd, mask, now, wall):
        self.on_connection(self.watched[fd], now)

    def unwatch(self, name):
        for fd in [fd for fd, owner_ in self.watched.items() if owner_ == name]:
            del self.watched[fd]
            self.fds.remove(fd)

    def keep_across_exec(self):
        """Before a re-exec: every socket made inheritable, and what the successor needs
        to take it back: ``[(name, fd, description, mode, user, group)]``."""
        kept = []
        for name, ((listen, mode, user, group), socks) in sorted(self.held.items()):
            for value, sock in zip(listen, socks):
                os.set_inheritable(sock.fileno(), True)
                kept.append((name, sock.fileno(), describe(value), mode, user, group))
        return kept

    def close_on_exec(self):
        """The re-exec failed: the sockets are close-on-exec again."""
        for _, socks in self.held.values():
            for sock in socks:
                os.set_inheritable(sock.fileno(), False)

    def adopt(self, handed, specs):
        """After a re-exec: the sockets ``keep_across_exec`` listed, taken back for each
        service whose spec (``specs``: name -> service) still has the same listen= and
        socket_*= lines, in the same order; any other is closed (a changed service makes
        its sockets again at its next spawn)."""
        by_name = {}
        for name, fd, description, mode, user, group in handed:
            by_name.setdefault(name, []).append((fd, description, (mode, user, group)))
        for name, entries in by_name.items():
            service = specs.get(name)
            fds = [fd for fd, _, _ in entries]
            spec = service.spec if service is not None else None
            alike = spec is not None and name not in self.held and \
                [describe(v) for v in spec.listen] == [d for _, d, _ in entries] and \
                all(owner_ == (spec.socket_mode, spec.socket_user, spec.socket_group)
                    for _, _, owner_ in entries)
            socks = []
            for fd in fds:
                try:
                    os.set_inheritable(fd, False)
                    if alike:
                        socks.append(socket.socket(fileno=fd))
                    else:
                        os.close(fd)
                except OSError:
                    alike = False
            if alike and len(socks) == len(fds):
                self.held[name] = ((tuple(spec.listen), spec.socket_mode, spec.socket_user,
                                    spec.socket_group), socks)
            else:
                for sock in socks:
                    sock.close()

    def release(self, name):
        self.unwatch(name)
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
