"""The Pi Zero W card image (build/mkimage.sh) from outside, without mounts: its partition
table (sfdisk -J), its FAT (mtools), its ext4 data partition (debugfs, e2fsck on a copy),
and a QEMU raspi0 booting it as the board's firmware would: the card's own kernel, device
tree, initramfs and cmdline.txt, the image itself as the SD card."""

import hashlib
import json
import os
import re
import shutil
import subprocess
import time

import vm as vmlib
from conftest import ROOT

BOARD = "rpi-zero-w"
BOARD_DIR = os.path.join(ROOT, "distros", "raspberry-pi-zero-w")
IMAGE = os.environ.get("SCHEMA_IMAGE") or os.path.join(ROOT, "build", "out",
                                                         "schema-init-%s.img" % BOARD)
SECTOR = 512
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


def fat(image):
    return "%s@@%d" % (image, offset(image, 1))


def fat_names(image):
    out = run("mdir", "-i", fat(image), "-b", "::").stdout
    return sorted(line.split("/", 1)[1] for line in out.split() if line.startswith("::/"))


def fat_read(image, name):
    return subprocess.run(["mtype", "-i", fat(image), "::" + name], check=True,
                          capture_output=True, timeout=60).stdout


def fat_get(image, name, dest):
    run("mcopy", "-i", fat(image), "-o", "::" + name, dest)
    return dest


def fat_put(image, source, name):
    run("mcopy", "-i", fat(image), "-o", source, "::" + name)


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
    fs = extract(image, 4, os.path.join(workdir, "data-read.ext4"))
    try:
        return subprocess.run(["debugfs", "-R", "cat %s" % path, fs], capture_output=True,
                              text=not binary, timeout=120).stdout
    finally:
        os.unlink(fs)


def add_services(image, services, workdir):
    """Services written where an operator's own go: /etc/schema-init/services on the data
    partition (the upper layer of the /etc overlay), loaded once /data is mounted."""
    fs = extract(image, 4, os.path.join(workdir, "data-write.ext4"))
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
    put_back(image, 4, fs)
    os.unlink(fs)


def fsck(image, workdir):
    """e2fsck -fn of the data partition: (exit code, output)."""
    fs = extract(image, 4, os.path.join(workdir, "data-fsck.ext4"))
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


class CardVM(vmlib.VM):
    """QEMU raspi0 booting a card: kernel, dtb, initramfs and cmdline.txt taken from the
    card's FAT, the dtb given the emulator's watchdog fix and SERIAL as serial-number,
    the mini UART (ttyS1, the header's serial port) on stdio."""

    def __init__(self, tmp_path, image, serial=None, append=""):
        self.dir = str(tmp_path)
        os.makedirs(self.dir, exist_ok=True)
        self.image = image
        for name in ("vmlinuz", "initrd.img", "cmdline.txt", board_env()["DTB"]):
            fat_get(image, name, os.path.join(self.dir, name))
        dtb = os.path.join(self.dir, board_env()["DTB"])
        node = "/soc/watchdog@7e100000"
        run("fdtput", "-t", "x", dtb, node, "reg", "7e100000", "114")
        run("fdtput", "-t", "s", dtb, node, "reg-names", "pm")
        if serial:
            run("fdtput", "-t", "s", dtb, "/", "serial-number", serial)
        self.dtb = dtb
        with open(os.path.join(self.dir, "cmdline.txt")) as f:
            self.cmdline = f.read().strip()
        # QEMU 7.2's raspi0 freezes when its watchdog is started (tests/vm.py).
        self.append = "%s SCHEMA_WATCHDOG=none %s" % (self.cmdline, append)
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
            time.sleep(0.2)
        raise AssertionError("/%s/ not on the console within %d s:\n%s"
                             % (pattern, timeout, self.text()[-5000:]))

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

    def reached_userspace(self):
        last, quiet_since = -1, time.monotonic()
        while self.proc.poll() is None:
            text = self.text()
            if "schema-init" in text or "initramfs:" in text:
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
