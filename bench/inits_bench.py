"""Footprint of five inits on one Debian 12 root: schema-init, systemd, sysvinit, runit,
busybox init (bench/README.md says how and why).

    python bench/inits_bench.py [--board x86_64|aarch64] [--boots 3] [--idle 60]
                                [--settle 20] [--inits a,b,...] [--no-supervisor]
                                [--results bench/results]

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

--board (BOARDS): x86_64 (the default: the host's kernel, QEMU x86_64) or aarch64 (QEMU
virt, cortex-a53, TCG; an arm64 root, build/mkdebian.sh ARCH=arm64, with Debian's
linux-image-arm64 booting it and the aarch64 static binary in its .deb). From QEMU's start
the host also times SSH's first answer, every service ready, and after the idle a
power-off (each init's own command, POWEROFF) until QEMU exits.

Results: bench/results/inits-STAMP.{json,md,png} (aarch64: inits-aarch64-STAMP.*; the JSON
has "board"), bench/REPORT-inits.md (aarch64: REPORT-inits-aarch64.md; the latest), the
table in README.md between its `inits-table` markers (aarch64: `inits-table-aarch64`).
Reports, never asserts.
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
# How each init is told to power off (over SSH, after the idle). The .deb diverts
# poweroff, halt, telinit and systemctl to schema-init's; the inits' own are called here.
POWEROFF = {
    "schema-init": "/sbin/poweroff",
    "systemd": "systemctl.distrib poweroff",
    "sysvinit": "/sbin/init 0",
    "runit": "/lib/runit/runit-init 0",
    "busybox": "kill -USR2 1",
}
# --before BINARY: an earlier schema-init binary booted in the same run (the same root,
# services and configuration; /usr/sbin's names are the current binary's, whose
# /sbin/poweroff hands a PID 1 that is not its own file to the diverted original:
# schema-ctl asks the socket)
BEFORE = "schema-init-before"
BEFORE_PATH = "/usr/local/lib/schema-before/schema-init"
# The boards (a later one, rpi-zero-w, adds its entry): TARGET is tests/vm.py's BOARDS key
# (QEMU program, machine, console), DEB_ARCH mkdebian.sh's ARCH, KERNEL where the boot
# files come from ("host": the host's /boot; "root": the benchmark root's own /boot),
# BINARY the static binary the .deb is made of (SCHEMA_INIT_BIN overrides), SLOW a factor
# on the waits (TCG emulating another architecture), STEM/REPORT/MARKER where results go.
BOARDS = {
    "x86_64": {"target": "x86_64", "deb_arch": "amd64", "kernel": "host",
               "binary": "build/out/schema-init", "slow": 1,
               "stem": "inits", "report": "REPORT-inits.md", "marker": "inits-table",
               "machine": "QEMU TCG (x86_64)"},
    "aarch64": {"target": "aarch64", "deb_arch": "arm64", "kernel": "root",
                "binary": "build/out/aarch64/schema-init", "slow": 3,
                "stem": "inits-aarch64", "report": "REPORT-inits-aarch64.md",
                "marker": "inits-table-aarch64",
                "machine": "QEMU TCG `-M virt -cpu cortex-a53` (aarch64, emulated on x86_64)"},
}
TRACE = "trace_event=sched:sched_process_exec,sched:sched_process_fork"
# What the original C schema-init's README claims for itself; its source is not here.
ORIGINAL_CLAIM = {"pid1_rss_kb": 892, "pid1_threads": 1}
# The figures reported per init, each as median / min / max over the boots.
FIGURES = ("pid1_rss_kb", "pid1_rss_anon_kb", "pid1_vmrss_kb", "pid1_pss_kb", "pid1_private_dirty_kb",
           "pid1_threads", "wakeups_per_min", "boot_to_ready_s", "kernel_to_pid1_exec_s",
           "exec_to_first_spawn_ms", "mem_used_kb", "processes", "pid1_binary_bytes",
           "qemu_to_ssh_s", "qemu_to_ready_s", "poweroff_s")


LOGS = os.path.join(ROOT, "build", "tmp", "bench-logs")


def progress(text):
    """One line of progress on the terminal; the tools' own output goes to LOGS."""
    print("inits_bench: %s" % text, flush=True)


def bench_root(board):
    """The benchmark root's cache (mkdebian.sh FLAVOUR=bench, ARCH=the board's)."""
    suffix = "" if board["deb_arch"] == "amd64" else "-" + board["deb_arch"]
    return os.path.join(debian_vm.CACHE, "root-bench" + suffix)


def boot_files(board):
    if board["kernel"] == "host":
        return debian_vm.host_boot_files()
    return debian_vm.root_boot_files(bench_root(board))


def build_image(path, board=BOARDS["x86_64"], before=None):
    """mkdebian.sh's pages of output go to LOGS/mkdebian.log; on a failure its last
    lines are shown. BEFORE: an earlier binary, put in the image at BEFORE_PATH."""
    env = dict(os.environ, FLAVOUR="bench",
               CUSTOMIZE=os.path.join(ROOT, "distros", "bench", "configure.sh"))
    if before:
        env["BENCH_BEFORE_BIN"] = os.path.abspath(before)
    if board["deb_arch"] != "amd64":
        env["ARCH"] = board["deb_arch"]
        env.setdefault("SCHEMA_INIT_BIN", os.path.join(ROOT, board["binary"]))
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


def parse_values(text):
    return dict(re.findall(r"^(\w+)=(.*)$", text.split("trace_begin")[0], re.M))


def parse_probe(text):
    values = parse_values(text)
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
        "chain": re.findall(r"^chain: (.*)$", text.split("trace_begin")[0], re.M),
    }


def qemu_to_ready(ended, values):
    """Seconds from QEMU's start to every service ready: the host's clock when the ready
    probe ended (ENDED, from QEMU's start) less the guest's time between ready and the
    probe's last line (probe_end_uptime; None for a probe without it)."""
    if "probe_end_uptime" not in values or "ready_uptime" not in values:
        return None
    return ended - (float(values["probe_end_uptime"]) - float(values["ready_uptime"]))


def power_off(v, init, timeout):
    """Seconds from the power-off command's SSH start until QEMU exited (None: it did not
    within TIMEOUT); the command's SSH connection is counted (ssh_true_s: one SSH round
    trip just before, for scale)."""
    started = time.monotonic()
    command = subprocess.Popen(
        ["ssh", "-i", debian_vm.KEY, "-p", str(v.port), "-o", "StrictHostKeyChecking=no",
         "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=10", "-o", "BatchMode=yes",
         "-o", "LogLevel=ERROR", "root@127.0.0.1", POWEROFF[init]],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        v.proc.wait(timeout)
        return time.monotonic() - started
    except subprocess.TimeoutExpired:
        return None
    finally:
        if command.poll() is None:
            command.kill()
        command.wait()


def boot_once(image, init, settle, idle, work, idling=None, board=BOARDS["x86_64"],
              files=None):
    """Boot INIT, measure, power it off (timed), kill the machine if it has not gone.
    IDLING (a threading.Event) is set as soon as the machine only idles (or has failed):
    the next boot may start then."""
    slow = board["slow"]
    v = debian_vm.DebianVM(work, init=INITS[init], image=image, append=TRACE,
                           devices=["-snapshot", "-smp", "1"], target=board["target"],
                           boot_files=files or boot_files(board))
    v.start()
    try:
        ssh_s = v.wait_ssh(300 * slow)
        ready = probe(v, "ready %d" % settle, settle + 300 * slow)
        ready_ended = time.monotonic() - v.started
        if "ready=never" in ready:
            raise RuntimeError("%s: not every service came up:\n%s\nconsole:\n%s" % (
                init, ready, v.text()[-3000:]))
        if idling is not None:
            idling.set()
        run = parse_probe(ready + probe(v, "idle %d" % idle, idle + 120 * slow))
        run["qemu_to_ssh_s"] = ssh_s
        run["qemu_to_ready_s"] = qemu_to_ready(ready_ended, parse_values(ready))
        before = time.monotonic()
        v.ssh("true", timeout=60)
        run["ssh_true_s"] = time.monotonic() - before
        run["poweroff_s"] = power_off(v, init, 60 * slow)
        if run["poweroff_s"] is None:
            run["poweroff_note"] = "QEMU still ran %d s after %r" % (60 * slow, POWEROFF[init])
        return run
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


def boot_all(image, names, args, work, board=BOARDS["x86_64"]):
    """Every boot, rotating through the inits. With overlap, a boot starts while the
    machine before it idles (its figures are read in the guest: only its boot needs the
    host's CPU), never while another machine boots."""
    runs = {name: [] for name in names}
    failures, threads, failed = [], [], {}
    total, finished = args.boots * len(names), []
    lock = threading.Lock()
    os.makedirs(LOGS, exist_ok=True)
    runs_log = open(os.path.join(LOGS, "boots.jsonl"), "w")
    progress("step 2/2: %d boots on %s (%s, %d each; every figure in %s)"
             % (total, args.board, ", ".join(names), args.boots, runs_log.name))
    files = boot_files(board)
    for i in range(args.boots):
        for name in names[i % len(names):] + names[:i % len(names)]:
            idling = threading.Event()

            def job(name=name, i=i, idling=idling):
                try:
                    run = boot_once(image, name, args.settle, args.idle,
                                    os.path.join(work, "%s-%d" % (name, i)), idling,
                                    board, files)
                    runs[name].append(run)
                    outcome = "ready in %s s (QEMU -> SSH %.1f s, power-off %s s)" % (
                        run.get("boot_to_ready_s"), run["qemu_to_ssh_s"],
                        None if run["poweroff_s"] is None else "%.1f" % run["poweroff_s"])
                    with lock:
                        runs_log.write("%s %s\n" % (name, json.dumps(run)))
                        runs_log.flush()
                except Exception as error:  # reported after the others have finished
                    failures.append("%s boot %d: %s" % (name, i + 1, error))
                    failed.setdefault(name, []).append(str(error).splitlines()[0][:200])
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
    if failures and not args.keep_going:
        raise RuntimeError("\n\n".join(failures))
    for failure in failures:
        sys.stderr.write("inits_bench: %s\n\n" % failure)
    args.failed = failed
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
    board = BOARDS[result.get("board", "x86_64")]
    kernel = ("the host's kernel `%s`" if board["kernel"] == "host"
              else "Debian's kernel `%s` (linux-image-%s, in the root)")
    kernel = kernel % ((result["kernel"],) if board["kernel"] == "host"
                       else (result["kernel"], board["deb_arch"]))
    lines = [
        "# Five inits on one Debian 12 root" + (
            "" if board["deb_arch"] == "amd64" else " (%s, %s)" % (result["board"],
                                                                    board["deb_arch"])),
        "",
        "`%s` on %s (%s). The same root and services for each init (distros/bench), "
        "%s, %s, 512 MB, 1 CPU, %s; medians (min-max) of %d boots "
        "each; PID 1 measured after a %d s settle, wake-ups over %d s idle. How: "
        "bench/README.md." % (command, result["date"], result["host"], board["machine"],
                               "-snapshot", kernel, result["boots"], result["settle_s"],
                               result["idle_s"]),
        "",
        "| init | PID 1 Rss (kB) | Anonymous | Pss | Private_Dirty | threads | wake-ups/min "
        "| kernel -> ready (s) | exec -> first spawn (ms) | used memory (MB) | processes "
        "| PID 1 binary (kB) | QEMU -> SSH (s) | QEMU -> ready (s) | power-off (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, f in inits.items():
        lines.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s "
                     "| %s |" % (
            name, fmt(f.get("pid1_rss_kb")), fmt(f.get("pid1_rss_anon_kb")),
            fmt(f.get("pid1_pss_kb")), fmt(f.get("pid1_private_dirty_kb")),
            fmt(f.get("pid1_threads")), fmt(f.get("wakeups_per_min"), 1),
            fmt(f.get("boot_to_ready_s"), 1), fmt(f.get("exec_to_first_spawn_ms"), 1),
            fmt(f.get("mem_used_kb"), 1, 1024.0), fmt(f.get("processes")),
            fmt(f.get("pid1_binary_bytes"), 0, 1024.0), fmt(f.get("qemu_to_ssh_s"), 1),
            fmt(f.get("qemu_to_ready_s"), 1), fmt(f.get("poweroff_s"), 1)))
    lines.append("| original C schema-init (claimed, not measured) | %d | | | | %d | | | | | | "
                 "| | | |" % (ORIGINAL_CLAIM["pid1_rss_kb"], ORIGINAL_CLAIM["pid1_threads"]))
    if base:
        lines += ["", "Ratios to systemd (medians; below 1 is less):", "",
                  "| init | Rss | Private_Dirty | used memory | kernel -> ready "
                  "| exec -> first spawn | QEMU -> SSH | QEMU -> ready | power-off |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for name, f in inits.items():
            def ratio(key):
                if not f.get(key) or not base.get(key) or not base[key]["median"]:
                    return "-"
                return "%.2f" % (f[key]["median"] / base[key]["median"])
            lines.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                name, ratio("pid1_rss_kb"), ratio("pid1_private_dirty_kb"),
                ratio("mem_used_kb"), ratio("boot_to_ready_s"),
                ratio("exec_to_first_spawn_ms"), ratio("qemu_to_ssh_s"),
                ratio("qemu_to_ready_s"), ratio("poweroff_s")))
    if board["deb_arch"] != "amd64":
        lines += ["", "Every time here is QEMU's TCG emulating the board's CPU on the host's "
                  "%s: several times a real board's and not comparable with the x86_64 run; "
                  "read the ratios to systemd of this run. Memory and process figures are "
                  "the guest's own." % os.uname().machine]
    skipped = result.get("skipped")
    if skipped:
        lines += ["", "Not measured: " + "; ".join("%s (%s)" % item for item in skipped.items())]
    supervisor = result.get("supervisor")
    if supervisor:
        lines += ["", "## schema-init's supervisor on the host (`bench/supervisor_bench.py`)",
                  "", "| what | measured | goal |", "|---|---|---|"]
        lines += ["| %s | %s | %s |" % row for row in supervisor["rows"]]
    lines += ["", "Every boot:", ""]
    for name, runs in result["runs"].items():
        lines.append("- %s: %s" % (name, "; ".join(
            "ready %.1f s, Private_Dirty %d kB, %.1f wake-ups/min%s" % (
                r["boot_to_ready_s"], r["pid1_private_dirty_kb"], r["wakeups_per_min"],
                "" if "poweroff_s" not in r else ", power-off %s" % (
                    r.get("poweroff_note") if r["poweroff_s"] is None
                    else "%.1f s" % r["poweroff_s"]))
            for r in runs)))
    lines += critical_chains(result)
    return "\n".join(lines) + "\n"


def critical_chains(result):
    """Each init's critical chain to the SSH server and its blame, from its last boot
    (the probe asks the init itself; not every init can say)."""
    lines = []
    for name, runs in result["runs"].items():
        if runs and runs[-1].get("chain"):
            lines += ["", "What held %s's last boot (its critical chain to the SSH server, "
                      "then its blame):" % name, "", "```"] + runs[-1]["chain"] + ["```"]
    return lines


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
    fig.suptitle("PID 1 on one Debian 12 root (%s, %s)" % (result.get("board", "x86_64"),
                                                           result["date"]))
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    return True


def publish(result, report, stem, report_path, marker=None):
    """RESULT as STEM.json, REPORT with its chart as STEM.md and at REPORT_PATH, and its
    tables in README.md between MARKER's markers (None: README unchanged)."""
    with open(stem + ".json", "w") as f:
        json.dump(result, f, indent=1, sort_keys=True)
    has_chart = chart(result, stem + ".png")
    for path in (stem + ".md", report_path):
        with open(path, "w") as f:
            f.write(report)
            if has_chart:
                f.write("\n![PID 1 memory and wake-ups](%s)\n" % os.path.relpath(
                    stem + ".png", os.path.dirname(path)))
    if marker:
        table = report[report.index("| init |"):]
        table = table.split("\n## ")[0].split("\nEvery boot:")[0].rstrip("\n")
        board = result.get("board", "x86_64")
        update_readme("Latest run (%s%s, %d boots each; `%s`):\n\n%s\n"
                      % ("" if board == "x86_64" else board + ", ", result["date"],
                         result["boots"], os.path.relpath(report_path, ROOT), table),
                      marker=marker)
    print(report)
    print("results:", stem + ".json")


def update_readme(table, path=os.path.join(ROOT, "README.md"), marker="inits-table"):
    """Put TABLE between README's MARKER markers (nothing if they are not there)."""
    with open(path) as f:
        text = f.read()
    begin, end = "<!-- %s -->" % marker, "<!-- /%s -->" % marker
    if begin not in text or end not in text:
        return
    head, rest = text.split(begin, 1)
    tail = rest.split(end, 1)[1]
    with open(path, "w") as f:
        f.write(head + begin + "\n" + table + end + tail)


def main(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument("--board", default="x86_64", choices=sorted(BOARDS))
    parser.add_argument("--boots", type=int, default=3)
    parser.add_argument("--idle", type=int, default=60)
    parser.add_argument("--settle", type=int, default=20)
    parser.add_argument("--no-overlap", dest="overlap", action="store_false",
                        help="boot only when no other machine runs")
    parser.add_argument("--inits", default=",".join(INITS))
    parser.add_argument("--image", help="an image made before (else built)")
    parser.add_argument("--before", metavar="BINARY",
                        help="an earlier schema-init binary of the board, booted in the "
                        "same run as %s" % BEFORE)
    parser.add_argument("--no-supervisor", action="store_true",
                        help="skip the supervisor microbenchmarks (they run on the host: "
                        "only with --board x86_64)")
    parser.add_argument("--results", default=os.path.join(ROOT, "bench", "results"))
    parser.add_argument("--report", help="bench/REPORT-inits.md (aarch64: "
                        "bench/REPORT-inits-aarch64.md)")
    parser.add_argument("--no-readme", action="store_true")
    parser.add_argument("--keep-going", action="store_true",
                        help="an init whose boots failed is left out (named in the report) "
                        "instead of failing the run")
    args = parser.parse_args(argv)
    board = BOARDS[args.board]
    report_path = args.report or os.path.join(ROOT, "bench", board["report"])
    names = [n for n in args.inits.split(",") if n]
    if args.before:
        INITS[BEFORE], POWEROFF[BEFORE] = BEFORE_PATH, "/usr/sbin/schema-ctl poweroff"
        names.insert(1, BEFORE)
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
            build_image(image, board, args.before)
            progress("image built in %.0f s" % (time.monotonic() - started))
        runs = boot_all(image, names, args, work, board)
    failed = getattr(args, "failed", {})
    skipped = {name: "%d of %d boots failed: %s" % (len(errors), args.boots, errors[0])
               for name, errors in failed.items()}
    names = [name for name in names if runs[name]]
    runs = {name: runs[name] for name in names}
    result = {
        "board": args.board,
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "host": "%s, %d CPUs" % (os.uname().machine, os.cpu_count()),
        "kernel": os.path.basename(boot_files(board)[0]),
        "boots": args.boots, "idle_s": args.idle, "settle_s": args.settle,
        "overlap": args.overlap,
        "original_claimed": ORIGINAL_CLAIM,
        "inits": {name: summary(runs[name]) for name in names},
        "runs": runs,
    }
    if skipped:
        result["skipped"] = skipped
    if not args.no_supervisor and args.board == "x86_64":
        import supervisor_bench
        result["supervisor"] = supervisor_bench.measure(args.idle)
    os.makedirs(args.results, exist_ok=True)
    stem = os.path.join(args.results, board["stem"] + "-" + time.strftime("%Y%m%d-%H%M%S"))
    publish(result, markdown(result, command), stem, report_path,
            None if args.no_readme else board["marker"])
    print("logs (the image's build, every boot's figures):", LOGS)


if __name__ == "__main__":
    main(sys.argv[1:])
