"""Namespace tier: the static binary as PID 1 of a PID namespace, in a private root.

Needs root, unshare and a static busybox; part of `make test`, which builds the binary.
"""

import os
import signal
import time

import pytest

from conftest import sh, started_each
from nsroot import Namespace

pytestmark = pytest.mark.namespace


@pytest.fixture
def namespace(tmp_path):
    yield from started_each(lambda count, files, **kwargs: Namespace(tmp_path, files, **kwargs))


def test_hundred_orphaned_grandchildren_leave_no_zombie(namespace):
    spawner = sh("i=0; while [ $i -lt 100 ]; do (sleep 0.3 &); i=$((i+1)); done; "
                 "exec sleep 1000", stable_secs=0)
    ns = namespace({"spawner.svc": spawner})
    ns.wait_state("spawner", "FUNDAMENTAL")
    ns.wait(lambda: len([p for p in os.listdir("/proc") if p.isdigit() and
                         ns._in_namespace(int(p))]) <= 4, 15, "orphans to finish")
    time.sleep(0.3)
    assert ns.zombies() == []
    assert ns.status()["spawner"]["state"] == "FUNDAMENTAL"


def test_service_and_orphan_exiting_together_are_both_reaped_and_told_apart(namespace):
    # the orphan and the main process both exit at once; only the main one is the
    # service's exit (status 3), the orphan is reaped silently
    both = sh("(sleep 0.5; exit 9) & sleep 0.5; exit 3", no_restart=1)
    ns = namespace({"pair.svc": both})
    ns.wait_state("pair", "EXCISED")
    assert "exited 3 (no_restart)" in ns.ctl("status").stdout
    time.sleep(0.5)
    assert ns.zombies() == []


def test_sigterm_stops_services_in_order_and_powers_off(namespace):
    files = {"base.svc": sh("exec sleep 1000", stable_secs=0),
             "mid.svc": sh("exec sleep 1000", stable_secs=0, dep="base"),
             "top.svc": sh("exec sleep 1000", stable_secs=0, dep="mid")}
    ns = namespace(files)
    ns.wait_state("top", "FUNDAMENTAL")
    ns.signal(signal.SIGTERM)
    status = ns.finish()
    # reboot(RB_POWER_OFF) in a PID namespace kills its init with SIGINT
    assert status == -signal.SIGINT
    rail = [line.split()[1:3] for line in ns.console_text().splitlines()
            if line.startswith("[") and " stopped " in line]
    assert [name for name, _ in rail] == ["top", "mid", "base"]
    text = ns.console_text()
    for step in ("shutdown: services stopped", "shutdown: SIGKILL broadcast",
                 "shutdown: control socket and shm released", "shutdown: sync done",
                 "shutdown: in a container, filesystems left as they are", "PID 1 poweroff"):
        assert "[schema-init] " + step in text


def test_sigint_reboots(namespace):
    ns = namespace({"a.svc": sh("exec sleep 1000", stable_secs=0)})
    ns.wait_state("a", "FUNDAMENTAL")
    ns.signal(signal.SIGINT)
    assert ns.finish() == -signal.SIGHUP       # reboot in a PID namespace: SIGHUP
    assert "PID 1 reboot" in ns.console_text()


def test_ctl_poweroff_sets_system_state_and_powers_off(namespace):
    ns = namespace({"a.svc": sh("exec sleep 1000", stable_secs=0)})
    ns.wait_state("a", "FUNDAMENTAL")
    assert ns.ctl("poweroff").stdout == "ok: powering off\n"
    assert ns.finish() == -signal.SIGINT


def test_service_ignoring_sigterm_is_killed_at_its_stop_timeout(namespace):
    ns = namespace({"stubborn.svc": sh("trap '' TERM; touch /run/trapped; "
                                       "while :; do sleep 0.1; done",
                                       stable_secs=0, stop_timeout_sec=2)})
    ns.wait_state("stubborn", "FUNDAMENTAL")
    # promoted at the spawn: wait for the shell to have run its trap
    ns.wait(lambda: os.path.exists(ns.path("/run/trapped")), 10, "the shell's trap")
    t0 = time.monotonic()
    ns.signal(signal.SIGTERM)
    assert ns.finish() == -signal.SIGINT
    elapsed = time.monotonic() - t0
    assert 1.8 <= elapsed <= 8, elapsed


def test_fatal_error_reexecs_and_services_keep_their_pids(namespace):
    ns = namespace({"a.svc": sh("exec sleep 1000", stable_secs=0),
                    "b.svc": sh("exec sleep 1000", stable_secs=0, dep="a")},
                   env={"SCHEMA_INIT_TEST_HOOKS": "1"})
    ns.wait_state("b", "FUNDAMENTAL")
    before = ns.status()
    init = ns.init_pid
    ns.ctl("test-fatal")
    ns.wait(lambda: "resumed: 2 service(s) handed over" in ns.console_text(), 15, "resume")
    ns.wait(lambda: os.path.exists(ns.socket) and ns.ctl("status").returncode == 0, 15,
            "socket again")
    after = ns.status()
    assert {n: after[n]["pid"] for n in after} == {n: before[n]["pid"] for n in before}
    assert ns.init_pid == init and ns.proc.poll() is None
    assert "fatal error, re-executing" in ns.console_text()
    # still the parent of its services: a death is seen and respawned
    os.kill(ns.host_pid(int(after["a"]["pid"])), signal.SIGKILL)
    ns.wait(lambda: ns.status()["a"]["pid"] not in ("0", after["a"]["pid"]), 15, "respawn")
    ns.signal(signal.SIGTERM)
    assert ns.finish() == -signal.SIGINT


def test_pid1_mounts_and_directories(namespace):
    ns = namespace({"probe.svc": sh(
        "cat /proc/mounts > /run/mounts; ls -ld /run/lock /run/shm /run/user/0 "
        "/run/systemd/system > /run/dirs; ls -l /dev/fd > /run/devfd", oneshot=1)})
    ns.wait_state("probe", "PERFECT")
    mounts = open(ns.path("/run/mounts")).read()
    for target, fstype in (("/proc", "proc"), ("/sys", "sysfs"), ("/dev", "devtmpfs"),
                           ("/dev/pts", "devpts"), ("/dev/shm", "tmpfs"), ("/run", "tmpfs")):
        assert " %s %s " % (target, fstype) in mounts, target
    dirs = open(ns.path("/run/dirs")).read().splitlines()
    modes = {line.split()[-1]: line.split()[0] for line in dirs}
    assert modes["/run/lock"] == "drwxrwxrwt"          # octal 1777, not decimal
    assert modes["/run/shm"] == "drwxrwxrwt"
    assert modes["/run/user/0"] == "drwx------"
    assert "/run/systemd/system" not in modes, "no systemctl of ours: systemd not claimed"
    assert "/proc/self/fd" in open(ns.path("/run/devfd")).read()


def test_pid1_claims_systemd_when_systemctl_is_itself_and_serves_it(namespace):
    """With /usr/bin/systemctl a link to the binary (the .deb installs it), PID 1 makes
    /run/systemd/system, and what invoke-rc.d then runs works against PID 1."""
    ns = namespace({"cron.svc": sh("exec sleep 1000", stable_secs=0),
                    "probe.svc": sh("ls -ld /run/systemd/system > /run/claimed; "
                                    "systemctl restart cron.service; echo $? > /run/restart",
                                    oneshot=1, dep="cron")},
                   links=[("/usr/bin/systemctl", "/sbin/init")])
    ns.wait_state("probe", "PERFECT")
    assert open(ns.path("/run/claimed")).read().startswith("drwxr-xr-x")
    assert open(ns.path("/run/restart")).read() == "0\n"
    ns.wait(lambda: ns.status()["cron"]["restarts"] == "2", 10, "cron restarted")


def test_pid1_imports_none_of_the_heavy_modules(namespace):
    """The binary's PID 1, booted and serving, has no inspect, re, enum, ast (nor their
    friends) in sys.modules: every one of them is resident memory for the machine's life."""
    ns = namespace({"a.svc": sh("exec sleep 1000", stable_secs=0)},
                   env={"SCHEMA_INIT_TEST_HOOKS": "1"})
    ns.wait_state("a", "FUNDAMENTAL")
    ns.ctl("reload")
    modules = set(ns.ctl("test-modules").stdout.split())
    assert "schema_init.pid1.machine" in modules and "schema_init.pid1.runtime" in modules
    heavy = {"inspect", "re", "enum", "ast", "dis", "tokenize", "selectors", "socket",
             "subprocess", "json", "argparse", "logging", "traceback", "linecache"}
    assert modules & heavy == set()


def test_a_boot_that_fails_reexecs_once_then_pid1_stays_a_reaper(tmp_path):
    """If the boot itself raises, PID 1 re-executes itself once; failing again, it does
    not exit (the kernel would panic) but reaps orphans for ever and says so."""
    import subprocess
    ns = Namespace(tmp_path, {"a.svc": sh("exec sleep 1000", stable_secs=0)},
                   env={"SCHEMA_INIT_TEST_HOOKS": "1", "SCHEMA_INIT_TEST_BOOT_FAILS": "1"})
    try:
        ns.start(socket=False)
        ns.wait(lambda: "reaping orphans only" in ns.console_text(), 20, "the last resort")
        text = ns.console_text()
        assert text.count("re-executing itself once") == 1
        assert "injected by SCHEMA_INIT_TEST_BOOT_FAILS" in text
        subprocess.run(["nsenter", "-t", str(ns.init_pid), "-p", "-m", "/bin/busybox", "sh",
                        "-c", "(/bin/busybox sleep 0.3 &); exit 0"], check=True, timeout=10)
        time.sleep(1.5)
        assert ns.proc.poll() is None, "PID 1 exited"
        assert ns.zombies() == []
    finally:
        ns.kill()
