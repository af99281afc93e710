"""The Pi Zero W board of the benchmark (`make bench BOARD=rpi-zero-w`,
bench/pi_inits_bench.py): the probe's lines read from a console where other lines cut in,
the Debian card's emulator, and (marker bench, `make bench-smoke BOARD=rpi-zero-w`) the
image and the systemd card booted once each in QEMU raspi0, every figure read."""

import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT

sys.path.insert(0, os.path.join(ROOT, "bench"))
import inits_bench  # noqa: E402
import pi_inits_bench  # noqa: E402

CONSOLE = """[   40.1] Bluetooth: hci0: BCM: Reset failed (-110)
rpi-zero-w login: bench: ready_uptime=43.73

bench: pid1_exe=/usr/sbin/init
bench: pid1_binary_bytes=10755504
bench: VmRSS=10912
bench: Threads=1
bench: rollup_Rss=10912
bench: rollup_Pss=10900
bench: rollup_Private_Dirty=2616
bench: rollup_Anonymous=2604
bench: MemTotal=440000
bench: MemAvailable=409540
bench: processes=8
bench: switches_idle=22
bench: pids_idle=1
bench: idle_secs=60

chain: ssh @37.190s +2.002s
bench: end
"""


def test_the_probe_lines_are_read_where_a_prompt_or_the_kernel_cut_in():
    values = dict(pi_inits_bench.VALUE.findall(CONSOLE))
    assert values["ready_uptime"] == "43.73"          # after a getty's prompt
    run = inits_bench.parse_probe("".join("%s=%s\n" % pair for pair in
                                          pi_inits_bench.VALUE.findall(CONSOLE)))
    assert run["pid1_private_dirty_kb"] == 2616 and run["mem_used_kb"] == 30460
    assert run["wakeups_per_min"] == 22.0 and run["boot_to_ready_s"] == 43.73
    assert run["kernel_to_pid1_exec_s"] is None       # no kernel trace on this board


def test_a_probe_that_saw_no_ready_machine_fails_the_boot():
    with pytest.raises(RuntimeError, match="not every service came up"):
        inits_bench.parse_probe("ready=never\nready_uptime=600.1\n")


def test_the_debian_card_boots_its_own_kernel_with_init_given(tmp_path):
    # a device tree with the node the emulator's watchdog fix rewrites
    source = tmp_path / "board.dts"
    source.write_text("/dts-v1/;\n/ { soc { watchdog@7e100000 { reg = <0x7e100000 0x28>; "
                      "}; }; };\n")
    subprocess.run(["dtc", "-I", "dts", "-O", "dtb", "-o", str(tmp_path / "base.img.dtb"),
                    str(source)], check=True, capture_output=True)
    for name in ("vmlinuz", "initrd"):
        (tmp_path / ("base.img." + name)).write_bytes(b"")
    vm = pi_inits_bench.machine("systemd", str(tmp_path / "card.img"),
                                str(tmp_path / "base.img"), str(tmp_path / "vm"),
                                "bench.init=systemd")
    assert isinstance(vm, pi_inits_bench.KernelCardVM)
    assert vm.append == pi_inits_bench.CMDLINE + " init=/lib/systemd/systemd bench.init=systemd"
    fixed = subprocess.run(["fdtget", "-t", "s", vm.dtb, "/soc/watchdog@7e100000",
                            "reg-names"], capture_output=True, text=True, check=True)
    assert fixed.stdout.strip() == "pm"
    assert "Loading, please wait" in vm.USERSPACE


@pytest.mark.bench
def test_smoke_rpi_zero_w_the_image_and_systemd_one_boot_each(tmp_path):
    import pi_image
    if not os.path.exists(pi_image.IMAGE):
        pytest.skip("no image (make image)")
    pi_inits_bench.main(["--inits", "schema-init,systemd", "--boots", "1", "--idle", "10",
                         "--settle", "5", "--no-first-boot", "--no-readme",
                         "--results", str(tmp_path), "--report", str(tmp_path / "r.md")])
    [result_file] = [p for p in os.listdir(tmp_path) if p.endswith(".json")]
    assert result_file.startswith("inits-rpi-zero-w-")
    with open(tmp_path / result_file) as f:
        result = json.load(f)
    assert result["board"] == "rpi-zero-w" and result["kernel"].endswith("-rpi")
    assert result["runs"]["schema-init"][0]["pid1_exe"] == "/usr/sbin/init"
    assert result["runs"]["systemd"][0]["pid1_exe"] == "/usr/lib/systemd/systemd"
    for name, figures in result["inits"].items():
        assert 0 < figures["pid1_private_dirty_kb"]["median"] < figures["pid1_rss_kb"]["median"]
        assert 0 < figures["boot_to_ready_s"]["median"] < figures["qemu_to_ready_s"]["median"]
        assert figures["poweroff_s"]["median"] > 0
        assert figures["processes"]["median"] >= 5
    assert result["runs"]["systemd"][0]["chain"], "systemd's critical chain"
    assert any("ssh" in line for line in result["runs"]["schema-init"][0]["chain"])
    assert "| schema-init |" in (tmp_path / "r.md").read_text()
