#!/usr/bin/env python3
"""One image, a fleet of cards: a device list (a spreadsheet's CSV or a TOML file) ->
each card's custom.toml, checked as the device will read it; cards as sparse image files,
or written to card readers with a read-back of every byte; a manifest of every card.

    fleet.py cards IMAGE DEVICES --out DIR [--dry-run] [--jobs N]
                        DIR/NAME.img a device (sparse, 0600), DIR/manifest.csv and
                        .json, DIR/labels-N.svg (printable labels)
    fleet.py flash IMAGE TARGET... [--devices DEVICES --device NAME...] [--dry-run]
                        the image onto each card at once (one read of the image), the
                        i-th --device's files on the i-th TARGET; every byte read back;
                        a manifest in --records DIR (default fleet-records)
    fleet.py drives     the removable drives a card can be written to
    fleet.py check CARD what an image or a card holds: its partitions, whose card it is
                        and what its first boot will apply, and, once it has booted, the
                        device's report (serial, host name, SSH host key fingerprints)
    fleet.py bundle | publish BUNDLE --dir DIR --rollout PERCENT | status SOURCE...
                        updates (issue 23, schema_init/fleet/rollouts.py): the signed
                        bundle, the manifest devices poll, the fleet's slots and trials

The columns of DEVICES are in schema_init/fleet/devices.py and the board's README
(distros/raspberry-pi-zero-w/README.md).  Nothing is written until every device of the
list is right; each error names the file, the line, the column and the fix.
"""

import argparse
import datetime
import hashlib
import json
import mmap
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time

if __package__ in (None, ""):          # run as a script: schema_init/fleet/fleet.py
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))))

from schema_init.firstboot import firstboot, values  # noqa: E402  (the device's own checks)
from schema_init.fleet import devices as devicelist, drives  # noqa: E402

SECTOR = 512
CHUNK = 4 << 20
PIECE = 64 << 10
ZEROS = bytes(CHUNK)
REPORT = "firstboot-report.txt"


class FleetError(Exception):
    pass


def say(*parts, **kwargs):
    print(*parts, **kwargs)
    sys.stdout.flush()


# The image: its partitions and its FAT, through sfdisk and mtools (no root, no mounts).

def partitions(image):
    out = subprocess.run(["sfdisk", "-J", image], capture_output=True, text=True)
    if out.returncode != 0:
        raise FleetError("%s: no partition table (%s)" % (image, out.stderr.strip()))
    return json.loads(out.stdout)["partitiontable"]["partitions"]


def boot_range(image):
    """(offset, size) in bytes of the first partition, which must be FAT."""
    parts = partitions(image)
    if not parts or parts[0]["type"] not in ("c", "b", "e"):
        raise FleetError("%s: the first partition is not FAT" % image)
    return parts[0]["start"] * SECTOR, parts[0]["size"] * SECTOR


def boot_partition(image):
    return "%s@@%d" % (image, boot_range(image)[0])


def mtools(*argv, data=False):
    result = subprocess.run(list(argv), capture_output=True,
                            env=dict(os.environ, MTOOLS_SKIP_CHECK="1"))
    if result.returncode != 0:
        raise FleetError("%s: %s" % (argv[0], (result.stderr or result.stdout).decode(
            "utf-8", "replace").strip()))
    return result.stdout if data else result.stdout.decode("utf-8", "replace")


def fat_names(fat):
    out = mtools("mdir", "-b", "-i", fat, "::")
    return sorted(os.path.basename(line.strip()) for line in out.splitlines() if line.strip())


def fat_read(fat, name):
    return mtools("mtype", "-i", fat, "::" + name, data=True)


def put_files(fat, files):
    """FILES {name on the FAT: bytes} into the FAT FAT ("image@@offset")."""
    with tempfile.TemporaryDirectory(prefix="fleet-") as scratch:
        for name, data in sorted(files.items()):
            path = os.path.join(scratch, name)
            with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
                f.write(data)
            mtools("mcopy", "-i", fat, "-o", "-D", "o", path, "::" + name)


def card_files(card, toml_text):
    files = {"custom.toml": toml_text.encode("utf-8")}
    for name, path in card.files.items():
        with open(path, "rb") as f:
            files[name] = f.read(firstboot.MAX_BYTES + 1)
    return files


# Sparse copies and their checksums: SEEK_DATA/SEEK_HOLE, zeros never written.

def data_ranges(fd, size):
    """[(start, end)] of the parts of an open file that hold data (all of it if the
    filesystem cannot say)."""
    out, pos = [], 0
    while pos < size:
        try:
            start = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError:
            break                        # ENXIO: only a hole from pos to the end
        end = min(os.lseek(fd, start, os.SEEK_HOLE), size)
        out.append((start, end))
        pos = end
    return out


def sparse_copy(source, destination, offset=0, length=None, out_offset=0):
    """LENGTH bytes of SOURCE from OFFSET into the open file DESTINATION at OUT_OFFSET;
    runs of zeros (holes, or PIECE-sized blocks of zeros) are skipped, not written."""
    with open(source, "rb") as src:
        fd = src.fileno()
        size = os.fstat(fd).st_size
        end = size if length is None else min(size, offset + length)
        for start, stop in data_ranges(fd, end):
            start, stop = max(start, offset), min(stop, end)
            pos = start
            while pos < stop:
                chunk = os.pread(fd, min(CHUNK, stop - pos), pos)
                if not chunk:
                    break
                for piece in range(0, len(chunk), PIECE):
                    data = chunk[piece:piece + PIECE]
                    if data.count(0) != len(data):
                        os.pwrite(destination, data, out_offset + pos - offset + piece)
                pos += len(chunk)


def file_sha256(path):
    """SHA-256 of a file's bytes, its holes read as the zeros they are."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        fd = f.fileno()
        size = os.fstat(fd).st_size
        pos = 0
        for start, stop in data_ranges(fd, size) + [(size, size)]:
            while pos < start:
                step = min(CHUNK, start - pos)
                digest.update(ZEROS[:step])
                pos += step
            while pos < stop:
                chunk = os.pread(fd, min(CHUNK, stop - pos), pos)
                digest.update(chunk)
                pos += len(chunk)
    return digest.hexdigest()


def make_card_file(image, path, files):
    """IMAGE copied sparse to PATH (0600, never over an existing file), FILES put into its
    FAT; the copy is complete only when renamed to PATH."""
    temporary = path + ".part"
    if os.path.lexists(temporary):
        os.unlink(temporary)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.ftruncate(fd, os.path.getsize(image))
        sparse_copy(image, fd)
        os.fsync(fd)
    finally:
        os.close(fd)
    fat = boot_partition(temporary)
    put_files(fat, files)
    for name, data in files.items():
        if fat_read(fat, name) != data:
            raise FleetError("%s: %s read back differs from what was written" % (path, name))
    digest = file_sha256(temporary)
    os.replace(temporary, path)
    return digest


# Checking the device list.

def load(devices_path, zones=None):
    """[(Checked, custom.toml text)] of every device, or FleetError naming every problem."""
    try:
        found, notes = devicelist.read_devices(devices_path)
    except devicelist.DeviceError as exc:
        raise FleetError(str(exc)) from None
    except OSError as exc:
        raise FleetError("%s: %s" % (devices_path, exc.strerror)) from None
    for note in notes:
        say("fleet: note: %s" % note)
    if not found:
        raise FleetError("%s: no devices in it" % devices_path)
    base_dir = os.path.dirname(os.path.abspath(devices_path))
    checked, errors, warnings = devicelist.check_devices(found, base_dir, zones)
    for warning in warnings:
        say("fleet: warning: %s" % warning)
    out = []
    if not errors:
        for card in checked:
            try:
                out.append((card, devicelist.custom_toml(card)))
            except devicelist.DeviceError as exc:
                errors.append(str(exc))
    if errors:
        raise FleetError("%d problem%s, nothing written:\n%s" % (
            len(errors), "" if len(errors) == 1 else "s", "\n".join(errors)))
    return out


def summary(card):
    """{column: text} of what a card will apply, secrets left out."""
    ssh = "off"
    if card.ssh:
        ssh = "on, %s, %d key%s" % ("keys only" if card.password_authentication is False
                                    else "passwords too", len(card.keys),
                                    "" if len(card.keys) == 1 else "s")
        ssh += ", root: %s" % ("%d key(s)" % len(card.root_keys) if card.root_keys
                               else "no login")
    wifi = "; ".join("%s%s%s%s" % (n["ssid"], " (hidden)" if n["hidden"] else "",
                                    " prio %d" % n["priority"] if n["priority"] else "",
                                    " " + n["eap"] if n["eap"] else "")
                     for n in card.networks) or "none"
    if card.networks:
        wifi += " [%s]" % card.country
    return {
        "card": card.name,
        "host name": card.hostname + (" (e.g. %s)" % card.hostname.replace(
            "{serial}", "a1b2c3d4") if "{serial}" in card.hostname else ""),
        "user": (card.user or "-") + (" (password)" if card.password_hash else ""),
        "ssh": ssh,
        "wi-fi": wifi,
        "address": " ".join(card.static["addresses"]) if card.static else "DHCP",
        "time zone": card.timezone or "-",
        "source": card.device.where,
    }


def print_table(rows):
    if not rows:
        return
    columns = list(rows[0])
    widths = {c: min(60, max(len(c), max(len(r[c]) for r in rows))) for c in columns}
    say("  ".join(c.ljust(widths[c]) for c in columns).rstrip())
    say("  ".join("-" * widths[c] for c in columns))
    for row in rows:
        say("  ".join(row[c][:widths[c]].ljust(widths[c]) for c in columns).rstrip())


# The record of a run: manifest.csv and manifest.json, labels.

MANIFEST_FIELDS = ("card", "hostname", "user", "wifi", "country", "address", "timezone",
                   "sha256", "bytes", "written_to", "image", "image_sha256", "ssh_host_keys",
                   "source", "date")
HOST_KEYS_LATER = ("made by the device at its first boot: it writes them to %s on the "
                   "card's FAT (fleet.py check CARD shows their fingerprints)" % REPORT)


def record(card, digest, size, written_to, image, image_digest, date):
    return {
        "card": card.name, "hostname": card.hostname, "user": card.user or "",
        "wifi": " ".join(n["ssid"] for n in card.networks),
        "country": card.country or "",
        "address": " ".join(card.static["addresses"]) if card.static else "dhcp",
        "timezone": card.timezone or "", "sha256": digest, "bytes": size,
        "written_to": written_to, "image": os.path.basename(image),
        "image_sha256": image_digest, "ssh_host_keys": HOST_KEYS_LATER,
        "source": card.device.where, "date": date,
    }


def write_manifest(directory, stem, records):
    import csv
    os.makedirs(directory, exist_ok=True)
    paths = []
    for suffix in (".json", ".csv"):
        path = os.path.join(directory, stem + suffix)
        with open(path + ".new", "w", newline="", encoding="utf-8") as f:
            if suffix == ".json":
                json.dump({"cards": records}, f, indent=1, sort_keys=True)
                f.write("\n")
            else:
                writer = csv.DictWriter(f, MANIFEST_FIELDS)
                writer.writeheader()
                writer.writerows(records)
        os.replace(path + ".new", path)
        paths.append(path)
    return paths


def _xml(text):
    return (str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


def write_labels(directory, records, stem="labels"):
    """A4 sheets of 3 x 7 labels (63.5 x 38.1 mm): the card's name large, its host name,
    the first 16 hex digits of its checksum, the date."""
    columns, rows, width, height = 3, 7, 63.5, 38.1
    left, top, gap = 7.2, 15.15, 2.5
    per_page = columns * rows
    paths = []
    for page in range(0, len(records), per_page):
        out = ['<?xml version="1.0" encoding="UTF-8"?>',
               '<svg xmlns="http://www.w3.org/2000/svg" width="210mm" height="297mm" '
               'viewBox="0 0 210 297" font-family="DejaVu Sans, Arial, sans-serif">']
        for index, entry in enumerate(records[page:page + per_page]):
            x = left + (index % columns) * (width + gap)
            y = top + (index // columns) * height
            out.append('<g transform="translate(%.2f %.2f)">' % (x, y))
            out.append('<rect width="%.1f" height="%.1f" rx="3" fill="none" stroke="#999" '
                       'stroke-width="0.2"/>' % (width, height))
            out.append('<text x="4" y="11" font-size="7" font-weight="bold">%s</text>'
                       % _xml(entry["card"]))
            out.append('<text x="4" y="18.5" font-size="3.6">%s</text>'
                       % _xml(entry["hostname"]))
            out.append('<text x="4" y="24" font-size="3">%s</text>'
                       % _xml(("Wi-Fi " + entry["wifi"]) if entry["wifi"] else "no Wi-Fi"))
            out.append('<text x="4" y="29.5" font-size="2.8" font-family="DejaVu Sans Mono, '
                       'monospace">sha256 %s</text>' % _xml(entry["sha256"][:16]))
            out.append('<text x="4" y="34" font-size="2.6">%s</text>' % _xml(entry["date"]))
            out.append("</g>")
        out.append("</svg>")
        path = os.path.join(directory, "%s-%d.svg" % (stem, page // per_page + 1))
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(out) + "\n")
        paths.append(path)
    return paths


def _now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# cards: one sparse image file a device.

def cards(image, devices_path, out, dry_run=False, jobs=None, stream=sys.stdout):
    loaded = load(devices_path)
    boot_range(image)                       # the image has the FAT the files go into
    if dry_run:
        print_table([summary(card) for card, _ in loaded])
        say("dry run: %d cards checked, nothing written" % len(loaded))
        return 0
    os.makedirs(out, exist_ok=True)
    names = {os.path.join(out, card.name + ".img") for card, _ in loaded}
    image_digest = file_sha256(image)
    date = _now()
    size = os.path.getsize(image)
    started = time.monotonic()
    results, failures = {}, []
    lock = threading.Lock()

    def one(item):
        card, text = item
        path = os.path.join(out, card.name + ".img")
        try:
            digest = make_card_file(image, path, card_files(card, text))
        except (FleetError, OSError) as exc:
            with lock:
                failures.append("%s: %s" % (path, exc))
            return
        with lock:
            results[card.name] = record(card, digest, size, os.path.basename(path), image,
                                        image_digest, date)
            # progress: cards done of all, then the card (its tools print nothing here)
            say("[%d/%d] %s  %s  %s" % (len(results) + len(failures), len(loaded),
                                         digest[:16], path, card.hostname))

    jobs = max(1, jobs or os.cpu_count() or 1)
    threads = []
    work = list(loaded)
    work_lock = threading.Lock()

    def worker():
        while True:
            with work_lock:
                if not work:
                    return
                item = work.pop(0)
            one(item)
    for _ in range(min(jobs, len(loaded))):
        thread = threading.Thread(target=worker)
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join()
    records = [results[card.name] for card, _ in loaded if card.name in results]
    manifest = write_manifest(out, "manifest", records)
    labels = write_labels(out, records)
    used = sum(os.stat(p).st_blocks * 512 for p in names if os.path.exists(p))
    say("%d cards in %s (%.1f s, %.1f MiB on disk for %.1f MiB of cards); manifest %s; "
        "labels %s" % (len(records), out, time.monotonic() - started, used / (1 << 20),
                       len(records) * size / (1 << 20), ", ".join(manifest),
                       ", ".join(labels)))
    if failures:
        raise FleetError("\n".join(failures))
    return 0


# flash: the image onto cards, all at once, from one read of it; every byte read back.

class Writer(threading.Thread):
    """Writes the chunks it is handed to one card, hashing them; errors are kept."""

    def __init__(self, target, fd):
        threading.Thread.__init__(self, daemon=True)
        self.target, self.fd = target, fd
        self.chunks = queue.Queue(maxsize=4)
        self.digest = hashlib.sha256()
        self.done = 0
        self.error = None

    def run(self):
        while True:
            item = self.chunks.get()
            if item is None:
                break
            offset, data = item
            if self.error:
                continue
            try:
                view = memoryview(data)
                pos = offset
                while view:
                    written = os.pwrite(self.fd, view, pos)
                    view, pos = view[written:], pos + written
                self.digest.update(data)
                self.done = offset + len(data)
            except OSError as exc:
                self.error = "writing at %d MiB: %s" % (offset >> 20, exc.strerror)
        if not self.error:
            try:
                os.fsync(self.fd)
            except OSError as exc:
                self.error = "flushing: %s" % exc.strerror


def _progress(what, done, total, started, out):
    if out is None:
        return
    rate = done / max(time.monotonic() - started, 1e-6) / (1 << 20)
    filled = 30 * done // max(total, 1)
    out.write("\r%s [%s%s] %3d%% %7.1f of %.1f MiB, %6.1f MiB/s" % (
        what, "#" * filled, "." * (30 - filled), 100 * done // max(total, 1), done / (1 << 20),
        total / (1 << 20), rate))
    if done >= total:
        out.write("\n")
    out.flush()


def read_back(target, length, progress=None):
    """SHA-256 of the first LENGTH bytes of TARGET as the card gives them back (O_DIRECT,
    past the page cache; else the cache dropped first)."""
    digest = hashlib.sha256()
    try:
        fd = os.open(target, os.O_RDONLY | os.O_DIRECT)
        direct = True
    except OSError:
        fd, direct = os.open(target, os.O_RDONLY), False
    try:
        if not direct:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        buffer = mmap.mmap(-1, CHUNK)
        done = 0
        while done < length:
            step = min(CHUNK, length - done)
            try:
                got = os.preadv(fd, [memoryview(buffer)[:-(-step // SECTOR) * SECTOR]], done)
            except OSError:
                if not direct:
                    raise
                os.close(fd)
                fd, direct = os.open(target, os.O_RDONLY), False
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                continue
            if got <= 0:
                break
            got = min(got, step)
            digest.update(memoryview(buffer)[:got])
            done += got
            if progress:
                progress(done)
        if done < length:
            return None, done
    finally:
        os.close(fd)
    return digest.hexdigest(), done


def open_card(target):
    """The card opened for writing: O_EXCL, which the kernel refuses (EBUSY) for a block
    device something holds; never O_CREAT."""
    try:
        return os.open(target, os.O_WRONLY | os.O_EXCL)
    except OSError as exc:
        raise FleetError("%s: cannot be opened for writing: %s%s" % (
            target, exc.strerror, " (something on this machine holds it)"
            if exc.errno == 16 else "")) from None


def flash(image, targets, devices_path=None, names=(), records_dir="fleet-records",
          allow_non_removable=False, dry_run=False, progress=sys.stderr):
    names = list(names or ())
    if names and not devices_path:
        raise FleetError("--device needs --devices")
    if names and len(names) != len(targets):
        raise FleetError("%d targets and %d --device: give one --device a target, in order"
                         % (len(targets), len(names)))
    if len(set(os.path.realpath(t) for t in targets)) != len(targets):
        raise FleetError("a target is given twice")
    if len(set(names)) != len(names):
        raise FleetError("a --device is given twice: each card is one device's")
    cards_by_name = {}
    if names:
        loaded = {card.name: (card, text) for card, text in load(devices_path)}
        for name in names:
            if name not in loaded:
                raise FleetError("%s: no device named %s" % (devices_path, name))
            cards_by_name[name] = loaded[name]
    size = os.path.getsize(image)
    fat_offset, fat_size = boot_range(image)
    refusals = []
    found = {}
    for target in targets:
        facts = drives.facts(target)
        reason = drives.refusal(facts, size, allow_non_removable)
        if reason:
            refusals.append(reason)
        found[target] = facts
    if refusals:
        raise FleetError("nothing written:\n" + "\n".join(refusals))
    plan = list(zip(targets, names or [None] * len(targets)))
    for target, name in plan:
        facts = found[target]
        say("%s: %s, %d MiB, %s%s" % (target, facts.get("model") or facts["type"] or "disk",
                                     facts["size"] >> 20, facts.get("transport") or "-",
                                     " <- %s" % name if name else " <- the image only"))
    if dry_run:
        say("dry run: nothing written")
        return 0
    with tempfile.TemporaryDirectory(prefix="fleet-flash-") as scratch:
        overlays = {}
        for target, name in plan:
            if not name:
                continue
            # the card's boot partition, made beside: the image's FAT plus its files
            path = os.path.join(scratch, "%s.fat" % name)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.ftruncate(fd, fat_size)
                sparse_copy(image, fd, fat_offset, fat_size)
            finally:
                os.close(fd)
            card, text = cards_by_name[name]
            put_files(path, card_files(card, text))
            overlays[target] = open(path, "rb")
        writers = []
        try:
            for target, _ in plan:
                writers.append(Writer(target, open_card(target)))
            for writer in writers:
                writer.start()
            started = time.monotonic()
            with open(image, "rb") as source:
                offset = 0
                while offset < size:
                    chunk = os.pread(source.fileno(), min(CHUNK, size - offset), offset)
                    if not chunk:
                        raise FleetError("%s: shorter than it was a moment ago" % image)
                    for writer in writers:
                        data = chunk
                        overlay = overlays.get(writer.target)
                        low, high = max(offset, fat_offset), min(offset + len(chunk),
                                                                 fat_offset + fat_size)
                        if overlay and low < high:
                            piece = os.pread(overlay.fileno(), high - low, low - fat_offset)
                            data = chunk[:low - offset] + piece + chunk[high - offset:]
                        writer.chunks.put((offset, data))
                    offset += len(chunk)
                    _progress("write ", min(w.done for w in writers) if writers else offset,
                              size, started, progress)
            _progress("write ", size, size, started, progress)
        finally:
            for writer in writers:           # done, or stopped by an error: each one ends
                if writer.is_alive():
                    writer.chunks.put(None)
                    writer.join()
                os.close(writer.fd)
            for overlay in overlays.values():
                overlay.close()
    problems = ["%s: %s" % (w.target, w.error) for w in writers if w.error]
    if problems:
        raise FleetError("\n".join(problems))
    results = {}

    def verify(writer):
        results[writer.target] = read_back(writer.target, size)
    threads = [threading.Thread(target=verify, args=(w,)) for w in writers]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    _progress("verify", size, size, started, progress)
    date = _now()
    image_digest = None
    records = []
    for writer, (target, name) in zip(writers, plan):
        expected = writer.digest.hexdigest()
        got, length = results[target]
        if got is None:
            problems.append("%s: the card gave back only %d of %d bytes" % (target, length,
                                                                            size))
            continue
        if got != expected:
            problems.append("%s: what was read back differs from what was written (a failing "
                            "card or reader?)" % target)
            continue
        if name:
            card, text = cards_by_name[name]
            fat = "%s@@%d" % (target, fat_offset)
            if fat_read(fat, "custom.toml") != text.encode("utf-8"):
                problems.append("%s: custom.toml read back differs" % target)
                continue
            if image_digest is None:
                image_digest = file_sha256(image)
            records.append(record(card, got, size, "%s (%s)" % (target, found[target].get(
                "model") or "card"), image, image_digest, date))
        say("%s: written and read back, every byte: sha256 %s (%d bytes)%s" % (
            target, got, size, ", the card of %s" % name if name else ""))
    if records:
        stem = "flash-" + date.replace(":", "")
        paths = write_manifest(records_dir, stem, records)
        paths += write_labels(records_dir, records, stem=stem + "-labels")
        say("record: %s" % ", ".join(paths))
    if problems:
        raise FleetError("\n".join(problems))
    return 0


def list_drives():
    found = drives.removable_drives()
    if not found:
        say("no removable drive (a card reader with a card in it shows here)")
        return 0
    rows = [{"drive": f["path"], "size": "%d MiB" % (f["size"] >> 20),
             "model": f.get("model") or "-", "bus": f.get("transport") or
             ("mmc" if f["sd_card"] else "-"),
             "state": drives.refusal(f, 0) or "can be written"} for f in found]
    print_table(rows)
    return 0


# check: whose card is this, and what will it do.

def read_report(text):
    report = {"host_key": []}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        key, _, value = line.partition(" ")
        if key == "host_key":
            report["host_key"].append(value.strip())
        else:
            report[key] = value.strip()
    return report


def check(card_path, digest=False):
    for number, part in enumerate(partitions(card_path), 1):
        say("partition %d: start %d, %d MiB, type %s%s" % (
            number, part["start"], part["size"] * SECTOR >> 20, part["type"],
            ", bootable" if part.get("bootable") else ""))
    fat = boot_partition(card_path)
    names = fat_names(fat)
    say("boot partition: %s" % " ".join(names))
    lower = {n.lower(): n for n in names}
    if "custom.toml" in lower:
        text = fat_read(fat, lower["custom.toml"]).decode("utf-8", "replace")
        settings, errors, warnings = firstboot.settings_from_toml(text)
        device = settings.get(("schema-init", "device"))
        say("custom.toml: %s" % ("the card of device %s" % device if device else
                                 "no [schema-init] device: made by another tool"))
        for line in errors:
            say("  refused by the device: %s" % line)
        for line in warnings:
            say("  warning: %s" % line)
        if not errors:
            for key, value in describe(settings):
                say("  %-12s %s" % (key, value))
    else:
        say("custom.toml: none (applied and removed at the first boot, or never put here)")
    if REPORT in lower:
        report = read_report(fat_read(fat, lower[REPORT]).decode("utf-8", "replace"))
        say("the device's report (%s):" % REPORT)
        for key in ("device", "serial", "hostname", "machine_id", "firstboot_exit"):
            say("  %-12s %s" % (key, report.get(key, "-")))
        for key in report["host_key"]:
            say("  host key     %s %s" % (key.split()[0], values.ssh_fingerprint(key)
                                          if values.ssh_key_error(key) is None
                                          else "(damaged: %s)" % key[:40]))
    else:
        say("%s: none yet (the device writes it at its first boot)" % REPORT)
    for name in names:
        if name.endswith(".rejected") or name == firstboot.REPORT:
            say("%s:\n%s" % (name, fat_read(fat, name).decode("utf-8", "replace").rstrip()))
    if digest:
        say("sha256 %s" % file_sha256(card_path))
    return 0


def describe(settings):
    """[(what, text)] of what a custom.toml will apply, secrets left out."""
    get = settings.get
    out = [("host name", get(("system", "hostname"), "pizw-{serial} (the image's)"))]
    user = get(("user", "name"))
    out.append(("user", "%s%s" % (user or "-", " (password set)" if (
        "user", "password_hash") in settings or ("user", "password_plain") in settings
        else "")))
    if get(("ssh", "enabled"), True):
        out.append(("ssh", "on; %s; %d key(s) for %s; root: %s" % (
            "keys only" if get(("ssh", "password_authentication")) is False else
            "password logins on", len(get(("ssh", "authorized_keys"), [])),
            user or "the first user",
            "%d key(s)" % len(get(("schema-init", "root_authorized_keys")))
            if get(("schema-init", "root_authorized_keys")) else "no login")))
    else:
        out.append(("ssh", "off"))
    for network in get(("wlan", "networks"), []):
        out.append(("wi-fi", "%s%s%s%s [%s]" % (
            network["ssid"], " hidden" if network["hidden"] else "",
            " priority %d" % network["priority"] if network["priority"] else "",
            " " + network["eap"] if network["eap"] else (
                " PSK" if network["psk"] else " passphrase" if network["passphrase"]
                else " open"), get(("wlan", "country")))))
    static = get(("schema-init", "network"))
    out.append(("address", " ".join(static["addresses"]) + (
        " via %s" % static["gateway4"] if "gateway4" in static else "") if static
        else "DHCP"))
    out.append(("time zone", get(("locale", "timezone"), "UTC (the image's)")))
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(prog="fleet.py", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("check", help="whose card is this, what will its first boot apply")
    p.add_argument("card", help="an image file or a card (/dev/sdX)")
    p.add_argument("--sha256", action="store_true", help="and the checksum of all of it")
    p = sub.add_parser("cards", help="one sparse image file a device, a manifest, labels")
    p.add_argument("image")
    p.add_argument("devices", help="the device list: a spreadsheet's CSV or a TOML file")
    p.add_argument("--out", required=True)
    p.add_argument("--dry-run", action="store_true", help="check and show, write nothing")
    p.add_argument("--jobs", type=int, help="cards made at once (default: the CPUs)")
    p = sub.add_parser("flash", help="write the image onto cards, every byte read back")
    p.add_argument("image")
    p.add_argument("targets", nargs="+", metavar="TARGET", help="a whole card: /dev/sdX")
    p.add_argument("--devices")
    p.add_argument("--device", action="append", default=[],
                   help="the device whose files go on the target of the same rank")
    p.add_argument("--records", default="fleet-records",
                   help="where the manifest of this run goes (default fleet-records)")
    p.add_argument("--dry-run", action="store_true")
    p.add_argument("--allow-non-removable", action="store_true",
                   help=argparse.SUPPRESS)   # tests: a loop device is not removable
    sub.add_parser("drives", help="the removable drives a card can be written to")
    p = sub.add_parser("bundle", help="the signed update bundle of the image made last")
    p.add_argument("--board", default="rpi-zero-w")
    p = sub.add_parser("publish", help="a bundle and manifest.txt in a directory to serve")
    p.add_argument("bundle")
    p.add_argument("--dir", required=True)
    p.add_argument("--rollout", type=int, required=True, help="percent of the devices")
    p.add_argument("--keyring", default=os.path.join(os.path.dirname(os.path.dirname(
        os.path.dirname(os.path.abspath(__file__)))), "build", "keys", "update.cert.pem"))
    p = sub.add_parser("status", help="each device's slot, version, commit and last trial")
    p.add_argument("sources", nargs="+", metavar="SOURCE",
                   help="http://HOST:9100/metrics, a saved scrape, or HOST with --ssh")
    p.add_argument("--ssh", action="store_true")
    args = parser.parse_args(argv)
    if args.command in ("bundle", "publish", "status"):
        return updates(args)
    try:
        if args.command == "check":
            return check(args.card, args.sha256)
        if args.command == "cards":
            return cards(args.image, args.devices, args.out, args.dry_run, args.jobs)
        if args.command == "drives":
            return list_drives()
        return flash(args.image, args.targets, args.devices, args.device, args.records,
                     args.allow_non_removable, args.dry_run)
    except FleetError as exc:
        print("fleet: %s" % exc, file=sys.stderr)
        return 1
    except BrokenPipeError:                  # fleet.py check CARD | head
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as exc:
        print("fleet: %s%s" % (exc.filename + ": " if exc.filename else "", exc.strerror or exc),
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("fleet: interrupted", file=sys.stderr)
        return 130


def updates(args):
    from schema_init.fleet import rollouts
    try:
        if args.command == "bundle":
            say(rollouts.make_bundle(args.board))
        elif args.command == "publish":
            say(rollouts.publish(args.bundle, args.dir, args.rollout, args.keyring), end="")
        else:
            for line in rollouts.status(args.sources, args.ssh):
                say(line)
        return 0
    except rollouts.RolloutError as exc:
        print("fleet: %s" % exc, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
