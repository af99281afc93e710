"""Issue 21's server tier, timed: the same Debian 12 server root booted by schema-init
and by systemd, QEMU start -> every daemon answering.

    python bench/debian_servers_bench.py [--boots 1] [--bound 300]
        [--out bench/REPORT-debian-servers.md] [--json bench/results/debian-servers.json]
        [--source TEXT]      (what the binary was built from, for the report)
    python bench/debian_servers_bench.py --from-json   (the report again from the json)

Roots: build/mkdebian.sh FLAVOUR=servers (sysvinit-core's root, booted with
init=/usr/sbin/schema-init, the daemons' systemd units imported) and FLAVOUR=servers-systemd
(systemd, systemd-sysv; init=/lib/systemd/systemd); both with postgresql, mariadb-server,
redis-server, nginx, postfix, tor, nftables and schema-init's .deb. Each boot gets a fresh
disk, the host's kernel and initramfs-tools initrd, 1024 MB, QEMU TCG (emulated: the
figures are many times a real machine's), 2 host cores shared; boots alternate between
the two inits.

Measured per boot: QEMU start -> sshd runs a command; then, polled over SSH (one round
trip runs every probe of tests/test_debian_servers.py at once: psql, mysqladmin ping,
redis-cli ping, HTTP 200 on 80, postfix's banner on 25, tor's SOCKS5 answer on 9050,
nft's table; a second between round trips), the first poll each answered in, at the
guest's uptime when that probe answered put on the host's clock (so within one poll,
a few seconds under TCG, of when it began to answer); "all ports" is the last of the
daemons' (nft's table apart); a daemon not answering within --bound has no time and
the boot no "all ports". Then `poweroff` over SSH -> QEMU exits.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))

import test_debian_servers as servers  # noqa: E402

ORDER = ("schema-init", "systemd")
NAMES = sorted(servers.PROBES) + ["nft"]


def boot_once(directory, init, bound):
    v = servers.boot(directory, init)
    first = {}
    result = {"ssh": None, "first": first, "all": None, "poweroff": None}
    try:
        result["ssh"] = v.wait_ssh(bound)
        while time.monotonic() - v.started < bound:
            for name, at in servers.answering(v).items():
                first.setdefault(name, round(at, 1))
            if set(NAMES) <= set(first):
                break
            time.sleep(1)
        if set(servers.PROBES) <= set(first):
            result["all"] = max(first[name] for name in servers.PROBES)
        started = time.monotonic()
        v.ssh("poweroff")
        v.finish(600)
        result["poweroff"] = round(time.monotonic() - started, 1)
    finally:
        v.kill()
    result["ssh"] = result["ssh"] and round(result["ssh"], 1)
    return result


def median(values):
    values = [x for x in values if x is not None]
    return statistics.median(values) if values else None


def seconds(x):
    return "%.1f" % x if x is not None else "--"


def report(args, runs):
    med = {init: {"ssh": median(r["ssh"] for r in rs),
                  "all": median(r["all"] for r in rs) if all(r["all"] is not None
                                                             for r in rs) else None,
                  "poweroff": median(r["poweroff"] for r in rs),
                  "first": {n: median(r["first"].get(n) for r in rs)
                            if all(n in r["first"] for r in rs) else None for n in NAMES}}
           for init, rs in runs.items()}
    ratio = (med["schema-init"]["all"] / med["systemd"]["all"]
             if med["schema-init"]["all"] and med["systemd"]["all"] else None)
    lines = [
        "# Debian 12 servers: schema-init against systemd, boot to every port",
        "",
        "`python bench/debian_servers_bench.py --boots %d --bound %d` (%s, make "
        "test-debian-servers). One root each (build/mkdebian.sh FLAVOUR=servers / "
        "servers-systemd): debootstrap minbase + udev, dbus, openssh-server, cron, rsyslog, "
        "ifupdown + postgresql, mariadb-server, redis-server, nginx, postfix, tor, nftables "
        "and schema-init's .deb; schema-init boots sysvinit-core's root importing the "
        "daemons' own units, systemd the systemd-sysv root. Host kernel and initramfs-tools "
        "initrd, QEMU TCG (emulated, not a real machine's speed), 1024 MB, 2 host cores "
        "shared. Seconds from QEMU's start until each answered, as the first SSH poll "
        "that saw it stamped it (median of %d boot(s) each, alternating; -- = not within "
        "%d s)." % (args.boots, args.bound, args.date, args.boots, args.bound),
        "",
        "schema-init: %s." % args.binary,
        "",
        "| init | sshd | " + " | ".join(NAMES) + " | all ports | poweroff -> QEMU exit |",
        "|---|---|" + "---|" * len(NAMES) + "---|---|",
    ]
    for init in ORDER:
        m = med[init]
        lines.append("| %s | %s | %s | **%s** | %s |" % (
            init, seconds(m["ssh"]), " | ".join(seconds(m["first"][n]) for n in NAMES),
            seconds(m["all"]), seconds(m["poweroff"])))
    lines.append("")
    if ratio is not None:
        lines.append("Boot to every port, schema-init / systemd: **%.2f**." % ratio)
    else:
        missing = sorted(n for n in servers.PROBES if med["schema-init"]["first"][n] is None)
        lines.append("Boot to every port, schema-init / systemd: none: %s" % (
            "schema-init's boots did not reach every port within %d s (missing: %s)" % (
                args.bound, ", ".join(missing)) if missing or med["schema-init"]["all"] is None
            else "systemd's boots did not reach every port within %d s" % args.bound))
    lines += ["", "Every boot (all ports, s):", ""]
    for init in ORDER:
        lines.append("- %s: %s" % (init, ", ".join(seconds(r["all"]) for r in runs[init])))
    lines.append("")
    return "\n".join(lines), med, ratio


def main(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument("--boots", type=int, default=1)
    parser.add_argument("--bound", type=int, default=int(servers.BOOT_BOUND))
    parser.add_argument("--out", default=os.path.join(ROOT, "bench",
                                                      "REPORT-debian-servers.md"))
    parser.add_argument("--json", default=os.path.join(ROOT, "bench", "results",
                                                       "debian-servers.json"))
    parser.add_argument("--source", help="what the binary was built from (in the report)")
    parser.add_argument("--from-json", action="store_true",
                        help="write the report again from --json's runs, booting nothing")
    args = parser.parse_args(argv)
    if args.from_json:
        with open(args.json) as f:
            saved = json.load(f)
        runs = saved["runs"]
        args.boots, args.bound, args.date = saved["boots"], saved["bound"], saved["date"]
        args.binary = saved["binary"]
    else:
        binary = os.environ.get("SCHEMA_INIT_BIN",
                                os.path.join(ROOT, "build", "out", "schema-init"))
        args.date = time.strftime("%Y-%m-%d")
        args.binary = "%s of %s%s" % (
            os.path.relpath(binary, ROOT) if binary.startswith(ROOT) else binary,
            time.strftime("%Y-%m-%d %H:%M", time.localtime(os.path.getmtime(binary))),
            ", built from " + args.source if args.source else "")
        runs = {init: [] for init in ORDER}
        for i in range(args.boots):
            for init in (ORDER if i % 2 == 0 else ORDER[::-1]):
                with tempfile.TemporaryDirectory() as tmp:
                    runs[init].append(boot_once(tmp, init, args.bound))
                print(init, json.dumps(runs[init][-1]), flush=True)
    text, med, ratio = report(args, runs)
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump({"date": args.date, "boots": args.boots, "bound": args.bound,
                   "binary": args.binary, "emulation": "QEMU TCG, 1024 MB",
                   "runs": runs, "median": med, "ratio_all_ports": ratio}, f, indent=1)
        f.write("\n")
    with open(args.out, "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main(sys.argv[1:])
