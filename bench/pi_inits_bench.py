"""schema-init against systemd and sysvinit on the Raspberry Pi Zero W (QEMU raspi0):
`make bench BOARD=rpi-zero-w`.

    python bench/pi_inits_bench.py [--boots 3] [--idle 60] [--settle 20] [--inits a,b,...]
                                   [--results bench/results] [--no-readme]

Two cards of the same Debian 12 armel packages and the same kernel (linux-image-rpi, the
board's device tree with the emulator's watchdog fix, tests/pi_image.py):

- schema-init: the image users flash (build/out/schema-init-rpi-zero-w.img, `make
  image`), its own read-only root and its services;
- systemd and sysvinit: build/mkpiroot.sh's card, the image's Debian root (board.env's
  ROOT_PACKAGES) with systemd and sysvinit-core installed beside each other and the same
  daemons enabled by their packages, booted by Debian's initramfs-tools with `init=`.

Each card boots once first (first-boot work: host keys, the data partition, the
machine id), then every measured boot starts from a copy of that card. The probe
(distros/bench/pi/pi-bench-probe), a service of the init under test, waits for every
service (udev, chrony, dropbear, a getty on the serial port), lets the machine settle,
reads PID 1 and the machine's memory, counts PID 1's wake-ups while idle, prints all on
the serial console and powers off. The host times QEMU start -> every service ready and
the power-off (from the probe's last line to QEMU's exit). QEMU's raspi0 has no network
device: "QEMU -> SSH" is not measured on this board. Boots rotate through the inits, one
machine at a time. Emulated (TCG): the ratios to systemd are the result, not the seconds.

Results: bench/results/inits-rpi-zero-w-STAMP.{json,md,png} (the keys of inits_bench.py's
results, and "board": "rpi-zero-w"), bench/REPORT-inits-rpi-zero-w.md, README's table
between its `inits-table-rpi-zero-w` markers. Reports, never asserts.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "tests"), os.path.join(ROOT, "bench")]

import inits_bench  # noqa: E402
import pi_image as pi  # noqa: E402

BOARD = "rpi-zero-w"
INITS = {"schema-init": None, "systemd": "/lib/systemd/systemd", "sysvinit": "/sbin/init"}
# --before IMAGE: another image (an earlier build) booted in the same run as this init
BEFORE = "schema-init-before"
# The systemd card's command line: the image's (cmdline.txt) with its own root.
CMDLINE = "console=tty1 console=ttyS1,115200 root=/dev/mmcblk0 rootfstype=ext4 rw rootwait " \
          "panic=10 loglevel=4"
LOGS = os.path.join(ROOT, "build", "tmp", "bench-logs")
VALUE = re.compile(r"bench: (\w+)=(\S*)")


def progress(text):
    print("pi_inits_bench: %s" % text, flush=True)


class KernelCardVM(pi.CardVM):
    """QEMU raspi0 booting a card with a kernel, initrd and device tree given (FILES:
    vmlinuz, initrd, dtb), as the image's firmware would boot its own: the same emulator,
    watchdog fix and serial port, without the image's partitions."""

    # Debian's initramfs-tools and the inits, instead of ours
    USERSPACE = ("Loading, please wait", "Begin: ", "systemd[1]", "INIT: ")

    def __init__(self, tmp_path, card, files, append):
        self.setup(tmp_path, card)
        for name, source in zip(("vmlinuz", "initrd.img", "board.dtb"), files):
            shutil.copyfile(source, os.path.join(self.dir, name))
        self.dtb = os.path.join(self.dir, "board.dtb")
        pi.fix_watchdog(self.dtb)
        self.cmdline = CMDLINE
        self.append = "%s %s" % (CMDLINE, append)


def probe_service():
    """The probe as a service of the image (on its data partition, where an operator's
    own services go)."""
    return ("# benchmark probe (bench/pi_inits_bench.py)\nexec=/bin/sh\n"
            "args=/data/pi-bench-probe\noneshot=1\nstart_timeout_sec=0\ndep=data\n")


def image_card(source, card, work):
    """CARD: the image SOURCE on a 1 GiB card (QEMU's SD card size is a power of 2), with
    the probe and its service on the data partition."""
    if not os.path.exists(source):
        raise SystemExit("pi_inits_bench: no %s (make image BOARD=%s)" % (source, BOARD))
    subprocess.run(["cp", "--sparse=always", source, card], check=True)
    with open(card, "r+b") as f:
        f.truncate(1024 << 20)
    probe = os.path.join(ROOT, "distros", "bench", "pi", "pi-bench-probe")
    fs = pi.extract(card, pi.DATA, os.path.join(work, "data.ext4"))
    pi.debugfs(fs, "write %s pi-bench-probe" % probe, write=True)
    pi.put_back(card, pi.DATA, fs)
    os.unlink(fs)
    pi.add_services(card, {"probe.svc": probe_service()}, work)
    return card


def make_cards(work, before=None):
    """{"schema-init": card, "debian": card, and BEFORE's when given}; the Debian card's
    boot files beside it."""
    cards = {"schema-init": image_card(pi.IMAGE, os.path.join(work, "image.img"), work)}
    if before:
        cards[BEFORE] = image_card(before, os.path.join(work, "before.img"), work)
    debian = os.path.join(work, "debian.img")
    log = os.path.join(LOGS, "mkpiroot.log")
    progress("the Debian card (build/mkpiroot.sh; the first time 10-20 min; log: %s)" % log)
    with open(log, "w") as out:
        done = subprocess.run(
            [os.path.join(ROOT, "build", "mkpiroot.sh"), debian, "1024"],
            env=dict(os.environ, CUSTOMIZE=os.path.join(ROOT, "distros", "bench", "pi",
                                                         "configure.sh")),
            stdout=out, stderr=subprocess.STDOUT, timeout=3600)
    if done.returncode != 0:
        with open(log, errors="replace") as f:
            sys.stderr.write("".join(f.readlines()[-30:]))
        raise SystemExit("pi_inits_bench: mkpiroot.sh failed (%d)" % done.returncode)
    return dict(cards, debian=debian)


def machine(init, card, base, work, append):
    """INIT's machine booting CARD, a copy of BASE (the Debian card's boot files are
    beside BASE)."""
    if init in ("schema-init", BEFORE):
        return pi.CardVM(work, card, append=append)
    files = (base + ".vmlinuz", base + ".initrd", base + ".dtb")
    return KernelCardVM(work, card, files, "init=%s %s" % (INITS[init], append))


def boot(init, base, work, settle, idle, warm=False):
    """One boot of INIT from a copy of the card BASE (WARM: the card's first boot, kept:
    BASE itself). The figures of inits_bench.py's results that this board has."""
    os.makedirs(work, exist_ok=True)
    card = base if warm else os.path.join(work, "card.img")
    if not warm:
        subprocess.run(["cp", "--sparse=always", base, card], check=True)
    append = "bench.init=%s bench.settle=%d bench.idle=%d%s" % (
        "schema-init" if init == BEFORE else init, settle, idle,
        " bench.mode=warm" if warm else "")
    vm = machine(init, card, base, os.path.join(work, "vm"), append).start()
    try:
        vm.wait_re(r"bench: ready_uptime=", 900)
        ready_s = time.monotonic() - vm.started
        vm.wait_re(r"bench: end$", settle + idle + 600)
        ended = time.monotonic()
        vm.finish(300)
        poweroff_s = time.monotonic() - ended
    finally:
        vm.kill()
        with open(vm.console_path, "rb") as f:
            console = f.read().decode("utf-8", "replace").replace("\r", "")
        with open(os.path.join(LOGS, "pi-%s-console.log" % init), "w") as f:
            f.write(console)
    values = VALUE.findall(console)
    if warm:
        return {"qemu_to_ready_s": ready_s}
    # the figures of the x86 benchmark's probe, from the same KEY=VALUE lines
    run = inits_bench.parse_probe("".join("%s=%s\n" % pair for pair in values))
    run.update({
        "qemu_to_ready_s": ready_s,
        "poweroff_s": poweroff_s,
        "chain": [line[len("chain: "):] for line in console.splitlines()
                  if line.startswith("chain: ")],
    })
    return run


def stubborn(step, what):
    """STEP(), once more if QEMU raspi0 stalled (tests/pi_image.py: the emulator, not
    the card, failed)."""
    try:
        return step()
    except pi.EmulatorStalled as error:
        progress("%s: QEMU raspi0 stalled (%s); once more" % (what, str(error).split("\n")[0]))
        return step()


def boot_all(cards, names, args, work):
    runs = {name: [] for name in names}
    card_of = {name: cards.get(name, cards["debian"]) for name in names}
    warmed = set()
    for name in names if args.first_boot else ():
        if card_of[name] in warmed:
            continue
        progress("first boot of %s's card" % name)
        first = stubborn(lambda: boot(name, card_of[name], os.path.join(work, "warm-" + name),
                                      args.settle, args.idle, warm=True), name + " first boot")
        progress("first boot: every service ready %.0f s after QEMU's start"
                 % first["qemu_to_ready_s"])
        warmed.add(card_of[name])
    total = args.boots * len(names)
    with open(os.path.join(LOGS, "pi-boots.jsonl"), "w") as log:
        for i in range(args.boots):
            for name in names[i % len(names):] + names[:i % len(names)]:
                where = os.path.join(work, "%s-%d" % (name, i))
                run = stubborn(lambda: boot(name, card_of[name], where, args.settle,
                                            args.idle), "%s boot %d" % (name, i + 1))
                shutil.rmtree(where, ignore_errors=True)
                runs[name].append(run)
                log.write("%s %s\n" % (name, json.dumps(run)))
                log.flush()
                progress("boot %d/%d: %s ready %.1f s after QEMU's start (kernel -> ready "
                         "%.1f s), PID 1 Private_Dirty %d kB" % (
                             sum(map(len, runs.values())), total, name,
                             run["qemu_to_ready_s"], run["boot_to_ready_s"],
                             run["pid1_private_dirty_kb"]))
    return runs


COLUMNS = (("PID 1 Rss (kB)", "pid1_rss_kb", 0, 1.0), ("Pss", "pid1_pss_kb", 0, 1.0),
           ("Private_Dirty", "pid1_private_dirty_kb", 0, 1.0),
           ("threads", "pid1_threads", 0, 1.0), ("wake-ups/min", "wakeups_per_min", 1, 1.0),
           ("kernel -> ready (s)", "boot_to_ready_s", 1, 1.0),
           ("QEMU -> ready (s)", "qemu_to_ready_s", 1, 1.0),
           ("power-off (s)", "poweroff_s", 1, 1.0),
           ("used memory (MB)", "mem_used_kb", 1, 1024.0), ("processes", "processes", 0, 1.0),
           ("PID 1 binary (kB)", "pid1_binary_bytes", 0, 1024.0))
RATIOS = (("Rss", "pid1_rss_kb"), ("Private_Dirty", "pid1_private_dirty_kb"),
          ("used memory", "mem_used_kb"), ("kernel -> ready", "boot_to_ready_s"),
          ("QEMU -> ready", "qemu_to_ready_s"), ("power-off", "poweroff_s"))


def markdown(result, command):
    inits = result["inits"]
    base = inits.get("systemd", {})
    lines = [
        "# schema-init, systemd and sysvinit on the Pi Zero W (QEMU raspi0)", "",
        "`%s` on %s (%s). QEMU raspi0 (ARM1176, 512 MB, TCG), Debian's kernel `%s` "
        "(linux-image-rpi) on both cards: schema-init on the image users flash, its own "
        "root and services; systemd and sysvinit on the same Debian 12 armel packages "
        "with the same daemons enabled by their packages (build/mkpiroot.sh). Each card's "
        "first boot is done before; medians (min-max) of %d boots each; PID 1 measured "
        "after a %d s settle, wake-ups over %d s idle. Every service ready: udev, chrony, "
        "dropbear, a getty on the serial port. raspi0 has no network device in QEMU: no "
        "SSH figure. How: the docstring of bench/pi_inits_bench.py." % (
            command, result["date"], result["host"], result["kernel"], result["boots"],
            result["settle_s"], result["idle_s"]), "",
        "| init | " + " | ".join(c[0] for c in COLUMNS) + " |",
        "|---|" + "---|" * len(COLUMNS)]
    for name, f in inits.items():
        lines.append("| %s | %s |" % (name, " | ".join(
            inits_bench.fmt(f.get(key), digits, scale) for _, key, digits, scale in COLUMNS)))
    if base:
        lines += ["", "Ratios to systemd (medians; below 1 is less):", "",
                  "| init | " + " | ".join(r[0] for r in RATIOS) + " |",
                  "|---|" + "---|" * len(RATIOS)]
        for name, f in inits.items():
            def ratio(key):
                if not f.get(key) or not base.get(key) or not base[key]["median"]:
                    return "-"
                return "%.2f" % (f[key]["median"] / base[key]["median"])
            lines.append("| %s | %s |" % (name, " | ".join(ratio(k) for _, k in RATIOS)))
    lines += ["", "Every boot:", ""]
    for name, runs in result["runs"].items():
        lines.append("- %s: %s" % (name, "; ".join(
            "ready %.1f s after QEMU's start, Private_Dirty %d kB, %.1f wake-ups/min, "
            "power-off %.1f s" % (r["qemu_to_ready_s"], r["pid1_private_dirty_kb"],
                                  r["wakeups_per_min"], r["poweroff_s"]) for r in runs)))
    lines += inits_bench.critical_chains(result)
    return "\n".join(lines) + "\n"


def main(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument("--boots", type=int, default=3)
    parser.add_argument("--idle", type=int, default=60)
    parser.add_argument("--settle", type=int, default=20)
    parser.add_argument("--inits", default=",".join(INITS))
    parser.add_argument("--no-first-boot", dest="first_boot", action="store_false",
                        help="measure each card's first boot (the smoke: half the boots)")
    parser.add_argument("--before", metavar="IMAGE",
                        help="an earlier image, booted in the same run as %s" % BEFORE)
    parser.add_argument("--results", default=os.path.join(ROOT, "bench", "results"))
    parser.add_argument("--report", default=os.path.join(ROOT, "bench",
                                                         "REPORT-inits-rpi-zero-w.md"))
    parser.add_argument("--no-readme", action="store_true")
    args = parser.parse_args(argv)
    names = [n for n in args.inits.split(",") if n]
    if args.before:
        names.insert(1, BEFORE)
    unknown = set(names) - set(INITS) - {BEFORE}
    if unknown:
        parser.error("unknown init(s): %s (known: %s)" % (", ".join(sorted(unknown)),
                                                          ", ".join(INITS)))
    os.makedirs(LOGS, exist_ok=True)
    command = " ".join(["python bench/pi_inits_bench.py"] + list(argv))
    with tempfile.TemporaryDirectory(prefix="pi-bench-", dir=os.path.join(ROOT, "build",
                                                                          "tmp")) as work:
        cards = make_cards(work, args.before)
        with open(cards["debian"] + ".kver") as f:
            kernel = f.read().strip()
        runs = boot_all(cards, names, args, work)
    result = {
        "board": BOARD,
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "host": "%s, %d CPUs" % (os.uname().machine, os.cpu_count()),
        "kernel": kernel,
        "boots": args.boots, "idle_s": args.idle, "settle_s": args.settle,
        "inits": {name: inits_bench.summary(runs[name]) for name in names},
        "runs": runs,
    }
    os.makedirs(args.results, exist_ok=True)
    stem = os.path.join(args.results, "inits-%s-%s" % (BOARD, time.strftime("%Y%m%d-%H%M%S")))
    inits_bench.publish(result, markdown(result, command), stem, args.report,
                        None if args.no_readme else "inits-table-" + BOARD)


if __name__ == "__main__":
    main(sys.argv[1:])
