"""Which block devices a card may be written to, asked of the kernel.

The file's rules: ``facts`` gathers what the kernel says of one target (sysfs, lsblk's
tree, /proc/self/mountinfo by device numbers, /proc/swaps, the device holding /); it
never guesses from names.  ``refusal`` is pure: facts and the image's size in, None or
the reason out.  A card is written only when it is a whole disk that exists, is
removable (or an SD card on an MMC bus, or on USB), holds nothing this machine uses
(no mounted filesystem, no swap, not the root's disk, no holder such as LVM, RAID or
dm-crypt on it or its partitions) and is at least as large as the image.  Then the
writer opens it with O_EXCL, which the kernel refuses (EBUSY) for a device in use.
``SYS`` and ``PROC`` are the roots read (tests point them at fakes).
"""

import json
import os
import stat
import subprocess

SYS = "/sys"
PROC = "/proc"


def _read(path, default=""):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return default


def _devnum(major_minor):
    major, _, minor = major_minor.partition(":")
    return os.makedev(int(major), int(minor))


def _sys_dev(devnum):
    return os.path.join(SYS, "dev", "block", "%d:%d" % (os.major(devnum), os.minor(devnum)))


def disk_of(devnum):
    """The whole disk's kernel name holding block device DEVNUM (itself if a disk)."""
    path = os.path.realpath(_sys_dev(devnum))
    if os.path.exists(os.path.join(path, "partition")):
        path = os.path.dirname(path)
    return os.path.basename(path)


def lower_devices(devnum, seen=None):
    """DEVNUM and every block device beneath it (dm/md slaves), as device numbers."""
    seen = set() if seen is None else seen
    if devnum in seen:
        return seen
    seen.add(devnum)
    slaves = os.path.join(_sys_dev(devnum), "slaves")
    try:
        names = os.listdir(slaves)
    except OSError:
        names = []
    for name in names:
        number = _read(os.path.join(slaves, name, "dev"))
        if number:
            lower_devices(_devnum(number), seen)
    return seen


def in_use():
    """{disk name: [why]} of the disks this machine uses: mounted filesystems, swap, the
    root, followed down through device mapper and md to the disks."""
    uses = []
    for line in _read(os.path.join(PROC, "self", "mountinfo")).splitlines():
        fields = line.split()
        if len(fields) < 5:
            continue
        why = "mounted on %s" % fields[4]
        try:
            uses.append((_devnum(fields[2]), why))
        except ValueError:
            pass
        # btrfs and others show an anonymous device number: the source names the device
        source = fields[fields.index("-") + 2] if "-" in fields[5:-1] else ""
        if source.startswith("/dev/"):
            try:
                info = os.stat(source)
            except OSError:
                continue
            if stat.S_ISBLK(info.st_mode):
                uses.append((info.st_rdev, why))
    for line in _read(os.path.join(PROC, "swaps")).splitlines()[1:]:
        name = line.split()[0] if line.split() else ""
        try:
            info = os.stat(name)
        except OSError:
            continue
        uses.append((info.st_rdev if stat.S_ISBLK(info.st_mode) else info.st_dev,
                     "holds swap (%s)" % name))
    try:
        uses.append((os.stat("/").st_dev, "holds / of this machine"))
    except OSError:
        pass
    disks = {}
    for devnum, why in uses:
        if os.major(devnum) == 0:
            continue                      # tmpfs, overlay, proc: no block device
        for lower in lower_devices(devnum):
            disks.setdefault(disk_of(lower), []).append(why)
    return disks


def lsblk(path=None):
    argv = ["lsblk", "-J", "-b", "-o", "NAME,SIZE,MODEL,TRAN,RM,TYPE,MOUNTPOINTS,PKNAME"]
    result = subprocess.run(argv + ([path] if path else []), capture_output=True, text=True)
    if result.returncode != 0:
        return []
    try:
        return json.loads(result.stdout).get("blockdevices", [])
    except ValueError:
        return []


def _walk(nodes):
    for node in nodes:
        yield node
        yield from _walk(node.get("children") or [])


def facts(target):
    """What the kernel says of TARGET (a path), as a dict refusal() reads."""
    out = {"path": target, "exists": os.path.lexists(target)}
    if not out["exists"]:
        return out
    info = os.stat(target)
    out["block"] = stat.S_ISBLK(info.st_mode)
    if not out["block"]:
        out["regular"] = stat.S_ISREG(info.st_mode)
        return out
    sysdir = os.path.realpath(_sys_dev(info.st_rdev))
    name = os.path.basename(sysdir)
    out["name"] = name
    out["partition"] = os.path.exists(os.path.join(sysdir, "partition"))
    out["disk"] = disk_of(info.st_rdev)
    out["size"] = int(_read(os.path.join(sysdir, "size"), "0") or 0) * 512
    out["removable"] = _read(os.path.join(sysdir, "removable")) == "1"
    out["read_only"] = _read(os.path.join(sysdir, "ro")) == "1"
    out["sd_card"] = _read(os.path.join(sysdir, "device", "type")) in ("SD", "MMC")
    tree = lsblk(target)
    nodes = list(_walk(tree))
    top = tree[0] if tree else {}
    out["model"] = (top.get("model") or "").strip()
    out["transport"] = top.get("tran") or ""
    out["type"] = top.get("type") or ""
    out["mounted"] = sorted({m for node in nodes for m in (node.get("mountpoints") or [])
                             if m})
    holders = []
    for part in [sysdir] + [os.path.join(sysdir, p) for p in os.listdir(sysdir)
                            if os.path.exists(os.path.join(sysdir, p, "partition"))]:
        try:
            holders += os.listdir(os.path.join(part, "holders"))
        except OSError:
            pass
    out["holders"] = sorted(set(holders) | {n["name"] for n in nodes[1:]
                                            if n.get("type") not in ("part",)})
    out["in_use"] = in_use().get(out["disk"], [])
    return out


def refusal(found, image_size, allow_non_removable=False):
    """None if a card may be written to the target FOUND (facts()), else why not."""
    path = found["path"]
    if not found["exists"]:
        return ("%s does not exist (is the card in the reader? fleet.py drives lists the "
                "removable drives)" % path)
    if not found["block"]:
        return ("%s is not a block device%s: flash writes cards; fleet.py cards makes image "
                "files" % (path, " but a regular file" if found.get("regular") else ""))
    if found["partition"]:
        return "%s is a partition: give the whole card, /dev/%s" % (path, found["disk"])
    if found["in_use"]:
        return "%s is in use by this machine: %s" % (path, "; ".join(sorted(set(
            found["in_use"]))))
    if found["mounted"]:
        return "%s is mounted (%s): unmount it first" % (path, ", ".join(found["mounted"]))
    if found["holders"]:
        return ("%s is held by %s (LVM, RAID, dm-crypt or a partition mapping): not a spare "
                "card" % (path, ", ".join(found["holders"])))
    removable = found["removable"] or found["sd_card"] or found["transport"] == "usb"
    if not removable and not allow_non_removable:
        return ("%s (%s, %s) is not a removable drive: not written (fleet.py drives lists "
                "the removable ones)" % (path, found.get("model") or found["type"] or "disk",
                                         found.get("transport") or "no transport"))
    if found["read_only"]:
        return "%s is read-only (the card's lock switch?)" % path
    if found["size"] < image_size:
        return ("%s holds %d MiB, the image %d MiB: a larger card is needed"
                % (path, found["size"] >> 20, -(-image_size >> 20)))
    return None


def removable_drives():
    """[facts] of the whole disks a card could be written to, from lsblk and sysfs."""
    out = []
    for node in lsblk():
        if node.get("type") != "disk":
            continue
        path = "/dev/" + node["name"]
        found = facts(path) if os.path.exists(path) else None
        if found and found.get("block") and (found["removable"] or found["sd_card"] or
                                             found["transport"] == "usb"):
            out.append(found)
    return out
