"""Issue 25's levers on private memory, each measured: the floor (bench/floor_bench.py's
program that only waits) and PID 1 (schema-init with 0 services) built with and without
each, measured idle in one run, rotating.

    python bench/levers_bench.py [--runs 5] [--out bench/REPORT-levers.md]

Build levers (build/build.sh's settings; each variant is built into build/tmp/lever-*):
the frozen bootstrap compiled with optimize=2, without zipimport, the bytecode compiled
with -X no_debug_ranges, the import bootstrap taken without the importlib package and "types"
patched only once imported (Nuitka patches 0002, 0003; SKIP_PATCHES="0002 0003" builds
without them), and glibc's malloc thresholds fixed by
mallopt (native/preinit.c, -DSCHEMA_MALLOPT). Run-time levers, on today's binary: PYTHONMALLOC=malloc (glibc's
malloc for every object instead of pymalloc's arenas), and the re-exec into the steady
state (`schema-ctl reexec` once PID 1 idles: the handover to a new image of the program
that never ran the boot). About 25 minutes: 15 builds, each under flock
/tmp/schema-heavy.lock (LEVERS_LOCK: another; --reuse floor,pid1: the last run's). Reports, never
asserts.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))

import floor_bench  # noqa: E402
import footprint_bench  # noqa: E402

BEFORE = {"FROZEN_OPTIMIZE": "0", "FROZEN_ZIPIMPORT": "1", "PYX_FLAGS": "",
          "SKIP_PATCHES": "0002 0003"}
TAKEN_1207 = {"FROZEN_OPTIMIZE": "2", "FROZEN_ZIPIMPORT": "0", "PYX_FLAGS": "-X no_debug_ranges",
              "SKIP_PATCHES": "0002 0003"}
TODAY_1207 = dict(TAKEN_1207, SKIP_PATCHES="0003")
TODAY = dict(TAKEN_1207, SKIP_PATCHES="")
# New variants go at the end: --reuse finds a variant's build by its index.
FLOOR = [
    ("before (the build of 2026-12-06)", BEFORE),
    ("frozen bootstrap with optimize=2", dict(BEFORE, FROZEN_OPTIMIZE="2")),
    ("-X no_debug_ranges", dict(BEFORE, PYX_FLAGS="-X no_debug_ranges")),
    ("no zipimport", dict(BEFORE, FROZEN_ZIPIMPORT="0")),
    ("mallopt thresholds", dict(BEFORE, PREINIT_DEFS="-DSCHEMA_MALLOPT")),
    ("the three above (taken on 2026-12-07)", TAKEN_1207),
    ("no importlib package (Nuitka patch 0002)", dict(BEFORE, SKIP_PATCHES="0003")),
    ("taken: all four", TODAY_1207),
    ("types patched when imported (Nuitka patch 0003)", dict(BEFORE, SKIP_PATCHES="0002")),
    ("taken: all five (today's build)", TODAY),
]
PID1 = [
    ("before (the build of 2026-12-06)", BEFORE),
    ("taken on 2026-12-07", TAKEN_1207),
    ("taken on 2026-12-07 + mallopt thresholds", dict(TAKEN_1207, PREINIT_DEFS="-DSCHEMA_MALLOPT")),
    ("+ no importlib package", TODAY_1207),
    ("+ types patched when imported (today's build)", TODAY),
]
KEYS = ("Rss", "Private_Dirty", "binary .data/.bss", "heap", "anonymous (arenas)", "modules")


def build(kind, index, env, reuse=()):
    """Build variant INDEX of KIND (floor, pid1) with ENV; the binary's path (KIND in
    REUSE: the one a run before built, if there is one)."""
    tmp = os.path.join(ROOT, "build", "tmp", "lever-%s-%d" % (kind, index))
    if kind in reuse and os.path.exists(os.path.join(tmp, "out", "schema-init")):
        return os.path.join(tmp, "out", "schema-init")
    os.makedirs(tmp, exist_ok=True)
    extra = {"BUILD_TMP": tmp, "BUILD_OUT": os.path.join(tmp, "out"), "PREINIT_DEFS": ""}
    if kind == "floor":
        entry = os.path.join(tmp, "floor.py")
        with open(entry, "w") as f:
            f.write(floor_bench.ENTRY)
        extra.update(ENTRY=entry, PACKAGES="", FROZEN="bootstrap")
    with open(os.path.join(tmp, "build.log"), "w") as log:
        subprocess.run(["flock", os.environ.get("LEVERS_LOCK", "/tmp/schema-heavy.lock"),
                        os.path.join(ROOT, "build", "build.sh")],
                       check=True, cwd=ROOT, env=dict(os.environ, **dict(extra, **env)),
                       stdout=log, stderr=subprocess.STDOUT)
    binary = os.path.join(tmp, "out", "schema-init")
    ctl = os.path.join(tmp, "out", "schema-ctl")
    if kind == "pid1" and not os.path.lexists(ctl):
        os.symlink("schema-init", ctl)
    return binary


def reexeced(binary, count):
    """PID 1 with COUNT services, then again after `schema-ctl reexec` (the handover: a
    new image of the program running only the steady state): (before, after)."""
    sup = footprint_bench.Supervisor(binary, count)
    try:
        subprocess.run(["sync"])
        time.sleep(1)
        before = floor_bench.where(sup.proc.pid)
        sup.request("reexec")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            time.sleep(0.5)
            if sup.request("status"):          # the new image answers
                break
        time.sleep(2)
        return before, floor_bench.where(sup.proc.pid)
    finally:
        sup.stop()


def measure(kind, binary, env=None):
    if kind == "floor":
        return floor_bench.idle_program([binary])
    saved = dict(os.environ)
    os.environ.update(env or {})
    try:
        return floor_bench.idle_schema_init(binary, 0)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def rows(kind, variants, runs):
    """[(label, medians)], the variants measured in turn RUNS times."""
    samples = {label: [] for label, *_ in variants}
    for _ in range(runs):
        for label, binary, env in variants:
            samples[label].append(measure(kind, binary, env))
    return [(label, {k: statistics.median(s[k] for s in samples[label]) for k in KEYS})
            for label, *_ in variants]


def table(title, measured):
    base = measured[0][1]["Private_Dirty"]
    lines = ["## " + title, "", "| variant | " + " | ".join(KEYS) + " | Private_Dirty vs "
             "first |", "|---|" + "---|" * (len(KEYS) + 1)]
    for label, values in measured:
        lines.append("| %s | %s | %+d |" % (label, " | ".join("%d" % values[k] for k in KEYS),
                                             values["Private_Dirty"] - base))
    return lines + [""]


def main(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "REPORT-levers.md"))
    parser.add_argument("--reuse", default="", metavar="KIND[,KIND]",
                        help="floor, pid1: that kind's variants as a run before built them "
                             "(build/tmp/lever-*)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    floors = [(label, build("floor", i, env, args.reuse.split(",")), None)
              for i, (label, env) in enumerate(FLOOR)]
    pid1s = [(label, build("pid1", i, env, args.reuse.split(",")), None)
             for i, (label, env) in enumerate(PID1)]
    pid1s.append(("taken on 2026-12-07 + PYTHONMALLOC=malloc (run time)", pid1s[1][1],
                  {"PYTHONMALLOC": "malloc"}))
    built = time.monotonic() - started
    lines = ["# Issue 25's levers on private memory", "",
             "`python bench/levers_bench.py --runs %d` on %s, %s (builds %.0f s): idle "
             "processes after `sync`, kB from /proc/PID/smaps, medians of %d runs, the "
             "variants in turn. PID 1: schema-init with 0 services (bench/floor_bench.py)."
             % (args.runs, time.strftime("%Y-%m-%d"), os.uname().machine, built, args.runs),
             ""]
    lines += table("The floor (a build of ours that only waits)", rows("floor", floors,
                                                                        args.runs))
    lines += table("PID 1", rows("pid1", pid1s, args.runs))
    lines += ["## Re-executed into the steady state", "",
              "PID 1 (today's build) idle, then idle again after `schema-ctl reexec` (the "
              "handover to a new image of the program, which never ran the boot): medians "
              "of %d." % args.runs, "",
              "| services | Private_Dirty before | after | heap before | after "
              "| arenas before | after |", "|---|---|---|---|---|---|---|"]
    for count in (0, 20):
        pairs = [reexeced(pid1s[4][1], count) for _ in range(args.runs)]
        med = lambda i, key: statistics.median(p[i][key] for p in pairs)  # noqa: E731
        lines.append("| %d | %d | %d | %d | %d | %d | %d |" % (
            count, med(0, "Private_Dirty"), med(1, "Private_Dirty"), med(0, "heap"),
            med(1, "heap"), med(0, "anonymous (arenas)"), med(1, "anonymous (arenas)")))
    lines.append("")
    with open(args.out, "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1:])
