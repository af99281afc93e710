"""A tiny sd_notify daemon for tests/test_notify.py: runs its arguments as steps.

  env                  print NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID and its pid
  sleep=S              sleep S seconds
  send=TEXT            one datagram (\\n in TEXT is a newline; {pid} is this pid)
  pet=S,N              WATCHDOG=1 every S seconds, N times
  child                fork a child that sleeps for ever; print its pid
  send-mainpid         MAINPID= the child's pid
  wait-file=PATH       wait until PATH exists
  exit                 exit 0 here
  fuzz=SEED,SECONDS    random, huge and malformed datagrams as fast as it can
  (the end)            sleep for ever
"""

import os
import random
import socket
import sys
import time


def address():
    value = os.environ["NOTIFY_SOCKET"]
    return "\0" + value[1:] if value.startswith("@") else value


def send(sock, data):
    for _ in range(5000):
        try:
            sock.sendto(data, address())
            return True
        except BlockingIOError:             # the receiver's queue is full: try again
            time.sleep(0.002)
        except OSError as exc:
            print("send failed: %s" % exc, flush=True)
            return False
    return False


def fuzz_datagrams(rng):
    keys = ["READY", "STATUS", "MAINPID", "WATCHDOG", "WATCHDOG_USEC", "EXTEND_TIMEOUT_USEC",
            "ERRNO", "RELOADING", "STOPPING", "FDSTORE", "X" * 70, "ready", "", "=", "\xff"]
    values = ["1", "0", "trigger", "-1", "99999999999999999999999", "", "\n", "\x00",
              "x" * 300, "1e9", str(rng.randrange(1 << 31)), "\udcff", "१२३"]
    while True:
        kind = rng.randrange(5)
        if kind == 0:
            yield bytes(rng.randrange(256) for _ in range(rng.randrange(1, 600)))
        elif kind == 1:
            yield b"STATUS=" + b"y" * rng.choice((4089, 4090, 5000, 65000))
        elif kind == 2:
            yield b""
        else:
            lines = ["%s=%s" % (rng.choice(keys), rng.choice(values))
                     for _ in range(rng.randrange(1, 12))]
            yield "\n".join(lines).encode("utf-8", "surrogateescape")


def main(steps):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    child = 0
    for step in steps:
        word, _, arg = step.partition("=")
        if word == "env":
            print("NOTIFY_SOCKET=%s WATCHDOG_USEC=%s WATCHDOG_PID=%s PID=%d" % (
                os.environ.get("NOTIFY_SOCKET"), os.environ.get("WATCHDOG_USEC"),
                os.environ.get("WATCHDOG_PID"), os.getpid()), flush=True)
        elif word == "sleep":
            time.sleep(float(arg))
        elif word == "send":
            text = arg.replace("\\n", "\n").replace("{pid}", str(os.getpid()))
            send(sock, text.encode())
        elif word == "pet":
            interval, count = arg.split(",")
            for _ in range(int(count)):
                send(sock, b"WATCHDOG=1")
                time.sleep(float(interval))
        elif word == "child":
            child = os.fork()
            if child == 0:
                sock.close()
                while True:
                    time.sleep(1000)
            print("CHILD=%d" % child, flush=True)
        elif word == "send-mainpid":
            send(sock, ("MAINPID=%d" % child).encode())
        elif word == "wait-file":
            while not os.path.exists(arg):
                time.sleep(0.02)
        elif word == "exit":
            os._exit(0)
        elif word == "fuzz":
            seed, seconds = arg.split(",")
            rng = random.Random(int(seed))
            sock.setblocking(False)
            end = time.monotonic() + float(seconds)
            sent = 0
            for data in fuzz_datagrams(rng):
                if time.monotonic() > end:
                    break
                try:
                    sock.sendto(data, address())
                    sent += 1
                except BlockingIOError:
                    time.sleep(0.001)           # the receiver's queue is full
                except OSError:
                    pass                          # EMSGSIZE and its kin
            print("FUZZED=%d" % sent, flush=True)
    while True:
        time.sleep(1000)


if __name__ == "__main__":
    main(sys.argv[1:])
