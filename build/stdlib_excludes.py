"""Print the stdlib top-level modules the static binary must NOT carry.

Nuitka's standalone mode includes most of the standard library as bytecode "just in
case".  schema-init needs only what its own modules import (eagerly or lazily), so
everything else is excluded with --nofollow-import-to: a smaller binary with fewer
constants to page in.  Run with the build interpreter:  python build/stdlib_excludes.py
"""

import sys

# Every module of the package, and what they import only when needed.
import schema_init.__main__  # noqa: F401
import schema_init.pid1.cgroup  # noqa: F401
import schema_init.pid1.control  # noqa: F401
import schema_init.ctl.ctl  # noqa: F401
import schema_init.pid1.main  # noqa: F401
import schema_init.pid1.runtime  # noqa: F401
import schema_init.pid1.spawn  # noqa: F401
import schema_init.subreaper.subreaper  # noqa: F401
import errno, stat  # noqa: E401,F401  (lazy imports of the package)
import schema_init.lib.accounts  # noqa: F401
import schema_init.power.power  # noqa: F401
import schema_init.lib.utmp  # noqa: F401
import schema_init.systemctl.systemctl  # noqa: F401
import schema_init.units.units  # noqa: F401
import schema_init.import_units.import_units  # noqa: F401
import schema_init.pid1.sockets  # noqa: F401  (listen=, loaded lazily)
import schema_init.core.notify  # noqa: F401  (notify=1, loaded lazily)
import schema_init.pid1.notify_socket  # noqa: F401
import schema_init.journal.journal  # noqa: F401  (schema-journald, journalctl)
import schema_init.journal.journald  # noqa: F401
import schema_init.journal.journalctl  # noqa: F401
import calendar  # noqa: F401,E402  (journalctl's UTC times, loaded lazily)
import schema_init.ctl.top  # noqa: F401,E402  (schema-ctl top, blame, plot)
import schema_init.analyze.boot  # noqa: F401,E402
import schema_init.analyze.plot  # noqa: F401,E402
import schema_init.metrics.metrics  # noqa: F401,E402  (schema-metrics)
import schema_init.update.update  # noqa: F401,E402  (schema-update, schema-ctl update)
import schema_init.update.bundle  # noqa: F401,E402
import schema_init.update.install  # noqa: F401,E402

try:
    import schema_init.pid1.machine  # noqa: F401
except ImportError:
    pass

needed = {name.split(".")[0] for name in sys.modules}
needed.update(("encodings", "codecs", "io", "abc", "site"))
excluded = sorted(name for name in sys.stdlib_module_names
                  if name not in needed and not name.startswith("_") or
                  name in ("_pydecimal", "_pyio", "_strptime", "_osx_support", "_aix_support",
                           "_bootsubprocess", "_compat_pickle", "_markupbase", "_threading_local",
                           "_sysconfigdata__linux_x86_64-linux-gnu", "_compression", "_pydatetime",
                           "_sitebuiltins", "_py_abc"))
excluded = [name for name in excluded if name not in needed]

# Codecs: UTF-8 and the few the interpreter itself may ask for; not the 100 others.
import encodings  # noqa: E402
import os  # noqa: E402
KEEP_CODECS = {"__init__", "aliases", "ascii", "latin_1", "utf_8", "utf_8_sig", "utf_16",
               "utf_32", "raw_unicode_escape", "unicode_escape", "charmap"}
for entry in sorted(os.listdir(os.path.dirname(encodings.__file__))):
    if entry.endswith(".py") and entry[:-3] not in KEEP_CODECS:
        excluded.append("encodings." + entry[:-3])
print(",".join(excluded))
