"""PID 1's memory with systemd units imported: 0 units against 100, and the same 100
services written as .svc files.  Reports, never asserts.

    python bench/units_memory_bench.py [--runs 3] [--binary build/out/schema-init]
                                       [--out bench/REPORT-units-memory.md]

Each case runs the static binary as a supervisor (not PID 1) over a services directory
and, for the unit cases, a unit directory (``--units``): 100 enabled units (services
with the directives real Debian units carry: User=, RuntimeDirectory=, Limit*=,
ExecStartPre=/ExecStop=, sandboxing), each running ``/bin/sleep``.  Once every service
is FUNDAMENTAL and the supervisor has been idle a second after ``sync``, its
/proc/PID/smaps_rollup is read (median of --runs).  "Per service" is the growth from 0
to 100 divided by 100.  Modules: ``schema-ctl test-modules`` (test hooks on): whether
the unit importer (``schema_init.units``) is loaded in the supervisor.
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
sys.path.insert(0, os.path.join(ROOT, "bench"))
from footprint_bench import rollup       # noqa: E402  (the same smaps reading)

COUNT = 100
UNIT = """\
[Unit]
Description=bench unit {i}
After=network.target

[Service]
Type=simple
User=nobody
ExecStartPre=/bin/true
ExecStart=/bin/sleep 100000
ExecStop=/bin/true
RuntimeDirectory=bench{i}
LimitNOFILE=4096
PrivateTmp=yes
NoNewPrivileges=yes
Restart=on-failure

[Install]
WantedBy=multi-user.target
"""
SVC = "exec=/bin/sleep\nargs=100000\nstable_secs=0\nuser=nobody\n"


def make_case(kind, count):
    top = tempfile.mkdtemp(prefix="schema-units-mem-")
    services = os.path.join(top, "services")
    units = os.path.join(top, "units")
    run = os.path.join(top, "run")
    for path in (services, units, run):
        os.makedirs(path)
    wants = os.path.join(units, "multi-user.target.wants")
    os.makedirs(wants)
    if kind == "units":
        for i in range(count):
            name = "bench%03d.service" % i
            with open(os.path.join(units, name), "w") as f:
                f.write(UNIT.format(i=i))
            os.symlink("../" + name, os.path.join(wants, name))
    else:
        for i in range(count):
            with open(os.path.join(services, "bench%03d.svc" % i), "w") as f:
                f.write(SVC)
    if not os.listdir(services):
        with open(os.path.join(services, "once.svc"), "w") as f:
            f.write("exec=/bin/true\noneshot=1\n")
    return top, services, units, run


def request(ctl, socket, words):
    out = subprocess.run([ctl, "--socket", socket] + words, capture_output=True, text=True,
                         timeout=30)
    return out.stdout


def measure(binary, kind, count):
    top, services, units, run = make_case(kind, count)
    ctl = os.path.join(os.path.dirname(binary), "schema-ctl")
    socket = os.path.join(run, "schema-init.sock")
    argv = [binary, "--services", services, "--run-dir", run,
            "--shm", "/schema-umem-%s" % uuid.uuid4().hex[:10]]
    if kind == "units":
        argv += ["--units", units]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=dict(os.environ, SCHEMA_INIT_TEST_HOOKS="1"))
    try:
        want = count if count else 0
        deadline = time.monotonic() + 120
        up = 0
        while time.monotonic() < deadline:
            status = request(ctl, socket, ["status"]) if os.path.exists(socket) else ""
            up = status.count("FUNDAMENTAL")
            if up >= want and ("PERFECT" in status or want):
                break
            time.sleep(0.5)
        subprocess.run(["sync"])
        time.sleep(1.0)
        values = rollup(proc.pid)
        modules = request(ctl, socket, ["test-modules"])
        values["units_loaded"] = "schema_init.units" in modules
        values["up"] = up
        return values
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(top, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", default=os.path.join(ROOT, "build", "out", "schema-init"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "REPORT-units-memory.md"))
    args = parser.parse_args()
    cases = (("no services", "svc", 0), ("100 .svc files", "svc", COUNT),
             ("100 imported units", "units", COUNT))
    rows = []
    for label, kind, count in cases:
        runs = [measure(args.binary, kind, count) for _ in range(args.runs)]
        row = {key: statistics.median(r[key] for r in runs)
               for key in ("Rss", "Pss", "Private_Dirty", "Anonymous")}
        row.update(label=label, up=min(r["up"] for r in runs),
                   units_loaded=any(r["units_loaded"] for r in runs))
        rows.append(row)
        print(label, row, flush=True)
    base = rows[0]
    lines = ["# PID 1's memory with imported units", "",
             "`python bench/units_memory_bench.py --runs %d` on %s (%s): the static binary as "
             "a supervisor, idle, kB from smaps_rollup, median of %d. The units: %d enabled "
             "services with User=, ExecStartPre=, ExecStop=, RuntimeDirectory=, "
             "LimitNOFILE=, PrivateTmp=, NoNewPrivileges=, Restart=on-failure (the bench's "
             "source has the text)." % (args.runs, time.strftime("%Y-%m-%d %H:%M UTC",
                                                                  time.gmtime()),
                                        os.uname().machine, args.runs, COUNT), "",
             "| case | services up | Rss | Private_Dirty | Anonymous | per service "
             "(Private_Dirty) | unit importer in PID 1 |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        per = "-" if row is base else "%d B" % round(
            (row["Private_Dirty"] - base["Private_Dirty"]) * 1024 / COUNT)
        lines.append("| %s | %d | %d | %d | %d | %s | %s |" % (
            row["label"], row["up"], row["Rss"], row["Private_Dirty"], row["Anonymous"], per,
            "yes" if row["units_loaded"] else "no"))
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote", args.out)


if __name__ == "__main__":
    main()
