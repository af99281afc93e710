"""Installing a bundle into the slot that does not run, and the trial's end.

The order, chosen so that a power cut at any moment leaves a card that boots a whole
slot (tests/test_update.py cuts it at random moments):

1. the bundle's signature (nothing read before it is trusted), its compatible string;
2. every image streamed through sha256sum and compared with the signed manifest:
   a tampered bundle is refused here, before either slot is touched;
3. the record says ``state=installing slot=T``; T's boot partition and root written
   (the boot image's cmdline.txt made to name T's root), hashed again as they go;
4. the record says ``state=trial slot=T from=S attempts=1``, its marks cleared;
5. only then autoboot.txt names T ("counter" mode; "tryboot" mode keeps it and asks
   for ``reboot "0 tryboot"``);
6. a reboot.  On T, PID 1 decides (core/trial.py): ``commit`` makes the record say
   ``committed``; ``fail`` points autoboot.txt back at S first, then records why.

The running slot S is never written.
"""

import os
import time

from schema_init.pid1 import slots

from .bundle import Bundle, BundleError
from .card import Card, CardError
from . import run

BOARD_LIB = os.environ.get("SCHEMA_UPDATE_BOARD_LIB", slots.BOARD_LIB)
KEYRING = os.environ.get("SCHEMA_UPDATE_KEYRING", "/etc/schema-update/keyring.pem")
IMAGES = {"boot": slots.BOOT_PARTITIONS, "rootfs": slots.ROOT_PARTITIONS}


class InstallError(Exception):
    pass


def board_fact(name, default=""):
    try:
        with open(os.path.join(BOARD_LIB, name)) as f:
            return f.read().strip() or default
    except OSError:
        return default


def this_slot(card):
    """The running slot: SCHEMA_UPDATE_SLOT (tests on an image), else as PID 1 reads it."""
    slot = os.environ.get("SCHEMA_UPDATE_SLOT")
    if slot:
        return slot
    slot, _, _ = slots.running_slot()
    if slot is None:
        raise InstallError("cannot tell which slot runs (no /proc/device-tree/chosen/"
                           "bootloader, no root=/dev/mmcblk0p5|6 on the command line)")
    return slot


class Progress:
    def __init__(self, say):
        self.say = say
        self.started = time.monotonic()

    def step(self, text):
        self.say("update: %s (%.1f s)" % (text, time.monotonic() - self.started))


MARKER = b"root=/dev/mmcblk0p5 "
SLOT_DIGIT = {"A": b"5", "B": b"6"}


def slot_bytes(bundle, slot_class, target):
    """The image's chunks as they go to TARGET: boot.vfat's cmdline.txt made to name the
    target's root (its one ``root=/dev/mmcblk0p5 ``, found while the image was checked)."""
    name = bundle.images[slot_class][0]
    patch_at = bundle.cmdline_offset + len(MARKER) - 2 if slot_class == "boot" else None
    position = 0
    for chunk in bundle.payload.stream(name):
        if patch_at is not None and position <= patch_at < position + len(chunk):
            at = patch_at - position
            chunk = chunk[:at] + SLOT_DIGIT[target] + chunk[at + 1:]
        position += len(chunk)
        yield chunk


def check_images(bundle, progress):
    """Pass 1: every image's bytes hashed, nothing written; the boot image's cmdline.txt
    found (it must name root slot A exactly once)."""
    bundle.cmdline_offset = None
    for slot_class, (name, digest, size) in sorted(bundle.images.items()):
        hasher = run.Hasher()
        count, tail, found = 0, b"", []
        try:
            for chunk in bundle.payload.stream(name):
                hasher.update(chunk)
                if slot_class == "boot":
                    window = tail + chunk
                    at = window.find(MARKER)
                    while at >= 0:
                        found.append(count - len(tail) + at)
                        at = window.find(MARKER, at + 1)
                    tail = window[-(len(MARKER) - 1):]
                count += len(chunk)
        except BaseException:
            hasher.abandon()
            raise
        got = hasher.hexdigest()
        if got != digest or count != size:
            raise InstallError("image %s (%s): sha256 %s, the signed manifest says %s: a "
                               "tampered or damaged bundle; nothing was written"
                               % (slot_class, name, got, digest))
        if slot_class == "boot":
            if len(found) != 1:
                raise InstallError("boot image: cmdline.txt must name %s once (found %d)"
                                   % (MARKER.decode().strip(), len(found)))
            bundle.cmdline_offset = found[0]
        progress.step("%s checked (%d bytes, sha256 as signed)" % (name, size))


def install(where, card_path=slots.DISK, say=print, mode=None, workdir=None):
    """Install the bundle at WHERE (a file or an http:// URL) into the other slot;
    returns (target slot, version, seconds).  Raises InstallError (nothing activated;
    the running slot untouched in every case)."""
    progress = Progress(say)
    card = Card(card_path)
    source_slot = this_slot(card)
    target = slots.OTHER[source_slot]
    sector = card.record_sector(BOARD_LIB)
    mode = mode or board_fact("ab-mode", "counter")
    record = slots.read_record(card_path, sector) or {}
    if record.get("state") == "trial" and record.get("slot") == source_slot:
        raise InstallError("slot %s runs on trial, not committed yet: wait for its verdict"
                           % source_slot)
    workdir = workdir or "/run/schema-update"
    os.makedirs(workdir, exist_ok=True)
    try:
        bundle = Bundle(where, KEYRING, workdir)
    except BundleError as exc:
        raise InstallError(str(exc)) from None
    try:
        progress.step("%s: signature verified, version %s (%s)"
                      % (where, bundle.version, bundle.compatible))
        compatible = board_fact("compatible")
        if compatible and bundle.compatible != compatible:
            raise InstallError("the bundle is for %r, this board is %r"
                               % (bundle.compatible, compatible))
        for slot_class in IMAGES:
            if slot_class not in bundle.images:
                raise InstallError("the bundle has no %s image" % slot_class)
            size = bundle.images[slot_class][2]
            room = card.span(IMAGES[slot_class][target])[1]
            if size > room:
                raise InstallError("image %s: %d bytes, slot %s's partition %d bytes"
                                   % (slot_class, size, target, room))
        check_images(bundle, progress)
        fields = {"state": "installing", "slot": target, "from": source_slot, "mode": mode,
                  "attempts": 1, "version": bundle.version, "since": int(time.time()),
                  "reason": "writing slot %s" % target}
        slots.write_record(card_path, sector, fields)
        for slot_class in ("rootfs", "boot"):
            name, digest, size = bundle.images[slot_class]
            writer = card.writer(IMAGES[slot_class][target])
            hasher = run.Hasher()
            try:
                unpatched = bundle.payload.stream(name) if slot_class == "rootfs" else None
                for chunk in slot_bytes(bundle, slot_class, target):
                    writer.write(chunk)
                    if unpatched is not None:
                        hasher.update(chunk)
                if unpatched is None:              # the boot image: hash it as shipped
                    for chunk in bundle.payload.stream(name):
                        hasher.update(chunk)
            except BaseException:
                hasher.abandon()
                raise
            finally:
                writer.close()
            if hasher.hexdigest() != digest:
                slots.write_record(card_path, sector, dict(
                    fields, state="failed", reason="image %s changed while it was written"
                    % name))
                raise InstallError("image %s: its bytes changed between the check and the "
                                   "write; slot %s is not used" % (name, target))
            progress.step("%s written to slot %s (partition %d)"
                          % (name, target, IMAGES[slot_class][target]))
        slots.write_record(card_path, sector, dict(fields, state="trial",
                                                   reason="installed, not booted yet"),
                           clear_marks=True)
        if mode == "counter":
            card.write_autoboot(slots.autoboot_text(target))
            progress.step("autoboot.txt names slot %s for one trial boot" % target)
        else:
            card.write_autoboot(slots.autoboot_text(source_slot))
            progress.step("slot %s will be tried with reboot \"0 tryboot\"" % target)
        return target, bundle.version, time.monotonic() - progress.started
    except (CardError, BundleError) as exc:
        raise InstallError(str(exc)) from None
    finally:
        bundle.close()


def commit(reason, card_path=slots.DISK, say=print):
    """The trial of the running slot is good: the record says committed (in tryboot mode
    autoboot.txt names it first)."""
    card = Card(card_path)
    slot = this_slot(card)
    sector = card.record_sector(BOARD_LIB)
    record = slots.read_record(card_path, sector) or {}
    if record.get("mode") == "tryboot":       # counter mode: autoboot.txt names it already
        card.write_autoboot(slots.autoboot_text(slot))
    slots.write_record(card_path, sector, dict(record, state="committed", slot=slot,
                                               reason=reason, since=int(time.time())))
    say("update: slot %s committed: %s" % (slot, reason))
    return 0


def fail(reason, card_path=slots.DISK, say=print):
    """The trial of the running slot failed: autoboot.txt back to the other slot first,
    then the record says why (a cut between the two still goes back: the initramfs of
    this slot would find it booted again uncommitted)."""
    card = Card(card_path)
    slot = this_slot(card)
    sector = card.record_sector(BOARD_LIB)
    record = slots.read_record(card_path, sector) or {}
    back = record.get("from") if record.get("from") in slots.OTHER else slots.OTHER[slot]
    card.write_autoboot(slots.autoboot_text(back))
    slots.write_record(card_path, sector, dict(record, state="failed", slot=slot, reason=reason,
                                               since=int(time.time())))
    say("update: the trial of slot %s failed (%s): slot %s boots next" % (slot, reason, back))
    return 0
