"""The hardware watchdog device: opened once, petted on the supervisor's word, never
disarmed by PID 1 (only a supervisor beside another init disarms it when it stops).

Which device to open is the runner's choice (PID 1 tries /dev/watchdog0 and
/dev/watchdog); when to pet is the Dead Man Token's (``deadman``).  Across a re-exec
the fd is kept open and armed and handed to the successor.
"""

import os

from . import _fastloop

DEFAULT_PET_INTERVAL = 5.0


class HardwareWatchdog:
    def __init__(self, console):
        self.console = console
        self.fd = -1

    def open(self, candidates, handed=None):
        """Adopt a handed-over fd, or open the first candidate that opens."""
        if self.fd >= 0:
            return True
        if handed is not None:
            self.fd = handed                      # kept open (and armed) across re-exec
            os.set_inheritable(handed, False)
            return True
        for candidate in candidates:
            try:
                self.fd = os.open(candidate, os.O_WRONLY | os.O_CLOEXEC | os.O_NONBLOCK)
            except OSError:
                continue
            self.console.write("[schema-init] opened hardware watchdog (%s)\n" % candidate)
            return True
        return False

    def interval(self, configured, scale):
        """--watchdog-interval, else a third of the device's timeout, else 5 s (scaled)."""
        if configured:
            return configured
        timeout = _fastloop.watchdog_timeout(self.fd)
        if timeout:
            return timeout / 3.0
        return DEFAULT_PET_INTERVAL * scale

    def pet(self):
        if self.fd >= 0:
            try:
                os.write(self.fd, b"\0")
            except OSError:
                pass

    def keep_across_exec(self):
        if self.fd >= 0:
            os.set_inheritable(self.fd, True)

    def disarm(self):
        """The magic close: only for a supervisor that is not PID 1, as it exits."""
        if self.fd >= 0:
            try:
                os.write(self.fd, b"V")
            except OSError:
                pass
            os.close(self.fd)
            self.fd = -1
