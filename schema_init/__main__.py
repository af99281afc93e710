"""Multi-call entry point: the program's name decides what it is."""

import os
import sys


# The names of schema_init.power.power (links to the binary, like schema-ctl).
POWER_NAMES = ("reboot", "poweroff", "halt", "shutdown", "telinit", "runlevel")


DIVERTED_DIRS = ("/usr/sbin", "/sbin", "/usr/bin", "/bin")


def diverted_original(name, pid1_exe="/proc/1/exe", own_exe="/proc/self/exe", _depth=0):
    """When PID 1 is not schema-init (the machine was booted back into systemd or
    sysvinit), the package's reboot, systemctl, ... hand over to the originals it
    diverted (dpkg-divert --rename: NAME.distrib).  None: serve it ourselves."""
    if os.environ.get("SCHEMA_CTL_SOCKET"):
        return None                       # pointed at a schema-init on purpose
    try:
        own = os.path.realpath(own_exe)
        if os.path.realpath(pid1_exe) == own:
            return None
        os.readlink(pid1_exe)             # readable, so the comparison above was real
    except OSError:
        return None
    for directory in DIVERTED_DIRS:
        path = os.path.join(directory, name + ".distrib")
        if not os.path.lexists(path):
            continue
        if os.access(path, os.X_OK) and os.path.realpath(path) != own:
            return path                   # a program of its own (sysvinit: telinit -> init)
        # a link into one of our names (sysvinit: reboot -> halt; systemd-sysv: reboot ->
        # /bin/systemctl): that name's original, still run as NAME (argv[0])
        target = os.path.basename(os.readlink(path)) if os.path.islink(path) else ""
        if target and target != name and _depth < 2:
            found = diverted_original(target, pid1_exe, own_exe, _depth + 1)
            if found:
                return found
    return None


def restore_saved_locale():
    """The static binary's pre-init hid a LANG/LC_* this machine has no locale for (the
    interpreter would abort on it); services still get the value."""
    for name in ("LC_ALL", "LC_CTYPE", "LANG"):
        saved = os.environ.pop("SCHEMA_INIT_SAVED_" + name, None)
        if saved is not None:
            os.environ[name] = saved


def dump_modules():
    """Test hook (SCHEMA_INIT_TEST_HOOKS=1): write the loaded modules' names, one a line,
    to $SCHEMA_INIT_DUMP_MODULES; the build tier checks the binary's start-up with it.
    With "types" loaded, a last line "#types.coroutine KIND": Nuitka's replacement is a
    builtin function, patched in once "types" is imported (build/nuitka-patches/0003)."""
    path = os.environ.get("SCHEMA_INIT_DUMP_MODULES")
    if path and os.environ.get("SCHEMA_INIT_TEST_HOOKS") == "1":
        with open(path, "w") as f:
            f.write("".join(name + "\n" for name in sorted(sys.modules)))
            if "types" in sys.modules:
                f.write("#types.coroutine %s\n" % type(sys.modules["types"].coroutine).__name__)


def entry(invoked_as=None):
    try:
        return run(invoked_as)
    finally:
        dump_modules()


def run(invoked_as):
    restore_saved_locale()
    if invoked_as is None:
        invoked_as = sys.argv[0] if sys.argv and sys.argv[0] else "schema-init"
    name = os.path.basename(invoked_as)
    if name.startswith("schema-ctl"):
        from schema_init.ctl import ctl
        return ctl.main(sys.argv[1:])
    if name.startswith("schema-subreaper"):
        from schema_init.subreaper import subreaper
        return subreaper.main(sys.argv[1:])
    if name.startswith("schema-journald"):
        from schema_init.journal import journald
        return journald.main(sys.argv[1:])
    if name.startswith("schema-metrics"):
        from schema_init.metrics import metrics
        return metrics.main(sys.argv[1:])
    if name == "journalctl":
        from schema_init.journal import journalctl
        return journalctl.main(sys.argv[1:])
    if name.startswith("schema-update"):          # issue 23: the on-device updater
        from schema_init.update import update
        return update.main(sys.argv[1:])
    if name.startswith("schema-firstboot"):
        from schema_init.firstboot import firstboot
        return firstboot.main(sys.argv[1:])
    if name in POWER_NAMES + ("systemctl",):
        original = diverted_original(name)
        if original:
            os.execv(original, [name] + sys.argv[1:])   # argv[0] as sysvinit's halt reads it
    if name == "systemctl":
        from schema_init.systemctl import systemctl
        return systemctl.main(sys.argv[1:])
    if name in POWER_NAMES:
        from schema_init.power import power
        return power.main(name, sys.argv[1:])
    if sys.argv[1:2] == ["import-units"] and os.getpid() != 1:
        from schema_init.import_units import import_units   # a program of its own
        return import_units.main(sys.argv[2:])
    from schema_init.pid1 import main
    return main.main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(entry())
