"""Start-up: from exec of schema-init to its first service running.  Reports, never asserts.

    python bench/startup_bench.py [--runs 20] [--out bench/REPORT-startup.md]

Each run starts the supervisor (not PID 1) on a directory with one service whose first
command writes the wall clock (`date +%s.%N`); the time from just before exec to that
stamp is "exec -> first service running" (it includes the service's own fork/exec of
/bin/sh and date, about a millisecond).  Also times `schema-init --version` and
`schema-ctl status` (20 services) as whole processes.  SCHEMA_INIT_BIN=path measures
another build (default: the static binary build/out/schema-init).
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
BIN = os.environ.get("SCHEMA_INIT_BIN") or os.path.join(ROOT, "build", "out", "schema-init")
CTL = os.path.join(os.path.dirname(BIN), "schema-ctl")


def start_supervisor(directory, files):
    services = os.path.join(directory, "services")
    run = os.path.join(directory, "run")
    os.makedirs(services)
    os.makedirs(run)
    for name, text in files.items():
        with open(os.path.join(services, name), "w") as f:
            f.write(text)
    shm = "/schema-bench-%s" % uuid.uuid4().hex[:10]
    started = time.time()
    proc = subprocess.Popen([BIN, "--services", services, "--run-dir", run, "--shm", shm],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, started, os.path.join(run, "schema-init.sock")


def stop(proc):
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def exec_to_first_service(runs):
    samples = []
    for _ in range(runs):
        directory = tempfile.mkdtemp(prefix="schema-start-")
        stamp = os.path.join(directory, "stamp")
        try:
            proc, started, _ = start_supervisor(directory, {"first.svc": (
                "exec=/bin/sh\nargs=-c\nargs=date +%%s.%%N > %s; exec sleep 1000\n"
                "stable_secs=0\n" % stamp)})
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    with open(stamp) as f:
                        text = f.read().strip()
                    if text:
                        samples.append(float(text) - started)
                        break
                except OSError:
                    pass
                time.sleep(0.002)
            stop(proc)
        finally:
            shutil.rmtree(directory, ignore_errors=True)
    return samples


def whole_process(argv, runs):
    samples = []
    for _ in range(runs):
        t0 = time.monotonic()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        samples.append(time.monotonic() - t0)
    return samples


def ms(samples):
    return "%.1f ms (min %.1f, max %.1f, n %d)" % (
        statistics.median(samples) * 1000, min(samples) * 1000, max(samples) * 1000,
        len(samples))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "REPORT-startup.md"))
    args = parser.parse_args()
    first = exec_to_first_service(args.runs)
    version = whole_process([BIN, "--version"], args.runs)
    directory = tempfile.mkdtemp(prefix="schema-start-")
    try:
        proc, _, sock = start_supervisor(directory, {
            "s%02d.svc" % i: "exec=/bin/sleep\nargs=100000\nstable_secs=0\n" for i in range(20)})
        deadline = time.monotonic() + 10
        while not os.path.exists(sock) and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.5)
        status = whole_process([CTL, "--socket", sock, "status"], args.runs)
        stop(proc)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    report = """# Start-up

Measured by `python bench/startup_bench.py --runs %d` on %s, %s (binary: `%s`), median
with min and max.  Whole processes, wall clock, on the host (not PID 1).

| what | measured |
|---|---|
| exec -> first service running (its `date` stamp) | %s |
| `schema-init --version` | %s |
| `schema-ctl status`, 20 services | %s |
""" % (args.runs, time.strftime("%Y-%m-%d"), os.uname().machine, BIN, ms(first), ms(version),
       ms(status))
    with open(args.out, "w") as f:
        f.write(report)
    sys.stdout.write(report)


if __name__ == "__main__":
    main()
