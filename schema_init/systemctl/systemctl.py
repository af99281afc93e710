"""``systemctl``, as Debian's maintainer scripts and people call it, served by schema-init.

On Debian, ``invoke-rc.d``, ``service`` and ``deb-systemd-invoke`` use ``systemctl`` when
``/run/systemd/system`` exists: that is how a package upgrade restarts its daemon.
schema-init creates that directory only when ``systemctl`` on this machine is this
program (``pid1.claims_systemd``), and this module then does what those callers ask of
the services schema-init supervises: ``UNIT.service`` is the service ``UNIT``.

Served: start, stop, restart, try-restart (condrestart), reload, force-reload,
reload-or-restart, try-reload-or-restart, is-active, is-failed, is-enabled, status,
show (-p/--property, --value), list-units, daemon-reload, daemon-reexec, reboot,
poweroff, halt, --version.  enable, disable, mask, unmask, preset, reenable succeed and
say the services directory decides instead.  Exit status as systemctl's: 0, 1 failed,
3 not active (is-active, status), 5 unit not found.
"""

import os
import sys

from schema_init import __version__

ACTIVE = {"FUNDAMENTAL": ("active", "running"), "PERFECT": ("active", "exited"),
          "FULL_TRUST": ("activating", "start"), "NEW_PROCESS": ("activating", "start"),
          "RECOVERY": ("activating", "auto-restart"),
          "FRICTION": ("activating", "auto-restart"), "DORMANT": ("failed", "failed"),
          "EXCISED": ("inactive", "dead")}
NO_EFFECT = ("enable", "disable", "mask", "unmask", "preset", "reenable", "link", "revert")
NOT_FOUND = 5
UNIT_KINDS = (".service", ".socket", ".timer", ".target", ".path", ".mount", ".device",
              ".scope", ".slice")
# Targets and other units that exist for systemd only: starting them has nothing to do.
QUIET_TARGETS = ("multi-user.target", "default.target", "graphical.target",
                 "sysinit.target", "basic.target", "network.target", "network-online.target")


class Failed(Exception):
    def __init__(self, status, text):
        Exception.__init__(self, text)
        self.status = status


def main(argv):
    options, words = parse(argv)
    if options.get("help"):
        sys.stdout.write(__doc__.split("\n\n", 1)[1])
        return 0
    if options.get("version"):
        sys.stdout.write("schema-init %s (systemctl for Debian's maintainer scripts)\n"
                         % __version__)
        return 0
    command, units = (words[0], words[1:]) if words else ("list-units", [])
    try:
        return run(command, units, options)
    except Failed as exc:
        if str(exc) and not (options.get("quiet") and exc.status in (1, 3)):
            sys.stderr.write(str(exc) + "\n")
        return exc.status


def parse(argv):
    options, words = {}, []
    args = list(argv)
    while args:
        word = args.pop(0)
        if word in ("-q", "--quiet"):
            options["quiet"] = True
        elif word in ("-h", "--help"):
            options["help"] = True
        elif word == "--version":
            options["version"] = True
        elif word == "--value":
            options["value"] = True
        elif word in ("-p", "--property") and args:
            options.setdefault("property", []).extend(args.pop(0).split(","))
        elif word.startswith("--property="):
            options.setdefault("property", []).extend(word.split("=", 1)[1].split(","))
        elif word.startswith("-p") and len(word) > 2:
            options.setdefault("property", []).extend(word[2:].split(","))
        elif word == "--now":
            options["now"] = True
        elif word == "--":
            words.extend(args)
            break
        elif word.startswith("-"):
            pass   # --system, --no-block, --no-ask-password, --no-pager, --full, --type=...
        else:
            words.append(word)
    return options, words


def service_name(unit):
    for kind in UNIT_KINDS:
        if unit.endswith(kind):
            return unit[:-len(kind)], kind
    return unit, ".service"


def ask(line, allow_error=False):
    from schema_init.ctl import ctl
    path = ctl.socket_path()
    try:
        reply = ctl.request(path, line)
    except (OSError, ctl.IncompleteReply) as exc:
        raise Failed(1, "Failed to connect to schema-init at %s: %s" % (
            path, getattr(exc, "strerror", None) or exc))
    if reply.startswith("err:") and not allow_error:
        raise Failed(1, "schema-init: " + reply.strip())
    return reply


def states():
    """{service: (state, pid, reason)} from ``status --kv``."""
    found = {}
    for line in ask("status --kv").splitlines():
        key, _, value = line.partition("=")
        parts = key.split(".")
        if len(parts) >= 3 and parts[0] == "service":
            name, field = ".".join(parts[1:-1]), parts[-1]
            found.setdefault(name, {})[field] = value
    return found


def lookup(unit, known):
    name, kind = service_name(unit)
    if kind != ".service" or name not in known:
        raise Failed(NOT_FOUND, "Unit %s not found." % (unit if "." in unit else
                                                       unit + ".service"))
    return name


def run(command, units, options):
    if command in ("daemon-reload",):
        ask("reload")
        return 0
    if command == "daemon-reexec":
        ask("reexec")
        return 0
    if command in ("reboot", "poweroff", "halt"):
        ask(command)
        return 0
    if command in NO_EFFECT:
        if not options.get("quiet"):
            sys.stderr.write("schema-init: '%s' changes nothing here: the services "
                             "directory (/etc/schema-init/services) decides what runs\n"
                             % command)
        if options.get("now") and command in ("enable", "disable"):
            return run("start" if command == "enable" else "stop", units, options)
        return 0
    if command in ("list-units", "list-unit-files"):
        for name, fields in sorted(states().items()):
            active, sub = ACTIVE.get(fields.get("state"), ("inactive", "dead"))
            sys.stdout.write("%-40s loaded %-10s %s\n" % (name + ".service", active, sub))
        return 0
    if not units:
        raise Failed(1, "Too few arguments.")
    known = states()
    if command in ("is-active", "is-failed", "is-enabled"):
        return query(command, units, known, options)
    if command == "status":
        return status(units, known)
    if command == "show":
        return show(units, known, options)
    worst = 0
    for unit in units:
        try:
            act(command, unit, known)
        except Failed as exc:
            if str(exc) and not options.get("quiet"):
                sys.stderr.write(str(exc) + "\n")
            worst = worst or exc.status
    return worst


def act(command, unit, known):
    name, kind = service_name(unit)
    if kind != ".service" and unit in QUIET_TARGETS:
        return
    name = lookup(unit, known)
    running = known[name].get("pid", "0") != "0"
    if command == "start":
        if not running:
            ask("reset %s" % name)
    elif command == "stop":
        ask("stop %s" % name)
    elif command in ("restart", "reload-or-restart"):
        ask("restart %s" % name if running else "reset %s" % name)
    elif command in ("try-restart", "condrestart", "try-reload-or-restart"):
        if running:
            ask("restart %s" % name)
    elif command in ("reload", "force-reload"):
        if not running:
            raise Failed(1, "Job for %s.service failed: it is not running." % name)
        ask("signal %s HUP" % name)
    else:
        raise Failed(1, "Unknown command verb %s." % command)


def query(command, units, known, options):
    status = 0
    for unit in units:
        name, kind = service_name(unit)
        fields = known.get(name) if kind == ".service" else None
        if command == "is-enabled":
            word = "enabled" if fields is not None else "not-found"
            ok = fields is not None
        else:
            active = ACTIVE.get(fields.get("state"), ("inactive",))[0] if fields else "inactive"
            word = active
            ok = active == "active" if command == "is-active" else active == "failed"
        if not options.get("quiet"):
            sys.stdout.write(word + "\n")
        if not ok:
            status = 1 if command in ("is-enabled", "is-failed") else 3
    return status


def status(units, known):
    worst = 0
    for unit in units:
        name = lookup(unit, known)
        fields = known[name]
        active, sub = ACTIVE.get(fields.get("state"), ("inactive", "dead"))
        sys.stdout.write("* %s.service - schema-init service %s\n" % (name, name))
        sys.stdout.write("     Loaded: loaded (/etc/schema-init/services; enabled)\n")
        sys.stdout.write("     Active: %s (%s) - schema-init state %s%s\n" % (
            active, sub, fields.get("state"),
            (": " + fields["reason"]) if fields.get("reason") else ""))
        if fields.get("pid", "0") != "0":
            sys.stdout.write("   Main PID: %s\n" % fields["pid"])
        if active != "active":
            worst = 3
    return worst


def show(units, known, options):
    wanted = options.get("property") or ["Id", "LoadState", "ActiveState", "SubState",
                                         "MainPID", "UnitFileState"]
    for number, unit in enumerate(units):
        name, kind = service_name(unit)
        fields = known.get(name) if kind == ".service" else None
        active, sub = ACTIVE.get(fields.get("state"), ("inactive", "dead")) if fields else \
            ("inactive", "dead")
        values = {"Id": name + kind, "Names": name + kind,
                  "LoadState": "loaded" if fields else "not-found",
                  "ActiveState": active, "SubState": sub,
                  "MainPID": fields.get("pid", "0") if fields else "0",
                  "UnitFileState": "enabled" if fields else "",
                  "CanReload": "yes", "CanStart": "yes", "CanStop": "yes"}
        if number:
            sys.stdout.write("\n")
        for prop in wanted:
            value = values.get(prop, "")
            sys.stdout.write(value + "\n" if options.get("value") else "%s=%s\n" % (prop, value))
    return 0
