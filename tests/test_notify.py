"""sd_notify readiness (notify=1, watchdog_sec=): the datagram parser and the decisions
(pure, plain calls), the supervisor applying them (fake OS and clock), and real daemons
sending real datagrams to a real supervisor's NOTIFY_SOCKET (process tier)."""

import os
import random
import re
import socket
import sys
import threading
import time

import pytest

from harness import process_gone
from adversary import is_complete, raw_request
from fakes import FakeOps
from schema_init.core import config, graph, notify, protocol, schema, supervisor

# How long the loop may keep one status request waiting under a flood (as the adversarial
# suite's short form allows for the control socket).
STALL_LIMIT = 0.5
DAEMON = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "notify_daemon.py")


# --- the parser and the decisions (pure) -------------------------------------------------

def test_parse_reads_assignments_and_the_last_one_wins():
    fields = notify.parse(b"READY=1\nSTATUS=up and running\nno equals\nlower=1\n=x\n"
                          b"STATUS=serving 3\nX-Y=1\n\xffBAD=1\nERRNO=2")
    assert fields == {"READY": "1", "STATUS": "serving 3", "ERRNO": "2"}


def test_parse_survives_any_bytes():
    rng = random.Random(1234)
    for _ in range(2000):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 300)))
        fields = notify.parse(data)
        assert all(key.isupper() or key.replace("_", "").isalnum() for key in fields)
        notify.decide(notify.Facts(True, True, True), fields)


def facts(notify_=True, sender=True, claimed=False):
    return notify.Facts(notify_, sender, claimed)


def test_a_foreign_sender_decides_nothing():
    assert notify.decide(facts(sender=False), {"READY": "1", "MAINPID": "7"}) == [
        ("drop", "sender is not a process of the service")]


def test_ready_promotes_only_a_notify_service_and_ends_reloading():
    assert notify.decide(facts(), {"READY": "1"}) == [("phase", None), ("ready", None)]
    assert notify.decide(facts(notify_=False), {"READY": "1"}) == [("phase", None)]
    assert notify.decide(facts(), {"READY": "0"}) == []
    assert notify.decide(facts(), {"RELOADING": "1"}) == [("phase", "reloading")]
    assert notify.decide(facts(), {"STOPPING": "1"}) == [("phase", "stopping")]


def test_mainpid_is_taken_only_for_a_process_of_the_service():
    assert notify.decide(facts(claimed=True), {"MAINPID": "4242"}) == [("mainpid", 4242)]
    assert notify.decide(facts(claimed=False), {"MAINPID": "4242"}) == [
        ("refuse_mainpid", "4242")]
    for bad in ("0", "-5", "12x", "", "99999999999", "１２"):
        assert notify.decide(facts(claimed=True), {"MAINPID": bad})[0][0] == "refuse_mainpid"


def test_numbers_timeouts_and_the_watchdog():
    assert notify.decide(facts(), {"EXTEND_TIMEOUT_USEC": "2500000"}) == [("extend", 2.5)]
    assert notify.decide(facts(), {"WATCHDOG_USEC": "1500"}) == [("watchdog_window", 2)]
    assert notify.decide(facts(), {"WATCHDOG_USEC": "0"}) == [("watchdog_window", 0)]
    assert notify.decide(facts(), {"WATCHDOG": "1"}) == [("pet", None)]
    assert notify.decide(facts(), {"WATCHDOG": "trigger"}) == [("watchdog_trigger", None)]
    assert notify.decide(facts(), {"ERRNO": "5"}) == [("errno", 5)]
    for field in ("EXTEND_TIMEOUT_USEC", "WATCHDOG_USEC", "ERRNO"):
        for bad in ("-1", "x", "1" * 30, ""):
            assert notify.decide(facts(), {field: bad}) == []


def test_status_text_is_one_printable_bounded_line():
    [(verb, text)] = notify.decide(facts(), {"STATUS": "a\tb\x1bc" + "z" * 500})
    assert verb == "status" and text.startswith("a b c") and len(text) == notify.STATUS_MAX


def test_every_field_the_decisions_know_is_documented():
    spec = open(os.path.join(os.path.dirname(__file__), "..", "docs", "spec.md")).read()
    section = spec.split("### sd_notify readiness", 1)[1].split("\n## ", 1)[0]
    for field in notify.FIELDS:
        assert "`%s" % field in section, field


# --- the keys --------------------------------------------------------------------------

def test_notify_and_watchdog_sec_load_without_warnings():
    spec, diags = config.parse_service("/s/a.svc", b"exec=/bin/true\nnotify=1\nwatchdog_sec=5\n")
    assert diags == [] and spec.notify is True and spec.watchdog_sec == 5


def test_ready_path_is_ignored_with_notify():
    spec, diags = config.parse_service("/s/a.svc",
                                       b"exec=/bin/true\nnotify=1\nready_path=/run/a\n")
    assert spec.ready_path == ""
    assert [d.format() for d in diags] == [
        "/s/a.svc:3: warning: ready_path: ignored with notify=1 (READY=1 on NOTIFY_SOCKET "
        "promotes)"]


# --- the supervisor applying the decisions (fake OS) ------------------------------------

class NotifyOps(FakeOps):
    """A fake OS in which the service's processes are the main pid and ``members``."""

    def __init__(self):
        super().__init__()
        self.members = set()
        self.spawn_env = {}

    def spawn(self, service, argv, env, nice, account):
        self.spawn_env[service.name] = env
        return super().spawn(service, argv, env, nice, account)

    def belongs(self, service, pid):
        return pid == service.pid or pid in self.members


def make(*specs, **kwargs):
    ops = NotifyOps()
    sup = supervisor.Supervisor(graph.resolve(list(specs), []), ops, 0.0, 1e9, **kwargs)
    sup.settle(0.0)
    return sup, ops


def svc(name="a", **keys):
    return config.ServiceSpec(name=name, exec="/bin/true", **keys)


def test_a_notify_service_is_full_trust_until_ready_whatever_stable_secs_says():
    sup, ops = make(svc(notify=True, stable_secs=0))
    a = sup.services["a"]
    assert a.state == schema.FULL_TRUST and sup.next_deadline() is None
    sup.on_due(100.0, 1e9)
    assert a.state == schema.FULL_TRUST
    sup.on_notify("a", (a.pid, 0), b"STATUS=starting", 100.0)
    assert a.state == schema.FULL_TRUST and a.notify_status == "starting"
    sup.on_notify("a", (a.pid, 0), b"READY=1\nSTATUS=serving", 101.0)
    assert a.state == schema.FUNDAMENTAL and a.notify_status == "serving"
    assert ("a", "promote") in ops.rails


def test_a_datagram_from_another_process_is_dropped_and_counted():
    sup, ops = make(svc(notify=True))
    a = sup.services["a"]
    sup.on_notify("a", (a.pid + 1000, 0), b"READY=1", 1.0)
    sup.on_notify("a", (a.pid, 0), None, 1.0)                 # truncated
    assert a.state == schema.FULL_TRUST and a.notify_dropped == 2
    ops.members.add(a.pid + 1000)                             # a child of the service
    sup.on_notify("a", (a.pid + 1000, 0), b"READY=1", 2.0)
    assert a.state == schema.FUNDAMENTAL


def test_start_timeout_still_applies_and_extend_timeout_moves_it():
    sup, ops = make(svc(notify=True, start_timeout_sec=5))
    a = sup.services["a"]
    assert a.start_timeout_at == 5.0
    sup.on_notify("a", (a.pid, 0), b"EXTEND_TIMEOUT_USEC=10000000", 4.0)
    assert a.start_timeout_at == 14.0
    sup.on_notify("a", (a.pid, 0), b"EXTEND_TIMEOUT_USEC=1000000", 5.0)  # never shortens
    assert a.start_timeout_at == 14.0
    sup.on_due(13.9, 1e9)
    assert a.state == schema.FULL_TRUST
    sup.on_due(14.0, 1e9)
    assert a.state == schema.EXCISED and ("a", "start-timeout") in ops.rails


def test_extend_timeout_while_stopping_delays_the_sigkill():
    sup, ops = make(svc(notify=True, stop_timeout_sec=2))
    a = sup.services["a"]
    sup.on_notify("a", (a.pid, 0), b"READY=1", 1.0)
    sup.cmd_stop("a", 10.0)
    assert a.kill_at == 12.0
    sup.on_notify("a", (a.pid, 0), b"STOPPING=1\nEXTEND_TIMEOUT_USEC=5000000", 11.0)
    assert a.kill_at == 16.0 and a.notify_phase == "stopping"


def test_mainpid_moves_the_tracked_pid_and_its_exit_is_the_service_s_death():
    sup, ops = make(svc(notify=True))
    a = sup.services["a"]
    first = a.pid
    sup.on_notify("a", (first, 0), b"MAINPID=999", 1.0)      # not the service's
    assert a.pid == first and a.notify_dropped == 1
    ops.members.add(555)
    sup.on_notify("a", (first, 0), b"MAINPID=555\nREADY=1", 1.0)
    assert a.pid == 555 and a.state == schema.FUNDAMENTAL
    assert not sup.on_exit(first, 0, 2.0) or a.state == schema.FUNDAMENTAL
    assert a.state == schema.FUNDAMENTAL
    sup.on_exit(555, 256, 3.0)
    assert a.state == schema.RECOVERY


def test_reloading_is_shown_until_ready_and_errno_is_kept():
    sup, ops = make(svc(notify=True))
    a = sup.services["a"]
    sup.on_notify("a", (a.pid, 0), b"READY=1", 1.0)
    sup.on_notify("a", (a.pid, 0), b"RELOADING=1\nSTATUS=reloading config\nERRNO=2", 2.0)
    assert a.notify_phase == "reloading" and a.notify_errno == 2
    lines = "\n".join(protocol.format_status(sup))
    assert 'status="reloading config"  notify=reloading  errno=2' in lines
    kv = protocol.format_status_kv(sup)
    assert "service.a.status=reloading config" in kv and "service.a.notify=reloading" in kv
    json_text = "\n".join(protocol.format_status_json(sup))
    assert '"status": "reloading config",' in json_text and '"errno": 2,' in json_text
    import json
    assert json.loads(json_text)["services"][0]["notify"] == "reloading"
    sup.on_notify("a", (a.pid, 0), b"READY=1", 3.0)
    assert a.notify_phase is None and a.state == schema.FUNDAMENTAL


def test_watchdog_sec_arms_the_dead_man_token_and_watchdog_pets_it():
    sup, ops = make(svc(notify=True, watchdog_sec=2), watchdog_interval=0.5)
    a = sup.services["a"]
    assert ops.spawn_env["a"]["WATCHDOG_USEC"] == "2000000"
    for now in (0.0, 1.5, 3.0, 4.5):
        sup.on_notify("a", (a.pid, 0), b"WATCHDOG=1", now)
        sup.on_due(now + 0.1, 1e9)
    assert not any("missed pet window" in line for line in ops.said)
    sup.on_due(7.0, 1e9)                                      # 2.5 s without a pet
    assert any("service 'a' missed pet window" in line for line in ops.said)
    pets = ops.pets
    sup.on_due(8.0, 1e9)
    assert ops.pets == pets                                   # the hardware is not petted


def test_watchdog_usec_from_the_daemon_arms_and_trigger_trips():
    sup, ops = make(svc(notify=True), watchdog_interval=0.5)
    a = sup.services["a"]
    sup.on_due(50.0, 1e9)
    assert not ops.said                                       # no window yet
    sup.on_notify("a", (a.pid, 0), b"WATCHDOG_USEC=1000000", 50.0)
    sup.on_due(50.5, 1e9)
    assert not ops.said
    sup.on_notify("a", (a.pid, 0), b"WATCHDOG=trigger", 50.6)
    sup.on_due(50.6, 1e9)
    assert any("missed pet window" in line for line in ops.said)


def test_a_spawn_forgets_what_the_last_run_said():
    sup, ops = make(svc(notify=True))
    a = sup.services["a"]
    sup.on_notify("a", (a.pid, 0), b"READY=1\nSTATUS=x\nERRNO=3\nRELOADING=1", 1.0)
    sup.on_exit(a.pid, 256, 2.0)
    sup.on_due(3.0, 1e9)
    sup.settle(3.0)
    assert a.state == schema.FULL_TRUST and a.notify_status == "" and a.notify_errno is None
    assert a.notify_phase is None and not a.ready_seen


def test_a_handed_over_notify_service_waits_for_ready_unless_it_was_seen():
    for seen, expected in ((False, schema.FULL_TRUST), (True, schema.FUNDAMENTAL)):
        ops = NotifyOps()
        sup = supervisor.Supervisor(graph.resolve([svc(notify=True)], []), ops, 0.0, 1e9)
        record = {"pid": 77, "restarts": 1, "failures": 0, "dormant": 0, "cgroup": "",
                  "stable_time": None, "ready_seen": seen, "state": schema.FULL_TRUST}
        sup.fire(sup.services["a"], "adopt", 0.0, record=record)
        sup.on_due(0.0, 1e9)
        assert sup.services["a"].state == expected


# --- real daemons, real datagrams (process tier) -----------------------------------------

def notify_svc(*steps, **keys):
    text = "exec=%s\nargs=%s\n" % (sys.executable, DAEMON) + \
        "".join("args=%s\n" % step for step in steps) + "notify=1\n"
    return text + "".join("%s=%s\n" % kv for kv in keys.items())


def env_of(s, name):
    match = s.wait(lambda: re.search(r"NOTIFY_SOCKET=(\S+) WATCHDOG_USEC=(\S+) "
                                     r"WATCHDOG_PID=(\S+) PID=(\d+)", s.log(name)), 10,
                   "%s's environment line" % name)
    return match.group(1), match.group(2), match.group(3), int(match.group(4))


def send_foreign(address, data):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sock.sendto(data, "\0" + address[1:])
    finally:
        sock.close()


@pytest.mark.process
def test_ready_after_a_delay_promotes_then_and_not_before(supervise):
    s = supervise({"late.svc": notify_svc("env", "sleep=1.5", "send=STATUS=warming up",
                                           "sleep=0.5", "send=READY=1\\nSTATUS=serving",
                                           stable_secs=0)})
    address, _, _, pid = env_of(s, "late")
    assert address.startswith("@schema-init/")
    s.wait(lambda: s.status()["late"].get("status") == "warming up", 10, "STATUS")
    assert s.state("late") == "FULL_TRUST"                 # stable_secs=0 does not promote
    s.wait_state("late", "FUNDAMENTAL")
    status = s.ctl("status").stdout
    assert 'status="serving"' in status, status
    assert s.status()["late"]["pid"] == str(pid)
    promoted = [e for n, e, _, _ in s.rail() if n == "late"]
    assert promoted == ["spawn", "promote"]


@pytest.mark.process
def test_a_foreign_process_is_not_heard(supervise):
    s = supervise({"svc.svc": notify_svc("env", stable_secs=0)})
    address, _, _, _ = env_of(s, "svc")
    send_foreign(address, b"READY=1\nSTATUS=forged")
    s.wait(lambda: s.status()["svc"].get("notify_dropped") == "1", 10, "the drop counted")
    assert s.state("svc") == "FULL_TRUST"
    assert "status" not in s.status()["svc"]


@pytest.mark.process
def test_watchdog_pets_keep_the_token_and_silence_trips_it(supervise, tmp_path):
    fifo = tmp_path / "watchdog"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        s = supervise({"dog.svc": notify_svc("env", "send=READY=1", "pet=0.2,15",
                                             watchdog_sec=1)},
                      args=["--watchdog", str(fifo), "--watchdog-interval", "0.1"])
        _, usec, wpid, pid = env_of(s, "dog")
        assert usec == "1000000" and wpid == str(pid)
        s.wait_state("dog", "FUNDAMENTAL")

        def drain():
            try:
                return os.read(reader, 65536)
            except BlockingIOError:
                return b""
        drain()
        time.sleep(1.5)                 # the daemon pets every 0.2 s: PID 1 pets the device
        assert "missed pet window" not in s.console_text()
        assert len(drain()) >= 5
        s.wait(lambda: "watchdog: service 'dog' missed pet window" in s.console_text(), 10,
               "the miss once the daemon stopped petting")
        drain()
        time.sleep(0.5)
        assert drain() == b""                  # the device is no longer petted
    finally:
        os.close(reader)


@pytest.mark.process
def test_mainpid_hands_the_service_to_its_child(supervise):
    s = supervise({"fork.svc": notify_svc("env", "child", "send-mainpid", "send=READY=1",
                                          "sleep=0.3", "exit")})
    _, _, _, parent = env_of(s, "fork")
    child = int(s.wait(lambda: re.search(r"CHILD=(\d+)", s.log("fork")), 10).group(1))
    s.wait(lambda: s.status()["fork"]["pid"] == str(child), 10, "MAINPID taken")
    s.wait_state("fork", "FUNDAMENTAL")
    s.wait(lambda: process_gone(parent), 10, "parent gone")
    time.sleep(0.3)
    assert s.state("fork") == "FUNDAMENTAL" and s.status()["fork"]["pid"] == str(child)
    os.kill(child, 9)                               # the new main pid's death is the service's
    s.wait(lambda: "died" in s.events("fork"), 10, "the death of the new main pid")


@pytest.mark.process
def test_extend_timeout_keeps_a_slow_starter_alive(supervise):
    s = supervise({"slow.svc": notify_svc("sleep=0.3", "send=EXTEND_TIMEOUT_USEC=4000000",
                                          "sleep=2", "send=READY=1", start_timeout_sec=1),
                   "slower.svc": notify_svc("sleep=2.3", "send=READY=1",
                                            start_timeout_sec=1)})
    s.wait_state("slow", "FUNDAMENTAL", timeout=10)
    assert "start-timeout" not in s.events("slow")
    assert "start-timeout" in s.events("slower")      # the same without the extension
    assert s.state("slower") == "EXCISED"


@pytest.mark.process
def test_a_fuzzed_notify_socket_never_stalls_the_loop(supervise):
    seed = int(os.environ.get("NOTIFY_FUZZ_SEED") or random.SystemRandom().randrange(1 << 32))
    print("notify fuzzer: seed %d (replay with NOTIFY_FUZZ_SEED=%d)" % (seed, seed))
    s = supervise({"fuzz.svc": notify_svc("env", "fuzz=%d,6" % seed, "send=READY=1"),
                   "steady.svc": "exec=/bin/sleep\nargs=1000\nstable_secs=0\n"})
    address, _, _, _ = env_of(s, "fuzz")
    s.wait_state("steady", "FUNDAMENTAL")
    steady_pid = s.status()["steady"]["pid"]
    rng = random.Random(seed ^ 0x5A5A)
    stop = threading.Event()

    def foreign():                          # and floods from outside the service
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.setblocking(False)
        while not stop.is_set():
            data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 5000)))
            try:
                sock.sendto(data, "\0" + address[1:])
            except BlockingIOError:
                time.sleep(0.001)
            except OSError:
                pass
        sock.close()
    thread = threading.Thread(target=foreign, daemon=True)
    thread.start()
    worst = 0.0
    trips = 0
    try:
        end = time.monotonic() + 6
        while time.monotonic() < end:
            reply, error, seconds = raw_request(s.socket, b"status --kv\n", 10)
            worst = max(worst, seconds)
            assert error is None and is_complete(reply), (reply, error)
            assert b"service.steady.state=FUNDAMENTAL" in reply
            trips += 1
            time.sleep(0.01)
        assert s.ctl("status").returncode == 0          # and schema-ctl itself
    finally:
        stop.set()
        thread.join(5)
    print("notify fuzzer: %d status round trips, worst %.1f ms" % (trips, worst * 1000))
    assert s.proc.poll() is None
    assert worst < STALL_LIMIT, "a status round trip took %.3f s under the flood" % worst
    sent = int(s.wait(lambda: re.search(r"FUZZED=(\d+)", s.log("fuzz")), 20).group(1))
    assert sent > 1000
    s.wait_state("fuzz", "FUNDAMENTAL", timeout=20)       # its last datagram, READY=1, heard
    status = s.status()
    assert int(status["fuzz"]["notify_dropped"]) > 0
    assert status["steady"]["pid"] == steady_pid


def voluntary_switches(pid):
    for line in open("/proc/%d/status" % pid):
        if line.startswith("voluntary_ctxt_switches"):
            return int(line.split()[1])


@pytest.mark.process
def test_silent_notify_services_cost_no_wakeups(supervise):
    files = {"n%02d.svc" % i: notify_svc("send=READY=1") for i in range(20)}
    s = supervise(files)
    for i in range(20):
        s.wait_state("n%02d" % i, "FUNDAMENTAL")
    time.sleep(0.5)
    before = voluntary_switches(s.proc.pid)
    time.sleep(2)
    assert voluntary_switches(s.proc.pid) - before == 0


@pytest.mark.process
def test_the_notify_modules_are_loaded_only_for_a_service_that_uses_them(supervise, tmp_path):
    s = supervise({"plain.svc": "exec=/bin/sleep\nargs=1000\nstable_secs=0\n"},
                  env=dict(os.environ, SCHEMA_INIT_TEST_HOOKS="1"))
    s.wait_state("plain", "FUNDAMENTAL")
    modules = set(s.ctl("test-modules").stdout.split())
    assert "schema_init.pid1.runtime" in modules
    assert not modules & {"schema_init.core.notify", "schema_init.pid1.notify_socket"}
    extra = tmp_path / "late.svc"
    extra.write_text(notify_svc("send=READY=1"))
    assert s.ctl("add", str(extra)).stdout.startswith("ok:")
    s.wait_state("late", "FUNDAMENTAL")
    modules = set(s.ctl("test-modules").stdout.split())
    assert {"schema_init.core.notify", "schema_init.pid1.notify_socket"} <= modules


@pytest.mark.process
def test_belongs_knows_the_service_s_processes_from_a_stranger():
    """notify_socket.belongs against real processes: the main pid, a child in its
    session, a child that left the session (still a descendant), and a stranger."""
    import subprocess
    from schema_init.pid1 import notify_socket
    main = subprocess.Popen([sys.executable, "-c", (
        "import os, subprocess, sys, time\n"
        "os.setsid()\n"
        "a = subprocess.Popen(['sleep', '60'])\n"
        "b = subprocess.Popen(['setsid', 'sleep', '60'])\n"
        "print(a.pid, b.pid, flush=True)\n"
        "time.sleep(60)\n")], stdout=subprocess.PIPE, text=True)
    stranger = subprocess.Popen(["setsid", "sleep", "60"])
    try:
        child, left = (int(word) for word in main.stdout.readline().split())
        assert notify_socket.belongs(main.pid, main.pid)
        assert notify_socket.belongs(child, main.pid)          # same session
        assert notify_socket.belongs(left, main.pid)           # a descendant
        assert not notify_socket.belongs(stranger.pid, main.pid)
        assert not notify_socket.belongs(os.getpid(), main.pid)   # its parent is no member
        assert not notify_socket.belongs(0, main.pid) and not notify_socket.belongs(5, 0)
    finally:
        for proc in (main, stranger):
            proc.kill()
            proc.wait()
        for pid in (locals().get("child"), locals().get("left")):
            if pid:
                try:
                    os.kill(pid, 9)
                except OSError:
                    pass


def test_a_taken_notify_name_gets_a_unique_one():
    from schema_init.pid1 import notify_socket

    class Fds:                           # the loop's table (fdtable.FdTable)
        def add(self, fd, handler):
            pass

        def remove(self, fd):
            pass
    squatter = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    squatter.bind("\0" + notify.abstract_name(os.getpid(), "test", "a"))
    held = notify_socket.NotifySockets(Fds(), "test")
    try:
        address = held.for_service("a")
        assert address.startswith("@" + notify.abstract_name(os.getpid(), "test", "a") + ".")
        assert held.for_service("a") == address                  # made once
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
            sender.sendto(b"READY=1", "\0" + address[1:])
        name, got = held.receive(list(held.names_by_fd)[0])
        assert name == "a" and got == [((os.getpid(), os.getuid()), b"READY=1")]
    finally:
        held.release("a")
        squatter.close()
    assert held.names() == []


def test_receive_drops_truncated_and_descriptor_carrying_datagrams():
    import array
    from schema_init.pid1 import notify_socket

    class Fds:                           # the loop's table (fdtable.FdTable)
        def add(self, fd, handler):
            pass

        def remove(self, fd):
            pass
    held = notify_socket.NotifySockets(Fds(), "recv%d" % os.getpid())
    address = "\0" + held.for_service("r")[1:]
    fd = list(held.names_by_fd)[0]
    before = len(os.listdir("/proc/self/fd"))
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender, open("/dev/null") as f:
        sender.sendto(b"STATUS=" + b"x" * 5000, address)
        sender.sendmsg([b"READY=1"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                       array.array("i", [f.fileno()] * 3))], 0, address)
        sender.sendto(b"READY=1", address)
        name, got = held.receive(fd)
    me = (os.getpid(), os.getuid())
    assert got == [(me, None), (me, None), (me, b"READY=1")]
    assert len(os.listdir("/proc/self/fd")) == before         # no descriptor kept
    assert held.receive(fd) == ("r", [])                       # empty: never blocks
    held.release("r")


def notify_inode(address):
    """The inode of the abstract socket ADDRESS (@name) from /proc/net/unix."""
    for line in open("/proc/net/unix").read().splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 8 and fields[7] == address:
            return int(fields[6])
    return None


@pytest.mark.process
def test_the_notify_socket_is_kept_across_reexec(supervise, tmp_path):
    trigger = tmp_path / "go"
    s = supervise({"keep.svc": notify_svc("env", "wait-file=%s" % trigger,
                                          "send=READY=1\\nSTATUS=after the re-exec")})
    address, _, _, pid = env_of(s, "keep")
    s.wait(lambda: notify_inode(address), 10, "the socket in /proc/net/unix")
    before = notify_inode(address)
    assert s.ctl("reexec").stdout.startswith("ok")
    s.wait(lambda: "resumed:" in s.console_text(), 20, "the re-exec")
    s.wait(lambda: s.ctl("status").returncode == 0, 20, "the control socket")
    assert notify_inode(address) == before            # the same socket, not a new one
    assert s.state("keep") == "FULL_TRUST"             # still waiting for its READY=1
    trigger.write_text("")
    s.wait_state("keep", "FUNDAMENTAL")
    assert s.status()["keep"]["status"] == "after the re-exec"
    assert s.status()["keep"]["pid"] == str(pid)


def test_handover_lines_carry_the_notify_sockets():
    spec = config.ServiceSpec(name="a", exec="/bin/true", notify=True)
    sup = supervisor.Supervisor(graph.resolve([spec], []), FakeOps(), 0.0, 1e9)
    from schema_init.core import handover
    text = handover.handover_text(sup, -1, 0, None, (), [("a", 9, "schema-init/1/x/notify/a")])
    assert handover.parse_handover(text.encode())["notify"] == [
        ("a", 9, "schema-init/1/x/notify/a")]
