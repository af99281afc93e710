"""Process tier: a real schema-init (not PID 1) supervising real processes.

Observed only from outside: schema-ctl, the rail log, service logs, shared memory.
Built-in delays are shortened with --time-scale; .svc values are real seconds.
"""

import os
import re
import signal
import time

import pytest

import adversary as adv
from harness import Supervised, daemon, process_gone

pytestmark = pytest.mark.process


@pytest.fixture
def supervise(tmp_path):
    started = []

    def make(files, root=None, **kwargs):
        instance = Supervised(root or tmp_path, files, **kwargs)
        started.append(instance)
        return instance.start()
    yield make
    for instance in started:
        instance.stop()


@pytest.fixture
def world_tmp():
    """A directory other users can reach (pytest's own tmp is 0700 root)."""
    import shutil
    import tempfile
    path = tempfile.mkdtemp(prefix="schema-world-", dir="/tmp")
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_dependency_chain_promotes_in_order(supervise):
    files = {"c.svc": daemon(dep="b", stable_secs=0), "b.svc": daemon(dep="a", stable_secs=0),
             "a.svc": daemon(stable_secs=0), "d.svc": daemon(dep="c", oneshot=1,
                                                             args=None) if False else
             "exec=/bin/true\noneshot=1\ndep=c\n"}
    s = supervise(files)
    s.wait_state("d", "PERFECT")
    promotions = [name for name, event, _, _ in s.rail() if event in ("promote", "oneshot-done")]
    assert promotions == ["a", "b", "c", "d"]
    spawns = [name for name, event, _, _ in s.rail() if event == "spawn"]
    assert spawns == ["a", "b", "c", "d"]


def test_ready_path_promotes_at_once(supervise, tmp_path):
    ready = tmp_path / "deep" / "er" / "ready"
    s = supervise({"r.svc": daemon("sleep 0.3", "mkdir -p %s" % ready.parent,
                                   "touch %s" % ready, "exec sleep 1000",
                                   ready_path=ready, stable_secs=60),
                   "after.svc": "exec=/bin/true\noneshot=1\ndep=r\n"})
    t0 = time.monotonic()
    s.wait_state("r", "FUNDAMENTAL", timeout=5)
    assert time.monotonic() - t0 < 3, "promoted by the path, not by stable_secs=60"
    s.wait_state("after", "PERFECT")


def test_ready_path_disappearing_kills_and_sends_dormant(supervise, tmp_path):
    ready = tmp_path / "ready"
    s = supervise({"r.svc": daemon("touch %s" % ready, "exec sleep 1000", ready_path=ready)},
                  scale=0.001)
    s.wait_state("r", "FUNDAMENTAL")
    pid = int(s.status()["r"]["pid"])
    ready.unlink()
    s.wait(lambda: "readiness-lost" in s.events("r"), 5, "readiness-lost")
    s.wait(lambda: process_gone(pid), 5, "old process gone")
    s.wait(lambda: "dormant" in s.events("r"), 5, "dormant")


def test_a_ready_path_there_before_the_spawn_waits_for_the_daemons_own(supervise, tmp_path):
    """A file left from an earlier run is not readiness (issue 11: /run/udev/control
    handed over by the initramfs); the one the daemon makes is."""
    ready = tmp_path / "control"
    ready.write_text("stale")
    made = tmp_path / "made"
    s = supervise({"u.svc": daemon("sleep 1.5", "rm -f %s" % ready, "touch %s" % ready,
                                   "touch %s" % made, "exec sleep 1000",
                                   ready_path=ready, stable_secs=60)})
    s.wait_state("u", "FULL_TRUST", timeout=5)
    time.sleep(0.8)
    assert not made.exists() and s.status()["u"]["state"] == "FULL_TRUST"
    s.wait(made.exists, 10, "the daemon's own ready file")
    s.wait_state("u", "FUNDAMENTAL", timeout=5)


def test_a_ready_path_rebound_within_the_grace_is_not_lost(supervise, tmp_path):
    ready = tmp_path / "sock"
    again = tmp_path / "again"
    s = supervise({"r.svc": daemon("touch %s" % ready,
                                   "while [ ! -e %s ]; do sleep 0.05; done" % again,
                                   "rm -f %s" % ready, "sleep 0.5", "touch %s" % ready,
                                   "exec sleep 1000", ready_path=ready, stable_secs=60)})
    s.wait_state("r", "FUNDAMENTAL", timeout=5)
    again.touch()
    time.sleep(4)                      # past the 2 s grace (not scaled) had it not come back
    assert "readiness-lost" not in s.events("r")
    assert s.status()["r"]["state"] == "FUNDAMENTAL"


def test_stable_secs_promotes(supervise):
    s = supervise({"a.svc": daemon(stable_secs=1)})
    s.wait_state("a", "FULL_TRUST")
    t0 = time.monotonic()
    s.wait_state("a", "FUNDAMENTAL", timeout=5)
    assert 0.5 < time.monotonic() - t0 < 2.5


def test_oneshot_reaches_perfect_and_its_output_is_logged(supervise):
    s = supervise({"once.svc": daemon("echo out; echo err >&2; exit 0", oneshot=1)})
    s.wait_state("once", "PERFECT")
    assert s.log("once") == "out\nerr\n"
    assert s.events("once") == ["spawn", "oneshot-done"]


def test_crashing_daemon_goes_recovery_cooldown_friction_dormant(supervise, tmp_path):
    stamps = tmp_path / "starts"
    s = supervise({"crash.svc": daemon("date +%%s.%%N >> %s" % stamps, "exit 3",
                                       max_restarts=4)}, scale=0.25)
    s.wait_state("crash", "DORMANT", timeout=15)
    events = s.events("crash")
    assert events == ["spawn", "died", "retry"] * 3 + ["spawn", "died", "friction", "dormant"]
    starts = [float(x) for x in stamps.read_text().split()]
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    # cooldowns 1, 2, 4 s scaled by 0.25: each gap at least its cooldown, and growing
    assert len(gaps) == 3
    for gap, cooldown in zip(gaps, (0.25, 0.5, 1.0)):
        assert gap >= cooldown
    assert gaps[0] < gaps[1] < gaps[2]
    assert "exited 3" in s.status()["crash"]["reason"]


def test_no_restart_excises(supervise):
    s = supervise({"once.svc": daemon("exit 1", no_restart=1)})
    s.wait_state("once", "EXCISED")
    assert s.events("once") == ["spawn", "76-no-restart"]


def test_critical_service_is_never_excised(supervise):
    files = {"crit.svc": daemon("exit 1", max_restarts=1, critical=1),
             "plain.svc": daemon("exit 1", max_restarts=1)}
    s = supervise(files, scale=0.0005)     # dormant periods 0.15 .. 1.8 s
    s.wait_state("plain", "EXCISED", timeout=30)
    assert s.events("plain").count("dormant") == 5
    s.wait(lambda: s.events("crit").count("dormant") >= 7, 30, "seven dormancies")
    assert "76-excised" not in s.events("crit")
    assert s.state("crit") != "EXCISED"


def test_hung_oneshot_is_killed_at_start_timeout_and_dependents_proceed(supervise):
    s = supervise({"hang.svc": daemon("trap '' TERM; sleep 1000", oneshot=1,
                                      start_timeout_sec=1, stop_timeout_sec=1),
                   "next.svc": "exec=/bin/true\noneshot=1\ndep=hang\n"})
    s.wait_state("hang", "FULL_TRUST")
    pid = int(s.status()["hang"]["pid"])
    s.wait_state("hang", "EXCISED", timeout=5)
    assert s.events("hang")[:3] == ["spawn", "start-timeout", "76-excised"]
    s.wait_state("next", "PERFECT", timeout=5)
    # it ignored SIGTERM: SIGKILL came after its stop timeout, and it was reaped
    s.wait(lambda: not os.path.exists("/proc/%d" % pid), 5, "hung process reaped")


def test_non_critical_excised_dependency_lets_dependents_run_and_promote(supervise):
    s = supervise({"broken.svc": daemon("exit 1", no_restart=1),
                   "app.svc": daemon(dep="broken", stable_secs=0),
                   "top.svc": "exec=/bin/true\noneshot=1\ndep=app\n"})
    s.wait_state("broken", "EXCISED")
    s.wait_state("app", "FUNDAMENTAL")
    s.wait_state("top", "PERFECT")


def test_critical_excised_dependency_blocks(supervise):
    s = supervise({"broken.svc": daemon("exit 1", no_restart=1, critical=1),
                   "app.svc": daemon(dep="broken", stable_secs=0)})
    s.wait_state("broken", "EXCISED")
    time.sleep(0.5)
    assert s.state("app") == "NEW_PROCESS"
    assert s.status()["app"]["reason"] == "waiting for broken"


def group_state(s, name):
    for group, state, _ in s.shm()["groups"]:
        if group == name:
            return state
    return None


def test_group_follows_worst_case(supervise, tmp_path):
    go = tmp_path / "go"
    s = supervise({"a.svc": daemon(stable_secs=0),
                   "b.svc": daemon("while [ ! -e %s ]; do sleep 0.05; done" % go, "exit 1",
                                   no_restart=1, stable_secs=0),
                   "c.svc": "exec=/bin/true\noneshot=1\n",
                   "stack.grp": "name=stack\nmember=a\nmember=b\nmember=c\n",
                   "user.svc": daemon(dep="stack", stable_secs=0)})
    s.wait_state("b", "FUNDAMENTAL")
    s.wait_state("c", "PERFECT")
    s.wait(lambda: group_state(s, "stack") == 1, 5, "group FUNDAMENTAL")
    s.wait_state("user", "FUNDAMENTAL")
    go.touch()
    s.wait_state("b", "EXCISED")
    s.wait(lambda: group_state(s, "stack") == 76, 5, "group EXCISED")


def test_timer_fires_on_schedule_while_otherwise_idle(supervise, tmp_path):
    fires = tmp_path / "fires"
    s = supervise({"tick.svc": daemon("date +%%s.%%N >> %s" % fires,
                                      on_boot_sec=1, on_active_sec=1)})
    t0 = time.time()
    s.wait(lambda: fires.exists() and len(fires.read_text().split()) >= 3, 10, "three fires")
    times = [float(x) for x in fires.read_text().split()]
    assert times[0] - t0 >= 0.8
    for a, b in zip(times, times[1:]):
        assert 0.9 <= b - a <= 2.0
    events = s.events("tick")
    assert events[:4] == ["timer-fire", "spawn", "timer-done", "timer-fire"]


def test_run_once_timer_fires_once(supervise, tmp_path):
    fires = tmp_path / "fires"
    s = supervise({"once.svc": daemon("echo x >> %s" % fires, on_boot_sec=0)})
    s.wait(lambda: "timer-done" in s.events("once"), 5, "timer-done")
    time.sleep(1)
    assert fires.read_text() == "x\n"
    assert s.state("once") == "PERFECT"


def test_slot_gate_refuses_once(supervise):
    env = dict(os.environ, SLOT_ID="5")
    s = supervise({"gated.svc": daemon(allowed_slot_min=0, allowed_slot_max=3),
                   "open.svc": daemon(allowed_slot_min=2, stable_secs=0)}, env=env, scale=0.01)
    s.wait_state("gated", "EXCISED")
    s.wait_state("open", "FUNDAMENTAL")          # min alone means [2, inf)
    time.sleep(1)
    hazards = [line for line in s.console_text().splitlines() if "HAZARD" in line]
    assert hazards == ["[schema-init] HAZARD: 'gated' slot constraint violation (SLOT_ID=5, "
                       "allowed=[0,3]) \u2014 spawn refused"]
    assert s.events("gated") == ["spawn-fail"]
    assert s.ctl("reset", "gated").stdout == "ok: reset and queued gated\n"


def test_instances_get_instance(supervise, tmp_path):
    out = tmp_path / "instances"
    s = supervise({"motor@.svc": daemon('echo "$INSTANCE" >> %s' % out, oneshot=1),
                   "motor@1.svc": ("symlink", "motor@.svc"),
                   "motor@2.svc": ("symlink", "motor@.svc")})
    s.wait_state("motor@1", "PERFECT")
    s.wait_state("motor@2", "PERFECT")
    assert sorted(out.read_text().split()) == ["1", "2"]
    assert s.ctl("list").stdout == "motor@1\nmotor@2\n"


def test_slot_detect_env_reaches_later_services(supervise, tmp_path):
    out = tmp_path / "seen"
    s = Supervised(tmp_path, {})
    env_file = os.path.join(s.run_dir, "schema-init", "env")
    s = supervise({"slot-detect.svc": daemon("mkdir -p %s" % os.path.dirname(env_file),
                                             "printf 'SLOT_ID = 7\\n# c\\n' > %s" % env_file,
                                             oneshot=1),
                   "later.svc": daemon('echo "$SLOT_ID" > %s' % out, oneshot=1,
                                       dep="slot-detect")})
    s.wait_state("later", "PERFECT")
    assert out.read_text() == "7\n"


def test_add_rejects_a_cycle_and_accepts_a_good_file(supervise, tmp_path):
    s = supervise({"a.svc": daemon(dep="x")})
    bad = tmp_path / "x.svc"
    bad.write_text(daemon(dep="a"))
    result = s.ctl("add", str(bad))
    assert result.stdout == "err: 'x' introduces a dependency cycle \u2014 rejected\n"
    assert result.returncode == 1
    good = tmp_path / "other" / "x.svc"
    good.parent.mkdir()
    good.write_text(daemon(stable_secs=0))
    assert s.ctl("add", str(good)).stdout == "ok: x queued\n"
    s.wait_state("a", "FULL_TRUST")
    assert s.ctl("add", str(good)).stdout == "err: 'x' already loaded\n"
    assert s.ctl("add", str(tmp_path / "none.svc")).stdout.startswith(
        "err: failed to load %s\n" % (tmp_path / "none.svc"))


def test_reload_adds_keeps_and_evicts(supervise):
    s = supervise({"keep.svc": daemon(stable_secs=0),
                   "gone.svc": daemon("trap '' TERM; while :; do sleep 0.1; done", stable_secs=0)},
                  scale=0.3)
    s.wait_state("keep", "FUNDAMENTAL")
    s.wait_state("gone", "FUNDAMENTAL")
    s.wait_trapped("gone")
    keep_pid = s.status()["keep"]["pid"]
    gone_pid = int(s.status()["gone"]["pid"])
    os.unlink(os.path.join(s.services, "gone.svc"))
    s.write("new.svc", daemon(stable_secs=0))
    reply = s.ctl("reload", "--evict")
    assert reply.stdout.splitlines()[:3] == ["ok: reload (evict mode)", "  added: new",
                                             "  removed: gone"]
    s.wait_state("new", "FUNDAMENTAL")
    assert s.status()["keep"]["pid"] == keep_pid
    assert "gone" not in s.status()
    s.wait(lambda: not os.path.exists("/proc/%d" % gone_pid), 5, "evicted process killed")
    assert "eviction grace expired: force-killed pid=%d" % gone_pid in s.console_text()


def test_reload_rejects_a_cycle_and_keeps_running(supervise):
    s = supervise({"a.svc": daemon(stable_secs=0)})
    s.wait_state("a", "FUNDAMENTAL")
    s.write("b.svc", daemon(dep="c"))
    s.write("c.svc", daemon(dep="b"))
    reply = s.ctl("reload")
    assert reply.returncode == 1
    assert reply.stdout == ("err: reload rejected \u2014 dependency cycle in new "
                            "configuration: b -> c -> b\n")
    assert s.ctl("list").stdout == "a\n"


def test_reload_applies_edits_to_stopped_services(supervise, tmp_path):
    out = tmp_path / "out"
    s = supervise({"job.svc": daemon("echo one >> %s" % out, oneshot=1)})
    s.wait_state("job", "PERFECT")
    s.write("job.svc", daemon("echo two >> %s" % out, oneshot=1))
    assert s.ctl("reload").stdout.splitlines()[:2] == ["ok: reload (graceful)", "  changed: job"]
    assert s.ctl("start", "job").stdout == "ok: job queued\n"
    s.wait(lambda: out.read_text() == "one\ntwo\n", 5, "edited job ran")


def test_stop_kills_a_service_that_ignores_sigterm_after_its_stop_timeout(supervise):
    s = supervise({"stubborn.svc": daemon("trap '' TERM; while :; do sleep 0.1; done",
                                          stable_secs=0, stop_timeout_sec=1)})
    s.wait_state("stubborn", "FUNDAMENTAL")
    s.wait_trapped("stubborn")
    pid = int(s.status()["stubborn"]["pid"])
    t0 = time.monotonic()
    reply = s.ctl("stop", "stubborn")
    assert reply.stdout == "ok: SIGTERM \u2192 stubborn (pid %d)\n" % pid
    assert time.monotonic() - t0 < 0.5, "stop must not wait for the process"
    s.wait_state("stubborn", "EXCISED", timeout=5)
    elapsed = time.monotonic() - t0
    assert 0.9 <= elapsed <= 3.0
    assert not os.path.exists("/proc/%d" % pid)


def test_every_reply_string_byte_for_byte(supervise, tmp_path):
    s = supervise({"d.svc": daemon(stable_secs=0), "o.svc": "exec=/bin/true\noneshot=1\n",
                   "x.svc": "exec=/bin/true\noneshot=1\n",
                   "g.grp": "name=g\nmember=d\n"})
    s.wait_state("d", "FUNDAMENTAL")
    s.wait_state("o", "PERFECT")
    s.wait_state("x", "PERFECT")
    pid = int(s.status()["d"]["pid"])

    def reply(*args):
        return s.ctl(*args).stdout

    assert reply("status") == (
        "services: 3  groups: 1\n"
        "  d                         pid=%-6d  state=FUNDAMENTAL     restarts=1\n"
        "  o                         pid=0       state=PERFECT         restarts=1\n"
        "  x                         pid=0       state=PERFECT         restarts=1\n" % pid)
    assert reply("status", "--kv") == (
        "services_count=3\ngroups_count=1\n"
        "service.d.pid=%d\nservice.d.state=FUNDAMENTAL\nservice.d.restarts=1\n"
        "service.o.pid=0\nservice.o.state=PERFECT\nservice.o.restarts=1\n"
        "service.x.pid=0\nservice.x.state=PERFECT\nservice.x.restarts=1\n" % pid)
    assert reply("status", "--json") == (
        '{\n  "services_count": 3,\n  "groups_count": 1,\n  "services": [\n'
        '    {\n      "name": "d",\n      "pid": %d,\n      "state": "FUNDAMENTAL",\n'
        '      "restarts": 1\n    },\n'
        '    {\n      "name": "o",\n      "pid": 0,\n      "state": "PERFECT",\n'
        '      "restarts": 1\n    },\n'
        '    {\n      "name": "x",\n      "pid": 0,\n      "state": "PERFECT",\n'
        '      "restarts": 1\n    }\n  ]\n}\n' % pid)
    assert reply("list") == "d\no\nx\n"
    timing = reply("timing").splitlines()
    assert timing[0].startswith("kernel \u2192 PID 1:            ") and timing[0].endswith("s")
    assert [line.split()[0] for line in timing[1:]] == ["d", "o", "x"]
    assert reply("pet", "d") == "ok\n"
    assert reply("pet", "nope") == "err: not found: nope\n"
    assert reply("start", "d") == "err: d is FUNDAMENTAL\n"
    assert reply("start", "nope") == "err: not found: nope\n"
    assert reply("up", "o") == "ok: o queued\n"
    s.wait_state("o", "PERFECT")
    assert reply("restart", "o") == "ok: o requeued\n"
    s.wait_state("o", "PERFECT")
    assert reply("reset") == "ok: reset all services\n"
    s.wait_state("x", "PERFECT")
    assert reply("reset", "d") == "ok: reset restart count for d (current state: FUNDAMENTAL)\n"
    assert reply("reset", "nope") == "err: not found: nope\n"
    assert reply("stop", "x") == "ok: x stopped (was not running)\n"
    assert reply("reset", "x") == "ok: reset and queued x\n"
    assert reply("down", "nope") == "err: not found: nope\n"
    assert reply("restart", "d") == "ok: SIGTERM \u2192 d \u2014 recovery arc will respawn\n"
    s.wait(lambda: s.status()["d"]["pid"] not in ("0", str(pid)) and
           s.state("d") == "FUNDAMENTAL", 10, "d respawned")
    assert "retry" in s.events("d")
    assert reply("frobnicate", "x") == "err: unknown: frobnicate x\n"
    assert reply("reload") == "ok: reload (graceful)\n"
    assert reply("reload", "--evict") == "ok: reload (evict mode)\n"
    # the terminator is stripped by schema-ctl; on the wire it is the last line
    import socket
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(s.socket)
    sock.sendall(b"list\n")
    data = b""
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    assert data == b"d\no\nx\n.\n"


def test_poweroff_and_reboot_replies_stop_the_supervisor(supervise):
    s = supervise({"d.svc": daemon(stable_secs=0)})
    s.wait_state("d", "FUNDAMENTAL")
    assert s.ctl("poweroff").stdout == "ok: powering off\n"
    assert s.proc.wait(15) == 0
    assert "[schema-init] stopped" in s.console_text()


def test_non_root_client_is_refused_mutating_verbs(supervise, world_tmp):
    s = supervise({"d.svc": daemon(stable_secs=0)}, root=world_tmp)
    os.chmod(s.run_dir, 0o755)
    assert oct(os.stat(s.socket).st_mode & 0o777) == "0o600"
    s.wait_state("d", "FUNDAMENTAL")
    os.chmod(s.socket, 0o666)            # test only: let uid 65534 connect at all
    refused = s.ctl("stop", "d", uid=65534)
    assert refused.stdout == "err: 'stop d' requires root (uid 65534 has read-only access)\n"
    assert refused.returncode == 1
    assert s.ctl("status", uid=65534).stdout.startswith("services: 1  groups: 0\n")
    assert s.ctl("list", uid=65534).stdout == "d\n"
    assert s.ctl("statusx", uid=65534).stdout.startswith("err: 'statusx' requires root")
    assert s.state("d") == "FUNDAMENTAL"


def test_unreachable_socket_exit_codes(tmp_path):
    from conftest import program
    import subprocess
    result = subprocess.run([program("schema-ctl"), "--socket", str(tmp_path / "no.sock"),
                             "status"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 3 and "is it running?" in result.stderr
    usage = subprocess.run([program("schema-ctl")], capture_output=True, text=True, timeout=30)
    assert usage.returncode == 2 and "usage:" in usage.stderr


def test_slow_client_does_not_delay_reaping(supervise):
    import socket
    import threading
    s = supervise({"victim.svc": daemon(stable_secs=0, max_restarts=100)})
    s.wait_state("victim", "FUNDAMENTAL")
    pid = int(s.status()["victim"]["pid"])
    stop = threading.Event()

    def trickle():
        sock = socket.socket(socket.AF_UNIX)
        sock.connect(s.socket)
        try:
            while not stop.is_set():
                sock.send(b"s")
                time.sleep(0.09)
        except OSError:
            pass
        finally:
            sock.close()

    clients = [threading.Thread(target=trickle) for _ in range(4)]
    for c in clients:
        c.start()
    try:
        time.sleep(0.3)
        t0 = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        s.wait(lambda: s.shm()["services"][0][3] != pid, 5, "death noticed in shm")
        assert time.monotonic() - t0 < 0.5
        t1 = time.monotonic()
        assert s.ctl("status").returncode == 0
        assert time.monotonic() - t1 < 1.0
    finally:
        stop.set()
        for c in clients:
            c.join()


def test_shutdown_on_sigterm_stops_services_and_exits_zero(supervise):
    s = supervise({"a.svc": daemon(stable_secs=0), "b.svc": daemon(dep="a", stable_secs=0)})
    s.wait_state("b", "FUNDAMENTAL")
    pids = [int(s.status()[n]["pid"]) for n in ("a", "b")]
    assert s.stop() == 0
    for pid in pids:
        assert not os.path.exists("/proc/%d" % pid)
    stops = [n for n, e, _, _ in s.rail() if e == "stopped"]
    assert stops == ["b", "a"]           # dependents first
    assert not os.path.exists("/dev/shm" + s.shm_name)
    assert not os.path.exists(s.socket)


def proc_status_field(pid, name):
    """A field of /proc/PID/status ("PPid", "State", ...), or None once the pid is gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                key, _, value = line.partition(":")
                if key == name:
                    return value.strip()
    except FileNotFoundError:
        return None
    return None


def test_an_orphaned_grandchild_is_adopted_by_the_supervisor_and_reaped(supervise, tmp_path):
    """The service's subshell starts a grandchild and exits at once: the grandchild is
    re-parented to the supervisor (its child subreaper), not to the machine's init, and
    when it exits the supervisor reaps it: its pid leaves /proc (no zombie anywhere),
    while the service itself runs on."""
    record, go = tmp_path / "grandchild", tmp_path / "go"
    grandchild = "echo \\$\\$ > %s.new; mv %s.new %s; while [ ! -e %s ]; do sleep 0.05; done" \
        % (record, record, record, go)
    s = supervise({"forker.svc": daemon('(sh -c "%s" &)' % grandchild, "exec sleep 1000",
                                        stable_secs=0)})
    s.wait_state("forker", "FUNDAMENTAL")
    service = int(s.status()["forker"]["pid"])
    s.wait(record.exists, 10, "the grandchild's pid")
    orphan = int(record.read_text())
    assert orphan not in (service, s.proc.pid)
    # its parent, the subshell, exits at once: then the orphan's parent is the supervisor
    try:
        s.wait(lambda: proc_status_field(orphan, "PPid") == str(s.proc.pid), 10, "adoption")
    except AssertionError:
        raise AssertionError("orphan %d not adopted by the supervisor %d: its parent is %s"
                             % (orphan, s.proc.pid, proc_status_field(orphan, "PPid")))
    assert not proc_status_field(orphan, "State").startswith("Z")
    go.touch()
    try:
        s.wait(lambda: proc_status_field(orphan, "State") is None, 10, "the pid gone")
    except AssertionError:
        raise AssertionError("orphan %d not reaped: State %s, PPid %s" % (
            orphan, proc_status_field(orphan, "State"), proc_status_field(orphan, "PPid")))
    assert s.state("forker") == "FUNDAMENTAL" and int(s.status()["forker"]["pid"]) == service
    assert "died" not in s.events("forker")


def test_missing_binary_is_refused_with_reason_and_retried(supervise):
    s = supervise({"ghost.svc": "exec=/nonexistent/daemon\nmax_restarts=2\n"}, scale=0.01)
    s.wait_state("ghost", "DORMANT", timeout=5)
    assert s.events("ghost")[:4] == ["spawn-fail", "retry", "spawn-fail", "friction"]
    assert "exec path does not exist" in s.status()["ghost"]["reason"]
    assert s.status()["ghost"]["restarts"] == "0"


def test_unknown_user_is_refused(supervise):
    s = supervise({"u.svc": daemon(user="no-such-user-xyz", max_restarts=1)}, scale=0.01)
    s.wait_state("u", ("RECOVERY", "DORMANT", "FRICTION"))
    assert "unknown user 'no-such-user-xyz'" in s.status()["u"]["reason"]


# A user with a primary group and two supplementary ones, in files of the test's own:
# svc-other lists a different name that merely starts with the user's.
TEST_PASSWD = ("root:x:0:0:root:/root:/bin/sh\n"
               "svc-test:x:64101:64102:the user-drop test:/nonexistent:/usr/sbin/nologin\n")
TEST_GROUP = ("root:x:0:\nsvc-main:x:64102:\nsvc-extra:x:64103:root,svc-test\n"
              "svc-more:x:64104:svc-test\nsvc-other:x:64105:svc-testing\n")


def test_user_drop_gives_the_uid_gid_and_groups_the_account_files_say(tmp_path):
    """user=svc-test: the running service has the uid and gid of its /etc/passwd line
    (real, effective, saved and filesystem ids alike) and, as supplementary groups, its
    primary group and exactly the /etc/group lines that list it.  The supervisor runs
    in a private mount namespace where the test's files are /etc/passwd and /etc/group
    (and /run/user, where it makes the user's runtime directory, is a tmpfs)."""
    adv.require_root("unshare")
    passwd, group = tmp_path / "passwd", tmp_path / "group"
    passwd.write_text(TEST_PASSWD)
    group.write_text(TEST_GROUP)
    setup = ("mount --bind %s /etc/passwd\nmount --bind %s /etc/group\n"
             "if [ -d /run/user ]; then mount -t tmpfs -o mode=0755 test-runtime /run/user\n"
             "else mount -t tmpfs -o mode=0755 test-run /run; mkdir /run/user; fi"
             % (passwd, group))
    s = adv.Adversary(tmp_path / "sup", {"dropped.svc": daemon(user="svc-test",
                                                               stable_secs=0)},
                      prefix=adv.in_mount_namespace(setup))
    try:
        s.start()
        s.wait_state("dropped", "FUNDAMENTAL")
        pid = int(s.status()["dropped"]["pid"])
        with open("/proc/%d/status" % pid) as f:
            status = dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
    finally:
        s.cleanup()
    assert status["Uid"].split() == ["64101"] * 4, status["Uid"]
    assert status["Gid"].split() == ["64102"] * 4, status["Gid"]
    assert sorted(status["Groups"].split()) == ["64102", "64103", "64104"], status["Groups"]


def test_service_gets_a_clean_signal_mask_and_default_sigpipe(supervise, tmp_path):
    out = tmp_path / "status"
    s = supervise({"m.svc": daemon("grep -E 'SigBlk|SigIgn' /proc/self/status > %s" % out,
                                   oneshot=1)})
    s.wait_state("m", "PERFECT")
    lines = dict(line.split(":\t") for line in out.read_text().splitlines())
    assert int(lines["SigBlk"], 16) == 0
    assert int(lines["SigIgn"], 16) & (1 << (signal.SIGPIPE - 1)) == 0


def test_idle_supervisor_makes_no_wakeups(supervise):
    s = supervise({"a.svc": daemon(stable_secs=0), "b.svc": daemon(stable_secs=0)})
    s.wait_state("a", "FUNDAMENTAL")
    s.wait_state("b", "FUNDAMENTAL")
    time.sleep(0.5)

    def switches():
        for line in open("/proc/%d/status" % s.proc.pid):
            if line.startswith("voluntary_ctxt_switches"):
                return int(line.split()[1])
    before = switches()
    time.sleep(2)
    assert switches() - before == 0


def test_dead_man_token_pets_only_while_every_watchdog_service_pets(supervise, tmp_path):
    fifo = tmp_path / "watchdog"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        s = supervise({"beat.svc": daemon(stable_secs=0, watchdog_timeout_ms=600),
                       "plain.svc": daemon(stable_secs=0)},
                      args=["--watchdog", str(fifo), "--watchdog-interval", "0.1"])
        assert "opened hardware watchdog (%s)" % fifo in s.console_text()
        s.wait_state("beat", "FUNDAMENTAL")

        def drain():
            try:
                return os.read(reader, 65536)
            except BlockingIOError:
                return b""
        drain()
        for _ in range(8):                        # the service pets in time: PID 1 pets
            assert s.ctl("pet", "beat").stdout == "ok\n"
            time.sleep(0.15)
        petted = drain()
        assert len(petted) >= 5 and set(petted) == {0}
        time.sleep(1.0)                           # it stops petting: PID 1 stops too
        s.wait(lambda: "watchdog: service 'beat' missed pet window" in s.console_text(), 3,
               "miss line")
        drain()
        time.sleep(0.6)
        assert drain() == b""
        assert s.console_text().count("missed pet window") == 1
        s.ctl("pet", "beat")                      # it comes back: petting resumes
        time.sleep(0.35)
        assert len(drain()) >= 2
    finally:
        os.close(reader)


def cgroup2_mount():
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            if right.split(" ", 1)[0] == "cgroup2":
                return left.split(" ")[4]
    return None


def unified_cgroup(pid):
    """The cgroup2 path (the 0:: line) of /proc/PID/cgroup, or None."""
    with open("/proc/%s/cgroup" % pid) as f:
        for line in f:
            if line.startswith("0::"):
                return line[3:].rstrip("\n")
    return None


def cgroup2_unavailable():
    """Why services cannot have cgroups here, or None.  Found without asking the
    supervisor, so one that wrongly runs its services without cgroups fails."""
    mount, own = cgroup2_mount(), unified_cgroup("self")
    if mount is None or own is None:
        return "no cgroup2 hierarchy is mounted"
    probe = os.path.join(mount + own.rstrip("/"), "schema-test-probe.%d" % os.getpid())
    try:
        os.mkdir(probe)
    except OSError as exc:
        return "no cgroup can be made below %s%s (%s)" % (mount, own, exc.strerror)
    os.rmdir(probe)
    return None


def test_service_runs_inside_its_own_cgroup_from_its_first_instruction(supervise, tmp_path):
    """Its first command, its main process and a child it forks are all in the service's
    own cgroup (<shm tag>.<supervisor pid>/placed), whose cgroup.procs lists them."""
    why = cgroup2_unavailable()
    if why:
        pytest.skip("cgroup v2 is not available: %s" % why)
    first, child = tmp_path / "first", tmp_path / "child"
    s = supervise({"placed.svc": daemon("cat /proc/self/cgroup > %s" % first,
                                        "sleep 1000 & echo $! > %s.new" % child,
                                        "mv %s.new %s" % (child, child),
                                        "exec sleep 1000", stable_secs=0)})
    s.wait_state("placed", "FUNDAMENTAL")
    s.wait(child.exists, 10, "the pid of the service's child")
    main, forked = int(s.status()["placed"]["pid"]), int(child.read_text())
    own = "/schema-init.%s.%d/placed" % (s.shm_name.strip("/"), s.proc.pid)
    first_line = [line for line in first.read_text().splitlines() if line.startswith("0::")]
    placed = {"its first command": first_line[0][3:] if first_line else None,
              "its main process": unified_cgroup(main),
              "the child it forked": unified_cgroup(forked)}
    for who, path in placed.items():
        assert path is not None and path.endswith(own), (who, path, own, s.console_text())
    with open(cgroup2_mount() + placed["its main process"] + "/cgroup.procs") as f:
        members = f.read().split()
    assert {str(main), str(forked)} <= set(members), members


def test_reexec_hands_over_running_services(supervise):
    s = supervise({"a.svc": daemon(stable_secs=0), "b.svc": daemon(dep="a", stable_secs=0),
                   "o.svc": "exec=/bin/true\noneshot=1\n"})
    s.wait_state("b", "FUNDAMENTAL")
    s.wait_state("o", "PERFECT")
    before = s.status()
    assert s.ctl("schedule", "reboot", "3600").returncode == 0       # shutdown +60
    assert s.ctl("reexec").stdout == "ok: re-executing\n"
    s.wait(lambda: "resumed: 3 service(s) handed over" in s.console_text(), 10, "resume")
    s.wait(lambda: os.path.exists(s.socket) and s.ctl("status").returncode == 0, 10, "socket")
    assert "shutdown scheduled: reboot in 3" in s.ctl("status").stdout, "kept across exec"
    assert s.ctl("cancel").returncode == 0
    after = s.status()
    for name in ("a", "b", "o"):
        assert after[name]["pid"] == before[name]["pid"]
        assert after[name]["state"] == before[name]["state"]
        assert after[name]["restarts"] == before[name]["restarts"]
    assert s.proc.poll() is None
    # the handed-over children are still ours: a death is noticed and respawned
    os.kill(int(after["a"]["pid"]), signal.SIGKILL)
    s.wait(lambda: s.status()["a"]["pid"] not in ("0", after["a"]["pid"]) and
           s.state("a") == "FUNDAMENTAL", 10, "a respawned after re-exec")


def test_fatal_error_in_the_loop_reexecs_and_services_keep_their_pids(supervise):
    env = dict(os.environ, SCHEMA_INIT_TEST_HOOKS="1")
    s = supervise({"a.svc": daemon(stable_secs=0)}, env=env)
    s.wait_state("a", "FUNDAMENTAL")
    pid = s.status()["a"]["pid"]
    supervisor_pid = s.proc.pid
    s.ctl("test-fatal")
    s.wait(lambda: "resumed: 1 service(s) handed over" in s.console_text(), 10, "resume")
    assert "fatal error, re-executing" in s.console_text()
    s.wait(lambda: os.path.exists(s.socket) and s.ctl("status").returncode == 0, 10, "socket")
    assert s.status()["a"]["pid"] == pid and s.state("a") == "FUNDAMENTAL"
    assert s.proc.pid == supervisor_pid and s.proc.poll() is None


def test_test_hook_is_off_by_default(supervise):
    s = supervise({"a.svc": daemon(stable_secs=0)})
    assert s.ctl("test-fatal").stdout == "err: unknown: test-fatal\n"


@pytest.mark.parametrize("command,state", [("poweroff", 13), ("reboot", 14)])
def test_shm_system_state_shows_the_shutdown_while_services_stop(supervise, command, state):
    # the state shows for the slow service's whole stop timeout (5 s): a window a loaded
    # machine cannot miss
    s = supervise({"slow.svc": daemon("trap '' TERM; while :; do sleep 0.1; done",
                                      stable_secs=0, stop_timeout_sec=5)})
    s.wait_state("slow", "FUNDAMENTAL")
    s.wait_trapped("slow")
    assert s.shm()["system_state"] == 0
    s.ctl(command)
    s.wait(lambda: s.shm()["system_state"] == state, 4, "system_state %d" % state)
    assert s.proc.wait(15) == 0


def test_a_service_starts_with_every_signal_at_its_default_whatever_the_supervisor_ignores(
        tmp_path):
    """Started by nohup, or as a script's background job, the supervisor ignores SIGHUP
    and SIGINT; its services must not: a shell cannot trap a signal that was ignored when
    it started (a reload by SIGHUP, a stop by SIGINT would do nothing)."""
    s = Supervised(tmp_path, {"a.svc": daemon("trap 'echo hup' HUP", "exec sleep 1000",
                                              stable_secs=0)})
    saved = [signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGHUP, signal.SIGINT,
                                                            signal.SIGUSR1)]
    try:
        s.start()
    finally:
        for sig, old in zip((signal.SIGHUP, signal.SIGINT, signal.SIGUSR1), saved):
            signal.signal(sig, old)
    try:
        s.wait_state("a", "FUNDAMENTAL")
        with open("/proc/%d/status" % s.proc.pid) as f:
            assert int(re.search(r"^SigIgn:\s+(\w+)", f.read(), re.M).group(1), 16) & \
                (1 << (signal.SIGHUP - 1)), "the supervisor itself was started ignoring SIGHUP"
        s.wait(lambda: os.readlink("/proc/%s/exe" % s.status()["a"]["pid"]).endswith("sleep"),
               10, "the service's program")
        with open("/proc/%s/status" % s.status()["a"]["pid"]) as f:
            status = f.read()
        # signals 1-31 at their defaults (32 and 33 are glibc's own, which no program can
        # set: where this test runs may have left 32 ignored)
        ignored = int(re.search(r"^SigIgn:\s+(\w+)", status, re.M).group(1), 16)
        assert ignored & 0x7fffffff == 0, status
        assert re.search(r"^SigBlk:\s+0+$", status, re.M), status
    finally:
        s.stop()


@pytest.mark.parametrize("mode,survives", [("process", True), ("control-group", False),
                                           ("mixed", False)])
def test_kill_mode_decides_whether_a_restart_takes_the_services_other_processes(
        supervise, tmp_path, mode, survives):
    """sshd's sessions are its children: kill_mode=process (what Debian's ssh.service asks
    of systemd) restarts the listener and leaves them; the default stops them all."""
    child = tmp_path / "child"
    s = supervise({"ssh.svc": daemon("sleep 1000 & echo $! > %s" % child, "exec sleep 1000",
                                     stable_secs=0, kill_mode=mode, stop_timeout_sec=2)})
    s.wait_state("ssh", "FUNDAMENTAL")
    s.wait(lambda: child.exists() and child.read_text().strip(), 5, "the session's pid")
    session = int(child.read_text())
    first = int(s.status()["ssh"]["pid"])
    child.unlink()
    s.ctl("restart", "ssh")
    s.wait(lambda: s.status()["ssh"]["pid"] not in ("0", str(first)) and child.exists(), 10,
           "a new main process")
    time.sleep(0.5)

    def alive(pid):
        try:
            with open("/proc/%d/stat" % pid) as f:
                return f.read().split()[2] != "Z"
        except OSError:
            return False
    assert alive(session) == survives
    if survives:
        os.kill(session, signal.SIGKILL)


def test_after_a_failed_service_starts_and_waits_while_its_target_starts(tmp_path):
    """after= (an imported After= alone) is ordering, not a requirement: ssh after a
    container's auditd that cannot start still runs; after= a service still starting
    (no READY=1 yet) waits."""
    s = Supervised(tmp_path, {
        "auditd.svc": "exec=/bin/false\nrestart=no\n",
        "ssh.svc": "exec=/bin/sleep\nargs=1000\nafter=auditd\n",
        "later.svc": "exec=/bin/sleep\nargs=1000\nafter=slow\n",
        "slow.svc": "exec=/bin/sh\nargs=-c\nargs=sleep 1000\nnotify=1\n"})
    try:
        s.start()
        s.wait_state("auditd", "EXCISED", 30)
        s.wait(lambda: s.state("ssh") in ("FULL_TRUST", "FUNDAMENTAL"), 20, "ssh running")
        # slow never says READY=1: later waits while slow is starting
        time.sleep(1.5)
        assert s.state("later") == "NEW_PROCESS"
        assert s.status()["later"].get("reason") == "waiting for slow", s.status()["later"]
    finally:
        s.stop()


def test_part_of_and_reload_from_follow_their_parent_as_systemd_propagates(tmp_path):
    """postgresql.service (a remain_after_exit oneshot) and postgresql@15-main (PartOf=,
    ReloadPropagatedFrom=): a stop, restart or reload of the parent reaches the
    instance; a service with no_reload=1 (a unit without ExecReload=) refuses a reload."""
    marks = tmp_path / "marks"
    s = Supervised(tmp_path, {
        "db.svc": "exec=/bin/true\noneshot=1\nremain_after_exit=1\n"
                  "exec_reload=/bin/sh -c \"echo parent >> %s\"\n" % marks,
        "db@main.svc": "exec=/bin/sh\nargs=-c\nargs=trap 'echo hup >> %s' HUP; "
                       "while :; do sleep 0.1; done\npart_of=db\nreload_from=db\n" % marks,
        "plain.svc": "exec=/bin/sleep\nargs=1000\nno_reload=1\n"})
    try:
        s.start()
        s.wait_state("db", "PERFECT", 20)
        s.wait_state("db@main", ("FULL_TRUST", "FUNDAMENTAL"), 20)
        s.wait_trapped("db@main", signal.SIGHUP)
        first = s.status()["db@main"]["pid"]
        reply = s.ctl("signal", "db", "HUP")
        assert reply.returncode == 0, reply.stdout + reply.stderr
        s.wait(lambda: marks.exists() and sorted(marks.read_text().split()) ==
               ["hup", "parent"], 10, "both reloaded")
        assert s.status()["db@main"]["pid"] == first                    # reloaded, kept
        refused = s.ctl("signal", "plain", "HUP")
        assert "cannot be reloaded" in refused.stdout + refused.stderr
        assert s.state("plain") in ("FULL_TRUST", "FUNDAMENTAL")
        s.ctl("restart", "db")
        s.wait(lambda: s.status()["db@main"]["pid"] not in ("0", first), 20,
               "db@main restarted with db")
        s.ctl("stop", "db")
        s.wait_state("db@main", "EXCISED", 20)
        assert s.state("plain") in ("FULL_TRUST", "FUNDAMENTAL")        # not bound: runs
    finally:
        s.stop()
