"""Supervisor benchmarks (issue: the supervisor runtime).  Reports, never asserts.

    python bench/supervisor_bench.py [--idle-seconds 60] [--out bench/REPORT-supervisor.md]

(a) idle wakeups: voluntary context switches of the supervisor over N seconds with 20
    stable services (goal 0);
(b) dependency-chain latency: 100 services, each promoted by ready_path and waiting
    for the previous one: supervisor start to the last FUNDAMENTAL (goal <= 5 ms/level);
(c) 1,000 services: supervisor RSS with 1 service and with 1,000 (goal <= 2 KB per
    service), and the wall time of `schema-ctl status --json`;
(d) RSS of the idle supervisor with 20 services;
(e) 10,000 orphaned grandchildren reaped: wall time and the supervisor's CPU per orphan;
(f) `schema-ctl status` round trip with 20 services;
(g) parsing and ordering, whose tests count lines of code instead of seconds
    (tests/test_config.py, tests/test_graph.py, tests/test_adversarial.py): a file of
    2,000 settings and one of 300,000 blank lines rejected, 60 unknown keys of 3,000
    characters, a 10,000-deep chain resolved and ordered, and `schema-init --check` of
    that chain and of 1 MB of unknown keys.

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


def bench_ctl(run, count=20):
    """`schema-ctl status` wall time, median of COUNT calls, and the client alone."""
    def median_of(*args):
        times = []
        for _ in range(count):
            t0 = time.monotonic()
            subprocess.run([CTL, *args], capture_output=True)
            times.append(time.monotonic() - t0)
        return sorted(times)[count // 2]
    return median_of("--socket", run.socket, "status"), median_of("--version")


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_orphans(count=10000):
    """A oneshot whose COUNT grandchildren are orphaned to the supervisor (its
    subreaper): wall time until all are reaped, and the supervisor's CPU per orphan."""
    tmp = tempfile.mkdtemp(prefix="schema-orphans-")
    done = os.path.join(tmp, "done")
    script = ("import os\nfor i in range(%d):\n    pid = os.fork()\n    if pid == 0:\n"
              "        if os.fork() == 0:\n            os._exit(0)\n        os._exit(0)\n"
              "    os.waitpid(pid, 0)\nopen(%r, 'w').close()\n" % (count, done))
    with open(os.path.join(tmp, "orphans.py"), "w") as f:
        f.write(script)
    run = Run({"orphans.svc": "exec=%s\nargs=%s\noneshot=1\n" % (
        sys.executable, os.path.join(tmp, "orphans.py"))})
    try:
        cpu_before = cpu_seconds(run.proc.pid)
        started = time.monotonic()
        deadline = started + 600
        while not os.path.exists(done) and time.monotonic() < deadline:
            time.sleep(0.01)
        while time.monotonic() < deadline:          # every zombie child reaped
            zombies = 0
            for entry in os.listdir("/proc"):
                if entry.isdigit():
                    try:
                        with open("/proc/%s/stat" % entry) as f:
                            fields = f.read().rsplit(")", 1)[1].split()
                    except OSError:
                        continue
                    if fields[0] == "Z" and int(fields[1]) == run.proc.pid:
                        zombies += 1
            if not zombies:
                break
            time.sleep(0.01)
        wall = time.monotonic() - started
        return wall, (cpu_seconds(run.proc.pid) - cpu_before) / count
    finally:
        run.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def best_of(runs, function, *args):
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        function(*args)
        times.append(time.perf_counter() - started)
    return min(times)


def bench_parse():
    """(g): seconds, best of 5 (of 3 for `--check`, a process each)."""
    sys.path.insert(0, ROOT)
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    import random
    import adversary
    from schema_init.core import config, graph
    head = b"exec=/bin/true\n"
    settings = best_of(5, config.parse_service, "/s/a.svc", head + b"a=1\n" * 2000)
    blank = best_of(5, config.parse_service, "/s/a.svc", head + b"\n" * 300000)
    long_keys = head + b"".join(b"k%s=1\n" % (b"x" * 3000 + str(i).encode())
                                for i in range(60))
    suggestions = best_of(5, config.parse_service, "/s/a.svc", long_keys)
    chain = [config.ServiceSpec(name="s0", exec="/bin/true")] + [
        config.ServiceSpec(name="s%d" % i, exec="/bin/true", deps=("s%d" % (i - 1),))
        for i in range(1, 10000)]
    order = best_of(5, lambda: graph.boot_order(graph.resolve(chain, [])))
    tmp = tempfile.mkdtemp(prefix="schema-parse-")
    try:
        chain_dir, noise_dir = os.path.join(tmp, "chain"), os.path.join(tmp, "noise")
        os.makedirs(chain_dir)
        os.makedirs(noise_dir)
        for i in range(10000):
            with open(os.path.join(chain_dir, "s%d.svc" % i), "w") as f:
                f.write("exec=/bin/true\noneshot=1\n" + ("dep=s%d\n" % (i - 1) if i else ""))
        with open(os.path.join(noise_dir, "noise.svc"), "wb") as f:
            f.write(adversary.unknown_keys_text(random.Random(1), 1000 * 1000)[:1000 * 1000])

        def check(directory):
            subprocess.run([BIN, "--check", directory], capture_output=True)
        check_chain = best_of(3, check, chain_dir)
        check_noise = best_of(3, check, noise_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return settings, blank, suggestions, order, check_chain, check_noise


def measure(idle_seconds=60):
    """Every microbenchmark: {"rows": [(what, measured, goal), ...], name: value, ...}."""
    run = Run({"s%02d.svc" % i: daemon() for i in range(20)})
    try:
        run.wait_settled()
        ctl_status, ctl_version = bench_ctl(run)
    finally:
        run.stop()
    idle, idle_involuntary, rss, anon = bench_idle(idle_seconds)
    first, last, per_level = bench_chain()
    rss_one, rss_many, per_service, json_time, client_start, anon_per_service = bench_scale()
    orphans_wall, orphan_cpu = bench_orphans()
    settings, blank, suggestions, order, check_chain, check_noise = bench_parse()
    rows = [
        ("(a) voluntary context switches, %g s idle, 20 stable services" % idle_seconds,
         "%d (involuntary %d)" % (idle, idle_involuntary), "0"),
        ("(b) 100-service ready_path chain: first promotion / last promotion",
         "%.3f s / %.3f s" % (first, last), ""),
        ("(b) per level", "%.2f ms" % (per_level * 1000), "<= 5 ms"),
        ("(c) RSS with 1 service / with 1,000 services", "%d KB / %d KB" % (rss_one, rss_many),
         ""),
        ("(c) RSS per service (of which anonymous memory)",
         "%.0f bytes (%.0f bytes)" % (per_service, anon_per_service), "<= 2048"),
        ("(c) `schema-ctl status --json`, 1,000 services (best of 5)",
         "%.1f ms" % (json_time * 1000), ""),
        ("(d) idle supervisor RSS / RssAnon, 20 services", "%d KB / %d KB" % (rss, anon), ""),
        ("(e) 10,000 orphaned grandchildren: created and all reaped / supervisor CPU per orphan",
         "%.1f s / %.0f us" % (orphans_wall, orphan_cpu * 1e6), ""),
        ("(f) `schema-ctl status` round trip, 20 services (median of 20) / `--version`",
         "%.1f ms / %.1f ms" % (ctl_status * 1000, ctl_version * 1000), "<= 10 ms"),
        ("(g) a .svc of 2,000 settings / of 300,000 blank lines rejected",
         "%.1f ms / %.1f ms" % (settings * 1000, blank * 1000), ""),
        ("(g) a .svc of 60 unknown keys of 3,000 characters (did-you-mean)",
         "%.1f ms" % (suggestions * 1000), ""),
        ("(g) a 10,000-deep chain resolved and ordered", "%.0f ms" % (order * 1000), ""),
        ("(g) `schema-init --check`: the 10,000-deep chain / 1 MB of unknown keys",
         "%.2f s / %.2f s" % (check_chain, check_noise), ""),
    ]
    return {"rows": rows, "idle_switches": idle, "idle_involuntary": idle_involuntary,
            "chain_per_level_ms": per_level * 1000, "per_service_bytes": per_service,
            "orphans_10000_wall_s": orphans_wall, "orphan_cpu_us": orphan_cpu * 1e6,
            "ctl_status_ms": ctl_status * 1000, "ctl_version_ms": ctl_version * 1000,
            "ctl_json_1000_ms": json_time * 1000, "client_version_ms": client_start * 1000,
            "reject_2000_settings_ms": settings * 1000, "reject_300000_lines_ms": blank * 1000,
            "long_unknown_keys_ms": suggestions * 1000, "chain_10000_order_ms": order * 1000,
            "check_chain_10000_s": check_chain, "check_unknown_keys_1mb_s": check_noise,
            "binary": BIN}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--idle-seconds", type=float, default=60)
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "REPORT-supervisor.md"))
    args = parser.parse_args()
    result = measure(args.idle_seconds)
    report = ("# Supervisor benchmarks\n\nMeasured by `python bench/supervisor_bench.py "
              "--idle-seconds %g` on %s, %s\n(binary: `%s`).\n\n| what | measured | goal |\n"
              "|---|---|---|\n" % (args.idle_seconds, time.strftime("%Y-%m-%d"),
                                   os.uname().machine, BIN))
    report += "".join("| %s | %s | %s |\n" % row for row in result["rows"])
    with open(args.out, "w") as f:
        f.write(report)
    sys.stdout.write(report)


if __name__ == "__main__":
    main()
