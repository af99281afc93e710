"""Issue 23 on the host: the A/B record and autoboot.txt (pid1/slots.py), the RAUC bundle
reader and the installer (schema_init/update/) on a small A/B card image, from a file and
from a loopback HTTP server with range requests; tampered and unsigned bundles refused
with both slots untouched; 30 power cuts (the installer SIGKILLed) never leave a card
that boots neither slot; the rollout's buckets.  The bundles are made by RAUC itself
(`rauc bundle`): without rauc and mksquashfs those tests skip (make test-update
installs both)."""

import hashlib
import http.server
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest

import pi_image as pi
from conftest import ROOT
from schema_init.pid1 import slots
from schema_init.update import bundle as bundlelib
from schema_init.update import card as cardlib
from schema_init.update import rollout

HAVE_RAUC = shutil.which("rauc") and shutil.which("mksquashfs") and shutil.which("mmove")
needs_rauc = pytest.mark.skipif(not HAVE_RAUC, reason="rauc, mksquashfs, mtools: make "
                                "test-update installs them")
MIB = 2048
SECTOR = 2048
CMDLINE = b"console=ttyS1 root=/dev/mmcblk0p5 rootfstype=squashfs ro\n"


# --- pure: the record, autoboot.txt, the running slot -----------------------------------

def test_the_record_round_trips_and_a_torn_copy_is_skipped(tmp_path):
    disk = str(tmp_path / "disk")
    with open(disk, "wb") as f:
        f.truncate(4 << 20)
    assert slots.read_record(disk, SECTOR) is None
    fields = {"state": "trial", "slot": "B", "from": "A", "mode": "counter", "attempts": 1,
              "version": "1.2", "reason": "installed, not booted yet", "since": 5}
    slots.write_record(disk, SECTOR, fields, clear_marks=True)
    got = slots.read_record(disk, SECTOR)
    assert (got["state"], got["slot"], got["from"], got["attempts"], got["reason"]) == \
        ("trial", "B", "A", 1, "installed, not booted yet")
    raw = slots.record_text(fields)
    assert len(raw) == 512 and b"\nstate=trial slot=B from=A mode=counter " in raw
    # the first copy torn (a cut in the middle of its write): the second is read
    with open(disk, "r+b") as f:
        f.seek(SECTOR * 512 + 40)
        f.write(b"\xff" * 100)
    assert slots.read_record(disk, SECTOR)["state"] == "trial"
    with open(disk, "r+b") as f:
        f.seek((SECTOR + 2) * 512)
        f.write(b"xx")
    assert slots.read_marks(disk, SECTOR) == 2
    assert slots.crc32(b"123456789") == 0xCBF43926


def test_autoboot_texts_and_the_running_slot(tmp_path):
    text = slots.autoboot_text("A")
    assert text.split() == ["[all]", "tryboot_a_b=1", "boot_partition=2", "[tryboot]",
                            "boot_partition=3"]
    assert pi.parse_autoboot(text.encode(), False) == 2 and \
        pi.parse_autoboot(slots.autoboot_text("B").encode(), False) == 3
    assert slots.autoboot_default(slots.autoboot_text("B")) == "B"
    assert slots.autoboot_default("") is None
    dt = tmp_path / "bootloader"
    dt.mkdir()
    (dt / "partition").write_bytes((3).to_bytes(4, "big"))
    (dt / "tryboot").write_bytes((1).to_bytes(4, "big"))
    assert slots.running_slot(str(dt), b"root=/dev/mmcblk0p5") == ("B", True, "device-tree")
    assert slots.running_slot(str(tmp_path / "none"), b"ro root=/dev/mmcblk0p6 x") == \
        ("B", False, "cmdline")
    assert slots.running_slot(str(tmp_path / "none"), b"root=/dev/sda1") == (None, False, "")
    slots.write_autoboot(str(tmp_path), slots.autoboot_text("B"))
    assert (tmp_path / "autoboot.txt").read_text() == slots.autoboot_text("B")
    assert not (tmp_path / "autoboot.new").exists()


class Console:
    def __init__(self):
        self.text = ""

    def write(self, text):
        self.text += text


def test_pid1_reads_a_trial_and_a_trial_that_came_back(tmp_path):
    disk = str(tmp_path / "disk")
    with open(disk, "wb") as f:
        f.truncate(4 << 20)
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "ab-record-sector").write_text("%d\n" % SECTOR)
    slots.write_record(disk, SECTOR, {"state": "trial", "slot": "B", "from": "A",
                                      "attempts": 1, "version": "2",
                                      "reason": "installed, not booted yet"},
                       clear_marks=True)
    console = Console()
    watch = slots.TrialWatch.at_boot(console, 3.0, dt_dir=str(tmp_path / "no"),
                                     cmdline=b"root=/dev/mmcblk0p6", board_lib=str(lib),
                                     disk=disk)
    assert watch.state == "trial" and watch.shm_values() == (2, 1)
    assert "A/B: slot B (cmdline), trial" in console.text
    lines = watch.decorate("status", ["services: 0  groups: 0"], 3.0)
    assert lines[-1].startswith("A/B: slot=B  commit=trial  deadline=120 s after boot")
    json_lines = watch.decorate("status --json", ["{", '  "services": []', "}"], 3.0)
    import json
    assert json.loads("\n".join(json_lines))["ab"]["slot"] == "B"
    assert "ab.commit=trial" in watch.decorate("status --kv", ["services_count=0"], 3.0)
    # the same record seen from slot A: the trial ended without a commit
    back = slots.TrialWatch.at_boot(console, 3.0, dt_dir=str(tmp_path / "no"),
                                    cmdline=b"root=/dev/mmcblk0p5", board_lib=str(lib),
                                    disk=disk)
    assert back.state == "committed" and back.shm_values() == (1, 2)
    record = slots.read_record(disk, SECTOR)
    assert record["state"] == "failed" and "did not commit" in record["reason"]
    assert "last trial failed" in console.text
    # no A/B card: nothing at all
    assert slots.TrialWatch.at_boot(console, 3.0, dt_dir=str(tmp_path / "no"),
                                    cmdline=b"root=/dev/sda1", board_lib=str(lib),
                                    disk=disk) is None


# --- the rollout ---------------------------------------------------------------------

def test_the_pure_sha256_is_sha256():
    for data in (b"", b"abc", b"x" * 55, b"y" * 56, b"z" * 64, bytes(range(200))):
        assert rollout.sha256(data) == hashlib.sha256(data).hexdigest()


def test_the_rollout_percentage_selects_the_expected_devices():
    devices = ["00000000%08x" % (0xC0FFEE00 + n) for n in range(2000)]
    chosen = {p: {d for d in devices if rollout.selected(d, "2.0", p)}
              for p in (0, 10, 25, 50, 100)}
    assert not chosen[0] and chosen[100] == set(devices)
    for p in (10, 25, 50):
        assert abs(len(chosen[p]) - 20 * p) < 3 * (20 * p) ** 0.5 + 10, (p, len(chosen[p]))
    assert chosen[10] <= chosen[25] <= chosen[50]              # a cohort only grows
    other = {d for d in devices if rollout.selected(d, "3.0", 10)}
    assert other != chosen[10]                                 # each version its own draw
    manifest = rollout.parse_manifest(rollout.manifest_text("2.0", "b.raucb", "0" * 64, 10,
                                                            25, "x"))
    picked = [d for d in devices if rollout.decide(manifest, d, "1.0", None)[0] == "install"]
    assert set(picked) == chosen[25]
    assert rollout.decide(manifest, devices[0], "2.0", None) == \
        ("skip", "version 2.0 runs already")
    failed = {"state": "failed", "version": "2.0", "reason": "db EXCISED"}
    assert rollout.decide(manifest, next(iter(chosen[25])), "1.0", failed)[0] == "skip"
    with pytest.raises(rollout.ManifestError):
        rollout.parse_manifest("version=1\nbundle=b\nrollout=101\n")
    assert rollout.bundle_url("http://h/fleet/manifest.txt", "b.raucb") == "http://h/fleet/b.raucb"


def test_metrics_name_slot_version_commit_and_the_last_trial():
    text = rollout.metrics_text("B", "2.0", False, {"state": "failed", "slot": "B",
                                                    "version": "2.0", "reason": 'a "b"'})
    assert 'schema_update_info{slot="B",version="2.0",commit="trial"} 1' in text
    assert "schema_update_committed 0" in text
    assert 'result="failed",slot="B",version="2.0",reason="a \\"b\\""' in text


# --- a small A/B card and RAUC bundles ----------------------------------------------------

def make_fat(path, mib, files):
    subprocess.run(["mkfs.vfat", "-C", "-n", "BOOT", "-i", "5C4E1A01", path, str(mib * 1024)],
                   check=True, capture_output=True)
    for name, data in files.items():
        src = path + "." + name
        with open(src, "wb") as f:
            f.write(data)
        subprocess.run(["mcopy", "-i", path, src, "::" + name], check=True)
        os.unlink(src)


def make_card(path):
    """Selector 1, boot A/B 2/3 (2 MiB), extended 4 with root A/B 5/6 (4 MiB) and data 7."""
    with open(path, "wb") as f:
        f.truncate(32 << 20)
    layout = ("label: dos\nunit: sectors\n"
              "start=4096, size=2048, type=c\nstart=6144, size=4096, type=c, bootable\n"
              "start=10240, size=4096, type=c\nstart=14336, size=51200, type=5\n"
              "start=16384, size=8192, type=83\nstart=26624, size=8192, type=83\n"
              "start=36864, size=8192, type=83\n")
    subprocess.run(["sfdisk", "-q", path], input=layout, text=True, check=True)
    work = path + ".d"
    os.makedirs(work, exist_ok=True)
    selector = os.path.join(work, "sel.fat")
    make_fat(selector, 1, {"bootcode.bin": b"b", "autoboot.txt":
                           slots.autoboot_text("A").encode()})
    boot = os.path.join(work, "boot.fat")
    make_fat(boot, 2, {"start.elf": b"firmware", "cmdline.txt": CMDLINE, "vmlinuz": b"k" * 5000})
    root = os.path.join(work, "root.img")
    with open(root, "wb") as f:
        f.write(random.Random(1).randbytes(3 << 20))
    for source, sector in ((selector, 4096), (boot, 6144), (root, 16384)):
        subprocess.run(["dd", "if=" + source, "of=" + path, "bs=512", "seek=%d" % sector,
                        "conv=notrunc", "status=none"], check=True)
    return boot, root


def make_keys(directory, clock=()):
    """The development pair mkbundle.sh makes, in DIRECTORY (CLOCK: a command prefix that
    runs it at another time, faketime's)."""
    subprocess.run(list(clock) + [os.path.join(ROOT, "build", "mkbundle.sh"), "--keys",
                                  directory], check=True, env=dict(os.environ, UPDATE_KEY=""))
    return os.path.join(directory, "update.key.pem"), os.path.join(directory, "update.cert.pem")


def make_bundle(out, boot, root, key, cert, version="2.0", compatible="schema-init-test",
                clock=()):
    content = out + ".content"
    shutil.rmtree(content, ignore_errors=True)
    os.makedirs(content)
    shutil.copy(boot, os.path.join(content, "boot.vfat"))
    shutil.copy(root, os.path.join(content, "root.img"))
    with open(boot, "rb") as f:
        offset = f.read().index(b"root=/dev/mmcblk0p5 ") + len("root=/dev/mmcblk0p")
    with open(os.path.join(content, "manifest.raucm"), "w") as f:
        f.write("[update]\ncompatible=%s\nversion=%s\n\n[bundle]\nformat=verity\n\n"
                "[image.boot]\nfilename=boot.vfat\n\n[image.rootfs]\nfilename=root.img\n\n"
                "[meta.schema-init]\ncmdline-offset=%d\nboot-slot-digit-a=5\n"
                "boot-slot-digit-b=6\n" % (compatible, version, offset))
    if os.path.exists(out):
        os.unlink(out)
    subprocess.run(list(clock) + ["rauc", "bundle", "--cert", cert, "--key", key,
                                  "--mksquashfs-args=-noI -noD -noF -noX -no-fragments",
                                  content, out], check=True, capture_output=True)
    return out


@pytest.fixture
def setup(tmp_path):
    card = str(tmp_path / "card.img")
    boot, root = make_card(card)
    key, cert = make_keys(str(tmp_path / "keys"))
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "ab-record-sector").write_text("%d\n" % SECTOR)
    (lib / "compatible").write_text("schema-init-test\n")
    (lib / "version").write_text("1.0\n")
    (lib / "ab-mode").write_text("counter\n")
    env = dict(os.environ, SCHEMA_UPDATE_CARD=card, SCHEMA_UPDATE_SLOT="A",
               SCHEMA_UPDATE_BOARD_LIB=str(lib), SCHEMA_UPDATE_KEYRING=cert,
               PYTHONPATH=ROOT)
    bundle = make_bundle(str(tmp_path / "good.raucb"), boot, root, key, cert) \
        if HAVE_RAUC else None
    return {"card": card, "boot": boot, "root": root, "key": key, "cert": cert, "env": env,
            "bundle": bundle, "tmp": tmp_path, "lib": str(lib)}


def updater(s, *args, **kwargs):
    """schema-update ARGS as the device runs it (a program of its own; SCHEMA_UPDATE_PROGRAM:
    a binary's schema-update link, e.g. the armv6l one under qemu-user)."""
    program = os.environ.get("SCHEMA_UPDATE_PROGRAM")
    argv = [program] if program else [sys.executable, "-c", "import sys; from schema_init."
                                      "update import update; sys.exit(update.main(sys.argv[1:]))"]
    return subprocess.Popen(argv + list(args),
                            env=s["env"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, **kwargs)


def run_updater(s, *args):
    proc = updater(s, *args)
    out, _ = proc.communicate(timeout=300)
    return proc.returncode, out


def slot_digests(card):
    return {n: pi.digest(card, n) for n in (2, 3, 5, 6)}


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def bootable_slot(card):
    """(slot the played firmware boots, whether that slot's boot FAT and root are whole)."""
    number, why = pi.firmware_choice(card)
    assert number is not None, why
    slot = slots.SLOT_OF_BOOT[number]
    return slot, number


@needs_rauc
def test_rauc_itself_accepts_the_bundle_and_our_reader_finds_the_images(setup):
    info = subprocess.run(["rauc", "info", "--keyring", setup["cert"], setup["bundle"]],
                          capture_output=True, text=True)
    assert info.returncode == 0, info.stderr
    source = bundlelib.FileSource(setup["bundle"])
    payload = bundlelib.Payload(source)
    assert payload.files["root.img"][0] == os.path.getsize(setup["root"])
    with open(setup["root"], "rb") as f:
        assert b"".join(payload.stream("root.img")) == f.read()


@needs_rauc
def test_a_good_bundle_is_written_to_the_other_slot_only(setup):
    card = setup["card"]
    before = slot_digests(card)
    code, out = run_updater(setup, "install", setup["bundle"], "--no-reboot")
    assert code == 0, out
    after = slot_digests(card)
    assert after[2] == before[2] and after[5] == before[5]          # slot A untouched
    assert pi.digest(card, 6)[:0] == "" and pi.fat_names(card, 3) == pi.fat_names(card, 2)
    cmdline = pi.fat_read(card, "cmdline.txt", 3)
    assert cmdline == CMDLINE.replace(b"mmcblk0p5", b"mmcblk0p6")
    size = os.path.getsize(setup["root"])
    with open(setup["root"], "rb") as f:
        assert cardlib.Card(card).read(6, 0, size) == f.read()
    record = slots.read_record(card, SECTOR)
    assert (record["state"], record["slot"], record["from"], record["version"]) == \
        ("trial", "B", "A", "2.0")
    assert pi.firmware_choice(card) == (3, "autoboot.txt")          # counter mode: B next
    print("UPDATE host install of a %d-byte bundle: %s" % (
        os.path.getsize(setup["bundle"]), out.strip().splitlines()[-1]))
    # the trial's verdicts, as PID 1 has them carried out
    env_b = dict(setup["env"], SCHEMA_UPDATE_SLOT="B")
    s_b = dict(setup, env=env_b)
    code, out = run_updater(s_b, "commit", "2 required services up for 10 s")
    assert code == 0, out
    assert slots.read_record(card, SECTOR)["state"] == "committed"
    assert pi.firmware_choice(card)[0] == 3


@needs_rauc
def test_a_failed_trial_points_autoboot_back_first(setup):
    code, out = run_updater(setup, "install", setup["bundle"], "--no-reboot")
    assert code == 0, out
    s_b = dict(setup, env=dict(setup["env"], SCHEMA_UPDATE_SLOT="B"))
    code, out = run_updater(s_b, "fail", "required service db EXCISED")
    assert code == 0, out
    assert pi.firmware_choice(setup["card"])[0] == 2
    record = slots.read_record(setup["card"], SECTOR)
    assert record["state"] == "failed" and record["reason"] == "required service db EXCISED"


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """A static server answering Range requests (206), counting bytes sent."""
    sent = [0]

    def log_message(self, *args):
        pass

    def do_GET(self):
        path = self.translate_path(self.path)
        try:
            size = os.path.getsize(path)
        except OSError:
            self.send_error(404)
            return
        spec = self.headers.get("Range", "")
        if not spec.startswith("bytes="):
            with open(path, "rb") as f:
                data = f.read()
            self.send_response(200)
            self.send_header("Content-Length", str(size))
            self.end_headers()
            self.wfile.write(data)
            self.sent[0] += size
            return
        first, _, last = spec[6:].partition("-")
        first, last = int(first), min(int(last or size - 1), size - 1)
        self.send_response(206)
        self.send_header("Content-Range", "bytes %d-%d/%d" % (first, last, size))
        self.send_header("Content-Length", str(last - first + 1))
        self.end_headers()
        with open(path, "rb") as f:
            f.seek(first)
            self.wfile.write(f.read(last - first + 1))
        self.sent[0] += last - first + 1


@pytest.fixture
def http_server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    handler = lambda *a, **k: RangeHandler(*a, directory=str(root), **k)     # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    RangeHandler.sent[0] = 0
    yield root, "http://127.0.0.1:%d" % server.server_address[1]
    server.shutdown()


@needs_rauc
@pytest.mark.skipif(not shutil.which("faketime"), reason="faketime: make test-update "
                    "installs it")
def test_a_key_made_after_the_devices_clock_is_checked_at_the_bundles_signing_time(setup):
    """A Zero W has no clock of its own: until NTP answers it runs with its build time or
    its last saved one, before the certificate of a key made since (a fleet's new key, a
    clean build's development pair).  The bundle is signed 3 days ahead of the device's
    clock with a key made then: it installs, checked at its signing time.  A certificate
    that had expired when the bundle was signed is still refused."""
    tmp = setup["tmp"]
    ahead = ["faketime", "-f", "+3d"]
    key, cert = make_keys(str(tmp / "newer"), clock=ahead)
    bundle = make_bundle(str(tmp / "newer.raucb"), setup["boot"], setup["root"], key, cert,
                         clock=ahead)
    setup["env"]["SCHEMA_UPDATE_KEYRING"] = cert
    before = slot_digests(setup["card"])
    code, out = run_updater(setup, "install", bundle, "--no-reboot")
    assert code == 0 and "installed in slot B" in out, out
    assert slot_digests(setup["card"])[5] == before[5]          # slot A untouched
    # a key whose certificate lasted one day, ten days ago; the bundle signed now
    old = tmp / "expired"
    old.mkdir()
    key, cert = str(old / "key.pem"), str(old / "cert.pem")
    subprocess.run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out",
                    key], check=True)
    subprocess.run(["faketime", "-f", "-10d", "openssl", "req", "-x509", "-new", "-key", key,
                    "-out", cert, "-days", "1", "-subj", "/CN=expired"], check=True)
    bundle = make_bundle(str(tmp / "expired.raucb"), setup["boot"], setup["root"], key, cert)
    setup["env"]["SCHEMA_UPDATE_KEYRING"] = cert
    after = slot_digests(setup["card"])
    code, out = run_updater(setup, "install", bundle, "--no-reboot")
    assert code != 0 and "certificate has expired" in out, out
    assert slot_digests(setup["card"]) == after


@needs_rauc
def test_a_bundle_streamed_over_http_with_range_requests(setup, http_server):
    root, url = http_server
    shutil.copy(setup["bundle"], root / "b.raucb")
    code, out = run_updater(setup, "install", url + "/b.raucb", "--no-reboot")
    assert code == 0, out
    assert slots.read_record(setup["card"], SECTOR)["state"] == "trial"
    size = os.path.getsize(setup["bundle"])
    # two passes over the images (checked, then written), never the verity tree again
    assert RangeHandler.sent[0] < 2.2 * size, (RangeHandler.sent[0], size)


@needs_rauc
def test_the_fleet_manifest_polled_installs_only_in_the_rollout(setup, http_server):
    root, url = http_server
    shutil.copy(setup["bundle"], root / "b.raucb")
    (root / "manifest.txt").write_text(rollout.manifest_text(
        "2.0", "b.raucb", sha(setup["bundle"]), os.path.getsize(setup["bundle"]), 0,
        "schema-init-test"))
    env = dict(setup["env"])
    s = dict(setup, env=env)
    code, out = run_updater(s, "poll", url + "/manifest.txt", "--once")
    assert code == 0 and "skip: not in the first 0%" in out, out
    (root / "manifest.txt").write_text(rollout.manifest_text(
        "2.0", "b.raucb", sha(setup["bundle"]), os.path.getsize(setup["bundle"]), 100,
        "schema-init-test"))
    s["env"]["PATH"] = os.environ["PATH"]
    proc = updater(s, "poll", url + "/manifest.txt", "--once")
    out, _ = proc.communicate(timeout=300)
    # the install ran; its reboot (schema-ctl reboot) has no schema-init to ask here
    assert "install: in the first 100%" in out and "installed in slot B" in out, out


@needs_rauc
@pytest.mark.parametrize("damage", ["unsigned", "other key", "payload byte", "manifest byte",
                                    "wrong board"])
def test_tampered_unsigned_or_foreign_bundles_are_refused_without_touching_a_slot(
        setup, damage):
    card, tmp = setup["card"], setup["tmp"]
    bad = str(tmp / "bad.raucb")
    if damage == "other key":
        key, cert = make_keys(str(tmp / "other"))
        make_bundle(bad, setup["boot"], setup["root"], key, cert)
    elif damage == "wrong board":
        make_bundle(bad, setup["boot"], setup["root"], setup["key"], setup["cert"],
                    compatible="another-board")
    else:
        shutil.copy(setup["bundle"], bad)
        with open(bad, "r+b") as f:
            data = bytearray(f.read())
            sig = int.from_bytes(data[-8:], "big")
            if damage == "unsigned":
                data = data[:-8 - sig] + bytes(8)
            elif damage == "payload byte":
                source = bundlelib.FileSource(setup["bundle"])
                where = bundlelib.Payload(source).files["root.img"][1][0][0]
                data[where + 1000] ^= 0xFF
            else:
                text_at = data.rindex(b"root.img", len(data) - 8 - sig)
                data[text_at] ^= 0x01
            f.seek(0)
            f.truncate()
            f.write(data)
    before = slot_digests(card)
    record_before = slots.read_record(card, SECTOR)
    code, out = run_updater(setup, "install", bad, "--no-reboot")
    assert code == 1 and "refused" in out, out
    assert slot_digests(card) == before, out
    assert slots.read_record(card, SECTOR) == record_before
    assert pi.firmware_choice(card)[0] == 2
    expected = {"unsigned": "no signature", "other key": "does not verify",
                "payload byte": "tampered or damaged bundle; nothing was written",
                "manifest byte": "does not verify", "wrong board": "this board is"}[damage]
    assert expected in out, out


@needs_rauc
def test_thirty_power_cuts_during_installs_never_leave_a_card_that_boots_nothing(setup):
    """The installer SIGKILLed at random moments (a power cut as far as the card's bytes
    go: every write it made is there, the rest is not); after each cut the played
    firmware boots a slot whose boot partition and root are whole, and a later install
    completes."""
    seed = int(os.environ.get("UPDATE_CUT_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    print("power-cut seed", seed)
    card = setup["card"]
    a_boot, a_root = pi.digest(card, 2), pi.digest(card, 5)
    # the expected slot B after a whole install, from one done on a copy
    whole = str(setup["tmp"] / "whole.img")
    shutil.copy(card, whole)
    started = time.monotonic()
    code, out = run_updater(dict(setup, env=dict(setup["env"], SCHEMA_UPDATE_CARD=whole)),
                            "install", setup["bundle"], "--no-reboot")
    full = time.monotonic() - started
    assert code == 0, out
    b_boot, b_root = pi.digest(whole, 3), pi.digest(whole, 6)
    cuts = int(os.environ.get("UPDATE_CUTS", "30"))
    outcomes = {}
    for cut in range(cuts):
        proc = updater(setup, "install", setup["bundle"], "--no-reboot")
        time.sleep(rng.uniform(0.05, 1.2 * full))
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        slot, number = bootable_slot(card)
        if slot == "A":
            assert (pi.digest(card, 2), pi.digest(card, 5)) == (a_boot, a_root), cut
        else:
            assert (pi.digest(card, 3), pi.digest(card, 6)) == (b_boot, b_root), cut
        outcomes[slot] = outcomes.get(slot, 0) + 1
        # back to the running slot A for the next cut, as a rollback would
        if slot == "B":
            cardlib.Card(card).write_autoboot(slots.autoboot_text("A"))
            slots.write_record(card, SECTOR, {"state": "failed", "slot": "B", "from": "A",
                                              "reason": "test: back to A"})
    code, out = run_updater(setup, "install", setup["bundle"], "--no-reboot")
    assert code == 0, out
    assert (pi.digest(card, 3), pi.digest(card, 6)) == (b_boot, b_root)
    print("UPDATE %d power cuts during installs (seed %d): the firmware booted A %d times, "
          "a whole B %d times, never nothing" % (cuts, seed, outcomes.get("A", 0),
                                                 outcomes.get("B", 0)))


@needs_rauc
def test_fleet_publish_writes_the_manifest_devices_poll_and_status_reads_them_back(
        setup, tmp_path):
    from schema_init.fleet import fleet, rollouts
    www = str(tmp_path / "www")
    assert fleet.main(["publish", setup["bundle"], "--dir", www, "--rollout", "25",
                       "--keyring", setup["cert"]]) == 0
    manifest = rollout.parse_manifest(open(os.path.join(www, "manifest.txt")).read())
    assert manifest["version"] == "2.0" and manifest["rollout"] == 25
    assert manifest["sha256"] == sha(setup["bundle"])
    assert manifest["compatible"] == "schema-init-test"
    # a bundle signed by another key is not published
    key, cert = make_keys(str(tmp_path / "other"))
    assert fleet.main(["publish", setup["bundle"], "--dir", www, "--rollout", "25",
                       "--keyring", cert]) == 1
    scrape = tmp_path / "pump-01.prom"
    scrape.write_text(rollout.metrics_text("B", "2.0", True, {
        "state": "committed", "slot": "B", "version": "2.0", "reason": "2 up"}))
    lines = rollouts.status([str(scrape), str(tmp_path / "missing.prom")])
    assert "slot B  2.0" in lines[0] and "committed" in lines[0]
    assert "error" in lines[1] and "   1  2.0 committed" in lines


def test_cmdline_txt_can_set_the_trial_and_a_bad_setting_keeps_the_default(tmp_path):
    disk = str(tmp_path / "disk")
    with open(disk, "wb") as f:
        f.truncate(4 << 20)
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "ab-record-sector").write_text("%d\n" % SECTOR)
    slots.write_record(disk, SECTOR, {"state": "trial", "slot": "A", "from": "B"})
    watch = slots.TrialWatch.at_boot(Console(), 1.0, dt_dir=str(tmp_path / "no"),
                                     cmdline=b"root=/dev/mmcblk0p5 schema_trial.deadline=900 "
                                             b"schema_trial.hold=x", board_lib=str(lib),
                                     disk=disk)
    settings = watch.trial_settings()
    assert settings.deadline == 900 and settings.hold == 10


class FakeSpec:
    def __init__(self, critical):
        self.critical = critical


class FakeService:
    def __init__(self, name, state, critical=True, failed_runs=0, since=1.0):
        self.name, self.state, self.spec = name, state, FakeSpec(critical)
        self.failed_runs, self.last_failure, self.state_since = failed_runs, "exited 3", since


class FakeHost:
    def __init__(self, services):
        self.console = Console()
        self.supervisor = type("Sup", (), {"services": {s.name: s for s in services},
                                           "changed": False})()
        self.publisher = type("Pub", (), {"set_ab": lambda self, *v: setattr(self, "ab", v)})()
        self.rebooted = False

    def reboot(self):
        self.rebooted = True


def watch_on_trial(tmp_path, monkeypatch, helper_body):
    disk = str(tmp_path / "disk")
    with open(disk, "wb") as f:
        f.truncate(4 << 20)
    slots.write_record(disk, SECTOR, {"state": "trial", "slot": "B", "from": "A"})
    helper = tmp_path / "helper"
    helper.write_text("#!%s\nimport sys\nsys.path.insert(0, %r)\nfrom schema_init.pid1 import "
                      "slots\n%s\n" % (sys.executable, ROOT, helper_body % {"disk": disk}))
    helper.chmod(0o755)
    monkeypatch.setattr(slots, "HELPER", str(helper))
    return slots.TrialWatch("B", "cmdline", slots.read_record(disk, SECTOR), SECTOR, disk)


def reap_helper(watch, host):
    _, status = os.waitpid(watch.helper_pid, 0)
    assert watch.reaped(host, watch.helper_pid, 50.0)


def test_pid1_commits_a_healthy_trial_through_the_helper(tmp_path, monkeypatch):
    from schema_init.core import schema
    watch = watch_on_trial(tmp_path, monkeypatch, "r = slots.read_record(%(disk)r, 2048); "
                           "r.update(state='committed'); slots.write_record(%(disk)r, 2048, r)")
    host = FakeHost([FakeService("data", schema.PERFECT), FakeService("udev", schema.FUNDAMENTAL)])
    watch.check(host, 5.0)
    assert watch.state == "trial" and watch.recheck == 11.0 and not watch.helper_pid
    watch.check(host, 11.0)
    assert watch.state == "committing" and watch.helper_pid
    reap_helper(watch, host)
    assert watch.state == "committed" and host.publisher.ab == (2, 2) and not host.rebooted
    assert "A/B: slot B committed" in host.console.text


def test_pid1_fails_a_crashing_trial_and_reboots(tmp_path, monkeypatch):
    from schema_init.core import schema
    watch = watch_on_trial(tmp_path, monkeypatch, "pass")
    host = FakeHost([FakeService("app", schema.FRICTION, failed_runs=3)])
    watch.check(host, 30.0)
    assert watch.state == "failing"
    assert "the trial of slot B failed: required service app FRICTION after 3 failures " \
        "(last: exited 3)" in host.console.text
    reap_helper(watch, host)
    assert host.rebooted and "rebooting into slot A" in host.console.text
