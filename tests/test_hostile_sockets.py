"""listen= unix sockets against local users (docs/security.md, "listen= sockets"): PID 1
makes the socket files, so it must never remove another user's file at a listen= path,
never follow a link to chmod or chown something else, and never make a socket in a
directory a stranger controls; and no host name is looked up for tcp:/udp:.

The files are made by root and given to nobody (65534) or to a uid with no account
(12345): the tests need root and are skipped otherwise.
"""

import os
import socket
import stat
import sys

import pytest

from schema_init.core import config
from schema_init.pid1 import sockets

NOBODY = 65534
STRANGER = 12345               # a uid that is neither root, nor the service's, nor nobody
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chowns files: needs root")


def directory(path, uid=0, mode=0o755):
    os.makedirs(path, exist_ok=True)
    os.chown(path, uid, uid)
    os.chmod(path, mode)
    return path


def file_of(path, uid, text="secret\n", mode=0o600):
    with open(path, "w") as f:
        f.write(text)
    os.chown(path, uid, uid)
    os.chmod(path, mode)
    return path


def socket_file(path, uid):
    """A unix socket file at PATH owned by UID (left behind: its socket is closed)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.bind(path)
    os.chown(path, uid, uid)
    return os.lstat(path).st_ino


def make(path, mode=0o666, user="", group="", service_user=""):
    held = sockets.Sockets()
    try:
        return held, held.for_service("svc", [("unix-stream", path)], mode, user, group,
                                      service_user)
    except OSError:
        held.release("svc")
        raise


def connects(path):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
        c.settimeout(5)
        c.connect(path)
    return True


# --- what is at the path ------------------------------------------------------------------

@needs_root
def test_another_user_s_file_in_a_sticky_directory_is_not_deleted(tmp_path):
    shared = directory(str(tmp_path / "tmp"), mode=0o1777)
    victim = file_of(os.path.join(shared, "app.sock"), STRANGER, "their work\n", 0o644)
    with pytest.raises(OSError) as refused:
        make(victim)
    assert "not a socket" in str(refused.value) and "listen=stream:%s" % victim in \
        str(refused.value)
    assert open(victim).read() == "their work\n"
    st = os.lstat(victim)
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (STRANGER, 0o644)


@needs_root
def test_another_user_s_socket_is_not_replaced(tmp_path):
    shared = directory(str(tmp_path / "tmp"), mode=0o1777)
    path = os.path.join(shared, "app.sock")
    inode = socket_file(path, STRANGER)
    with pytest.raises(OSError, match="socket of uid %d" % STRANGER):
        make(path)
    assert os.lstat(path).st_ino == inode


@needs_root
def test_a_symlink_at_the_path_is_neither_followed_nor_removed(tmp_path):
    here = directory(str(tmp_path / "run"))
    target = file_of(str(tmp_path / "shadow"), 0, mode=0o600)
    link = os.path.join(here, "app.sock")
    os.symlink(target, link)
    with pytest.raises(OSError, match="symbolic link"):
        make(link, mode=0o666, user="nobody")
    assert os.path.islink(link) and os.readlink(link) == target
    st = os.stat(target)
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, 0o600)


@needs_root
def test_a_directory_at_the_path_is_left_alone(tmp_path):
    here = directory(str(tmp_path / "run"))
    os.mkdir(os.path.join(here, "app.sock"))
    with pytest.raises(OSError, match="is a directory"):
        make(os.path.join(here, "app.sock"))
    assert os.path.isdir(os.path.join(here, "app.sock"))


@needs_root
def test_a_stale_socket_of_root_or_of_the_service_is_replaced(tmp_path):
    here = directory(str(tmp_path / "run"))
    for uid, service_user in ((0, ""), (NOBODY, "nobody")):
        path = os.path.join(here, "app%d.sock" % uid)
        socket_file(path, uid)
        with pytest.raises(ConnectionRefusedError):
            connects(path)                        # stale: no one listens on it
        held, [sock] = make(path, service_user=service_user)
        try:
            assert stat.S_ISSOCK(os.lstat(path).st_mode) and os.lstat(path).st_uid == 0
            assert connects(path)
        finally:
            held.release("svc")
        assert not os.path.lexists(path)          # release removes it


# --- the mode and owner ------------------------------------------------------------------

@needs_root
def test_the_socket_gets_its_mode_and_owner_in_a_root_directory(tmp_path):
    here = directory(str(tmp_path / "run"))
    path = os.path.join(here, "app.sock")
    held, [sock] = make(path, mode=0o640, user="nobody")
    try:
        st = os.lstat(path)
        assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o640
        assert (st.st_uid, st.st_gid) == (NOBODY, NOBODY)
        assert sock.getsockname() == path         # what sd_is_socket_unix() compares
        assert connects(path)
    finally:
        held.release("svc")


@needs_root
def test_in_the_service_s_own_directory_the_socket_is_made_aside_and_linked(tmp_path):
    """A directory of the service's user: it could swap names under PID 1, so the socket
    gets its mode and owner in a private directory and is linked into place."""
    own = directory(str(tmp_path / "run" / "app"), uid=NOBODY, mode=0o755)
    path = os.path.join(own, "app.sock")
    held, [sock] = make(path, mode=0o660, user="nobody")
    try:
        st = os.lstat(path)
        assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o660
        assert st.st_uid == NOBODY
        assert connects(path)
        assert os.listdir(own) == ["app.sock"]    # the private directory is gone
    finally:
        held.release("svc")


class SwapAfterBind:
    """A socket module whose sockets, once bound, see the listen= path replaced by a
    symlink to TARGET: the daemon user who owns the directory winning the race between
    PID 1's bind and its chmod/chown."""

    def __init__(self, path, target):
        self.path, self.target = path, target

    def __getattr__(self, name):
        return getattr(socket, name)

    def socket(self, *args, **kwargs):
        swap = self

        class Swapped(socket.socket):
            def bind(self, address):
                super().bind(address)
                if os.path.lexists(swap.path):
                    os.unlink(swap.path)
                os.symlink(swap.target, swap.path)
        return Swapped(*args, **kwargs)


@needs_root
def test_a_symlink_swapped_in_after_bind_does_not_chown_its_target(tmp_path, monkeypatch):
    own = directory(str(tmp_path / "run" / "app"), uid=NOBODY, mode=0o755)
    path = os.path.join(own, "app.sock")
    shadow = file_of(str(tmp_path / "shadow"), 0, "root:x:0:0\n", 0o600)
    monkeypatch.setattr(sockets, "socket", SwapAfterBind(path, shadow))
    try:
        make(path, mode=0o666, user="nobody")
    except OSError as exc:
        print("refused: %s" % exc)
    st = os.stat(shadow)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o600)


# --- the directories ------------------------------------------------------------------

@needs_root
def test_a_directory_of_another_user_is_refused(tmp_path):
    theirs = directory(str(tmp_path / "home" / "them"), uid=STRANGER, mode=0o755)
    with pytest.raises(OSError, match="owned by uid %d" % STRANGER):
        make(os.path.join(theirs, "app.sock"), user="nobody")
    assert os.listdir(theirs) == []


@needs_root
def test_a_world_writable_directory_without_the_sticky_bit_is_refused(tmp_path):
    open_dir = directory(str(tmp_path / "drop"), mode=0o777)
    with pytest.raises(OSError, match="writable by group or others"):
        make(os.path.join(open_dir, "app.sock"))
    assert os.listdir(open_dir) == []


@needs_root
def test_a_symlinked_directory_of_another_user_is_not_followed(tmp_path):
    theirs = directory(str(tmp_path / "home" / "them"), uid=STRANGER, mode=0o755)
    etc = directory(str(tmp_path / "etc"))
    os.symlink(etc, os.path.join(theirs, "run"))
    os.lchown(os.path.join(theirs, "run"), STRANGER, STRANGER)
    with pytest.raises(OSError):
        make(os.path.join(theirs, "run", "cron.allow"), service_user="nobody")
    assert os.listdir(etc) == []


@needs_root
def test_release_removes_only_its_own_socket(tmp_path):
    here = directory(str(tmp_path / "tmp"), mode=0o1777)
    path = os.path.join(here, "app.sock")
    held, _ = make(path)
    os.unlink(path)                             # gone, and another user's file in its place
    file_of(path, STRANGER, "theirs\n")
    held.release("svc")
    assert open(path).read() == "theirs\n"


# --- no name is looked up -----------------------------------------------------------------

def test_a_host_name_is_refused_at_load_naming_file_line_and_key():
    spec, diags = config.parse_service("/s/web.svc", (
        b"exec=/bin/true\nlisten=tcp:localhost:8080\nlisten=udp:[fe80::1%eth0]:53\n"
        b"listen=tcp:127.0.0.1:8081\nlisten=tcp:[::1]:8082\n"))
    assert spec.listen == (("tcp", ("127.0.0.1", 8081)), ("tcp", ("::1", 8082)))
    text = [d.format() for d in diags]
    assert text[0].startswith("/s/web.svc:2: warning: listen: 'tcp:localhost:8080': "
                              "'localhost' is not a numeric IPv4 address"), text
    assert text[1].startswith("/s/web.svc:3: warning: listen: "), text
    assert "not a numeric IPv6 address" in text[1]


@pytest.mark.parametrize("host", ["1.2.3.4", "0.0.0.0", "255.255.255.255", "::", "::1",
                                  "fe80::1", "::ffff:10.0.0.1", "1:2:3:4:5:6:7:8"])
def test_numeric_addresses_are_taken(host):
    value = "tcp:%s:80" % host if "." in host and ":" not in host else "tcp:[%s]:80" % host
    assert config.parse_listen(value) == (("tcp", (host, 80)), None)


@pytest.mark.parametrize("value", ["tcp:example.org:80", "udp:256.1.1.1:53", "tcp:01.2.3.4:1",
                                   "tcp:1.2.3:80", "tcp:[::1::2]:80", "tcp:[host]:80",
                                   "tcp:<broadcast>:80", "tcp:[]:80"])
def test_names_and_malformed_addresses_are_refused(value):
    listen, why = config.parse_listen(value)
    assert listen is None and "numeric" in why, why


def test_the_socket_layer_looks_no_name_up_either(monkeypatch):
    """Were a name to reach PID 1 another way than a parsed .svc (a handover), binding
    it would be refused before any lookup."""
    def no_lookup(*args, **kwargs):
        raise AssertionError("a name was looked up")
    monkeypatch.setattr(socket, "getaddrinfo", no_lookup)
    with pytest.raises(OSError, match="not a numeric address"):
        sockets.open_listen(("tcp", ("localhost", 8080)), 0o666)


# --- through a real supervisor (process tier) ---------------------------------------------

@needs_root
@pytest.mark.process
def test_the_service_is_refused_with_the_listen_line_and_the_reason(supervise, tmp_path):
    shared = directory(str(tmp_path / "tmp"), mode=0o1777)
    victim = file_of(os.path.join(shared, "web.sock"), STRANGER, "their work\n", 0o644)
    s = supervise({"web.svc": "exec=%s\nargs=-c\nargs=import time; time.sleep(100)\n"
                              "listen=%s\nstable_secs=0\n" % (sys.executable, victim)})
    shown = s.wait(lambda: "listen=stream:%s" % victim in s.ctl("status", "web").stdout and
                   s.ctl("status", "web").stdout, 10, "the refusal in status")
    assert "not a socket" in shown, shown
    assert "spawn-fail" in s.events("web") and s.state("web") != "FUNDAMENTAL"
    assert open(victim).read() == "their work\n" and os.lstat(victim).st_uid == STRANGER
    assert s.proc.poll() is None
