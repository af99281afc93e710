"""schema-ctl: the control-socket client.

Exit status: 0 success, 1 the server answered ``err: ...``, 2 usage error, 3 cannot
connect (with a hint), 4 the reply was cut short (no terminator line).

In the static binary, ``native/ctlfast.c`` serves the common case (a request to a
socket that accepts it) in C before the interpreter starts, with the same output and
exit status; this module answers everything else (help, usage errors, a socket that
cannot be reached), so the interpreter's 12 ms start-up is paid only then.  The reply is printed verbatim without the ``.`` terminator
line; the terminator is recognised only as a whole line at the very end
(``protocol.decode_reply``).
"""

import errno
import os
import _socket as socket   # the C module: socket.py loads enum and selectors (~20 modules)
import sys

from schema_init import __version__
from schema_init.core import protocol

DEFAULT_SOCKET = protocol.DEFAULT_SOCKET
TIMEOUT = float(protocol.CLIENT_TIMEOUT)
USAGE = protocol.usage()
CLIENT_WORDS = tuple(verb.name for verb in protocol.CLIENT_VERBS)


class IncompleteReply(Exception):
    def __init__(self, text):
        Exception.__init__(self, "the reply ended without its terminator line")
        self.text = text


def request(path, line, timeout=TIMEOUT):
    """Send one request line; return the reply text without the terminator.

    Raises ``IncompleteReply`` when the server closed before the terminator."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
        sock.sendall(line.encode("utf-8") + b"\n")
        chunks = []
        while True:
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
    finally:
        sock.close()
    reply, complete = protocol.decode_reply(b"".join(chunks))
    if not complete:
        raise IncompleteReply(reply)
    return reply


def socket_path():
    """Where schema-init listens: $SCHEMA_CTL_SOCKET, else the default (PID 1's)."""
    return os.environ.get("SCHEMA_CTL_SOCKET") or DEFAULT_SOCKET


def first_line(path, line):
    """Send one request; its reply's first line, or why there is none (for top)."""
    try:
        reply = request(path, line)
    except (OSError, IncompleteReply) as exc:
        return "%s: %s" % (line, getattr(exc, "strerror", None) or exc)
    return "%s: %s" % (line, reply.splitlines()[0] if reply else "ok")


def client_command(path, word, args):
    """top, blame, critical-chain, plot: answered here, never sent as they are."""
    if word == "update":                          # issue 23: schema_init/update/update.py
        from schema_init.update import update
        return update.ctl_main(args)
    if word == "top":
        from . import top
        return top.main(args, lambda line: first_line(path, line))
    if word in ("blame", "plot") and args or word == "critical-chain" and len(args) > 1:
        sys.stderr.write(USAGE)
        return 2
    try:
        text = request(path, "timing --kv")
    except (OSError, IncompleteReply) as exc:
        sys.stderr.write("schema-ctl: %s: %s\n" % (path, getattr(exc, "strerror", None) or exc))
        return 3
    if text.startswith("err:"):
        sys.stderr.write("schema-ctl: %s" % text)     # a schema-init without timing --kv
        return 1
    from schema_init.analyze import boot
    timeline = boot.Timeline.parse(text)
    if word == "plot":
        from schema_init.analyze import plot
        sys.stdout.write(plot.render(timeline, "schema-init boot: %s" % os.uname().nodename))
        return 0
    lines = boot.blame(timeline) if word == "blame" else \
        boot.critical_chain(timeline, args[0] if args else None)
    sys.stdout.write("".join(line + "\n" for line in lines))
    return 1 if lines and lines[0].startswith("err:") else 0


def main(argv):
    path = socket_path()
    args = list(argv)
    while args and args[0].startswith("--socket"):
        word = args.pop(0)
        if "=" in word:
            path = word.split("=", 1)[1]
        elif args:
            path = args.pop(0)
        else:
            sys.stderr.write("schema-ctl: --socket needs a path\n" + USAGE)
            return 2
    if not args:
        sys.stderr.write(USAGE)
        return 2
    if args[0] in ("-h", "--help"):
        sys.stdout.write(USAGE)
        return 0
    if args[0] in ("-V", "--version"):
        sys.stdout.write("schema-ctl %s\n" % __version__)
        return 0
    if args[0] in CLIENT_WORDS:
        return client_command(path, args[0], args[1:])
    line = " ".join(args)
    if "\n" in line or len(line.encode()) > protocol.MAX_REQUEST:
        sys.stderr.write("schema-ctl: a request is one line of at most %d bytes\n"
                         % protocol.MAX_REQUEST)
        return 2
    try:
        reply = request(path, line)
    except IncompleteReply as exc:
        sys.stdout.write(exc.text)
        sys.stdout.flush()
        sys.stderr.write("schema-ctl: %s: %s\n" % (path, exc))
        return 4
    except OSError as exc:
        hint = ""
        if exc.errno in (errno.EACCES, errno.EPERM):
            hint = " (try: sudo schema-ctl %s)" % line
        elif exc.errno in (errno.ENOENT, errno.ECONNREFUSED):
            hint = " (no schema-init is listening there: is it running?)"
        elif isinstance(exc, TimeoutError):
            hint = " (no reply within %d s)" % TIMEOUT
        sys.stderr.write("schema-ctl: %s: %s%s\n" % (path, exc.strerror or exc, hint))
        return 3
    sys.stdout.write(reply)
    sys.stdout.flush()
    return 1 if reply.startswith("err:") else 0
