"""The Pi Zero W board's files (distros/raspberry-pi-zero-w), checked without building the
image: its services pass schema-init's strict check, its scripts parse with the image's
/bin/sh (dash), and every script a service runs is shipped."""

import os
import re
import subprocess

import pytest

from conftest import ROOT, program

BOARD = os.path.join(ROOT, "distros", "raspberry-pi-zero-w")
SCRIPTS = sorted([os.path.join(BOARD, "lib", name) for name in os.listdir(os.path.join(
    BOARD, "lib"))] + [os.path.join(BOARD, "initramfs-init")])

pytestmark = pytest.mark.process


def test_the_board_services_pass_the_strict_check():
    result = subprocess.run([program("schema-init"), "--strict", "--check",
                             os.path.join(ROOT, "services", "rpi-zero-w")], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=os.path.basename)
def test_every_board_script_parses_and_is_executable(script):
    assert os.access(script, os.X_OK), script
    with open(script) as f:
        assert f.readline() == "#!/bin/sh\n"
    result = subprocess.run(["dash", "-n", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_every_board_script_a_service_runs_is_shipped():
    directory = os.path.join(ROOT, "services", "rpi-zero-w")
    files = [os.path.join(top, name) for top, _, names in os.walk(directory) for name in names]
    assert os.path.join(directory, "optional", "schema-metrics.svc") in files  # added by metrics
    for name in files:
        with open(name) as f:
            for path in re.findall(r"^exec=/usr/lib/schema-init-board/(\S+)$", f.read(), re.M):
                assert os.path.isfile(os.path.join(BOARD, "lib", path)), (name, path)
