"""Socket activation (listen=): the key's parsing (pure) and real sockets passed to real
services by a real supervisor (process tier): LISTEN_FDS/LISTEN_PID/LISTEN_FDNAMES,
fds 3.., kept across a restart, released by a reload that removes the service."""

import os
import signal
import socket
import sys

import pytest

from harness import Supervised
from schema_init.core import config



@pytest.mark.parametrize("value,expected", [
    ("/run/x.sock", ("unix-stream", "/run/x.sock")),
    ("stream:/run/x.sock", ("unix-stream", "/run/x.sock")),
    ("dgram:/dev/log", ("unix-dgram", "/dev/log")),
    ("tcp:8080", ("tcp", ("", 8080))),
    ("tcp:127.0.0.1:22", ("tcp", ("127.0.0.1", 22))),
    ("udp:[::1]:514", ("udp", ("::1", 514))),
])
def test_listen_values(value, expected):
    assert config.parse_listen(value) == (expected, None)


@pytest.mark.parametrize("value,reason", [
    ("x.sock", "give /path"), ("dgram:relative", "absolute path"), ("tcp:0", "port"),
    ("tcp:70000", "port"), ("tcp:http", "port"), ("tcp:[::1]80", "[ADDR]:PORT"),
    ("sctp:1", "unknown socket kind"), ("tcp:１２", "port"),
])
def test_bad_listen_values_say_why(value, reason):
    listen, why = config.parse_listen(value)
    assert listen is None and reason in why


def test_listen_lines_in_a_file():
    spec, diags = config.parse_service("/s/web.svc", (
        b"exec=/bin/true\nlisten=tcp:8080\nlisten=/run/web.sock\nlisten=tcp:nope\n"
        b"listen=tcp:8080\nsocket_mode=0600\n"))
    assert spec.listen == (("tcp", ("", 8080)), ("unix-stream", "/run/web.sock"))
    assert spec.socket_mode == 0o600
    text = [d.format() for d in diags]
    assert text == [
        "/s/web.svc:4: warning: listen: 'tcp:nope': the port must be a number from 1 to "
        "65535; this line is ignored",
        "/s/web.svc:5: warning: listen: more than 16 listen lines or one given twice; this "
        "one is ignored"], text


def test_every_address_listens_on_ipv4_too():
    from schema_init.pid1 import sockets
    port = free_port()
    held = sockets.Sockets()
    try:
        [sock] = held.for_service("web", [("tcp", ("", port))], 0o666)
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        assert held.for_service("web", [("tcp", ("", port))], 0o666)[0] is sock   # kept
    finally:
        held.release("web")
    assert held.names() == []


def test_bad_socket_mode_falls_back():
    spec, diags = config.parse_service("/s/a.svc", b"exec=/bin/true\nsocket_mode=999\n")
    assert spec.socket_mode == 0o666
    assert "not an octal file mode" in diags[0].format()


SERVER_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data",
                           "listen_server.py")


def serve_svc(listen_lines, extra=""):
    return ("exec=%s\nargs=%s\nstable_secs=0\n%s%s" % (
        sys.executable, SERVER_PATH,
        "".join("listen=%s\n" % line for line in listen_lines), extra))


def ask(path=None, port=None, timeout=10.0):
    family = socket.AF_UNIX if path else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path or ("127.0.0.1", port))
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(200)
            if not chunk:
                break
            data += chunk
    return data.decode().split(" ", 3)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def supervise(tmp_path):
    started = []

    def make(files):
        instance = Supervised(tmp_path, files)
        started.append(instance)
        return instance.start()
    yield make
    for instance in started:
        instance.stop()


@pytest.mark.process
def test_sockets_are_passed_and_survive_a_restart(supervise, tmp_path):
    path = str(tmp_path / "web.sock")
    port = free_port()
    s = supervise({"web.svc": serve_svc([path, "tcp:127.0.0.1:%d" % port],
                                        "socket_mode=0600\n")})
    s.wait_state("web", "FUNDAMENTAL")
    pid, count, names, extra = ask(path)
    assert (count, names) == ("2", "web:web")
    assert extra.strip() == "[]"                      # nothing else leaked into it
    assert ask(port=port)[0] == pid                   # fd 4, the TCP one
    assert os.stat(path).st_mode & 0o777 == 0o600
    inode = os.stat(path).st_ino
    # a client that connects while the daemon is down waits in the backlog: the socket
    # is schema-init's, not the daemon's
    s.ctl("stop", "web")
    s.wait_state("web", ("EXCISED", "PERFECT", "DORMANT"))
    waiting = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    waiting.settimeout(20)
    waiting.connect(path)                              # accepted by the kernel, queued
    s.ctl("start", "web")
    reply = waiting.recv(200).decode().split(" ")
    waiting.close()
    assert reply[0] != pid and os.stat(path).st_ino == inode


@pytest.mark.process
def test_each_socket_passes_its_own_name(supervise, tmp_path):
    """LISTEN_FDNAMES as systemd builds it (FileDescriptorName=, by default the socket
    unit's name): libvirtd finds its three sockets by name, and refuses to run when a
    name is not one it knows ("activation file descriptors are unclaimed")."""
    path, ro = str(tmp_path / "rw.sock"), str(tmp_path / "ro.sock")
    port = free_port()
    s = supervise({"virt.svc": serve_svc([path + " name=virt.socket",
                                         ro + " mode=0666 name=virt-ro.socket",
                                         "tcp:127.0.0.1:%d" % port])})
    s.wait_state("virt", "FUNDAMENTAL")
    _pid, count, names, _extra = ask(ro)
    assert (count, names) == ("3", "virt.socket:virt-ro.socket:virt")


@pytest.mark.process
def test_a_service_that_stops_for_good_closes_its_sockets(supervise, tmp_path):
    """A daemon that cannot start (EXCISED, or DORMANT after its restart budget) must
    not leave PID 1 holding its socket: a client would wait on a backlog nothing takes
    (systemd fails the socket unit with the service's start limit).  A start makes the
    socket again."""
    path = str(tmp_path / "dead.sock")
    port = free_port()
    s = supervise({"dead.svc": "exec=/bin/false\nno_restart=1\nlisten=%s\n"
                               "listen=tcp:127.0.0.1:%d\n" % (path, port)})
    s.wait_state("dead", "EXCISED", 20)
    s.wait(lambda: not os.path.exists(path), 10, "the socket file removed")
    with socket.socket() as client, pytest.raises(ConnectionRefusedError):
        client.settimeout(5)
        client.connect(("127.0.0.1", port))
    s.write("dead.svc", serve_svc([path, "tcp:127.0.0.1:%d" % port]))
    s.ctl("reload")
    s.ctl("start", "dead")
    s.wait_state("dead", "FUNDAMENTAL", 20)
    assert ask(path)[1] == "2" and ask(port=port)[1] == "2"


@pytest.mark.process
def test_a_socket_that_cannot_be_made_fails_the_spawn_naming_it(supervise):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    try:
        s = supervise({"web.svc": serve_svc(["tcp:127.0.0.1:%d" % port])})
        s.wait(lambda: "listen=tcp:127.0.0.1:%d" % port in s.ctl("status", "web").stdout, 10,
               "the refusal in status")
        assert s.state("web") != "FUNDAMENTAL"
    finally:
        taken.close()


def socket_inodes(pid):
    """The inodes of the sockets process PID holds open (its /proc/PID/fd links)."""
    inodes = set()
    directory = "/proc/%d/fd" % pid
    for fd in os.listdir(directory):
        try:
            target = os.readlink(os.path.join(directory, fd))
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def listening_inodes(path, port):
    """The inodes of the unix socket bound to PATH (/proc/net/unix) and of the TCP socket
    listening on 127.0.0.1:PORT (/proc/net/tcp)."""
    with open("/proc/net/unix") as f:
        unix = [int(fields[6]) for fields in (line.split() for line in f)
                if len(fields) > 7 and fields[7] == path]
    with open("/proc/net/tcp") as f:
        tcp = [int(fields[9]) for fields in (line.split() for line in f)
               if fields[1] == "0100007F:%04X" % port and fields[3] == "0A"]
    return unix + tcp


@pytest.mark.process
def test_reload_without_the_service_releases_its_socket(supervise, tmp_path):
    """The sockets schema-init made for a service are closed in schema-init (not only
    the file unlinked) when a reload removes the service: no fd of the supervisor
    holds them, and once the service (left running unmanaged) is gone too the port
    refuses connections and can be bound again."""
    path = str(tmp_path / "gone.sock")
    port = free_port()
    s = supervise({"gone.svc": serve_svc([path, "tcp:127.0.0.1:%d" % port]),
                   "keep.svc": "exec=/bin/sleep\nargs=1000\nstable_secs=0\n"})
    s.wait_state("gone", "FUNDAMENTAL")
    service = int(s.status()["gone"]["pid"])
    made = listening_inodes(path, port)
    assert len(made) == 2 and set(made) <= socket_inodes(s.proc.pid), made
    os.unlink(os.path.join(s.services, "gone.svc"))
    s.ctl("reload")
    s.wait(lambda: not socket_inodes(s.proc.pid) & set(made), 10,
           "the supervisor's fds of the sockets closed")
    assert not os.path.exists(path)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
        with pytest.raises(OSError):
            c.connect(path)
    os.kill(service, signal.SIGTERM)                  # the last other holder
    s.wait(lambda: not os.path.exists("/proc/%d" % service), 10, "the service gone")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    with socket.socket() as again:
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.1", port))
        again.listen(1)
    assert s.state("keep") == "FUNDAMENTAL"


@pytest.mark.process
@pytest.mark.skipif(os.geteuid() != 0, reason="chown of the socket file needs root")
def test_socket_owner_and_an_unknown_owner_refused(supervise, tmp_path):
    import pwd
    import grp
    nobody = pwd.getpwnam("nobody")
    group = grp.getgrgid(nobody.pw_gid).gr_name
    path = str(tmp_path / "owned.sock")
    s = supervise({
        "owned.svc": serve_svc([path], "socket_user=nobody\nsocket_group=%s\n"
                               "socket_mode=0660\n" % group),
        "nobodys.svc": serve_svc([str(tmp_path / "x.sock")], "socket_user=no-such-user\n")})
    s.wait_state("owned", "FUNDAMENTAL")
    st = os.stat(path)
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (nobody.pw_uid, nobody.pw_gid, 0o660)
    s.wait(lambda: "socket_user: unknown user 'no-such-user'" in s.ctl("status", "nobodys")
           .stdout, 10, "the refusal naming the owner")
    assert not os.path.exists(str(tmp_path / "x.sock"))


@pytest.mark.process
def test_every_listen_socket_exists_before_any_service_starts(supervise, tmp_path):
    """As systemd makes its sockets before its services: a service whose dependency is
    never ready has not started, yet its socket is there and a datagram sent to it now
    waits for it (a program that logs to /dev/log before the journal's sink starts)."""
    import stat
    from harness import daemon
    path = str(tmp_path / "late.sock")
    s = supervise({"never.svc": daemon(stable_secs=3600),
                   "late.svc": "exec=/bin/sleep\nargs=1000\nlisten=dgram:%s\ndep=never\n"
                               % path})
    s.wait_state("never", "FULL_TRUST")
    assert stat.S_ISSOCK(os.lstat(path).st_mode)
    sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sender.sendto(b"sent before the start", path)       # queued, not refused
    sender.close()
    assert s.status()["late"]["pid"] in (0, "0")           # never started


# --- options after the address (issue 21: systemd's per-socket settings) ---------------

@pytest.mark.parametrize("value,expected", [
    ("tcp:[::]:111 ipv6only", ("tcp", ("::", 111), (("ipv6only", True),))),
    ("udp:111 ipv6only", ("udp", ("", 111), (("ipv6only", True),))),
    ("/run/x.sock group=adm mode=0660 user=x",
     ("unix-stream", "/run/x.sock", (("mode", 0o660), ("user", "x"), ("group", "adm")))),
    ("dgram:/dev/log\tmode=666", ("unix-dgram", "/dev/log", (("mode", 0o666),))),
    ("/run/a b.sock", ("unix-stream", "/run/a b.sock")),      # a blank in a path, as ever
    ("tcp:16509 name=libvirtd-tcp.socket",
     ("tcp", ("", 16509), (("name", "libvirtd-tcp.socket"),))),
    ("/run/x name=n mode=0600", ("unix-stream", "/run/x", (("mode", 0o600), ("name", "n")))),
])
def test_listen_values_with_options(value, expected):
    from schema_init.pid1 import sockets
    assert config.parse_listen(value) == (expected, None)
    assert config.parse_listen(sockets.describe(expected)) == (expected, None)


@pytest.mark.parametrize("value,reason", [
    ("tcp:0.0.0.0:111 ipv6only", "ipv6only is for"), ("/run/x ipv6only", "ipv6only is for"),
    ("tcp:111 mode=0600", "a unix socket file's"), ("/run/x mode=9", "not an octal"),
    ("/run/x user=a user=b", "given twice"), ("tcp:111 bogus", "'bogus' is not an option"),
    ("/run/x group=bad/name", "group=bad/name"),
    ("/run/x name=a:b", "without ':'"), ("/run/x name=" + "n" * 256, "1 to 255"),
    ("/run/x name=caf\u00e9", "printable ASCII"),
])
def test_bad_listen_options_say_why(value, reason):
    listen, why = config.parse_listen(value)
    assert listen is None and reason in why, why


def test_ipv6only_lets_an_ipv6_socket_share_its_port_with_ipv4():
    """rpcbind.socket's BindIPv6Only=ipv6-only: [::]:111 beside 0.0.0.0:111."""
    from schema_init.pid1 import sockets
    port = free_port()
    held = sockets.Sockets()
    try:
        v4, v6 = held.for_service("rpc", [("tcp", ("0.0.0.0", port)),
                                          ("tcp", ("::", port), (("ipv6only", True),))], 0o666)
        assert v6.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 1
        with socket.create_connection(("::1", port), timeout=5):
            pass
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        with pytest.raises(OSError, match="listen=tcp:\\[::\\]:%d: .*in use" % port):
            held.for_service("other", [("tcp", ("::", port))], 0o666)   # both families
    finally:
        held.release("rpc")
        held.release("other")


@pytest.mark.skipif(os.geteuid() != 0, reason="chown of the socket files needs root")
def test_each_socket_file_gets_its_own_mode_and_owner(tmp_path):
    import grp
    import pwd
    from schema_init.pid1 import sockets
    nobody = pwd.getpwnam("nobody")
    group = grp.getgrgid(nobody.pw_gid).gr_name
    own, admin, plain = (str(tmp_path / n) for n in ("own.sock", "admin.sock", "plain.sock"))
    held = sockets.Sockets()
    listen = [config.parse_listen(v)[0] for v in (
        "%s mode=0600 user=nobody" % own, "%s mode=0660 group=%s" % (admin, group), plain)]
    try:
        held.for_service("d", listen, 0o640, "", "")
        modes = [(os.stat(p).st_uid, os.stat(p).st_gid, os.stat(p).st_mode & 0o777)
                 for p in (own, admin, plain)]
        assert modes == [(nobody.pw_uid, nobody.pw_gid, 0o600), (0, nobody.pw_gid, 0o660),
                         (0, 0, 0o640)]
        kept = held.keep_across_exec()
        assert [k[2] for k in kept] == ["stream:%s mode=0600 user=nobody" % own,
                                        "stream:%s mode=0660 group=%s" % (admin, group),
                                        "stream:%s" % plain]
        with pytest.raises(OSError, match="user=no-such-user.*unknown user"):
            held.for_service("e", [config.parse_listen("%s/e.sock user=no-such-user"
                                                       % tmp_path)[0]], 0o666)
    finally:
        held.release("d")
    assert not os.path.exists(own) and not os.path.exists(plain)
