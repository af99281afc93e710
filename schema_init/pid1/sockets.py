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

A unix socket's file is made by PID 1 in directories other users may own, so nothing
about it goes by a name another user could change (docs/security.md, "listen=
sockets"): the directory is walked from / without following a link another user could
have made (``_open_directory``), only a stale socket of root's or the service's is
removed (``_clear_stale``: never a file, a link or another user's socket), and the mode
and owner are given where no one else can reach the file (``_bind_unix``).  No name is
looked up: a tcp:/udp: address is numeric (``config.parse_listen``).
"""

import errno
import os
import stat
import _socket as socket   # the C module: socket.py loads selectors and enum (~1 MB in PID 1)

from schema_init.core.config import listen_options, numeric_host

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


def _trusted_owners(ids, service_user=""):
    """The uids besides root whose directories may hold a service's socket files, and
    whose stale socket at a listen= path may be replaced: socket_user='s and user='s."""
    owners = {ids[0]} if ids[0] >= 0 else set()
    if service_user:
        from schema_init.lib import accounts
        found = accounts.user(service_user)
        if found is not None:
            owners.add(found[1])
    return frozenset(owners)


def _ours(st):
    """The file is root's, or this supervisor's (not PID 1: its own uid's)."""
    return st.st_uid == 0 or st.st_uid == os.geteuid()


def _directory_problem(st, owners):
    """Why a directory may not be on a listen= socket's path (None: it may): it must be
    root's (or a trusted owner's, OWNERS), and not writable by group or others unless
    sticky (where no one can remove or rename what another user made)."""
    if not _ours(st) and st.st_uid not in owners:
        return "is owned by uid %d" % st.st_uid
    if st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
        return "is writable by group or others"
    return None


def _root_held(st):
    """Only root can change what a name in this directory points to."""
    return _ours(st) and (not st.st_mode & 0o022 or bool(st.st_mode & stat.S_ISVTX))


_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _open_directory(path, owners, create):
    """``(fd, root_held)``: the directory PATH opened by walking it from / one name at a
    time, never following a symbolic link in a directory another user could have made it
    in, every directory on the way passing ``_directory_problem``; ``root_held`` when
    each of them is ``_root_held`` (then PATH names the same directory for any later
    system call).  Missing directories are made (0755, root's) when CREATE.  Raises
    OSError with the reason."""
    stack = [os.open("/", _DIRECTORY)]
    parts = [p for p in path.split("/") if p]
    walked = ""
    root_held = _root_held(os.fstat(stack[0]))
    links = 0
    try:
        while parts:
            part = parts.pop(0)
            if part == ".":
                continue
            if part == "..":
                if len(stack) > 1:
                    os.close(stack.pop())
                walked = os.path.dirname(walked)
                continue
            here = stack[-1]
            try:
                st = os.stat(part, dir_fd=here, follow_symlinks=False)
            except FileNotFoundError:
                if not create:
                    raise
                try:
                    os.mkdir(part, 0o755, dir_fd=here)
                except FileExistsError:
                    pass
                st = os.stat(part, dir_fd=here, follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                holder = os.fstat(here)
                if not _ours(holder) or holder.st_mode & 0o022:
                    raise OSError("%s/%s is a symbolic link in a directory not only root "
                                  "can change; not followed" % (walked, part))
                links += 1
                if links > 40:
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP))
                target = os.readlink(part, dir_fd=here)
                if target.startswith("/"):
                    while len(stack) > 1:
                        os.close(stack.pop())
                    walked = ""
                parts = [p for p in target.split("/") if p] + parts
                continue
            if not stat.S_ISDIR(st.st_mode):
                raise OSError("%s/%s is not a directory" % (walked, part))
            stack.append(os.open(part, _DIRECTORY, dir_fd=here))
            walked += "/" + part
            st = os.fstat(stack[-1])
            problem = _directory_problem(st, owners)
            if problem:
                raise OSError("directory %s %s" % (walked, problem))
            root_held = root_held and _root_held(st)
        fd = stack.pop()
        return fd, root_held
    finally:
        for other in stack:
            os.close(other)


def _clear_stale(directory, name, owners):
    """Make room for a socket file NAME in DIRECTORY (an fd): nothing there, or a stale
    socket of root's or a trusted owner's (OWNERS), which is removed.  Anything else (a
    file, a directory, a symbolic link, another user's socket) is never touched: OSError."""
    try:
        st = os.stat(name, dir_fd=directory, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        raise OSError("is a directory")
    if stat.S_ISLNK(st.st_mode):
        raise OSError("is a symbolic link (not followed, not removed)")
    if not stat.S_ISSOCK(st.st_mode):
        raise OSError("is a file, not a socket (of uid %d; not removed)" % st.st_uid)
    if not _ours(st) and st.st_uid not in owners:
        raise OSError("is a socket of uid %d, not root's or the service's (not removed)"
                      % st.st_uid)
    os.unlink(name, dir_fd=directory)        # a stale socket file from an earlier run


def _bind_unix(kind, path, mode, ids=(-1, -1), owners=frozenset()):
    """A unix socket bound at PATH with MODE and the owner IDS, made without following a
    link and without removing anything but a stale socket (``_clear_stale``).

    Where only root can change the names on the way (``_open_directory``'s root_held),
    it is bound at PATH itself with MODE as it is made (the umask), and chowned by its
    name in that directory.  Otherwise (a directory of the service's user, or a sticky
    one): bound in a private directory (root's, 0700) made beside it, given its mode and
    owner there where no one else can reach it, then linked to PATH, which fails rather
    than replace anything that appeared meanwhile."""
    directory_path, name = os.path.split(path)
    if not name or name in (".", ".."):
        raise OSError("%s is not a file name" % path)
    sock = socket.socket(socket.AF_UNIX, kind | socket.SOCK_CLOEXEC)
    directory = -1
    try:
        directory, root_held = _open_directory(directory_path or "/", owners, create=True)
        _clear_stale(directory, name, owners)
        if root_held:
            old = os.umask(0o777 & ~mode)
            try:
                sock.bind(path)
            finally:
                os.umask(old)
            if ids != (-1, -1):
                os.chown(name, ids[0], ids[1], dir_fd=directory, follow_symlinks=False)
        else:
            _bind_aside(sock, directory, name, mode, ids)
    except BaseException:
        sock.close()
        raise
    finally:
        if directory >= 0:
            os.close(directory)
    return sock


def _bind_aside(sock, directory, name, mode, ids):
    """``_bind_unix`` in a directory another user (the service's) may change: the socket
    is made in a private directory and linked into place."""
    private = ".schema-init-%s" % os.urandom(6).hex()
    os.mkdir(private, 0o700, dir_fd=directory)
    inner = -1
    try:
        inner = os.open(private, _DIRECTORY, dir_fd=directory)
        st = os.fstat(inner)
        if st.st_uid != os.geteuid() or st.st_mode & 0o777 != 0o700:
            raise OSError("the private directory was replaced while in use")
        if not os.path.isdir("/proc/self/fd"):
            raise OSError("needs /proc to make a socket in a directory not only root can "
                          "change")
        sock.bind("/proc/self/fd/%d/s" % inner)      # this directory, whatever its name now
        os.chmod("s", mode, dir_fd=inner)
        if ids != (-1, -1):
            os.chown("s", ids[0], ids[1], dir_fd=inner, follow_symlinks=False)
        os.link("s", name, src_dir_fd=inner, dst_dir_fd=directory, follow_symlinks=False)
    finally:
        if inner >= 0:
            try:
                os.unlink("s", dir_fd=inner)
            except OSError:
                pass
            os.close(inner)
        try:
            os.rmdir(private, dir_fd=directory)
        except OSError:
            pass


def _remove_socket(path, owners):
    """Remove the socket file at PATH as ``_clear_stale`` would (never a file, a link,
    a directory or another user's socket); best effort."""
    directory_path, name = os.path.split(path)
    try:
        directory, _ = _open_directory(directory_path or "/", owners, create=False)
    except OSError:
        return
    try:
        _clear_stale(directory, name, owners)
    except OSError:
        pass
    finally:
        os.close(directory)


def _bind_inet(kind, host, port, ipv6only=False):
    """An IPv4 or IPv6 socket bound to HOST:PORT; every address ("") is an IPv6 socket
    taking IPv4 too, unless IPV6ONLY (then [::]:PORT and 0.0.0.0:PORT are two sockets,
    as systemd's BindIPv6Only=ipv6-only makes them)."""
    if not numeric_host(host):           # config.parse_listen refuses it already
        raise OSError("%r is not a numeric address (no name is looked up)" % host)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if not host:
        family, host = socket.AF_INET6, "::"      # every address, IPv4 mapped too
    fallback = family == socket.AF_INET6 and host == "::" and not ipv6only
    try:
        sock = socket.socket(family, kind | socket.SOCK_CLOEXEC)
    except OSError as exc:
        if fallback and exc.errno == errno.EAFNOSUPPORT:
            return _bind_inet(kind, "0.0.0.0", port)      # a kernel without IPv6
        raise
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            try:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1 if ipv6only else 0)
            except OSError:
                if ipv6only:
                    raise
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        no_ipv6 = exc.errno in (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL)
        if fallback and no_ipv6:
            return _bind_inet(kind, "0.0.0.0", port)      # a kernel without IPv6
        raise
    return sock


def open_listen(listen, mode, ids=(-1, -1), owners=frozenset()):
    """A listening socket for one parsed listen= value (config.parse_listen); a unix
    socket file gets MODE (or the value's mode= option) and the owner IDS (uid, gid; -1
    leaves one as it is), in a directory of root's or of a uid of OWNERS
    (``_bind_unix``); an IPv6 one its ipv6only option."""
    kind, address = listen[0], listen[1]
    options = listen_options(listen)
    stream = kind in ("unix-stream", "tcp")
    sock_type = socket.SOCK_STREAM if stream else socket.SOCK_DGRAM
    if kind.startswith("unix-"):
        sock = _bind_unix(sock_type, address, options.get("mode", mode), ids, owners)
        if not stream:
            # the kernel records a sender's credentials only while the receiving socket
            # asks for them: a datagram queued before the daemon's first start (to
            # /dev/log, say) would otherwise arrive without its pid
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    else:
        sock = _bind_inet(sock_type, address[0], address[1], options.get("ipv6only", False))
    if stream:
        try:
            sock.listen(BACKLOG)
        except OSError:
            sock.close()
            raise
    return sock


def describe(listen):
    """A parsed listen= value as it is written (its options after it)."""
    kind, address = listen[0], listen[1]
    if kind.startswith("unix-"):
        text = "%s:%s" % (kind[5:], address)
    else:
        host, port = address
        text = "%s:%s%d" % (kind, ("[%s]:" % host if ":" in host else host + ":")
                            if host else "", port)
    for name, value in listen[2] if len(listen) > 2 else ():
        text += " ipv6only" if name == "ipv6only" else \
            " mode=%04o" % value if name == "mode" else " %s=%s" % (name, value)
    return text


def value_owner(listen, user, group):
    """(uid, gid) of one listen= value's socket file: its user=/group= options, else the
    service's socket_user=/socket_group= (``owner``)."""
    options = listen_options(listen)
    return owner(options.get("user", user), options.get("group", group))


class Sockets:
    """Every service's sockets: {name: (the spec's listen, socket_mode, socket_user,
    socket_group), [socket])}; and {fd: name} of those the loop watches for a
    listen_on_demand service (``watch``: readable means a connection or a datagram,
    said to ``on_connection(name, now)``).  ``fds``: the loop's table (``fdtable``)."""

    def __init__(self, fds=None, on_connection=None):
        self.held = {}
        self.owners = {}        # name -> uids besides root trusted with its socket files
        self.fds = fds
        self.on_connection = on_connection
        self.watched = {}

    def for_service(self, name, listen, mode, user="", group="", service_user=""):
        """The service's sockets, made now if it has none or its lines changed.  Raises
        OSError naming the listen= value (or the owner) that could not be made, and why.
        SERVICE_USER (user=) is, with socket_user=, whose directories and stale sockets
        are the service's own (``_bind_unix``)."""
        want = (tuple(listen), mode, user, group)
        held = self.held.get(name)
        if held is not None and held[0] == want:
            return held[1]
        self.release(name)
        ids = []
        for value in listen:
            try:
                ids.append(value_owner(value, user, group))
            except OSError as exc:
                if not listen_options(value).keys() & {"user", "group"}:
                    raise                        # the service's socket_user=/socket_group=
                raise OSError("listen=%s: %s" % (describe(value), exc)) from None
        owners = self.owners[name] = frozenset().union(
            _trusted_owners(owner(user, group), service_user),
            *(_trusted_owners(each) for each in ids))
        made = []
        for value, value_ids in zip(listen, ids):
            try:
                made.append(open_listen(value, mode, value_ids, owners))
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
        owners = self.owners.pop(name, None)
        for value, sock in zip(held[0][0], held[1]):
            sock.close()
            if value[0].startswith("unix-"):
                if owners is None:              # handed over by a re-exec
                    try:
                        owners = frozenset().union(*(
                            _trusted_owners(value_owner(each, held[0][2], held[0][3]))
                            for each in held[0][0]))
                    except OSError:
                        owners = frozenset()
                _remove_socket(value[1], owners)

    def names(self):
        return sorted(self.held)
