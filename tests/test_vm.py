"""VM tier: the static binary as PID 1 of a real kernel (Debian's, QEMU TCG).

`make test-vm` runs all of it; CI runs the `smoke` part (`make test-vm-smoke`).
"""

import os
import uuid

import pytest

from conftest import sh, started_each
import vm as vmlib

pytestmark = pytest.mark.vm

REPEAT = int(os.environ.get("SCHEMA_VM_REPEAT", "10"))


MODULES = vmlib.reference_services()["modules.svc"]


@pytest.fixture
def machine(tmp_path):
    yield from started_each(lambda count, services, **kwargs: vmlib.VM(tmp_path, services,
                                                                      **kwargs))


@pytest.mark.smoke
def test_boot_to_all_fundamental_then_clean_poweroff(machine):
    v = machine(vmlib.reference_services(), append="DEMO_POWEROFF=1")
    text = v.finish()
    vmlib.assert_reference_boot(text)
    assert vmlib.RESTART not in text


@pytest.mark.smoke
def test_data_written_without_fsync_survives_poweroff(machine, tmp_path):
    image = str(tmp_path / "disk.img")
    vmlib.make_ext4(image)
    services = {
        "modules.svc": MODULES,
        "data.svc": sh("mount -t ext4 /dev/vda /data", oneshot=1, dep="modules"),
        "writer.svc": sh("echo previous: $(cat /data/token 2>/dev/null) > /dev/console; "
                         "echo $TOKEN > /data/token; head -c 1048576 /dev/urandom > /data/blob; "
                         "touch /data/written; exec sleep 100000", dep="data",
                         ready_path="/data/written"),
        "off.svc": sh("schema-ctl poweroff", oneshot=1, dep="writer"),
    }
    previous = ""
    for attempt in range(REPEAT):
        token = uuid.uuid4().hex
        v = machine(services, append="TOKEN=%s" % token, disk=image)
        text = v.finish()
        assert vmlib.POWER_DOWN in text, text[-3000:]
        seen = "previous:" + (" " + previous if previous else "") + "\n"
        assert seen in text, "the last run's data, read after the next boot"
        assert vmlib.fs_state(image) == "clean", "run %d left the filesystem %s" % (
            attempt, vmlib.fs_state(image))
        assert vmlib.read_file(image, "/token").strip() == token
        assert "shutdown: filesystems read-only (1)" in text
        previous = token


def test_reboot_takes_the_reboot_path(machine):
    v = machine({"r.svc": sh("sleep 1; schema-ctl reboot", oneshot=1)})
    text = v.finish()
    assert "[schema-init] PID 1 reboot" in text and vmlib.RESTART in text
    assert vmlib.POWER_DOWN not in text


def test_ctrl_alt_del_reboots_cleanly(machine):
    v = machine({"d.svc": sh("exec sleep 100000", stable_secs=0),
                 "mark.svc": sh("echo READY-FOR-CAD > /dev/console", oneshot=1, dep="d")})
    v.wait_for("READY-FOR-CAD")
    v.monitor("sendkey ctrl-alt-delete")
    text = v.finish()
    assert "shutting down (reboot)" in text
    assert "[schema-init] PID 1 reboot" in text and vmlib.RESTART in text
    assert "[schema-init] shutdown: sync done" in text


WATCHDOG = ["-device", "i6300esb", "-action", "watchdog=reset"]


def test_watchdog_is_petted_while_the_critical_service_pets(machine):
    v = machine({"modules.svc": MODULES,
                 "dmt.svc": sh("while :; do schema-ctl pet dmt; sleep 1; done", critical=1,
                               watchdog_timeout_ms=3000, dep="modules", stable_secs=0),
                 "later.svc": sh("sleep 35; schema-ctl poweroff", oneshot=1, dep="dmt")},
                devices=WATCHDOG, heartbeat=10)
    text = v.finish(240)
    assert "opened hardware watchdog" in text
    assert "missed pet window" not in text
    assert "[schema-init] PID 1 poweroff" in text and vmlib.POWER_DOWN in text


def test_watchdog_resets_the_machine_when_a_critical_service_stops_petting(machine):
    v = machine({"modules.svc": MODULES,
                 "dmt.svc": sh("i=0; while [ $i -lt 3 ]; do schema-ctl pet dmt; sleep 1; "
                               "i=$((i+1)); done; exec sleep 100000", critical=1,
                               watchdog_timeout_ms=2000, dep="modules", stable_secs=0)},
                devices=WATCHDOG, heartbeat=10)
    text = v.finish(240)
    assert "watchdog: service 'dmt' missed pet window" in text
    assert "PID 1 poweroff" not in text and vmlib.POWER_DOWN not in text
    assert "Kernel panic" not in text          # a hardware reset, not a crash


def test_rescue_shell_when_nothing_can_boot_and_boot_goes_on_after_exit(machine):
    v = machine({})
    v.wait_for("rescue shell:")
    svc = "/etc/schema-init/services/after.svc"
    for line in ("echo exec=/bin/sh > %s" % svc, "echo args=-c >> %s" % svc,
                 "echo 'args=echo RESCUED-AND-BOOTED > /dev/console; schema-ctl poweroff' >> %s"
                 % svc, "echo oneshot=1 >> %s" % svc, "exit"):
        v.type(line)
    text = v.finish()
    assert "nothing can boot" in text
    assert "rescue shell exited: re-reading /etc/schema-init/services" in text
    assert "RESCUED-AND-BOOTED" in text and vmlib.POWER_DOWN in text


def test_while_a_getty_runs_pid1s_lines_go_to_the_kernel_log(machine):
    """Rail lines used to land in the middle of the login prompt on a serial console."""
    v = machine({"getty.svc": sh("exec sleep 100000", session=1, stable_secs=1),
                 "late.svc": sh("sleep 5; exit 3", dep="getty"),
                 "report.svc": sh("sleep 10; echo KMSG-DIED=$(dmesg | grep -c 'schema-init: .* late .*died') "
                                  "> /dev/console; schema-ctl poweroff", oneshot=1,
                                  dep="getty")})
    text = v.finish()
    assert "a getty has the console: my lines go to the kernel log" in text
    after = text.split("a getty has the console", 1)[1]
    counted = int(after.split("KMSG-DIED=", 1)[1].split()[0])
    assert counted >= 1, "the rail line of late's death is in the kernel log"
    assert " late " not in after.split("KMSG-DIED=", 1)[0].replace("late.svc", ""), \
        "no rail line of late on the console while the getty runs"
    assert "shutting down (poweroff)" in after and vmlib.POWER_DOWN in text


def test_halt_stops_everything_and_halts_without_power_off(machine):
    v = machine({"h.svc": sh("sleep 1; schema-ctl halt", oneshot=1)})
    v.wait_for("reboot: System halted", timeout=180)
    v.kill()
    text = v.text()
    assert "shutting down (halt)" in text and "[schema-init] PID 1 halt" in text
    assert "shutdown: filesystems read-only" in text and vmlib.POWER_DOWN not in text


def test_single_on_the_kernel_command_line_gives_sulogin_before_any_service(machine):
    v = machine({"first.svc": sh("echo FIRST-SERVICE-RAN > /dev/console; schema-ctl poweroff",
                                 oneshot=1)}, append="single")
    v.wait_for("single-user mode (kernel command line)")
    v.wait_for("root password", timeout=60)          # busybox's sulogin asks for it
    assert "FIRST-SERVICE-RAN" not in v.text()
    v.type("\x04")                                     # Ctrl-D: normal start-up
    text = v.finish()
    assert "single-user shell ended: booting" in text
    assert text.index("single-user shell ended") < text.index("FIRST-SERVICE-RAN")
    assert vmlib.POWER_DOWN in text
