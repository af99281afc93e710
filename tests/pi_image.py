"""The Pi Zero W card image (build/mkimage.sh) from outside, without mounts: its partition
table (sfdisk -J), its FATs (mtools), its ext4 data partition (debugfs, e2fsck on a copy),
and a QEMU raspi0 booting it as the board's firmware would (issue 23: QEMU runs no Pi
firmware, so ``firmware_choice`` plays it): autoboot.txt read from the selector and the
tryboot flag pick the boot partition, whose own kernel, device tree, initramfs and
cmdline.txt are booted, with the image itself as the SD card."""

import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import time

import vm as vmlib
from conftest import ROOT

BOARD = "rpi-zero-w"
BOARD_DIR = os.path.join(ROOT, "distros", "raspberry-pi-zero-w")
IMAGE = os.environ.get("SCHEMA_IMAGE") or os.path.join(ROOT, "build", "out",
                                                         "schema-init-%s.img" % BOARD)
SECTOR = 512
# The A/B card's partitions (board.env, issue 23).
SELECTOR, BOOT_A, BOOT_B, EXTENDED, ROOT_A, ROOT_B, DATA = 1, 2, 3, 4, 5, 6, 7
# A boot that went wrong ends the wait at once (raspi0 cannot reset after a panic).
FAILED = ("Kernel panic", "Failed to execute /sbin/init", "No working init found",
          "initramfs: cannot mount")


def board_env():
    values = {}
    with open(os.path.join(BOARD_DIR, "board.env")) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, value = line.split("=", 1)
                values[key] = value.strip('"')
    return values


def run(*argv, **kwargs):
    kwargs.setdefault("timeout", 300)
    return subprocess.run(list(argv), check=True, capture_output=True, text=True, **kwargs)


def partitions(image):
    """sfdisk -J's table: {"label", "id", "partitions": [{"start", "size", "type", ...}]}."""
    return json.loads(run("sfdisk", "-J", image).stdout)["partitiontable"]


def offset(image, number):
    return partitions(image)["partitions"][number - 1]["start"] * SECTOR


def fat(image, number=SELECTOR):
    return "%s@@%d" % (image, offset(image, number))


def fat_names(image, number=SELECTOR):
    out = subprocess.run(["mdir", "-i", fat(image, number), "-b", "::"], capture_output=True,
                         text=True, timeout=60)
    return sorted(line.split("/", 1)[1] for line in out.stdout.split()
                  if line.startswith("::/"))


def fat_read(image, name, number=SELECTOR):
    return subprocess.run(["mtype", "-i", fat(image, number), "::" + name], check=True,
                          capture_output=True, timeout=60).stdout


def fat_get(image, name, dest, number=SELECTOR):
    run("mcopy", "-i", fat(image, number), "-o", "::" + name, dest)
    return dest


def fat_put(image, source, name, number=SELECTOR):
    run("mcopy", "-i", fat(image, number), "-o", source, "::" + name)


# --- the firmware, played (issue 23) ----------------------------------------------------
# What the Pi firmware does with autoboot.txt (Raspberry Pi's documentation of
# autoboot.txt: at most 512 bytes read; the [all], [none] and [tryboot] filters; the
# last boot_partition that applies wins; none, or no readable file: the default, the
# first FAT partition with start.elf; a partition is bootable only if it has start.elf).

def parse_autoboot(text, tryboot):
    """The boot partition autoboot.txt's TEXT names for a boot with or without the
    tryboot flag (0: the default partition)."""
    section, chosen = "all", 0
    for line in text[:512].decode("ascii", "replace").splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip().lower()
            continue
        key, eq, value = line.partition("=")
        applies = section == "all" or (section == "tryboot" and tryboot)
        if eq and applies and key.strip() == "boot_partition" and value.strip().isdigit():
            chosen = int(value.strip())
    return chosen


def bootable(image, number):
    try:
        return "start.elf" in fat_names(image, number)
    except (IndexError, subprocess.SubprocessError):
        return False


def firmware_choice(image, tryboot=False):
    """(partition booted, why): the boot partition the firmware would start from, or
    (None, why) when the card boots nothing."""
    try:
        text = fat_read(image, "autoboot.txt")
    except subprocess.CalledProcessError:
        text = None
    chosen = parse_autoboot(text, tryboot) if text is not None else 0
    why = "autoboot.txt%s" % (" [tryboot]" if tryboot else "") if text is not None \
        else "no readable autoboot.txt"
    if chosen == 0:
        for number in (1, 2, 3, 4):
            if bootable(image, number):
                return number, why + ": the first partition with start.elf"
        return None, why + ": no partition has start.elf"
    if not bootable(image, chosen):
        return None, "%s: partition %d has no start.elf" % (why, chosen)
    return chosen, why


def restart_command(console_text):
    """The argument of the guest's last reboot (the kernel says it: "Restarting system
    with command '0 tryboot'"), which the kernel hands to the firmware; None for a plain
    reboot, a power-off or a cut."""
    found = re.findall(r"Restarting system with command '([^']*)'", console_text)
    return found[-1] if found and "Restarting system" in console_text[-3000:] else None


def extract(image, number, dest):
    """Partition NUMBER as a file of its own (sparse where the image is)."""
    part = partitions(image)["partitions"][number - 1]
    run("dd", "if=%s" % image, "of=%s" % dest, "bs=512", "skip=%d" % part["start"],
        "count=%d" % part["size"], "conv=sparse", "status=none")
    return dest


def put_back(image, number, source):
    part = partitions(image)["partitions"][number - 1]
    assert os.path.getsize(source) == part["size"] * SECTOR
    run("dd", "if=%s" % source, "of=%s" % image, "bs=512", "seek=%d" % part["start"],
        "conv=notrunc,sparse", "status=none")


def digest(image, number):
    part = partitions(image)["partitions"][number - 1]
    h = hashlib.sha256()
    with open(image, "rb") as f:
        f.seek(part["start"] * SECTOR)
        left = part["size"] * SECTOR
        while left:
            chunk = f.read(min(left, 1 << 20))
            h.update(chunk)
            left -= len(chunk)
    return h.hexdigest()


def debugfs(fs, *commands, write=False):
    """debugfs COMMANDS on the filesystem file FS (read-only unless WRITE)."""
    script = fs + ".debugfs"
    with open(script, "w") as f:
        f.write("".join(c + "\n" for c in commands))
    try:
        return subprocess.run(["debugfs"] + (["-w"] if write else []) + ["-f", script, fs],
                              capture_output=True, text=True, timeout=120)
    finally:
        os.unlink(script)


def data_file(image, path, workdir, binary=False):
    """The content of PATH on the data partition ('' or b'' if missing)."""
    fs = extract(image, DATA, os.path.join(workdir, "data-read.ext4"))
    try:
        return subprocess.run(["debugfs", "-R", "cat %s" % path, fs], capture_output=True,
                              text=not binary, timeout=120).stdout
    finally:
        os.unlink(fs)


def add_services(image, services, workdir):
    """Services written where an operator's own go: /etc/schema-init/services on the data
    partition (the upper layer of the /etc overlay), loaded once /data is mounted."""
    fs = extract(image, DATA, os.path.join(workdir, "data-write.ext4"))
    # after a power cut the journal is replayed first, as the device's own e2fsck -p would
    replay = subprocess.run(["e2fsck", "-fy", fs], capture_output=True, text=True, timeout=300)
    assert replay.returncode in (0, 1), replay.stdout + replay.stderr
    commands = []
    path = ""
    for part in ("overlay", "etc", "upper", "schema-init", "services"):
        path += "/" + part
        commands.append("mkdir %s" % path)
    for name, text in services.items():
        source = os.path.join(workdir, name)
        with open(source, "w") as f:
            f.write(text)
        commands += ["rm %s/%s" % (path, name), "write %s %s/%s" % (source, path, name)]
    debugfs(fs, *commands, write=True)
    put_back(image, DATA, fs)
    os.unlink(fs)


def fsck(image, workdir):
    """e2fsck -fn of the data partition: (exit code, output)."""
    fs = extract(image, DATA, os.path.join(workdir, "data-fsck.ext4"))
    try:
        result = subprocess.run(["e2fsck", "-fn", fs], capture_output=True, text=True,
                                timeout=300)
        return result.returncode, result.stdout + result.stderr
    finally:
        os.unlink(fs)


def card(tmp_path, size_mb=1024, name="card.img"):
    """A copy of the image on a card of SIZE_MB (a power of 2: QEMU's SD card must be)."""
    path = str(tmp_path / name)
    shutil.copyfile(IMAGE, path)
    with open(path, "r+b") as f:
        f.truncate(size_mb << 20)
    return path


def fix_watchdog(dtb):
    """The device tree DTB given the emulator's watchdog fix (CardVM's docstring)."""
    node = "/soc/watchdog@7e100000"
    run("fdtput", "-t", "x", dtb, node, "reg", "7e100000", "114")
    run("fdtput", "-t", "s", dtb, node, "reg-names", "pm")


class EmulatorStalled(AssertionError):
    """QEMU stopped running the guest: its console silent and QEMU itself idle (no CPU
    time), which a running guest, even an idle one, never is. A case that ends so is run
    once more from its start (conftest.py): the emulator failed, not the card."""


class CardVM(vmlib.VM):
    """QEMU raspi0 booting a card as the firmware would: the boot partition autoboot.txt
    names (``firmware_choice``, TRYBOOT the firmware's one-shot flag), its kernel, dtb,
    initramfs and cmdline.txt; the dtb given the emulator's watchdog fix, SERIAL as
    serial-number and /chosen/bootloader's partition and tryboot as the firmware sets
    them; the mini UART (ttyS1, the header's serial port) on stdio."""

    def __init__(self, tmp_path, image, serial=None, append="", tryboot=False,
                 bootloader_node=True):
        self.setup(tmp_path, image)
        self.partition, self.why = firmware_choice(image, tryboot)
        assert self.partition is not None, "the card boots nothing: %s" % self.why
        for name in ("vmlinuz", "initrd.img", "cmdline.txt", board_env()["DTB"]):
            fat_get(image, name, os.path.join(self.dir, name), self.partition)
        dtb = os.path.join(self.dir, board_env()["DTB"])
        fix_watchdog(dtb)
        if serial:
            run("fdtput", "-t", "s", dtb, "/", "serial-number", serial)
        if bootloader_node:
            run("fdtput", "-c", "-p", dtb, "/chosen/bootloader")
            run("fdtput", "-t", "u", dtb, "/chosen/bootloader", "partition",
                str(self.partition))
            run("fdtput", "-t", "u", dtb, "/chosen/bootloader", "tryboot",
                "1" if tryboot else "0")
        self.dtb = dtb
        with open(os.path.join(self.dir, "cmdline.txt")) as f:
            self.cmdline = f.read().strip()
        # QEMU 7.2's raspi0 freezes when its watchdog is started (tests/vm.py).
        self.append = "%s SCHEMA_WATCHDOG=none %s" % (self.cmdline, append)

    def setup(self, tmp_path, image):
        """What every raspi0 machine has: its directory, its card, the console and the
        monitor (the boot files are the caller's)."""
        self.dir = str(tmp_path)
        os.makedirs(self.dir, exist_ok=True)
        self.image = image
        self.fail_on = FAILED
        self.console_path = os.path.join(self.dir, "console.log")
        self.monitor_path = os.path.join(self.dir, "monitor.sock")
        self.proc = None

    def wait_re(self, pattern, timeout=300):
        """The first match of PATTERN on the console (re.M), waiting up to TIMEOUT s."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.text(), re.M)
            if found:
                return found
            if self.proc.poll() is not None:
                break
            self.check_failed()
            self.check_stalled()
            time.sleep(0.2)
        raise AssertionError("/%s/ not on the console within %d s%s:\n%s"
                             % (pattern, timeout, self.cpu_note(), self.text()[-5000:]))

    # QEMU 7.2's raspi0 also stops for good later in a boot (CI, 2026-12-06: the console
    # ended once udev had loaded the board's modules, and no kernel line came in the next
    # 900 s, not even the Bluetooth driver's timeouts that follow within 10 s).  A running
    # guest costs QEMU CPU time even when idle (0.8 s in 15 s here, a getty waiting and
    # nothing else); a wait that sees the console silent for STALL_S while QEMU used less
    # than STALL_CPU s in the last STALL_WINDOW s says the emulator stalled.
    STALL_S = 120
    STALL_WINDOW = 60
    STALL_CPU = 0.3
    STALL_SAMPLE = 5                      # s between two readings of QEMU's CPU time

    def qemu_cpu(self):
        """QEMU's CPU time (user and system), in seconds."""
        try:
            with open("/proc/%d/stat" % self.proc.pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def check_stalled(self):
        now = time.monotonic()
        size = os.path.getsize(self.console_path)
        samples = self.__dict__.setdefault("cpu_samples", [])
        if size != getattr(self, "stall_size", None):
            self.stall_size, self.quiet_since = size, now
        if not samples or now - samples[-1][0] >= self.STALL_SAMPLE:
            samples.append((now, self.qemu_cpu()))
            del samples[:-int(self.STALL_WINDOW / self.STALL_SAMPLE + 2)]
        if now - self.quiet_since < self.STALL_S:
            return
        old = [cpu for when, cpu in samples if now - when >= self.STALL_WINDOW]
        if old and samples[-1][1] - old[-1] < self.STALL_CPU:
            registers = self.monitor_answer("info registers")
            self.kill()
            raise EmulatorStalled(
                "QEMU raspi0 stalled: the console silent for %d s, QEMU used %.2f s of CPU "
                "in the last %d s%s\n%s" % (now - self.quiet_since, samples[-1][1] - old[-1],
                                            self.STALL_WINDOW,
                                            "\n" + registers if registers else "",
                                            self.text()[-3000:]))

    def monitor_answer(self, command):
        """What QEMU's monitor answers COMMAND ("" when it cannot be asked)."""
        answer = b""
        try:
            with socket.socket(socket.AF_UNIX) as sock:
                sock.settimeout(2)
                sock.connect(self.monitor_path)
                time.sleep(0.2)
                sock.recv(4096)
                sock.sendall(command.encode() + b"\n")
                deadline = time.monotonic() + 2
                while time.monotonic() < deadline:
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    answer += chunk
        except OSError:
            pass
        return answer.decode("utf-8", "replace").replace("\r", "")

    def cpu_note(self):
        if self.proc is None:
            return ""
        return " (QEMU: %.1f s of CPU in all, %s)" % (
            self.qemu_cpu(), "running" if self.proc.poll() is None else "ended")

    # QEMU 7.2's raspi0 sometimes stops for good in the kernel's first seconds (1 boot
    # in about 60 here: the console ends after the clock driver's warnings, QEMU idles).
    # Nothing has touched the card then, so such a boot is started again, and said.
    EARLY_HANG_S = 45

    def start(self):
        for attempt in range(3):
            self.launch()
            if self.reached_userspace():
                return self
            print("QEMU raspi0 stopped in early boot (console silent %d s): started again"
                  % self.EARLY_HANG_S, flush=True)
            self.kill()
            self.console.close()
        raise AssertionError("QEMU raspi0 stopped in early boot three times:\n" + self.text())

    USERSPACE = ("schema-init", "initramfs:")    # the first words of our user space

    def reached_userspace(self):
        last, quiet_since = -1, time.monotonic()
        while self.proc.poll() is None:
            text = self.text()
            if any(marker in text for marker in self.USERSPACE):
                return True
            if len(text) != last:
                last, quiet_since = len(text), time.monotonic()
            elif time.monotonic() - quiet_since > self.EARLY_HANG_S:
                return False
            time.sleep(0.5)
        return True                       # ended by itself: the caller judges the console

    def launch(self):
        command = ["qemu-system-arm", "-accel", "tcg", "-M", "raspi0", "-nographic",
                   "-no-reboot", "-kernel", os.path.join(self.dir, "vmlinuz"),
                   "-initrd", os.path.join(self.dir, "initrd.img"), "-dtb", self.dtb,
                   "-append", self.append,
                   "-drive", "file=%s,format=raw,if=sd" % self.image,
                   "-monitor", "unix:%s,server=on,wait=off" % self.monitor_path,
                   "-serial", "null", "-serial", "stdio"]
        self.console = open(self.console_path, "wb")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=self.console,
                                     stderr=subprocess.STDOUT)
