"""Services from LSB init scripts: a package that ships only ``/etc/init.d/NAME`` (no
unit of that name: isc-dhcp-server, tftpd-hpa, exim4) runs from its script, as
systemd's compatibility for SysV scripts runs it.

Rules of this file:

* Pure: the script's bytes, the run-level directories' listings and the names known to
  the import come in; .svc text and diagnostics go out (``import_units`` reads the
  files, bounded).  The .svc text is parsed by ``config`` like any file.
* No bytes raise: a header is read as ISO-8859-1 text (every byte is a character),
  at most ``HEADER_LINES`` lines of it from the first ``READ_LIMIT`` bytes; a field it
  does not know is ignored.
* A script runs only where no unit and no .svc file has its name (both win), and only
  when it is enabled: an ``S`` link in /etc/rc2.d .. /etc/rc5.d (what Debian's
  ``update-rc.d`` makes); a script only /etc/rcS.d starts is the early boot, the
  services directory's.

The service: ``exec=/etc/init.d/NAME`` ``args=start``, ``forking=1`` (the script starts
the daemon and returns), ``exec_stop=... stop``, ``exec_reload=... reload`` (or
``force-reload``) when the script's ``case`` has it, ``pid_file=`` from the header's
``# pidfile:`` hint (as systemd's sysv generator: a script's ``PIDFILE=`` variable is
not trusted, tftpd-hpa's names a file its daemon never writes), else
``remain_after_exit=1`` (the script's work is the service).  Its header orders it:
``Required-Start:`` and ``Should-Start:`` become ``dep=`` lines, a virtual facility
(``$network``, ``$syslog`` ...) the service that provides it here (``FACILITIES``), a
name the service whose script ``Provides:`` it; what nothing provides is dropped with
a warning (a missing ``Should-Start:`` script silently: it is optional).
"""

from schema_init.core import config

READ_LIMIT = 64 * 1024          # bytes of a script looked at for its header and hints
HEADER_LINES = 200
BEGIN = "### BEGIN INIT INFO"
END = "### END INIT INFO"
RUN_LEVELS = ("rc2.d", "rc3.d", "rc4.d", "rc5.d")
# Names under /etc/init.d that are never services.
NOT_SCRIPTS = frozenset(("README", "skeleton", "rc", "rcS", "rc.local", ".depend.boot",
                         ".depend.start", ".depend.stop", ".legacy-bootordering"))
BACKUP_SUFFIXES = (".dpkg-old", ".dpkg-new", ".dpkg-dist", ".dpkg-tmp", ".dpkg-bak",
                   ".ucf-old", ".ucf-new", ".ucf-dist", ".orig", ".bak", "~")
# LSB's virtual facilities: the services or .svc groups that may provide each here, the
# first one known winning (the early boot, the services directory's group ``basic``,
# mounts the local and the /etc/fstab filesystems).
FACILITIES = {
    "$local_fs": ("basic",),
    "$remote_fs": ("remote-fs", "basic"),
    "$network": ("network", "networking", "network-online"),
    "$named": ("nss-lookup", "named", "bind9", "unbound", "dnsmasq"),
    "$portmap": ("rpcbind", "portmap"),
    "$syslog": ("syslog", "rsyslog", "syslog-ng", "busybox-syslogd", "sysklogd"),
    "$time": ("time-sync", "chrony", "ntpsec", "ntp", "openntpd", "systemd-timesyncd"),
    "$x-display-manager": ("display-manager", "gdm3", "lightdm", "sddm", "xdm"),
}
SKIP_REDIRECT = ("SYSTEMCTL_SKIP_REDIRECT=1", "_SYSTEMCTL_SKIP_REDIRECT=1")
START_TIMEOUT = 300             # seconds a script's start may take (a daemon's first run)
GENERATED_MARK = "# Imported by schema-init import-units from the LSB init script"


class Header:
    """An LSB header: ``fields`` {Key: [(line number, value)]} (a field given twice
    keeps both), ``found`` whether the script has one, and the script's hints."""

    __slots__ = ("fields", "found", "pid_file", "pid_line", "reload", "reload_line")

    def __init__(self):
        self.fields = {}
        self.found = False
        self.pid_file = None      # from "# pidfile:" or PIDFILE=/literal
        self.pid_line = 0
        self.reload = None        # "reload" or "force-reload": what the script's case has
        self.reload_line = 0

    def words(self, key):
        """The words of a field, each with its line: [(line, word)]."""
        return [(line, word) for line, value in self.fields.get(key, ())
                for word in value.split()]

    def text(self, key):
        values = self.fields.get(key)
        return values[0][1] if values else ""


def service_name(script):
    """The service a script under /etc/init.d is (``hwclock.sh``: ``hwclock``), or None
    for a name that is no service (README, a backup, a name .svc names cannot have)."""
    if script in NOT_SCRIPTS or script.startswith(".") or script.endswith(BACKUP_SUFFIXES):
        return None
    name = script[:-3] if script.endswith(".sh") else script
    if not name or len(name) > config.NAME_MAX or any(c not in config.NAME_CHARS
                                                      for c in name):
        return None
    if "@" in name:
        return None
    return name


def enabled(script, listings):
    """Whether an ``S`` link of one of rc2.d .. rc5.d starts ``script``: ``listings``
    {run-level directory: [entry names]} (``S`` two digits then the script's name)."""
    for level in RUN_LEVELS:
        for entry in listings.get(level, ()):
            if len(entry) > 3 and entry[0] == "S" and entry[1:3].isdigit() and \
                    entry[1:3].isascii() and entry[3:] == script:
                return True
    return False


def parse_header(data):
    """The LSB header and hints of a script's bytes: a ``Header``, never an exception."""
    header = Header()
    text = bytes(data[:READ_LIMIT]).decode("latin-1")
    lines = text.split("\n")
    inside, key = False, None
    for number, raw in enumerate(lines, 1):
        line = raw.rstrip("\r")
        stripped = line.strip()
        if not inside:
            if stripped == BEGIN and not header.found:
                inside, header.found = True, True
                budget = HEADER_LINES
            _hints(header, number, line, stripped)
            continue
        budget -= 1
        if stripped == END or budget <= 0 or not stripped.startswith("#"):
            inside = False
            continue
        body = stripped[1:]
        field, colon, value = body.partition(":")
        field = field.strip()
        if colon and field and " " not in field and "\t" not in field:
            key = field
            header.fields.setdefault(key, []).append((number, value.strip()))
        elif key is not None and body[:1] in (" ", "\t") and body.strip():
            line_no, before = header.fields[key][-1]
            header.fields[key][-1] = (line_no, (before + " " + body.strip()).strip())
    return header


def _hints(header, number, line, stripped):
    """What the script's body says: a ``# pidfile:`` comment, and whether its ``case``
    knows reload or force-reload."""
    lowered = stripped.lower()
    if lowered.startswith("# pidfile:") or lowered.startswith("#pidfile:"):
        path = stripped.split(":", 1)[1].strip()
        if _is_path(path):
            header.pid_file, header.pid_line = path, number
        return
    if stripped.startswith("#") or ")" not in stripped:
        return
    label = stripped.split(")", 1)[0]
    if "(" in label or "=" in label or "$" in label:
        return                                   # $(...), a test, an assignment
    words = [w.strip().strip("\"'") for w in label.split("|")]
    if "reload" in words:
        header.reload, header.reload_line = "reload", number
    elif "force-reload" in words and header.reload is None:
        header.reload, header.reload_line = "force-reload", number


def _is_path(text):
    return text.startswith("/") and len(text) <= config.PATH_MAX and \
        all(c.isprintable() and c not in " \t\"'$`;&|<>(){}*?[]\\" for c in text)


class Script:
    """One enabled init script to import: its name, path and header."""

    __slots__ = ("name", "path", "header")

    def __init__(self, name, path, header):
        self.name, self.path, self.header = name, path, header

    def provides(self):
        names = [word for _line, word in self.header.words("Provides")]
        return [self.name] + [n for n in names if n != self.name]


def convert(script, known, provided):
    """``(svc text, [Diagnostic])`` for a ``Script``: ``known`` the names of services and
    .svc groups the import has (a dep= may name them), ``provided`` {name a script
    Provides: -> its service}."""
    header, path, diags = script.header, script.path, []

    def note(line, key, message):
        diags.append(config.Diagnostic(path, line, key, config.WARNING, message))

    out = ["%s %s" % (GENERATED_MARK, path)]
    description = header.text("Short-Description") or header.text("Description")
    if description:
        out.append("# " + "".join(c if c.isprintable() else "?" for c in description)[:200])
    if not header.found:
        note(0, None, "no LSB header (### BEGIN INIT INFO): started without ordering")
    command = path
    out += ["exec=%s" % command, "args=start", "forking=1",
            "start_timeout_sec=%d" % START_TIMEOUT]
    if header.pid_file:
        out.append("pid_file=%s" % header.pid_file)
    else:
        out.append("remain_after_exit=1")
    out.append("exec_stop=%s stop" % command)
    if header.reload:
        out.append("exec_reload=%s %s" % (command, header.reload))
    out += ["env=%s" % value for value in SKIP_REDIRECT]
    deps = []

    def add(dep):
        if dep != script.name and dep not in deps:
            deps.append(dep)

    if "basic" in known:
        add("basic")                  # after the early boot, as rc2.d runs after rcS.d
    for key in ("Required-Start", "Should-Start"):
        for line, word in header.words(key):
            if word.startswith("$"):
                if word == "$all":
                    note(line, key, "$all (after every other script) is not kept: "
                         "schema-init starts what is ready at once")
                    continue
                providers = FACILITIES.get(word)
                chosen = next((p for p in providers or () if p in known), None)
                if chosen is None:
                    note(line, key, "%s: %s" % (word, "no service here provides it; "
                                                "dropped" if providers else
                                                "an unknown facility; dropped"))
                    continue
                add(chosen)
                continue
            target = provided.get(word, word)
            if target in known:
                add(target)
            elif key == "Required-Start":
                note(line, key, "%s: no service or script of that name; dropped" % word)
    out += ["dep=%s" % dep for dep in deps]
    return "\n".join(out) + "\n", diags
