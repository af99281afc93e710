"""What NOTIFY_SOCKETs cost a supervisor (not PID 1): memory (smaps_rollup) and idle
wake-ups (voluntary context switches over 10 s) with N plain services against N notify=1
services that never send anything.

    .venv/bin/python bench/notify_bench.py [N ...]        (default: 20 200)

SCHEMA_INIT_BIN=build/out/schema-init measures the static binary instead of the venv's
program.  Prints one line per run; writes nothing.
"""

import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from harness import Supervised  # noqa: E402


def rollup(pid):
    out = {}
    for line in open("/proc/%d/smaps_rollup" % pid):
        parts = line.split()
        if parts[0] in ("Rss:", "Private_Dirty:"):
            out[parts[0][:-1]] = int(parts[1])
    return out


def switches(pid):
    for line in open("/proc/%d/status" % pid):
        if line.startswith("voluntary_ctxt_switches"):
            return int(line.split()[1])


def run(kind, count, idle=10.0):
    extra = "notify=1\n" if kind == "notify" else "stable_secs=0\n"
    files = {"n%03d.svc" % i: "exec=/bin/sleep\nargs=100000\n" + extra for i in range(count)}
    s = Supervised(tempfile.mkdtemp(prefix="notify-bench-"), files).start()
    try:
        want = "FULL_TRUST" if kind == "notify" else "FUNDAMENTAL"
        s.wait(lambda: sum(1 for v in s.status().values() if v.get("state") == want) == count,
               120, "every service up")
        time.sleep(2)
        memory = rollup(s.proc.pid)
        before = switches(s.proc.pid)
        time.sleep(idle)
        wakeups = switches(s.proc.pid) - before
        fds = len(os.listdir("/proc/%d/fd" % s.proc.pid))
        print("%-6s services=%-4d Rss=%d kB  Private_Dirty=%d kB  fds=%d  idle wake-ups in "
              "%g s: %d" % (kind, count, memory["Rss"], memory["Private_Dirty"], fds, idle,
                            wakeups), flush=True)
    finally:
        s.stop()


if __name__ == "__main__":
    for n in [int(a) for a in sys.argv[1:]] or [20, 200]:
        run("plain", n)
        run("notify", n)
