"""The card the updater writes: the device's /dev/mmcblk0, or a card image (tests and the
host).  Partitions are read from the MBR and the extended partition's chain (the A/B
layout of board.env: 1 selector, 2/3 boot A/B, 4 extended, 5/6 root A/B, 7 data);
slots are written at their offsets in the whole disk; the selector's autoboot.txt is
replaced through a mount of partition 1 on the device, through mtools on an image."""

import os

from schema_init.pid1 import slots

from . import run

SECTOR = 512


class CardError(Exception):
    pass


def partition_table(read):
    """{number: (start sector, sectors)} from READ(offset, length) of the disk."""
    mbr = read(0, SECTOR)
    if mbr[510:512] != b"\x55\xaa":
        raise CardError("no MBR")
    table, extended = {}, None
    for n in range(4):
        entry = mbr[446 + 16 * n:462 + 16 * n]
        kind, start, count = entry[4], int.from_bytes(entry[8:12], "little"), \
            int.from_bytes(entry[12:16], "little")
        if count:
            table[n + 1] = (start, count)
            if kind in (0x05, 0x0F, 0x85):
                extended = start
    number, ebr = 5, extended
    while ebr is not None and number < 64:
        raw = read(ebr * SECTOR, SECTOR)
        if raw[510:512] != b"\x55\xaa":
            break
        first, link = raw[446:462], raw[462:478]
        count = int.from_bytes(first[12:16], "little")
        if count:
            table[number] = (ebr + int.from_bytes(first[8:12], "little"), count)
            number += 1
        following = int.from_bytes(link[8:12], "little")
        ebr = extended + following if int.from_bytes(link[12:16], "little") else None
    return table


class Card:
    def __init__(self, path=slots.DISK, selector_mount="/run/schema-update/selector"):
        self.path = path
        self.is_device = path.startswith("/dev/")
        self.selector_mount = selector_mount
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise CardError("%s: %s" % (path, exc.strerror)) from None
        try:
            self.table = partition_table(lambda offset, length: os.pread(fd, length, offset))
        finally:
            os.close(fd)
        for number in (1, 2, 3, 5, 6):
            if number not in self.table:
                raise CardError("%s: no partition %d: not an A/B card" % (path, number))

    def span(self, number):
        start, count = self.table[number]
        return start * SECTOR, count * SECTOR

    def writer(self, number):
        return SlotWriter(self.path, *self.span(number))

    def read(self, number, offset, length):
        fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            return os.pread(fd, length, self.span(number)[0] + offset)
        finally:
            os.close(fd)

    # --- autoboot.txt on the selector ---------------------------------------------

    def write_autoboot(self, text):
        if self.is_device:
            self._with_selector(lambda directory: slots.write_autoboot(directory, text))
            return
        fat = "%s@@%d" % (self.path, self.span(1)[0])
        # (no tempfile here: it would bring shutil, bz2 and lzma into the device's binary)
        name = "%s.autoboot.%d" % (self.path, os.getpid())
        with open(name, "w") as f:
            f.write(text)
        try:
            for argv in (["mcopy", "-o", "-i", fat, name, "::autoboot.new"],
                         ["mmove", "-D", "o", "-i", fat, "::autoboot.new", "::autoboot.txt"]):
                code, out = run.capture(argv)
                if code:
                    raise CardError("%s: %s" % (" ".join(argv[:1]), out.strip()))
        finally:
            os.unlink(name)

    def read_autoboot(self):
        if self.is_device:
            found = []
            self._with_selector(lambda d: found.append(_read_text(os.path.join(
                d, "autoboot.txt"))), read_only=True)
            return found[0] if found else None
        code, out = run.capture(["mtype", "-i", "%s@@%d" % (self.path, self.span(1)[0]),
                                 "::autoboot.txt"])
        return out if code == 0 else None

    def _with_selector(self, action, read_only=False):
        directory = self.selector_mount
        os.makedirs(directory, exist_ok=True)
        run.capture(["modprobe", "-q", "vfat"])
        code, out = run.capture(["mount", "-t", "vfat", "-o", "%s,noatime,flush" % (
            "ro" if read_only else "rw"), "%sp1" % self.path, directory])
        if code:
            raise CardError("cannot mount the selector %sp1: %s" % (self.path, out.strip()))
        try:
            action(directory)
        finally:
            os.sync()
            run.capture(["umount", directory])

    # --- the boot-attempt record -------------------------------------------------

    def record_sector(self, board_lib):
        sector = slots.record_sector(board_lib)
        if sector is None:
            raise CardError("%s/ab-record-sector missing: not an A/B image" % board_lib)
        return sector


def _read_text(path):
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read(4096)
    except OSError:
        return None


class SlotWriter:
    """Bytes written in order into one partition of the disk; never past its end."""

    def __init__(self, path, start, size):
        self.fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        self.start, self.size, self.done = start, size, 0

    def write(self, data):
        if self.done + len(data) > self.size:
            raise CardError("the image is larger than its partition (%d bytes)" % self.size)
        view = memoryview(data)
        while view:
            written = os.pwrite(self.fd, view, self.start + self.done)
            view = view[written:]
            self.done += written

    def close(self):
        os.fsync(self.fd)
        os.close(self.fd)
