"""reboot, poweroff, halt, shutdown, telinit, runlevel (schema_init/power/power.py): the names
people type, run as names of the real program against a real supervisor's socket."""

import os
import subprocess
import time

import pytest

from conftest import program
from harness import Supervised, daemon
from schema_init.power import power
from schema_init.lib import utmp


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


def stoppable(marker):
    """A daemon that, told to stop (SIGTERM), writes MARKER and exits 0."""
    return daemon("trap 'echo stopped > %s; exit 0' TERM" % marker, "sleep 1000 & wait",
                  stable_secs=0)


@pytest.fixture
def supervised(tmp_path):
    """A supervisor running a and b (b needs a); ``s.pids`` are their main processes."""
    s = Supervised(tmp_path / "sup", {"a.svc": stoppable(tmp_path / "stopped-a"),
                                      "b.svc": stoppable(tmp_path / "stopped-b") + "dep=a\n"})
    s.start()
    s.wait_state("b", "FUNDAMENTAL")
    s.wait_trapped("a")
    s.wait_trapped("b")
    s.pids = {name: int(s.status()[name]["pid"]) for name in ("a", "b")}
    yield s
    s.stop()


def assert_every_service_stopped(s, tmp_path):
    """Each service was told to stop (its SIGTERM trap ran), its process is gone, and
    its stop is on the rail, dependents first."""
    for name, pid in s.pids.items():
        assert (tmp_path / ("stopped-" + name)).exists(), "%s never got its SIGTERM" % name
        assert not os.path.exists("/proc/%d" % pid), "%s (pid %d) still there" % (name, pid)
    assert [n for n, event, _, _ in s.rail() if event == "stopped"] == ["b", "a"], s.rail()


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
    assert_every_service_stopped(s, tmp_path)


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
    assert_every_service_stopped(s, tmp_path)


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
    shape = utmp.layout()
    session = bytearray(shape.size)
    values = dict.fromkeys(utmp.FIELDS, 0)
    values.update(type=utmp.USER_PROCESS, pid=os.getpid(), line=tty[5:].encode(), id=b"ts/1",
                  user=b"root", host=b"")
    shape.pack_into(session, 0, *[values[f] for f in utmp.FIELDS])
    dead = bytearray(shape.size)               # a DEAD_PROCESS (8) entry is not a session
    values.update(type=8, line=b"tty9")
    shape.pack_into(dead, 0, *[values[f] for f in utmp.FIELDS])
    path = tmp_path / "utmp"
    path.write_bytes(bytes(dead) + bytes(session) + b"\0" * 10)      # a torn last record
    assert utmp.logged_in_terminals(str(path)) == [tty]
    power.wall("going down for maintenance", str(path))
    got = os.read(master, 4096)
    assert b"Broadcast message from schema-init" in got and b"going down" in got
    os.close(master)
    os.close(slave)


def test_boot_and_shutdown_records_as_who_and_last_read_them(tmp_path):
    run, log = tmp_path / "utmp", tmp_path / "wtmp"
    run.write_bytes(b"old sessions of the last boot")
    assert utmp.write_boot(str(run), str(log)) == []
    assert utmp.append_shutdown(str(log), level="6")
    boot, level = utmp.records(run.read_bytes())
    assert (boot["type"], utmp.text(boot["user"]), utmp.text(boot["line"])) == \
        (utmp.BOOT_TIME, "reboot", "~")
    assert abs(boot["tv_sec"] - (time.time() - utmp.read_uptime())) < 5
    assert (level["type"], level["pid"]) == (utmp.RUN_LVL, ord("5") + 256 * ord("N"))
    logged = utmp.records(log.read_bytes())
    assert [utmp.text(r["user"]) for r in logged] == ["reboot", "runlevel", "shutdown"]
    assert logged[2]["pid"] == ord("6") + 256 * ord("5")
    who = subprocess.run(["who", "-b", str(run)], capture_output=True, text=True, timeout=30)
    assert who.returncode == 0 and "system boot" in who.stdout, who.stdout + who.stderr
