"""bench/pools_bench.py reads pymalloc's census (sys._debugmallocstats) of a real
interpreter, and bounds what empty pools can hold resident."""

import os
import subprocess
import sys

from conftest import ROOT

sys.path.insert(0, os.path.join(ROOT, "bench"))
import pools_bench  # noqa: E402


def test_census_of_a_real_interpreter():
    done = subprocess.run([sys.executable, "-c", "import sys; sys._debugmallocstats()"],
                          capture_output=True, text=True, timeout=60)
    census = pools_bench.parse_census(done.stderr)
    assert set(census) == set(pools_bench.CENSUS), (census, done.stderr[-2000:])
    assert census["arenas"] >= 1 and census["allocated"] > 0
    parts = census["allocated"] + census["available"] + census["empty_bytes"] + \
        census["headers"] + census["quantization"]
    assert parts <= census["arena_bytes"] < parts + 2 * 16384 * census["arenas"]


def test_resident_in_empty_pools_is_what_the_used_pools_do_not_explain():
    census = {"allocated": 2000 * 1024, "available": 300 * 1024, "headers": 10 * 1024,
              "quantization": 10 * 1024}
    assert pools_bench.resident_in_empty_pools(census, 2500) == 180
    assert pools_bench.resident_in_empty_pools(census, 2300) == 0
