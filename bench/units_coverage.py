"""How much of Debian's own systemd units schema-init's importer maps cleanly.

    .venv/bin/python bench/units_coverage.py [--root DIR] [--download] [--out FILE]

Two measurements, written to bench/REPORT-units.md:

* enabled: the units a Debian root's links enable (what ``schema-init --units`` imports
  at boot: the walk from default.target and sysinit.target through the ``*.wants``),
  in the Debian tier's root (build/tmp/debian/root, made by build/mkdebian.sh) or
  ``--root DIR``; once with no .svc directory and once beside services/debian
  (whose .svc files win by name);
* packages (``--download``): every .service/.socket/.timer of a standard install's
  packages, fetched with ``apt-get download`` into a temporary directory and unpacked
  with ``dpkg -x`` (nothing is installed on this machine).

A unit maps cleanly when no line of it (or of its drop-ins) was dropped.
"""

import argparse
import collections
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from schema_init.core import config  # noqa: E402
from schema_init.pid1 import loader
from schema_init.units import units

# Count every dropped line: status shows at most 20 a unit (the .svc files list them all).
units.capped = lambda diags, path: diags

SANDBOXING = "sandboxing:"
DEBIAN_ROOT = os.path.join(ROOT, "build", "tmp", "debian", "root")
# A standard Debian 12 install with SSH (tasksel's "standard" and "ssh-server" pick
# these among others): the packages that ship systemd units.
PACKAGES = ("systemd", "udev", "dbus-daemon", "dbus-system-bus-common", "openssh-server",
            "rsyslog", "cron", "util-linux", "e2fsprogs", "apt", "logrotate", "man-db",
            "dpkg", "ifupdown", "procps", "kmod", "systemd-timesyncd", "bind9-host",
            "exim4-base", "exim4-daemon-light", "apparmor", "console-setup", "keyboard-configuration",
            "initramfs-tools", "lvm2", "mdadm", "nftables", "openssh-client", "sudo",
            "unattended-upgrades", "anacron", "at", "chrony", "isc-dhcp-client", "pciutils",
            "smartmontools", "nfs-common", "rpcbind", "avahi-daemon", "cups-daemon", "plocate")


def measure(dirs, root="", svc_dir=None, everything=False, at_boot=False):
    svc_names = ()
    if svc_dir:
        loaded = loader.load_directory(svc_dir)
        svc_names = [s.name for s in loaded.services] + [g.name for g in loaded.groups]
    started = time.perf_counter()
    # at boot, a daemon's path conditions are checked against the machine (its root here)
    test = (lambda flag, path: loader.path_test(flag, root + path)) if at_boot else None
    result = units.import_units(loader.UnitDirs(dirs, root), svc_names, everything=everything,
                                path_test=test,
                                condition_test=loader.condition_test if at_boot else None)
    specs, diagnostics = units.services_from(result)
    elapsed = time.perf_counter() - started
    unit_files = []
    owner = {}
    for generated in result.generated:
        if generated.template_of is not None:
            continue
        for source in generated.sources:
            if source.endswith(".conf"):
                continue
            unit_files.append(source)
        for source in generated.sources:
            owner[source] = [s for s in generated.sources if not s.endswith(".conf")][0]
    dropped_in = collections.defaultdict(list)
    keys = collections.Counter()
    key_units = collections.defaultdict(set)
    for diag in diagnostics:
        if diag.severity == config.WARNING:
            dropped_in[diag.path].append(diag)
            keys[diag.key or "(line)"] += 1
            key_units[diag.key or "(line)"].add(diag.path)
    failed = [d for d in diagnostics if d.severity == config.ERROR]
    reasons = collections.Counter(d.message for d in diagnostics
                                  if d.severity == config.WARNING)
    def drops_of(u):
        return [d for p, ds in dropped_in.items() if p == u or owner.get(p) == u for d in ds]

    clean = [u for u in unit_files if not drops_of(u)]
    # the service runs as systemd would run it, only less confined
    confined_only = [u for u in unit_files if drops_of(u) and
                     all(d.message.startswith(SANDBOXING) for d in drops_of(u))]
    return {"units": unit_files, "clean": clean, "confined_only": confined_only,
            "sandbox": result.sandbox,
            "failed": failed, "keys": keys, "reasons": reasons,
            "key_units": key_units, "skipped": result.skipped,
            "services": len([s for s in specs]), "elapsed": elapsed,
            "dropped_in": dropped_in}


def download(packages, into):
    debs = os.path.join(into, "debs")
    tree = os.path.join(into, "root")
    os.makedirs(debs)
    os.makedirs(tree)
    fetched = []
    for name in packages:        # one at a time: a name this release lacks is skipped
        run = subprocess.run(["apt-get", "download", name], cwd=debs, capture_output=True,
                             text=True)
        if run.returncode == 0:
            fetched.append(name)
    versions = []
    for deb in sorted(os.listdir(debs)):
        subprocess.run(["dpkg", "-x", os.path.join(debs, deb), tree], check=True)
        fields = subprocess.run(["dpkg-deb", "-f", os.path.join(debs, deb), "Package",
                                 "Version"], capture_output=True, text=True).stdout.split()
        versions.append("%s %s" % (fields[1], fields[3]) if len(fields) >= 4 else deb)
    return tree, versions


def section(title, stats, note):
    units_n, clean_n = len(stats["units"]), len(stats["clean"])
    lines = ["## %s" % title, "", note, "",
             "| | count |", "|---|---|",
             "| unit files imported (services, sockets, timers) | %d |" % units_n,
             "| mapped cleanly (no line dropped) | %d (%.0f%%) |"
             % (clean_n, 100.0 * clean_n / units_n if units_n else 0),
             "| with dropped lines | %d |" % (units_n - clean_n),
             "| of which only sandboxing lines (it runs as under systemd, less confined) | %d |"
             % len(stats["confined_only"]),
             "| sandboxing lines not applied (services with any) | %d (%d) |"
             % (sum(stats["sandbox"].values()), len(stats["sandbox"])),
             "| not imported (error: no ExecStart=, a bad command, a required unit gone) | %d |" % len(stats["failed"]),
             "| skipped on purpose (a .svc wins, masked, early boot, systemd's own) | %d |"
             % len(stats["skipped"]),
             "| services made (.svc specs) | %d |" % stats["services"],
             "| import time | %.1f ms |" % (stats["elapsed"] * 1000), ""]
    if stats["keys"]:
        lines += ["Keys dropped most (lines; units):", "", "| key | lines | units |",
                  "|---|---|---|"]
        for key, count in stats["keys"].most_common(15):
            lines.append("| `%s` | %d | %d |" % (key, count, len(stats["key_units"][key])))
        lines.append("")
    if stats["reasons"]:
        lines += ["Why lines were dropped (lines):", "", "| reason | lines |", "|---|---|"]
        for reason, count in stats["reasons"].most_common(12):
            lines.append("| %s | %d |" % (reason.replace("|", "\\|"), count))
        lines.append("")
    clean = sorted(os.path.basename(u) for u in stats["clean"])
    if clean:
        lines += ["Clean: %s." % ", ".join(clean), ""]
    if stats["failed"]:
        lines += ["Not imported:", ""] + ["- `%s`" % d.format() for d in stats["failed"]] + [""]
    if stats["skipped"]:
        lines += ["Skipped: %s." % "; ".join("%s (%s)" % s for s in stats["skipped"]), ""]
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=DEBIAN_ROOT, help="a Debian root (default: the "
                        "Debian tier's, build/tmp/debian/root)")
    parser.add_argument("--download", action="store_true",
                        help="also fetch a standard install's packages and measure all "
                             "their units")
    parser.add_argument("--out", default=os.path.join(HERE, "REPORT-units.md"))
    options = parser.parse_args(argv)
    report = ["# Systemd units through schema-init's importer", "",
              "Made by `bench/units_coverage.py%s` on %s. A unit maps cleanly when no line "
              "of it or of its drop-ins is dropped (`FILE:LINE: warning: KEY: ...`); "
              "`Description=`, `[Install]`, ordering against targets and what `.svc` keys "
              "express are not drops. The mapping: docs/spec.md, \"Services from systemd "
              "unit files\"." % (" --download" if options.download else "",
                                 time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())), ""]
    prefixes = [options.root.rstrip("/")]
    if os.path.isdir(options.root):
        dirs = [options.root + d for d in ("/etc/systemd/system", "/lib/systemd/system")
                if os.path.isdir(options.root + d)]
        links = sum(len(os.listdir(os.path.join(options.root + "/etc/systemd/system", d)))
                    for d in os.listdir(options.root + "/etc/systemd/system")
                    if d.endswith(".wants"))
        plain = measure(dirs, options.root, at_boot=True)
        beside = measure(dirs, options.root, os.path.join(ROOT, "services/debian"),
                         at_boot=True)
        report += section("Enabled units of a Debian root, alone", plain,
                          "`%s`: %d `*.wants` links in /etc/systemd/system; the walk from "
                          "default.target and sysinit.target, no .svc directory; daemons' path conditions "
                          "checked against the root and the other conditions against the "
                          "machine running this, as at boot." % (
                              os.path.relpath(options.root, ROOT), links))
        report += section("Enabled units beside services/debian", beside,
                          "The same root with the Debian service set: what `schema-init` "
                          "as PID 1 of that machine imports at boot.")
    if options.download:
        with tempfile.TemporaryDirectory() as tmp:
            tree, versions = download(PACKAGES, tmp)
            prefixes.append(tree)
            dirs = [tree + d for d in ("/etc/systemd/system", "/lib/systemd/system",
                                       "/usr/lib/systemd/system") if os.path.isdir(tree + d)]
            stats = measure(dirs, tree, everything=True)
            report += section("Every unit of a standard install's packages", stats,
                              "`import-units --all` over the units of %d packages (%s)." % (
                                  len(versions), ", ".join(versions)))
    text = "\n".join(report).rstrip("\n") + "\n"
    for prefix in prefixes:
        text = text.replace(prefix, "")          # /lib/systemd/system/..., as on the machine
    with open(options.out, "w") as f:
        f.write(text)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
