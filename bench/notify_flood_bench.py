"""What a flood of datagrams on a service's NOTIFY_SOCKET costs the supervisor (not PID 1):
its CPU time (utime + stime from /proc/PID/stat) while SENDERS processes of another
user (nobody, 65534) send to it as fast as the kernel lets them for SECONDS seconds,
and how many datagrams they got through.  Needs root (to become nobody).

    .venv/bin/python bench/notify_flood_bench.py [--c] [SECONDS [SENDERS]]   (default: 5 1)

--c: the senders are a small C program (built with cc in a temporary directory), which
sends faster than Python can: the worst case for the receiving side.

The abstract name is no secret (/proc/net/unix lists it), so any local user can do
this.  SCHEMA_INIT_BIN=build/out/schema-init measures the static binary.  Prints one
line per run; writes nothing.
"""

import os
import re
import socket
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
from harness import Supervised  # noqa: E402

DAEMON = os.path.join(HERE, "..", "tests", "data", "notify_daemon.py")
NOBODY = 65534


def cpu_seconds(pid):
    """utime + stime of process PID, in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


FLOOD_C = r"""
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
int main(int argc, char **argv) {
    struct sockaddr_un a;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    size_t n = strlen(argv[1]);
    memcpy(a.sun_path + 1, argv[1], n);
    socklen_t len = offsetof(struct sockaddr_un, sun_path) + 1 + n;
    double seconds = atof(argv[2]);
    const char *msg = argv[3];
    int s = socket(AF_UNIX, SOCK_DGRAM, 0);
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long sent = 0;
    for (;;) {
        for (int i = 0; i < 256; i++)
            if (sendto(s, msg, strlen(msg), 0, (struct sockaddr *)&a, len) >= 0)
                sent++;
        clock_gettime(CLOCK_MONOTONIC, &t);
        if ((t.tv_sec - t0.tv_sec) + (t.tv_nsec - t0.tv_nsec) / 1e9 > seconds)
            break;
    }
    printf("%ld\n", sent);
    return 0;
}
"""


def build_c_flooder():
    import subprocess
    directory = tempfile.mkdtemp(prefix="notify-flood-c-")
    os.chmod(directory, 0o755)
    source = os.path.join(directory, "flood.c")
    with open(source, "w") as f:
        f.write(FLOOD_C)
    program = os.path.join(directory, "flood")
    subprocess.run(["cc", "-O2", "-o", program, source], check=True)
    return program


def flooder(address, seconds, payload, counter, program=None):
    """Fork a process that drops to nobody and sends PAYLOAD to ADDRESS until SECONDS
    pass; it writes how many it sent to COUNTER (a pipe's write end)."""
    pid = os.fork()
    if pid:
        return pid
    try:
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)
        if program:
            os.dup2(counter, 1)
            os.execv(program, [program, address[1:], str(seconds), payload.decode()])
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.settimeout(0.2)
        sent = 0
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                sock.sendto(payload, address)
                sent += 1
            except (socket.timeout, BlockingIOError):
                pass
        os.write(counter, b"%d\n" % sent)
    finally:
        os._exit(0)


def run(seconds, senders, program=None):
    files = {"victim.svc": "exec=%s\nargs=%s\nargs=env\nargs=send=READY=1\nnotify=1\n"
                           % (sys.executable, DAEMON),
             "steady.svc": "exec=/bin/sleep\nargs=100000\nstable_secs=0\n"}
    s = Supervised(tempfile.mkdtemp(prefix="notify-flood-"), files).start()
    try:
        s.wait_state("victim", "FUNDAMENTAL", 30)
        address = "\0" + re.search(r"NOTIFY_SOCKET=@(\S+)", s.log("victim")).group(1)
        time.sleep(1)
        idle_before = cpu_seconds(s.proc.pid)
        time.sleep(seconds)
        idle = cpu_seconds(s.proc.pid) - idle_before
        read_end, write_end = os.pipe()
        payload = ("MAINPID=1\nREADY=1\nSTATUS=%s" % ("x" * 40)).encode()
        before = cpu_seconds(s.proc.pid)
        started = time.monotonic()
        pids = [flooder(address, seconds, payload, write_end, program)
                for _ in range(senders)]
        for pid in pids:
            os.waitpid(pid, 0)
        wall = time.monotonic() - started
        used = cpu_seconds(s.proc.pid) - before
        os.close(write_end)
        with os.fdopen(read_end) as f:
            sent = sum(int(line) for line in f.read().split())
        dropped = s.status()["victim"].get("notify_dropped", "0")
        kind = "C" if program else "Python"
        print("flood %g s, %d %s sender(s) as nobody: %d datagrams sent (%.0f/s); "
              "supervisor CPU %.2f s = %.0f %% of one CPU (idle: %.2f s in %g s); "
              "notify_dropped=%s; state=%s"
              % (seconds, senders, kind, sent, sent / wall, used, 100.0 * used / wall, idle,
                 seconds, dropped, s.state("victim")), flush=True)
    finally:
        s.stop()


if __name__ == "__main__":
    words = sys.argv[1:]
    c_program = build_c_flooder() if "--c" in words else None
    words = [w for w in words if w != "--c"]
    run(float(words[0]) if words else 5.0, int(words[1]) if len(words) > 1 else 1, c_program)
