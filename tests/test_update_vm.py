"""Issue 23 in QEMU raspi0: the A/B card updated for real, with the firmware played by
the harness (tests/pi_image.py: autoboot.txt and the tryboot flag pick the boot
partition; /chosen/bootloader set as the firmware sets it).  The on-device half runs as
it would on the board: `schema-ctl update BUNDLE` in slot A, the trial boot of slot B
with PID 1's verdict, the initramfs's boot-attempt counter.

The bundle goes to the card's data partition (QEMU's raspi0 has no network: the HTTP
path is tested on the host, tests/test_update.py).  QEMU 7.2's raspi0 freezes when its
watchdog starts (SCHEMA_WATCHDOG=none), so where the board's watchdog would reset a hung
boot, the harness cuts the power after the watchdog's 15 s instead.

make test-update runs it all; make test-update-smoke the tests not marked update_long."""

import glob
import os
import random
import re
import shutil
import subprocess
import time

import pytest

import pi_image as pi
from conftest import ROOT

pytestmark = pytest.mark.image
WATCHDOG_S = 15
SLOT_DIR = os.path.join(ROOT, "build", "out", "%s-slot" % pi.BOARD)
KEYS = os.path.join(ROOT, "build", "keys")
# Printed on the console once the A/B verdict of this boot is in (committed), then the
# install into the other slot, asked for in slot A by /data/install-bundle (once), in
# either slot by /data/install-always (every boot): schema-update install, as the
# fleet's poll runs it (it reboots), its Rss and Private_Dirty read from
# /proc/PID/smaps_rollup every 0.5 s meanwhile; else a power-off when
# /data/poweroff-when-committed.
PROBE = r"""# test probe (tests/test_update_vm.py): the A/B state, the install, the power-off
exec=/bin/sh
args=-c
args=until schema-ctl status | grep -q '^A/B: .*commit=committed'; do sleep 2; done; echo "=== ab $(schema-ctl status | grep '^A/B:') | $(schema-update status | tr '\n' '|') | up $(cut -d' ' -f1 /proc/uptime) ===" > /dev/console; if { [ -e /data/install-bundle ] && schema-ctl status | grep -q '^A/B: slot=A'; } || [ -e /data/install-always ]; then rm -f /data/install-bundle; sync; s=$(cut -d' ' -f1 /proc/uptime); schema-update install /data/bundle.raucb > /dev/console 2>&1 & p=$!; last=; while kill -0 $p 2>/dev/null; do m=$(awk '/^Rss:/ { r = $2 } /^Private_Dirty:/ { d = $2 } END { if (r != "") print "rss " r " kB private_dirty " d " kB" }' /proc/$p/smaps_rollup 2>/dev/null); [ -n "$m" ] && [ "$m" != "$last" ] && last=$m && echo "=== update mem $m ===" > /dev/console; sleep 0.5; done; wait $p; echo "=== update exit $? after $(cut -d' ' -f1 /proc/uptime) (from $s) ===" > /dev/console; exit 0; fi; [ -e /data/poweroff-when-committed ] && schema-ctl poweroff; exit 0
oneshot=1
start_timeout_sec=0
dep=data
"""


def slot_images():
    boot, root = (os.path.join(SLOT_DIR, n) for n in ("boot.vfat", "root.img"))
    assert os.path.isfile(boot) and os.path.isfile(root), "make image BOARD=rpi-zero-w"
    return boot, root


def good_bundle():
    found = sorted(glob.glob(os.path.join(ROOT, "build", "out",
                                          "schema-init-%s-*.raucb" % pi.BOARD)),
                   key=os.path.getmtime)
    assert found, "make bundle BOARD=rpi-zero-w"
    return found[-1]


def bundle_of_root(tmp_path, name, change):
    """A bundle of the image's slot with CHANGE(root directory) made to its root."""
    boot, root = slot_images()
    tree = str(tmp_path / (name + "-root"))
    subprocess.run(["unsquashfs", "-q", "-d", tree, root], check=True)
    change(tree)
    content = tmp_path / (name + "-content")
    content.mkdir()
    shutil.copy(boot, content / "boot.vfat")
    subprocess.run(["mksquashfs", tree, str(content / "root.img"), "-noappend", "-quiet",
                    "-comp", "gzip", "-processors", "1"], check=True)
    version = "%s-%s" % (open(os.path.join(SLOT_DIR, "version")).read().strip(), name)
    (content / "manifest.raucm").write_text(
        "[update]\ncompatible=schema-init-%s\nversion=%s\n\n[bundle]\nformat=verity\n\n"
        "[image.boot]\nfilename=boot.vfat\n\n[image.rootfs]\nfilename=root.img\n"
        % (pi.BOARD, version))
    out = str(tmp_path / (name + ".raucb"))
    subprocess.run(["rauc", "bundle", "--cert", os.path.join(KEYS, "update.cert.pem"),
                    "--key", os.path.join(KEYS, "update.key.pem"),
                    "--mksquashfs-args=-noI -noD -noF -noX -no-fragments", str(content), out],
                   check=True, capture_output=True)
    shutil.rmtree(tree)
    return out


def crashing(tree):
    with open(os.path.join(tree, "etc/schema-init/services/crash.svc"), "w") as f:
        f.write("# a critical service of this slot that never runs\nexec=/bin/sh\nargs=-c\n"
                "args=echo crash: this slot cannot work; exit 3\ncritical=1\ndep=data\n")


def hanging(tree):
    init = os.path.join(tree, "usr/sbin/init")
    os.unlink(init)
    with open(init, "w") as f:
        f.write("#!/bin/sh\necho 'hang: an init that never gets anywhere' > /dev/console\n"
                "while :; do sleep 3600; done\n")
    os.chmod(init, 0o755)


def card_with_bundle(tmp_path, bundle, flag_name="install-bundle"):
    """A 1 GiB card of the image, its data partition grown (room for the bundle), the
    bundle, the probe and the flag asking for the install on it."""
    card = pi.card(tmp_path)
    for number in (pi.EXTENDED, pi.DATA):
        subprocess.run(["sfdisk", "-q", "--no-reread", "--no-tell-kernel", "-N", str(number),
                        card], input=", +\n", text=True, check=True)
    fs = pi.extract(card, pi.DATA, str(tmp_path / "data.ext4"))
    subprocess.run(["resize2fs", "-f", fs], check=True, capture_output=True)
    flag = tmp_path / "flag"
    flag.write_text("yes\n")
    # the big file first, right after the resize (debugfs writing it after e2fsck and
    # smaller writes left stale block bitmap checksums, and the file was lost)
    pi.debugfs(fs, "write %s /bundle.raucb" % bundle, "write %s /%s" % (flag, flag_name),
               "write %s /poweroff-when-committed" % flag, write=True)
    check = subprocess.run(["e2fsck", "-fn", fs], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout
    pi.put_back(card, pi.DATA, fs)
    os.unlink(fs)
    pi.add_services(card, {"probe.svc": PROBE}, str(tmp_path))
    fs = pi.extract(card, pi.DATA, str(tmp_path / "data.ext4"))
    listing = pi.debugfs(fs, "ls -l /").stdout
    assert "bundle.raucb" in listing and flag_name in listing, listing
    check = subprocess.run(["e2fsck", "-fn", fs], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout
    os.unlink(fs)
    return card


class Board:
    """The card booted again and again as the board would: after each end (a reboot, a
    power-off, a cut) the played firmware picks the next boot partition."""

    def __init__(self, tmp_path, card):
        self.tmp, self.card, self.boots = tmp_path, card, []
        self.tryboot = False

    def boot(self):
        vm = pi.CardVM(self.tmp / ("boot-%d" % len(self.boots)), self.card,
                       serial="00000000c0ffee23", tryboot=self.tryboot,
                       append="schema_trial.deadline=900")
        self.boots.append(vm)
        print("BOOT %d: partition %d (%s)" % (len(self.boots), vm.partition, vm.why), flush=True)
        return vm.start()

    def until_end(self, vm, timeout, hang_marker="hang: an init"):
        """Wait for QEMU to end (the guest rebooted or powered off); a boot that shows
        HANG_MARKER is cut WATCHDOG_S later, as the watchdog would.  An install that ended
        without its reboot fails the wait at once (the guest would idle until TIMEOUT).
        Returns the text."""
        deadline = time.monotonic() + timeout
        while vm.proc.poll() is None and time.monotonic() < deadline:
            text = vm.text()
            if re.search(r"=== update exit [1-9]", text):
                vm.kill()
                raise AssertionError("the install failed in boot %d:\n%s"
                                     % (len(self.boots), text[-5000:]))
            vm.check_stalled()
            if hang_marker in text:
                time.sleep(WATCHDOG_S)
                vm.kill()
                break
            time.sleep(1)
        if vm.proc.poll() is None:
            vm.kill()
            raise AssertionError("boot %d did not end within %d s:\n%s"
                                 % (len(self.boots), timeout, vm.text()[-5000:]))
        text = vm.text()
        command = pi.restart_command(text)
        self.tryboot = bool(command and "tryboot" in command)
        return text

    def kill_all(self):
        for vm in self.boots:
            vm.kill()


@pytest.fixture
def board_of(tmp_path):
    made = []

    def make(card):
        board = Board(tmp_path, card)
        made.append(board)
        return board
    yield make
    for board in made:
        board.kill_all()


def ab_line(text):
    found = re.findall(r"=== ab (.*?) ===", text)
    assert found, text[-5000:]
    return found[-1]


def test_a_good_bundle_installs_commits_and_the_next_plain_boot_runs_it(
        tmp_path, board_of):
    bundle = good_bundle()
    card = card_with_bundle(tmp_path, bundle)
    root_a = pi.digest(card, pi.ROOT_A)
    board = board_of(card)
    started = time.monotonic()
    text = board.until_end(board.boot(), 1800)           # slot A: install, then reboot
    assert "A/B: slot=A  commit=committed" in ab_line(text)
    assert "update: version" in text and "installed in slot B" in text, text[-5000:]
    install = re.search(r"installed in slot B in ([\d.]+) s", text).group(1)
    mem = [(int(r), int(d)) for r, d in re.findall(
        r"=== update mem rss (\d+) kB private_dirty (\d+) kB ===", text)]
    assert mem, text[-5000:]
    trial_start = time.monotonic()
    vm = board.boot()                                     # slot B, its trial
    assert vm.partition == 3
    text = board.until_end(vm, 1800)
    trial_qemu = time.monotonic() - trial_start
    assert "initramfs: trial boot 1 of 1 of slot B" in text, text[-5000:]
    # the helper's line (PID 1's own goes to dmesg once a getty has the console)
    assert "update: slot B committed" in text, text[-5000:]
    line = ab_line(text)
    assert "slot=B  commit=committed" in line and "record: committed slot B" in line, line
    trial_s = float(re.search(r"\| up ([\d.]+) ===", text).group(1))
    vm = board.boot()                                     # a plain boot: still B
    assert vm.partition == 3
    text = board.until_end(vm, 1800)
    assert "slot=B  commit=committed" in ab_line(text) and "trial boot" not in text
    assert pi.digest(card, pi.ROOT_A) == root_a
    print("UPDATE-VM good bundle (%d B): install %s s in the guest, schema-update's Rss at "
          "most %d kB, Private_Dirty at most %d kB (%d samples); trial boot to commit %.0f s "
          "of guest uptime (%.0f s of QEMU for its boot); whole case %.0f s"
          % (os.path.getsize(bundle), install, max(r for r, _ in mem),
             max(d for _, d in mem), len(mem), trial_s, trial_qemu,
             time.monotonic() - started))


@pytest.mark.update_long
def test_a_bundle_whose_critical_service_crashes_is_rolled_back_with_the_reason(
        tmp_path, board_of):
    bundle = bundle_of_root(tmp_path, "crash", crashing)
    card = card_with_bundle(tmp_path, bundle)
    board = board_of(card)
    text = board.until_end(board.boot(), 1800)
    assert "installed in slot B" in text, text[-5000:]
    vm = board.boot()
    assert vm.partition == 3
    started = vm.started                                 # QEMU of the trial boot started
    text = board.until_end(vm, 1800)
    # PID 1's line, or the helper's once a getty has the console (PID 1's goes to dmesg)
    assert re.search(r"(A/B|update): the trial of slot B failed:? \(?required service "
                     r"crash", text), text[-5000:]
    rollback = time.monotonic() - started
    vm = board.boot()
    assert vm.partition == 2                             # back on A
    text = board.until_end(vm, 1800)
    line = ab_line(text)
    assert "slot=A  commit=committed" in line and "last_trial=failed: required service " \
        "crash" in line, line
    print("UPDATE-VM crashing critical service: trial boot's QEMU start -> its reboot %.0f s; "
          "-> slot A up again with the reason shown (its power-off) %.0f s"
          % (rollback, time.monotonic() - started))


@pytest.mark.update_long
def test_a_bundle_that_hangs_the_boot_is_rolled_back_by_the_counter(tmp_path, board_of):
    bundle = bundle_of_root(tmp_path, "hang", hanging)
    card = card_with_bundle(tmp_path, bundle)
    board = board_of(card)
    text = board.until_end(board.boot(), 1800)
    assert "installed in slot B" in text, text[-5000:]
    vm = board.boot()
    started = vm.started                                # QEMU of the trial boot started
    text = board.until_end(vm, 900)                     # hangs: cut as the watchdog would
    assert "hang: an init" in text and "trial boot 1 of 1 of slot B" in text
    vm = board.boot()                                   # B again: its counter sends it back
    assert vm.partition == 3
    text = board.until_end(vm, 900)
    assert "booted 1 time(s) uncommitted: back to slot A" in text, text[-5000:]
    counter = time.monotonic() - started
    vm = board.boot()
    assert vm.partition == 2
    text = board.until_end(vm, 1800)
    line = ab_line(text)
    assert "last_trial=failed: the trial boot of slot B did not commit" in line, line
    print("UPDATE-VM hanging boot: trial boot's QEMU start -> the counter's reset on the "
          "boot after the cut (%d s watchdog stand-in) %.0f s; -> slot A up again with the "
          "reason shown (its power-off) %.0f s" % (WATCHDOG_S, counter,
                                                  time.monotonic() - started))


@pytest.mark.update_long
def test_power_cuts_during_install_and_trial_never_leave_a_card_that_boots_nothing(
        tmp_path, board_of):
    """UPDATE_VM_CUTS (30) cuts at random moments of the boots, the installs and the
    trial boots: whichever slot runs committed installs into the other at every boot
    (B into A too, as a device's second update does), so a boot lasts about 100 s of
    guest time (the trial, the commit, the install, the reboot) and the cut comes 5 to
    120 s after the kernel reached the initramfs.  After each cut the played firmware
    finds a bootable slot; then, uncut, a trial boot commits its slot."""
    cuts = int(os.environ.get("UPDATE_VM_CUTS", "30"))
    seed = int(os.environ.get("UPDATE_VM_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    print("power-cut seed", seed)
    card = card_with_bundle(tmp_path, good_bundle(), flag_name="install-always")
    board = board_of(card)
    seen, cut = {2: 0, 3: 0}, 0
    while cut < cuts:
        assert len(board.boots) < 3 * cuts, "boots end by themselves before every cut"
        number, why = pi.firmware_choice(card)
        assert number is not None, "after cut %d: %s" % (cut, why)
        seen[number] += 1
        vm = board.boot()
        deadline = time.monotonic() + rng.uniform(5, 120)
        while vm.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        ended = vm.proc.poll() is not None           # rebooted by itself before the cut
        vm.kill()
        board.tryboot = False
        cut += 0 if ended else 1
        print("%s: partition %d, after %.0f s" % (
            "ended by itself" if ended else "CUT %d" % cut, number,
            time.monotonic() - vm.started), flush=True)
    for _ in range(8):
        number, why = pi.firmware_choice(card, board.tryboot)
        assert number is not None, why
        text = board.until_end(board.boot(), 1800)
        found = re.search(r"update: slot ([AB]) committed", text)
        if found and "initramfs: trial boot 1 of 1 of slot %s" % found.group(1) in text and \
                "slot=%s  commit=committed" % found.group(1) in ab_line(text):
            break
    else:
        raise AssertionError("no trial boot committed its slot after the cuts")
    number, why = pi.firmware_choice(card, board.tryboot)
    assert number is not None, why
    print("UPDATE-VM %d power cuts (seed %d): booted A %d, B %d times; never nothing; then "
          "a trial of slot %s committed" % (cuts, seed, seen[2], seen[3], found.group(1)))
