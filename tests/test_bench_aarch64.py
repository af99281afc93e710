"""The aarch64 board of issue 13's benchmark (`make bench-smoke BOARD=aarch64`, marker
bench; not in CI): schema-init and systemd booted once each on the arm64 benchmark root in
QEMU virt (cortex-a53, TCG), every figure read. Needs the aarch64 static binary
(SCHEMA_INIT_BIN, else build/out/aarch64/schema-init) and makes the arm64 root the first
time (debootstrap through qemu-user-static, several minutes)."""

import json
import os
import sys

import pytest

from conftest import ROOT

sys.path.insert(0, os.path.join(ROOT, "bench"))
import inits_bench  # noqa: E402


def test_board_table_names_what_a_boot_needs():
    board = inits_bench.BOARDS["aarch64"]
    assert board["deb_arch"] == "arm64" and board["kernel"] == "root"
    assert inits_bench.bench_root(board).endswith("root-bench-arm64")
    assert inits_bench.bench_root(inits_bench.BOARDS["x86_64"]).endswith("root-bench")
    assert set(inits_bench.POWEROFF) == set(inits_bench.INITS)


def test_ready_is_dated_by_the_probe_end():
    values = {"ready_uptime": "30.0", "probe_end_uptime": "52.5"}
    # the probe ended 80 s after QEMU's start, 22.5 s of guest time after ready
    assert inits_bench.qemu_to_ready(80.0, values) == pytest.approx(57.5)
    assert inits_bench.qemu_to_ready(80.0, {"ready_uptime": "30.0"}) is None


@pytest.mark.bench
def test_smoke_aarch64_two_inits_one_boot_each(tmp_path, monkeypatch):
    binary = os.environ.get("SCHEMA_INIT_BIN") or os.path.join(ROOT, "build", "out",
                                                                "aarch64", "schema-init")
    if not os.path.exists(binary):
        pytest.skip("no aarch64 binary (make aarch64)")
    monkeypatch.setenv("SCHEMA_INIT_BIN", binary)
    inits_bench.main(["--board", "aarch64", "--inits", "schema-init,systemd", "--boots", "1",
                      "--idle", "10", "--settle", "5", "--no-readme",
                      "--results", str(tmp_path), "--report", str(tmp_path / "report.md")])
    [result_file] = [p for p in os.listdir(tmp_path) if p.endswith(".json")]
    assert result_file.startswith("inits-aarch64-")
    with open(tmp_path / result_file) as f:
        result = json.load(f)
    assert result["board"] == "aarch64" and result["kernel"].endswith("-arm64")
    assert result["runs"]["schema-init"][0]["pid1_exe"] == "/usr/sbin/schema-init"
    assert result["runs"]["systemd"][0]["pid1_exe"] == "/usr/lib/systemd/systemd"
    for name, figures in result["inits"].items():
        assert set(inits_bench.FIGURES) <= set(figures), name
        assert 0 < figures["pid1_private_dirty_kb"]["median"] < figures["pid1_rss_kb"]["median"]
        assert figures["qemu_to_ssh_s"]["median"] > figures["kernel_to_pid1_exec_s"]["median"]
        assert figures["poweroff_s"]["median"] > 0
        assert figures["processes"]["median"] >= 8
    assert result["inits"]["schema-init"]["pid1_threads"]["median"] == 1
