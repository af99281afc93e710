"""``systemctl`` for administrators and Debian's maintainer scripts, served by schema-init.

On Debian, ``invoke-rc.d``, ``service`` and ``deb-systemd-invoke`` use ``systemctl`` when
``/run/systemd/system`` exists: that is how a package upgrade restarts its daemon.
schema-init creates that directory only when ``systemctl`` on this machine is this
program (``pid1.claims_systemd``).  What runs is asked of schema-init over its control
socket (``UNIT.service`` is the service ``UNIT``; ``postgresql@15-main`` an instance);
unit files are read and linked here, as systemctl does itself.

What it serves is USAGE (a constant, not this docstring: the static binary is built
without docstrings).
"""

import os
import sys
import time

from schema_init import __version__

USAGE = """\
usage: systemctl [OPTIONS] COMMAND [UNIT...]

Commands (several units a call; a name without a suffix is NAME.service):
  start, stop, restart, try-restart, reload, force-reload, reload-or-restart,
  try-reload-or-restart UNIT...   ask schema-init (start and restart wait for the
                                  service to come up or fail, unless --no-block)
  status [UNIT...]                state, main pid, why it is not running, its log's end
  is-active, is-failed, is-enabled UNIT...
  list-units [--all], list-timers, list-unit-files
  list-jobs                       the services still starting (no job queue here)
  show [-p PROP[,PROP]] [--value] UNIT...
  cat UNIT...                     the unit file and its drop-ins (or the .svc file)
  enable, disable [--now] UNIT...  the links the unit's [Install] section asks for
  preset [--preset-mode=full|enable-only|disable-only] UNIT...
                                  enable or disable as the *.preset files say
  mask, unmask UNIT...            a link to /dev/null in /etc/systemd/system
  daemon-reload, daemon-reexec, reboot, poweroff, halt

Options: -q/--quiet, --now, --no-block, --no-pager, --no-legend, --value,
  -p/--property=PROP, -a/--all, -n/--lines=N (status: lines of the log), --root=DIR
  (unit-file commands act on DIR's files), --version, -h/--help.

Exit status as systemctl(1)'s: 0; 1 failed (is-enabled: not enabled; is-failed: not
failed); 3 not active (is-active, status); 4 no such unit (status); 5 unit not loaded
(start, stop ...).

States (docs/spec.md, "systemctl"): FUNDAMENTAL active (running); PERFECT active
(exited), a timer's service inactive (dead) between runs; FULL_TRUST active (running)
once spawned; NEW_PROCESS activating (start); RECOVERY, FRICTION, SETTLED activating
(auto-restart); DORMANT failed; EXCISED inactive (dead) when stopped, failed otherwise.
"""

NOT_FOUND = 5            # start, stop ...: the unit is not loaded
NO_SUCH_UNIT = 4         # status
INACTIVE = 3
UNIT_KINDS = (".service", ".socket", ".timer", ".target", ".path", ".mount", ".device",
              ".scope", ".slice", ".automount", ".swap")
# Targets and other units that exist for systemd only: starting them has nothing to do.
QUIET_TARGETS = ("multi-user.target", "default.target", "graphical.target",
                 "sysinit.target", "basic.target", "network.target", "network-online.target")
# Where unit files are, the first that has a name winning (generators.SEARCH_PATH, which
# a test keeps equal); links are made in CONFIG_DIR.
UNIT_PATH = ("/run/systemd/generator.early", "/etc/systemd/system", "/run/systemd/system",
             "/run/systemd/generator", "/usr/local/lib/systemd/system",
             "/lib/systemd/system", "/usr/lib/systemd/system", "/run/systemd/generator.late")
GENERATED_DIRS = ("/run/systemd/generator.early", "/run/systemd/generator",
                  "/run/systemd/generator.late")
CONFIG_DIR = "/etc/systemd/system"
SERVICES_DIRS = ("/etc/schema-init/services", "/services")
IMPORTED_DIR = "/run/schema-init/units"            # loader.IMPORT_DIR
LOG_DIRS = ("/var/log/schema-init", "/run/log/schema-init")
READ_LIMIT = 256 * 1024
START_WAIT = 90.0        # seconds start and restart wait for the service
NOT_IMPORTED = "not imported"                      # loader.UnitImport.NOT_IMPORTED
STOPPED_REASONS = ("", "stopped", "stopped by operator")


class Failed(Exception):
    def __init__(self, status, text):
        Exception.__init__(self, text)
        self.status = status


def main(argv):
    options, words = parse(argv)
    if options.get("help"):
        sys.stdout.write(USAGE)
        return 0
    if options.get("version"):
        sys.stdout.write("schema-init %s (systemctl for administrators and Debian's "
                         "maintainer scripts)\n" % __version__)
        return 0
    command, units = (words[0], words[1:]) if words else ("list-units", [])
    try:
        return run(command, units, options)
    except Failed as exc:
        if str(exc) and not (options.get("quiet") and exc.status in (1, 3)):
            sys.stderr.write(str(exc) + "\n")
        return exc.status


def parse(argv):
    options, words = {"lines": 10}, []
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
        elif word in ("-a", "--all"):
            options["all"] = True
        elif word == "--no-legend":
            options["no_legend"] = True
        elif word == "--no-block":
            options["no_block"] = True
        elif word in ("-p", "--property") and args:
            options.setdefault("property", []).extend(args.pop(0).split(","))
        elif word.startswith("--property="):
            options.setdefault("property", []).extend(word.split("=", 1)[1].split(","))
        elif word.startswith("-p") and len(word) > 2:
            options.setdefault("property", []).extend(word[2:].split(","))
        elif word in ("-n", "--lines") and args:
            options["lines"] = _count(args.pop(0))
        elif word.startswith("--lines="):
            options["lines"] = _count(word.split("=", 1)[1])
        elif word == "--root" and args:
            options["root"] = args.pop(0).rstrip("/")
        elif word.startswith("--root="):
            options["root"] = word.split("=", 1)[1].rstrip("/")
        elif word == "--now":
            options["now"] = True
        elif word.startswith("--preset-mode="):
            options["preset_mode"] = word.split("=", 1)[1]
        elif word == "--":
            words.extend(args)
            break
        elif word.startswith("-"):
            pass   # --system, --no-pager, --no-ask-password, --full, --plain, --type= ...
        else:
            words.append(word)
    return options, words


def _count(text):
    return int(text) if text.isascii() and text.isdigit() and len(text) < 7 else 10


# --- names ------------------------------------------------------------------------------

def unit_name(word):
    """``cron`` -> ``cron.service``; a name with a unit suffix stays."""
    return word if word.endswith(UNIT_KINDS) else word + ".service"


def service_name(unit):
    """(service name, kind): ``postgresql@15-main.service`` -> ``postgresql@15-main``."""
    for kind in UNIT_KINDS:
        if unit.endswith(kind):
            return unit[:-len(kind)], kind
    return unit, ".service"


# --- what schema-init says ---------------------------------------------------------------

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


class Running:
    """What the running schema-init says: ``services`` {name: {pid, state, restarts,
    reason, kind ...}} from ``status --kv`` and ``timing --kv``, and ``diagnostics``,
    its rejected and dropped lines (among them what was wanted and not imported)."""

    def __init__(self, timing=False):
        self.services, self.diagnostics, self.now = {}, [], None
        for line in ask("status --kv").splitlines():
            key, _, value = line.partition("=")
            parts = key.split(".")
            if len(parts) >= 3 and parts[0] == "service":
                self.services.setdefault(".".join(parts[1:-1]), {})[parts[-1]] = value
            elif parts[0] in ("rejected", "dropped") and len(parts) == 2:
                self.diagnostics.append(value)
        if timing:
            for line in ask("timing --kv", allow_error=True).splitlines():
                key, _, value = line.partition("=")
                parts = key.split(".")
                if key == "now":
                    self.now = _number(value)
                elif len(parts) >= 3 and parts[0] == "service":
                    name = ".".join(parts[1:-1])
                    if name in self.services:
                        self.services[name][parts[-1]] = value

    def get(self, unit):
        name, kind = service_name(unit)
        return self.services.get(name) if kind == ".service" else None

    def why_not_imported(self, unit):
        """The import's reason a unit is not running, or None."""
        mark = ": %s: %s " % (NOT_IMPORTED, unit)
        for line in self.diagnostics:
            if mark in line:
                return line.split(mark, 1)[1]
        for line in self.diagnostics:
            path = line.split(": ", 1)[0].split(":", 1)[0]
            if path.rsplit("/", 1)[-1] == unit and "not imported" in line:
                return line.split(": ", 1)[1]
        return None


def _number(text):
    try:
        return float(text)
    except ValueError:
        return None


def active_state(fields):
    """(ActiveState, SubState) in systemd's words for a service's schema-init state."""
    if fields is None:
        return "inactive", "dead"
    state, pid = fields.get("state"), fields.get("pid", "0") != "0"
    reason = fields.get("reason", "")
    if state == "FUNDAMENTAL":
        return "active", "running"
    if state == "PERFECT":
        return ("inactive", "dead") if fields.get("kind") == "timer" else ("active", "exited")
    if state == "FULL_TRUST":
        oneshot = fields.get("kind") == "oneshot"   # running its job: not done yet
        return ("active", "running") if pid and not oneshot else ("activating", "start")
    if state == "NEW_PROCESS":
        return "activating", "start"
    if state in ("RECOVERY", "FRICTION", "SETTLED"):
        return "activating", "auto-restart"
    if state == "DORMANT":
        return "failed", "failed"
    if state == "EXCISED":
        return ("inactive", "dead") if reason in STOPPED_REASONS else ("failed", "failed")
    return "inactive", "dead"


def result_of(fields):
    """systemd's Result=, ExecMainCode= and ExecMainStatus= from the state and reason."""
    if fields is None:
        return "success", 0, 0
    reason = fields.get("reason", "")
    code, status = 0, 0
    if reason.startswith("exited "):
        digits = reason[7:].split()[0] if reason[7:].split() else ""
        if digits.isdigit():
            code, status = 1, int(digits)
    elif reason.startswith("killed by signal "):
        digits = reason[17:].split()[0] if reason[17:].split() else ""
        if digits.isdigit():
            code, status = 2, int(digits)
    active, _ = active_state(fields)
    if fields.get("state") == "EXCISED" and "dormant" in reason:
        return "start-limit-hit", code, status
    if active not in ("failed", "activating") or fields.get("state") == "NEW_PROCESS":
        return "success", code, status
    if "timeout" in reason:
        return "timeout", code, status
    if "watchdog" in reason or "Dead Man" in reason:
        return "watchdog", code, status
    if code == 2:
        return "signal", code, status
    if code == 1 and status != 0:
        return "exit-code", code, status
    return "resources" if active == "failed" else "success", code, status


# --- unit files ---------------------------------------------------------------------------

class UnitFiles:
    """The unit files of a root (``--root``, else /): where a unit is, its [Install]
    section, its links."""

    def __init__(self, root=""):
        self.root = root

    def path(self, directory):
        return self.root + directory

    def find(self, unit):
        """(directory, path inside the root) of the unit's file (a template's for an
        instance), the first of UNIT_PATH that has it; masked: path /dev/null."""
        names = [unit]
        if "@" in unit and not unit.partition("@")[2].startswith("."):
            prefix, _, rest = unit.partition("@")
            names.append("%s@%s" % (prefix, rest[rest.rfind("."):]))
        for name in names:
            for directory in UNIT_PATH:
                full = self.path(directory) + "/" + name
                if os.path.lexists(full):
                    target = self.resolve(full)
                    if target == "/dev/null" or target == self.root + "/dev/null":
                        return directory, "/dev/null"
                    if os.path.exists(target):   # an alias: the file it is a link to
                        inside = target[len(self.root):] if self.root and \
                            target.startswith(self.root + "/") else target
                        return directory, inside if os.path.isabs(inside) else \
                            directory + "/" + name
        return None, None

    def resolve(self, path):
        for _ in range(8):
            try:
                target = os.readlink(path)
            except OSError:
                return path
            path = self.root + target if target.startswith("/") else \
                os.path.join(os.path.dirname(path), target)
        return path

    def read(self, path):
        try:
            with open(self.resolve(self.root + path), "rb") as f:
                return f.read(READ_LIMIT).decode("utf-8", "replace")
        except OSError:
            return None

    def dropins(self, unit):
        chosen = {}
        names = [unit]
        if "@" in unit and not unit.partition("@")[2].startswith("."):
            prefix, _, rest = unit.partition("@")
            names.insert(0, "%s@%s" % (prefix, rest[rest.rfind("."):]))
        for name in names:
            for directory in UNIT_PATH:
                sub = self.path(directory) + "/" + name + ".d"
                try:
                    entries = sorted(os.listdir(sub))
                except OSError:
                    continue
                for entry in entries:
                    if entry.endswith(".conf"):
                        chosen.setdefault(entry, directory + "/" + name + ".d/" + entry)
        return [chosen[e] for e in sorted(chosen)]

    def section(self, path, wanted):
        """{Key: [values]} of one section of a unit file (``Install``, ``Unit``): a
        reader of Key=value lines, comments and backslash continuations only."""
        text = self.read(path) or ""
        found, section, pending = {}, None, ""
        for raw in text.split("\n"):
            line = (pending + raw.strip()) if pending else raw.strip()
            pending = ""
            if line.endswith("\\"):
                pending = line[:-1] + " "
                continue
            if not line or line[0] in "#;":
                continue
            if line.startswith("[") and line.endswith("]"):
                section = line[1:-1]
                continue
            key, eq, value = line.partition("=")
            if eq and section == wanted:
                values = found.setdefault(key.strip(), [])
                if value.strip():
                    values.extend(value.split())
                else:
                    values.clear()
        return found

    def links_to(self, unit, file_name):
        """Links in CONFIG_DIR (its .wants/.requires directories and itself) named
        ``unit`` or pointing at ``file_name``: what disable removes."""
        base = self.path(CONFIG_DIR)
        found = []
        try:
            subdirs = sorted(os.listdir(base))
        except OSError:
            return found
        for sub in [""] + [d for d in subdirs if d.endswith((".wants", ".requires"))]:
            directory = base + ("/" + sub if sub else "")
            try:
                entries = sorted(os.listdir(directory))
            except OSError:
                continue
            for entry in entries:
                path = directory + "/" + entry
                if not os.path.islink(path):
                    continue
                target = os.path.basename(os.readlink(path))
                if entry == unit or (target == file_name and (
                        entry == file_name or _instance_of(entry, file_name) or not sub)):
                    found.append(path)
        return found

    def state(self, unit):
        """systemctl is-enabled's word for a unit file, or None when there is none."""
        directory, path = self.find(unit)
        if path is None:
            return None
        if path == "/dev/null":
            return "masked"
        if directory in GENERATED_DIRS:
            return "generated"
        file_name = os.path.basename(path)
        if file_name != unit and not _instance_of(unit, file_name):
            return "alias"
        names = [os.path.basename(p) for p in self.links_to(unit, file_name)]
        if unit in names:
            return "enabled"
        if unit == file_name and any(_instance_of(n, file_name) for n in names):
            return "indirect"             # a template some of whose instances are enabled
        install = self.section(path, "Install")
        if not any(install.get(k) for k in ("WantedBy", "RequiredBy", "Alias", "Also")):
            return "static"
        return "disabled"


def _instance_of(name, template):
    """Whether ``name`` (foo@bar.service) is an instance of ``template`` (foo@.service)."""
    prefix, at, rest = template.partition("@")
    return bool(at) and rest.startswith(".") and name.startswith(prefix + "@") and \
        name.endswith(rest) and len(name) > len(template)


def lsb_state(unit, root=""):
    """is-enabled's word for a service that is only an init script: enabled with an S
    link in rc2.d .. rc5.d, else disabled; None without a script."""
    name = service_name(unit)[0]
    script = None
    for candidate in (name, name + ".sh"):
        if os.path.isfile(root + "/etc/init.d/" + candidate):
            script = candidate
    if script is None:
        return None
    for level in ("rc2.d", "rc3.d", "rc4.d", "rc5.d"):
        try:
            entries = os.listdir(root + "/etc/" + level)
        except OSError:
            continue
        if any(e[:1] == "S" and e[1:3].isdigit() and e[3:] == script for e in entries):
            return "enabled"
    return "disabled"


# --- the commands ------------------------------------------------------------------------

def run(command, words, options):
    units = [unit_name(w) for w in words]
    if command == "daemon-reload":
        ask("reload")
        return 0
    if command == "daemon-reexec":
        ask("reexec")
        return 0
    if command in ("reboot", "poweroff", "halt"):
        ask(command)
        return 0
    if command in ("enable", "disable", "reenable", "mask", "unmask"):
        if not units:
            raise Failed(1, "Too few arguments.")
        return unit_files(command, units, options)
    if command == "preset":
        if not units:
            raise Failed(1, "Too few arguments.")
        return preset(units, options)
    if command == "list-unit-files":
        return list_unit_files(options)
    if command == "list-units":
        return list_units(options)
    if command == "list-timers":
        return list_timers(options)
    if command == "list-jobs":
        return list_jobs(options)
    if command == "status" and not units:
        sys.stdout.write(ask("status"))
        return 0
    if not units:
        raise Failed(1, "Too few arguments.")
    if command == "cat":
        return cat(units, options)
    if command == "is-enabled":
        return is_enabled(units, options)
    running = Running(timing=command in ("status", "show", "is-active", "is-failed", "start",
                                         "restart", "reload-or-restart", "try-restart",
                                         "condrestart", "try-reload-or-restart"))
    if command in ("is-active", "is-failed"):
        return query(command, units, running, options)
    if command == "status":
        return status(units, running, options)
    if command == "show":
        return show(units, running, options)
    worst = 0
    for unit in units:
        try:
            act(command, unit, running, options)
            if command in ("start", "restart", "reload-or-restart"):
                start_wanted(unit, running, options)
        except Failed as exc:
            if str(exc) and not options.get("quiet"):
                sys.stderr.write(str(exc) + "\n")
            worst = worst or exc.status
    return worst


def wanted_by_unit(unit, files):
    """The units UNIT pulls in when it starts: its Wants=/Requires=/BindsTo= and the
    links of its .wants/ and .requires/ directories (a generator's too: postfix's
    instance in postfix.service.wants/), in the unit path's order."""
    found = []
    _directory, path = files.find(unit)
    if path is not None and path != "/dev/null":
        section = files.section(path, "Unit")
        for key in ("Wants", "Requires", "BindsTo"):
            found += section.get(key, [])
    for directory in UNIT_PATH:
        for sub in (".wants", ".requires"):
            try:
                found += sorted(os.listdir(files.path(directory) + "/" + unit + sub))
            except OSError:
                pass
    return [name for i, name in enumerate(found) if name not in found[:i]]


def start_wanted(unit, running, options, seen=None, files=None):
    """As systemd's start job pulls in what the unit wants: each wanted service that
    schema-init has and that is not running is started (asked, not waited for), and
    what it wants in turn.  ``systemctl start postfix`` after a stop starts
    postfix@- again."""
    seen = seen if seen is not None else set()
    unit = unit if unit.endswith(UNIT_KINDS) else unit + ".service"
    seen.add(unit)
    files = files or UnitFiles(options.get("root", ""))
    for other in wanted_by_unit(unit, files):
        if other in seen or not other.endswith(".service"):
            continue
        seen.add(other)
        fields = running.get(other)
        if fields is None:
            continue                       # not imported: status says why
        if active_state(fields)[0] not in ("active", "activating"):
            ask("reset %s" % service_name(other)[0])
        start_wanted(other, running, options, seen, files)


def act(command, unit, running, options):
    name, kind = service_name(unit)
    if kind != ".service" and unit in QUIET_TARGETS:
        return
    fields = running.get(unit)
    if fields is None:
        why = running.why_not_imported(unit)
        raise Failed(NOT_FOUND, "Failed to %s %s: Unit %s %s." % (
            command, unit, unit, "not loaded (%s)" % why if why else "not found"))
    active, _ = active_state(fields)
    pid = fields.get("pid", "0") != "0"
    if command == "start":
        if active not in ("active", "activating"):
            ask("reset %s" % name)
            wait_started(name, options, fields)
    elif command == "stop":
        ask("stop %s" % name)
    elif command in ("restart", "reload-or-restart"):
        # a running service, or a remain_after_exit one (active, exited), is restarted
        # (its PartOf= services with it); else started
        ask("restart %s" % name if pid or active == "active" else "reset %s" % name)
        wait_started(name, options, fields)
    elif command in ("try-restart", "condrestart", "try-reload-or-restart"):
        if pid or active == "active":
            ask("restart %s" % name)
            wait_started(name, options, fields)
    elif command in ("reload", "force-reload"):
        if active != "active":
            raise Failed(1, "Job for %s failed: it is not running." % unit)
        reply = ask("signal %s HUP" % name, allow_error=True)
        if reply.startswith("err:") and "cannot be reloaded" in reply:
            raise Failed(1, "Failed to reload %s: Job type reload is not applicable for unit "
                         "%s." % (unit, unit))
        if reply.startswith("err:"):
            raise Failed(1, "Job for %s failed: %s" % (unit, reply[4:].strip()))
    else:
        raise Failed(1, "Unknown command verb %s." % command)


def wait_started(name, options, before=None, timeout=START_WAIT):
    """As systemctl waits for the start job: until the service runs (or has run, a
    oneshot) or failed, ``before`` (its facts when asked) being no answer yet;
    --no-block does not wait."""
    if options.get("no_block"):
        return
    deadline = time.monotonic() + timeout
    old = _facts(before)
    while time.monotonic() < deadline:
        fields = Running(timing=True).services.get(name)
        if fields is None:
            return
        if _facts(fields) != old and not (old[1] != "0" and fields.get("pid") == old[1]):
            active, _ = active_state(fields)
            if active == "active" or active == "inactive" and \
                    fields.get("kind") == "timer" and fields.get("state") == "PERFECT":
                return
            failing = fields.get("state") in ("RECOVERY", "FRICTION") and \
                fields.get("reason", "") not in ("", "restarting")
            if active == "failed" or failing:
                raise Failed(1, "Job for %s.service failed: %s (schema-init state %s). See "
                             "\"systemctl status %s.service\"." % (
                                 name, fields.get("reason") or "it did not start",
                                 fields.get("state"), name))
        time.sleep(0.05)
    raise Failed(1, "Job for %s.service timed out (%d s)." % (name, timeout))


def _facts(fields):
    """What tells that a start or restart has happened: the state, the main process,
    the reason, the instant of the last spawn."""
    fields = fields or {}
    return fields.get("state"), fields.get("pid", "0"), fields.get("reason", ""), \
        fields.get("spawned")


def query(command, units, running, options):
    ok = False
    for unit in units:
        fields = running.get(unit)
        active, _ = active_state(fields)
        if not options.get("quiet"):
            sys.stdout.write(active + "\n")
        if command == "is-active" and active == "active" or \
                command == "is-failed" and active == "failed":
            ok = True
    if ok:
        return 0
    return INACTIVE if command == "is-active" else 1


def is_enabled(units, options):
    files = UnitFiles(options.get("root", ""))
    running = None
    ok, worst = False, 0
    for unit in units:
        word = files.state(unit)
        if word is None and unit.endswith(".service") and not files.root:
            try:
                running = running or Running()
                if running.get(unit) is not None:
                    word = "enabled"       # a .svc file, or an init script it runs
            except Failed:
                pass
        if word is None:
            word = lsb_state(unit, files.root)
        if word is None:
            if not options.get("quiet"):
                sys.stderr.write("Failed to get unit file state for %s: No such file or "
                                 "directory\n" % unit)
            worst = 1
            continue
        if not options.get("quiet"):
            sys.stdout.write(word + "\n")
        if word in ("enabled", "enabled-runtime", "static", "alias", "indirect",
                    "generated"):
            ok = True
    return 0 if ok else 1


def loaded_line(unit, files):
    directory, path = files.find(unit)
    if path == "/dev/null":
        return "masked (Reason: Unit %s is masked.)" % unit, "masked"
    if path is not None:
        return "loaded (%s; %s)" % (path, files.state(unit)), "loaded"
    name = service_name(unit)[0]
    for base in (IMPORTED_DIR,) + SERVICES_DIRS:
        if os.path.exists("%s/%s.svc" % (base, name)):
            return "loaded (%s/%s.svc; enabled)" % (base, name), "loaded"
    state = lsb_state(unit)
    if state is not None:
        return "loaded (/etc/init.d/%s; %s)" % (name, state), "loaded"
    return "loaded (schema-init service %s)" % name, "loaded"


def status(units, running, options):
    files = UnitFiles(options.get("root", ""))
    worst, shown = 0, 0
    for unit in units:
        fields = running.get(unit)
        why = running.why_not_imported(unit) if fields is None else None
        _directory, path = files.find(unit)
        if fields is None and path is None and lsb_state(unit, files.root) is None:
            sys.stderr.write("Unit %s could not be found.%s\n" % (
                unit, (" Wanted, not imported: %s" % why) if why else ""))
            worst = max(worst, NO_SUCH_UNIT)
            continue
        if shown:
            sys.stdout.write("\n")
        shown += 1
        active, sub = active_state(fields)
        description = files.section(path, "Unit").get("Description") \
            if path not in (None, "/dev/null") else None
        sys.stdout.write("%s %s - %s\n" % ("\u25cf" if fields else "\u25cb", unit,
                                           " ".join(description or []) or
                                           "schema-init service %s" % service_name(unit)[0]))
        sys.stdout.write("     Loaded: %s\n" % loaded_line(unit, files)[0])
        if fields is None:
            sys.stdout.write("     Active: inactive (dead)\n")
            sys.stdout.write("   Not imported: %s\n" % (
                why or "nothing that boots wants it (systemctl enable %s)" % unit))
            worst = max(worst, INACTIVE)
            continue
        since = ""
        if running.now is not None and _number(fields.get("since", "")) is not None:
            since = "; %s ago" % _ago(running.now - _number(fields["since"]))
        sys.stdout.write("     Active: %s (%s)%s - schema-init state %s%s\n" % (
            active, sub, since, fields.get("state"),
            (": " + fields["reason"]) if fields.get("reason") else ""))
        if fields.get("pid", "0") != "0":
            sys.stdout.write("   Main PID: %s\n" % fields["pid"])
        if fields.get("restarts", "0") not in ("0", "1"):
            sys.stdout.write("   Restarts: %s\n" % fields["restarts"])
        if fields.get("status"):
            sys.stdout.write("     Status: %s\n" % fields["status"])
        tail = log_tail(service_name(unit)[0], options.get("lines", 10))
        if tail:
            sys.stdout.write("\n" + "".join(line + "\n" for line in tail))
        if active != "active":
            worst = max(worst, INACTIVE)
    return worst


def _ago(seconds):
    seconds = max(0, int(seconds))
    if seconds < 60:
        return "%ds" % seconds
    if seconds < 3600:
        return "%dmin %ds" % (seconds // 60, seconds % 60)
    return "%dh %dmin" % (seconds // 3600, seconds % 3600 // 60)


def log_tail(name, count):
    """The last ``count`` lines of the service's log (RUN/log/NAME.log beside the
    socket, or PID 1's log directory)."""
    if count <= 0:
        return []
    from schema_init.ctl import ctl
    places = [os.path.join(os.path.dirname(ctl.socket_path()), "log")] + list(LOG_DIRS)
    for directory in places:
        path = os.path.join(directory, name + ".log")
        try:
            with open(path, "rb") as f:
                f.seek(0, 2)
                size = f.tell()
                f.seek(max(0, size - 65536))
                data = f.read()
        except OSError:
            continue
        return data.decode("utf-8", "replace").splitlines()[-count:]
    return []


def show(units, running, options):
    files = UnitFiles(options.get("root", ""))
    wanted = options.get("property") or ["Id", "Names", "Description", "LoadState",
                                         "ActiveState", "SubState", "MainPID",
                                         "ExecMainStatus", "NRestarts", "Result",
                                         "UnitFileState", "FragmentPath"]
    for number, unit in enumerate(units):
        values = properties(unit, running.get(unit), files)
        if number:
            sys.stdout.write("\n")
        for prop in wanted:
            value = values.get(prop, "")
            sys.stdout.write(value + "\n" if options.get("value") else "%s=%s\n" % (prop, value))
    return 0


def properties(unit, fields, files):
    """systemctl show's properties of a unit, from schema-init's facts (docs/spec.md,
    "systemctl")."""
    active, sub = active_state(fields)
    result, code, status_value = result_of(fields)
    directory, path = files.find(unit)
    if fields is not None:
        load = "loaded"
    elif path == "/dev/null":
        load = "masked"
    elif path is not None or lsb_state(unit, files.root) is not None:
        load = "loaded"
    else:
        load = "not-found"
    description = " ".join(files.section(path, "Unit").get("Description", [])) \
        if path not in (None, "/dev/null") else ""
    pid = fields.get("pid", "0") if fields else "0"
    state = files.state(unit) or lsb_state(unit, files.root) or \
        ("enabled" if fields is not None else "")
    return {"Id": unit, "Names": unit, "Description": description or unit,
            "LoadState": load, "ActiveState": active, "SubState": sub, "MainPID": pid,
            "ExecMainPID": pid, "ExecMainCode": str(code), "ExecMainStatus": str(status_value),
            "NRestarts": str(max(0, int(fields.get("restarts", "0")) - 1))
            if fields and fields.get("restarts", "0").isdigit() else "0",
            "Result": result, "UnitFileState": state,
            "FragmentPath": path if path not in (None, "/dev/null") else "",
            "CanReload": "yes", "CanStart": "yes", "CanStop": "yes",
            "StatusText": fields.get("status", "") if fields else ""}


def cat(units, options):
    files = UnitFiles(options.get("root", ""))
    worst, first = 0, True
    for unit in units:
        _directory, path = files.find(unit)
        shown = []
        if path == "/dev/null":
            sys.stderr.write("Unit %s is masked.\n" % unit)
            worst = 1
            continue
        if path is not None:
            shown = [path] + files.dropins(unit)
        else:
            name = service_name(unit)[0]
            for base in (IMPORTED_DIR,) + SERVICES_DIRS + ("/etc/init.d",):
                candidate = "%s/%s%s" % (base, name, "" if base == "/etc/init.d" else ".svc")
                if os.path.isfile(files.root + candidate):
                    shown = [candidate]
                    break
        if not shown:
            sys.stderr.write("No files found for %s.\n" % unit)
            worst = 1
            continue
        for item in shown:
            sys.stdout.write("%s# %s\n%s" % ("" if first else "\n", item,
                                               _ending(files.read(item) or "")))
            first = False
    return worst


def _ending(text):
    return text if text.endswith("\n") or not text else text + "\n"


def list_units(options):
    running = Running(timing=True)
    rows = []
    for name, fields in sorted(running.services.items()):
        active, sub = active_state(fields)
        if not options.get("all") and active == "inactive":
            continue
        rows.append((name + ".service", "loaded", active, sub,
                     fields.get("reason", "") or "schema-init service"))
    width = max([len(r[0]) for r in rows] + [4]) + 1
    legend = not options.get("no_legend")
    if legend:
        sys.stdout.write("%-*s LOAD   ACTIVE     SUB          DESCRIPTION\n" % (width, "UNIT"))
    for row in rows:
        sys.stdout.write("%-*s %-6s %-10s %-12s %s\n" % ((width,) + row))
    if legend:
        sys.stdout.write("\n%d loaded units listed.%s\n" % (
            len(rows), "" if options.get("all") else
            " Pass --all to see loaded but inactive units, too."))
    return 0


def list_jobs(options):
    """systemd's jobs: schema-init has no job queue, so a start job is a service that is
    starting (spawned, not yet ready: ActiveState activating). Scripts ask this to learn
    whether the boot is still bringing something up (ifupdown's if-up.d/mountnfs greps
    it for network.target); before, they read an error ("Too few arguments.")."""
    running = Running(timing=True)
    rows = [(n + 1, name + ".service", "start", "running") for n, name in enumerate(
        name for name, fields in sorted(running.services.items())
        if active_state(fields)[0] == "activating")]
    legend = not options.get("no_legend")
    if not rows:
        if legend:
            sys.stdout.write("No jobs running.\n")
        return 0
    width = max(len(r[1]) for r in rows) + 1
    if legend:
        sys.stdout.write("JOB %-*s TYPE  STATE\n" % (width, "UNIT"))
    for row in rows:
        sys.stdout.write("%3d %-*s %-5s %s\n" % (row[0], width, row[1], row[2], row[3]))
    if legend:
        sys.stdout.write("\n%d jobs listed.\n" % len(rows))
    return 0


def list_timers(options):
    running = Running(timing=True)
    rows = []
    for name, fields in sorted(running.services.items()):
        if fields.get("kind") != "timer":
            continue
        last = _number(fields.get("spawned", ""))
        passed = "%s ago" % _ago(running.now - last) if last is not None and \
            running.now is not None else "n/a"
        rows.append((name + ".timer", name + ".service", passed, fields.get("state", "")))
    legend = not options.get("no_legend")
    width = max([len(r[0]) for r in rows] + [5]) + 1
    if legend:
        sys.stdout.write("%-*s %-*s %-16s %s\n" % (width, "UNIT", width + 2, "ACTIVATES",
                                                   "LAST", "STATE"))
    for unit, service, passed, state in rows:
        sys.stdout.write("%-*s %-*s %-16s %s\n" % (width, unit, width + 2, service, passed,
                                                   state))
    if legend:
        sys.stdout.write("\n%d timers listed.\n" % len(rows))
    return 0


def list_unit_files(options):
    files = UnitFiles(options.get("root", ""))
    seen = set()
    rows = []
    for directory in UNIT_PATH:
        try:
            entries = sorted(os.listdir(files.path(directory)))
        except OSError:
            continue
        for entry in entries:
            if entry in seen or not entry.endswith((".service", ".socket", ".timer",
                                                   ".target")):
                continue
            seen.add(entry)
            rows.append((entry, files.state(entry) or "bad"))
    legend = not options.get("no_legend")
    if legend:
        sys.stdout.write("UNIT FILE                                STATE\n")
    for entry, state in sorted(rows):
        sys.stdout.write("%-40s %s\n" % (entry, state))
    if legend:
        sys.stdout.write("\n%d unit files listed.\n" % len(rows))
    return 0


# --- enable, disable, mask ---------------------------------------------------------------

def unit_files(command, units, options):
    """enable/disable/reenable/mask/unmask: the links, then a reload of schema-init
    (best effort: a machine without a running schema-init still gets its links)."""
    files = UnitFiles(options.get("root", ""))
    changed, worst, done = False, 0, set()
    for unit in units:
        try:
            if command in ("disable", "reenable"):
                changed |= disable(unit, files, done)
            if command in ("enable", "reenable"):
                changed |= enable(unit, files, set())
            if command == "mask":
                changed |= mask(unit, files)
            if command == "unmask":
                changed |= unmask(unit, files)
        except Failed as exc:
            sys.stderr.write(str(exc) + "\n")
            worst = worst or exc.status
    if changed and not files.root:
        try:
            ask("reload")
        except Failed as exc:
            if not options.get("quiet"):
                sys.stderr.write("%s (the links are made)\n" % exc)
    if options.get("now") and command in ("enable", "disable") and not worst:
        try:
            return run("start" if command == "enable" else "stop", units, options)
        except Failed as exc:
            sys.stderr.write(str(exc) + "\n")
            return exc.status
    return worst


# systemd.preset(5): the directories of *.preset files, a name in an earlier one hiding
# the same name in a later one; the files read in name order, the first line whose
# pattern matches a unit deciding; no line: enable
PRESET_DIRS = ("/etc/systemd/system-preset", "/run/systemd/system-preset",
               "/usr/local/lib/systemd/system-preset", "/lib/systemd/system-preset",
               "/usr/lib/systemd/system-preset")
PRESET_MODES = ("full", "enable-only", "disable-only")


def preset_rules(root=""):
    """[(action, pattern)] of the machine's preset files, in the order they apply."""
    files = {}
    for directory in PRESET_DIRS:
        try:
            names = os.listdir(root + directory)
        except OSError:
            continue
        for name in names:
            if name.endswith(".preset") and name not in files:
                files[name] = root + directory + "/" + name
    rules = []
    for name in sorted(files):
        try:
            with open(files[name], errors="replace") as f:
                lines = f.read(1 << 20).splitlines()
        except OSError:
            continue
        for line in lines:
            words = line.split()
            if len(words) >= 2 and words[0] in ("enable", "disable") and \
                    not line.lstrip().startswith(("#", ";")):
                rules.append((words[0], words[1]))
    return rules


def preset_action(unit, rules):
    """enable or disable: what the first matching rule says (none: enable)."""
    for action, pattern in rules:
        if glob_match(pattern, unit):
            return action
    return "enable"


def glob_match(pattern, name):
    """fnmatch(3) without flags: ``*``, ``?``, ``[set]``/``[!set]`` with ranges (the
    static binary carries no fnmatch/re; patterns and names are short)."""
    p, n, star, mark = 0, 0, -1, 0
    while n < len(name):
        if p < len(pattern) and pattern[p] == "*":
            star, mark, p = p, n, p + 1
            continue
        if p < len(pattern):
            matched, after = _glob_one(pattern, p, name[n])
            if matched:
                p, n = after, n + 1
                continue
        if star < 0:
            return False
        mark += 1                         # let the last * take one more character
        p, n = star + 1, mark
    while p < len(pattern) and pattern[p] == "*":
        p += 1
    return p == len(pattern)


def _glob_one(pattern, p, ch):
    """Whether the pattern item at ``p`` matches ``ch``: (matched, index after it)."""
    if pattern[p] == "?":
        return True, p + 1
    if pattern[p] == "[":
        start = p + 1
        start += pattern[start:start + 1] == "!"
        start += pattern[start:start + 1] == "]"          # a ] first is one of the set
        end = pattern.find("]", start)
        if end > 0:
            body = pattern[p + 1:end]
            negate = body[:1] == "!"
            body = body[1:] if negate else body
            found, i = False, 0
            while i < len(body):
                if i + 2 < len(body) and body[i + 1] == "-":
                    found = found or body[i] <= ch <= body[i + 2]
                    i += 3
                else:
                    found = found or body[i] == ch
                    i += 1
            return found != negate, end + 1
    if pattern[p] == "\\" and p + 1 < len(pattern):
        return pattern[p + 1] == ch, p + 2
    return pattern[p] == ch, p + 1


def preset(units, options):
    """systemctl preset [--preset-mode=MODE]: enable or disable each unit as the preset
    files say (deb-systemd-helper enables a newly installed daemon this way)."""
    mode = options.get("preset_mode", "full")
    if mode not in PRESET_MODES:
        raise Failed(1, "Failed to parse preset mode: %s" % mode)
    rules = preset_rules(options.get("root", ""))
    enabling, disabling = [], []
    for unit in units:
        unit = unit if unit.endswith(UNIT_KINDS) else unit + ".service"
        action = preset_action(unit, rules)
        if action == "enable" and mode != "disable-only":
            enabling.append(unit)
        elif action == "disable" and mode != "enable-only":
            disabling.append(unit)
    worst = 0
    if disabling:
        worst = unit_files("disable", disabling, dict(options, now=False))
    if enabling:
        worst = unit_files("enable", enabling, dict(options, now=False)) or worst
    return worst


def _link(files, where, target):
    """A link ``where`` (inside the root) -> ``target``; True when made or changed."""
    full = files.root + where
    if os.path.islink(full) and os.readlink(full) == target:
        return False
    if os.path.lexists(full):
        if not os.path.islink(full) or os.path.basename(os.readlink(full)) != \
                os.path.basename(target):
            raise Failed(1, "Failed to enable unit: File %s already exists." % where)
        os.unlink(full)
    os.makedirs(os.path.dirname(full), 0o755, exist_ok=True)
    os.symlink(target, full)
    sys.stderr.write("Created symlink %s \u2192 %s.\n" % (where, target))
    return True


def enable(unit, files, seen):
    """The links [Install] asks for: WantedBy=/RequiredBy= in TARGET.wants/.requires,
    Alias= beside it, Also= enabled too; a template's DefaultInstance= for itself."""
    if unit in seen:
        return False
    seen.add(unit)
    _directory, path = files.find(unit)
    if path is None:
        if files.state(unit) is None and lsb_state(unit, files.root) is not None:
            raise Failed(1, "Failed to enable unit: %s is an init script; enable it with "
                         "update-rc.d %s defaults" % (unit, service_name(unit)[0]))
        if not files.root and unit.endswith(".service"):
            try:
                if Running().get(unit) is not None:
                    sys.stderr.write("%s is a service of the schema-init services directory "
                                     "(%s): it decides\n" % (unit, SERVICES_DIRS[0]))
                    return False
            except Failed:
                pass
        raise Failed(1, "Failed to enable unit: Unit file %s does not exist." % unit)
    if path == "/dev/null":
        raise Failed(1, "Failed to enable unit: Unit file %s is masked." % unit)
    install = files.section(path, "Install")
    file_name = os.path.basename(path)
    name = unit
    if file_name != unit and not _instance_of(unit, file_name):
        name = file_name                   # enabling an alias enables the unit
    if name.partition("@")[2].startswith("."):
        default = install.get("DefaultInstance")
        if not default:
            raise Failed(1, "Failed to enable unit: %s is a template without "
                         "DefaultInstance=; enable an instance (%s)"
                         % (name, name.replace("@.", "@NAME.")))
        name = name.replace("@.", "@%s." % default[-1])
    changed = False
    for key, suffix in (("WantedBy", ".wants"), ("RequiredBy", ".requires")):
        for target in install.get(key, []):
            changed |= _link(files, "%s/%s%s/%s" % (CONFIG_DIR, target, suffix, name), path)
    for alias in install.get("Alias", []):
        changed |= _link(files, "%s/%s" % (CONFIG_DIR, alias), path)
    for also in install.get("Also", []):
        changed |= enable(unit_name(also), files, seen)
    if not any(install.get(k) for k in ("WantedBy", "RequiredBy", "Alias", "Also")):
        sys.stderr.write("The unit %s has no [Install] section with WantedBy=, "
                         "RequiredBy=, Alias= or Also=: it is started when another unit "
                         "wants it (static), not enabled.\n" % unit)
    return changed


def disable(unit, files, seen):
    """Every link in /etc/systemd/system named like the unit or pointing at its file
    (its .wants/.requires links, its aliases), and Also= units' too."""
    if unit in seen:
        return False
    seen.add(unit)
    _directory, path = files.find(unit)
    if path is None and lsb_state(unit, files.root) is not None:
        raise Failed(1, "Failed to disable unit: %s is an init script; disable it with "
                     "update-rc.d %s disable" % (unit, service_name(unit)[0]))
    if path is None:
        if not files.root and unit.endswith(".service"):
            try:
                if Running().get(unit) is not None:
                    sys.stderr.write("%s is a service of the schema-init services directory "
                                     "(%s): it decides\n" % (unit, SERVICES_DIRS[0]))
                    return False
            except Failed:
                pass
        raise Failed(1, "Failed to disable unit: Unit file %s does not exist." % unit)
    if path == "/dev/null":
        return False
    file_name = os.path.basename(path)
    changed = False
    for link in files.links_to(unit, file_name):
        if os.readlink(link) == "/dev/null":
            continue                      # a mask is unmask's
        os.unlink(link)
        sys.stderr.write("Removed \"%s\".\n" % link[len(files.root):])
        changed = True
    for also in files.section(path, "Install").get("Also", []):
        changed |= disable(unit_name(also), files, seen)
    return changed


def mask(unit, files):
    where = "%s/%s" % (CONFIG_DIR, unit)
    full = files.root + where
    if os.path.islink(full) and os.readlink(full) == "/dev/null":
        return False
    if os.path.lexists(full) and not os.path.islink(full):
        raise Failed(1, "Failed to mask unit: File %s already exists." % where)
    if os.path.lexists(full):
        os.unlink(full)
    os.makedirs(os.path.dirname(full), 0o755, exist_ok=True)
    os.symlink("/dev/null", full)
    sys.stderr.write("Created symlink %s \u2192 /dev/null.\n" % where)
    return True


def unmask(unit, files):
    where = "%s/%s" % (CONFIG_DIR, unit)
    full = files.root + where
    if os.path.islink(full) and os.readlink(full) == "/dev/null":
        os.unlink(full)
        sys.stderr.write("Removed \"%s\".\n" % where)
        return True
    return False
