"""A stock Debian 12 booted by schema-init and by Debian's sysvinit, on the same image.

    python bench/debian_boot_bench.py [--boots 3] [--out bench/REPORT-debian.md]
    python bench/debian_boot_bench.py --flavour systemd [--out bench/REPORT-debian-systemd.md]

Each boot gets a fresh disk from build/mkdebian.sh (the same root: sysvinit-core is
installed in it, schema-init is the overlay), the host's kernel and initramfs-tools
initrd, 512 MB, QEMU TCG (tests/debian_vm.py).  Measured: QEMU start until sshd runs a
command over the forwarded port (polled every second: resolution ~1 s), and, after the
boot, PID 1's smaps_rollup and the machine's used memory (MemTotal - MemAvailable).
Boots alternate between the two inits so drift on this shared machine hits both.
After each schema-init boot, also: how long rsyslogd killed with SIGKILL takes to be
FUNDAMENTAL again (a new pid, seen over SSH: each round trip ~0.5 s of it), and the
memory of schema-powerkey (the C helper) -- the figures tests/test_debian.py no longer
holds to a budget.
"""

import argparse
import os
import re
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))

import debian_vm  # noqa: E402

INITS = {"sysvinit": (("schema-init", "/usr/sbin/schema-init"), ("sysvinit", "/sbin/init")),
         "systemd": (("schema-init", "/usr/sbin/schema-init"),
                     ("systemd", "/lib/systemd/systemd"))}


def service_pid(v, name):
    """(state, pid) of a service in `schema-ctl status`, or (None, 0)."""
    found = re.search(r"^  %s\s+pid=(\d+)\s+state=(\S+)" % re.escape(name),
                      v.ssh("schema-ctl status").stdout, re.M)
    return (found.group(2), int(found.group(1))) if found else (None, 0)


def back_after_kill(v, name="rsyslog", limit=60):
    """Seconds from `kill -9` of the service's process until it is FUNDAMENTAL again
    with a new pid (None: not within LIMIT)."""
    _, old = service_pid(v, name)
    started = time.monotonic()
    v.ssh("kill -9 %d" % old)
    while time.monotonic() - started < limit:
        state, pid = service_pid(v, name)
        if state == "FUNDAMENTAL" and pid not in (0, old):
            return time.monotonic() - started
        time.sleep(0.2)
    return None


def boot_once(tmp, init):
    v = debian_vm.DebianVM(tmp, init=init).start()
    extra = {}
    try:
        to_ssh = v.wait_ssh(300)
        time.sleep(10)                                   # let the boot settle
        rollup = v.ssh("cat /proc/1/smaps_rollup").stdout
        meminfo = v.ssh("cat /proc/meminfo").stdout
        if "schema-init" in init:
            status = v.ssh("cat /proc/$(pidof schema-powerkey)/status").stdout
            extra = {"powerkey_" + k.lower(): int(n) for k, n in re.findall(
                r"^(VmRSS|RssAnon):\s+(\d+) kB", status, re.M)}
            extra["rsyslog_back"] = back_after_kill(v)
        v.ssh("poweroff")
        v.finish(180)
    finally:
        v.kill()
    pid1 = {k: int(n) for k, n in re.findall(r"^(Rss|Pss|Private_Dirty):\s+(\d+) kB",
                                               rollup, re.M)}
    mem = {k: int(n) for k, n in re.findall(r"^(MemTotal|MemAvailable):\s+(\d+) kB",
                                             meminfo, re.M)}
    return dict({"ssh": to_ssh, "used": (mem["MemTotal"] - mem["MemAvailable"]) / 1024.0,
                 "rss": pid1["Rss"] / 1024.0, "pd": pid1["Private_Dirty"] / 1024.0}, **extra)


def main(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument("--boots", type=int, default=3)
    parser.add_argument("--flavour", choices=sorted(INITS), default="sysvinit")
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    args.out = args.out or os.path.join(ROOT, "bench", "REPORT-debian%s.md" % (
        "" if args.flavour == "sysvinit" else "-" + args.flavour))
    os.environ["FLAVOUR"] = args.flavour             # build/mkdebian.sh's root
    inits = INITS[args.flavour]
    other = inits[1][0]
    results = {name: [] for name, _ in inits}
    for i in range(args.boots):
        for name, init in (inits if i % 2 == 0 else inits[::-1]):
            with tempfile.TemporaryDirectory() as tmp:
                results[name].append(boot_once(tmp, init))
                print(name, results[name][-1], flush=True)
    median = {name: {k: statistics.median(r[k] for r in runs if r.get(k) is not None)
                     for k in runs[0] if any(r.get(k) is not None for r in runs)}
              for name, runs in results.items()}
    ratio = median["schema-init"]["ssh"] / median[other]["ssh"]
    lines = [
        "# A stock Debian 12: schema-init against Debian's %s" % other,
        "",
        "`python bench/debian_boot_bench.py --boots %d --flavour %s` (%s). Same image "
        "(debootstrap minbase + udev, dbus, openssh-server, cron, rsyslog, ifupdown, %s; "
        "schema-init's .deb), " % (args.boots, args.flavour, time.strftime("%Y-%m-%d"),
                                   "sysvinit-core" if other == "sysvinit" else
                                   "systemd, systemd-sysv") +
        "the host's kernel and initramfs-tools initrd, QEMU TCG, 512 MB, 2 host cores "
        "shared. Medians of %d boots each, alternating." % args.boots,
        "",
        "| init | QEMU start -> sshd answers (s) | PID 1 Rss (MB) | PID 1 Private_Dirty (MB) "
        "| machine's used memory (MB) |",
        "|---|---|---|---|---|",
    ]
    for name, _ in inits:
        m = median[name]
        lines.append("| %s | %.1f | %.1f | %.2f | %.1f |" % (name, m["ssh"], m["rss"], m["pd"],
                                                           m["used"]))
    lines += ["", "Boot to sshd, schema-init / %s: **%.2f**." % (other, ratio), ""]
    m = median["schema-init"]
    if "rsyslog_back" in m:
        lines += ["rsyslogd killed with SIGKILL -> FUNDAMENTAL again with a new pid, seen "
                  "over SSH (median): %.1f s (%d of %d came back within 60 s)." % (
                      m["rsyslog_back"], sum(1 for r in results["schema-init"]
                                             if r.get("rsyslog_back") is not None),
                      len(results["schema-init"])), ""]
    if "powerkey_vmrss" in m:
        lines += ["schema-powerkey (the C helper): VmRSS %d kB, RssAnon %d kB (median)." % (
            m["powerkey_vmrss"], m["powerkey_rssanon"]), ""]
    lines += ["Every boot:", ""]
    for name, runs in results.items():
        lines.append("- %s: %s" % (name, ", ".join("%.1f s" % r["ssh"] for r in runs)))
    lines.append("")
    with open(args.out, "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1:])
