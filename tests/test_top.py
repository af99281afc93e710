"""``schema-ctl top`` (schema_init/ctl/top.py): the board's frame, and the real board in a
tmux pane of 80x24 and 160x50 against a real supervisor: services and states shown, a
colour per state, sort, filter, quit, an action refused to a user who is not root and
done for root, and PID 1's wake-ups while it runs (none)."""

import os
import re
import shutil
import subprocess
import time
import uuid

import pytest

from conftest import program
from harness import daemon
from schema_init.core import schema
from schema_init.ctl import top


def service(name, state, restarts=1, pid=100, since=1_000_000, failure=""):
    return {"name": name, "state": state, "weight": 8, "child_pid": pid,
            "restart_count": restarts, "flags": 0, "spawns": restarts, "failures": 0,
            "state_since_us": since, "spawned_us": since, "ready_us": since + 250_000,
            "boot_spawned_us": since, "boot_ready_us": since + 250_000,
            "last_failure": failure}


def snap(services):
    return {"supervisor_pid": 1, "ab_slot": 0, "ab_commit": 0, "services": services}


def text(lines):
    return ["".join(t for t, _ in line) for line in lines]


def test_the_frame_fits_80x24_and_shows_every_column():
    long_failure = "restart budget exhausted (5 failed runs, last: exited 1); dormant 60 s"
    services = [service("sshd", schema.FUNDAMENTAL), service("web", schema.RECOVERY, 4,
                                                             0, failure=long_failure)]
    services += [service("x%02d" % i, schema.PERFECT, pid=0) for i in range(30)]
    board = top.Board()
    lines = text(board.frame(snap(services), {"rss_kb": 10240}, 80, 24, 61_000_000, "12:00:00"))
    assert len(lines) == 24 and all(len(line) <= 80 for line in lines)
    assert "pid 1" in lines[0] and "rss 10.0 MB" in lines[0] and "slot -" in lines[0] \
        and "commit -" in lines[0]
    row = next(line for line in lines if line.startswith("sshd"))
    assert "FUNDAMENTAL" in row and "\u2588" * 8 in row and "1m00" in row and "250ms" in row
    web = next(line for line in lines if line.startswith("web"))
    assert "RECOVERY" in web and " 4 " in web and "restart budget" in web
    wide = text(board.frame(snap(services), {}, 160, 50, 61_000_000, "12:00:00"))
    assert long_failure in next(line for line in wide if line.startswith("web"))
    assert sum(1 for line in wide if line.startswith("x")) > \
        sum(1 for line in lines if line.startswith("x"))


def test_sort_filter_and_actions_by_key():
    services = [service("b", schema.EXCISED, 9), service("a", schema.FUNDAMENTAL, 1)]
    board = top.Board()
    names = [s["name"] for s in board.visible(services, 0)]
    assert names == ["a", "b"]
    board.key("s", names, 0, None)                           # by state: failing first
    assert [s["name"] for s in board.visible(services, 0)] == ["b", "a"]
    board.key("s", names, 0, None)                           # by restarts
    assert board.sort == "restarts"
    for key in ("f", "a", "\r"):
        board.key(key, names, 0, None)
    assert [s["name"] for s in board.visible(services, 0)] == ["a"]
    board.selected = "a"
    sent = []
    board.key("d", ["a"], 1000, sent.append)                 # not root: refused, not sent
    assert "refused" in board.message and board.prompt is None and sent == []
    board.key("d", ["a"], 0, lambda line: sent.append(line) or "ok")
    assert board.prompt == ("confirm", "stop a")
    board.key("y", ["a"], 0, lambda line: sent.append(line) or "stop a: ok")
    assert sent == ["stop a"]
    assert board.key("q", ["a"], 0, None) is False


# --- the real board in tmux ----------------------------------------------------------

class Pane:
    def __init__(self, tmp_path, width, height, command):
        if shutil.which("tmux") is None:
            pytest.skip("tmux is not installed (make test installs it: the Makefile's DEBS)")
        self.server = "schema-top-%s" % uuid.uuid4().hex[:8]
        subprocess.run(["tmux", "-L", self.server, "-f", "/dev/null", "new-session", "-d",
                        "-x", str(width), "-y", str(height), "env", "LANG=C.UTF-8",
                        "TERM=screen-256color"] + command, check=True, cwd=str(tmp_path))

    def capture(self, colours=False):
        result = subprocess.run(["tmux", "-L", self.server, "capture-pane", "-p"] +
                                (["-e"] if colours else []), capture_output=True, text=True)
        return result.stdout

    def keys(self, *keys):
        subprocess.run(["tmux", "-L", self.server, "send-keys"] + list(keys), check=True)

    def wait_for(self, pattern, timeout=15, colours=False):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.capture(colours)
            if re.search(pattern, screen, re.M):
                return screen
            time.sleep(0.1)
        raise AssertionError("%r not on the board:\n%s" % (pattern, self.capture()))

    def pid(self):
        """The pane's process: env execs the board, so it is the board's pid."""
        return int(subprocess.run(["tmux", "-L", self.server, "display", "-p",
                                   "#{pane_pid}"], capture_output=True, text=True).stdout)

    def alive(self):
        return subprocess.run(["tmux", "-L", self.server, "has-session"],
                              capture_output=True).returncode == 0

    def kill(self):
        subprocess.run(["tmux", "-L", self.server, "kill-server"], capture_output=True)


@pytest.fixture
def pane(tmp_path):
    made = []

    def make(*args, **kwargs):
        made.append(Pane(tmp_path, *args, **kwargs))
        return made[-1]
    yield make
    for p in made:
        p.kill()


def board_command(s, *extra, uid=None):
    command = [program("schema-ctl"), "--socket", s.socket, "top", "--shm", s.shm_name] + \
        list(extra)
    if uid is not None:
        command = ["setpriv", "--reuid=%d" % uid, "--regid=%d" % uid, "--clear-groups"] + command
    return command


SERVICES = {"web.svc": daemon(stable_secs=0), "db.svc": daemon(stable_secs=0),
            "setup.svc": daemon("exit 0", oneshot=1),
            "flaky.svc": daemon("exit 3", max_restarts=1)}


@pytest.mark.process
@pytest.mark.parametrize("size", [(80, 24), (160, 50)])
def test_the_board_in_a_terminal_shows_sorts_filters_and_quits(supervise, pane, size):
    s = supervise(SERVICES)
    s.wait_state("web", "FUNDAMENTAL")
    s.wait_state("setup", "PERFECT")
    p = pane(size[0], size[1], board_command(s))
    screen = p.wait_for(r"^web\s+FUNDAMENTAL")
    for name, state in (("db", "FUNDAMENTAL"), ("setup", "PERFECT")):
        assert re.search(r"^%s\s+%s" % (name, state), screen, re.M), screen
    assert re.search(r"^flaky\s+(RECOVERY|FRICTION|DORMANT|EXCISED|NEW_PROCESS|FULL_TRUST)",
                     screen, re.M)
    lines = screen.splitlines()
    assert len(lines) <= size[1] and all(len(line) <= size[0] for line in lines)
    # a colour per state: FUNDAMENTAL in green (SGR 32)
    coloured = p.capture(colours=True)
    assert re.search(r"\x1b\[[0-9;]*32m(\x1b\[[0-9;]*m)*FUNDAMENTAL", coloured), coloured
    p.keys("s")
    p.wait_for(r"sort: state")
    screen = p.capture()
    names = [line.split()[0] for line in screen.splitlines()[3:] if line[:1].isalpha()
             and line.split()[0] in ("web", "db", "setup", "flaky")]
    assert names.index("flaky") < names.index("web") < names.index("setup")   # failing first
    p.keys("f", "s", "e", "t", "Enter")
    p.wait_for(r"filter: set\b")
    screen = p.capture()
    assert re.search(r"^setup\s+PERFECT", screen, re.M) and not re.search(r"^web\s", screen, re.M)
    p.keys("q")
    deadline = time.monotonic() + 10
    while p.alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not p.alive()                                     # q quit the board


@pytest.mark.process
def test_an_action_is_refused_to_a_user_and_done_for_root(supervise, pane):
    s = supervise({"web.svc": daemon(stable_secs=0)})
    s.wait_state("web", "FUNDAMENTAL")
    os.chmod(s.root, 0o755)
    os.chmod(s.run_dir, 0o755)
    user = pane(80, 24, board_command(s, uid=65534))
    user.wait_for(r"^web\s+FUNDAMENTAL")
    user.keys("d")
    user.wait_for(r"stop web: refused, only root may \(you are uid 65534\)")
    time.sleep(0.5)
    assert s.state("web") == "FUNDAMENTAL"                   # nothing was sent
    root = pane(80, 24, board_command(s))
    root.wait_for(r"^web\s+FUNDAMENTAL")
    root.keys("d")
    root.wait_for(r"stop web\? \[y/N\]")
    root.keys("y")
    root.wait_for(r"stop web: ok")
    s.wait_state("web", "EXCISED")
    root.wait_for(r"^web\s+EXCISED")                          # the board follows the shm


def switches(pid):
    with open("/proc/%d/status" % pid) as f:
        return {key: int(value) for key, value in
                (line.split(":") for line in f if "ctxt_switches:" in line)}


@pytest.mark.process
def test_the_board_costs_pid1_no_wakeup(supervise, pane):
    """10 s of the board refreshing 10 times a second: the supervisor's context switches
    (its wake-ups) do not move.  The control run proves the counter would: the same
    window with one status request a second moves it."""
    s = supervise({"web.svc": daemon(stable_secs=0), "db.svc": daemon(stable_secs=0)})
    s.wait_state("web", "FUNDAMENTAL")
    s.wait_state("db", "FUNDAMENTAL")
    p = pane(80, 24, board_command(s, "-d", "0.1"))
    p.wait_for(r"^web\s+FUNDAMENTAL")
    time.sleep(1)                                            # the board settled
    before = switches(s.proc.pid)
    top_pid = p.pid()
    with open("/proc/%d/stat" % top_pid) as f:
        top_ticks = sum(int(v) for v in f.read().rsplit(")", 1)[1].split()[11:13])
    time.sleep(10)
    after = switches(s.proc.pid)
    with open("/proc/%d/stat" % top_pid) as f:
        top_used = sum(int(v) for v in f.read().rsplit(")", 1)[1].split()[11:13]) - top_ticks
    print("supervisor switches over 10 s of top: %s -> %s; top used %.2f s of CPU"
          % (before, after, top_used / os.sysconf("SC_CLK_TCK")))
    assert after["voluntary_ctxt_switches"] == before["voluntary_ctxt_switches"]
    for _ in range(5):
        s.ctl("status")
    control = switches(s.proc.pid)
    assert control["voluntary_ctxt_switches"] >= after["voluntary_ctxt_switches"] + 5
