"""tests/test_sockets.py's daemon: serves each connection on its socket-activated sockets
(fds 3..) with a line: its pid, LISTEN_FDS, LISTEN_FDNAMES, any other fd above them."""

import os
import select
import socket

assert int(os.environ["LISTEN_PID"]) == os.getpid(), "LISTEN_PID is not mine"
count = int(os.environ["LISTEN_FDS"])
names = os.environ["LISTEN_FDNAMES"]
socks = [socket.socket(fileno=3 + i) for i in range(count)]


def is_open(fd):
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False


extra = [fd for fd in range(3 + count, 1024) if is_open(fd)]
print("serving", count, names, flush=True)
while True:
    for sock in select.select(socks, [], [])[0]:
        conn, _ = sock.accept()
        conn.sendall(("%d %d %s %s\n" % (os.getpid(), count, names, extra)).encode())
        conn.close()
