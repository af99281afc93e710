"""Issue 25's levers on private memory, each measured: the floor (bench/floor_bench.py's
program that only waits) and PID 1 (schema-init with 0 services) built with and without
each, measured idle in one run, rotating.

    python bench/levers_bench.py [--runs 5] [--out bench/REPORT-levers.md]

Build levers (build/build.sh's settings; each variant is built into build/tmp/lever-*):
the frozen bootstrap compiled with optimize=2, without zipimport, the bytecode compiled
with -X no_debug_ranges, and glibc's malloc thresholds fixed by mallopt (native/preinit.c,
-DSCHEMA_MALLOPT). Run-time levers, on today's binary: PYTHONMALLOC=malloc (glibc's
malloc for every object instead of pymalloc's arenas). About 15 minutes: 9 builds, each
under flock /tmp/schema-heavy.lock (LEVERS_LOCK: another). Reports, never asserts.
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

BEFORE = {"FROZEN_OPTIMIZE": "0", "FROZEN_ZIPIMPORT": "1", "PYX_FLAGS": ""}
TAKEN = {"FROZEN_OPTIMIZE": "2", "FROZEN_ZIPIMPORT": "0", "PYX_FLAGS": "-X no_debug_ranges"}
FLOOR = [
    ("before (the build of 2026-12-06)", BEFORE),
    ("frozen bootstrap with optimize=2", dict(BEFORE, FROZEN_OPTIMIZE="2")),
    ("-X no_debug_ranges", dict(BEFORE, PYX_FLAGS="-X no_debug_ranges")),
    ("no zipimport", dict(BEFORE, FROZEN_ZIPIMPORT="0")),
    ("mallopt thresholds", dict(BEFORE, PREINIT_DEFS="-DSCHEMA_MALLOPT")),
    ("taken: the three above (today's build)", TAKEN),
]
PID1 = [
    ("before (the build of 2026-12-06)", BEFORE),
    ("taken (today's build)", TAKEN),
    ("taken + mallopt thresholds", dict(TAKEN, PREINIT_DEFS="-DSCHEMA_MALLOPT")),
]
KEYS = ("Rss", "Private_Dirty", "binary .data/.bss", "heap", "anonymous (arenas)", "modules")


def build(kind, index, env):
    """Build variant INDEX of KIND (floor, pid1) with ENV; the binary's path."""
    tmp = os.path.join(ROOT, "build", "tmp", "lever-%s-%d" % (kind, index))
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
                       check=True, cwd=ROOT, env=dict(os.environ, **extra, **env),
                       stdout=log, stderr=subprocess.STDOUT)
    binary = os.path.join(tmp, "out", "schema-init")
    ctl = os.path.join(tmp, "out", "schema-ctl")
    if kind == "pid1" and not os.path.lexists(ctl):
        os.symlink("schema-init", ctl)
    return binary


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
    args = parser.parse_args(argv)
    started = time.monotonic()
    floors = [(label, build("floor", i, env), None) for i, (label, env) in enumerate(FLOOR)]
    pid1s = [(label, build("pid1", i, env), None) for i, (label, env) in enumerate(PID1)]
    pid1s.append(("taken + PYTHONMALLOC=malloc (run time)", pid1s[1][1],
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
    with open(args.out, "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1:])
