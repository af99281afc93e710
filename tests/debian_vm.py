"""A stock Debian 12 machine in QEMU (TCG) booted with init=/usr/sbin/schema-init (or
Debian's sysvinit, to compare): build/mkdebian.sh makes its disk, the host's kernel and
initramfs-tools initrd boot it, user-mode networking forwards 127.0.0.1:PORT to its sshd.
The console, the monitor and the outcome judging come from vm.VM."""

import glob
import os
import socket
import subprocess
import time

from conftest import ROOT
import vm as vmlib

CACHE = os.path.join(ROOT, "build", "tmp", "debian")
KEY = os.path.join(CACHE, "key")
KNOCKED = 9            # the guest port wait_ssh knocks on (discard: nothing listens)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def host_boot_files():
    kernels = sorted(glob.glob("/boot/vmlinuz-*"))
    assert kernels, "no kernel in /boot: make test-debian installs linux-image-amd64"
    kernel = kernels[-1]
    initrd = "/boot/initrd.img-" + kernel[len("/boot/vmlinuz-"):]
    assert os.path.exists(initrd), "no initramfs-tools initrd for %s" % kernel
    return kernel, initrd


def root_boot_files(root):
    """The newest kernel and its initramfs-tools initrd in a Debian root's /boot (the
    arm64 roots of build/mkdebian.sh ARCH=arm64 have linux-image-arm64)."""
    kernels = sorted(glob.glob(os.path.join(root, "boot", "vmlinuz-*")))
    assert kernels, "no kernel in %s/boot: mkdebian.sh ARCH=arm64 installs linux-image-arm64" % root
    kernel = kernels[-1]
    initrd = os.path.join(root, "boot", "initrd.img-" + kernel.rsplit("/vmlinuz-", 1)[1])
    assert os.path.exists(initrd), "no initramfs-tools initrd for %s" % kernel
    return kernel, initrd


class DebianVM(vmlib.VM):
    """TARGET (vm.BOARDS: x86_64, aarch64) picks QEMU, its machine and the console;
    BOOT_FILES (kernel, initrd) default to the host's /boot for x86_64 (other targets must
    give them, e.g. root_boot_files of their root)."""

    def __init__(self, tmp_path, init="/usr/sbin/schema-init", append="", memory=512,
                 image=None, devices=(), services=None, target="x86_64", boot_files=None):
        self.dir = str(tmp_path)
        os.makedirs(self.dir, exist_ok=True)
        self.disk = image or os.path.join(self.dir, "debian.img")
        self.target = target
        self.board = vmlib.BOARDS[target]
        if image is None:
            env = dict(os.environ)
            if services:
                env["SERVICES"] = services
            if target != "x86_64":
                env["ARCH"] = self.board["deb_arch"]
            subprocess.run([os.path.join(ROOT, "build", "mkdebian.sh"), self.disk],
                           check=True, env=env, timeout=900)
        if boot_files is None:
            assert target == "x86_64", "DebianVM: boot_files needed for %s" % target
            boot_files = host_boot_files()
        self.kernel, self.initrd = boot_files
        self.init = init
        self.append = append
        self.memory = memory
        self.devices = list(devices)
        self.port = free_port()
        self.knock_port = free_port()
        self.console_path = os.path.join(self.dir, "console-%d.log" % time.time_ns())
        self.monitor_path = os.path.join(self.dir, "monitor.sock")
        self.proc = None

    def start(self):
        command = [self.board["qemu"], "-accel", "tcg"] + self.board["machine"] + [
                   "-m", str(self.memory), "-nographic",
                   "-no-reboot", "-kernel", self.kernel, "-initrd", self.initrd,
                   "-drive", "file=%s,format=raw,if=virtio" % self.disk,
                   "-nic", "user,model=virtio-net-pci,hostfwd=tcp:127.0.0.1:%d-:22,"
                   "hostfwd=tcp:127.0.0.1:%d-:%d" % (self.port, self.knock_port, KNOCKED),
                   "-monitor", "unix:%s,server=on,wait=off" % self.monitor_path,
                   "-serial", "stdio",
                   "-append", "root=/dev/vda rw console=%s net.ifnames=0 panic=-1 "
                   "init=%s %s" % (self.board["console"], self.init, self.append)
                   ] + self.devices
        self.started = time.monotonic()
        self.console = open(self.console_path, "wb")
        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=self.console,
                                     stderr=subprocess.STDOUT)
        return self

    def ssh(self, command, timeout=60, check=False):
        return subprocess.run(
            ["ssh", "-i", KEY, "-p", str(self.port), "-o", "StrictHostKeyChecking=no",
             "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=10",
             "-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "root@127.0.0.1", command],
            capture_output=True, text=True, timeout=timeout, check=check)

    def first_bytes(self, port, count, wait):
        """What the guest sent first (up to COUNT bytes) on a connection to forwarded PORT
        within WAIT seconds: b"" when it reset or closed the connection (nothing listens
        there, but the guest has its address), None when nothing came (QEMU accepts the
        host's connection before the guest can take it) or QEMU is not listening yet."""
        try:
            with socket.create_connection(("127.0.0.1", port), wait) as s:
                s.settimeout(wait)
                return s.recv(count)
        except ConnectionResetError:    # the guest's reset, passed on
            return b""
        except OSError:                 # a timeout; refused: QEMU not listening yet
            return None

    def banner(self, wait=1.0):
        """True when the guest's sshd sent its banner within WAIT seconds."""
        return self.first_bytes(self.port, 4, wait) == b"SSH-"

    def network_up(self, wait=1.0):
        """True when the guest answered a connection to a port nothing listens on (KNOCKED:
        its kernel's reset) within WAIT seconds: it has its address."""
        return self.first_bytes(self.knock_port, 1, wait) == b""

    def wait_ssh(self, timeout=240):
        """Seconds from QEMU's start until sshd answered: the moment its banner first came,
        of the attempt after which a command ran.

        QEMU's user network accepts every host connection at once and keeps trying to
        reach the guest for it, even after the host gave up: connections to sshd made
        before the guest had its address all reach sshd together once it has, and past
        sshd's MaxStartups (10) it drops new ones; each also costs the guest an sshd
        (measured: 15 such, 20 s of a TCG guest's boot).  So the guest's network is
        first awaited on KNOCKED (its kernel resets those, for free), a look a second,
        with one look at sshd every 10 s in case something there swallows them; then
        sshd's banner, waited for up to 15 s a connection (sshd starts a process for
        each, seconds in a busy TCG guest: a short wait given up would only start
        another), again a quarter of a second after a reset (no sshd yet)."""
        deadline = time.monotonic() + timeout
        up, last_ssh = False, None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if not up:
                up = self.network_up()
                if not up and last_ssh is not None and time.monotonic() - last_ssh < 10:
                    time.sleep(0.1)     # (a refused knock returns at once)
                    continue
            last_ssh = time.monotonic()
            if self.banner(wait=15 if up else 1):
                answered = time.monotonic() - self.started
                try:
                    if self.ssh("true", timeout=20).returncode == 0:
                        return answered
                except subprocess.TimeoutExpired:
                    pass
            time.sleep(0.25)
        raise AssertionError("no SSH within %d s:\n%s" % (timeout, self.text()[-5000:]))

    def login_serial(self, timeout=240):
        """Log in as root (no password in the test image) on the serial console."""
        self.wait_for("login:", timeout)
        self.type("root")
        self.wait_for("root@debian-schema:~#", 60)


def fsck_clean(image):
    """e2fsck -fn: 0 when the filesystem is clean."""
    return subprocess.run(["e2fsck", "-fn", image], capture_output=True, text=True,
                          timeout=300)
