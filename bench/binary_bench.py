"""The static binary: size, memory of the idle supervisor, schema-ctl latency, build time.

    python bench/binary_bench.py [--rebuild] [--out bench/REPORT-binary.md]

Memory is read from /proc/PID/status and smaps after `sync` (a freshly written
binary shows its file pages as dirty until then), with 20 stable services, and
compared with `python3.11 -I -S` sleeping (the floor of a plain interpreter).
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("SCHEMA_INIT_BIN") or os.path.join(ROOT, "build", "out", "schema-init")


def memory(pid):
    status = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile"):
                status[key] = int(value.split()[0])
    dirty = 0
    regions = []
    current = None
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            fields = line.split()
            if "-" in fields[0] and len(fields) >= 5 and ":" not in fields[0]:
                current = [fields[0], fields[1], fields[5] if len(fields) > 5 else "[anon]", 0, 0]
                regions.append(current)
            elif fields[0] == "Rss:":
                current[3] = int(fields[1])
            elif fields[0] == "Private_Dirty:":
                current[4] = int(fields[1])
                dirty += int(fields[1])
    status["Private_Dirty"] = dirty
    return status, [r for r in regions if r[3] >= 64]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "REPORT-binary.md"))
    args = parser.parse_args()
    build_time = None
    if args.rebuild or not os.path.exists(BIN):
        t0 = time.monotonic()
        subprocess.run([os.path.join(ROOT, "build", "build.sh")], check=True,
                       stdout=subprocess.DEVNULL)
        build_time = time.monotonic() - t0
    os.sync()
    size = os.path.getsize(BIN)
    tmp = tempfile.mkdtemp(prefix="schema-binbench-")
    services = os.path.join(tmp, "services")
    run = os.path.join(tmp, "run")
    os.makedirs(services)
    for i in range(20):
        with open(os.path.join(services, "s%02d.svc" % i), "w") as f:
            f.write("exec=/bin/sleep\nargs=1000000\nstable_secs=0\n")
    proc = subprocess.Popen([BIN, "--services", services, "--run-dir", run, "--shm",
                             "/schema-binbench-%d" % os.getpid()],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ctl = os.path.join(os.path.dirname(BIN), "schema-ctl")
    sock = os.path.join(run, "schema-init.sock")
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            out = subprocess.run([ctl, "--socket", sock, "status"], capture_output=True,
                                 text=True).stdout
            if out.count("FUNDAMENTAL") == 20:
                break
            time.sleep(0.1)
        time.sleep(1)
        status, regions = memory(proc.pid)
        times = []
        for _ in range(10):
            t0 = time.monotonic()
            subprocess.run([ctl, "--socket", sock, "status"], capture_output=True)
            times.append(time.monotonic() - t0)
    finally:
        subprocess.run([ctl, "--socket", sock, "poweroff"], capture_output=True)
        proc.wait(30)
        shutil.rmtree(tmp, ignore_errors=True)
    floor = subprocess.Popen(["/usr/bin/python3.11", "-I", "-S", "-c", "import time; time.sleep(30)"])
    time.sleep(1)
    floor_status, _ = memory(floor.pid)
    floor.kill()
    floor.wait()
    lines = ["# Static binary benchmarks", "",
             "Measured by `python bench/binary_bench.py` on %s, %s (`%s`)."
             % (time.strftime("%Y-%m-%d"), os.uname().machine, BIN), "",
             "| what | measured | goal |", "|---|---|---|",
             "| binary size | %.2f MB (%d bytes) | <= 10 MB |" % (size / 1e6, size),
             "| idle supervisor, 20 stable services: VmRSS | %d KB | <= 4 MB |" % status["VmRSS"],
             "| RssAnon / RssFile | %d KB / %d KB | |" % (status["RssAnon"], status["RssFile"]),
             "| Private_Dirty | %d KB | |" % status["Private_Dirty"],
             "| `schema-ctl status` wall time (best / median of 10) | %.1f ms / %.1f ms | |"
             % (min(times) * 1000, sorted(times)[5] * 1000),
             "| `python3.11 -I -S` sleeping: VmRSS / RssAnon | %d KB / %d KB | (reference) |"
             % (floor_status["VmRSS"], floor_status["RssAnon"])]
    if build_time is not None:
        lines.append("| build time (`build/build.sh`) | %.0f s | |" % build_time)
    lines += ["", "Where the resident memory is (regions of 64 KB or more):", "",
              "| region | perms | mapping | Rss KB | Private_Dirty KB |", "|---|---|---|---|---|"]
    for address, perms, name, rss, dirty in regions:
        lines.append("| %s | %s | %s | %d | %d |" % (address, perms, name, rss, dirty))
    report = "\n".join(lines) + "\n"
    with open(args.out, "w") as f:
        f.write(report)
    sys.stdout.write(report)


if __name__ == "__main__":
    main()
