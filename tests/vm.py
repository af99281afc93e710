"""Boot the static schema-init as PID 1 of a QEMU VM (TCG) and watch its serial console.

QEMU exits 0 whatever happened, so outcomes are judged by the console: the kernel's
"reboot: Power down" / "reboot: Restarting system", schema-init's own lines, a panic.
"""

import glob
import os
import re
import shutil
import socket
import subprocess
import time

from conftest import ROOT

QEMU = "qemu-system-x86_64"
POWER_DOWN = "reboot: Power down"
RESTART = "reboot: Restarting system"
CROSS = os.path.join(ROOT, "build", "tmp", "cross")
# The emulated boards of the other targets (toolchains/fetch_kernel.sh fetches their
# Debian kernels): QEMU program, machine, console, where a disk appears.
BOARDS = {
    "x86_64": {"qemu": QEMU, "machine": [], "console": "ttyS0", "disk": "/dev/vda"},
    "aarch64": {"qemu": "qemu-system-aarch64", "machine": ["-M", "virt", "-cpu", "cortex-a53"],
                "console": "ttyAMA0", "disk": "/dev/vda", "deb_arch": "arm64"},
    # The Pi Zero W: QEMU runs no Pi firmware (kernel, dtb, initrd given directly); the
    # memory is the board's 512 MB; the SD card's size must be a power of 2.
    "armv6l": {"qemu": "qemu-system-arm", "machine": ["-M", "raspi0"], "console": "ttyAMA0",
               "disk": "/dev/mmcblk0", "deb_arch": "armel",
               "dtb": "bcm2835-rpi-zero-w.dtb"},
}


def kernel(target="x86_64"):
    if target == "x86_64":
        found = sorted(glob.glob("/boot/vmlinuz-*"))
        assert found, "no kernel in /boot: make test-vm installs linux-image-amd64"
        return found[-1]
    root = os.path.join(CROSS, "kernel", BOARDS[target]["deb_arch"], "root")
    if not glob.glob(os.path.join(root, "boot", "vmlinuz-*")):
        subprocess.run([os.path.join(ROOT, "toolchains", "fetch_kernel.sh"),
                        BOARDS[target]["deb_arch"]], check=True, timeout=600)
    return sorted(glob.glob(os.path.join(root, "boot", "vmlinuz-*")))[-1]


def emulator_dtb(target, directory):
    """The board's device tree, fixed for QEMU 7.2 only: its raspi0 lacks a register
    block the watchdog node names (the real board's dtb is left as it is)."""
    source = glob.glob(os.path.join(CROSS, "kernel", BOARDS[target]["deb_arch"], "root", "usr",
                                    "lib", "linux-image-*", BOARDS[target]["dtb"]))[0]
    dtb = os.path.join(directory, "emulator.dtb")
    shutil.copy(source, dtb)
    node = "/soc/watchdog@7e100000"
    subprocess.run(["fdtput", "-t", "x", dtb, node, "reg", "7e100000", "114"], check=True)
    subprocess.run(["fdtput", "-t", "s", dtb, node, "reg-names", "pm"], check=True)
    return dtb


class VM:
    # Console lines that end a wait at once as a failure (a panic, no init): QEMU does not
    # always stop by itself then (raspi0 cannot reset; busybox's init runs instead).
    fail_on = ()

    def __init__(self, tmp_path, services, append="", disk=None, devices=(), heartbeat=30,
                 memory=384, target="x86_64", fail_on=()):
        self.dir = str(tmp_path)
        self.services = os.path.join(self.dir, "services")
        os.makedirs(self.services, exist_ok=True)
        for name, text in services.items():
            with open(os.path.join(self.services, name), "w") as f:
                f.write(text)
        self.initrd = os.path.join(self.dir, "initrd.cpio.gz")
        self.target = target
        self.board = BOARDS[target]
        self.kernel = kernel(target)
        env = dict(os.environ, WATCHDOG_HEARTBEAT=str(heartbeat), TARGET=target)
        subprocess.run([os.path.join(ROOT, "build", "mkinitramfs.sh"), self.initrd,
                        self.services, self.kernel.split("/vmlinuz-", 1)[1]],
                       check=True, env=env, timeout=120)
        self.append = append
        self.disk = disk
        self.devices = list(devices)
        self.memory = memory
        self.fail_on = tuple(fail_on)
        self.console_path = os.path.join(self.dir, "console-%d.log" % time.time_ns())
        self.monitor_path = os.path.join(self.dir, "monitor.sock")
        self.proc = None

    def start(self):
        board = self.board
        memory = [] if self.target == "armv6l" else ["-m", str(self.memory)]
        command = [board["qemu"], "-accel", "tcg"] + board["machine"] + memory + [
                   "-nographic", "-no-reboot",
                   "-nic", "none", "-kernel", self.kernel, "-initrd", self.initrd,
                   "-monitor", "unix:%s,server=on,wait=off" % self.monitor_path,
                   "-serial", "stdio",
                   "-append", "console=%s rdinit=/sbin/init panic=-1 loglevel=4 %s" % (
                       board["console"], self.append)] + self.devices
        if "dtb" in board:
            command += ["-dtb", emulator_dtb(self.target, self.dir)]
        if self.disk:
            command += ["-drive", "file=%s,format=raw,if=%s" % (
                self.disk, "sd" if self.target == "armv6l" else "virtio")]
        self.console = open(self.console_path, "wb")
        self.started = time.monotonic()          # QEMU start, for boot-time measurements
        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=self.console,
                                     stderr=subprocess.STDOUT)
        return self

    def text(self):
        with open(self.console_path, "rb") as f:
            return f.read().decode("utf-8", "replace").replace("\r", "")

    def wait_for(self, needle, timeout=120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.text():
                return True
            if self.proc.poll() is not None:
                break
            self.check_failed()
            self.check_stalled()
            time.sleep(0.1)
        raise AssertionError("%r not on the console within %d s%s:\n%s"
                             % (needle, timeout, self.cpu_note(), self.text()[-5000:]))

    def type(self, line):
        """Type a line on the serial console."""
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def monitor(self, command):
        sock = socket.socket(socket.AF_UNIX)
        sock.connect(self.monitor_path)
        sock.settimeout(5)
        try:
            time.sleep(0.2)
            sock.recv(4096)
            sock.sendall(command.encode() + b"\n")
            time.sleep(0.3)
        finally:
            sock.close()

    def check_failed(self):
        text = self.text() if self.fail_on else ""
        for marker in self.fail_on:
            if marker in text:
                self.kill()
                raise AssertionError("%r on the console:\n%s" % (marker, text[-5000:]))

    def check_stalled(self):
        """A wait's check that the emulator still runs the guest (CardVM: raspi0)."""

    def cpu_note(self):
        """What a failed wait adds to its message about QEMU's own state."""
        return ""

    def finish(self, timeout=180):
        deadline = time.monotonic() + timeout
        try:
            while self.fail_on and self.proc.poll() is None and time.monotonic() < deadline:
                self.check_failed()
                time.sleep(0.2)
            self.proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("the VM did not end within %d s:\n%s"
                                 % (timeout, self.text()[-5000:]))
        finally:
            self.console.close()
        return self.text()

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def reference_services():
    """services/qemu: {file name: text}."""
    directory = os.path.join(ROOT, "services", "qemu")
    return {name: open(os.path.join(directory, name)).read() for name in os.listdir(directory)}


def assert_reference_boot(text):
    """The console of a reference boot (DEMO_POWEROFF=1): every service but the report
    FUNDAMENTAL or PERFECT in the status printed inside, then PID 1's clean power-off."""
    assert "Kernel panic" not in text
    status = text.split("=== schema-ctl status (inside the VM) ===", 1)[1].split("===", 1)[0]
    states = dict(re.findall(r"^  (\S+)\s+pid=\d+\s+state=(\S+)", status, re.M))
    assert set(states) == {"hostname", "klogd", "modules", "network", "report", "syslogd",
                           "ticker"}
    for name, state in states.items():
        if name != "report":
            assert state in ("FUNDAMENTAL", "PERFECT"), (name, state)
    assert "[schema-init] PID 1 poweroff" in text and POWER_DOWN in text


def make_ext4(path, size_mb=64):
    """An ext4 image (64 MB: a power of 2, as the Pi's SD card must be)."""
    with open(path, "wb") as f:
        f.truncate(size_mb << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", path], check=True, timeout=60)


def fs_state(path):
    out = subprocess.run(["dumpe2fs", "-h", path], capture_output=True, text=True,
                         timeout=60).stdout
    for line in out.splitlines():
        if line.startswith("Filesystem state:"):
            return line.split(":", 1)[1].strip()
    return None


def read_file(image, inside):
    return subprocess.run(["debugfs", "-R", "cat %s" % inside, image], capture_output=True,
                          text=True, timeout=60).stdout


def have_tools():
    return all(shutil.which(t) for t in (QEMU, "cpio", "mkfs.ext4", "debugfs"))
