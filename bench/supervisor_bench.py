"""Supervisor benchmarks (issue: the supervisor runtime).  Reports, never asserts.

    python bench/supervisor_bench.py [--idle-seconds 60] [--out bench/REPORT-supervisor.md]

(a) idle wakeups: voluntary context switches of the supervisor over N seconds with 20
    stable services (goal 0);
(b) dependency-chain latency: 100 services, each promoted by ready_path and waiting
    for the previous one: supervisor start to the last FUNDAMENTAL (goal <= 5 ms/level);
(c) 1,000 services: supervisor RSS with 1 service and with 1,000 (goal <= 2 KB per
    service), and the wall time of `schema-ctl status --json`;
(d) RSS of the idle supervisor with 20 services.

SCHEMA_INIT_BIN=path/to/schema-init measures another build (e.g. the static binary).
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("SCHEMA_INIT_BIN") or os.path.join(ROOT, ".venv", "bin", "schema-init")
CTL = os.path.join(os.path.dirname(BIN), "schema-ctl")


def proc_status(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None


class Run:
    def __init__(self, files):
        self.dir = tempfile.mkdtemp(prefix="schema-bench-")
        self.services = os.path.join(self.dir, "services")
        self.run_dir = os.path.join(self.dir, "run")
        os.makedirs(self.services)
        os.makedirs(self.run_dir)
        for name, text in files.items():
            with open(os.path.join(self.services, name), "w") as f:
                f.write(text)
        self.socket = os.path.join(self.run_dir, "schema-init.sock")
        self.started = time.monotonic()
        self.proc = subprocess.Popen([BIN, "--services", self.services, "--run-dir",
                                      self.run_dir, "--shm", "/schema-bench-%d" % os.getpid()],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def ctl(self, *args):
        return subprocess.run([CTL, "--socket", self.socket, *args], capture_output=True,
                              text=True).stdout

    def wait_settled(self, timeout=300):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if os.path.exists(self.socket):
                out = self.ctl("status")
                if out and not any(s in out for s in ("NEW_PROCESS", "FULL_TRUST", "RECOVERY")):
                    return
            time.sleep(0.05)
        raise SystemExit("did not settle: " + self.ctl("status")[-2000:])

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(120)
        shutil.rmtree(self.dir, ignore_errors=True)


def daemon(extra=""):
    return "exec=/bin/sleep\nargs=1000000\nstable_secs=0\n" + extra


def bench_idle(seconds):
    run = Run({"s%02d.svc" % i: daemon() for i in range(20)})
    try:
        run.wait_settled()
        time.sleep(1)
        before = proc_status(run.proc.pid, "voluntary_ctxt_switches")
        nonvol = proc_status(run.proc.pid, "nonvoluntary_ctxt_switches")
        time.sleep(seconds)
        after = proc_status(run.proc.pid, "voluntary_ctxt_switches")
        nonvol_after = proc_status(run.proc.pid, "nonvoluntary_ctxt_switches")
        rss = proc_status(run.proc.pid, "VmRSS")
        anon = proc_status(run.proc.pid, "RssAnon")
        return after - before, nonvol_after - nonvol, rss, anon
    finally:
        run.stop()


def bench_chain(levels=100):
    tmp = tempfile.mkdtemp(prefix="schema-chain-")
    files = {}
    for i in range(levels):
        ready = os.path.join(tmp, "r%03d" % i)
        files["c%03d.svc" % i] = (
            "exec=/bin/sh\nargs=-c\nargs=: > %s; exec sleep 1000000\nready_path=%s\n"
            "stable_secs=600\n" % (ready, ready) + ("dep=c%03d\n" % (i - 1) if i else ""))
    run = Run(files)
    try:
        run.wait_settled()
        lines = run.ctl("timing").splitlines()
        times = {line.split()[0]: float(line.split()[1].rstrip("s")) for line in lines[1:]}
        first, last = times["c000"], times["c%03d" % (levels - 1)]
        return first, last, (last - first) / (levels - 1)
    finally:
        run.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def bench_scale(count=1000):
    oneshot = "exec=/bin/true\noneshot=1\n"
    small = Run({"s0000.svc": oneshot})
    try:
        small.wait_settled()
        time.sleep(0.5)
        rss_one = proc_status(small.proc.pid, "VmRSS")
        anon_one = proc_status(small.proc.pid, "RssAnon")
    finally:
        small.stop()
    big = Run({"s%04d.svc" % i: oneshot for i in range(count)})
    try:
        big.wait_settled()
        time.sleep(0.5)
        rss_many = proc_status(big.proc.pid, "VmRSS")
        anon_many = proc_status(big.proc.pid, "RssAnon")
        timings = []
        for _ in range(5):
            t0 = time.monotonic()
            out = big.ctl("status", "--json")
            timings.append(time.monotonic() - t0)
            assert out.count('"name"') == count
        t0 = time.monotonic()
        for _ in range(5):
            subprocess.run([CTL, "--version"], capture_output=True)
        client_start = (time.monotonic() - t0) / 5
        return rss_one, rss_many, (rss_many - rss_one) * 1024 / (count - 1), min(timings), \
            client_start, (anon_many - anon_one) * 1024 / (count - 1)
    finally:
        big.stop()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--idle-seconds", type=float, default=60)
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "REPORT-supervisor.md"))
    args = parser.parse_args()
    idle, idle_involuntary, rss, anon = bench_idle(args.idle_seconds)
    first, last, per_level = bench_chain()
    rss_one, rss_many, per_service, json_time, client_start, anon_per_service = bench_scale()
    report = """# Supervisor benchmarks

Measured by `python bench/supervisor_bench.py --idle-seconds %g` on %s, %s
(binary: `%s`).

| what | measured | goal |
|---|---|---|
| (a) voluntary context switches, %g s idle, 20 stable services | %d (involuntary %d) | 0 |
| (b) 100-service ready_path chain: first promotion / last promotion | %.3f s / %.3f s | |
| (b) per level | %.2f ms | <= 5 ms |
| (c) RSS with 1 service / with 1,000 services | %d KB / %d KB | |
| (c) RSS per service (of which anonymous memory) | %.0f bytes (%.0f bytes) | <= 2048 |
| (c) `schema-ctl status --json`, 1,000 services (best of 5) | %.1f ms (of which client start-up %.1f ms) | |
| (d) idle supervisor RSS / RssAnon, 20 services | %d KB / %d KB | |
""" % (args.idle_seconds, time.strftime("%Y-%m-%d"), os.uname().machine, BIN,
       args.idle_seconds, idle, idle_involuntary, first, last, per_level * 1000,
       rss_one, rss_many, per_service, anon_per_service, json_time * 1000, client_start * 1000,
       rss, anon)
    with open(args.out, "w") as f:
        f.write(report)
    sys.stdout.write(report)


if __name__ == "__main__":
    main()
