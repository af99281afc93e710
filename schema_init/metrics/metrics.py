"""``schema-metrics``: schema-init's state as Prometheus metrics, in a file for
node_exporter's textfile collector (``--collector.textfile.directory=DIR``).

It is a helper of its own, never PID 1: every ``--interval`` seconds (default 15) it
reads the extended shared-memory segment under its seqlock (``analyze.shmread``: three
``pread`` calls) and the supervisor's ``/proc/PID/status``, renders the metrics, and
writes ``DIR/schema_init.prom`` (a temporary file renamed over it, so the collector
never reads half a file) only when the text changed.  The shared memory is written
through a mapping, which inotify does not see, so it is polled; the cost is one short
wake-up per interval for this process, none for PID 1.  Idle, nothing changes: time in
state is exported as the instant the state began (``time() - ...`` in PromQL), as
Prometheus' guidelines ask, so an idle node's file is not rewritten at all.

``--once`` writes the file (or, without ``--dir``, prints the text) and exits.  On
SIGTERM the file is removed: the collector then exports no stale values.
"""

import os
import time

from schema_init.analyze import shmread
from schema_init.core import schema, shmlayout

DEFAULT_DIR = "/run/prometheus-node-exporter"
FILE_NAME = "schema_init.prom"
USAGE = ("usage: schema-metrics [--dir DIR] [--shm NAME] [--interval SECONDS] [--once]\n"
         "  writes DIR/%s for node_exporter's --collector.textfile.directory (default "
         "DIR %s, interval 15 s)\n" % (FILE_NAME, DEFAULT_DIR))

STATES = tuple(schema.STATE_NAMES[state] for state in sorted(schema.STATE_NAMES))

# name -> (type, help): every metric this helper writes (the Grafana dashboard's test
# checks its queries name only these).
METRICS = {
    "schema_init_up": ("gauge", "1 when schema-init's shared memory was read, else 0."),
    "schema_init_service_state": ("gauge", "1 for the state a service is in, 0 for the "
                                  "others."),
    "schema_init_service_weight": ("gauge", "The weight of the service's last probe "
                                   "(F8: 8 is a full word)."),
    "schema_init_service_restarts": ("gauge", "Spawns since the last start or reset "
                                          "(what schema-ctl status shows)."),
    "schema_init_service_restarts_total": ("counter", "Spawns after the first since the "
                                           "service was loaded."),
    "schema_init_service_failures_total": ("counter", "Failed runs since the service was "
                                           "loaded."),
    "schema_init_service_state_since_timestamp_seconds": (
        "gauge", "When the service entered its current state (Unix time): time() minus "
        "this is the time in state."),
    "schema_init_service_ready_latency_seconds": ("gauge", "From the current run's spawn "
                                                  "to its readiness."),
    "schema_init_service_boot_ready_seconds": ("gauge", "From schema-init's start to the "
                                               "service's first readiness."),
    "schema_init_boot_kernel_seconds": ("gauge", "The kernel's time before schema-init "
                                        "started (0 when it is not PID 1)."),
    "schema_init_boot_ready_seconds": ("gauge", "From schema-init's start to the last "
                                       "service's first readiness."),
    "schema_init_supervisor_resident_memory_bytes": ("gauge", "The supervisor's (PID 1's) "
                                                     "resident memory."),
    "schema_init_supervisor_anonymous_memory_bytes": ("gauge", "The supervisor's (PID 1's) "
                                                      "anonymous resident memory."),
    "schema_init_supervisor_wakeups_total": ("counter", "The supervisor's (PID 1's) "
                                             "voluntary context switches: its wake-ups."),
    "schema_init_supervisor_preemptions_total": ("counter", "The supervisor's (PID 1's) "
                                                 "involuntary context switches."),
    "schema_init_ab_info": ("gauge", "The A/B root slot booted and its commit state "
                            "(\"-\": no A/B slots)."),
}


def label(value):
    return value.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n")


def number(value):
    if isinstance(value, int):
        return "%d" % value
    text = "%.6f" % value
    return text.rstrip("0").rstrip(".") if "." in text else text


def render(snap, status, boot_wall):
    """The exposition text; ``boot_wall``: the Unix time of the monotonic clock's 0."""
    samples = {name: [] for name in METRICS}
    samples["schema_init_up"].append(("", 1 if snap is not None else 0))
    if snap is not None:
        init_start = snap["init_start_us"] / 1e6
        origin = snap["supervisor_start_us"] / 1e6
        pid1 = snap["supervisor_pid"] == 1
        samples["schema_init_boot_kernel_seconds"].append(("", init_start if pid1 else 0.0))
        last_ready = None
        for s in snap["services"]:
            service = 'service="%s"' % label(s["name"])
            current = schema.state_name(s["state"])
            for state in STATES:
                samples["schema_init_service_state"].append(
                    ('{%s,state="%s"}' % (service, state), 1 if state == current else 0))
            labels = "{%s}" % service
            samples["schema_init_service_weight"].append((labels, s["weight"]))
            samples["schema_init_service_restarts"].append((labels, s["restart_count"]))
            samples["schema_init_service_restarts_total"].append((labels, max(0, s["spawns"] - 1)))
            samples["schema_init_service_failures_total"].append((labels, s["failures"]))
            if s["state_since_us"]:
                samples["schema_init_service_state_since_timestamp_seconds"].append(
                    (labels, round(boot_wall + s["state_since_us"] / 1e6, 3)))
            if s["spawned_us"] and s["ready_us"] >= s["spawned_us"]:
                samples["schema_init_service_ready_latency_seconds"].append(
                    (labels, (s["ready_us"] - s["spawned_us"]) / 1e6))
            if s["boot_ready_us"] and origin:
                boot_ready = max(0.0, s["boot_ready_us"] / 1e6 - origin)
                samples["schema_init_service_boot_ready_seconds"].append((labels, boot_ready))
                last_ready = boot_ready if last_ready is None else max(last_ready, boot_ready)
        if last_ready is not None:
            samples["schema_init_boot_ready_seconds"].append(("", last_ready))
        samples["schema_init_ab_info"].append((
            '{slot="%s",commit="%s"}' % (shmlayout.AB_SLOTS.get(snap["ab_slot"], "-"),
                                         shmlayout.AB_COMMITS.get(snap["ab_commit"], "-")), 1))
    for key, name, scale in (("rss_kb", "schema_init_supervisor_resident_memory_bytes", 1024),
                             ("anon_kb", "schema_init_supervisor_anonymous_memory_bytes", 1024),
                             ("voluntary", "schema_init_supervisor_wakeups_total", 1),
                             ("involuntary", "schema_init_supervisor_preemptions_total", 1)):
        if key in status:
            samples[name].append(("", status[key] * scale))
    out = []
    for name, (kind, text) in METRICS.items():
        if not samples[name]:
            continue
        out.append("# HELP %s %s" % (name, text))
        out.append("# TYPE %s %s" % (name, kind))
        out += ["%s%s %s" % (name, labels, number(value)) for labels, value in samples[name]]
    return "\n".join(out) + "\n"


def write_atomically(directory, text):
    path = os.path.join(directory, FILE_NAME)
    temporary = os.path.join(directory, "." + FILE_NAME + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        data = text.encode()
        while data:
            data = data[os.write(fd, data):]
    finally:
        os.close(fd)
    os.rename(temporary, path)


class Helper:
    def __init__(self, shm, directory):
        self.reader = shmread.ShmReader(shm)
        self.directory = directory
        self.last = None
        self.boot_wall = None
        self.writes = 0

    def clock_origin(self):
        """The Unix time of the monotonic clock's 0, kept while the wall clock is not
        stepped (so an idle node's timestamps, and so its file, do not change)."""
        now = time.time() - time.monotonic()
        if self.boot_wall is None or abs(now - self.boot_wall) > 0.5:
            self.boot_wall = now
        return self.boot_wall

    def text(self):
        snap = self.reader.read()
        status = shmread.supervisor_status(snap["supervisor_pid"]) if snap else {}
        return render(snap, status, self.clock_origin())

    def step(self):
        """Read, render, write if changed.  True if the file was written."""
        text = self.text()
        if text == self.last:
            return False
        write_atomically(self.directory, text)
        self.last = text
        self.writes += 1
        return True

    def remove(self):
        try:
            os.unlink(os.path.join(self.directory, FILE_NAME))
        except OSError:
            pass


def parse_args(args):
    options = {"dir": None, "shm": shmread.DEFAULT_NAME, "interval": 15.0, "once": False}
    words = list(args)
    while words:
        word = words.pop(0)
        if word == "--once":
            options["once"] = True
        elif word in ("--dir", "--shm", "--interval") and words:
            value = words.pop(0)
            if word == "--interval":
                try:
                    options["interval"] = float(value)
                except ValueError:
                    return None
                if not 0.1 <= options["interval"] <= 86400:
                    return None
            else:
                options[word[2:]] = value
        else:
            return None
    return options


def main(args):
    import sys
    if args[:1] in (["-h"], ["--help"]):
        sys.stdout.write(USAGE)
        return 0
    options = parse_args(args)
    if options is None:
        sys.stderr.write(USAGE)
        return 2
    if options["once"] and options["dir"] is None:
        sys.stdout.write(Helper(options["shm"], None).text())
        return 0
    directory = options["dir"] or DEFAULT_DIR
    try:
        os.makedirs(directory, 0o755, exist_ok=True)
    except OSError as exc:
        sys.stderr.write("schema-metrics: %s: %s\n" % (directory, exc.strerror))
        return 1
    helper = Helper(options["shm"], directory)
    if options["once"]:
        helper.step()
        return 0
    import _signal

    def stop(signo, frame):
        raise SystemExit(0)
    _signal.signal(_signal.SIGTERM, stop)
    try:
        while True:
            try:
                helper.step()
            except OSError as exc:       # a full /run: said, tried again next time
                sys.stderr.write("schema-metrics: %s: %s\n" % (directory, exc.strerror))
            time.sleep(options["interval"])
    finally:
        helper.remove()
