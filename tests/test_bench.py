"""Issue 13's benchmark: how bench/inits_bench.py reads the guest (pure, in `make test`),
and its smoke form (`make bench-smoke`, marker bench): two inits booted once each on the
benchmark's Debian root, every figure of the JSON present and plausible."""

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from conftest import ROOT, program

sys.path.insert(0, os.path.join(ROOT, "bench"))
import inits_bench  # noqa: E402

TRACE = """\
            init-1       [000] .....     1.500000: sched_process_exec: filename=/init pid=1 old_pid=1
            init-1       [000] .....     1.600000: sched_process_fork: comm=init pid=1 child_comm=init child_pid=90
        modprobe-90      [000] .....     1.610000: sched_process_exec: filename=/sbin/modprobe pid=90 old_pid=90
        run-init-1       [000] .....     4.000000: sched_process_exec: filename=/sbin/init pid=1 old_pid=1
            init-1       [000] .....     4.100000: sched_process_exec: filename=/usr/sbin/real-init pid=1 old_pid=1
       real-init-1       [000] .....     4.200000: sched_process_fork: comm=real-init pid=1 child_comm=real-init child_pid=120
       real-init-120     [000] .....     4.210000: sched_process_fork: comm=real-init pid=120 child_comm=real-init child_pid=121
       generator-121     [000] .....     4.220000: sched_process_exec: filename=/lib/systemd/system-generators/gen pid=121 old_pid=121
            sshd-131     [000] .....     4.240000: sched_process_exec: filename=/sbin/sshd pid=131 old_pid=131
       real-init-1       [000] .....     4.300000: sched_process_fork: comm=real-init pid=1 child_comm=real-init child_pid=130
       real-init-130     [000] .....     4.310000: sched_process_fork: comm=real-init pid=130 child_comm=real-init child_pid=140
              sh-140     [000] .....     4.350000: sched_process_exec: filename=/bin/sh pid=140 old_pid=140
            udev-130     [000] .....     4.360000: sched_process_exec: filename=/lib/udevd pid=130 old_pid=130
"""


def test_trace_times_pid1_last_exec_and_its_first_child_exec():
    start, first = inits_bench.parse_trace(TRACE.splitlines())
    # the last exec by PID 1 (after the initramfs and a wrapper), and the first exec of
    # one of its descendants after it (a grandchild, as sysvinit spawns): not a systemd
    # generator, not PID 90 forked by the initramfs, not 131 (not PID 1's)
    assert start == pytest.approx(4.1)
    assert first == pytest.approx(4.35)


def test_trace_without_pid1_exec_gives_nothing():
    assert inits_bench.parse_trace(TRACE.splitlines()[1:3]) == (None, None)


PROBE = """ready_uptime=20.50
oneshot_uptime=12.00
pid1_exe=/usr/sbin/schema-init
pid1_binary_bytes=9284904
VmRSS=11024
RssAnon=4040
RssFile=6984
Threads=1
rollup_Rss=11030
rollup_Pss=11044
rollup_Private_Dirty=4076
rollup_Anonymous=4040
switches_idle=3
idle_secs=30
MemTotal=496000
MemAvailable=430000
processes=13
trace_begin
%s
trace_end
""" % TRACE


def test_probe_output_becomes_figures():
    run = inits_bench.parse_probe(PROBE)
    # Rss from smaps_rollup (exact), VmRSS from status kept beside it
    assert run["pid1_rss_kb"] == 11030 and run["pid1_vmrss_kb"] == 11024
    assert run["pid1_private_dirty_kb"] == 4076 and run["pid1_rss_anon_kb"] == 4040
    assert run["wakeups_per_min"] == pytest.approx(6.0)
    assert run["mem_used_kb"] == 66000 and run["processes"] == 13
    assert run["boot_to_ready_s"] == pytest.approx(20.5)
    assert run["exec_to_first_spawn_ms"] == pytest.approx(250.0)


def test_probe_that_never_saw_every_service_is_an_error():
    with pytest.raises(RuntimeError, match="not every service"):
        inits_bench.parse_probe("ready=never\n" + PROBE.replace("ready_uptime=20.50\n", ""))


def test_summary_and_table():
    runs = [inits_bench.parse_probe(PROBE), inits_bench.parse_probe(
        PROBE.replace("rollup_Rss=11030", "rollup_Rss=12030"))]
    figures = inits_bench.summary(runs)
    assert figures["pid1_rss_kb"] == {"median": 11530.0, "min": 11030, "max": 12030}
    result = {"date": "d", "host": "h", "kernel": "k", "boots": 2, "settle_s": 5,
              "idle_s": 30, "inits": {"schema-init": figures, "systemd": figures},
              "runs": {"schema-init": runs, "systemd": runs}}
    table = inits_bench.markdown(result, "cmd")
    assert "| schema-init | 11530 (11030-12030) |" in table
    assert "| systemd | 1.00 | 1.00 |" in table


def test_schema_init_bench_services_check_clean(tmp_path):
    """The set distros/bench/configure.sh gives schema-init: Debian's profile without dbus
    and the power button, plus the benchmark's two; --check --strict accepts it."""
    debian = os.path.join(ROOT, "services", "debian")
    bench = os.path.join(ROOT, "services", "bench")
    for directory, names in ((debian, os.listdir(debian)), (bench, os.listdir(bench))):
        for name in names:
            if name not in ("dbus.svc", "power-button.svc"):
                shutil.copy(os.path.join(directory, name), tmp_path / name, follow_symlinks=False)
    result = subprocess.run([program("schema-init"), "--check", str(tmp_path), "--strict"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "bench-httpd" in result.stdout and "bench-oneshot" in result.stdout


def test_readme_table_replaced_between_its_markers(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# x\n\n<!-- inits-table -->\nold\n<!-- /inits-table -->\n\nrest\n")
    inits_bench.update_readme("| new |\n", str(readme))
    assert readme.read_text() == ("# x\n\n<!-- inits-table -->\n| new |\n"
                                  "<!-- /inits-table -->\n\nrest\n")


@pytest.mark.bench
def test_smoke_two_inits_one_boot_each(tmp_path):
    """`make bench-smoke`: the real thing, short: the benchmark's root built (or cached),
    schema-init and systemd booted once each, every figure read."""
    inits_bench.main(["--inits", "schema-init,systemd", "--boots", "1", "--idle", "10",
                      "--settle", "5", "--no-supervisor", "--no-readme",
                      "--results", str(tmp_path), "--report", str(tmp_path / "report.md")])
    [result_file] = [p for p in os.listdir(tmp_path) if p.endswith(".json")]
    with open(tmp_path / result_file) as f:
        result = json.load(f)
    assert set(result["inits"]) == {"schema-init", "systemd"}
    assert result["runs"]["schema-init"][0]["pid1_exe"] == "/usr/sbin/schema-init"
    assert result["runs"]["systemd"][0]["pid1_exe"] == "/usr/lib/systemd/systemd"
    for name, figures in result["inits"].items():
        assert set(inits_bench.FIGURES) <= set(figures), name
        assert figures["pid1_threads"]["median"] >= 1
        assert 0 < figures["pid1_private_dirty_kb"]["median"] < figures["pid1_rss_kb"]["median"]
        assert 0 < figures["kernel_to_pid1_exec_s"]["median"] < figures["boot_to_ready_s"]["median"]
        assert figures["processes"]["median"] >= 8     # udev, rsyslog, cron, sshd, httpd, 2 gettys
    # schema-init is one thread, whatever else changes
    assert result["inits"]["schema-init"]["pid1_threads"]["median"] == 1
    with open(tmp_path / "report.md") as f:
        assert "| schema-init |" in f.read()


class _Forward:
    """QEMU's user-mode forward as the host sees it: every connection is accepted at
    once; until the guest's network is up (UP_AT seconds on) nothing comes back, then
    the guest's answer does: the banner (SSH) or a reset (nothing listening)."""

    def __init__(self, up_at, banner):
        import socket
        import threading
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.up = time.monotonic() + up_at
        self.banner = banner
        self.before_up = 0
        self.held = []
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            if time.monotonic() < self.up:
                self.before_up += 1
                self.held.append(conn)
            elif self.banner:
                conn.sendall(b"SSH-2.0-OpenSSH_9.2p1\r\n")
                self.held.append(conn)
            else:
                conn.close()


def test_wait_ssh_dates_the_first_banner_and_spares_sshd_the_early_connections():
    import debian_vm
    ssh, knock = _Forward(up_at=3.0, banner=True), _Forward(up_at=3.0, banner=False)
    machine = debian_vm.DebianVM.__new__(debian_vm.DebianVM)
    machine.port, machine.knock_port = ssh.port, knock.port
    machine.started = time.monotonic()
    machine.proc = subprocess.Popen(["sleep", "60"])
    logins = []
    machine.ssh = lambda command, timeout=60: (
        logins.append(command) or subprocess.CompletedProcess([], 0))
    try:
        # a connection that is accepted but silent is not an answer; nor is a refused
        # one (QEMU not listening yet)
        assert not machine.banner(wait=0.3) and not machine.network_up(wait=0.3)
        machine.knock_port = debian_vm.free_port()
        assert not machine.network_up(wait=0.3)
        machine.knock_port = knock.port
        answered = machine.wait_ssh(timeout=30)
    finally:
        machine.proc.kill()
        machine.proc.wait()
        ssh.listener.close()
        knock.listener.close()
    # the network "came up" 3 s in: seen within a knock (1 s) and a pause, not at ssh's
    # ConnectTimeout of 10 s; one login then ran
    assert 3.0 <= answered < 4.5
    assert logins == ["true"]
    # before it, sshd's forward got one look (the test's own) and the 10 s fallback's
    # first: not one a quarter of a second, which QEMU would hand sshd all at once
    assert ssh.before_up <= 2
    assert knock.before_up >= 2
