"""Programs run by the updater without the subprocess module (the device's binary
carries only what PID 1's programs import): openssl, sha256sum, mount, modprobe."""

import os


def capture(argv, stdin_data=None):
    """(exit status, stdout and stderr as text) of ARGV; 127 when it cannot start."""
    out_r, out_w = os.pipe()
    in_r, in_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.dup2(in_r, 0)
            os.dup2(out_w, 1)
            os.dup2(out_w, 2)
            os.execvp(argv[0], argv)
        finally:
            os._exit(127)
    os.close(out_w)
    os.close(in_r)
    if stdin_data:
        os.write(in_w, stdin_data)
    os.close(in_w)
    chunks = []
    while True:
        data = os.read(out_r, 65536)
        if not data:
            break
        chunks.append(data)
    os.close(out_r)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), b"".join(chunks).decode("utf-8", "replace")


class Hasher:
    """sha256sum fed through a pipe: ``update(bytes)``, then ``hexdigest()``."""

    def __init__(self):
        self.out_r, out_w = os.pipe()
        in_r, self.in_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            try:
                os.dup2(in_r, 0)
                os.dup2(out_w, 1)
                os.execvp("sha256sum", ["sha256sum"])
            finally:
                os._exit(127)
        os.close(in_r)
        os.close(out_w)

    def update(self, data):
        view = memoryview(data)
        while view:
            written = os.write(self.in_w, view)
            view = view[written:]

    def hexdigest(self):
        os.close(self.in_w)
        out = b""
        while True:
            data = os.read(self.out_r, 4096)
            if not data:
                break
            out += data
        os.close(self.out_r)
        os.waitpid(self.pid, 0)
        return out.split(b" ", 1)[0].decode("ascii", "replace")

    def abandon(self):
        for fd in (self.in_w, self.out_r):
            try:
                os.close(fd)
            except OSError:
                pass
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass
