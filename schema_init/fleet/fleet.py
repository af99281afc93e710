#!/usr/bin/env python3
"""One image, a fleet of cards: each device's first-boot file written into a card's FAT
partition with mtools (no root, no mounts), or the image written to a card with a progress
bar and a read-back verify.

    schema_init/fleet/fleet.py check IMAGE                         the partitions and the boot files
    schema_init/fleet/fleet.py cards IMAGE DEVICES --out DIR       DIR/NAME.img for every device
    schema_init/fleet/fleet.py flash IMAGE /dev/sdX [--devices DEVICES --device NAME]
                                                       write, verify, then NAME's files

DEVICES is a CSV file (a header line, one device a line) or a TOML file
(``[defaults]`` and ``[[device]]`` tables) with these fields (the keys of Raspberry Pi's
custom.toml; see distros/raspberry-pi-zero-w/README.md):

    name              the card's name (the output file; required, unique)
    hostname          a host name or a pattern with {serial} (default: pizw-{serial})
    user, password_encrypted          the first user (openssl passwd -6)
    authorized_keys   SSH public keys (CSV: separated by ';')
    ssh               true/false (default true)
    ssid, password, country, hidden   Wi-Fi
    timezone          e.g. Europe/London

Every device's file is checked with the device's own parser (schema_init/firstboot/firstboot.py)
before anything is written: an error names the file, the line and the field.
"""

import argparse
import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, TOP)
from schema_init.firstboot import firstboot  # noqa: E402  (the device's own parser)

FIELDS = ("name", "hostname", "user", "password_encrypted", "authorized_keys", "ssh",
          "ssid", "password", "country", "hidden", "timezone")
# field -> (custom.toml table, key, kind)
TOML_KEYS = {
    "hostname": ("system", "hostname", str),
    "user": ("user", "name", str),
    "password_encrypted": ("user", "password_encrypted", str),
    "ssh": ("ssh", "enabled", bool),
    "authorized_keys": ("ssh", "authorized_keys", list),
    "ssid": ("wlan", "ssid", str),
    "password": ("wlan", "password", str),
    "hidden": ("wlan", "hidden", bool),
    "country": ("wlan", "country", str),
    "timezone": ("locale", "timezone", str),
}
SECTOR = 512
CHUNK = 4 << 20


class FleetError(Exception):
    pass


# Devices in: a CSV or TOML file -> [(line, {field: value})]

def _boolean(value, where):
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise FleetError("%s: must be true or false, not %r" % (where, value))


def _normalise(record, where):
    device = {}
    for field, value in record.items():
        if field not in FIELDS:
            raise FleetError("%s: %s: unknown field (known: %s)" % (where, field,
                                                                    ", ".join(FIELDS)))
        if value is None or value == "":
            continue
        if field in ("ssh", "hidden"):
            value = _boolean(value, "%s: %s" % (where, field))
        elif field == "authorized_keys":
            if isinstance(value, str):
                value = [k.strip() for k in value.split(";") if k.strip()]
            if not isinstance(value, list) or not all(isinstance(k, str) for k in value):
                raise FleetError("%s: authorized_keys: a list of keys" % where)
        elif not isinstance(value, str):
            raise FleetError("%s: %s: must be text" % (where, field))
        device[field] = value
    return device


def read_devices(path):
    """[(where, device)]; where is "FILE:LINE" for the messages."""
    name = os.path.basename(path)
    devices = []
    if path.endswith(".toml"):
        import tomllib
        try:
            with open(path, "rb") as f:
                document = tomllib.load(f)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise FleetError("%s: %s" % (name, exc)) from None
        defaults = _normalise(document.get("defaults", {}), "%s: [defaults]" % name)
        with open(path, encoding="utf-8") as f:
            starts = [n for n, line in enumerate(f, 1) if line.strip() == "[[device]]"]
        for index, record in enumerate(document.get("device", [])):
            where = "%s:%d" % (name, starts[index] if index < len(starts) else 0)
            devices.append((where, dict(defaults, **_normalise(record, where))))
    else:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or "name" not in reader.fieldnames:
                raise FleetError("%s:1: a header line with a name column is required" % name)
            for record in reader:
                where = "%s:%d" % (name, reader.line_num)
                if None in record:
                    raise FleetError("%s: more values than columns" % where)
                devices.append((where, _normalise(record, where)))
    seen = {}
    for where, device in devices:
        card = device.get("name", "")
        if not card or not all(c.isalnum() or c in "-_." for c in card) or card[0] == ".":
            raise FleetError("%s: name: required; letters, digits, '-', '_', '.'" % where)
        if card in seen:
            raise FleetError("%s: name: %s is also on %s" % (where, card, seen[card]))
        seen[card] = where
    return devices


# A device -> custom.toml text, checked by the device's own parser.

def _toml_string(value):
    out = ['"']
    for char in value:
        if char in '"\\':
            out.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7f:
            out.append("\\u%04x" % ord(char))
        else:
            out.append(char)
    return "".join(out) + '"'


def custom_toml(device, where="device"):
    tables = {}
    for field, (table, key, kind) in TOML_KEYS.items():
        if field not in device:
            continue
        value = device[field]
        if kind is bool:
            text = "true" if value else "false"
        elif kind is list:
            text = "[" + ", ".join(_toml_string(v) for v in value) + "]"
        else:
            text = _toml_string(value)
        tables.setdefault(table, []).append("%s = %s\n" % (key, text))
    body = "# %s: written by schema_init/fleet/fleet.py\nconfig_version = 1\n" % device["name"]
    for table in ("system", "user", "ssh", "wlan", "locale"):
        if table in tables:
            body += "\n[%s]\n" % table + "".join(tables[table])
    settings, errors, warnings = firstboot.settings_from_toml(body)
    if errors or warnings:
        fields = {"%s] %s" % (t, k): f for f, (t, k, _) in TOML_KEYS.items()}
        messages = []
        for message in errors + warnings:
            field = next((f for tk, f in fields.items() if "[" + tk + ":" in message), None)
            reason = message.split(": ", 2)[-1]
            messages.append("%s: %s: %s" % (where, field or "custom.toml", reason))
        raise FleetError("\n".join(messages))
    return body


# The image: its partitions and its FAT, through sfdisk and mtools.

def partitions(image):
    out = subprocess.run(["sfdisk", "-J", image], capture_output=True, text=True)
    if out.returncode != 0:
        raise FleetError("%s: no partition table (%s)" % (image, out.stderr.strip()))
    return json.loads(out.stdout)["partitiontable"]["partitions"]


def boot_partition(image):
    parts = partitions(image)
    if not parts or parts[0]["type"] not in ("c", "b", "e"):
        raise FleetError("%s: the first partition is not FAT" % image)
    return "%s@@%d" % (image, parts[0]["start"] * SECTOR)


def mtools(*argv):
    result = subprocess.run(list(argv), capture_output=True, text=True,
                            env=dict(os.environ, MTOOLS_SKIP_CHECK="1"))
    if result.returncode != 0:
        raise FleetError("%s: %s" % (argv[0], (result.stderr or result.stdout).strip()))
    return result.stdout


def write_device_files(target, device):
    """The device's custom.toml into TARGET's FAT (an image file or a card)."""
    fat = boot_partition(target)
    text = custom_toml(device)
    staging = "%s.custom.toml.%d" % (os.path.join("/tmp", os.path.basename(target)),
                                     os.getpid())
    with open(staging, "w") as f:
        f.write(text)
    try:
        mtools("mcopy", "-i", fat, "-o", "-D", "o", staging, "::custom.toml")
    finally:
        os.unlink(staging)


def cards(image, devices_path, out):
    devices = read_devices(devices_path)
    for where, device in devices:
        custom_toml(device, where)          # every device checked before any is written
    os.makedirs(out, exist_ok=True)
    for where, device in devices:
        path = os.path.join(out, device["name"] + ".img")
        temporary = path + ".part"
        shutil.copyfile(image, temporary)
        write_device_files(temporary, device)
        os.replace(temporary, path)
        print("%s: %s" % (path, device.get("hostname", "pizw-{serial}")))
    return 0


# Writing a card: progress, then a read-back verify of every byte written.

def _progress(done, total, started, what, stream):
    """A progress line on STREAM ("stderr": the standard error of the moment; None: none)."""
    if stream is None:
        return
    if stream == "stderr":
        stream = sys.stderr
    rate = done / max(time.monotonic() - started, 1e-6) / (1 << 20)
    width = 30
    filled = width * done // max(total, 1)
    stream.write("\r%s [%s%s] %3d%% %6.1f MiB/s" % (what, "#" * filled, "." * (width - filled),
                                                   100 * done // max(total, 1), rate))
    if done >= total:
        stream.write("\n")
    stream.flush()


def write_image(image, target, stream="stderr"):
    """Copy IMAGE onto TARGET (a card device or a file); returns the SHA-256 written."""
    total = os.path.getsize(image)
    digest = hashlib.sha256()
    started = time.monotonic()
    flags = os.O_WRONLY | (os.O_CREAT if not os.path.exists(target) else 0)
    out = os.open(target, flags, 0o644)
    try:
        with open(image, "rb") as src:
            done = 0
            while True:
                chunk = src.read(CHUNK)
                if not chunk:
                    break
                view = memoryview(chunk)
                while view:
                    view = view[os.write(out, view):]
                digest.update(chunk)
                done += len(chunk)
                _progress(done, total, started, "write ", stream)
        os.fsync(out)
    finally:
        os.close(out)
    return digest.hexdigest()


def verify(target, length, expected, stream="stderr"):
    """Read LENGTH bytes back from TARGET; None if they hash to EXPECTED, else a reason."""
    if os.path.isfile(target) or os.path.exists(target):
        _drop_cache(target)
    digest = hashlib.sha256()
    started = time.monotonic()
    done = 0
    with open(target, "rb") as f:
        while done < length:
            chunk = f.read(min(CHUNK, length - done))
            if not chunk:
                return "the card is shorter than the image (%d of %d bytes)" % (done, length)
            digest.update(chunk)
            done += len(chunk)
            _progress(done, length, started, "verify", stream)
    if digest.hexdigest() != expected:
        return "what was read back differs from the image (a failing card?)"
    return None


def _drop_cache(target):
    """Read back from the card, not from the page cache of what was just written."""
    try:
        fd = os.open(target, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    except OSError:
        pass


def flash(image, target, devices_path=None, name=None, stream="stderr"):
    device = None
    if name:
        if not devices_path:
            raise FleetError("--device needs --devices")
        found = [(w, d) for w, d in read_devices(devices_path) if d["name"] == name]
        if not found:
            raise FleetError("%s: no device named %s" % (devices_path, name))
        where, device = found[0]
        custom_toml(device, where)
    if os.path.exists(target) and not os.path.isfile(target):
        mounted = _mounted_from(target)
        if mounted:
            raise FleetError("%s is mounted (%s): unmount it first" % (target, mounted))
    expected = write_image(image, target, stream)
    problem = verify(target, os.path.getsize(image), expected, stream)
    if problem:
        raise FleetError("%s: %s" % (target, problem))
    if device:
        write_device_files(target, device)
    print("%s: written and verified (sha256 %s)%s" % (
        target, expected[:16], ", files of %s added" % name if device else ""))
    return 0


def _mounted_from(device):
    real = os.path.realpath(device)
    try:
        with open("/proc/mounts") as f:
            for line in f:
                source, point = line.split()[:2]
                if source == real or (source.startswith(real) and source[len(real):].lstrip(
                        "p").isdigit()):
                    return point
    except OSError:
        pass
    return None


def check(image):
    for number, part in enumerate(partitions(image), 1):
        print("partition %d: start %d, %d MiB, type %s%s" % (
            number, part["start"], part["size"] * SECTOR >> 20, part["type"],
            ", bootable" if part.get("bootable") else ""))
    print(mtools("mdir", "-i", boot_partition(image), "::"), end="")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="fleet.py", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("check", help="the partitions and the boot files of an image")
    p.add_argument("image")
    p = sub.add_parser("cards", help="one image per device, its first-boot file on it")
    p.add_argument("image")
    p.add_argument("devices")
    p.add_argument("--out", required=True)
    p = sub.add_parser("flash", help="write the image to a card, verify it, add a device")
    p.add_argument("image")
    p.add_argument("target")
    p.add_argument("--devices")
    p.add_argument("--device")
    args = parser.parse_args(argv)
    try:
        if args.command == "check":
            return check(args.image)
        if args.command == "cards":
            return cards(args.image, args.devices, args.out)
        return flash(args.image, args.target, args.devices, args.device)
    except (FleetError, OSError) as exc:
        print("fleet: %s" % exc, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
