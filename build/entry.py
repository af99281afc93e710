"""Entry point of the static binary: the name it was run under decides what it is.

Nuitka's ``sys.argv[0]`` is the resolved executable, so a ``schema-ctl`` symlink would
look like ``schema-init``; the kernel's copy of argv[0] in /proc/self/cmdline is
the name actually used.
"""

import sys

from schema_init.__main__ import entry


def invoked_name():
    try:
        with open("/proc/self/cmdline", "rb") as f:
            return f.read().split(b"\0", 1)[0].decode("utf-8", "replace")
    except OSError:
        return sys.argv[0]


sys.exit(entry(invoked_name()))
