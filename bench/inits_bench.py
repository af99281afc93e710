"""Footprint of five inits on one Debian 12 root: schema-init, systemd, sysvinit, runit,
busybox init (bench/README.md says how and why).

    python bench/inits_bench.py [--boots 3] [--idle 60] [--settle 20] [--inits a,b,...]
                                [--no-supervisor] [--results bench/results]

One disk image (build/mkdebian.sh FLAVOUR=bench, distros/bench/configure.sh) holds every
init and the same services for each; a boot differs from another only in `init=` on the
kernel command line. Every boot: the host's kernel and initramfs, 512 MB, one CPU, QEMU
TCG, the disk opened with -snapshot (each boot starts from the same bytes), the kernel
tracing every exec and every fork of PID 1 (`trace_event=`) so that PID 1's exec and its
first child's exec are timed by the kernel's own clock. Once sshd answers,
/usr/local/sbin/bench-probe (distros/bench/common) waits for every service, lets the
machine settle and reads PID 1's memory; a second call counts PID 1's context switches
while idle and dumps the trace. Boots rotate through the inits so drift on this shared
machine hits all; a boot starts while the machine before it idles (--no-overlap: not).

Results: bench/results/inits-STAMP.{json,md,png}, bench/REPORT-inits.md (the latest), the
table in README.md between its `inits-table` markers. Reports, never asserts.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, os.path.join(ROOT, "bench"))

import debian_vm  # noqa: E402

INITS = {
    "schema-init": "/usr/sbin/schema-init",
    "systemd": "/lib/systemd/systemd",
    "sysvinit": "/sbin/init",
    "runit": "/lib/runit/runit-init",
    "busybox": "/usr/local/sbin/busybox-init",
}
TRACE = "trace_event=sched:sched_process_exec,sched:sched_process_fork"
# What the original C schema-init's README claims for itself; its source is not here.
ORIGINAL_CLAIM = {"pid1_rss_kb": 892, "pid1_threads": 1}
# The figures reported per init, each as median / min / max over the boots.
FIGURES = ("pid1_rss_kb", "pid1_rss_anon_kb", "pid1_vmrss_kb", "pid1_pss_kb", "pid1_private_dirty_kb",
           "pid1_threads", "wakeups_per_min", "boot_to_ready_s", "kernel_to_pid1_exec_s",
           "exec_to_first_spawn_ms", "mem_used_kb", "processes", "pid1_binary_bytes")


LOGS = os.path.join(ROOT, "build", "tmp", "bench-logs")


def progress(text):
    """One line of progress on the terminal; the tools' own output goes to LOGS."""
    print("inits_bench: %s" % text, flush=True)


def build_image(path):
    """mkdebian.sh's pages of output go to LOGS/mkdebian.log; on a failure its last
    lines are shown."""
    env = dict(os.environ, FLAVOUR="bench",
               CUSTOMIZE=os.path.join(ROOT, "distros", "bench", "configure.sh"))
    os.makedirs(LOGS, exist_ok=True)
    log = os.path.join(LOGS, "mkdebian.log")
    progress("step 1/2: the Debian image (a few minutes the first time; log: %s)" % log)
    with open(log, "w") as out:
        done = subprocess.run([os.path.join(ROOT, "build", "mkdebian.sh"), path, "2048"],
                              env=env, timeout=1800, stdout=out, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        with open(log, errors="replace") as f:
            sys.stderr.write("".join(f.readlines()[-30:]))
        raise SystemExit("inits_bench: mkdebian.sh failed (%d; log: %s)" % (done.returncode,
                                                                          log))


GENERATORS = ("-generators/",)  # systemd's generators: its configuration step, not units


def parse_trace(lines):
    """PID 1's last exec (the init itself, after any initramfs or wrapper) and the first
    exec after it by one of PID 1's descendants (sysvinit runs its children through an
    intermediate fork; systemd's generators are not counted: they are not units):
    (exec time, first spawn time), kernel seconds."""
    events = []
    for line in lines:
        m = re.search(r"\s(\d+\.\d+): sched_process_(exec|fork): (.*)", line)
        if m:
            events.append((float(m.group(1)), m.group(2), dict(re.findall(r"(\w+)=(\S+)",
                                                                            m.group(3)))))
    events.sort(key=lambda e: e[0])
    pid1 = [stamp for stamp, kind, f in events if kind == "exec" and f.get("pid") == "1"]
    if not pid1:
        return None, None
    start = pid1[-1]
    family = {"1"}
    for stamp, kind, fields in events:
        if stamp < start:
            continue
        if kind == "fork" and fields.get("pid") in family:
            family.add(fields.get("child_pid"))
        elif (kind == "exec" and fields.get("pid") != "1" and fields.get("pid") in family
              and not any(g in fields.get("filename", "") for g in GENERATORS)):
            return start, stamp
    return start, None


def parse_probe(text):
    values = dict(re.findall(r"^(\w+)=(.*)$", text.split("trace_begin")[0], re.M))
    trace = text.split("trace_begin", 1)[-1].split("trace_end", 1)[0].splitlines()
    if values.get("ready") == "never" or "ready_uptime" not in values:
        raise RuntimeError("not every service came up:\n" + text[:3000])
    start, first = parse_trace(trace)
    number = lambda key: int(values[key])  # noqa: E731
    return {
        "pid1_exe": values.get("pid1_exe"),
        # smaps_rollup walks the page tables; status's VmRSS/RssAnon are the kernel's
        # counters, which a sleeping process may not have flushed (busybox init: 12 kB)
        "pid1_rss_kb": number("rollup_Rss"),
        "pid1_rss_anon_kb": number("rollup_Anonymous"),
        "pid1_vmrss_kb": number("VmRSS"),
        "pid1_pss_kb": number("rollup_Pss"),
        "pid1_private_dirty_kb": number("rollup_Private_Dirty"),
        "pid1_threads": number("Threads"),
        "wakeups_per_min": number("switches_idle") * 60.0 / float(values["idle_secs"]),
        "boot_to_ready_s": float(values["ready_uptime"]),
        "kernel_to_pid1_exec_s": start,
        "exec_to_first_spawn_ms": None if first is None else (first - start) * 1000.0,
        "mem_used_kb": number("MemTotal") - number("MemAvailable"),
        "processes": number("processes"),
        "pid1_binary_bytes": number("pid1_binary_bytes"),
    }


def boot_once(image, init, settle, idle, work, idling=None):
    """Boot INIT, measure, kill the machine. IDLING (a threading.Event) is set as soon as
    the machine only idles (or has failed): the next boot may start then."""
    v = debian_vm.DebianVM(work, init=INITS[init], image=image, append=TRACE,
                           devices=["-snapshot", "-smp", "1"])
    v.start()
    try:
        v.wait_ssh(300)
        ready = probe(v, "ready %d" % settle, settle + 300)
        if "ready=never" in ready:
            raise RuntimeError("%s: not every service came up:\n%s\nconsole:\n%s" % (
                init, ready, v.text()[-3000:]))
        if idling is not None:
            idling.set()
        return parse_probe(ready + probe(v, "idle %d" % idle, idle + 120))
    finally:
        if idling is not None:
            idling.set()
        v.kill()


def probe(v, args, timeout):
    result = v.ssh("/usr/local/sbin/bench-probe " + args, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError("bench-probe %s failed (%d): %s\nconsole:\n%s" % (
            args, result.returncode, result.stderr, v.text()[-3000:]))
    return result.stdout


def boot_all(image, names, args, work):
    """Every boot, rotating through the inits. With overlap, a boot starts while the
    machine before it idles (its figures are read in the guest: only its boot needs the
    host's CPU), never while another machine boots."""
    runs = {name: [] for name in names}
    failures, threads = [], []
    total, finished = args.boots * len(names), []
    lock = threading.Lock()
    os.makedirs(LOGS, exist_ok=True)
    runs_log = open(os.path.join(LOGS, "boots.jsonl"), "w")
    progress("step 2/2: %d boots (%s, %d each; every figure in %s)"
             % (total, ", ".join(names), args.boots, runs_log.name))
    for i in range(args.boots):
        for name in names[i % len(names):] + names[:i % len(names)]:
            idling = threading.Event()

            def job(name=name, i=i, idling=idling):
                try:
                    run = boot_once(image, name, args.settle, args.idle,
                                    os.path.join(work, "%s-%d" % (name, i)), idling)
                    runs[name].append(run)
                    outcome = "ready in %s s" % run.get("boot_to_ready_s")
                    with lock:
                        runs_log.write("%s %s\n" % (name, json.dumps(run)))
                        runs_log.flush()
                except Exception as error:  # reported after the others have finished
                    failures.append("%s boot %d: %s" % (name, i + 1, error))
                    outcome = "failed (reported at the end)"
                with lock:
                    finished.append(name)
                    progress("boot %d/%d done: %s %s" % (len(finished), total, name, outcome))
            thread = threading.Thread(target=job)
            thread.start()
            threads.append(thread)
            if args.overlap:
                idling.wait()
            else:
                thread.join()
    for thread in threads:
        thread.join()
    runs_log.close()
    if failures:
        raise RuntimeError("\n\n".join(failures))
    return runs


def summary(runs):
    figures = {}
    for key in FIGURES:
        values = [r[key] for r in runs if r.get(key) is not None]
        if values:
            figures[key] = {"median": statistics.median(values), "min": min(values),
                            "max": max(values)}
    return figures


def fmt(figure, digits=0, scale=1.0):
    if not figure:
        return "-"
    form = "%%.%df" % digits
    median, low, high = (form % (figure[k] / scale) for k in ("median", "min", "max"))
    return median if low == high else "%s (%s-%s)" % (median, low, high)


def markdown(result, command):
    inits = result["inits"]
    base = inits.get("systemd", {})
    lines = [
        "# Five inits on one Debian 12 root",
        "",
        "`%s` on %s (%s). The same root and services for each init (distros/bench), "
        "QEMU TCG, %s, 512 MB, 1 CPU, the host's kernel `%s`; medians (min-max) of %d boots "
        "each; PID 1 measured after a %d s settle, wake-ups over %d s idle. How: "
        "bench/README.md." % (command, result["date"], result["host"], "-snapshot",
                               result["kernel"], result["boots"], result["settle_s"],
                               result["idle_s"]),
        "",
        "| init | PID 1 Rss (kB) | Anonymous | Pss | Private_Dirty | threads | wake-ups/min "
        "| kernel -> ready (s) | exec -> first spawn (ms) | used memory (MB) | processes "
        "| PID 1 binary (kB) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, f in inits.items():
        lines.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            name, fmt(f.get("pid1_rss_kb")), fmt(f.get("pid1_rss_anon_kb")),
            fmt(f.get("pid1_pss_kb")), fmt(f.get("pid1_private_dirty_kb")),
            fmt(f.get("pid1_threads")), fmt(f.get("wakeups_per_min"), 1),
            fmt(f.get("boot_to_ready_s"), 1), fmt(f.get("exec_to_first_spawn_ms"), 1),
            fmt(f.get("mem_used_kb"), 1, 1024.0), fmt(f.get("processes")),
            fmt(f.get("pid1_binary_bytes"), 0, 1024.0)))
    lines.append("| original C schema-init (claimed, not measured) | %d | | | | %d | | | | | | |"
                 % (ORIGINAL_CLAIM["pid1_rss_kb"], ORIGINAL_CLAIM["pid1_threads"]))
    if base:
        lines += ["", "Ratios to systemd (medians; below 1 is less):", "",
                  "| init | Rss | Private_Dirty | used memory | kernel -> ready "
                  "| exec -> first spawn |", "|---|---|---|---|---|---|"]
        for name, f in inits.items():
            def ratio(key):
                if not f.get(key) or not base.get(key) or not base[key]["median"]:
                    return "-"
                return "%.2f" % (f[key]["median"] / base[key]["median"])
            lines.append("| %s | %s | %s | %s | %s | %s |" % (
                name, ratio("pid1_rss_kb"), ratio("pid1_private_dirty_kb"),
                ratio("mem_used_kb"), ratio("boot_to_ready_s"),
                ratio("exec_to_first_spawn_ms")))
    supervisor = result.get("supervisor")
    if supervisor:
        lines += ["", "## schema-init's supervisor on the host (`bench/supervisor_bench.py`)",
                  "", "| what | measured | goal |", "|---|---|---|"]
        lines += ["| %s | %s | %s |" % row for row in supervisor["rows"]]
    lines += ["", "Every boot:", ""]
    for name, runs in result["runs"].items():
        lines.append("- %s: %s" % (name, "; ".join(
            "ready %.1f s, Private_Dirty %d kB, %.1f wake-ups/min" % (
                r["boot_to_ready_s"], r["pid1_private_dirty_kb"], r["wakeups_per_min"])
            for r in runs)))
    return "\n".join(lines) + "\n"


def chart(result, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    names = list(result["inits"])
    rss = [result["inits"][n]["pid1_rss_kb"]["median"] / 1024.0 for n in names]
    dirty = [result["inits"][n]["pid1_private_dirty_kb"]["median"] / 1024.0 for n in names]
    wake = [result["inits"][n]["wakeups_per_min"]["median"] for n in names]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    xs = range(len(names))
    left.bar([x - 0.2 for x in xs], rss, 0.4, label="Rss")
    left.bar([x + 0.2 for x in xs], dirty, 0.4, label="Private_Dirty")
    left.set_xticks(list(xs), names)
    left.set_ylabel("PID 1 memory (MB)")
    left.legend()
    right.bar(list(xs), wake, 0.5, color="tab:red")
    right.set_xticks(list(xs), names)
    right.set_ylabel("PID 1 wake-ups per minute, idle")
    fig.suptitle("PID 1 on one Debian 12 root (%s)" % result["date"])
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    return True


def update_readme(table, path=os.path.join(ROOT, "README.md")):
    """Put TABLE between README's inits-table markers (nothing if they are not there)."""
    with open(path) as f:
        text = f.read()
    begin, end = "<!-- inits-table -->", "<!-- /inits-table -->"
    if begin not in text or end not in text:
        return
    head, rest = text.split(begin, 1)
    tail = rest.split(end, 1)[1]
    with open(path, "w") as f:
        f.write(head + begin + "\n" + table + end + tail)


def main(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument("--boots", type=int, default=3)
    parser.add_argument("--idle", type=int, default=60)
    parser.add_argument("--settle", type=int, default=20)
    parser.add_argument("--no-overlap", dest="overlap", action="store_false",
                        help="boot only when no other machine runs")
    parser.add_argument("--inits", default=",".join(INITS))
    parser.add_argument("--image", help="an image made before (else built)")
    parser.add_argument("--no-supervisor", action="store_true",
                        help="skip the supervisor microbenchmarks")
    parser.add_argument("--results", default=os.path.join(ROOT, "bench", "results"))
    parser.add_argument("--report", default=os.path.join(ROOT, "bench", "REPORT-inits.md"))
    parser.add_argument("--no-readme", action="store_true")
    args = parser.parse_args(argv)
    names = [n for n in args.inits.split(",") if n]
    unknown = set(names) - set(INITS)
    if unknown:
        parser.error("unknown init(s): %s (known: %s)" % (", ".join(sorted(unknown)),
                                                          ", ".join(INITS)))
    command = " ".join(["python bench/inits_bench.py"] + list(argv))
    with tempfile.TemporaryDirectory(prefix="inits-bench-") as work:
        image = args.image
        if not image:
            image = os.path.join(work, "bench.img")
            started = time.monotonic()
            build_image(image)
            progress("image built in %.0f s" % (time.monotonic() - started))
        runs = boot_all(image, names, args, work)
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "host": "%s, %d CPUs" % (os.uname().machine, os.cpu_count()),
        "kernel": os.path.basename(debian_vm.host_boot_files()[0]),
        "boots": args.boots, "idle_s": args.idle, "settle_s": args.settle,
        "overlap": args.overlap,
        "original_claimed": ORIGINAL_CLAIM,
        "inits": {name: summary(runs[name]) for name in names},
        "runs": runs,
    }
    if not args.no_supervisor:
        import supervisor_bench
        result["supervisor"] = supervisor_bench.measure(args.idle)
    os.makedirs(args.results, exist_ok=True)
    stem = os.path.join(args.results, "inits-" + time.strftime("%Y%m%d-%H%M%S"))
    with open(stem + ".json", "w") as f:
        json.dump(result, f, indent=1, sort_keys=True)
    report = markdown(result, command)
    has_chart = chart(result, stem + ".png")
    for path in (stem + ".md", args.report):
        with open(path, "w") as f:
            f.write(report)
            if has_chart:
                f.write("\n![PID 1 memory and wake-ups](%s)\n" % os.path.relpath(
                    stem + ".png", os.path.dirname(path)))
    if not args.no_readme:
        table = report[report.index("| init |"):]
        table = table.split("\n## ")[0].split("\nEvery boot:")[0].rstrip("\n")
        update_readme("Latest run (%s, %d boots each; `bench/REPORT-inits.md`):\n\n%s\n"
                      % (result["date"], result["boots"], table))
    print(report)
    print("results:", stem + ".json")
    print("logs (the image's build, every boot's figures):", LOGS)


if __name__ == "__main__":
    main(sys.argv[1:])
