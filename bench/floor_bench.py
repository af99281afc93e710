"""The floor under schema-init's memory: a program built exactly like ours that does nothing.

    python bench/floor_bench.py [--runs 3] [--out bench/REPORT-floor.md]

build/build.sh builds, with the same Nuitka, patches, flags and linked objects as the
real binary, an entry that only waits (`signal.pause()`) and compiles no package of ours
(ENTRY, PACKAGES; into build/tmp/floor-*), once with CPython's own deep-frozen
module table (FROZEN=deepfreeze) and once with ours (build/frozen.py). Measured idle, after `sync`, from
/proc/PID/smaps: the whole process (Rss, Private_Dirty) and where its Private_Dirty is
(the binary's .data and .bss, the heap, other anonymous memory: pymalloc's arenas,
the stack), for the floor, `python3.11 -I -S` doing the same, and schema-init itself
with 0 and 20 services (bench/footprint_bench.py's supervisor). Reports, never asserts.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))

import footprint_bench  # noqa: E402

FLOOR_TMP = os.path.join(ROOT, "build", "tmp", "floor")
ENTRY = '''"""The floor (bench/floor_bench.py): built like schema-init, does nothing."""
import signal
import sys

print(len(sys.modules), flush=True)
signal.pause()
'''


def build_floor(frozen):
    """The floor with FROZEN (build.sh: bootstrap, ours; deepfreeze, CPython's table)."""
    tmp = "%s-%s" % (FLOOR_TMP, frozen)
    os.makedirs(tmp, exist_ok=True)
    entry = os.path.join(tmp, "floor.py")
    with open(entry, "w") as f:
        f.write(ENTRY)
    env = dict(os.environ, BUILD_TMP=tmp, BUILD_OUT=os.path.join(tmp, "out"),
               ENTRY=entry, PACKAGES="", FROZEN=frozen)
    subprocess.run([os.path.join(ROOT, "build", "build.sh")], check=True, env=env,
                   cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return os.path.join(tmp, "out", "schema-init")


def where(pid):
    """Private_Dirty kB by region kind, and the whole process's Rss."""
    exe = os.readlink("/proc/%d/exe" % pid)
    kinds = {"binary .data/.bss": 0, "heap": 0, "anonymous (arenas)": 0, "stack": 0,
             "other": 0}
    kind = "other"
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            head = line.split()
            if "-" in head[0] and len(head) >= 5 and ":" not in head[0]:
                path = head[5] if len(head) > 5 else ""
                if path == exe:
                    kind = "binary .data/.bss" if "w" in head[1] else "other"
                elif path == "[heap]":
                    kind = "heap"
                elif path == "[stack]":
                    kind = "stack"
                elif path == "":
                    kind = "anonymous (arenas)"
                else:
                    kind = "other"
            elif head[0] == "Private_Dirty:":
                kinds[kind] += int(head[1])
    rollup = footprint_bench.rollup(pid)
    return dict(kinds, Rss=rollup["Rss"], Private_Dirty=rollup["Private_Dirty"])


def idle_program(argv):
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        modules = int(proc.stdout.readline() or 0)
        subprocess.run(["sync"])
        time.sleep(1)
        return dict(where(proc.pid), modules=modules)
    finally:
        proc.kill()
        proc.wait()


def idle_schema_init(binary, count):
    sup = footprint_bench.Supervisor(binary, count)
    try:
        subprocess.run(["sync"])
        time.sleep(1)
        modules = len(sup.request("test-modules").split())
        return dict(where(sup.proc.pid), modules=modules)
    finally:
        sup.stop()


def median_of(runs, make):
    results = [make() for _ in range(runs)]
    return {key: statistics.median(r[key] for r in results) for key in results[0]}


def main(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--binary", default=os.path.join(ROOT, "build", "out", "schema-init"))
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "REPORT-floor.md"))
    args = parser.parse_args(argv)
    deepfrozen, floor = build_floor("deepfreeze"), build_floor("bootstrap")
    python = "/usr/bin/python3.11"
    rows = [
        ("`python3.11 -I -S`, waiting", median_of(args.runs, lambda: idle_program(
            [python, "-I", "-S", "-c", ENTRY.split('"""', 2)[2]]))),
        ("the floor with CPython's deep-frozen modules (`FROZEN=deepfreeze`)", median_of(
            args.runs, lambda: idle_program([deepfrozen]))),
        ("the floor: built like schema-init (importlib's bootstrap only)", median_of(
            args.runs, lambda: idle_program([floor]))),
        ("schema-init, 0 services", median_of(args.runs, lambda: idle_schema_init(
            args.binary, 0))),
        ("schema-init, 20 services", median_of(args.runs, lambda: idle_schema_init(
            args.binary, 20))),
    ]
    keys = ("Rss", "Private_Dirty", "binary .data/.bss", "heap", "anonymous (arenas)",
            "stack", "modules")
    lines = [
        "# The floor under schema-init's memory",
        "",
        "`python bench/floor_bench.py --runs %d` on %s, %s: idle processes after `sync`, "
        "kB from /proc/PID/smaps (median of %d). \"The floor\" is build/build.sh's "
        "program with only `signal.pause()` in it (bench/floor_bench.py): the static "
        "runtime every build of ours carries, before a line of schema-init runs. "
        "Modules: sys.modules." % (args.runs, time.strftime("%Y-%m-%d"),
                                   os.uname().machine, args.runs),
        "",
        "| process | " + " | ".join(keys) + " |",
        "|---|" + "---|" * len(keys),
    ]
    for label, values in rows:
        lines.append("| %s | %s |" % (label, " | ".join("%d" % values[k] for k in keys)))
    base = rows[2][1]["Private_Dirty"]
    lines += ["", "Private_Dirty: CPython's deep-frozen table costs %+d kB over importlib's "
              "bootstrap alone (build/frozen.py); schema-init with 0 services is %+d kB "
              "above the floor, with 20 services %+d kB." % (
                  rows[1][1]["Private_Dirty"] - base, rows[3][1]["Private_Dirty"] - base,
                  rows[4][1]["Private_Dirty"] - base), ""]
    with open(args.out, "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1:])
