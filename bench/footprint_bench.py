"""Footprint of static binaries, idle, with 0, 20 and 1,000 services.  Reports, never asserts.

    python bench/footprint_bench.py [--out bench/REPORT-footprint.md] [LABEL=BINARY ...]

For each binary (default: `now=build/out/schema-init`), a supervisor (not PID 1) runs
`N` services (`/bin/sleep`, promoted at once; N = 0 means one oneshot that has exited),
is left idle for a second after `sync`, and its /proc/PID/smaps_rollup is read: Rss,
Pss, Private_Dirty, Anonymous (median of --runs).  Per service is the Anonymous growth
from 20 to 1,000 services.  Modules: `schema-ctl test-modules` (test hooks on) counts
sys.modules of the running supervisor.  Start-up: `--version` and `schema-ctl status`
(20 services), whole processes, median of 20.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIELDS = ("Rss", "Pss", "Private_Dirty", "Anonymous")


def rollup(pid):
    values = {}
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in FIELDS:
                values[key] = int(rest.split()[0])
    return values


class Supervisor:
    def __init__(self, binary, count, stderr=subprocess.DEVNULL):
        """schema-init with COUNT sleeping services (or one oneshot), test hooks on, its
        stderr to STDERR, once every service is up."""
        self.dir = tempfile.mkdtemp(prefix="schema-foot-")
        services = os.path.join(self.dir, "services")
        self.run = os.path.join(self.dir, "run")
        os.makedirs(services)
        os.makedirs(self.run)
        files = {"s%04d.svc" % i: "exec=/bin/sleep\nargs=100000\nstable_secs=0\n"
                 for i in range(count)} or {"once.svc": "exec=/bin/true\noneshot=1\n"}
        for name, text in files.items():
            with open(os.path.join(services, name), "w") as f:
                f.write(text)
        self.socket = os.path.join(self.run, "schema-init.sock")
        self.ctl = os.path.join(os.path.dirname(binary), "schema-ctl")
        env = dict(os.environ, SCHEMA_INIT_TEST_HOOKS="1")
        self.proc = subprocess.Popen(
            [binary, "--services", services, "--run-dir", self.run,
             "--shm", "/schema-foot-%s" % uuid.uuid4().hex[:10]],
            stdout=subprocess.DEVNULL, stderr=stderr, env=env)
        want = "PERFECT" if count == 0 else "FUNDAMENTAL"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            out = self.request("status")
            if out and out.count(want) == max(count, 1):
                break
            time.sleep(0.1)
        else:
            raise RuntimeError("services did not come up")

    def request(self, *words):
        result = subprocess.run([self.ctl, "--socket", self.socket] + list(words),
                                capture_output=True, text=True)
        return result.stdout if result.returncode == 0 else ""

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def idle_footprint(binary, count, runs):
    samples = []
    modules = None
    for _ in range(runs):
        sup = Supervisor(binary, count)
        try:
            subprocess.run(["sync"])
            time.sleep(1.0)
            samples.append(rollup(sup.proc.pid))
            if modules is None:
                listed = sup.request("test-modules").split()
                modules = len(listed) if listed else None
        finally:
            sup.stop()
    return {key: statistics.median(s[key] for s in samples) for key in FIELDS}, modules


def whole_process_ms(argv, runs=20):
    samples = []
    for _ in range(runs):
        t0 = time.monotonic()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        samples.append(time.monotonic() - t0)
    return statistics.median(samples) * 1000


def measure(binary, runs):
    row = {"size": os.path.getsize(binary)}
    for count in (0, 20, 1000):
        row[count], modules = idle_footprint(binary, count, runs if count < 1000 else 1)
        if count == 20:
            row["modules"] = modules
    row["per_service"] = (row[1000]["Anonymous"] - row[20]["Anonymous"]) * 1024 / 980
    row["version_ms"] = whole_process_ms([binary, "--version"])
    sup = Supervisor(binary, 20)
    try:
        row["status_ms"] = whole_process_ms([sup.ctl, "--socket", sup.socket, "status"])
    finally:
        sup.stop()
    return row


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binaries", nargs="*", help="LABEL=PATH")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "REPORT-footprint.md"))
    args = parser.parse_args()
    binaries = [b.split("=", 1) for b in args.binaries] or \
        [("now", os.path.join(ROOT, "build", "out", "schema-init"))]
    rows = [(label, measure(path, args.runs)) for label, path in binaries]
    out = ["# Footprint of the static binary", "",
           "Measured by `python bench/footprint_bench.py %s` on %s, %s: a supervisor (not PID 1), "
           "idle, after `sync`; kB from /proc/PID/smaps_rollup, median of %d runs "
           "(1 for 1,000 services)." % (" ".join(args.binaries), time.strftime("%Y-%m-%d"),
                                         os.uname().machine, args.runs), "",
           "| build | size | services | Rss | Pss | Private_Dirty | Anonymous |",
           "|---|---|---|---|---|---|---|"]
    for label, row in rows:
        for count in (0, 20, 1000):
            r = row[count]
            out.append("| %s | %.2f MB | %d | %d | %d | %d | %d |" % (
                label, row["size"] / 1e6, count, r["Rss"], r["Pss"], r["Private_Dirty"],
                r["Anonymous"]))
    out += ["", "| build | per service (anonymous, 20 -> 1,000) | modules (20 services) | "
            "`--version` | `schema-ctl status` (20 services) |", "|---|---|---|---|---|"]
    for label, row in rows:
        out.append("| %s | %.0f bytes | %s | %.1f ms | %.1f ms |" % (
            label, row["per_service"], row["modules"] or "?", row["version_ms"],
            row["status_ms"]))
    text = "\n".join(out) + "\n"
    with open(args.out, "w") as f:
        f.write(text)
    sys.stdout.write(text)


if __name__ == "__main__":
    main()
