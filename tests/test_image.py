"""Issue 12: the flashable Pi Zero W image (make image BOARD=rpi-zero-w), checked from
outside and booted in QEMU raspi0 as the board's firmware would boot it (tests/pi_image.py).

make test-image runs all of it (the power-loss torture: TORTURE_BOOTS boots, 50 by default);
make test-image-smoke the tests marked smoke (CI)."""

import hashlib
import os
import random
import re
import subprocess
import time

import pytest

import pi_image as pi
from conftest import ROOT

pytestmark = pytest.mark.image

# a real public key (ssh-keygen): the device checks a key's base64 and blob
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPetCVYsEKJFanyMDEBX4Iy2HrJZgguB3cRQzJpJwrFY ops1@site"
# openssl passwd -6 -salt schemasalt secret
HASH = ("$6$schemasalt$/8h1ZMsFLrhoSpmVpmWNVrSlVh.0gYjkhTmjNsb8MvhGSlyqxnsdkE.W8xJKkzHrF0ru"
        "WVljjQPgQO9S3Nlri0")
# the Wi-Fi PSK, as the fleet tool and Raspberry Pi Imager write it (wpa_passphrase
# site-network "a long passphrase"): the device's own PBKDF2 is slow under TCG
PSK = hashlib.pbkdf2_hmac("sha1", b"a long passphrase", b"site-network", 4096, 32).hex()
CUSTOM = """config_version = 1
[system]
hostname = "plant-{serial}"
[user]
name = "pi"
password = "%s"
password_encrypted = true
[ssh]
enabled = true
authorized_keys = ["%s"]
[wlan]
ssid = "site-network"
password = "%s"
password_encrypted = true
country = "DE"
[locale]
timezone = "Europe/Berlin"
""" % (HASH, KEY, PSK)
# A service that cannot run without the board's hardware, and says why.
NEEDS_HARDWARE = ("wifi", "dhcp")
# Printed on the console by the probe once every other service has settled (and wifi has
# had its say).
PROBE = """# test probe (tests/test_image.py): the state once the boot has settled
exec=/bin/sh
args=-c
args=until ! schema-ctl status | grep -vE '^  (probe|wifi|dhcp) ' | grep -qE 'NEW_PROCESS|FULL_TRUST|RECOVERY|FRICTION' && [ -s /run/log/schema-init/wifi.log ]; do sleep 0.5; done; { echo '=== status ==='; schema-ctl status; echo '=== memory ==='; grep -E '^(MemTotal|MemAvailable):' /proc/meminfo; grep -E '^(Rss|Pss|Private_Dirty):' /proc/1/smaps_rollup; echo "=== uptime $(cut -d' ' -f1 /proc/uptime) ==="; u=$(busybox pidof systemd-udevd | cut -d' ' -f1); echo "=== udevd $(grep -E '^(Rss|Pss):' /proc/$u/smaps_rollup | tr -s ' ' | tr -d ':' | tr '\\n' ' ')==="; echo "=== hostname $(cat /proc/sys/kernel/hostname) ==="; for s in wifi dhcp; do echo "=== log $s: $(tail -n 1 /run/log/schema-init/$s.log 2>/dev/null) ==="; done; echo '=== end ==='; } > /run/probe.txt; schema-ctl plot > /data/boot-chart.svg 2>&1; { echo '$ schema-ctl blame'; schema-ctl blame; echo '$ schema-ctl critical-chain ssh'; schema-ctl critical-chain ssh; } > /data/boot-views.txt 2>&1; sync; cat /run/probe.txt > /dev/console; [ "$PROBE_POWEROFF" = 1 ] && schema-ctl poweroff; exit 0
oneshot=1
start_timeout_sec=0
dep=data
"""


# Raspberry Pi Imager's form (issue 26): the hash under [user] password, the Wi-Fi PSK
# under [wlan] password, both with password_encrypted = true; keys only; a hidden network.
IMAGER = """config_version = 1

[system]
hostname = "imager-{serial}"

[user]
name = "ops"
password = "%s"
password_encrypted = true

[ssh]
enabled = true
password_authentication = false
authorized_keys = [ "%s" ]

[wlan]
ssid = "site-network"
password = "%s"
password_encrypted = true
hidden = true
country = "DE"

[locale]
keymap = "de"
timezone = "Europe/Berlin"
""" % (HASH, KEY, PSK)
# dropbear's command line on the console once it runs (the flags the first-boot file chose)
DROPBEAR_ARGS = """# test probe (tests/test_image.py): dropbear's arguments
exec=/bin/sh
args=-c
args=until p=$(busybox pidof dropbear); do sleep 1; done; echo "=== dropbear $(tr '\\000' ' ' < /proc/${p%% *}/cmdline)===" > /dev/console
oneshot=1
start_timeout_sec=0
dep=data
"""


@pytest.fixture(scope="module")
def image():
    assert os.path.isfile(pi.IMAGE), "%s is missing: make image BOARD=rpi-zero-w" % pi.IMAGE
    return pi.IMAGE


@pytest.fixture
def machine(tmp_path):
    made = []

    def boot(card, serial=None, append=""):
        vm = pi.CardVM(tmp_path / ("vm-%d" % len(made)), card, serial=serial, append=append)
        made.append(vm)
        return vm.start()
    yield boot
    for vm in made:
        vm.kill()


def settled(vm, timeout=900):
    """The probe's report: {'states': {name: state}, 'memory': {...}, 'uptime', 'hostname'}."""
    vm.wait_for("=== end ===", timeout=timeout)
    text = vm.text()
    report = text.split("=== status ===", 1)[1].split("=== end ===", 1)[0]
    try:
        return {
            "states": dict(re.findall(r"^  (\S+)\s+pid=\d+\s+state=(\S+)", report, re.M)),
            "memory": {k: int(v) for k, v in re.findall(
                r"(MemTotal|MemAvailable|Rss|Pss|Private_Dirty):\s+(\d+) kB", report)},
            "uptime": float(re.search(r"=== uptime ([\d.]+) ===", report).group(1)),
            "hostname": re.search(r"=== hostname (\S*) ===", report).group(1),
            "udevd": re.search(r"=== udevd (.*)===", report).group(1).strip(),
            "logs": dict(re.findall(r"=== log (\w+): (.*) ===", report)),
            "elapsed": time.monotonic() - vm.started,
            "text": text,
        }
    except AttributeError:
        raise AssertionError("the probe's report does not parse:\n" + report) from None


def assert_all_up(report):
    for name, state in report["states"].items():
        if name in NEEDS_HARDWARE or name == "probe":
            continue
        assert state in ("FUNDAMENTAL", "PERFECT"), (name, state, report["text"][-6000:])


def boot_views(card, work):
    """The first boot as PID 1 recorded it (the probe kept `schema-ctl plot`, `blame` and
    `critical-chain ssh` on the data partition): an SVG with a bar per service, blame
    naming the board's services.  BOOT_VIEWS_OUT=DIR keeps them (docs/pi-boot.svg and
    docs/pi-boot.txt in the README are a run of this)."""
    import xml.etree.ElementTree as ET
    svg = pi.data_file(card, "/boot-chart.svg", work)
    views = pi.data_file(card, "/boot-views.txt", work)
    root = ET.fromstring(svg)
    text = " ".join(t.text or "" for t in root.iter() if t.tag.endswith("text"))
    assert all(name in text for name in ("udev", "data", "ssh", "firstboot")), text[:500]
    assert re.search(r"^\s*\S+ ssh$", views, re.M) and re.search(r"^ssh @", views, re.M), views
    out = os.environ.get("BOOT_VIEWS_OUT")
    if out:
        with open(os.path.join(out, "pi-boot.svg"), "w") as f:
            f.write(svg)
        with open(os.path.join(out, "pi-boot.txt"), "w") as f:
            f.write(views)


@pytest.mark.smoke
def test_partition_table_and_boot_partition(image, tmp_path):
    """The A/B card from the first flash (issue 23): the selector, boot A and B, the
    extended partition holding root A and B and the data partition."""
    env = pi.board_env()
    table = pi.partitions(image)
    assert table["label"] == "dos" and table["id"] == env["DISK_ID"]
    parts = table["partitions"]
    mib = 2048
    sel, boot, slot, data = (int(env[k]) * mib for k in ("SELECTOR_MB", "BOOT_MB",
                                                          "ROOT_SLOT_MB", "DATA_MB"))
    start = int(env["BOOT_OFFSET_MB"]) * mib
    ext = start + sel + 2 * boot
    assert [(p["start"], p["size"], p["type"]) for p in parts] == [
        (start, sel, "c"), (start + sel, boot, "c"), (start + sel + boot, boot, "c"),
        (ext, (int(env["IMAGE_MB"]) << 11) - ext, "5"),
        (ext + mib, slot, "83"), (ext + 2 * mib + slot, slot, "83"),
        (ext + 3 * mib + 2 * slot, data, "83")]
    assert [p.get("bootable", False) for p in parts] == [False, True] + [False] * 5
    assert int(env["AB_RECORD_SECTOR"]) + 2 <= start
    assert os.path.getsize(image) == int(env["IMAGE_MB"]) << 20
    assert pi.fat_names(image, pi.SELECTOR) == sorted(
        ["bootcode.bin", "autoboot.txt", "custom.toml.example", "firmware-copyright.txt"])
    autoboot = pi.fat_read(image, "autoboot.txt").decode()
    assert autoboot.split() == ["[all]", "tryboot_a_b=1", "boot_partition=2", "[tryboot]",
                                "boot_partition=3"]
    names = pi.fat_names(image, pi.BOOT_A)
    for name in ("start.elf", "fixup.dat", "vmlinuz", "initrd.img", env["DTB"],
                 "config.txt", "cmdline.txt"):
        assert name in names, names
    assert "bootcode.bin" not in names and "custom.toml.example" not in names
    config = pi.fat_read(image, "config.txt", pi.BOOT_A).decode()
    for line in ("dtparam=watchdog=on", "enable_uart=1", "kernel=vmlinuz",
                 "device_tree=%s" % env["DTB"], "initramfs initrd.img followkernel"):
        assert line in config.splitlines()
    cmdline = pi.fat_read(image, "cmdline.txt", pi.BOOT_A).decode()
    assert cmdline.count("\n") <= 1 and "root=/dev/mmcblk0p5 " in cmdline
    assert "bcm2835_wdt.heartbeat=15" in cmdline
    # slot B is empty until the first update: its boot partition boots nothing, so a
    # tryboot without an update ends in a reset and boot A again
    assert pi.fat_names(image, pi.BOOT_B) == []
    assert pi.firmware_choice(image) == (2, "autoboot.txt")
    assert pi.firmware_choice(image, tryboot=True)[0] is None
    firmware = os.path.join(ROOT, "build", "tmp", "image", "firmware", "root", "usr", "lib",
                            "raspi-firmware")
    for name, number in (("bootcode.bin", pi.SELECTOR), ("start.elf", pi.BOOT_A),
                         ("fixup.dat", pi.BOOT_A)):    # raspi-firmware's own files
        with open(os.path.join(firmware, name), "rb") as f:
            assert pi.fat_read(image, name, number) == f.read(), name


def test_the_played_firmware_reads_autoboot_txt_as_documented():
    """The harness's firmware (pi_image.parse_autoboot), on the forms that matter."""
    text = b"[all]\ntryboot_a_b=1\nboot_partition=2\n[tryboot]\nboot_partition=3\n"
    assert pi.parse_autoboot(text, False) == 2 and pi.parse_autoboot(text, True) == 3
    swapped = text.replace(b"=2", b"=X").replace(b"=3", b"=2").replace(b"=X", b"=3")
    assert pi.parse_autoboot(swapped, False) == 3 and pi.parse_autoboot(swapped, True) == 2
    assert pi.parse_autoboot(b"", False) == 0                      # the default partition
    assert pi.parse_autoboot(b"[none]\nboot_partition=3\n", False) == 0
    assert pi.parse_autoboot(b"#" * 600 + b"\nboot_partition=3\n", False) == 0   # 512 B
    assert pi.restart_command("reboot: Restarting system with command '0 tryboot'\n") == \
        "0 tryboot"
    assert pi.restart_command("reboot: Restarting system\n") is None


@pytest.mark.smoke
def test_root_is_a_read_only_squashfs_with_our_armv6_binary_as_init(image, tmp_path):
    root = pi.extract(image, pi.ROOT_A, str(tmp_path / "root.fs"))
    with open(root, "rb") as f:
        assert f.read(4) == b"hsqs"
    listing = pi.run("unsquashfs", "-lls", root).stdout
    assert re.search(r"^-rwxr-xr-x root/root\s+\d+ .* squashfs-root/usr/sbin/init$", listing,
                     re.M), listing[:2000]
    for path in ("usr/sbin/schema-ctl -> init", "usr/sbin/schema-firstboot -> init",
                 "etc/schema-init/services/data.svc",
                 "usr/lib/firmware/brcm/brcmfmac43430-sdio.raspberrypi,model-zero-w.txt",
                 "usr/lib/systemd/systemd-udevd", "usr/sbin/dropbear", "usr/sbin/wpa_supplicant"):
        assert "squashfs-root/" + path in listing, path
    pi.run("unsquashfs", "-d", str(tmp_path / "x"), root, "usr/sbin/init")
    elf = pi.run(os.path.join(ROOT, ".venv", "bin", "python"),
                 os.path.join(ROOT, "toolchains", "elfcheck.py"), "--target", "armv6l",
                 str(tmp_path / "x" / "usr" / "sbin" / "init"))
    assert elf.returncode == 0
    # the services of the image pass schema-init's own check
    pi.run("unsquashfs", "-d", str(tmp_path / "s"), root, "etc/schema-init/services")
    check = subprocess.run([os.path.join(ROOT, ".venv", "bin", "schema-init"), "--strict",
                            "--check", str(tmp_path / "s" / "etc/schema-init/services")],
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    code, out = pi.fsck(image, str(tmp_path))
    assert code == 0, out


@pytest.mark.smoke
def test_same_inputs_give_the_same_bytes(image, tmp_path):
    """build/mkimage.sh again, with the build time the image carries: the same image."""
    root = pi.extract(image, pi.ROOT_A, str(tmp_path / "root.fs"))
    epoch = pi.run("unsquashfs", "-cat", root, "usr/lib/schema-init-board/build-time").stdout
    again = str(tmp_path / "again.img")
    started = time.monotonic()
    subprocess.run([os.path.join(ROOT, "build", "mkimage.sh"), pi.BOARD], check=True,
                   timeout=1200, env=dict(os.environ, IMAGE_OUT=again,
                                          SOURCE_DATE_EPOCH=epoch.strip()))
    print("IMAGE rebuilt in %.0f s, %d bytes" % (time.monotonic() - started,
                                                 os.path.getsize(again)))
    for number in (1, 2, 3, 5, 6, 7):
        assert pi.digest(again, number) == pi.digest(image, number), "partition %d" % number
    assert pi.run("sha256sum", again).stdout.split()[0] == \
        pi.run("sha256sum", image).stdout.split()[0]


@pytest.mark.smoke
def test_first_boot_applies_the_file_grows_the_data_partition_and_derives_identity(
        image, tmp_path, machine):
    card = pi.card(tmp_path)
    root_before = pi.digest(card, pi.ROOT_A)
    custom = tmp_path / "custom.toml"
    custom.write_text(CUSTOM)
    pi.fat_put(card, str(custom), "custom.toml")
    pi.add_services(card, {"probe.svc": PROBE}, str(tmp_path))
    vm = machine(card, serial="00000000c0ffee42", append="PROBE_POWEROFF=1")
    report = settled(vm)
    text = vm.finish(300)
    print("BOOT rpi-zero-w first boot: QEMU start -> settled %.1f s (guest uptime %.1f s); "
          "MemTotal - MemAvailable %d kB; PID 1 Rss %d kB, Pss %d kB, Private_Dirty %d kB; "
          "udevd %s" % (report["elapsed"], report["uptime"],
                        report["memory"]["MemTotal"] - report["memory"]["MemAvailable"],
                        report["memory"]["Rss"], report["memory"]["Pss"],
                        report["memory"]["Private_Dirty"], report["udevd"]))
    assert_all_up(report)
    assert report["states"]["firstboot"] == "PERFECT"
    assert report["hostname"] == "plant-c0ffee42"
    assert "no wlan0: brcmfmac found no Wi-Fi chip" in report["logs"]["wifi"], report["logs"]
    assert report["states"]["dhcp"] == "NEW_PROCESS"      # waits for wifi, never spawned
    assert "firstboot: applied custom.toml" in text
    assert re.search(r"data: growing /dev/mmcblk0p7 from \d+ MiB to \d+ MiB", text)
    assert "reboot: Power down" in text
    names = pi.fat_names(card)
    assert "custom.toml" not in names and "custom.toml.rejected" not in names
    assert pi.digest(card, pi.ROOT_A) == root_before
    parts = pi.partitions(card)["partitions"]
    for number in (pi.EXTENDED, pi.DATA):                              # to the card's end
        assert parts[number - 1]["start"] + parts[number - 1]["size"] == (1024 << 20) // 512
    code, out = pi.fsck(card, str(tmp_path))
    assert code == 0, out
    work = str(tmp_path)
    assert "pi:" in pi.data_file(card, "/overlay/etc/upper/passwd", work)
    assert HASH in pi.data_file(card, "/overlay/etc/upper/shadow", work)
    assert pi.data_file(card, "/home/pi/.ssh/authorized_keys", work) == KEY + "\n"
    assert "ssid=%s" % b"site-network".hex() in pi.data_file(
        card, "/overlay/etc/upper/wpa_supplicant/wpa_supplicant-wlan0.conf", work)
    assert pi.data_file(card, "/overlay/etc/upper/timezone", work) == "Europe/Berlin\n"
    boot_views(card, work)
    machine_id = pi.data_file(card, "/overlay/etc/upper/machine-id", work).strip()
    assert re.fullmatch(r"[0-9a-f]{32}", machine_id)
    host_key = pi.data_file(card, "/ssh/dropbear_ed25519_host_key", work, binary=True)
    assert host_key

    # The same card in another board: its own name and machine-id, the same keys.
    vm = machine(card, serial="00000000beef0007", append="PROBE_POWEROFF=1")
    again = settled(vm)
    text = vm.finish(300)
    assert_all_up(again)
    assert again["hostname"] == "plant-beef0007"
    assert "firstboot: no first-boot file" in text
    assert pi.data_file(card, "/ssh/dropbear_ed25519_host_key", work, binary=True) == host_key
    assert pi.data_file(card, "/overlay/etc/upper/machine-id", work).strip() != machine_id
    assert pi.digest(card, pi.ROOT_A) == root_before


def test_raspberry_pi_imagers_custom_toml_is_applied_and_its_secrets_leave_the_fat(
        image, tmp_path, machine):
    card = pi.card(tmp_path)
    custom = tmp_path / "custom.toml"
    custom.write_text(IMAGER)
    pi.fat_put(card, str(custom), "custom.toml")
    pi.add_services(card, {"probe.svc": PROBE, "dropbear-args.svc": DROPBEAR_ARGS},
                    str(tmp_path))
    vm = machine(card, serial="00000000c0ffee43", append="PROBE_POWEROFF=1")
    report = settled(vm)
    text = vm.finish(300)
    assert_all_up(report)
    assert report["states"]["firstboot"] == "PERFECT"
    assert report["hostname"] == "imager-c0ffee43"
    assert "firstboot: applied custom.toml" in text
    assert "firstboot: warning: custom.toml:24: [locale] keymap: not supported" in text
    # keys only, and no root login: dropbear -w -s
    args = re.search(r"=== dropbear (.*)===", text).group(1).split()
    assert "-w" in args and "-s" in args and "-g" not in args
    work = str(tmp_path)
    assert HASH in pi.data_file(card, "/overlay/etc/upper/shadow", work)
    assert pi.data_file(card, "/home/ops/.ssh/authorized_keys", work) == KEY + "\n"
    assert pi.data_file(card, "/root/.ssh/authorized_keys", work) == ""
    assert pi.data_file(card, "/overlay/etc/upper/schema-board/ssh-no-passwords", work)
    wpa = pi.data_file(card, "/overlay/etc/upper/wpa_supplicant/wpa_supplicant-wlan0.conf",
                       work)
    assert "psk=%s" % PSK in wpa and "scan_ssid=1" in wpa and "country=DE" in wpa
    assert pi.data_file(card, "/overlay/etc/upper/timezone", work) == "Europe/Berlin\n"
    # the FAT: custom.toml gone, its bytes too; the device's record in its place
    names = pi.fat_names(card)
    assert "custom.toml" not in names and "custom.toml.rejected" not in names
    record = pi.fat_read(card, "firstboot-report.txt").decode()
    assert "hostname imager-c0ffee43" in record and "serial 00000000c0ffee43" in record
    assert "host_key ssh-ed25519 " in record
    boot = pi.extract(card, 1, str(tmp_path / "boot.fat"))
    with open(boot, "rb") as f:
        raw = f.read()
    assert PSK.encode() not in raw and HASH.encode() not in raw


def test_a_bad_first_boot_file_is_rejected_and_the_device_boots(image, tmp_path, machine):
    card = pi.card(tmp_path)
    custom = tmp_path / "custom.toml"
    custom.write_text('config_version = 1\n[system]\nhostname = "bad name"\n')
    pi.fat_put(card, str(custom), "custom.toml")
    pi.add_services(card, {"probe.svc": PROBE}, str(tmp_path))
    vm = machine(card, append="PROBE_POWEROFF=1")
    report = settled(vm)
    text = vm.finish(300)
    assert "firstboot: error: custom.toml:3: [system] hostname" in text
    assert report["states"]["firstboot"] == "EXCISED"
    assert_all_up(dict(report, states={k: v for k, v in report["states"].items()
                                       if k != "firstboot"}))
    assert report["hostname"] == "pizw-00000000"        # QEMU's board has no serial
    names = pi.fat_names(card)
    assert "custom.toml.rejected" in names and "custom.toml" not in names
    assert b"custom.toml:3: [system] hostname" in pi.fat_read(card, "firstboot-errors.txt")


def test_a_data_partition_that_cannot_be_mounted_is_made_anew(image, tmp_path, machine):
    card = pi.card(tmp_path)
    pi.add_services(card, {"probe.svc": PROBE}, str(tmp_path))
    vm = machine(card, append="PROBE_POWEROFF=1")
    settled(vm)
    vm.finish(300)
    part = pi.partitions(card)["partitions"][pi.DATA - 1]
    # every byte of the data partition zero: no superblock, no backup to repair from
    pi.run("fallocate", "--punch-hole", "--offset", str(part["start"] * pi.SECTOR),
           "--length", str(part["size"] * pi.SECTOR), card)
    root_before = pi.digest(card, pi.ROOT_A)
    vm = machine(card)
    vm.wait_for("data: cannot mount: making a new filesystem on /dev/mmcblk0p7", timeout=900)
    vm.wait_for("data: /dev/mmcblk0p7", timeout=900)     # mkfs of the whole card
    vm.wait_for(" login:", timeout=600)   # the getty: the boot went on on the new /data
    time.sleep(10)
    vm.kill()                             # nothing powers a raspi0 off from outside
    assert pi.digest(card, pi.ROOT_A) == root_before
    # the new partition is a working ext4 holding what the boot put there: after the
    # journal's replay (the power was cut) it checks clean
    fs = pi.extract(card, pi.DATA, str(tmp_path / "data.ext4"))
    replay = subprocess.run(["e2fsck", "-fy", fs], capture_output=True, text=True, timeout=300)
    assert replay.returncode in (0, 1), replay.stdout
    check = subprocess.run(["e2fsck", "-fn", fs], capture_output=True, text=True, timeout=300)
    assert check.returncode == 0, check.stdout
    listing = pi.debugfs(fs, "ls -l /", "ls -l /overlay/etc").stdout
    for name in ("overlay", "home", "root", "ssh", "state", "upper", "work"):
        assert " %s\n" % name in listing or " %s " % name in listing, (name, listing)


# Heavy writes as a careful program makes them: a file is written, fsync'd, then renamed
# over the old one (so after any cut either version is there, whole), while a log grows
# without fsync and every 8 rounds a sync() flushes everything.  The first round is
# synced before the writer says it is writing, so every cut comes after at least one
# renamed file is on the card: the next boot must find it (a file no boot finds proves
# nothing about tearing).
TORTURE_WRITER = """# test writer (tests/test_image.py): heavy writes to /data until the power is cut
exec=/bin/sh
args=-c
args=d=/data/torture; mkdir -p $d; whole=0; torn=0; for f in $d/f[0-9] $d/f[0-9][0-9]; do [ -e "$f" ] || continue; if [ "$(stat -c %s "$f")" = 262144 ]; then whole=$((whole+1)); else torn=$((torn+1)); fi; done; echo "=== torture: $whole whole $torn torn ===" > /dev/console; i=0; while :; do i=$((i+1)); n=$((i % 16)); dd if=/dev/urandom of=$d/f$n.tmp bs=64k count=4 conv=fsync 2>/dev/null && mv $d/f$n.tmp $d/f$n; echo "$i $(date +%s)" >> $d/log; [ $((i % 8)) = 0 ] && sync; [ $i = 1 ] && sync && echo '=== torture: writing ===' > /dev/console; done
dep=data
"""


def test_power_loss_during_heavy_writes_never_corrupts_root_or_data(image, tmp_path, machine):
    """TORTURE_BOOTS boots (50): QEMU killed at a random moment while the data partition is
    written hard; every next boot comes up with the root untouched and /data mounted
    (repaired by its own e2fsck where needed), and finds at least one renamed file (the
    one synced before the cut) and none torn."""
    boots = int(os.environ.get("TORTURE_BOOTS", "50"))
    seed = int(os.environ.get("TORTURE_SEED", random.randrange(1 << 30)))
    print("torture seed", seed)
    rng = random.Random(seed)
    card = pi.card(tmp_path)
    pi.add_services(card, {"probe.svc": PROBE, "writer.svc": TORTURE_WRITER}, str(tmp_path))
    root_before = pi.digest(card, pi.ROOT_A)
    results = []
    checked = 0                     # renamed files found whole after a cut, over the run

    def renamed_files(vm, after_cut):
        """The writer's count of renamed files (it starts once /data is mounted, after
        its e2fsck -p): none torn, and after a cut at least the synced one."""
        found = vm.wait_re(r"=== torture: (\d+) whole (\d+) torn ===", timeout=600)
        whole, torn = int(found.group(1)), int(found.group(2))
        assert torn == 0, vm.text()[-4000:]
        if after_cut:
            assert whole >= 1, "cut %d: no renamed file survived, not even the one synced " \
                "before it:\n%s" % (after_cut, vm.text()[-4000:])
        return whole
    for boot in range(boots):
        vm = machine(card)
        whole = renamed_files(vm, after_cut=boot)       # boot 0: a new data partition
        checked += whole if boot else 0
        vm.wait_for("=== torture: writing ===", timeout=600)
        time.sleep(rng.uniform(0.0, 6.0))
        vm.kill()
        text = vm.text()
        assert "data: cannot mount" not in text and "no data partition" not in text, text[-4000:]
        results.append((boot, time.monotonic() - vm.started, "e2fsck repaired" in text,
                        whole))
        print("TORTURE boot %d: cut after %.0f s; /data mounted%s; %d whole, 0 torn" % (
            boot + 1, results[-1][1], " (e2fsck -p repaired it)" if results[-1][2] else "",
            whole), flush=True)
        assert pi.digest(card, pi.ROOT_A) == root_before, "the root changed at boot %d" % boot
    # A last boot, powered off cleanly: the data partition then checks clean.
    vm = machine(card, append="PROBE_POWEROFF=1")
    checked += renamed_files(vm, after_cut=boots)      # the files of the last cut
    assert_all_up(settled(vm))
    vm.finish(300)
    assert checked >= boots, "%d renamed files checked after %d cuts" % (checked, boots)
    code, out = pi.fsck(card, str(tmp_path))
    assert code == 0, out
    assert pi.digest(card, pi.ROOT_A) == root_before
    repairs = sum(1 for r in results if r[2])
    line = ("TORTURE %d power cuts during writes (seed %d): every next boot mounted /data "
            "(its own e2fsck -p repaired it on %d), the root unchanged, no renamed file torn "
            "(%d checked after the cuts, up to %d at one boot), e2fsck -fn clean after the "
            "last; QEMU start -> cut %.0f-%.0f s"
            % (boots, seed, repairs, checked, max(r[3] for r in results),
               min(r[1] for r in results), max(r[1] for r in results)))
    print(line)
    os.makedirs(os.path.join(ROOT, "build", "tmp", "image"), exist_ok=True)
    with open(os.path.join(ROOT, "build", "tmp", "image", "torture.txt"), "w") as f:
        f.write(line + "\n")


def test_a_paused_emulator_is_told_as_stalled_not_waited_for(image, tmp_path):
    """The guard of every raspi0 wait (pi_image.EmulatorStalled) on real QEMU: a guest that
    reached its getty and is then paused (the monitor's stop: QEMU idles, as when raspi0
    stalls by itself) ends the wait within the stall's bound, not at the wait's timeout."""
    card = pi.card(tmp_path)
    vm = pi.CardVM(tmp_path / "vm", card).start()
    try:
        vm.wait_for(" login:", timeout=600)
        vm.monitor_answer("stop")
        vm.STALL_S, vm.STALL_WINDOW = 30, 20
        began = time.monotonic()
        with pytest.raises(pi.EmulatorStalled, match="QEMU raspi0 stalled"):
            vm.wait_for("never printed", timeout=600)
        assert time.monotonic() - began < 90
    finally:
        vm.kill()
