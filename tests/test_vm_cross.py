"""Cross VM tier (make test-cross): the aarch64 and armv6l binaries as PID 1 of Debian's
own kernels for those boards in QEMU (TCG): `-M virt -cpu cortex-a53` with linux-image-arm64,
`-M raspi0` (ARM1176, the Pi Zero W) with armel's linux-image-rpi (toolchains/fetch_kernel.sh).

The binaries: build/out/TARGET/schema-init, or SCHEMA_INIT_BIN_AARCH64 /
SCHEMA_INIT_BIN_ARMV6L; a missing one fails the test (never a skip).
Each boot prints a measurement line (`BOOT target: ...`, -s shows it) and writes it to
build/tmp/cross/boot-TARGET.txt.
"""

import os
import re
import time
import uuid

import pytest

from conftest import ROOT, sh, started_each
import vm as vmlib

pytestmark = pytest.mark.cross

TARGETS = ("aarch64", "armv6l")
# QEMU 7.2's raspi0 freezes when its watchdog is started (tests/vm.py, BOARDS).
APPEND = {"aarch64": "", "armv6l": "SCHEMA_WATCHDOG=none"}
# A boot that went wrong ends the test at once: raspi0 cannot reset after a panic, and
# when /sbin/init cannot run (a binary for another CPU) the kernel starts busybox's init.
FAILED = ("Kernel panic", "Failed to execute /sbin/init", "No working init found",
          "Please press Enter to activate this console")


def binary(target):
    variable = "SCHEMA_INIT_BIN_%s" % target.upper()
    path = os.environ.get(variable) or os.path.join(ROOT, "build", "out", target, "schema-init")
    assert os.path.isfile(path), "%s is missing: make %s (or set %s)" % (path, target, variable)
    return os.path.abspath(path)


@pytest.fixture
def machine(tmp_path, monkeypatch):
    def build(count, target, services, **kwargs):
        monkeypatch.setenv("SCHEMA_INIT_BIN", binary(target))
        return vmlib.VM(tmp_path / ("%s-%d" % (target, count)), services, target=target,
                        append=" ".join((APPEND[target], kwargs.pop("append", ""))),
                        fail_on=FAILED, **kwargs)
    yield from started_each(build)


@pytest.mark.parametrize("target", TARGETS)
def test_boots_to_all_fundamental_answers_status_and_powers_off(machine, target):
    v = machine(target, vmlib.reference_services(), append="DEMO_POWEROFF=1")
    v.wait_for("=== end ===", timeout=600)      # report.svc: printed once all are up
    booted = time.monotonic() - v.started       # from QEMU's start (the initramfs is made)
    text = v.finish(300)
    vmlib.assert_reference_boot(text)
    memory = dict(re.findall(r"^(Rss|Pss|Private_Dirty|RssAnon):\s+(\d+) kB", text, re.M))
    kernel_to_init = re.search(r"kernel \u2192 PID 1:\s+([\d.]+)s", text).group(1)
    line = ("BOOT %s: QEMU start -> all up %.1f s (kernel -> PID 1 %s s); PID 1 idle Rss %s kB, "
            "Pss %s kB, Private_Dirty %s kB (the binary is on the initramfs: its pages count "
            "as dirty), RssAnon %s kB" % (target, booted, kernel_to_init, memory["Rss"],
                                          memory["Pss"], memory["Private_Dirty"],
                                          memory["RssAnon"]))
    print(line)
    os.makedirs(vmlib.CROSS, exist_ok=True)
    with open(os.path.join(vmlib.CROSS, "boot-%s.txt" % target), "w") as f:
        f.write(line + "\n")


@pytest.mark.parametrize("target", TARGETS)
def test_data_written_without_fsync_survives_poweroff(machine, tmp_path, target):
    image = str(tmp_path / ("%s.img" % target))
    vmlib.make_ext4(image)                   # 64 MB: a power of 2, as the Pi's SD card
    disk = vmlib.BOARDS[target]["disk"]
    token = uuid.uuid4().hex
    services = {
        "modules.svc": vmlib.reference_services()["modules.svc"],
        "data.svc": sh("mount -t ext4 %s /data" % disk, oneshot=1, dep="modules"),
        "writer.svc": sh("echo $TOKEN > /data/token; head -c 1048576 /dev/urandom > /data/blob; "
                         "touch /data/written; exec sleep 100000", dep="data",
                         ready_path="/data/written"),
        "off.svc": sh("schema-ctl poweroff", oneshot=1, dep="writer"),
    }
    v = machine(target, services, append="TOKEN=%s" % token, disk=image)
    text = v.finish(600)
    assert vmlib.POWER_DOWN in text, text[-3000:]
    assert "shutdown: filesystems read-only (1)" in text
    assert vmlib.fs_state(image) == "clean"
    assert vmlib.read_file(image, "/token").strip() == token


def test_aarch64_watchdog_is_petted_then_resets_when_the_critical_service_stops(machine):
    """The i6300esb on the virt board's PCI bus, as in the x86_64 VM tier."""
    modules = vmlib.reference_services()["modules.svc"]
    devices = ["-device", "i6300esb", "-action", "watchdog=reset"]
    v = machine("aarch64", {
        "modules.svc": modules,
        "dmt.svc": sh("i=0; while [ $i -lt 20 ]; do schema-ctl pet dmt; sleep 1; i=$((i+1)); "
                      "done; exec sleep 100000", critical=1, watchdog_timeout_ms=3000,
                      dep="modules", stable_secs=0)}, devices=devices, heartbeat=10)
    text = v.finish(600)
    assert "opened hardware watchdog" in text
    assert "watchdog: service 'dmt' missed pet window" in text
    assert "PID 1 poweroff" not in text and vmlib.POWER_DOWN not in text
    assert "Kernel panic" not in text          # a hardware reset, not a crash


# schema-subreaper runs a program that starts a grandchild and exits 7 at once: the
# grandchild (the orphan) must be adopted by schema-subreaper (its PPid, read while it
# runs), and schema-subreaper must wait for it, reap it and only then exit with the
# program's 7: when `wait` returns, the orphan's pid is gone from /proc.  The orphan
# lives 1 s past the go file, so a subreaper that left early would leave it running.
SUBREAPER_CHECK = (
    "schema-subreaper /bin/sh -c '(sh -c \"echo \\$\\$ > /run/orphan.new; "
    "mv /run/orphan.new /run/orphan; while [ ! -e /run/orphan.go ]; do sleep 0.1; done; "
    "sleep 1; exit 9\" &); exit 7' & sub=$!; "
    "while [ ! -e /run/orphan ]; do sleep 0.1; done; o=$(cat /run/orphan); n=0; "
    "while [ \"$(sed -n 's/^PPid:[[:space:]]*//p' /proc/$o/status)\" != $sub ] && "
    "[ $n -lt 300 ]; do sleep 0.1; n=$((n+1)); done; "
    "echo \"ORPHAN $o PARENT $(sed -n 's/^PPid:[[:space:]]*//p' /proc/$o/status) "
    "SUBREAPER $sub\" > /dev/console; touch /run/orphan.go; "
    "wait $sub; echo SUBREAPER-STATUS=$? > /dev/console; "
    "if [ -e /proc/$o ]; then echo \"ORPHAN-LEFT $(cat /proc/$o/stat)\"; "
    "else echo ORPHAN-GONE; fi > /dev/console")


def assert_orphan_adopted_and_reaped(text):
    adoption = re.search(r"^ORPHAN (\d+) PARENT (\d*) SUBREAPER (\d+)$", text, re.M)
    assert adoption, "the orphan's pid never came:\n" + text[-3000:]
    assert adoption.group(2) == adoption.group(3), \
        "orphan %s not adopted by schema-subreaper (pid %s): its parent was %r" % (
            adoption.group(1), adoption.group(3), adoption.group(2))
    assert "SUBREAPER-STATUS=7" in text, text[-3000:]
    assert "ORPHAN-GONE" in text, "schema-subreaper exited before its orphan was gone:\n" \
        + text[-3000:]


@pytest.mark.parametrize("target", TARGETS)
def test_subreaper_works_in_the_boards_kernel(machine, target):
    """qemu-user cannot emulate PR_SET_CHILD_SUBREAPER (tests/test_build.py); the real
    kernel of each board runs it: the orphan adopted, reaped, the program's status."""
    v = machine(target, {"sub.svc": sh(SUBREAPER_CHECK + "; schema-ctl poweroff",
                                       oneshot=1)})
    text = v.finish(600)
    assert_orphan_adopted_and_reaped(text)
    assert vmlib.POWER_DOWN in text
