"""Services from systemd unit files: which units of a machine become services, and how
each maps onto .svc keys.

Rules of this file:

* Pure: unit files come in through a *source* (``entry``, ``wants``, ``dropins``,
  ``names``: see :class:`DictSource`, and ``loader.UnitDirs`` for the real one); what
  goes out is .svc text (:class:`Generated`) and diagnostics.  The .svc text is parsed
  by ``config`` like any file, so the keys have one definition.
* Every line of a unit is accounted for: mapped, meaningless here (``Description=``,
  ``[Install]``, ordering against targets), or dropped with a warning
  ``FILE:LINE: warning: KEY: why``, which the generated file repeats as a comment.
* Bounded: a unit file is read up to ``READ_LIMIT`` bytes and ``config``'s line
  limits; at most ``MAX_UNITS`` units and ``MAX_DROPINS`` drop-ins each are looked at.
* One rule for numbers and escapes: a number is 1 to ``MAX_DIGITS`` ASCII digits
  (``is_number``; ``str.isdigit()`` alone takes "²", which ``int()`` refuses, and
  ``int()`` refuses more than 4300 digits), an escape names a character that exists
  (``split_words``); anything else is a warning at its line, never an exception.
* One unit's trouble is its own: a unit whose conversion raises anyway is refused
  alone, with an error naming it (``convert_one``, ``services_from``); the other units
  still import.
* Loaded only when units are imported: PID 1 without ``--units`` never imports it.

Which units: from ``multi-user.target``, everything it wants or requires (its
``Wants=``/``Requires=`` and ``.wants/``/``.requires/`` links), through the targets it
pulls in (``basic.target``, ``sockets.target``, ``timers.target``, ``getty.target``...),
and what those units want in turn.  Not followed: ``sysinit.target`` and the early-boot
targets (the services directory does the early boot), units systemd itself needs
(``INIT_OWN``), masked units (a link to /dev/null), and any unit whose service a .svc
file of the same name already provides (it always wins).
"""

from schema_init.core import config, digits, timers

READ_LIMIT = 256 * 1024
MAX_UNITS = 2000
MAX_DROPINS = 64
SUBREAPER = "/usr/sbin/schema-subreaper"
SHELL = "/bin/sh"
START_TARGETS = ("multi-user.target",)
# What the standard targets pull in (systemd's own target files say so; a root without
# the systemd package has only the .wants links, so this is assumed too).
STANDARD_TARGET_WANTS = {
    "multi-user.target": ("basic.target", "getty.target"),
    "basic.target": ("sockets.target", "timers.target", "paths.target"),
}
# The early boot is the services directory's job (mounts, udev, sysctl, tmpfiles ...).
EARLY_TARGETS = frozenset((
    "sysinit.target", "local-fs.target", "local-fs-pre.target", "swap.target",
    "cryptsetup.target", "cryptsetup-pre.target", "veritysetup.target",
    "integritysetup.target", "shutdown.target", "emergency.target", "rescue.target",
    "initrd.target", "initrd-fs.target", "initrd-root-fs.target", "umount.target",
    "final.target", "reboot.target", "poweroff.target", "halt.target"))
# Units that are systemd's own machinery, or that schema-init does itself.
INIT_OWN = (
    ("systemd-journald", "the journal is systemd's (schema-init keeps RUN/log/NAME.log)"),
    ("systemd-logind", "needs systemd as PID 1 (sessions are its cgroup scopes)"),
    ("systemd-update-utmp", "schema-init writes utmp and wtmp itself (--record-boot)"),
    ("systemd-ask-password", "systemd's password agents"),
    ("systemd-initctl", "schema-init answers telinit itself"),
    ("systemd-udev", "udev is in the services directory's early boot"),
    ("systemd-networkd-wait-online", "waits on systemd-networkd's state"),
    ("getty-static", "systemd's fallback for gettys without logind (uses systemctl start)"),
)
UNSUPPORTED_KINDS = {
    ".path": "path units (start on a file change) are not supported",
    ".mount": "mounts are /etc/fstab's (the services directory mounts it)",
    ".automount": "automounts are not supported",
    ".swap": "swap is /etc/fstab's (swapon -a)",
    ".device": "device units exist only in systemd",
    ".slice": "slices are systemd's cgroup tree",
    ".scope": "scopes are systemd's cgroup tree",
}
# Names in Conflicts= that only say "stop me at shutdown or in rescue mode": schema-init
# stops every service at shutdown anyway.
SHUTDOWN_UNITS = frozenset(("shutdown.target", "rescue.service", "emergency.service",
                            "rescue.target", "emergency.target", "umount.target",
                            "initrd-switch-root.target", "final.target"))

MAX_DIGITS = 18              # the longest number a unit may give (beyond: a warning)
INSTANCE_MARK = "\ue000"     # %i/%I in a template: becomes ${INSTANCE} in the command
SAFE_WORD_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                            "0123456789_/.,:=+@%-")


class UnitDiagnostic(config.Diagnostic):
    __slots__ = ()
    from_unit = True


def _diag(path, line, key, severity, message):
    return UnitDiagnostic(path, line, key, severity, message)


def is_number(text, limit=MAX_DIGITS):
    """1 to LIMIT ASCII digits: the only text a unit's number is read from."""
    return digits.ascii_digits(text, limit)


def _unexpected(exc):
    """An exception's one-line description, for the diagnostic that replaces it."""
    return "%s: %s" % (type(exc).__name__, _one_line(str(exc), 120))


# --- reading one unit file ---------------------------------------------------------

class Entry:
    """One ``Key=value`` of a unit file or drop-in."""

    __slots__ = ("path", "line", "section", "key", "value")

    def __init__(self, path, line, section, key, value):
        self.path, self.line, self.section, self.key, self.value = \
            path, line, section, key, value

    def text(self):
        return "%s=%s" % (self.key, self.value)


def parse_unit_text(path, data):
    """A unit file's bytes as ``([Entry], [Diagnostic])``: ``[Section]`` headers,
    ``Key=value`` lines, ``#``/``;`` comments, a backslash at a line's end joining the
    next (comment lines inside are skipped, as systemd does)."""
    diags = []
    entries = []
    if len(data) > READ_LIMIT:
        return [], [_diag(path, 0, None, config.ERROR,
                          "larger than %d bytes: not a unit file" % READ_LIMIT)]
    lines = data.decode("utf-8", "surrogateescape").split("\n", config.MAX_LINES_PER_FILE)
    if len(lines) > config.MAX_LINES_PER_FILE:
        return [], [config.too_many_settings(path, config.MAX_LINES_PER_FILE + 1)]
    section = None
    i = 0
    while i < len(lines):
        number = i + 1
        line = lines[i].rstrip("\r").strip(" \t")
        i += 1
        if not line or line[0] in "#;":
            continue
        while line.endswith("\\") and i < len(lines):
            more = lines[i].rstrip("\r").strip(" \t")
            i += 1
            if more[:1] in ("#", ";"):
                continue
            line = line[:-1] + " " + more
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, eq, value = line.partition("=")
        key = key.strip(" \t")
        if not eq or not key:
            diags.append(_diag(path, number, None, config.WARNING,
                               "line is not Key=value; ignored"))
            continue
        if section is None:
            diags.append(_diag(path, number, key, config.WARNING,
                               "before any [Section]; ignored"))
            continue
        if "\0" in value:
            diags.append(_diag(path, number, key, config.WARNING,
                               "a NUL byte in the value; ignored"))
            continue
        if len(entries) >= config.MAX_SETTINGS_PER_FILE:
            return [], [config.too_many_settings(path, number)]
        entries.append(Entry(path, number, section, key, value.strip(" \t")))
    return entries, diags


def _parse_guarded(path, data):
    try:
        return parse_unit_text(path, data)
    except Exception as exc:          # noqa: B902 - this file is refused, not the import
        return [], [_diag(path, 0, None, config.ERROR, "cannot be parsed (%s)"
                          % _unexpected(exc))]


class Unit:
    """A unit with its drop-ins applied: entries in order, the unit file's first."""

    __slots__ = ("name", "path", "entries", "instance", "sources")

    def __init__(self, name, path, entries, instance=None, sources=()):
        self.name = name                 # as asked for: getty@tty1.service
        self.path = path                 # the unit file (the template's, for an instance)
        self.entries = entries
        self.instance = instance         # "tty1", "" for the template itself, None
        self.sources = tuple(sources) or (path,)

    @property
    def base(self):
        return self.name.rpartition(".")[0]

    @property
    def kind(self):
        return "." + self.name.rpartition(".")[2]

    def values(self, section, key):
        """Every entry of a list setting; an empty assignment clears what came before."""
        found = []
        for entry in self.entries:
            if entry.section == section and entry.key == key:
                if entry.value == "":
                    found = []
                else:
                    found.append(entry)
        return found

    def last(self, section, key):
        """The entry of a single-valued setting (the last one wins)."""
        found = None
        for entry in self.entries:
            if entry.section == section and entry.key == key:
                found = entry
        return found if found is not None and found.value != "" else None

    def names(self, section, key):
        """The unit names of a list setting such as ``After=``: [(name, entry)]."""
        return [(word, entry) for entry in self.values(section, key)
                for word in entry.value.split()]


# --- command lines, specifiers, time spans, calendars (pure helpers) ------------------

_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
            "\\": "\\", '"': '"', "'": "'", "s": " "}


def split_words(text):
    """systemd's word splitting: blanks separate words, "..." and '...' group (anywhere
    in a word), C escapes (\\n, \\t, \\xHH, \\NNN, \\\\ ...) are decoded inside and
    outside quotes.  Returns ``(words, None)`` or ``(None, reason)``."""
    words, word, quote, started = [], [], None, False
    i = 0
    while i < len(text):
        ch = text[i]
        i += 1
        if ch == "\\":
            if i >= len(text):
                return None, "a backslash ends the line"
            code = text[i]
            i += 1
            if code in _ESCAPES:
                word.append(_ESCAPES[code])
            elif code == "x" and i + 2 <= len(text) and _is_hex(text[i:i + 2]):
                word.append(chr(int(text[i:i + 2], 16)))
                i += 2
            elif code in "0123" and i + 2 <= len(text) and \
                    all(c in "01234567" for c in text[i:i + 2]):
                word.append(chr(int(code + text[i:i + 2], 8)))
                i += 2
            elif code in ("u", "U"):
                size = 4 if code == "u" else 8
                digits = text[i:i + size]
                if len(digits) < size or not _is_hex(digits):
                    return None, "bad \\%s escape (\\%s and %d hex digits)" % (code, code,
                                                                             size)
                point = int(digits, 16)
                if point > 0x10FFFF or 0xD800 <= point <= 0xDFFF:
                    return None, "\\%s%s is not a unicode character" % (code, digits)
                word.append(chr(point))
                i += size
            else:
                return None, "unknown escape \\%s" % code
            if word[-1] == "\0":
                return None, "an escape makes a NUL character, which no argument can hold"
            started = True
            continue
        if quote:
            if ch == quote:
                quote = None
            else:
                word.append(ch)
            continue
        if ch in "\"'":
            quote, started = ch, True
            continue
        if ch in " \t\n":
            if started:
                words.append("".join(word))
                word, started = [], False
            continue
        word.append(ch)
        started = True
    if quote:
        return None, "a %s quote is not closed" % quote
    if started:
        words.append("".join(word))
    return words, None


def _is_hex(text):
    return bool(text) and all(c in "0123456789abcdefABCDEF" for c in text)


def expand_specifiers(text, unit, user=""):
    """``%i``, ``%n``, ``%t`` ... resolved as systemd does for this unit; an instance
    becomes ``INSTANCE_MARK`` in a template.  Returns ``(text, None)`` or ``(None, why)``."""
    template = unit.instance is not None
    prefix = unit.base.partition("@")[0] if "@" in unit.name else unit.base
    instance = INSTANCE_MARK if template else ""
    suffix = unit.kind
    name = "%s@%s%s" % (prefix, instance, suffix) if template else unit.name
    home = "/root" if user in ("", "root") else None
    table = {"%": "%", "i": instance, "I": instance, "n": name, "N": name[:-len(suffix)],
             "p": prefix, "P": prefix, "j": prefix.rpartition("-")[2],
             "J": prefix.rpartition("-")[2], "f": "/" + (instance if template else prefix),
             "t": "/run", "S": "/var/lib", "C": "/var/cache", "L": "/var/log", "E": "/etc",
             "T": "/tmp", "V": "/var/tmp", "u": user or "root", "h": home}
    out = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch != "%":
            out.append(ch)
            i += 1
            continue
        code = text[i + 1:i + 2]
        value = table.get(code)
        if value is None:
            return None, "specifier %%%s is not known here" % code if code else \
                "a lone % ends the value"
        out.append(value)
        i += 2
    return "".join(out), None


def parse_command(value, unit, user=""):
    """One ``ExecStart=``-like value as ``(flags, words)``, words being lists of parts
    ``("text", s)``, ``("var", NAME)`` (``${NAME}``: one argument) and ``("split",
    NAME)`` (``$NAME`` as a word: split at blanks).  Returns ``(flags, words, None)``
    or ``(None, None, why)``."""
    flags = ""
    while value[:1] in ("-", "@", "+", "!", ":", "|"):
        flags += value[0]
        value = value[1:]
    if "|" in flags:
        return None, None, "the | prefix (a login shell) is not supported"
    text, why = expand_specifiers(value, unit, user)
    if text is None:
        return None, None, why
    words, why = split_words(text)
    if words is None:
        return None, None, why
    if not words:
        return None, None, "no command"
    if ";" in words:
        return None, None, "several commands on one line (;) are not supported"
    parsed = []
    for word in words:
        if ":" in flags:
            parsed.append(_mark_instance([("text", word)]))
        else:
            parsed.append(_mark_instance(_variables(word)))
    return flags, parsed, None


def _variables(word):
    if word.startswith("$") and len(word) > 1 and config.env_name_ok(word[1:]):
        return [("split", word[1:])]
    parts, text = [], []
    i = 0
    while i < len(word):
        if word.startswith("$$", i):
            text.append("$")
            i += 2
            continue
        if word.startswith("${", i):
            end = word.find("}", i + 2)
            if end > 0 and config.env_name_ok(word[i + 2:end]):
                if text:
                    parts.append(("text", "".join(text)))
                    text = []
                parts.append(("var", word[i + 2:end]))
                i = end + 1
                continue
        text.append(word[i])
        i += 1
    if text or not parts:
        parts.append(("text", "".join(text)))
    return parts


def _mark_instance(parts):
    """Literal parts holding INSTANCE_MARK split into ``("var", "INSTANCE")`` parts."""
    out = []
    for kind, value in parts:
        if kind != "text" or INSTANCE_MARK not in value:
            out.append((kind, value))
            continue
        pieces = value.split(INSTANCE_MARK)
        for n, piece in enumerate(pieces):
            if piece:
                out.append(("text", piece))
            if n < len(pieces) - 1:
                out.append(("var", "INSTANCE"))
    return out


def sh_quote(text):
    if text and all(c in SAFE_WORD_CHARS for c in text):
        return text
    return "'" + text.replace("'", "'\\''") + "'"


def sh_word(parts):
    out = []
    for kind, value in parts:
        if kind == "text":
            out.append(sh_quote(value))
        elif kind == "var":
            out.append('"${%s}"' % value)
        else:
            out.append("${%s}" % value)
    return "".join(out)


def is_literal(word):
    return all(kind == "text" for kind, _ in word)


def literal(word):
    return "".join(value for _, value in word)


_SPAN_UNITS = (("usec", 1e-6), ("us", 1e-6), ("msec", 1e-3), ("ms", 1e-3),
               ("seconds", 1), ("second", 1), ("sec", 1), ("s", 1),
               ("minutes", 60), ("minute", 60), ("min", 60), ("m", 60),
               ("hours", 3600), ("hour", 3600), ("hr", 3600), ("h", 3600),
               ("days", 86400), ("day", 86400), ("d", 86400),
               ("weeks", 604800), ("week", 604800), ("w", 604800),
               ("months", 2629800), ("month", 2629800), ("M", 2629800),
               ("years", 31557600), ("year", 31557600), ("y", 31557600))


def parse_timespan(text):
    """A systemd time span ("90", "1min 30s", "1.5h", "infinity") in seconds (a float,
    None for infinity).  Returns ``(seconds, None)`` or ``(False, why)``."""
    text = text.strip()
    if text == "infinity":
        return None, None
    total, rest = 0.0, text.replace(" ", "")
    if not rest or len(rest) > 64:
        return False, "not a time span"
    while rest:
        n = 0
        while n < len(rest) and rest[n] in "0123456789.":
            n += 1
        number, rest = rest[:n], rest[n:]
        if not number or number.count(".") > 1 or number == ".":
            return False, "%r is not a time span" % text
        unit = 1
        for word, factor in _SPAN_UNITS:
            if rest.startswith(word):
                unit, rest = factor, rest[len(word):]
                break
        else:
            if rest and rest[0] not in "0123456789":
                return False, "%r has an unknown unit" % text
        total += float(number) * unit
    return total, None


def whole_seconds(seconds):
    """Seconds rounded up (a timeout of 0.5 s is not none)."""
    whole = int(seconds)
    return whole + 1 if seconds > whole else whole


_CALENDAR_WORDS = {"daily": "00:00", "weekly": "Mon 00:00", "monthly": "1 00:00",
                   "midnight": "00:00"}
_DAY_NAMES = {"mon": "Mon", "tue": "Tue", "wed": "Wed", "thu": "Thu", "fri": "Fri",
              "sat": "Sat", "sun": "Sun", "monday": "Mon", "tuesday": "Tue",
              "wednesday": "Wed", "thursday": "Thu", "friday": "Fri", "saturday": "Sat",
              "sunday": "Sun"}


def map_calendar(text):
    """A systemd ``OnCalendar=`` as ``(our on_calendar, note)``: ours is ``HH:MM``,
    ``Ddd HH:MM`` or ``D HH:MM``.  ``note`` says what was approximated; ``(None, why)``
    when it cannot be written in our grammar."""
    words = text.split()
    if len(words) == 1 and words[0].lower() in _CALENDAR_WORDS:
        return _CALENDAR_WORDS[words[0].lower()], None
    day_name = date = clock = None
    for word in words:
        if ":" in word and clock is None:
            clock = word
        elif "-" in word and date is None and word[:1] in "*0123456789":
            date = word
        elif day_name is None and clock is None and date is None:
            day_name = word
        else:
            return None, "%r is more than our calendar grammar says" % text
    notes = []
    hour, minute = "00", "00"
    if clock is not None:
        parts = clock.split(":")
        if len(parts) not in (2, 3):
            return None, "%r: the time is not HH:MM[:SS]" % text
        if len(parts) == 3 and parts[2] not in ("00", "0"):
            return None, "%r: seconds other than 00" % text
        if "," in parts[0] and all(is_number(p, 2) for p in parts[0].split(",")):
            notes.append("only the first of the hours %s is kept" % parts[0])
            parts[0] = parts[0].split(",")[0]
        if not (parts[0].isdigit() and parts[1].isdigit()):
            return None, "%r: repeating times (*, ranges, /) are not in our grammar" % text
        if not (is_number(parts[0], 2) and is_number(parts[1], 2)):
            return None, "%r: the time is not HH:MM" % text
        hour, minute = parts[0].zfill(2), parts[1].zfill(2)
    day = None
    if date is not None:
        fields = date.split("-")
        if len(fields) == 2:
            fields = ["*"] + fields
        if len(fields) != 3 or fields[0] != "*" or fields[1] != "*":
            return None, "%r: a year or month in the date is not in our grammar" % text
        if fields[2] != "*":
            if not is_number(fields[2], 2):
                return None, "%r: the day of the month is not one number" % text
            day = str(int(fields[2]))
    if day_name is not None:
        name = _DAY_NAMES.get(day_name.lower())
        if name is None or day is not None:
            return None, "%r: weekday lists and ranges are not in our grammar" % text
        day = name
    result = ("%s %s:%s" % (day, hour, minute)) if day else "%s:%s" % (hour, minute)
    calendar, why = timers.parse_calendar(result)
    if calendar is None:
        return None, "%r: %s" % (text, why)
    return result, "; ".join(notes) or None


# --- one service: a unit (with its sockets and timer) as .svc lines ------------------

# Keys meaning nothing here: read (or used to choose units) and not reported.
QUIET = frozenset((
    ("Unit", "Description"), ("Unit", "Documentation"), ("Unit", "DefaultDependencies"),
    ("Unit", "IgnoreOnIsolate"), ("Unit", "AllowIsolate"), ("Unit", "SourcePath"),
    ("Unit", "Before"), ("Unit", "After"), ("Unit", "Wants"), ("Unit", "Requires"),
    ("Unit", "BindsTo"), ("Unit", "Requisite"), ("Unit", "PartOf"), ("Unit", "Upholds"),
    ("Unit", "WantedBy"), ("Unit", "RequiredBy"),
    ("Service", "GuessMainPID"), ("Service", "RemoveIPC"),
    ("Socket", "Accept"), ("Socket", "Service"), ("Socket", "RemoveOnStop"),
    ("Timer", "AccuracySec"), ("Timer", "Unit"), ("Timer", "RemainAfterElapse"),
))
SOCKET_OPTION = "this socket option is not set"
_DROP_PREFIXES = (
    (("Protect", "Private", "Restrict", "NoNewPrivileges", "SystemCall", "Capability",
      "AmbientCapabilities", "LockPersonality", "MemoryDenyWriteExecute", "ReadWritePaths",
      "ReadOnlyPaths", "InaccessiblePaths", "ExecPaths", "NoExecPaths", "DevicePolicy",
      "DeviceAllow", "IPAddress", "KeyringMode", "SecureBits", "BindPaths",
      "BindReadOnlyPaths", "TemporaryFileSystem", "RootDirectory", "RootImage",
      "MountFlags", "MountAPIVFS", "ProcSubset", "UMask", "Personality", "DynamicUser",
      "SELinuxContext", "AppArmorProfile", "SmackProcessLabel"),
     "sandboxing: schema-init does not confine services"),
    (("Condition", "Assert"), "not checked (only the path conditions of a oneshot are)"),
    (("Pass", "ReceiveBuffer", "SendBuffer", "Backlog", "BindIPv6Only", "Bind",
      "FreeBind", "Transparent", "Broadcast", "KeepAlive", "NoDelay", "Priority", "Mark",
      "ReusePort", "IPTOS", "IPTTL", "Timestamping", "Symlinks", "FileDescriptorName",
      "MaxConnections", "DirectoryMode", "Writable", "DeferAcceptSec", "TriggerLimit",
      "PollLimit", "SmackLabel", "SELinuxContextFromNet", "PipeSize", "MessageQueue",
      "ExecStartPost", "ExecStopPre"), SOCKET_OPTION),
    (("Limit",), "resource limits (setrlimit) are not set"),
    (("IOScheduling", "CPUScheduling", "CPUAffinity", "NUMA", "IOWeight", "IODevice",
      "CPUWeight", "StartupCPU", "StartupIO", "TasksMax", "Slice", "Delegate",
      "MemoryLow", "MemoryHigh", "MemorySwap", "MemoryMin", "ManagedOOM", "OOMPolicy"),
     "this scheduling or cgroup setting is not supported (priority=, cpu_limit=, "
     "mem_limit= are)"),
    (("RuntimeDirectory", "StateDirectory", "CacheDirectory", "LogsDirectory",
      "ConfigurationDirectory"), "this directory setting is not supported (the "
     "directories themselves are made)"),
    (("Syslog", "LogLevelMax", "LogExtraFields", "LogRateLimit", "LogNamespace"),
     "output goes to the service's log file (RUN/log/NAME.log)"),
    (("Exec",), "only ExecStart= and ExecStartPre= are run"),
    (("OnFailure", "OnSuccess", "StartLimit", "JobTimeout", "JobRunningTimeout",
      "FailureAction", "SuccessAction"), "no such unit action here"),
)
DIRECTORY_KEYS = (("RuntimeDirectory", "/run"), ("StateDirectory", "/var/lib"),
                  ("CacheDirectory", "/var/cache"), ("LogsDirectory", "/var/log"),
                  ("ConfigurationDirectory", "/etc"))
PATH_CONDITIONS = {
    "ConditionPathExists": "-e", "ConditionPathIsDirectory": "-d",
    "ConditionFileNotEmpty": "-s", "ConditionFileIsExecutable": "-x",
    "ConditionPathIsSymbolicLink": "-L", "ConditionPathIsReadWrite": "-w",
}
RESTART_WORDS = ("no", "always", "on-success", "on-failure", "on-abnormal", "on-abort",
                 "on-watchdog")
HUP_RELOADS = ("/bin/kill -HUP $MAINPID", "/usr/bin/kill -HUP $MAINPID", "kill -HUP $MAINPID",
               "/bin/kill -s HUP $MAINPID", "/usr/bin/kill -s HUP $MAINPID",
               "/bin/kill -1 $MAINPID")
QUIET_OUTPUTS = ("journal", "syslog", "kmsg", "inherit", "journal+console",
                 "syslog+console", "kmsg+console")


def drop_reason(section, key):
    for prefixes, reason in _DROP_PREFIXES:
        if (reason == SOCKET_OPTION) != (section == "Socket"):
            continue
        if any(key.startswith(p) for p in prefixes):
            return reason
    return "no schema-init equivalent"


class Generated:
    """One .svc file made from units."""

    __slots__ = ("name", "lines", "drops", "sources", "template_of", "pre_of")

    def __init__(self, name, sources):
        self.name = name                  # the service: cron, getty@, getty@tty1
        self.lines = []                   # [(key, value, Entry or None)]
        self.drops = []                   # [(Entry, why)]
        self.sources = list(sources)
        self.template_of = None           # an instance: the template's Generated
        self.pre_of = None                # a NAME-pre: NAME

    @property
    def file_name(self):
        return self.name + ".svc"

    def add(self, key, value, origin=None):
        self.lines.append((key, value, origin))

    def render(self):
        """``(text, {svc line number: (unit path, unit line)})``."""
        source = self.template_of or self
        out = ["# Imported by schema-init import-units from the systemd unit%s %s" % (
            "s" if len(source.sources) > 1 else "", ", ".join(source.sources))]
        if self.pre_of:
            out.append("# ExecStartPre= of %s, run before it as a oneshot" % self.pre_of)
        if self.template_of is not None:
            out.append("# (the instance %s of the template %s)"
                       % (self.name, self.template_of.file_name))
        drops = sorted(source.drops, key=lambda d: (d[0].path, d[0].line))
        if drops:
            out.append("# Not carried over:")
            out += ["#   %s:%d: %s (%s)" % (e.path, e.line, _one_line(e.text()), why)
                    for e, why in drops]
        origins = {}
        for key, value, origin in source.lines:
            out.append("%s=%s" % (key, value))
            if origin is not None:
                origins[len(out)] = (origin.path, origin.line)
        return "\n".join(out) + "\n", origins

    def diagnostics(self):
        return [_diag(e.path, e.line, e.key, config.WARNING, why)
                for e, why in sorted(self.drops, key=lambda d: (d[0].path, d[0].line))]


def _one_line(text, limit=200):
    text = "".join(c if c.isprintable() else "?" for c in text)
    return text if len(text) <= limit else text[:limit] + "..."


class Converter:
    """Maps one service unit, the socket units feeding it and its timer unit."""

    def __init__(self, unit, sockets=(), timer=None, deps=(), svc_name=None,
                 subreaper=SUBREAPER, path_test=None, condition_test=None):
        self.subreaper = subreaper
        self.path_test = path_test       # (flag, path) -> bool: daemons' conditions, or None
        self.condition_test = condition_test   # (key, value) -> True, False, None (unknown)
        self.skip_reason = None
        self.made_dirs = []
        self.tty_term = None
        self.unit = unit
        self.sockets = list(sockets)
        self.timer = timer
        self.deps = deps                 # [(service name, Entry or None)], decided by the set
        self.name = svc_name or unit.base
        self.out = Generated(self.name, [path for u in [unit] + self.sockets + [timer]
                                         if u is not None for path in u.sources])
        self.used = set()                # id() of entries accounted for
        self.pre = None
        self.failed = None               # (Entry or None, why): the unit cannot be a service

    # helpers
    def use(self, entry):
        if entry is not None:
            self.used.add(id(entry))
        return entry

    def drop(self, entry, why):
        self.used.add(id(entry))
        self.out.drops.append((entry, why))

    def get(self, unit, section, key):
        entry = unit.last(section, key)
        for other in unit.entries:
            if other.section == section and other.key == key:
                self.used.add(id(other))
        return entry

    def every(self, unit, section, key):
        """A list setting's entries, every line of it accounted for (those an empty
        assignment cleared too)."""
        for entry in unit.entries:
            if entry.section == section and entry.key == key:
                self.used.add(id(entry))
        return unit.values(section, key)

    def word(self, unit, section, key, default=""):
        entry = self.get(unit, section, key)
        return (entry.value if entry else default), entry

    def convert(self):
        """The service's Generated file, then its NAME-pre if any; [] with ``failed``
        (not a service: an error) or ``skip_reason`` (a false condition) set."""
        unit = self.unit
        user, user_entry = self.word(unit, "Service", "User")
        self.user = "" if user == "root" else user
        kind, type_entry = self.word(unit, "Service", "Type", "simple")
        kind = kind.lower()
        if kind not in ("simple", "exec", "notify", "oneshot", "forking", "idle", "dbus"):
            self.drop(type_entry, "Type=%s is not supported; run as simple" % kind)
            kind = "simple"
        if kind == "dbus":
            self.drop(type_entry, "Type=dbus: readiness by bus name is not supported; "
                      "run as simple")
        remain, _ = self.word(unit, "Service", "RemainAfterExit", "no")
        if kind == "forking" and remain.lower() in ("yes", "true", "1", "on"):
            oneshot = True               # a script that starts things, then is done
        else:
            oneshot = kind == "oneshot"
        is_timer = self.timer is not None
        starts = unit.values("Service", "ExecStart")
        for entry in unit.entries:
            if entry.section == "Service" and entry.key == "ExecStart":
                self.use(entry)
        if not starts:
            self.failed = (None, "no ExecStart=")
            return []
        if len(starts) > 1 and not oneshot:
            for extra in starts[1:]:
                self.drop(extra, "only a oneshot runs several ExecStart=; ignored")
            starts = starts[:1]
        tty = self.tty_redirects()
        conditions = self.conditions(oneshot or is_timer)
        if self.skip_reason is not None:
            return []
        self.made_dirs = self.directories(self.user) + self.process_settings() + \
            ([self.tty_term] if self.tty_term else [])
        conditions = conditions + self.made_dirs
        restart, restart_entry = self.word(unit, "Service", "Restart", "no")
        commands = []
        for entry in starts:
            parsed = self.command(entry, user)
            if parsed is None:
                if self.failed:
                    return []
                continue
            commands.append(parsed)
        if not commands:
            self.failed = (starts[0], "no ExecStart= could be mapped")
            return []
        for flags, words, entry in commands:
            if "-" in flags and not oneshot and restart != "always":
                self.drop(entry, "the - prefix: a failure of a daemon is a failure here")
        privileged = [c for c in commands if "+" in c[0] or "!" in c[0]]
        if privileged and user and len(privileged) < len(commands):
            for _flags, _words, entry in privileged:
                self.drop(entry, "the %s prefix: this command runs as %s like the others"
                          % (_flags.replace("-", "") or "+", user))
        if privileged and len(privileged) == len(commands):
            user = ""                    # every command asks for root
        exec_path, args = self.program(commands, conditions, tty, oneshot)
        if exec_path is None:
            return []
        if kind == "forking":
            args = [exec_path] + args
            exec_path = self.subreaper
            self.get(unit, "Service", "PIDFile")
        out = self.out
        out.add("exec", exec_path, starts[0])
        for arg in args:
            out.add("args", arg, starts[0])
        if oneshot or is_timer:
            out.add("oneshot", "1", type_entry)
            self.get(unit, "Service", "RemainAfterExit")
        if kind == "notify":
            out.add("notify", "1", type_entry)
            self.get(unit, "Service", "NotifyAccess")
        if tty and restart == "always":
            out.add("session", "1", restart_entry)
        self.restart(restart, restart_entry, oneshot or is_timer)
        if user == "root":
            user = ""                    # what schema-init runs as already
        if user:
            out.add("user", user, user_entry)
            group, group_entry = self.word(unit, "Service", "Group")
            if group and group != user:
                self.drop(group_entry, "Group=%s: the user's own groups are used" % group)
        else:
            self.get(unit, "Service", "Group")
        self.environment()
        self.workdir()
        for socket in self.sockets:
            self.socket(socket)
        if self.timer is not None:
            self.timer_lines(self.timer)
        for name, origin in self.deps:
            out.add("dep", name, origin)
        self.service_settings()
        pres = self.pre_commands(self.user)
        self.leftovers([unit] + self.sockets + ([self.timer] if self.timer else []))
        return [out] + pres

    # ExecStart and friends
    def command(self, entry, user):
        flags, words, why = parse_command(entry.value, self.unit, user)
        if flags is None:
            self.drop(entry, why)
            return None
        if "@" in flags:
            if len(words) < 2:
                self.drop(entry, "the @ prefix needs a program and its argv[0]")
                return None
            self.out.drops.append((entry, "the @ prefix: argv[0] is the program's path"))
            words = [words[0]] + words[2:]
        for word in words:
            for kind, value in word:
                if kind == "text" and config._control_char(value.replace("\t", " ")):
                    self.failed = (entry, "a control character in the command")
                    return None
        return flags, words, entry

    def program(self, commands, conditions, tty, oneshot):
        """exec= and args= for a list of commands run in order (a oneshot's several
        ExecStart=), through /bin/sh only when something needs it."""
        ignored = oneshot and "-" in commands[0][0]
        plain = (len(commands) == 1 and not conditions and not tty and not ignored and
                 all(is_literal(w) for w in commands[0][1]) and
                 literal(commands[0][1][0]).startswith("/"))
        if plain:
            words = [literal(w) for w in commands[0][1]]
            if any(len(w) > config.ARG_MAX for w in words) or \
                    len(words[0]) > config.PATH_MAX or " " in words[0]:
                self.failed = (commands[0][2], "a word is too long for an args= line")
                return None, None
            return words[0], words[1:]
        script = list(conditions)
        if any(kind == "split" for _, words, _ in commands for w in words for kind, _ in w):
            script.insert(0, "set -f")   # $VAR splits at blanks, as in systemd: no globbing
        for n, (flags, words, entry) in enumerate(commands):
            text = " ".join(sh_word(w) for w in words)
            last = n == len(commands) - 1
            if "-" in flags and (oneshot or not last):
                script.append("%s%s || :" % (text, tty))
            elif last:
                script.append("exec %s%s" % (text, tty))
            else:
                script.append("%s%s || exit" % (text, tty))
        line = "; ".join(script)
        if len(line) > config.ARG_MAX:
            self.failed = (commands[0][2], "the command is too long for an args= line")
            return None, None
        return SHELL, ["-c", line]

    def conditions(self, oneshot):
        """Path conditions (``ConditionPathExists=`` and the like, also negated with
        ``!``).  A oneshot's become shell tests before its command (false: done, as
        systemd skips it); a daemon's are checked now by ``path_test`` when one is given
        (false: the unit is skipped, ``skip_reason``), else left for ``leftovers`` to
        report; other conditions too.  Path assertions (``AssertPathExists=`` ...) are
        shell tests for every service: false fails the start, as in systemd."""
        found = []
        entries = self.unit.entries + (self.timer.entries if self.timer else [])
        for entry in entries:
            if entry.section != "Unit" or not entry.value:
                continue
            asserted = entry.key.startswith("Assert")
            key = "Condition" + entry.key[6:] if asserted else entry.key
            flag = PATH_CONDITIONS.get(key) or \
                ("notempty" if key == "ConditionDirectoryNotEmpty" else None)
            if flag is None:
                continue
            negate = entry.value.startswith("!")
            path = entry.value[1:] if negate else entry.value
            if not path.startswith("/"):
                continue                 # |triggering conditions: left for leftovers
            path, why = expand_specifiers(path, self.unit)
            if path is None or INSTANCE_MARK in path:
                continue
            found.append((entry, flag, negate, path, asserted))
        tests = []
        if self.condition_test is not None:
            for entry in entries:
                if entry.section != "Unit" or not entry.key.startswith("Condition") or \
                        entry.key in PATH_CONDITIONS or entry.value.startswith("|"):
                    continue
                verdict = self.condition_test(entry.key, entry.value)
                if verdict is None:
                    continue             # not known here: leftovers reports it
                self.use(entry)
                if verdict is False and self.skip_reason is None:
                    self.skip_reason = "%s is false (checked when the units were read)" \
                        % entry.text()
        for entry, flag, negate, path, asserted in found:
            if not asserted and not oneshot:
                if self.path_test is None:
                    continue
                self.use(entry)
                if self.path_test(flag, path) == negate and self.skip_reason is None:
                    self.skip_reason = "%s is false (checked when the units were read)" \
                        % entry.text()
                continue
            self.use(entry)
            if flag == "notempty":
                test = '[ -n "$(ls -A %s 2>/dev/null)" ]' % sh_quote(path.rstrip("/") + "/")
            else:
                test = "[ %s %s ]" % (flag, sh_quote(path))
            test = "! " + test if negate else test
            if asserted:
                tests.append("%s || { echo %s >&2; exit 1; }" % (
                    test, sh_quote("schema-init: %s failed" % entry.text())))
            else:
                tests.append("%s || exit 0" % test)
        return tests

    def directories(self, user):
        """``RuntimeDirectory=`` and its kin: made (``mkdir -p -m MODE``, given to the
        user) by the shell before the command, as systemd makes them before the start.
        They are not removed at the stop."""
        lines = []
        for key, base in DIRECTORY_KEYS:
            entries = self.unit.values("Service", key)
            mode, mode_entry = self.word(self.unit, "Service", key + "Mode", "0755")
            for entry in self.unit.entries:
                if entry.section == "Service" and entry.key == key:
                    self.use(entry)
            if not (0 < len(mode) <= 4 and all(c in "01234567" for c in mode)):
                self.drop(mode_entry, "not an octal mode")
                mode = "0755"
            if not entries:
                continue
            for entry in entries:
                for word in entry.value.split():
                    name, why = expand_specifiers(word.partition(":")[0], self.unit, user)
                    if name is None or name.startswith("/") or ".." in name.split("/"):
                        self.drop(entry, why or "%r is not a relative directory name" % word)
                        continue
                    path = sh_word(_mark_instance([("text", base + "/" + name)]))
                    line = "mkdir -p -m %s %s" % (mode.zfill(4), path)
                    if user and key != "ConfigurationDirectory":
                        line += " && chown %s: %s" % (sh_quote(user), path)
                    lines.append(line + " || exit")
        return lines

    def process_settings(self):
        """``UnsetEnvironment=``, ``OOMScoreAdjust=``, ``LimitNOFILE=``, ``LimitNPROC=``
        and ``LimitCORE=`` (counts and 0/infinity: no unit to convert) as shell lines
        before the command; other ``Limit*=`` are left for ``leftovers``."""
        unit, lines = self.unit, []
        names = []
        for entry in unit.values("Service", "UnsetEnvironment"):
            self.use(entry)
            for word in entry.value.split():
                if config.env_name_ok(word):
                    names.append(word)
                else:
                    self.drop(entry, "%r: only variable names are unset here" % word)
        for entry in unit.entries:
            if entry.key == "UnsetEnvironment":
                self.use(entry)
        if names:
            lines.append("unset %s" % " ".join(names))
        value, entry = self.word(unit, "Service", "OOMScoreAdjust")
        if value:
            number = value[1:] if value[:1] in "+-" else value
            if is_number(number, 4) and int(number) <= 1000:
                # as systemd, a refusal (in a container, say) is not a failure
                lines.append("echo %d 2>/dev/null >/proc/self/oom_score_adj || :" % int(value))
            else:
                self.drop(entry, "not a number from -1000 to 1000")
        for key, flag in (("LimitNOFILE", "-n"), ("LimitNPROC", "-p"), ("LimitCORE", "-c")):
            entry = unit.last("Service", key)
            if entry is None:
                continue
            soft, _, hard = entry.value.partition(":")
            hard = hard or soft
            values = ["unlimited" if v == "infinity" else v for v in (soft, hard)]
            if not all(v == "unlimited" or is_number(v) for v in values) or \
                    key == "LimitCORE" and not all(v in ("0", "unlimited") for v in values):
                continue                     # leftovers reports it
            self.get(unit, "Service", key)
            soft, hard = values
            if soft == hard:
                lines.append("ulimit %s %s || exit" % (flag, soft))
            else:                            # soft first when lowering, hard first when raising
                lines.append("{ ulimit -S %s %s && ulimit -H %s %s; } 2>/dev/null || "
                             "{ ulimit -H %s %s && ulimit -S %s %s; } || exit"
                             % (flag, soft, flag, hard, flag, hard, flag, soft))
        return lines

    def tty_redirects(self):
        unit = self.unit
        stdin, stdin_entry = self.word(unit, "Service", "StandardInput", "null")
        path, path_entry = self.word(unit, "Service", "TTYPath", "/dev/console")
        if not stdin.startswith("tty"):
            if path_entry is not None:
                self.drop(path_entry, "TTYPath= without StandardInput=tty")
            return ""
        path, why = expand_specifiers(path, unit)
        if path is None or not path.startswith("/"):
            self.drop(path_entry, why or "not an absolute path")
            return ""
        target = sh_word(_mark_instance([("text", path)]))
        self.tty_term = self.term_line(path)
        stdout, _ = self.word(unit, "Service", "StandardOutput", "inherit")
        stderr, _ = self.word(unit, "Service", "StandardError", "inherit")
        text = " <%s" % target
        if stdout in ("tty", "inherit"):
            text += " >%s" % target
            if stderr in ("tty", "inherit"):
                text += " 2>&1"
        return text

    def term_line(self, path):
        """systemd gives a service on a terminal TERM=linux on a virtual console,
        vt220 on any other (on /dev/console, its own TERM); Environment=TERM= wins."""
        if path == "/dev/console" or any(entry.value.startswith("TERM=") or " TERM=" in
                                         entry.value for entry in
                                         self.unit.values("Service", "Environment")):
            return None
        name = path[5:] if path.startswith("/dev/") else path
        if INSTANCE_MARK in name:
            if name != INSTANCE_MARK:
                return None
            return ('case "${INSTANCE}" in tty[0-9]|tty[0-9][0-9]) TERM=linux;; '
                    '*) TERM=vt220;; esac; export TERM')
        virtual = name.startswith("tty") and is_number(name[3:], 2)
        return "export TERM=%s" % ("linux" if virtual else "vt220")

    def restart(self, restart, entry, oneshot):
        if restart not in RESTART_WORDS:
            self.drop(entry, "Restart=%s is not a Restart= value" % restart)
            return
        if restart == "no" and not self.timer:
            self.out.add("no_restart", "1", entry)
        elif restart == "on-success":
            self.drop(entry, "Restart=on-success: every death restarts here")

    def environment(self):
        unit, out = self.unit, self.out
        for entry in unit.values("Service", "Environment"):
            self.use(entry)
            text, why = expand_specifiers(entry.value, unit)
            words, why = split_words(text) if text is not None else (None, why)
            if words is None:
                self.drop(entry, why)
                continue
            for word in words:
                name, eq, _value = word.partition("=")
                if not eq or not config.env_name_ok(name) or INSTANCE_MARK in word or \
                        config._control_char(word):
                    self.drop(entry, "%r is not NAME=VALUE here" % word)
                    continue
                out.add("env", word, entry)
        for entry in unit.values("Service", "EnvironmentFile"):
            self.use(entry)
            path = entry.value
            if not path.lstrip("-").startswith("/"):
                self.drop(entry, "not an absolute path")
                continue
            out.add("env_file", path, entry)
        for entry in unit.entries:
            if entry.key in ("Environment", "EnvironmentFile"):
                self.use(entry)

    def workdir(self):
        value, entry = self.word(self.unit, "Service", "WorkingDirectory")
        if not value:
            return
        optional = value.startswith("-")
        path = value.lstrip("-")
        if path == "~":
            self.drop(entry, "~ (the user's home) is not resolved here")
            return
        path, why = expand_specifiers(path, self.unit)
        if path is None or INSTANCE_MARK in path or not path.startswith("/"):
            self.drop(entry, why or "not an absolute path")
            return
        self.out.add("workdir", ("-" if optional else "") + path, entry)

    def socket(self, unit):
        out = self.out
        accept, accept_entry = self.word(unit, "Socket", "Accept", "no")
        self.use(unit.last("Socket", "Service"))
        if accept.lower() in ("yes", "true", "1", "on"):
            self.drop(accept_entry, "Accept=yes (a service per connection) is not supported")
        for key, kind in (("ListenStream", "stream"), ("ListenDatagram", "dgram")):
            for entry in self.every(unit, "Socket", key):
                value, why = listen_value(kind, entry.value, unit)
                if value is None:
                    self.drop(entry, why)
                else:
                    out.add("listen", value, entry)
        mode, entry = self.word(unit, "Socket", "SocketMode")
        if mode:
            out.add("socket_mode", mode.zfill(4), entry)
        for key, ours in (("SocketUser", "socket_user"), ("SocketGroup", "socket_group")):
            value, entry = self.word(unit, "Socket", key)
            if value:
                out.add(ours, value, entry)

    def timer_lines(self, unit):
        out = self.out
        calendars = self.every(unit, "Timer", "OnCalendar")
        calendar = None
        for entry in calendars:
            self.use(entry)
            if calendar is not None:
                self.drop(entry, "only one OnCalendar= per timer here")
                continue
            mapped, note = map_calendar(entry.value)
            if mapped is None:
                self.drop(entry, note)
                continue
            calendar = mapped
            out.add("on_calendar", mapped, entry)
            if note:
                out.drops.append((entry, note))
        for key, ours in (("OnBootSec", "on_boot_sec"), ("OnStartupSec", "on_boot_sec"),
                          ("OnActiveSec", "on_boot_sec"), ("OnUnitActiveSec", "on_active_sec"),
                          ("OnUnitInactiveSec", "on_active_sec")):
            for entry in self.every(unit, "Timer", key):
                if calendar is not None:
                    self.drop(entry, "a timer here is either a calendar or an interval")
                    continue
                if any(k == ours for k, _, _ in out.lines):
                    self.drop(entry, "%s is given already" % ours)
                    continue
                seconds, why = parse_timespan(entry.value)
                if seconds is False or seconds is None:
                    self.drop(entry, why or "infinity")
                    continue
                out.add(ours, str(whole_seconds(seconds)), entry)
        persistent, entry = self.word(unit, "Timer", "Persistent", "no")
        if persistent.lower() in ("yes", "true", "1", "on"):
            if calendar is not None:
                out.add("persistent", "1", entry)
            else:
                self.drop(entry, "Persistent= applies to calendar timers only")

    def service_settings(self):
        unit, out = self.unit, self.out
        value, entry = self.word(unit, "Service", "KillMode")
        if value:
            if value in config.KILL_MODES:
                out.add("kill_mode", value, entry)
            else:
                self.drop(entry, "KillMode=%s is not supported" % value)
        both, both_entry = self.word(unit, "Service", "TimeoutSec")
        for key, ours in (("TimeoutStartSec", "start_timeout_sec"),
                          ("TimeoutStopSec", "stop_timeout_sec")):
            value, entry = self.word(unit, "Service", key)
            if not value and both:
                value, entry = both, both_entry
            if not value:
                continue
            seconds, why = parse_timespan(value)
            if seconds is False:
                self.drop(entry, why)
                continue
            if seconds is None or seconds == 0:
                if ours == "start_timeout_sec":
                    out.add(ours, "0", entry)
                else:
                    out.add(ours, "86400", entry)
                    out.drops.append((entry, "infinity: a stop waits 24 hours at most"))
                continue
            out.add(ours, str(min(whole_seconds(seconds), 86400)), entry)
        value, entry = self.word(unit, "Service", "WatchdogSec")
        if value:
            seconds, why = parse_timespan(value)
            if seconds:
                out.add("watchdog_sec", str(whole_seconds(seconds)), entry)
            elif seconds is False:
                self.drop(entry, why)
        value, entry = self.word(unit, "Unit", "StartLimitBurst")
        other, other_entry = self.word(unit, "Service", "StartLimitBurst")
        if not value:
            value, entry = other, other_entry
        elif other_entry is not None and not is_number(other, 6):
            self.drop(other_entry, "not a number (up to 6 digits)")
        if is_number(value, 6):
            out.add("max_restarts", value, entry)
        elif entry is not None:
            self.drop(entry, "not a number (up to 6 digits)")
        value, entry = self.word(unit, "Service", "CPUQuota")
        if value.endswith("%") and is_number(value[:-1]):
            percent = int(value[:-1])
            if 1 <= percent <= 100:
                out.add("cpu_limit", str(percent), entry)
            else:
                self.drop(entry, "cpu_limit= is 1-100 (% of one CPU)")
        elif entry is not None:
            self.drop(entry, "not a whole percentage (N%)")
        for key in ("MemoryMax", "MemoryLimit"):
            value, entry = self.word(unit, "Service", key)
            if value and value != "infinity":
                mib = memory_mib(value)
                if mib is None:
                    self.drop(entry, "not a size in bytes (K, M, G, T)")
                else:
                    out.add("mem_limit", str(mib), entry)
        value, entry = self.word(unit, "Service", "Nice")
        number = value[1:] if value[:1] in "+-" else value
        if value and not (is_number(number, 2) and -20 <= int(value) <= 19):
            self.drop(entry, "not a number from -20 to 19")
        elif value:
            nice = int(value)
            word = "peripheral" if nice > 0 else "critical" if nice < 0 else "standard"
            out.add("priority", word, entry)
            if nice not in (0, 10, -10):
                out.drops.append((entry, "nice %d approximated by priority=%s (nice %d)"
                                  % (nice, word, {"peripheral": 10, "critical": -10,
                                                  "standard": 0}[word])))
        for entry in self.every(unit, "Service", "ExecReload"):
            if " ".join(entry.value.split()) not in HUP_RELOADS:
                self.drop(entry, "systemctl reload sends SIGHUP to the main process")
        value, entry = self.word(unit, "Service", "KillSignal", "SIGTERM")
        if value not in ("SIGTERM", "TERM", "15"):
            self.drop(entry, "KillSignal=%s: services are stopped with SIGTERM" % value)
        value, entry = self.word(unit, "Service", "IgnoreSIGPIPE", "no")
        if value.lower() in ("yes", "true", "1", "on"):
            self.drop(entry, "SIGPIPE is not ignored in services here")
        for key in ("StandardOutput", "StandardError"):
            value, entry = self.word(unit, "Service", key)
            if entry is not None and value not in QUIET_OUTPUTS and \
                    not (value == "tty" and self.unit.last("Service", "StandardInput")):
                self.drop(entry, "output goes to the service's log file (RUN/log/NAME.log)")
        value, entry = self.word(unit, "Service", "PIDFile")
        if entry is not None and value and \
                (unit.last("Service", "Type") is None or
                 unit.last("Service", "Type").value != "forking"):
            self.drop(entry, "PIDFile= without Type=forking")
        value, entry = self.word(unit, "Service", "RemainAfterExit")
        if entry is not None and value.lower() in ("yes", "true", "1", "on") and \
                not any(k == "oneshot" for k, _, _ in out.lines):
            self.drop(entry, "RemainAfterExit= of a daemon")
        value, entry = self.word(unit, "Service", "NotifyAccess")
        if entry is not None and not any(k == "notify" for k, _, _ in out.lines):
            self.drop(entry, "NotifyAccess= without Type=notify")
        for each in [unit] + self.sockets + ([self.timer] if self.timer else []):
            for entry in self.every(each, "Unit", "Conflicts"):
                others = [w for w in entry.value.split() if w not in SHUTDOWN_UNITS]
                if others:
                    self.drop(entry, "conflicts are not enforced: %s" % " ".join(others))

    def pre_commands(self, user):
        """ExecStartPre= lines: the oneshot NAME-pre, which NAME depends on."""
        unit = self.unit
        entries = unit.values("Service", "ExecStartPre")
        for entry in unit.entries:
            if entry.section == "Service" and entry.key == "ExecStartPre":
                self.use(entry)
        if not entries:
            return []
        if unit.instance is not None:
            for entry in entries:
                self.drop(entry, "ExecStartPre= of a template is not run (dep= cannot name "
                          "the instance)")
            return []
        commands = []
        for entry in entries:
            parsed = self.command(entry, user)
            if parsed is None:
                if self.failed is not None:
                    self.drop(entry, self.failed[1])
                    self.failed = None
                continue
            commands.append(parsed)
        privileged_ones = [c for c in commands if "+" in c[0] or "!" in c[0]]
        if user and privileged_ones and len(privileged_ones) < len(commands):
            for flags, _words, entry in privileged_ones:
                self.drop(entry, "the %s prefix: this command runs as %s like the others"
                          % (flags.replace("-", "") or "+", user))
        if not commands:
            return []
        pre = Generated(self.name + "-pre", self.out.sources)
        pre.pre_of = self.name
        privileged = all("+" in c[0] or "!" in c[0] for c in commands)
        saved_out, saved_failed = self.out, self.failed
        self.out = pre
        exec_path, args = self.program(commands, self.made_dirs, "", True)
        self.out, failed = saved_out, self.failed
        self.failed = saved_failed
        if exec_path is None:
            self.drop(commands[0][2], failed[1] if failed else "cannot be mapped")
            return []
        pre.add("exec", exec_path, commands[0][2])
        for arg in args:
            pre.add("args", arg, commands[0][2])
        pre.add("oneshot", "1")
        if user and not privileged:
            pre.add("user", user)
        for key, value, origin in self.out.lines:
            if key in ("env", "env_file", "workdir", "dep"):
                pre.add(key, value, origin)
        self.out.add("dep", pre.name)
        if self.timer is not None or unit.last("Service", "Restart") is not None and \
                unit.last("Service", "Restart").value != "no":
            self.out.drops.append((commands[0][2], "ExecStartPre= runs once, before the "
                                   "first start, not before every restart or timer run"))
        return [pre]

    def leftovers(self, units):
        for unit in units:
            for entry in unit.entries:
                if id(entry) in self.used or (entry.section, entry.key) in QUIET or \
                        entry.section == "Install":
                    continue
                self.drop(entry, drop_reason(entry.section, entry.key))


def listen_value(kind, value, unit):
    """A ListenStream=/ListenDatagram= value as a listen= value, or (None, why)."""
    value, why = expand_specifiers(value, unit)
    if value is None:
        return None, why
    if len(value) > config.PATH_MAX:
        return None, "longer than %d characters" % config.PATH_MAX
    if INSTANCE_MARK in value:
        return None, "a template's socket address is not supported"
    if value.startswith("/"):
        return ("%s:%s" % (kind, value) if kind == "dgram" else value), None
    if value.startswith("@"):
        return None, "abstract unix sockets are not supported"
    net = "tcp" if kind == "stream" else "udp"
    if value.startswith("vsock:"):
        return None, "vsock sockets are not supported"
    if is_number(value, 5):
        return "%s:%s" % (net, value), None
    if "%" in value.rpartition(":")[0]:
        return None, "an interface name in the address is not supported"
    candidate = "%s:%s" % (net, value)
    parsed, why = config.parse_listen(candidate)
    if parsed is None:
        return None, why
    return candidate, None


def memory_mib(text):
    factors = {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1 << 20}
    number, factor = text, 1 / (1 << 20)
    if text[-1:] in factors:
        number, factor = text[:-1], factors[text[-1]]
    if not is_number(number, 15):
        return None
    return max(1, whole_seconds(int(number) * factor))


# --- which units: the walk from multi-user.target ------------------------------------

class ImportResult:
    """What importing the units of a machine gave."""

    __slots__ = ("generated", "diagnostics", "skipped")

    def __init__(self):
        self.generated = []          # [Generated], templates before their instances
        self.diagnostics = []        # [UnitDiagnostic]
        self.skipped = []            # [(unit name, why)]: not imported, on purpose


def init_own(name):
    for prefix, why in INIT_OWN:
        if name.startswith(prefix):
            return why
    return None


class Selection:
    def __init__(self, source, svc_names, result):
        self.source = source
        self.svc_names = frozenset(svc_names)
        self.result = result
        self.units = {}              # name -> Unit (services, sockets, timers, targets)
        self.aliases = {}            # alias name -> real name
        self.early = None

    def skip(self, name, why):
        if all(n != name for n, _ in self.result.skipped):
            self.result.skipped.append((name, why))

    def early_units(self):
        """Units the early-boot targets want: the services directory does them."""
        if self.early is None:
            self.early = set()
            for target in sorted(EARLY_TARGETS):
                self.early.update(self.source.wants(target))
        return self.early

    def load(self, name):
        """The Unit for ``name`` (aliases and templates resolved), or None."""
        name = self.real(name)
        if name in self.units:
            return self.units[name]
        if len(self.units) >= MAX_UNITS:
            return None
        instance = None
        found = self.source.entry(name)
        seen = 0
        while found is not None and found[0] == "alias" and seen < 8:
            self.aliases[name] = found[1]
            name = found[1]
            if name in self.units:
                return self.units[name]
            found = self.source.entry(name)
            seen += 1
        lookup = name
        if found is None and "@" in name:
            prefix, _, rest = name.partition("@")
            inst, dot, kind = rest.rpartition(".")
            if dot and inst:
                lookup = "%s@.%s" % (prefix, kind)
                found = self.source.entry(lookup)
                instance = inst
        if found is None or found[0] == "alias":
            return None
        if found[0] == "masked":
            self.skip(name, "masked (%s is a link to /dev/null)" % found[1])
            return None
        if found[0] == "error":
            self.result.diagnostics.append(_diag(found[1], 0, None, config.ERROR,
                                                 "cannot read: %s" % found[2]))
            return None
        _, path, data = found
        entries, diags = _parse_guarded(path, data)
        sources = [path]
        dropin_names = [lookup] + ([name] if lookup != name else [])
        for dropin_of in dropin_names:
            for dpath, ddata in self.source.dropins(dropin_of)[:MAX_DROPINS]:
                if ddata is None:
                    continue
                more, more_diags = _parse_guarded(dpath, ddata)
                entries += more
                diags += more_diags
                sources.append(dpath)
        self.result.diagnostics += diags
        if "@" in name and name.partition("@")[2].startswith("."):
            instance = ""            # the template itself
        unit = Unit(name, path, entries, instance, sources)
        self.units[name] = unit
        for entry in unit.values("Install", "Alias"):
            for alias in entry.value.split():
                self.aliases.setdefault(alias, name)
        return unit

    def real(self, name):
        seen = 0
        while name in self.aliases and seen < 8:
            name = self.aliases[name]
            seen += 1
        return name


def select_units(source, svc_names, start=START_TARGETS, everything=False):
    """Walk the units to import.  Returns ``(Selection, [service names in order],
    {service: [socket Units]}, {service: timer Unit})``."""
    result = ImportResult()
    sel = Selection(source, svc_names, result)
    services, sockets, timer_of = [], {}, {}
    queue = list(start) if not everything else \
        [n for n in source.names() if n.endswith((".service", ".socket", ".timer"))]
    seen = set()
    early = sel.early_units() if not everything else set()
    steps = 0
    while queue and len(seen) < MAX_UNITS and steps < 10 * MAX_UNITS:
        steps += 1                   # whatever the files say, the walk ends
        name = queue.pop(0)
        if name in seen:
            continue
        seen.add(name)
        kind = "." + name.rpartition(".")[2]
        if "%" in name:
            continue                 # BindsTo=dev-%i.device: a device, never a service
        if kind in UNSUPPORTED_KINDS:
            sel.skip(name, UNSUPPORTED_KINDS[kind])
            continue
        if kind not in (".service", ".socket", ".timer", ".target"):
            continue
        if kind == ".target" and name in EARLY_TARGETS:
            continue
        if name in early and not everything:
            sel.skip(name, "the early boot (sysinit.target) is the services directory's")
            continue
        why = init_own(name)
        if why:
            sel.skip(name, why)
            continue
        unit = sel.load(name)
        if unit is None and kind == ".target" and sel.real(name) == name:
            queue += list(STANDARD_TARGET_WANTS.get(name, ())) + source.wants(name)
            continue
        if unit is None:
            continue
        if unit.name != name:            # an alias: the real name is checked as well
            if unit.name in seen:
                continue
            seen.add(unit.name)
            asked, name = name, unit.name
            why = init_own(name) or (
                "the early boot (sysinit.target) is the services directory's"
                if name in early and not everything else None)
            if why:
                sel.skip(name, why)
                continue
            if kind == ".service" and asked.rpartition(".")[0] in sel.svc_names:
                sel.skip(name, "a .svc file of the name %s wins" % asked.rpartition(".")[0])
                continue
        if kind == ".target":
            queue += [n for n, _ in unit.names("Unit", "Wants") + unit.names("Unit", "Requires")]
            queue += list(STANDARD_TARGET_WANTS.get(name, ())) + source.wants(name)
            continue
        if kind == ".service":
            if unit.instance == "" and not everything:
                continue             # a template is loaded through its instances
            if unit.base in sel.svc_names:
                sel.skip(name, "a .svc file of the same name wins")
                continue
            if name not in services:
                services.append(name)
            for key in ("Wants", "Requires", "BindsTo", "Requisite", "Upholds"):
                queue += [n for n, _ in unit.names("Unit", key)]
            if not everything:
                queue += source.wants(name)
            continue
        target_key = "Service" if kind == ".socket" else "Unit"
        entry = unit.last(kind[1:].capitalize(), target_key)
        service = entry.value if entry else unit.base + ".service"
        if not service.endswith(".service") or "%" in service:
            result.diagnostics.append(_diag(unit.path, entry.line if entry else 0,
                                            target_key, config.WARNING, "%r is not a service "
                                            "here; not imported" % service))
            continue
        if kind == ".socket" and unit.last("Socket", "Accept") is not None and \
                unit.last("Socket", "Accept").value.lower() in ("yes", "true", "1", "on"):
            result.diagnostics.append(_diag(unit.path, unit.last("Socket", "Accept").line,
                                            "Accept", config.WARNING, "Accept=yes (a "
                                            "service per connection) is not supported; "
                                            "this socket is not imported"))
            continue
        service_unit = sel.load(service)
        service = sel.real(service)
        base = service.rpartition(".")[0]
        if base in sel.svc_names:
            sel.skip(name, "its service %s is a .svc file (which wins): give it listen= or "
                     "on_calendar= there" % base if kind != ".target" else "")
            continue
        if service_unit is None:
            result.diagnostics.append(_diag(unit.path, entry.line if entry else 0, None,
                                            config.WARNING, "its service %s is not found; "
                                            "not imported" % service))
            continue
        if kind == ".socket":
            sockets.setdefault(service_unit.name, []).append(unit)
        else:
            timer_of[service_unit.name] = unit
        queue.insert(0, service_unit.name)
        seen.discard(service_unit.name)
    return sel, services, sockets, timer_of


def import_units(source, svc_names=(), start=START_TARGETS, everything=False,
                 subreaper=SUBREAPER, path_test=None, condition_test=None):
    """Every service to import, mapped: an :class:`ImportResult`.

    ``svc_names``: the services and groups of the .svc directory.  A .svc file of a
    unit's name wins over the unit; a target ``T.target`` in ``After=`` (or implied,
    ``basic.target``, by ``DefaultDependencies=yes``) becomes ``dep=T`` when the .svc
    directory has a service or group ``T``.  ``everything``: every unit of the
    directories, not only what multi-user.target reaches (``import-units --all``);
    ``subreaper``: the schema-subreaper that runs ``Type=forking`` services;
    ``path_test(flag, path)``: checks a daemon's path conditions now (``-e``, ``-d``,
    ``-s``, ``-x``, ``-L``, ``-w`` as test(1), ``notempty``); None reports them;
    ``condition_test(key, value)``: the machine's answer to other conditions
    (``ConditionCapability=``, ``ConditionACPower=`` ...) of any unit, None when it
    does not know."""
    sel, services, sockets, timer_of = select_units(source, svc_names, start, everything)
    result = sel.result
    names = {sel.units[n].base: n for n in services}
    known = set(svc_names) | set(names)
    after = {}
    for name in list(services):
        try:
            after[sel.units[name].base] = _after(sel.units[name], sockets.get(name, ()),
                                                 sel, svc_names, known)
        except Exception as exc:      # noqa: B902 - this unit is refused, not the import
            _refuse(result, sel.units[name], exc)
            services.remove(name)
    for name in list(services):
        unit = sel.units[name]
        try:
            for other, entry in unit.names("Unit", "Before"):
                target = dep_name(sel.real(other), sel, ())
                if target in after and target != unit.base and \
                        unit.base not in [d for d, _ in after[target]]:
                    after[target].append((unit.base, entry))
        except Exception as exc:      # noqa: B902
            _refuse(result, unit, exc)
            services.remove(name)
    templates = {}
    for name in services:
        unit = sel.units[name]
        svc_name = unit.base
        template = None
        if unit.instance:
            template_name = "%s@%s" % (svc_name.partition("@")[0], unit.kind)
            template = templates.get(template_name)
            if template is None:
                template = convert_one(sel.units.get(template_name) or
                                       _template_of(unit), sockets, timer_of,
                                       after.get(svc_name, ()), result, subreaper,
                                       path_test, condition_test)
                templates[template_name] = template
                if template is None:
                    continue
            if template is None:
                continue
            instance = Generated(svc_name, template.sources)
            instance.template_of = template
            result.generated.append(instance)
            continue
        convert_one(unit, sockets, timer_of, after.get(svc_name, ()), result, subreaper,
                    path_test, condition_test)
    return result


def _after(unit, sockets, sel, svc_names, known):
    """[(service, Entry)]: what UNIT (and its sockets) is ordered after, as dep= lines."""
    deps = []

    def add(dep, origin):
        if dep != unit.base and dep not in [d for d, _ in deps] and dep in known:
            deps.append((dep, origin))

    for other, entry in unit.names("Unit", "After"):
        add(dep_name(sel.real(other), sel, svc_names), entry)
    for socket in sockets:
        for other, entry in socket.names("Unit", "After"):
            add(dep_name(sel.real(other), sel, svc_names), entry)
    default = unit.last("Unit", "DefaultDependencies")
    if default is None or default.value.lower() in ("yes", "true", "1", "on"):
        add("basic", default)
    return deps


def _refuse(result, unit, exc):
    """A unit whose import raised: an error naming it; the other units go on."""
    result.diagnostics.append(_diag(unit.path, 0, None, config.ERROR,
                                    "%s cannot be converted (%s); the unit is not imported"
                                    % (unit.name, _unexpected(exc))))


def _template_of(instance_unit):
    return Unit("%s@%s" % (instance_unit.base.partition("@")[0], instance_unit.kind),
                instance_unit.path, instance_unit.entries, "", instance_unit.sources)


def convert_one(unit, sockets, timer_of, deps, result, subreaper=SUBREAPER, path_test=None,
                condition_test=None):
    converter = Converter(unit, sockets.get(unit.name, ()), timer_of.get(unit.name), deps,
                          subreaper=subreaper, path_test=path_test,
                          condition_test=condition_test)
    try:
        made = converter.convert()
    except Exception as exc:          # noqa: B902 - a bug here costs this unit, not all
        _refuse(result, unit, exc)
        return None
    if converter.skip_reason is not None:
        result.skipped.append((unit.name, converter.skip_reason))
        return None
    if converter.failed is not None:
        entry, why = converter.failed
        result.diagnostics.append(_diag(entry.path if entry else unit.path,
                                        entry.line if entry else 0,
                                        entry.key if entry else None, config.ERROR,
                                        "%s; the unit is not imported" % why))
        return None
    result.generated += made
    for generated in made:
        result.diagnostics += capped(generated.diagnostics(), unit.path)
    return made[0]


def capped(diags, path):
    """At most config.MAX_DIAGNOSTICS_PER_FILE of one unit's warnings (then one saying how
    many more): a hostile unit cannot flood status; its .svc file still lists them all."""
    limit = config.MAX_DIAGNOSTICS_PER_FILE
    if len(diags) <= limit:
        return diags
    return diags[:limit] + [_diag(path, 0, None, config.WARNING, "%d more dropped lines not "
                                  "shown (schema-init import-units lists them)"
                                  % (len(diags) - limit))]


def dep_name(unit_name, sel, svc_names):
    """The service (or .svc group) an ordering against ``unit_name`` means, or None."""
    base, _, kind = unit_name.rpartition(".")
    if kind == "service":
        return base
    if kind == "target":
        return base
    if kind == "socket":
        unit = sel.units.get(unit_name)
        entry = unit.last("Socket", "Service") if unit is not None else None
        return (entry.value if entry else unit_name[:-7] + ".service").rpartition(".")[0]
    return None


class DictSource:
    """Unit directories as a dict (tests; ``import-units`` reads real ones through
    ``loader.UnitDirs``): ``{name: bytes | ("alias", name) | ("masked", path)}``,
    ``{target: [names]}`` for .wants links, ``{name: [(path, bytes)]}`` drop-ins."""

    def __init__(self, files, wants=None, dropins=None, directory="/lib/systemd/system"):
        self.files = files
        self.wanted = wants or {}
        self.dropped = dropins or {}
        self.directory = directory

    def entry(self, name):
        value = self.files.get(name)
        if value is None:
            return None
        if isinstance(value, tuple):
            return value
        return ("file", "%s/%s" % (self.directory, name), value)

    def wants(self, name):
        return list(self.wanted.get(name, ()))

    def dropins(self, name):
        return list(self.dropped.get(name, ()))

    def names(self):
        return sorted(n for n, v in self.files.items() if not isinstance(v, tuple))


def services_from(result):
    """The specs an :class:`ImportResult` makes, parsed by ``config`` from the .svc
    text; their diagnostics name the unit file and line each .svc line came from.
    Returns ``(specs, diagnostics)``; templates are checked, not loaded."""
    specs, diags = [], list(result.diagnostics)
    for generated in result.generated:
        source = generated.template_of or generated
        path = source.sources[0]
        try:
            text, origins = generated.render()
            spec, found = config.parse_service(path, text.encode("utf-8", "surrogateescape"),
                                               file_name=generated.file_name)
        except Exception as exc:      # noqa: B902 - one service's trouble is its own
            diags.append(_diag(path, 0, None, config.ERROR, "%s cannot be read back (%s); "
                               "not loaded" % (generated.file_name, _unexpected(exc))))
            continue
        for diag in found:
            where = origins.get(diag.line, (path, 0))
            diags.append(_diag(where[0], where[1], diag.key, diag.severity,
                               "(as %s) %s" % (generated.file_name, diag.message)))
        if spec is not None:
            # later diagnostics (graph: dep=) name the unit line, not the .svc text's
            lines = {key: origins.get(number, (path, 0))[1]
                     for key, number in spec.lines.items()}
            specs.append(spec.replace(lines=lines))
    return specs, diags
