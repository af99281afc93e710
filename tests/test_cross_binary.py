"""Cross tier (make test-cross): the aarch64 and armv6l binaries themselves.

`make test-cross` builds them (toolchains/build-target.sh), runs the build and process
tiers on each under qemu-user with the board's CPU (QEMU_CPU through binfmt_misc), then
this file and the emulated boots (tests/test_vm_cross.py).
"""

import os
import subprocess
import sys

import pytest

from conftest import ROOT

pytestmark = pytest.mark.cross

TARGETS = {"aarch64": "cortex-a53", "armv6l": "arm1176"}


def binary(target):
    path = os.environ.get("SCHEMA_INIT_BIN_" + target.upper()) or \
        os.path.join(ROOT, "build", "out", target, "schema-init")
    assert os.path.exists(path), "%s is missing: make %s" % (path, target)
    return path


def run(argv, cpu, **kwargs):
    env = dict(os.environ, QEMU_CPU=cpu)
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, **kwargs)


def test_binfmt_gives_the_process_tier_the_boards_cpu(tmp_path):
    """The process tier's proof is only as good as its CPU: with QEMU_CPU=arm1176 an ARMv7
    program (gnueabihf's crt and libc) must die of SIGILL, and run with cortex-a7."""
    source = tmp_path / "v7.c"
    source.write_text("int main(void) { return 0; }\n")
    program = tmp_path / "v7"
    subprocess.run(["arm-linux-gnueabihf-gcc", "-static", "-O2", "-o", str(program),
                    str(source)], check=True, timeout=120)
    assert run([str(program)], "arm1176").returncode == -4        # SIGILL
    assert run([str(program)], "cortex-a7").returncode == 0


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_binary_is_static_for_its_board(target):
    done = subprocess.run([sys.executable, os.path.join(ROOT, "toolchains", "elfcheck.py"),
                           "--verbose", "--target", target, binary(target)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    if target == "armv6l":
        assert "Tag_CPU_arch=v6KZ" in done.stdout and "Thumb-1" in done.stdout
        assert "FP=VFPv2" in done.stdout and "soft-float" in done.stdout


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_binary_runs_on_the_boards_cpu_and_reads_the_reference_services(target):
    done = run([binary(target), "--version"], TARGETS[target])
    assert done.returncode == 0 and done.stdout.startswith("schema-init "), done.stderr
    done = run([binary(target), "--check", os.path.join(ROOT, "services", "reference")], TARGETS[target])
    assert done.returncode == 0, done.stdout + done.stderr
    assert " 0 errors" in done.stdout
