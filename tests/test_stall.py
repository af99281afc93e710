"""The raspi0 tier's guard against the emulator itself stopping (tests/pi_image.py
EmulatorStalled, conftest.py): a stall is told from a guest that is merely quiet by QEMU's
own CPU time, and a case that stalled runs once more, never more."""

import os
import subprocess
import sys
import textwrap
import time

import pytest

import pi_image as pi

pytest_plugins = ["pytester"]


def watcher(tmp_path, argv):
    """A CardVM that watches ARGV's process instead of QEMU, its console an empty file,
    with the stall's times shrunk from minutes to seconds."""
    vm = object.__new__(pi.CardVM)
    vm.console_path = str(tmp_path / "console.log")
    open(vm.console_path, "w").close()
    vm.monitor_path = str(tmp_path / "no-monitor.sock")
    vm.proc = subprocess.Popen(argv)
    vm.STALL_S, vm.STALL_WINDOW, vm.STALL_CPU, vm.STALL_SAMPLE = 2, 1.5, 0.3, 0.25
    return vm


def watch(vm, seconds):
    """check_stalled for SECONDS, as a wait calls it."""
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            vm.check_stalled()
            time.sleep(0.1)
    finally:
        vm.kill()


def test_an_idle_emulator_with_a_silent_console_is_a_stall(tmp_path):
    vm = watcher(tmp_path, ["sleep", "60"])
    with pytest.raises(pi.EmulatorStalled, match=r"console silent for \d+ s, QEMU used 0\.\d\d s"):
        watch(vm, 10)
    assert vm.proc.poll() is not None             # killed by the check


def test_a_busy_emulator_or_a_talking_console_is_not(tmp_path):
    busy = watcher(tmp_path, [sys.executable, "-c", "while True: pass"])
    watch(busy, 5)                                # silent console, but QEMU computes
    talking = watcher(tmp_path, ["sh", "-c", "while :; do echo . >> %s; sleep 0.5; done"
                                 % str(tmp_path / "console.log")])
    watch(talking, 5)                             # idle, but the console grows


def test_a_stalled_case_runs_once_more_and_a_second_stall_stands(pytester):
    pytester.syspathinsert(os.path.dirname(__file__))
    pytester.makeconftest(open(os.path.join(os.path.dirname(__file__), "conftest.py")).read())
    pytester.makepyfile(textwrap.dedent("""
        import pytest
        from pi_image import EmulatorStalled
        runs = {"once": 0, "always": 0, "other": 0}

        @pytest.fixture
        def card(tmp_path):
            return tmp_path

        @pytest.mark.stall_rerun
        def test_once(card):
            runs["once"] += 1
            if runs["once"] == 1:
                raise EmulatorStalled("stalled")

        @pytest.mark.stall_rerun
        def test_always(card):
            runs["always"] += 1
            raise EmulatorStalled("stalled %d" % runs["always"])

        @pytest.mark.stall_rerun
        def test_other(card):
            runs["other"] += 1
            assert runs["other"] == 99

        def test_counts():
            assert runs == {"once": 2, "always": 2, "other": 1}
    """))
    result = pytester.runpytest("-p", "no:cacheprovider", "-o",
                                "markers=stall_rerun: x")
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines(["*test_once*the emulator stalled*runs once more*",
                                 "*EmulatorStalled: stalled 2*"])
