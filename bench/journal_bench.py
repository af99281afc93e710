"""What the journal sink (schema-journald) costs: its memory (smaps_rollup: Rss,
Private_Dirty) idle and after N messages, its wake-ups while idle (voluntary context
switches over 10 s once its batch has been flushed), and throughput (messages/s) on
each way in: native datagrams, /dev/log syslog datagrams, and a service's stdout (its
NAME.log file, read by the sink).

    .venv/bin/python bench/journal_bench.py [N]          (default N: 100000)

The sink runs under a real schema-init (not PID 1), its three sockets passed by listen=,
in a temporary directory.  SCHEMA_INIT_BIN=build/out/schema-init measures the static
binary instead of the venv's program.  Prints the results and writes
bench/results/journal.json; bench/REPORT-journal.md quotes a run.
"""

import json
import os
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
from test_journal import JournalWorld, native  # noqa: E402


def rollup(pid):
    out = {}
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            parts = line.split()
            if parts[0] in ("Rss:", "Pss:", "Private_Dirty:"):
                out[parts[0][:-1]] = int(parts[1])
    return out


def switches(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("voluntary_ctxt_switches:"):
                return int(line.split()[1])
    return -1


def stored_count(w, key, prefix):
    """Entries of KEY whose MESSAGE starts with PREFIX, in /run (the sink writes there at
    once): counted by their bytes, without parsing."""
    total = 0
    needle = b'"MESSAGE":"' + prefix.encode()
    for name in os.listdir(w.runtime):
        if name.startswith(key + ".jsonl"):
            with open(os.path.join(w.runtime, name), "rb") as f:
                total += f.read().count(needle)
    return total


def wait_stored(w, key, prefix, count, timeout=300):
    deadline = time.monotonic() + timeout
    last = -1
    while time.monotonic() < deadline:
        try:
            with open(os.path.join(w.runtime, key + ".jsonl"), "rb") as f:
                f.seek(0, 2)
                f.seek(max(0, f.tell() - 4096))
                tail = f.read()
        except FileNotFoundError:
            tail = b""
        marker = ('"MESSAGE":"%s %d"' % (prefix, count - 1)).encode()
        if marker in tail:
            return time.monotonic()
        time.sleep(0.005)
        last = stored_count(w, key, prefix) if time.monotonic() > deadline - 1 else last
    raise SystemExit("the sink stored only %d of %d %s messages" % (last, count, prefix))


def flood(sock, path, make, count):
    for n in range(count):
        data = make(n)
        while True:
            try:
                sock.sendto(data, path)
                break
            except BlockingIOError:
                time.sleep(0.0005)


def main(argv):
    count = int(argv[0]) if argv else 100000
    import tempfile
    root = tempfile.mkdtemp(prefix="journal-bench-")
    sink_command = None
    if not os.environ.get("SCHEMA_INIT_BIN") and os.environ.get("JOURNAL_BENCH_LAUNCHER",
                                                                "direct") == "direct":
        # the venv's entry-point script loads importlib.metadata (email, zipfile, ...):
        # not what the static binary carries, so the sink is started without it
        sink_command = [sys.executable, "-c", "import sys; sys.argv[0] = 'schema-journald'; "
                        "from schema_init.__main__ import entry; sys.exit(entry())"]
    w = JournalWorld(root, {"printer.svc": (
        "exec=/bin/sh\nargs=-c\nargs=while [ ! -e %s/go ]; do sleep 0.05; done; "
        "seq -f 'stdout %%.0f' 0 %d; exec sleep 100000\n" % (root, count - 1))},
        sink_args=["--flush-interval", "2", "--runtime-max", "8M", "--storage-max", "16M"],
        sink_command=sink_command)
    w.start()
    results = {"messages": count, "program": os.environ.get("SCHEMA_INIT_BIN", "venv"),
               "launcher": "python -c" if sink_command else "entry point"}
    try:
        pid = w.sink_pid()
        w.supervised.wait_state("printer", "FUNDAMENTAL", 60)
        w.supervised.wait_state("journal", "FUNDAMENTAL", 60)
        time.sleep(5)                       # the start-up entries flushed (interval 2 s)
        results["idle"] = rollup(pid)
        before = switches(pid)
        time.sleep(10)
        results["idle_wakeups_10s"] = switches(pid) - before

        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            started = time.monotonic()
            flood(sock, w.native, lambda n: native(
                (b"MESSAGE", b"native %d" % n), (b"SYSLOG_IDENTIFIER", b"bench"),
                (b"PRIORITY", b"6")), count)
            done = wait_stored(w, "+system", "native", count)
            results["native_per_s"] = round(count / (done - started))
            started = time.monotonic()
            flood(sock, w.devlog, lambda n: b"<14>Dec  1 19:51:14 bench[42]: syslog %d" % n,
                  count)
            done = wait_stored(w, "+system", "syslog", count)
            results["syslog_per_s"] = round(count / (done - started))
        started = time.monotonic()
        open(os.path.join(root, "go"), "w").close()
        done = wait_stored(w, "printer", "stdout", count)
        results["service_stdout_per_s"] = round(count / (done - started))
        time.sleep(3)                       # flushed; then idle again
        results["after"] = rollup(pid)
        before = switches(pid)
        time.sleep(10)
        results["idle_wakeups_10s_after"] = switches(pid) - before
        results["sink_restarted"] = w.sink_pid() != pid
        results["runtime_bytes"] = sum(os.path.getsize(os.path.join(w.runtime, n))
                                       for n in os.listdir(w.runtime))
        results["storage_bytes"] = sum(os.path.getsize(os.path.join(w.storage, n))
                                       for n in os.listdir(w.storage))
        started = time.monotonic()
        lines = w.journalctl("-u", "printer", "-n", "10")
        results["journalctl_u_n10_s"] = round(time.monotonic() - started, 3)
        assert len(lines) == 10 and lines[-1].endswith("stdout %d" % (count - 1)), lines
    finally:
        w.stop()
        subprocess.run(["rm", "-rf", root])
    print(json.dumps(results, indent=1))
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", "journal.json"), "w") as f:
        json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
