"""A reload is read in slices (schema_init/pid1/reloading.py): the files of a services
directory are read and parsed a few per loop turn, so a reload of many large files
never holds the loop (docs/security.md, "service files"; docs/spec.md, "Reloading").

The unit tests count the files each slice parses with a clock the test drives; the
process test shows a status request answered while a slow reload is still being read,
which the one-piece reload could not do (its loop was busy until the last file).
"""

import os
import socket
import time

import pytest

from harness import daemon
from schema_init.core import config
from schema_init.pid1 import loader, reloading

BIG = b"exec=/bin/true\n" + b"".join(b"unknown_key_%d=%s\n" % (i, b"v" * 900)
                                     for i in range(990))


class Clock:
    """Advances by ``tick`` at every reading."""

    def __init__(self, tick):
        self.now = 0.0
        self.tick = tick

    def __call__(self):
        self.now += self.tick
        return self.now


def directory(tmp_path, count):
    for i in range(count):
        (tmp_path / ("s%02d.svc" % i)).write_bytes(b"exec=/bin/true\nstable_secs=0\n")
    (tmp_path / "g.grp").write_bytes(b"name=g\nmember=s00\n")
    (tmp_path / "bad.svc").write_bytes(b"nice=3\n")                 # no exec=: an error
    (tmp_path / "README").write_bytes(b"not a service\n")
    return str(tmp_path)


def run(job):
    steps = 0
    while True:
        steps += 1
        if job.step():
            return steps


def same(a, b):
    assert [s.name for s in a.services] == [s.name for s in b.services]
    assert [g.name for g in a.groups] == [g.name for g in b.groups]
    assert [d.format() for d in a.diagnostics] == [d.format() for d in b.diagnostics]


def test_a_slow_file_is_a_slice_of_its_own(tmp_path):
    """Each file costs more than the slice: one file per loop turn, every file read."""
    path = directory(tmp_path, 6)
    job = reloading.ReloadJob(path, [], False, clock=Clock(reloading.SLICE))
    assert run(job) == 8                           # 6 services, a group, a bad file
    assert job.turns == 8
    same(job.result(), loader.load_directory(path))


def test_fast_files_share_a_slice(tmp_path):
    path = directory(tmp_path, 6)
    job = reloading.ReloadJob(path, [], False, clock=Clock(0.0))
    assert run(job) == 1
    same(job.result(), loader.load_directory(path))


def test_slices_stop_at_the_budget(tmp_path):
    """A tick of a third of the slice: three files a turn (the third reading passes the
    deadline), never the whole directory at once."""
    path = directory(tmp_path, 10)
    job = reloading.ReloadJob(path, [], False, clock=Clock(reloading.SLICE / 3 + 1e-6))
    assert run(job) == 4                           # 12 files, 3 a turn
    same(job.result(), loader.load_directory(path))


def test_an_unreadable_directory_is_one_error(tmp_path):
    job = reloading.ReloadJob(str(tmp_path / "missing"), [], False)
    assert job.step()
    result = job.result()
    assert not result.services and len(result.errors) == 1
    assert "cannot read the services directory" in result.errors[0].format()


def test_the_split_parse_equals_the_whole(tmp_path):
    """config.parse_directory is parse_entry + combine_directory: duplicates, groups
    named like services, unreadable files are judged the same."""
    files = [("a.svc", b"exec=/bin/a\n", None), ("b.svc", b"name=a\nexec=/bin/b\n", None),
             ("a.grp", b"name=a\nmember=a\n", None), ("c.svc", None, "Permission denied")]
    whole = config.parse_directory("/d", files)
    split = config.combine_directory("/d", [config.parse_entry("/d", *f) for f in reversed(files)])
    same(whole, split)
    assert any("already defined" in d.format() for d in whole.diagnostics)


def request(path, line):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(60)
    sock.connect(path)
    sock.sendall(line.encode() + b"\n")
    return sock


def reply(sock):
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data.decode()
        data += chunk


@pytest.mark.process
def test_status_is_served_while_a_large_reload_is_read(supervise):
    files = {"a.svc": daemon(stable_secs=0)}
    s = supervise(files)
    s.wait_state("a", "FUNDAMENTAL")
    for i in range(60):                            # ~30 ms of parsing each here
        s.write("big%02d.svc" % i, BIG.decode())
    slow = request(s.socket, "reload")
    s.wait(lambda: "reloading configuration..." in s.console_text(), 30, "reload begun")
    status = request(s.socket, "status")
    text = reply(status)
    assert text.startswith("services: "), text
    slow.setblocking(False)
    with pytest.raises(BlockingIOError):           # the reload is still being read
        slow.recv(1)
    slow.setblocking(True)
    slow.settimeout(120)
    answer = reply(slow)
    assert answer.splitlines()[0] == "ok: reload (graceful)", answer
    assert "  added: " + " ".join("big%02d" % i for i in range(60)) in answer
    assert len(s.status()) == 61


@pytest.mark.process
def test_a_reload_asked_during_a_reload_reads_the_files_again(supervise):
    """Files written after a reload began are seen by a reload asked after them."""
    s = supervise({"a.svc": daemon(stable_secs=0)})
    s.wait_state("a", "FUNDAMENTAL")
    for i in range(30):
        s.write("big%02d.svc" % i, BIG.decode())
    first = request(s.socket, "reload")
    s.wait(lambda: "reloading configuration..." in s.console_text(), 30, "reload begun")
    s.write("late.svc", daemon(stable_secs=0))
    second = request(s.socket, "reload")
    first.settimeout(120)
    second.settimeout(120)
    assert reply(first).startswith("ok: reload")
    answer = reply(second)
    assert answer.startswith("ok: reload"), answer
    s.wait_state("late", "FUNDAMENTAL")


@pytest.mark.process
def test_sighup_reloads_in_slices_too(supervise):
    s = supervise({"a.svc": daemon(stable_secs=0)})
    s.wait_state("a", "FUNDAMENTAL")
    s.write("b.svc", daemon(stable_secs=0))
    os.kill(s.proc.pid, 1)
    s.wait_state("b", "FUNDAMENTAL")
    deadline = time.monotonic() + 10
    while "configuration reload completed successfully" not in s.console_text():
        assert time.monotonic() < deadline, s.console_text()
        time.sleep(0.05)
