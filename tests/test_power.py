"""reboot, poweroff, halt, shutdown, telinit, runlevel (schema_init/power.py): the names
people type, run as names of the real program against a real supervisor's socket."""

import os
import struct
import subprocess
import time

import pytest

from conftest import program
from harness import Supervised, daemon
from schema_init import power


def named(tmp_path, name):
    """The program (venv entry point or the static binary) under one of these names."""
    link = tmp_path / "bin" / name
    link.parent.mkdir(exist_ok=True)
    if not link.exists():
        os.symlink(program("schema-init"), link)
    return str(link)


def run(tmp_path, name, *args, socket=None):
    env = dict(os.environ, SCHEMA_CTL_SOCKET=socket or str(tmp_path / "none.sock"))
    return subprocess.run([named(tmp_path, name)] + list(args), capture_output=True,
                          text=True, timeout=30, env=env)


@pytest.fixture
def supervised(tmp_path):
    s = Supervised(tmp_path / "sup", {"a.svc": daemon(stable_secs=0)})
    s.start()
    s.wait_state("a", "FUNDAMENTAL")
    yield s
    s.stop()


@pytest.mark.process
def test_shutdown_later_is_held_by_the_supervisor_shown_and_cancelled(tmp_path, supervised):
    s = supervised
    done = run(tmp_path, "shutdown", "-r", "+5", "--no-wall", socket=s.socket)
    assert done.returncode == 0 and done.stdout == "ok: reboot in 300 s\n", done.stderr
    assert "shutdown scheduled: reboot in 300 s" in s.ctl("status").stdout
    assert run(tmp_path, "runlevel", socket=s.socket).stdout == "N 5\n"
    done = run(tmp_path, "shutdown", "-c", "--no-wall", socket=s.socket)
    assert done.returncode == 0 and "cancelled" in done.stdout
    assert "shutdown scheduled" not in s.ctl("status").stdout
    assert run(tmp_path, "shutdown", "-c", socket=s.socket).returncode == 1
    assert run(tmp_path, "shutdown", "-r", "soon", socket=s.socket).returncode == 2
    assert s.proc.poll() is None


@pytest.mark.process
def test_a_scheduled_shutdown_fires_when_due(tmp_path, supervised):
    s = supervised
    assert s.ctl("schedule", "halt", "1").stdout == "ok: halt in 1 s\n"
    assert s.proc.wait(10) == 0
    assert "shutting down (halt)" in s.console_text()


@pytest.mark.process
@pytest.mark.parametrize("name,args,how", [("reboot", [], "reboot"), ("halt", [], "halt"),
                                           ("poweroff", [], "poweroff"),
                                           ("shutdown", ["-r", "now"], "reboot"),
                                           ("telinit", ["0"], "poweroff"),
                                           ("halt", ["-p"], "poweroff")])
def test_each_name_stops_the_services_through_pid1(tmp_path, supervised, name, args, how):
    s = supervised
    done = run(tmp_path, name, "--no-wall", *args, socket=s.socket) if name != "telinit" \
        else run(tmp_path, name, *args, socket=s.socket)
    assert done.returncode == 0, done.stderr
    assert s.proc.wait(20) == 0
    assert "shutting down (%s)" % how in s.console_text()


@pytest.mark.process
def test_without_pid1_they_say_so_and_point_at_force(tmp_path):
    done = run(tmp_path, "reboot", "--no-wall")
    assert done.returncode == 1 and "-f acts without it" in done.stderr
    assert run(tmp_path, "poweroff", "--frobnicate").returncode == 2
    assert run(tmp_path, "runlevel").stdout == "unknown\n"


def test_times_people_type():
    ten_past_nine = time.struct_time((2026, 11, 22, 9, 10, 30, 6, 326, 0))
    assert power.delay("now", ten_past_nine) == 0
    assert power.delay("+15", ten_past_nine) == 900
    assert power.delay("09:20", ten_past_nine) == 570
    assert power.delay("9:00", ten_past_nine) == 86400 - 630          # tomorrow
    for bad in ("+", "+x", "24:00", "9:5", "12:60", "+99999999", "later"):
        with pytest.raises(power.Usage):
            power.delay(bad, ten_past_nine)


def test_wall_reaches_the_terminals_utmp_lists_and_only_those(tmp_path):
    master, slave = os.openpty()
    tty = os.ttyname(slave)
    assert tty.startswith("/dev/pts/")
    record = bytearray(power.UTMP_SIZE)
    power.UTMP_RECORD.pack_into(record, 0, power.USER_PROCESS, os.getpid(),
                                tty[len("/dev/"):].encode(), b"ts/1", b"root", b"")
    dead = bytearray(power.UTMP_SIZE)        # a DEAD_PROCESS (8) entry is not a session
    power.UTMP_RECORD.pack_into(dead, 0, 8, 1, b"tty9", b"9", b"", b"")
    utmp = tmp_path / "utmp"
    utmp.write_bytes(bytes(dead) + bytes(record) + b"\0" * 10)      # a torn last record
    assert power.logged_in_terminals(str(utmp)) == [tty]
    power.wall("going down for maintenance", str(utmp))
    got = os.read(master, 4096)
    assert b"Broadcast message from schema-init" in got and b"going down" in got
    os.close(master)
    os.close(slave)
    assert struct.calcsize("hi32s4s32s256s") <= power.UTMP_SIZE
