"""Command line of ``schema-init``: PID 1, a non-PID-1 supervisor, or ``--check``.

Kept free of argparse: this module is on PID 1's import path.
"""

import os
import sys

from schema_init import __version__

USAGE = """\
usage: schema-init                                   (as PID 1: boot the machine)
       schema-init --services DIR --run-dir DIR [--shm NAME] [--time-scale F]
                                                     (supervise DIR without being PID 1)
       schema-init --check DIR [--strict]            (validate a services directory)
       schema-init import-units [--all] [--services DIR] [--out DIR] [UNITDIR...]
                                                     (systemd units as .svc files)
       schema-init --record-boot                     (utmp/wtmp boot records: who -b)
       schema-init --version | --help

  --services DIR    the .svc/.grp directory to supervise
  --units DIR       a systemd unit directory (repeatable, the first wins): the units
                    multi-user.target reaches become services beside the .svc files
                    (as PID 1 of a Debian root without --services:
                    /etc/systemd/system and /lib/systemd/system unless
                    --no-units or SCHEMA_UNITS=none)
  --no-units        import no systemd units
  --run-dir DIR     where the socket, logs, env file and timer stamps go
  --shm NAME        shared-memory name (default /schema-init as PID 1)
  --time-scale F    multiply built-in delays (respawn cooldowns, dormant periods,
                    eviction grace, watchdog pet interval) by F; for tests (default 1)
  --watchdog PATH   open PATH as the hardware watchdog (as PID 1: /dev/watchdog0,
                    /dev/watchdog); a FIFO works for tests
  --watchdog-interval S  seconds between pets (default 5, scaled)
  --check DIR       print every diagnostic and the dependency order; exit 0 when the
                    directory would boot cleanly, 1 otherwise
  --strict          with --check: warnings count as failures too
  --record-boot     write the boot and run-level records to /run/utmp (anew) and
                    /var/log/wtmp (a oneshot of the boot, once / is writable)
"""


def check(directory, strict=False, out=None, unit_dirs=()):
    """``schema-init --check DIR``: returns the exit status."""
    from schema_init.core import config, graph
    from . import loader
    out = out or sys.stdout
    loaded = loader.load_directory(directory, unit_dirs)
    resolved = graph.resolve(loaded.services, loaded.groups)
    diagnostics = sorted(loaded.diagnostics + resolved.diagnostics,
                         key=config.Diagnostic.sort_key)
    for diag in diagnostics:
        out.write(diag.format() + "\n")
    errors = sum(1 for d in diagnostics if d.severity == config.ERROR)
    warnings = len(diagnostics) - errors
    if not loaded.services and not errors:
        out.write("%s: error: no services found\n" % directory)
        errors += 1
    levels = graph.boot_order(resolved)
    if levels:
        out.write("boot order:\n")
        for number, level in enumerate(levels, 1):
            out.write("  %d: %s\n" % (number, " ".join(level)))
    for name, reason in resolved.excised.items():
        out.write("excised: %s (%s)\n" % (name, reason))
    out.write("%s: %d service%s, %d group%s, %d error%s, %d warning%s\n" % (
        directory, len(loaded.services), "" if len(loaded.services) == 1 else "s",
        len(resolved.groups), "" if len(resolved.groups) == 1 else "s",
        errors, "" if errors == 1 else "s", warnings, "" if warnings == 1 else "s"))
    failed = errors or (strict and warnings)
    return 1 if failed else 0


def raise_own_limits():
    """PID 1's own hard limits up, as systemd raises its own: NOFILE's hard limit to
    fs.nr_open (PID 1 holds an fd per listen= socket, log, notify socket...), MEMLOCK to
    systemd's documented 8 MiB default.  The soft NOFILE stays: services inherit it, and
    select() breaks on fds above 1023.  The static binary's Python has no setrlimit:
    schema-exec --raise-limits sets ours with prlimit(2), from a child waited for here,
    before the loop exists.  A failure is said and the boot goes on."""
    from . import spawn
    program = spawn.schema_exec_program()
    if program is None:
        return
    try:
        pid = os.fork()
    except OSError:
        return
    if pid == 0:
        try:
            os.execv(program, ["schema-exec", "--raise-limits", str(os.getppid())])
        finally:
            os._exit(127)
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def boot_pid1(argv):
    """PID 1 never returns: when the boot itself fails, the last resort takes over.

    Every word of the kernel command line is harmless here: a bad option boots with
    the defaults, and --help, --version and --check are not honoured (PID 1 answering
    them would exit, and the kernel would panic)."""
    from . import lastresort
    try:
        try:
            raise_own_limits()
        except Exception:                   # noqa: B902 - limits are not worth a boot
            pass
        try:
            options = parse_args(argv)
        except UsageError:
            options = parse_args([])
        options.update(help=False, version=False, check=None)
        if os.environ.get("SCHEMA_INIT_TEST_HOOKS") == "1" and \
                os.environ.get("SCHEMA_INIT_TEST_BOOT_FAILS") == "1":
            raise RuntimeError("injected by SCHEMA_INIT_TEST_BOOT_FAILS")
        from . import machine as pid1_module
        pid1_module.boot(options)
        why = "the boot returned"
    except BaseException as exc:           # noqa: B902 - PID 1 must outlive any of it
        why = "%s: %s" % (type(exc).__name__, exc)
    lastresort.reexec_once(why)
    lastresort.reap_forever(why)


class UsageError(Exception):
    pass


def parse_args(argv):
    """Options as a dict.  Positional words are ignored (PID 1 gets kernel words)."""
    options = {"services": None, "run_dir": None, "shm": None, "time_scale": 1.0,
               "watchdog": None, "watchdog_interval": None, "resume": None,
               "check": None, "strict": False, "positional": [],
               "help": False, "version": False, "record_boot": False,
               "units": [], "no_units": False}
    takes_value = {"--services": "services", "--run-dir": "run_dir", "--shm": "shm",
                   "--time-scale": "time_scale", "--check": "check",
                   "--watchdog": "watchdog", "--watchdog-interval": "watchdog_interval",
                   "--resume": "resume"}
    i = 0
    while i < len(argv):
        word = argv[i]
        name, eq, inline = word.partition("=")
        if name in takes_value or name == "--units":
            if eq:
                value = inline
            elif i + 1 < len(argv):
                i += 1
                value = argv[i]
            else:
                raise UsageError("%s needs %s" % (name, "a directory" if name == "--units"
                                                  else "a value"))
            if name == "--units":           # repeatable: every directory, the first wins
                options["units"].append(value)
            else:
                options[takes_value[name]] = value
        elif word == "--no-units":
            options["no_units"] = True
        elif word == "--strict":
            options["strict"] = True
        elif word == "--record-boot":
            options["record_boot"] = True
        elif word in ("-h", "--help"):
            options["help"] = True
        elif word in ("-V", "--version"):
            options["version"] = True
        elif word.startswith("-"):
            raise UsageError("unknown option %s" % word)
        else:
            options["positional"].append(word)
        i += 1
    try:
        options["time_scale"] = float(options["time_scale"])
    except ValueError:
        raise UsageError("--time-scale needs a number") from None
    if not options["time_scale"] > 0:
        raise UsageError("--time-scale must be above 0")
    if options["watchdog_interval"] is not None:
        try:
            options["watchdog_interval"] = float(options["watchdog_interval"])
        except ValueError:
            raise UsageError("--watchdog-interval needs a number of seconds") from None
    return options


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if os.getpid() == 1:
        return boot_pid1(argv)
    try:
        options = parse_args(argv)
    except UsageError as exc:
        sys.stderr.write("schema-init: %s\n%s" % (exc, USAGE))
        return 2
    if options["help"]:
        sys.stdout.write(USAGE)
        return 0
    if options["version"]:
        sys.stdout.write("schema-init %s\n" % __version__)
        return 0
    if options["check"] is not None:
        return check(options["check"], options["strict"],
                     unit_dirs=[] if options["no_units"] else options["units"])
    if options["record_boot"]:
        from schema_init.lib import utmp
        problems = utmp.write_boot()
        for problem in problems:
            sys.stderr.write("schema-init: --record-boot: %s\n" % problem)
        return 1 if problems else 0
    if not options["services"] or not options["run_dir"]:
        sys.stderr.write(
            "schema-init: not PID 1: refusing to run without --services and --run-dir\n"
            "  (to look at the running system: schema-ctl status)\n")
        return 1
    if not options["shm"]:
        sys.stderr.write("schema-init: not PID 1: give --shm NAME too "
                         "(/schema-init belongs to PID 1)\n")
        return 1
    from . import runtime
    return runtime.Runtime(options).run()
