"""Issue 25's allocator lever, measured before it is built: would an allocator that gives
pymalloc's empty pools back to the kernel (CPython 3.11 never does while their arena has
a used pool) lower PID 1's private memory?  PID 1 (schema-init, idle, with 0 and 20
services, SCHEMA_INIT_TEST_HOOKS=1) prints pymalloc's census (`schema-ctl
test-mallocstats`: sys._debugmallocstats on its stderr); its anonymous mappings' Private_Dirty
(the arenas, bench/floor_bench.py) is set against what the census says is in use. What
the empty pools can hold resident is at most the arenas' dirty memory less the used pools'
(allocated and free blocks, pool headers, quantization).

    python bench/pools_bench.py [--runs 3] [--binary build/out/schema-init]
                                [--unstripped BINARY] [--out bench/REPORT-pools.md]

--unstripped (needs gdb): the same program built with its symbols (`BUILD_TMP=/tmp/u
BUILD_OUT=/tmp/u-out NUITKA_EXTRA=--unstripped build/build.sh`, two minutes): gdb then reads
CPython's dict of interned strings in the idle PID 1 (the lever "a smaller interned-string
set": what the dict itself costs; the strings are the names the code uses). About a minute. Reports,
never asserts.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))

import floor_bench  # noqa: E402
import footprint_bench  # noqa: E402

CENSUS = {
    "arenas": r"^# arenas allocated current\s*=\s*([\d,]+)",
    "arena_bytes": r"^\d+ arenas \* \d+ bytes/arena\s*=\s*([\d,]+)",
    "allocated": r"^# bytes in allocated blocks\s*=\s*([\d,]+)",
    "available": r"^# bytes in available blocks\s*=\s*([\d,]+)",
    "empty_pools": r"^(\d+) unused pools \*",
    "empty_bytes": r"^\d+ unused pools \* \d+ bytes\s*=\s*([\d,]+)",
    "headers": r"^# bytes lost to pool headers\s*=\s*([\d,]+)",
    "quantization": r"^# bytes lost to quantization\s*=\s*([\d,]+)",
}


def parse_census(text):
    """sys._debugmallocstats' totals: {key: int} for each of CENSUS found in TEXT."""
    found = {}
    for key, pattern in CENSUS.items():
        m = re.search(pattern, text, re.M)
        if m:
            found[key] = int(m.group(1).replace(",", ""))
    return found


def resident_in_empty_pools(census, arenas_dirty_kb):
    """kB the empty pools can hold resident at most: the arenas' dirty memory less the
    used pools' bytes (never below 0)."""
    used = census["allocated"] + census["available"] + census["headers"] + \
        census["quantization"]
    return max(0, arenas_dirty_kb - used // 1024)


def once(binary, count):
    with tempfile.TemporaryFile("w+") as err:
        sup = footprint_bench.Supervisor(binary, count, stderr=err)
        try:
            subprocess.run(["sync"])
            time.sleep(1)
            where = floor_bench.where(sup.proc.pid)
            sup.request("test-mallocstats")
            deadline = time.monotonic() + 10
            while True:
                err.seek(0)
                census = parse_census(err.read())
                if len(census) == len(CENSUS) or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
        finally:
            sup.stop()
    if len(census) != len(CENSUS):
        raise RuntimeError("pools_bench: no census on PID 1's stderr (%s)" % census)
    arenas = where["anonymous (arenas)"]
    return dict(census, Private_Dirty=where["Private_Dirty"], arenas_dirty=arenas,
                resident_empty=resident_in_empty_pools(census, arenas))


# CPython 3.11's dict layout (Include/cpython/dictobject.h, Objects/dict-common.h), 64-bit:
# PyDictObject.ma_used at 16, ma_keys at 32; the keys' log2 size at 8, log2 of the index
# bytes at 9, kind at 10 (1: str keys, 16-byte entries), usable at 16, nentries at 24.
GDB_INTERNED = """set pagination off
set $d = *(long*)&interned
printf "used=%ld\\n", *(long*)($d+16)
set $k = *(long*)($d+32)
printf "log2_index_bytes=%d\\n", *(unsigned char*)($k+9)
printf "kind=%d\\n", *(unsigned char*)($k+10)
printf "slots=%ld\\n", *(long*)($k+16) + *(long*)($k+24)
detach
quit
"""


def interned(binary):
    """{used, bytes}: the interned strings and their dict's bytes in an idle PID 1."""
    sup = footprint_bench.Supervisor(binary, 0)
    try:
        with tempfile.NamedTemporaryFile("w", suffix=".gdb") as script:
            script.write(GDB_INTERNED)
            script.flush()
            out = subprocess.run(["gdb", "-q", "-batch", "-x", script.name, "-p",
                                  str(sup.proc.pid), binary], capture_output=True,
                                 text=True, timeout=120).stdout
    finally:
        sup.stop()
    got = dict(re.findall(r"^(\w+)=(\d+)$", out, re.M))
    if set(got) != {"used", "log2_index_bytes", "kind", "slots"} or got["kind"] != "1":
        raise RuntimeError("pools_bench: gdb did not read the interned dict:\n" + out)
    return {"used": int(got["used"]),
            "bytes": 2 ** int(got["log2_index_bytes"]) + 16 * int(got["slots"])}


def main(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--binary", default=os.path.join(ROOT, "build", "out", "schema-init"))
    parser.add_argument("--unstripped", help="the same program with its symbols (gdb)")
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "REPORT-pools.md"))
    args = parser.parse_args(argv)
    binary = os.path.abspath(args.binary)
    lines = ["# Would giving pymalloc's empty pools back lower PID 1's memory?", "",
             "`python bench/pools_bench.py --runs %d` on %s, %s: PID 1 idle, pymalloc's "
             "census (`schema-ctl test-mallocstats`) against its anonymous mappings' "
             "Private_Dirty (the arenas); medians of %d runs; kB (KiB), census bytes "
             "divided by 1024." % (args.runs, time.strftime("%Y-%m-%d"), os.uname().machine,
                                   args.runs), "",
             "| services | PID 1 Private_Dirty | arenas | arenas' Private_Dirty | live "
             "blocks | free blocks in used pools | empty pools | their size | resident "
             "in them at most |", "|---|---|---|---|---|---|---|---|---|"]
    for count in (0, 20):
        med = floor_bench.median_of(args.runs, lambda: once(binary, count))
        lines.append("| %d | %d | %d | %d | %d | %d | %d | %d | %d |" % (
            count, med["Private_Dirty"], med["arenas"], med["arenas_dirty"],
            med["allocated"] // 1024, med["available"] // 1024, med["empty_pools"],
            med["empty_bytes"] // 1024, med["resident_empty"]))
    lines += ["", "The arenas' dirty pages are their used pools: the empty pools were never "
              "touched (pymalloc carves an arena's pools in order and its empty pools are "
              "the untouched tail) or hold at most the last column. An allocator that "
              "returned empty pools (madvise) would lower PID 1's Private_Dirty by at most "
              "that; the arenas' memory is live objects and the free blocks between them.",
              ""]
    if args.unstripped:
        found = interned(os.path.abspath(args.unstripped))
        lines += ["CPython's dict of interned strings in the idle PID 1 (0 services, read "
                  "by gdb in the unstripped build): %d strings; the dict holds %d kB (its "
                  "index and 16-byte entries, glibc's heap). That is the most a smaller "
                  "interned-string set could give back: the strings themselves are the "
                  "names the code uses and stay, interned or not." % (
                      found["used"], found["bytes"] // 1024), ""]
    with open(args.out, "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1:])
