"""Services from systemd unit files: which units of a machine become services, and how
each maps onto the manager's .svc keys.

Rules of this file:

* Pure: unit files come in through a *source* (``entry``, ``wants``, ``dropins``,
  ``names``: see :class:`DictSource`, and ``loader.UnitDirs`` for the real one), the
  machine's facts for ``%H %l %m %b %v`` through ``facts`` (:class:`MachineFacts` reads
  them, once, when a unit first asks); what goes out is .svc text (:class:`Generated`)
  and diagnostics.  The .svc text is parsed by ``config`` like any file, so the keys
  have one definition.
* The manager's keys, never a shell: a command is ``exec=`` + ``args=`` or a
  ``core.cmdline`` line (``condition=``, ``exec_pre=``, ... ``exec_stop_post=``) with
  systemd's prefixes kept; limits, groups, directories and sandboxing are the
  execution-context keys.  The one shell left runs a command with a terminal on its
  standard input (``StandardInput=tty``), which no key gives.
* Every line of a unit is accounted for: mapped, meaningless here (``Description=``,
  ``[Install]``, ordering against targets), or dropped with a warning
  ``FILE:LINE: warning: KEY: why``, which the generated file repeats as a comment.
  Sandboxing that is not applied is dropped the same way and counted apart
  (``ImportResult.sandbox``): such a service runs less confined than under systemd.
* What is written is what ``config`` reads back: every line goes through
  :meth:`Generated.add`, which checks it as ``config`` will read it (an inline ``#``,
  blanks at the ends, a control character, a list too long): a value that would be read
  otherwise is a dropped line, never a surprise.
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

Which units: from ``default.target`` (its link, else ``graphical.target`` or
``multi-user.target``) and ``sysinit.target``, everything they want or require (their
``Wants=``/``Requires=`` and ``.wants/``/``.requires/`` links), through every target they
pull in, and what those units want in turn.  Not imported, each reported with its
reason (``ImportResult.skipped``): what the services directory does itself
(``SERVICES_DIRECTORY_UNITS``), systemd's own machinery (``INIT_OWN``), masked units,
unit kinds that do not exist here, units not found, and any unit whose service a .svc
file of the same name already provides (it always wins).  A dependency that is gone
(missing, masked, its condition false, refused) is never waited for in silence: the
dependent is told at its line (``Wants=``: not waited for; ``Requires=``: the dependent
is not imported either).
"""

from schema_init.core import cmdline, config, digits, timers

READ_LIMIT = 256 * 1024
MAX_UNITS = 2000
MAX_DROPINS = 64
SUBREAPER = "/usr/sbin/schema-subreaper"   # Accept=yes: its --accept mode serves each connection
SHELL = "/bin/sh"                          # only to put a terminal on a command's stdin
TEST = "/usr/bin/test"                     # path conditions checked at each start
MOUNTPOINT = "/usr/bin/mountpoint"         # ConditionPathIsMountPoint=
ENV = "/usr/bin/env"                       # a command named without its directory
TRUE = "/bin/true"                         # a oneshot with nothing to start (only ExecStop=)
# Where systemd looks for a command named without its directory (systemd.service(5)).
SEARCH_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
BOOT_TARGETS = ("default.target", "sysinit.target")
# Targets whose every unit would be left to the services directory: none now, as the
# walk follows sysinit.target too and SERVICES_DIRECTORY_UNITS names the units it does.
EARLY_TARGETS = frozenset()
DEFAULT_TARGETS = ("graphical.target", "multi-user.target")  # without default.target
# What the standard targets pull in (systemd's own target files say so; a root without
# the systemd package has only the .wants links, so this is assumed too).
STANDARD_TARGET_WANTS = {
    "graphical.target": ("multi-user.target",),
    "multi-user.target": ("basic.target", "getty.target"),
    "basic.target": ("sysinit.target", "sockets.target", "timers.target", "paths.target"),
}
# Targets of the shutdown, the rescue modes, the initrd and sleep: never followed.
NOT_FOLLOWED_TARGETS = frozenset((
    "shutdown.target", "reboot.target", "poweroff.target", "halt.target", "kexec.target",
    "exit.target", "final.target", "umount.target", "emergency.target", "rescue.target",
    "initrd.target", "initrd-fs.target", "initrd-root-fs.target", "initrd-usr-fs.target",
    "initrd-root-device.target", "initrd-switch-root.target", "sleep.target",
    "suspend.target", "hibernate.target", "hybrid-sleep.target",
    "suspend-then-hibernate.target", "ctrl-alt-del.target", "system-update.target",
    "factory-reset.target"))
# Units the services directory does itself (services/debian: its early boot), by name
# (a trailing * matches any end); what it does instead is the reason.
SERVICES_DIRECTORY_UNITS = (
    ("systemd-udev*", "udev is the services directory's (udev, udev-trigger)"),
    ("kmod-static-nodes", "udev is the services directory's (udev, udev-trigger)"),
    ("systemd-tmpfiles-setup*", "tmpfiles.d at boot is the services directory's (tmpfiles)"),
    ("systemd-sysctl", "sysctl.d is the services directory's (sysctl)"),
    ("systemd-modules-load", "modules-load.d is the services directory's (modules)"),
    ("systemd-random-seed", "the random seed is the services directory's (random-seed)"),
    ("systemd-remount-fs", "/etc/fstab is the services directory's (mount-all, check-root)"),
    ("systemd-fsck*", "/etc/fstab is the services directory's (mount-all, check-root)"),
    ("systemd-machine-id-commit", "the machine id is the services directory's (machine-id)"),
    ("systemd-update-utmp*", "utmp and wtmp are the services directory's (boot-record: "
     "schema-init --record-boot)"),
)
# Units that are systemd's own machinery.
INIT_OWN = (
    ("systemd-journald*", "the journal is systemd's (schema-init keeps RUN/log/NAME.log)"),
    ("systemd-journal-flush", "the journal is systemd's (schema-init keeps RUN/log/NAME.log)"),
    ("systemd-journal-catalog-update", "the journal is systemd's"),
    ("systemd-logind", "needs systemd as PID 1 (sessions are its cgroup scopes)"),
    ("systemd-ask-password*", "systemd's password agents"),
    ("systemd-initctl*", "schema-init answers telinit itself"),
    ("systemd-networkd-wait-online*", "waits on systemd-networkd's state"),
    ("systemd-firstboot", "systemd's first-boot questions"),
    ("systemd-pcrphase*", "TPM measurements of systemd's own boot phases"),
    ("getty-static", "systemd's fallback for gettys without logind (uses systemctl start)"),
)
UNSUPPORTED_KINDS = {
    ".path": "path units (start on a file change) are not supported",
    ".mount": "mount units are not run here (the services directory mounts /etc/fstab's)",
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
INSTANCE_MARK = "\ue000"     # %i/%I in a template: becomes ${INSTANCE} in a command
TRUE_WORDS = ("yes", "true", "1", "on")
FALSE_WORDS = ("no", "false", "0", "off")


class UnitDiagnostic(config.Diagnostic):
    __slots__ = ()
    from_unit = True


def _diag(path, line, key, severity, message):
    return UnitDiagnostic(path, line, key, severity, message)


def is_number(text, limit=MAX_DIGITS):
    """1 to LIMIT ASCII digits: the only text a unit's number is read from."""
    return digits.ascii_digits(text, limit)


def is_true(text):
    return text.lower() in TRUE_WORDS


def _unexpected(exc):
    """An exception's one-line description, for the diagnostic that replaces it."""
    return "%s: %s" % (type(exc).__name__, _one_line(str(exc), 120))


def matches(patterns, name):
    """The reason of the first (pattern, reason) naming NAME (its suffix left out), or
    None; a pattern ending in * matches any end."""
    base = name.rpartition(".")[0] or name
    for pattern, why in patterns:
        if base == pattern or pattern.endswith("*") and base.startswith(pattern[:-1]):
            return why
    return None


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


# --- command lines, specifiers, time spans, sizes, calendars (pure helpers) ----------

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
                digits_ = text[i:i + size]
                if len(digits_) < size or not _is_hex(digits_):
                    return None, "bad \\%s escape (\\%s and %d hex digits)" % (code, code,
                                                                             size)
                point = int(digits_, 16)
                if point > 0x10FFFF or 0xD800 <= point <= 0xDFFF:
                    return None, "\\%s%s is not a unicode character" % (code, digits_)
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


def unescape_name(text):
    """A part of a unit name with systemd-escape's escaping undone: ``-`` is ``/``,
    ``\\xHH`` the byte HH (what ``%I``, ``%P``, ``%J`` and ``%f`` give)."""
    out = bytearray()
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "-":
            out += b"/"
            i += 1
        elif ch == "\\" and text[i + 1:i + 2] == "x" and len(text[i + 2:i + 4]) == 2 and \
                _is_hex(text[i + 2:i + 4]):
            out.append(int(text[i + 2:i + 4], 16))
            i += 4
        else:
            out += ch.encode("utf-8", "surrogateescape")
            i += 1
    return out.decode("utf-8", "surrogateescape")


class MachineFacts:
    """What ``%H`` (host name, whose first label ``%l`` is), ``%m`` (machine id), ``%b``
    (boot id) and ``%v`` (kernel release) say on this machine, read when a unit first
    asks: the importer runs at each boot (and ``import-units`` where the services will
    run), so resolving them then is resolving them at run time."""

    FILES = {"H": "/proc/sys/kernel/hostname", "m": "/etc/machine-id",
             "b": "/proc/sys/kernel/random/boot_id"}

    def __init__(self):
        self.known = {}

    def get(self, code):
        if code not in self.known:
            self.known[code] = self.read(code)
        return self.known[code]

    def read(self, code):
        import os
        if code == "v":
            return os.uname().release
        path = self.FILES.get(code)
        if path is None:
            return None
        try:
            with open(path, "rb") as f:
                text = f.read(256).decode("ascii", "replace").strip()
        except OSError:
            return None
        if code == "b":
            text = text.replace("-", "")
        return text or None


NO_FACTS = {}
FACT_NAMES = {"H": "the host name", "l": "the host name", "m": "the machine id",
              "b": "the boot id", "v": "the kernel release"}


def specifier_table(unit):
    """The specifiers of UNIT that do not depend on the machine (systemd.unit(5)'s
    meanings, for the system manager: ``%u`` is root, ``%h`` /root, whatever User=)."""
    template = unit.instance == ""
    prefix, at, instance = unit.base.partition("@")
    if template:
        instance = INSTANCE_MARK
    suffix = unit.kind
    name = "%s@%s%s" % (prefix, instance, suffix) if at else unit.name
    unescaped = INSTANCE_MARK if template else unescape_name(instance)
    last = prefix.rpartition("-")[2]
    path = unescaped if at else unescape_name(prefix)
    return {"%": "%", "i": instance, "I": unescaped, "n": name, "N": name[:-len(suffix)],
            "p": prefix, "P": unescape_name(prefix), "j": last, "J": unescape_name(last),
            "f": path if path.startswith("/") else "/" + path,
            "t": "/run", "S": "/var/lib", "C": "/var/cache", "L": "/var/log", "E": "/etc",
            "T": "/tmp", "V": "/var/tmp", "u": "root", "U": "0", "g": "root", "G": "0",
            "h": "/root", "s": "/bin/sh"}


def expand_specifiers(text, unit, facts=NO_FACTS):
    """``%i``, ``%n``, ``%t``, ``%H`` ... resolved as systemd does for this unit; a
    template's instance becomes ``INSTANCE_MARK``.  Returns ``(text, None)`` or
    ``(None, why)``."""
    if "%" not in text:
        return text, None
    table = specifier_table(unit)
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
        if value is None and code in FACT_NAMES:
            value = facts.get("H" if code == "l" else code)
            if code == "l" and value:
                value = value.partition(".")[0]      # the host name's first label
            if value is None:
                return None, "specifier %%%s: %s cannot be read" % (code, FACT_NAMES[code])
        if value is None:
            return None, "specifier %%%s is not known here" % code if code else \
                "a lone % ends the value"
        out.append(value)
        i += 2
    return "".join(out), None


def parse_command(value, unit, facts=NO_FACTS):
    """One ``ExecStart=``-like value as ``(prefixes, words, None)`` or ``(None, None,
    why)``; words are lists of parts ``("text", s)``, ``("var", NAME)`` (``${NAME}``: one
    argument) and ``("split", NAME)`` (``$NAME`` as a word: split at blanks)."""
    flags = ""
    while value[:1] in ("-", "@", "+", "!", ":", "|"):
        if value[0] not in flags:
            flags += value[0]            # !! (ambient capabilities' fallback) is !
        value = value[1:]
    if "|" in flags:
        return None, None, "the | prefix (a login shell) is not supported"
    if "+" in flags and "!" in flags:
        return None, None, "the + and ! prefixes together"
    text, why = expand_specifiers(value, unit, facts)
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


def is_literal(word):
    return all(kind == "text" for kind, _ in word)


def literal(word):
    return "".join(value for _, value in word)


def svc_word(parts, expand):
    """One word as the manager reads it: with ``expand`` (``expand_args=1``, a command
    line without ``:``) ``$$`` is a ``$``, ``${NAME}`` one argument, ``$NAME`` alone
    split at blanks, as in systemd; without, the text as it is."""
    out = []
    for kind, value in parts:
        if kind == "text":
            out.append(value.replace("$", "$$") if expand else value)
        elif kind == "var":
            out.append("${%s}" % value)
        else:
            out.append("$%s" % value)
    return "".join(out)


_SPAN_UNITS = (("usec", 1e-6), ("us", 1e-6), ("µs", 1e-6), ("msec", 1e-3), ("ms", 1e-3),
               ("seconds", 1), ("second", 1), ("sec", 1), ("s", 1),
               ("minutes", 60), ("minute", 60), ("min", 60), ("m", 60),
               ("hours", 3600), ("hour", 3600), ("hr", 3600), ("h", 3600),
               ("days", 86400), ("day", 86400), ("d", 86400),
               ("weeks", 604800), ("week", 604800), ("w", 604800),
               ("months", 2629800), ("month", 2629800), ("M", 2629800),
               ("years", 31557600), ("year", 31557600), ("y", 31557600))


def parse_timespan(text, default_unit=1):
    """A systemd time span ("90", "1min 30s", "1.5h", "infinity") in seconds (a float,
    None for infinity); a bare number counts ``default_unit`` seconds.  Returns
    ``(seconds, None)`` or ``(False, why)``."""
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
        unit = default_unit
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


_SIZE_FACTORS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50,
                 "E": 1 << 60}


def parse_size(text):
    """A size in bytes as systemd writes it (``64K``, ``1G``, ``1.5M``: powers of 1024),
    or None."""
    number, factor = text, 1
    if text[-1:] in _SIZE_FACTORS:
        number, factor = text[:-1], _SIZE_FACTORS[text[-1]]
    whole, dot, fraction = number.partition(".")
    if not is_number(whole) or dot and not is_number(fraction):
        return None
    size = int(whole) * factor
    if fraction:
        size += int(fraction) * factor // 10 ** len(fraction)
    return size


def memory_mib(text):
    size = parse_size(text)
    return None if size is None else max(1, -(-size // (1 << 20)))


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
        low, dots, high = parts[0].partition("..")
        if dots and is_number(low, 2) and is_number(high, 2) and int(low) <= int(high):
            notes.append("only the first of the hours %s is kept" % parts[0])   # anacron
            parts[0] = low
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
    ("Service", "GuessMainPID"), ("Service", "BusName"),
    ("Socket", "Accept"), ("Socket", "Service"), ("Socket", "RemoveOnStop"),
    ("Timer", "AccuracySec"), ("Timer", "Unit"), ("Timer", "RemainAfterElapse"),
))
SANDBOX = "sandboxing: "           # the reasons of sandboxing not applied start so
SOCKET_OPTION = "this socket option is not set"
_DROP_PREFIXES = (
    (("SystemCall", "MemoryDenyWriteExecute", "LockPersonality", "ProtectClock",
      "ProtectHostname", "ProtectKernelLogs", "ProtectProc", "ProcSubset", "PrivateUsers",
      "PrivateMounts", "PrivateIPC", "RestrictNamespaces", "RestrictRealtime",
      "RestrictSUIDSGID", "RestrictFileSystems", "ExecPaths", "NoExecPaths",
      "DevicePolicy", "DeviceAllow", "IPAddress", "IPIngress", "IPEgress", "SocketBind",
      "KeyringMode", "SecureBits", "BindPaths", "BindReadOnlyPaths",
      "TemporaryFileSystem", "RootDirectory", "RootImage", "RootHash", "RootVerity",
      "MountFlags", "MountAPIVFS", "MountImages", "ExtensionImages", "Personality",
      "DynamicUser", "SELinuxContext", "AppArmorProfile", "SmackProcessLabel",
      "RemoveIPC", "NetworkNamespacePath", "IPCNamespacePath", "PrivatePIDs",
      "ProtectSystem", "ProtectHome", "Private", "Protect", "Restrict"),
     SANDBOX + "not applied here (no key for it)"),
    (("LoadCredential", "SetCredential", "ImportCredential"),
     "credentials (LoadCredential=) are not passed here"),
    (("Condition", "Assert"), "this condition is not checked here"),
    (("IOScheduling", "CPUScheduling", "CPUAffinity", "NUMA", "IOWeight", "IODevice",
      "CPUWeight", "StartupCPU", "StartupIO", "TasksMax", "Slice", "Delegate",
      "MemoryLow", "MemoryHigh", "MemorySwap", "MemoryMin", "ManagedOOM", "OOMPolicy",
      "IOAccounting", "MemoryAccounting", "CPUAccounting", "TasksAccounting"),
     "this scheduling or cgroup setting is not supported (nice=, cpu_limit=, "
     "mem_limit= are)"),
    (("Syslog", "LogLevelMax", "LogExtraFields", "LogRateLimit", "LogNamespace",
      "LogFilterPatterns"), "output goes to the service's log file (RUN/log/NAME.log)"),
    (("OnFailure", "OnSuccess", "StartLimit", "JobTimeout", "JobRunningTimeout",
      "FailureAction", "SuccessAction"), "no such unit action here"),
    (("RequiresMountsFor",), "mounts are the services directory's (mount-all): order "
     "after it with dep="),
)
DIRECTORY_KEYS = (("RuntimeDirectory", "runtime_dir"), ("StateDirectory", "state_dir"),
                  ("CacheDirectory", "cache_dir"), ("LogsDirectory", "logs_dir"),
                  ("ConfigurationDirectory", "config_dir"))
# Path conditions: test(1)'s flag (loader.path_test checks them when the units are read).
PATH_CONDITIONS = {
    "ConditionPathExists": "-e", "ConditionPathIsDirectory": "-d",
    "ConditionFileNotEmpty": "-s", "ConditionFileIsExecutable": "-x",
    "ConditionPathIsSymbolicLink": "-L", "ConditionPathIsReadWrite": "-w",
    "ConditionDirectoryNotEmpty": "notempty", "ConditionPathIsMountPoint": "mountpoint",
}
RESTART_WORDS = ("no", "always", "on-success", "on-failure", "on-abnormal", "on-abort",
                 "on-watchdog")
HUP_RELOADS = ("/bin/kill -HUP $MAINPID", "/usr/bin/kill -HUP $MAINPID", "kill -HUP $MAINPID",
               "/bin/kill -s HUP $MAINPID", "/usr/bin/kill -s HUP $MAINPID",
               "/bin/kill -1 $MAINPID", "/usr/bin/kill -1 $MAINPID")
QUIET_OUTPUTS = ("journal", "syslog", "kmsg", "inherit", "journal+console",
                 "syslog+console", "kmsg+console")
# The command lines around ExecStart=, in the order the lifecycle runs them.
COMMAND_KEYS = (("ExecCondition", "condition"), ("ExecStartPre", "exec_pre"),
                ("ExecStartPost", "exec_post"), ("ExecReload", "exec_reload"),
                ("ExecStop", "exec_stop"), ("ExecStopPost", "exec_stop_post"))
# Limit*= and setrlimit's resource (config.RLIMITS), with how a value is written:
# a size (K, M, G ... of 1024), a time (CPU: seconds; RTTIME: microseconds) or a count.
LIMITS = {"LimitCPU": ("cpu", "time"), "LimitFSIZE": ("fsize", "size"),
          "LimitDATA": ("data", "size"), "LimitSTACK": ("stack", "size"),
          "LimitCORE": ("core", "size"), "LimitRSS": ("rss", "size"),
          "LimitNOFILE": ("nofile", "count"), "LimitAS": ("as", "size"),
          "LimitNPROC": ("nproc", "count"), "LimitMEMLOCK": ("memlock", "size"),
          "LimitLOCKS": ("locks", "count"), "LimitSIGPENDING": ("sigpending", "count"),
          "LimitMSGQUEUE": ("msgqueue", "size"), "LimitNICE": ("nice", "nice"),
          "LimitRTPRIO": ("rtprio", "count"), "LimitRTTIME": ("rttime", "usec")}
RLIMIT_TOP = (1 << 63) - 1
SANDBOX_BOOLS = (("NoNewPrivileges", "no_new_privs"), ("PrivateTmp", "private_tmp"),
                 ("PrivateDevices", "private_devices"),
                 ("PrivateNetwork", "private_network"),
                 ("ProtectKernelTunables", "protect_kernel_tunables"),
                 ("ProtectKernelModules", "protect_kernel_modules"),
                 ("ProtectControlGroups", "protect_control_groups"))
SANDBOX_PATHS = (("ReadWritePaths", "read_write_paths"),
                 ("ReadWriteDirectories", "read_write_paths"),
                 ("ReadOnlyPaths", "read_only_paths"),
                 ("ReadOnlyDirectories", "read_only_paths"),
                 ("InaccessiblePaths", "inaccessible_paths"),
                 ("InaccessibleDirectories", "inaccessible_paths"))
# Every capability Linux has (linux/capability.h): an empty CapabilityBoundingSet=
# (none kept) is written as all of them dropped.
CAPABILITIES = (
    "cap_chown", "cap_dac_override", "cap_dac_read_search", "cap_fowner", "cap_fsetid",
    "cap_kill", "cap_setgid", "cap_setuid", "cap_setpcap", "cap_linux_immutable",
    "cap_net_bind_service", "cap_net_broadcast", "cap_net_admin", "cap_net_raw",
    "cap_ipc_lock", "cap_ipc_owner", "cap_sys_module", "cap_sys_rawio", "cap_sys_chroot",
    "cap_sys_ptrace", "cap_sys_pacct", "cap_sys_admin", "cap_sys_boot", "cap_sys_nice",
    "cap_sys_resource", "cap_sys_time", "cap_sys_tty_config", "cap_mknod", "cap_lease",
    "cap_audit_write", "cap_audit_control", "cap_setfcap", "cap_mac_override",
    "cap_mac_admin", "cap_syslog", "cap_wake_alarm", "cap_block_suspend", "cap_audit_read",
    "cap_perfmon", "cap_bpf", "cap_checkpoint_restore")
# Exit status names SuccessExitStatus= and its kin take besides numbers and signals:
# the C library's and LSB's (init scripts), and BSD's sysexits.h.
EXIT_STATUS_NAMES = {
    "EXIT_SUCCESS": 0, "EXIT_FAILURE": 1, "INVALIDARGUMENT": 2, "NOTIMPLEMENTED": 3,
    "NOPERMISSION": 4, "NOTINSTALLED": 5, "NOTCONFIGURED": 6, "NOTRUNNING": 7,
    "USAGE": 64, "DATAERR": 65, "NOINPUT": 66, "NOUSER": 67, "NOHOST": 68,
    "UNAVAILABLE": 69, "SOFTWARE": 70, "OSERR": 71, "OSFILE": 72, "CANTCREAT": 73,
    "IOERR": 74, "TEMPFAIL": 75, "PROTOCOL": 76, "NOPERM": 77, "CONFIG": 78}
# The ends a - prefixed ExecStart= turns into successes: every exit code and signal.
EVERY_END = " ".join([str(n) for n in range(1, 256)] +
                     ["SIG" + name for name in sorted(config.SIGNALS,
                                                      key=config.SIGNALS.get)])
# Keys whose value config keeps verbatim (no inline comment); all others lose " #...".
VERBATIM_KINDS = ("args", "command")


def drop_reason(section, key):
    if section == "Socket":
        if key.startswith("Listen"):
            return "this kind of socket is not supported (ListenStream= and "\
                "ListenDatagram= are)"
        if key.startswith("Exec"):
            return "a socket's own commands are not run"
        return SOCKET_OPTION
    for prefixes, reason in _DROP_PREFIXES:
        if any(key.startswith(p) for p in prefixes):
            return reason
    if key.startswith("Exec"):
        return "no such command line here"
    return "no schema-init equivalent"


def svc_problem(key, value):
    """Why ``key=value`` would not be read back by ``config`` as written (None: it
    would): an inline comment, blanks at its ends, a control character, a bad value."""
    rule = config.SERVICE_KEYS[key]
    if value != value.strip(" \t"):
        return "blanks at the ends of %r would be lost in a .svc line" % _one_line(value, 60)
    if rule.kind not in VERBATIM_KINDS and config._strip_comment(value) != value:
        return "a blank then # in %r would be read as a comment in a .svc line" % \
            _one_line(value, 60)
    _value, problem = config._convert(key, rule, value)
    return problem


class Generated:
    """One .svc file made from units."""

    __slots__ = ("name", "lines", "drops", "sources", "template_of", "counts")

    def __init__(self, name, sources):
        self.name = name                  # the service: cron, getty@, getty@tty1
        self.lines = []                   # [(key, value, Entry or None)]
        self.drops = []                   # [(Entry, why)]
        self.sources = list(sources)
        # an instance written as a link to its template's file (import-units): never
        # now, as each instance has its own text (its specifiers resolved)
        self.template_of = None
        self.counts = {}                  # key -> lines of it

    @property
    def file_name(self):
        return self.name + ".svc"

    @property
    def sandbox(self):
        """The sandboxing lines not applied (this service runs less confined)."""
        return [entry for entry, why in self.drops if why.startswith(SANDBOX)]

    def add(self, key, value, origin=None):
        """Add ``key=value``; returns why it cannot be (``svc_problem``, or too many
        lines of the key), None when added."""
        problem = svc_problem(key, value)
        if problem is None:
            count = self.counts.get(key, 0)
            if count >= (config.LISTEN_MAX if key == "listen" else config.LIST_MAX) and \
                    (key in config.REPEATED_KEYS or key in ("args", "dep", "after", "listen")):
                problem = "more than %d %s= lines" % (count, key)
            else:
                self.counts[key] = count + 1
                self.lines.append((key, value, origin))
        return problem

    def has(self, key):
        return key in self.counts

    def remove(self, key, value):
        """Take out the ``key=value`` lines (a dep= on a unit that is gone)."""
        kept = [line for line in self.lines if line[:2] != (key, value)]
        if len(kept) != len(self.lines):
            self.counts[key] -= len(self.lines) - len(kept)
            if not self.counts[key]:
                del self.counts[key]
            self.lines = kept

    def render(self):
        """``(text, {svc line number: (unit path, unit line)})``."""
        out = ["# Imported by schema-init import-units from the systemd unit%s %s" % (
            "s" if len(self.sources) > 1 else "", ", ".join(self.sources))]
        drops = sorted(self.drops, key=lambda d: (d[0].path, d[0].line))
        if drops:
            sandbox = len(self.sandbox)
            out.append("# Not carried over%s:" % (
                " (%d sandboxing line%s: it runs less confined than under systemd)"
                % (sandbox, "" if sandbox == 1 else "s") if sandbox else ""))
            out += ["#   %s:%d: %s (%s)" % (e.path, e.line, _one_line(e.text()), why)
                    for e, why in drops]
        origins = {}
        for key, value, origin in self.lines:
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
    """Maps one service unit, the socket units feeding it and its timer unit onto one
    .svc file (``convert``)."""

    def __init__(self, unit, sockets=(), timer=None, deps=(), svc_name=None,
                 subreaper=SUBREAPER, path_test=None, condition_test=None, facts=NO_FACTS,
                 on_demand=False):
        self.subreaper = subreaper
        self.path_test = path_test       # (flag, path) -> bool: daemons' conditions, or None
        self.condition_test = condition_test   # (key, value) -> True, False, None (unknown)
        self.facts = facts               # %H %l %m %b %v: MachineFacts, or a dict in tests
        self.on_demand = on_demand       # reached only through its sockets: started by them
        self.skip_reason = None
        self.unit = unit
        self.sockets = list(sockets)
        self.timer = timer
        self.deps = deps                 # [(name, Entry or None, "dep" or "after")]
        self.name = svc_name or unit.base
        self.out = Generated(self.name, [path for u in [unit] + self.sockets + [timer]
                                         if u is not None for path in u.sources])
        self.used = set()                # id() of entries accounted for
        self.failed = None               # (Entry or None, why): the unit cannot be a service
        self.user = ""                   # User=, unless root (or every command's + or !)
        self.user_entry = None
        self.checks = []                 # [(key, cmdline text, Entry)]: conditions, asserts
        self.main_ignores_failure = None   # ExecStart=-...: its Entry
        self.permissions_start_only = False  # PermissionsStartOnly=yes: + on the others
        self.on_tty = False              # StandardInput=tty: run through the shell
        self.term_value = None           # TERM= as systemd gives a terminal's service
        self.accept = None               # Accept=yes: its socket Unit (accept_service)

    # helpers
    def use(self, entry):
        if entry is not None:
            self.used.add(id(entry))
        return entry

    def drop(self, entry, why):
        if entry is None:
            entry = Entry(self.unit.path, 0, "", "", "")
        self.used.add(id(entry))
        self.out.drops.append((entry, why))

    def note(self, entry, why):
        """A line mapped only in part: said, as a dropped line is."""
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

    def emit(self, key, value, entry=None):
        """One .svc line; a line config would not read as written is dropped (for
        exec= and args=, the unit cannot be a service)."""
        problem = self.out.add(key, value, entry)
        if problem is None:
            return True
        if key in ("exec", "args"):
            if self.failed is None:
                self.failed = (entry, problem)
        else:
            self.drop(entry, problem)
        return False

    def expand(self, entry, text, unit=None):
        """TEXT with its specifiers resolved, or None (the line dropped, said why).  A
        template's instance cannot be resolved in a value that is not a command."""
        value, why = expand_specifiers(text, unit or self.unit, self.facts)
        if value is None:
            self.drop(entry, why)
            return None
        if INSTANCE_MARK in value:
            self.drop(entry, "%i of a template is resolved in each instance only")
            return None
        return value

    def convert(self):
        """The service's Generated file in a list; [] with ``failed`` (not a service:
        an error) or ``skip_reason`` (a false condition) set."""
        unit = self.unit
        kind, type_entry = self.word(unit, "Service", "Type", "simple")
        kind = kind.lower()
        if kind not in ("simple", "exec", "notify", "oneshot", "forking", "idle", "dbus"):
            self.drop(type_entry, "Type=%s is not supported; run as simple" % kind)
            kind = "simple"
        if kind == "dbus":
            self.note(type_entry, "Type=dbus: ready as a simple daemon is (stable_secs), "
                      "not when it takes its bus name")
        remain_entry = self.get(unit, "Service", "RemainAfterExit")
        remain = remain_entry is not None and is_true(remain_entry.value)
        pid_file_entry = self.get(unit, "Service", "PIDFile")
        is_timer = self.timer is not None
        forking = kind == "forking" and not (remain and pid_file_entry is None)
        oneshot = kind == "oneshot" or kind == "forking" and not forking
        starts = self.every(unit, "Service", "ExecStart")
        has_stop = bool(unit.values("Service", "ExecStop"))
        if not starts and not (oneshot and remain and has_stop):
            self.failed = (None, "no ExecStart=")
            return []
        if len(starts) > 1 and not oneshot:
            for extra in starts[1:]:
                self.drop(extra, "only a oneshot runs several ExecStart=; ignored")
            starts = starts[:1]
        self.conditions(oneshot or is_timer)
        if self.skip_reason is not None:
            return []
        restart, restart_entry = self.word(unit, "Service", "Restart", "no")
        commands = []
        for entry in starts:
            flags, words, why = parse_command(entry.value, unit, self.facts)
            if flags is None:
                self.drop(entry, why)
            else:
                commands.append((flags, words, entry))
        if starts and not commands:
            self.failed = (starts[0], "no ExecStart= could be mapped")
            return []
        self.user = self.identity(commands)
        main = 0                         # a oneshot's commands before it: exec_pre=
        if self.user:                    # the first one run as the user is exec=
            main = next((n for n, (flags, _, _) in enumerate(commands)
                         if "+" not in flags and "!" not in flags), 0)
        if commands:
            flags, words, entry = commands[main]
            if self.user and ("+" in flags or "!" in flags):
                self.note(entry, "the %s prefix of ExecStart=: it runs as %s like the "
                          "command lines without it" % ("+" if "+" in flags else "!",
                                                        self.user))
            self.main_command(flags, words, entry, self.tty())
        else:
            self.emit("exec", TRUE, remain_entry)
        if self.failed is not None:
            return []
        self.kinds(kind, oneshot, forking, remain, remain_entry, pid_file_entry, type_entry)
        self.restart(restart, restart_entry)
        self.groups()
        self.environment()
        self.workdir()
        self.command_lines(commands[:main], commands[main + 1:])
        self.bound_lines()
        self.context()
        if self.sockets:
            self.socket_lines(self.sockets)
        if self.timer is not None:
            self.timer_lines(self.timer)
        for name, origin, key in self.deps:
            self.emit(key, name, origin)
        self.service_settings()
        self.leftovers([unit] + self.sockets + ([self.timer] if self.timer else []))
        return [self.out]

    # ExecStart= and the command lines
    def identity(self, commands):
        """user=, unless every command asks for root (+ or !): then none is given."""
        user, user_entry = self.word(self.unit, "Service", "User")
        if user:
            user = self.expand(user_entry, user) or ""
        if user in ("", "root", "0"):
            return ""
        lines = [flags for flags, _, _ in commands] + [
            parse_command(e.value, self.unit, self.facts)[0] or ""
            for key, _ in COMMAND_KEYS for e in self.unit.values("Service", key)]
        if commands and all("+" in f or "!" in f for f in lines):
            self.use(user_entry)
            return ""                        # every command asks for root
        problem = svc_problem("user", user)
        if problem is not None:
            self.drop(user_entry, problem)
            return ""
        self.user_entry = user_entry
        return user

    def resolve_program(self, name, entry):
        """A command named without its directory: found in systemd's search path when
        the machine can be asked (``path_test``), else left to ``env`` at each start.
        Returns the argv's first words, or None (dropped)."""
        if "/" in name:
            self.drop(entry, "%r is not an absolute path" % _one_line(name, 60))
            return None
        if self.path_test is not None:
            for directory in SEARCH_PATH:
                if self.path_test("-x", directory + "/" + name):
                    return [directory + "/" + name]
        return [ENV, name]

    def main_command(self, flags, words, entry, tty):
        """ExecStart= as exec= and args= (expand_args=1 when a word uses a variable);
        with a terminal on stdin, through the one shell that puts it there."""
        program = words[0]
        if not is_literal(program) or "$" in literal(program):
            self.failed = (entry, "the program's path comes from a variable")
            return
        path, rest = literal(program), words[1:]
        if "@" in flags:
            if not rest:
                self.failed = (entry, "the @ prefix needs a program and its argv[0]")
                return
            self.note(entry, "the @ prefix: argv[0] is the program's path")
            rest = rest[1:]
        if not path.startswith("/"):
            found = self.resolve_program(path, entry)
            if found is None:
                self.failed = (entry, "%r is not an absolute path" % _one_line(path, 60))
                return
            path, rest = found[0], [[("text", w)] for w in found[1:]] + rest
        expand = ":" not in flags and not (all(is_literal(w) for w in rest) and
                                           is_literal(tty))
        if self.accept is not None:
            self.emit("exec", self.subreaper, entry)
            for word in self.accept_options():
                self.emit("args", word, entry)
            self.emit("args", svc_word([("text", path)], expand), entry)
        elif tty:
            script = [("text", 'exec "$0" "$@"')] + tty
            self.emit("exec", SHELL, entry)
            self.emit("args", "-c", entry)
            self.emit("args", svc_word(script, expand), entry)
            self.emit("args", svc_word([("text", path)], expand), entry)
        else:
            self.emit("exec", path, entry)
        for word in rest:
            self.emit("args", svc_word(word, expand), entry)
        if expand:
            self.emit("expand_args", "1", entry)
        if "-" in flags:
            self.main_ignores_failure = entry
        if ":" in flags and any(not is_literal(w) for w in rest):
            self.drop(entry, "the : prefix leaves %i of a template unresolved")

    def accept_options(self):
        """schema-subreaper --accept's options for an Accept=yes socket."""
        words = ["--accept"]
        value, entry = self.word(self.accept, "Socket", "MaxConnections")
        if value:
            if is_number(value, 6) and int(value) > 0:
                words += ["--max", str(int(value))]
            else:
                self.drop(entry, "not a number from 1")
        stdin, _ = self.word(self.unit, "Service", "StandardInput", "null")
        if stdin == "socket":
            words.append("--stdio")
        return words

    def command_line(self, key, entry):
        """One Exec*= value as a ``core.cmdline`` line of KEY (its prefixes kept)."""
        flags, words, why = parse_command(entry.value, self.unit, self.facts)
        if flags is None:
            self.drop(entry, why)
            return
        expand = ":" not in flags
        if not expand and any(not is_literal(w) for w in words):
            self.drop(entry, "the : prefix leaves %i of a template unresolved")
            return
        program = words[0]
        if not is_literal(program) or "$" in literal(program):
            self.drop(entry, "the program's path comes from a variable")
            return
        argv = [literal(program)] + [svc_word(w, expand) for w in words[1:]]
        if self.permissions_start_only and "+" not in flags and "!" not in flags:
            flags += "+"                 # PermissionsStartOnly=yes: systemd's + on each
        if not argv[0].startswith("/"):
            found = self.resolve_program(argv[0], entry)
            if found is None:
                return
            if "@" in flags and len(found) > 1:
                self.drop(entry, "the @ prefix with a command named without its directory")
                return
            argv = found + argv[1:]
        text = cmdline.join(flags, argv)
        if cmdline.split(text) != ((flags, tuple(argv)), None):
            self.drop(entry, "cannot be written as one command line")
            return
        self.emit(key, text, entry)

    def bound_lines(self):
        """PartOf=X (a service): part_of=X, stopped and restarted with it;
        ReloadPropagatedFrom=X: reload_from=X.  Against a target or another kind of unit
        they are said and dropped."""
        for key, ours in (("PartOf", "part_of"), ("ReloadPropagatedFrom", "reload_from")):
            for entry in self.every(self.unit, "Unit", key):
                for word in entry.value.split():
                    name = self.expand(entry, word)
                    if name is None:
                        continue
                    if not name.endswith(".service"):
                        self.drop(entry, "%s is not a service: not kept" % name)
                        continue
                    self.emit(ours, name[:-len(".service")], entry)

    def command_lines(self, before, after):
        """ExecCondition= ... ExecStopPost=; a oneshot's other ExecStart= lines run
        before exec= (those with + or ! before the first run as the user) as exec_pre=
        lines after its ExecStartPre= ones, and after it as exec_post= lines before its
        ExecStartPost= ones."""
        unit = self.unit
        only, _entry = self.word(unit, "Service", "PermissionsStartOnly")
        self.permissions_start_only = is_true(only)
        if self.accept is not None:
            for key, _ in COMMAND_KEYS:
                for entry in self.every(unit, "Service", key):
                    self.drop(entry, "Accept=yes: a command around each connection's is "
                              "not run")
            for _flags, _words, entry in before + after:
                self.drop(entry, "Accept=yes: one command per connection")
            return
        for key, text, entry in self.checks:
            if key == "condition":
                self.emit(key, text, entry)
        for entry in self.every(unit, "Service", "ExecCondition"):
            self.command_line("condition", entry)
        for key, text, entry in self.checks:
            if key == "exec_pre":
                self.emit(key, text, entry)
        for entry in self.every(unit, "Service", "ExecStartPre"):
            self.command_line("exec_pre", entry)
        for _flags, _words, entry in before:
            self.command_line("exec_pre", entry)
        for _flags, _words, entry in after:
            self.command_line("exec_post", entry)
        for entry in self.every(unit, "Service", "ExecStartPost"):
            self.command_line("exec_post", entry)
        reloads = self.every(unit, "Service", "ExecReload")
        for entry in reloads:
            if " ".join(entry.value.split()) in HUP_RELOADS:
                continue                 # what a reload does without exec_reload=
            self.command_line("exec_reload", entry)
        if not reloads:
            self.emit("no_reload", "1")  # systemd refuses a reload without ExecReload=
        for entry in self.every(unit, "Service", "ExecStop"):
            self.command_line("exec_stop", entry)
        for entry in self.every(unit, "Service", "ExecStopPost"):
            self.command_line("exec_stop_post", entry)

    def conditions(self, each_start):
        """Path conditions (``ConditionPathExists=`` and its kin, ``!`` negating, ``|``
        triggering): of a oneshot or a timer's service (EACH_START), and of any service
        when the machine cannot be asked now, ``condition=`` lines run before each start
        (false: the start is skipped, as systemd skips the unit); of a daemon at boot,
        checked now by ``path_test`` (false: the unit is skipped, ``skip_reason``).  Path
        assertions are ``exec_pre=`` lines (false: the start fails).  Other conditions
        are the machine's answer now (``condition_test``); those it cannot answer are
        dropped lines."""
        units = [self.unit] + self.sockets + ([self.timer] if self.timer else [])
        triggering = []                  # [(entry, flag, negate, path)]: one true is enough
        for unit in units:
            for entry in unit.entries:
                if entry.section != "Unit" or not entry.value or \
                        not entry.key.startswith(("Condition", "Assert")):
                    continue
                asserted = entry.key.startswith("Assert")
                key = "Condition" + entry.key[6:] if asserted else entry.key
                value = entry.value
                trigger = value.startswith("|")
                value = value[1:] if trigger else value
                negate = value.startswith("!")
                value = value[1:] if negate else value
                flag = PATH_CONDITIONS.get(key)
                if flag is not None:
                    path, why = expand_specifiers(value, unit, self.facts)
                    if path is None or INSTANCE_MARK in path or not path.startswith("/"):
                        self.drop(entry, why or "not an absolute path (or a template's "
                                  "instance, resolved in each instance only)")
                        continue
                    if trigger and not asserted:
                        triggering.append((entry, flag, negate, path))
                        continue
                    self.path_check(entry, flag, negate, path, asserted, each_start)
                    continue
                if asserted or trigger or self.condition_test is None:
                    continue             # left for leftovers
                verdict = self.condition_test(entry.key, entry.value)
                if verdict is None:
                    continue             # not known here: leftovers reports it
                self.use(entry)
                if verdict is False:
                    self.skip(entry)
        if len(triggering) == 1:         # one alone is an ordinary condition
            entry, flag, negate, path = triggering[0]
            self.path_check(entry, flag, negate, path, False, each_start)
        elif triggering and self.path_test is not None and not each_start:
            verdicts = [self.path_test(flag, path) != negate
                        for _, flag, negate, path in triggering]
            for entry, _, _, _ in triggering:
                self.use(entry)
            if not any(verdicts):
                self.skip(triggering[0][0], "none of the | conditions holds")
        elif triggering:                 # one true is enough: one shell test of them all
            tests = []
            for n, (entry, flag, negate, _) in enumerate(triggering, 1):
                self.use(entry)
                tests.append(shell_test(flag, negate, '"${%d}"' % n))
            argv = [SHELL, "-c", " || ".join(tests), "-"] + [t[3] for t in triggering]
            self.checks.append(("condition", cmdline.join(":", argv), triggering[0][0]))

    def skip(self, entry, why=None):
        if self.skip_reason is None:
            self.skip_reason = "%s is false (checked when the units were read)" % \
                entry.text() if why is None else "%s: %s" % (entry.text(), why)

    def path_check(self, entry, flag, negate, path, asserted, each_start):
        if not asserted and not each_start and self.path_test is not None and \
                flag != "mountpoint":
            self.use(entry)
            if self.path_test(flag, path) == negate:
                self.skip(entry)
            return
        self.use(entry)
        if flag == "mountpoint" and not negate:
            argv = [MOUNTPOINT, "-q", path]
        elif flag in ("mountpoint", "notempty"):
            argv = [SHELL, "-c", shell_test(flag, negate, '"$1"'), "-", path]
        else:
            argv = [TEST] + (["!"] if negate else []) + [flag, path]
        check = ("exec_pre" if asserted else "condition", cmdline.join(":", argv))
        if check not in [c[:2] for c in self.checks]:    # a socket's and its service's
            self.checks.append(check + (entry,))

    def kinds(self, kind, oneshot, forking, remain, remain_entry, pid_file_entry,
              type_entry):
        is_timer = self.timer is not None
        if kind == "notify":
            self.emit("notify", "1", type_entry)
            access = self.get(self.unit, "Service", "NotifyAccess")
            if access is not None and access.value in ("main", "all", "none"):
                self.emit("notify_access", access.value, access)
        if oneshot or is_timer:
            self.emit("oneshot", "1", type_entry)
        if forking:
            self.emit("forking", "1", type_entry)
            if pid_file_entry is not None:
                path = self.expand(pid_file_entry, pid_file_entry.value)
                if path is not None:
                    self.emit("pid_file", path, pid_file_entry)
        elif pid_file_entry is not None and kind != "forking":
            self.drop(pid_file_entry, "PIDFile= without Type=forking")
        if remain:
            if is_timer:
                self.drop(remain_entry, "RemainAfterExit= of a timer's service")
            elif oneshot or forking:
                self.emit("remain_after_exit", "1", remain_entry)
            else:
                self.drop(remain_entry, "RemainAfterExit= of a daemon")

    def restart(self, restart, entry):
        unit = self.unit
        if restart not in RESTART_WORDS:
            self.drop(entry, "Restart=%s is not a Restart= value" % restart)
            restart = "no"
        if self.accept is not None:
            if restart != "no":
                self.drop(entry, "a connection's command is not restarted (Accept=yes)")
        elif self.timer is not None:
            if restart != "no":
                self.drop(entry, "a timer's service runs again at its next fire")
        elif self.on_demand and restart == "no":
            self.use(entry)              # the next connection starts it (listen_on_demand)
        else:
            self.emit("restart", restart, entry)
        if self.main_ignores_failure is not None and restart != "always":
            self.emit("success_exit_status", EVERY_END, self.main_ignores_failure)
        for key, ours in (("SuccessExitStatus", "success_exit_status"),
                          ("RestartPreventExitStatus", "restart_prevent_exit_status"),
                          ("RestartForceExitStatus", "restart_force_exit_status")):
            for entry in self.every(unit, "Service", key):
                words, bad = [], []
                for word in entry.value.split():
                    status = exit_status(word)
                    (bad if status is None else words).append(status or word)
                if bad:
                    self.drop(entry, "not an exit code (0-255), exit status name or signal: "
                              "%s" % _one_line(" ".join(bad), 80))
                if words:
                    self.emit(ours, " ".join(words), entry)

    def groups(self):
        unit = self.unit
        if self.user:
            self.emit("user", self.user, self.user_entry)
        group, entry = self.word(unit, "Service", "Group")
        if group:
            group = self.expand(entry, group)
            if group is not None and (self.user or group not in ("root", "0")):
                self.emit("group", group, entry)
        for entry in self.every(unit, "Service", "SupplementaryGroups"):
            text = self.expand(entry, entry.value)
            for name in (text or "").split():
                self.emit("supplementary_group", name, entry)

    def environment(self):
        unit = self.unit
        if self.term_value is not None:
            self.emit("env", self.term_value, unit.last("Service", "TTYPath"))
        for entry in self.every(unit, "Service", "Environment"):
            text = self.expand(entry, entry.value)
            if text is None:
                continue
            words, why = split_words(text)
            if words is None:
                self.drop(entry, why)
                continue
            for word in words:
                name, eq, _value = word.partition("=")
                if not eq or not config.env_name_ok(name):
                    self.drop(entry, "%r is not NAME=VALUE here" % _one_line(word, 60))
                    continue
                self.emit("env", word, entry)
        for entry in self.every(unit, "Service", "EnvironmentFile"):
            path = self.expand(entry, entry.value)
            if path is None:
                continue
            if not path.lstrip("-").startswith("/"):
                self.drop(entry, "not an absolute path")
                continue
            self.emit("env_file", path, entry)
        for entry in self.every(unit, "Service", "PassEnvironment"):
            pass                          # a service has the manager's environment here
        for entry in self.every(unit, "Service", "UnsetEnvironment"):
            self.drop(entry, "no key removes a variable from a service's environment")

    def workdir(self):
        value, entry = self.word(self.unit, "Service", "WorkingDirectory")
        if not value:
            return
        optional = value.startswith("-")
        path = value[1:] if optional else value
        if path != "~":
            path = self.expand(entry, path)
            if path is None:
                return
            if not path.startswith("/"):
                self.drop(entry, "not an absolute path")
                return
        self.emit("workdir", ("-" if optional else "") + path, entry)

    def tty(self):
        """The terminal a command gets on stdin (StandardInput=tty), as the parts of the
        shell's redirections; [] for none."""
        unit = self.unit
        stdin, stdin_entry = self.word(unit, "Service", "StandardInput", "null")
        path, path_entry = self.word(unit, "Service", "TTYPath", "/dev/console")
        if stdin not in ("tty", "tty-force", "tty-fail"):
            if path_entry is not None:
                self.drop(path_entry, "TTYPath= without StandardInput=tty")
            if stdin != "null" and (stdin != "socket" or self.accept is None):
                self.drop(stdin_entry, "StandardInput=%s: a service's stdin is /dev/null "
                          "here" % _one_line(stdin, 40))
            return []
        path, why = expand_specifiers(path, unit, self.facts)
        if path is None or not path.startswith("/"):
            self.drop(path_entry, why or "not an absolute path")
            return []
        target = [(k, shell_quote(v) if k == "text" else v)
                  for k, v in _mark_instance([("text", path)])]
        self.term(path)
        self.on_tty = True
        stdout, _ = self.word(unit, "Service", "StandardOutput", "inherit")
        stderr, _ = self.word(unit, "Service", "StandardError", "inherit")
        parts = [("text", " <")] + target
        if stdout in ("tty", "inherit"):
            parts += [("text", " >")] + target
            if stderr in ("tty", "inherit"):
                parts.append(("text", " 2>&1"))
        return parts

    def term(self, path):
        """systemd gives a service on a terminal TERM=linux on a virtual console,
        vt220 on any other (on /dev/console, its own TERM); Environment=TERM= wins."""
        if path == "/dev/console" or INSTANCE_MARK in path or any(
                e.value.startswith("TERM=") or " TERM=" in e.value
                for e in self.unit.values("Service", "Environment")):
            return
        name = path[5:] if path.startswith("/dev/") else path
        virtual = name.startswith("tty") and is_number(name[3:], 2)
        self.term_value = "TERM=%s" % ("linux" if virtual else "vt220")

    def context(self):
        """The execution context: limits, umask, nice, OOM score, directories and the
        sandboxing keys (applied between fork and exec)."""
        self.limits()
        self.octal_mode(self.unit, "UMask", "umask")
        for key, ours, low, high in (("Nice", "nice", -20, 19),
                                     ("OOMScoreAdjust", "oom_score_adj", -1000, 1000)):
            value, entry = self.word(self.unit, "Service", key)
            if not value:
                continue
            number = value[1:] if value[:1] in "+-" else value
            if is_number(number, len(str(high))) and low <= int(value) <= high:
                self.emit(ours, str(int(value)), entry)
            else:
                self.drop(entry, "not a number from %d to %d" % (low, high))
        self.directories()
        self.sandbox()

    def octal_mode(self, unit, key, ours):
        """An octal mode of [Service] (``UMask=``, ``...DirectoryMode=``) as OURS."""
        value, entry = self.word(unit, "Service", key)
        if not value:
            return
        if 0 < len(value) <= 4 and all(c in "01234567" for c in value):
            self.emit(ours, value.zfill(4), entry)
        else:
            self.drop(entry, "not an octal mode")

    def limits(self):
        for key, (name, how) in LIMITS.items():
            value, entry = self.word(self.unit, "Service", key)
            if not value:
                continue
            soft, colon, hard = value.partition(":")
            numbers = [limit_value(soft, how)] + ([limit_value(hard, how)] if colon else [])
            if None in numbers:
                self.drop(entry, "not a limit (a number%s, or infinity) below 2^63" % {
                    "size": " of bytes, K, M, G, T", "time": " of seconds or a time span",
                    "usec": " of microseconds or a time span",
                    "nice": " 0-40, or a nice level -20..19 with its sign"}.get(how, ""))
                continue
            if len(numbers) == 2 and numbers[1] != "infinity" and \
                    (numbers[0] == "infinity" or int(numbers[0]) > int(numbers[1])):
                self.drop(entry, "the soft limit is above the hard one")
                continue
            self.emit("limit", "%s=%s" % (name, ":".join(numbers)), entry)

    def directories(self):
        unit = self.unit
        for key, ours in DIRECTORY_KEYS:
            for entry in self.every(unit, "Service", key):
                for word in entry.value.split():
                    name = self.expand(entry, word)
                    if name is None:
                        continue
                    if ":" in name:
                        self.drop(entry, "%r: a directory's link (NAME:LINK) is not made "
                                  "here; its directory is" % _one_line(name, 60))
                        name = name.partition(":")[0]
                    self.emit(ours, name, entry)
            self.octal_mode(unit, key + "Mode", ours + "_mode")
        value, entry = self.word(unit, "Service", "RuntimeDirectoryPreserve")
        if value:
            word = "yes" if is_true(value) else "no" if value.lower() in FALSE_WORDS else \
                value.lower()
            if word in ("yes", "restart"):
                self.emit("runtime_dir_preserve", word, entry)
            elif word != "no":
                self.drop(entry, "not yes, no or restart")

    def sandbox(self):
        unit = self.unit
        for key, ours in SANDBOX_BOOLS:
            value, entry = self.word(unit, "Service", key)
            if not value:
                continue
            if is_true(value):
                self.emit(ours, "1", entry)
            elif value.lower() not in FALSE_WORDS:
                self.drop(entry, SANDBOX + "not a boolean")
        for key, ours, words in (("ProtectSystem", "protect_system", ("full", "strict")),
                                 ("ProtectHome", "protect_home", ("read-only", "tmpfs"))):
            value, entry = self.word(unit, "Service", key)
            if not value:
                continue
            word = "yes" if is_true(value) else "no" if value.lower() in FALSE_WORDS else \
                value.lower()
            if word == "yes" or word in words:
                self.emit(ours, word, entry)
            elif word != "no":
                self.drop(entry, SANDBOX + "%s=%s is not applied here" % (
                    key, _one_line(value, 40)))
        for key, ours in SANDBOX_PATHS:
            for entry in self.every(unit, "Service", key):
                text = self.expand(entry, entry.value)
                words, why = split_words(text) if text is not None else (None, None)
                if words is None:
                    if why:
                        self.drop(entry, why)
                    continue
                for word in words:
                    self.emit(ours, word[1:] if word.startswith("+") else word, entry)
        caps = self.word_sets("CapabilityBoundingSet", CAPABILITIES, str.lower)
        if caps is not None:
            inverted, names, entry = caps
            if not inverted and not names:          # empty: no capability kept
                inverted, names = True, set(CAPABILITIES)
            if names or not inverted:
                self.emit("cap_bounding", ("~" if inverted else "") + " ".join(
                    n for n in CAPABILITIES if n in names), entry)
        caps = self.word_sets("AmbientCapabilities", CAPABILITIES, str.lower)
        if caps is not None:
            inverted, names, entry = caps
            if inverted:
                self.drop(entry, SANDBOX + "~ in AmbientCapabilities= is not applied here")
            elif names:
                self.emit("ambient_caps", " ".join(n for n in CAPABILITIES if n in names),
                          entry)
        families = self.word_sets("RestrictAddressFamilies", None, None)
        if families is not None:
            inverted, names, entry = families
            if not names and not inverted:
                names = {"none"}
            if names:
                self.emit("restrict_address_families", ("~" if inverted else "") +
                          " ".join(sorted(names)), entry)

    def word_sets(self, key, known, fold):
        """A list setting of names merged as systemd merges its lines (a ``~`` line
        takes names away, an empty one keeps none): ``(inverted, names, last entry)``,
        or None when the unit does not set it."""
        entries = [e for e in self.unit.entries if e.section == "Service" and e.key == key]
        if not entries:
            return None
        inverted, names = None, set()
        for entry in entries:
            self.use(entry)
            words = entry.value.split()
            if not words:
                inverted, names = False, set()
                continue
            invert = words[0].startswith("~")
            words[0] = words[0][1:] if invert else words[0]
            words = [fold(w) if fold else w for w in words if w]
            wrong = [w for w in words if (w not in known if known else
                                          not config._is_family(w))]
            if wrong:
                self.drop(entry, SANDBOX + "not applied: unknown %s" % " ".join(wrong[:4]))
                continue
            if inverted is None:
                inverted, names = invert, set(words)
            elif inverted == invert:
                names |= set(words)      # more kept, or more taken away
            else:
                names -= set(words)
        if inverted is None:
            return None
        return inverted, names, entries[-1]

    # sockets, timers
    def socket_lines(self, sockets):
        """Each socket unit's ListenStream=/ListenDatagram= as listen= lines; its
        SocketMode=/SocketUser=/SocketGroup= and BindIPv6Only= as the line's options
        (several socket units), or the service's socket_*= keys (one)."""
        several = len(sockets) > 1
        for unit in sockets:
            options = []
            self.use(unit.last("Socket", "Service"))
            value, entry = self.word(unit, "Socket", "BindIPv6Only", "default")
            if value == "ipv6-only":
                ipv6only = True
            else:
                ipv6only = False
                if value not in ("default", "both"):
                    self.drop(entry, "not default, both or ipv6-only")
            owner = []
            mode, entry = self.word(unit, "Socket", "SocketMode")
            if mode:
                if 0 < len(mode) <= 4 and all(c in "01234567" for c in mode):
                    owner.append(("socket_mode", "mode", mode.zfill(4), entry))
                else:
                    self.drop(entry, "not an octal mode")
            for key, ours, option in (("SocketUser", "socket_user", "user"),
                                      ("SocketGroup", "socket_group", "group")):
                value, entry = self.word(unit, "Socket", key)
                if value:
                    if config.name_problem(value, config.USER_MAX) is None:
                        owner.append((ours, option, value, entry))
                    else:
                        self.drop(entry, "%r is not a user or group name" % _one_line(value))
            if several:
                options += ["%s=%s" % (option, value) for _, option, value, _ in owner]
            value, entry = self.word(unit, "Socket", "DirectoryMode", "0755")
            if value.lstrip("0") != "755":
                self.drop(entry, "a socket's directories are made 0755 here")
            # the fds' names in LISTEN_FDNAMES: FileDescriptorName=, else the unit's name
            fd_name, entry = self.word(unit, "Socket", "FileDescriptorName", unit.name)
            if config.parse_listen("/x name=" + fd_name)[0] is None:
                self.drop(entry, "not a name sd_listen_fds(3) allows; %s is used" % unit.name)
                fd_name = unit.name
            options.append("name=" + fd_name)
            kinds = {"ListenStream": "stream", "ListenDatagram": "dgram"}
            listens = {id(e) for key in kinds for e in self.every(unit, "Socket", key)}
            for entry in unit.entries:           # in the file's order: the fds' order
                if id(entry) in listens:
                    kind = kinds[entry.key]
                    value, why = listen_value(kind, entry.value, unit, self.facts)
                    if value is None:
                        self.drop(entry, why)
                        continue
                    line = [value] + options
                    if ipv6only and is_ipv6_listen(value):
                        line.insert(1, "ipv6only")
                    self.emit("listen", " ".join(line), entry)
            if not several:
                for ours, _option, value, entry in owner:
                    self.emit(ours, value, entry)
        if self.on_demand and self.out.has("listen"):
            self.emit("listen_on_demand", "1")

    def timer_lines(self, unit):
        calendars = self.every(unit, "Timer", "OnCalendar")
        calendar = None
        for entry in calendars:
            if calendar is not None:
                self.drop(entry, "only one OnCalendar= per timer here")
                continue
            mapped, note = map_calendar(entry.value)
            if mapped is None:
                self.drop(entry, note)
                continue
            calendar = mapped
            self.emit("on_calendar", mapped, entry)
            if note:
                self.note(entry, note)
        high = config.SERVICE_KEYS["on_boot_sec"].high
        spans = {"on_boot_sec": [], "on_active_sec": []}
        for key, ours in (("OnBootSec", "on_boot_sec"), ("OnStartupSec", "on_boot_sec"),
                          ("OnActiveSec", "on_boot_sec"), ("OnUnitActiveSec", "on_active_sec"),
                          ("OnUnitInactiveSec", "on_active_sec")):
            for entry in self.every(unit, "Timer", key):
                if calendar is not None:
                    self.drop(entry, "a timer here is either a calendar or an interval")
                    continue
                seconds, why = parse_timespan(entry.value)
                if seconds is False or seconds is None or seconds > high:
                    self.drop(entry, why or ("infinity" if seconds is None else
                                             "longer than %d seconds" % high))
                    continue
                spans[ours].append((whole_seconds(seconds), entry))
        for ours, found in spans.items():
            if not found:
                continue
            seconds, entry = min(found, key=lambda f: f[0])
            self.emit(ours, str(seconds), entry)
            for _, other in found:
                if other is not entry:
                    self.drop(other, "only the earliest of the timer's %s settings is kept "
                              "(%s)" % ("boot" if ours == "on_boot_sec" else "unit",
                                        entry.text()))
        if spans["on_active_sec"] and not spans["on_boot_sec"]:
            entry = spans["on_active_sec"][0][1]
            self.note(entry, "without OnBootSec= it first fires at boot here (systemd "
                      "waits for the service's first start)")
        persistent, entry = self.word(unit, "Timer", "Persistent", "no")
        if is_true(persistent):
            if calendar is not None:
                self.emit("persistent", "1", entry)
            else:
                self.drop(entry, "Persistent= applies to calendar timers only")
        value, entry = self.word(unit, "Timer", "RandomizedDelaySec")
        if value:
            seconds, why = parse_timespan(value)
            top = config.SERVICE_KEYS["randomized_delay_sec"].high
            if seconds is False or seconds is None or seconds > top:
                self.drop(entry, why or "up to %d seconds" % top)
            elif seconds:
                self.emit("randomized_delay_sec", str(whole_seconds(seconds)), entry)

    def service_settings(self):
        unit = self.unit
        value, entry = self.word(unit, "Service", "KillMode")
        if value:
            if value in config.KILL_MODES:
                self.emit("kill_mode", value, entry)
            else:
                self.drop(entry, "KillMode=%s is not supported" % value)
        value, entry = self.word(unit, "Service", "KillSignal")
        if value:
            name = signal_name(value)
            if name is None:
                self.drop(entry, "not a signal")
            elif name != "SIGTERM":
                self.emit("kill_signal", name, entry)
        value, entry = self.word(unit, "Service", "SendSIGKILL")
        if value:
            if value.lower() in FALSE_WORDS:
                self.emit("send_sigkill", "0", entry)
            elif not is_true(value):
                self.drop(entry, "not a boolean")
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
                    self.emit(ours, "0", entry)
                else:
                    self.emit(ours, "86400", entry)
                    self.note(entry, "infinity: a stop waits 24 hours at most")
                continue
            self.emit(ours, str(min(whole_seconds(seconds), 86400)), entry)
        value, entry = self.word(unit, "Service", "WatchdogSec")
        if value:
            seconds, why = parse_timespan(value)
            if seconds:
                self.emit("watchdog_sec", str(min(whole_seconds(seconds), 86400)), entry)
            elif seconds is False:
                self.drop(entry, why)
        value, entry = self.word(unit, "Unit", "StartLimitBurst")
        other, other_entry = self.word(unit, "Service", "StartLimitBurst")
        if not value:
            value, entry = other, other_entry
        elif other_entry is not None and not is_number(other, 6):
            self.drop(other_entry, "not a number (up to 6 digits)")
        if is_number(value, 6):
            self.emit("max_restarts", value, entry)
        elif entry is not None:
            self.drop(entry, "not a number (up to 6 digits)")
        value, entry = self.word(unit, "Service", "CPUQuota")
        if value.endswith("%") and is_number(value[:-1]):
            percent = int(value[:-1])
            if 1 <= percent <= 100:
                self.emit("cpu_limit", str(percent), entry)
            else:
                self.drop(entry, "cpu_limit= is 1-100 (% of one CPU)")
        elif entry is not None:
            self.drop(entry, "not a whole percentage (N%)")
        for key in ("MemoryMax", "MemoryLimit"):
            value, entry = self.word(unit, "Service", key)
            if value and value != "infinity":
                mib = memory_mib(value)
                if mib is None or mib > config.SERVICE_KEYS["mem_limit"].high:
                    self.drop(entry, "not a size in bytes (K, M, G, T)")
                else:
                    self.emit("mem_limit", str(mib), entry)
        value, entry = self.word(unit, "Service", "RestartSec")
        if value:
            self.drop(entry, "restarts are paced by schema-init's own backoff")
        value, entry = self.word(unit, "Service", "IgnoreSIGPIPE", "no")
        if is_true(value):
            self.drop(entry, "SIGPIPE is not ignored in services here")
        for key in ("StandardOutput", "StandardError"):
            value, entry = self.word(unit, "Service", key)
            if entry is not None and value not in QUIET_OUTPUTS and \
                    not (value == "tty" and unit.last("Service", "StandardInput")):
                self.drop(entry, "output goes to the service's log file (RUN/log/NAME.log)")
        restart = unit.last("Service", "Restart")
        if self.on_tty and restart is not None and restart.value == "always":
            self.emit("session", "1", restart)   # a getty: a logout is not a failure
        for each in [unit] + self.sockets + ([self.timer] if self.timer else []):
            for entry in self.every(each, "Unit", "Conflicts"):
                others = [w for w in entry.value.split() if w not in SHUTDOWN_UNITS]
                if others:
                    self.drop(entry, "conflicts are not enforced: %s" % " ".join(others))

    def leftovers(self, units):
        for unit in units:
            for entry in unit.entries:
                if id(entry) in self.used or (entry.section, entry.key) in QUIET or \
                        entry.section == "Install":
                    continue
                self.drop(entry, drop_reason(entry.section, entry.key))


def shell_test(flag, negate, word):
    """A path condition as a test of sh(1) on WORD (a quoted positional parameter)."""
    if flag == "notempty":
        return '[ -%s "$(ls -A -- %s 2>/dev/null)" ]' % ("z" if negate else "n", word)
    if flag == "mountpoint":
        return "%s%s -q -- %s" % ("! " if negate else "", MOUNTPOINT, word)
    return "[ %s%s %s ]" % ("! " if negate else "", flag, word)


def shell_quote(text):
    if text and all(c.isalnum() or c in "_/.,:=+@%-" for c in text) and text.isascii():
        return text
    return "'" + text.replace("'", "'\\''") + "'"


def signal_name(word):
    """SIGNAME for a signal named with or without SIG (KillSignal=, exit statuses)."""
    upper = word.upper()
    name = upper[3:] if upper.startswith("SIG") else upper
    return "SIG" + name if name in config.SIGNALS else None


def exit_status(word):
    """A SuccessExitStatus= word as config's statuses take it, or None."""
    if is_number(word, 3):
        return str(int(word)) if int(word) <= 255 else None
    if word.upper() in EXIT_STATUS_NAMES:
        return str(EXIT_STATUS_NAMES[word.upper()])
    return signal_name(word)


def limit_value(text, how):
    """A Limit*= number as limit= writes it ("infinity" or digits), or None."""
    text = text.strip()
    if text == "infinity":
        return text
    if how == "size":
        number = parse_size(text)
    elif how in ("time", "usec"):
        seconds, _ = parse_timespan(text, 1 if how == "time" else 1e-6)
        if seconds is None:
            return "infinity"
        number = None if seconds is False else whole_seconds(seconds * (
            1 if how == "time" else 1000000))
    elif how == "nice" and text[:1] in "+-":
        number = 20 - int(text) if is_number(text[1:], 2) and -20 <= int(text) <= 19 \
            else None
    else:
        number = int(text) if is_number(text, 19) else None
        if how == "nice" and number is not None and number > 40:
            number = None
    if number is None or number > RLIMIT_TOP:
        return None
    return str(number)


def is_ipv6_listen(value):
    """A tcp:/udp: listen= value whose socket is an IPv6 one (every address, or [ADDR])."""
    kind, _, rest = value.partition(":")
    return kind in ("tcp", "udp") and (rest.startswith("[") or ":" not in rest)


def listen_value(kind, value, unit, facts=NO_FACTS):
    """A ListenStream=/ListenDatagram= value as a listen= address, or (None, why)."""
    value, why = expand_specifiers(value, unit, facts)
    if value is None:
        return None, why
    if len(value) > config.PATH_MAX:
        return None, "longer than %d characters" % config.PATH_MAX
    if INSTANCE_MARK in value:
        return None, "%i of a template is resolved in each instance only"
    if value.startswith("/"):
        candidate = "%s:%s" % (kind, value) if kind == "dgram" else value
    elif value.startswith("@"):
        return None, "abstract unix sockets are not supported"
    elif value.startswith("vsock:"):
        return None, "vsock sockets are not supported"
    else:
        net = "tcp" if kind == "stream" else "udp"
        if "%" in value.rpartition(":")[0]:
            return None, "an interface name in the address is not supported"
        candidate = "%s:%s" % (net, value)
    if " " in candidate or "\t" in candidate:
        return None, "a blank in the address"
    parsed, why = config.parse_listen(candidate)
    if parsed is None:
        return None, why
    return candidate, None


# --- which units: the walk from default.target and sysinit.target ---------------------

class ImportResult:
    """What importing the units of a machine gave."""

    __slots__ = ("generated", "diagnostics", "skipped", "sandbox")

    def __init__(self):
        self.generated = []          # [Generated], in the order of the walk
        self.diagnostics = []        # [UnitDiagnostic]
        self.skipped = []            # [(unit name, why)]: not imported, each said why
        self.sandbox = {}            # service -> sandboxing lines not applied (a count)


def init_own(name):
    """Why a unit is never imported, by its name: the services directory does it
    (``SERVICES_DIRECTORY_UNITS``) or it is systemd's own (``INIT_OWN``); else None."""
    return matches(SERVICES_DIRECTORY_UNITS, name) or matches(INIT_OWN, name)


class Selection:
    def __init__(self, source, svc_names, result, facts=NO_FACTS):
        self.source = source
        self.svc_names = frozenset(svc_names)
        self.result = result
        self.facts = facts
        self.units = {}              # name -> Unit (services, sockets, timers, targets)
        self.aliases = {}            # alias name -> real name
        self.gone = {}               # unit name -> why it is not there (missing, masked ...)

    def skip(self, name, why):
        if all(n != name for n, _ in self.result.skipped):
            self.result.skipped.append((name, why))

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
            self.gone.setdefault(name, "not found")
            return None
        if found[0] == "masked":
            self.skip(name, "masked (%s is a link to /dev/null)" % found[1])
            self.gone[name] = "masked"
            return None
        if found[0] == "error":
            self.result.diagnostics.append(_diag(found[1], 0, None, config.ERROR,
                                                 "cannot read: %s" % found[2]))
            self.gone[name] = "its file cannot be read"
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

    def names(self, unit, section, key):
        """``unit.names`` with a unit's specifiers resolved (``BindsTo=dev-%i.device``
        of an instance); a name that cannot be resolved is left out."""
        found = []
        for name, entry in unit.names(section, key):
            if "%" in name:
                name, _ = expand_specifiers(name, unit, self.facts)
                if name is None or INSTANCE_MARK in name:
                    continue
            found.append((name, entry))
        return found


DEPENDENCY_KEYS = ("Wants", "Requires", "BindsTo", "Requisite", "Upholds")
REQUIRING_KEYS = ("Requires", "BindsTo", "Requisite")


class Walk:
    """What the walk found: services in order, their sockets and timer, the services
    started at boot (``pulled``: not only by a socket) and the Accept=yes sockets."""

    def __init__(self, sel):
        self.sel = sel
        self.services = []           # service unit names, in the order reached
        self.sockets = {}            # service unit name -> [socket Units]
        self.timer_of = {}           # service unit name -> timer Unit
        self.pulled = set()          # names a target or a unit wants (started at boot)
        self.accepting = []          # [(socket Unit, template Unit)]: Accept=yes

    def on_demand(self):
        """Services reached only through their sockets: started by a connection."""
        pulled = {self.sel.real(n) for n in self.pulled}
        return {name for name in self.sockets if name not in pulled and
                self.sel.real(name) not in pulled and name not in self.timer_of}


def boot_targets(source):
    """default.target (its link: graphical or multi-user; without one, the first of
    those that exists) and sysinit.target."""
    if source.entry("default.target") is not None:
        return BOOT_TARGETS
    for name in DEFAULT_TARGETS:
        if source.entry(name) is not None:
            return (name, "sysinit.target")
    return (DEFAULT_TARGETS[-1], "sysinit.target")


def select_units(source, svc_names, start=None, everything=False, facts=NO_FACTS):
    """Walk the units to import.  Returns ``(Selection, Walk)``."""
    result = ImportResult()
    sel = Selection(source, svc_names, result, facts)
    walk = Walk(sel)
    if everything:
        queue = [n for n in source.names() if n.endswith((".service", ".socket", ".timer"))]
    else:
        queue = list(start or boot_targets(source))
        walk.pulled.update(queue)
    seen = set()
    steps = 0
    while queue and len(seen) < MAX_UNITS and steps < 10 * MAX_UNITS:
        steps += 1                   # whatever the files say, the walk ends
        name = queue.pop(0)
        if name in seen:
            continue
        seen.add(name)
        kind = "." + name.rpartition(".")[2]
        if "%" in name:
            continue                 # a specifier no unit could resolve
        if kind in UNSUPPORTED_KINDS:
            sel.skip(name, UNSUPPORTED_KINDS[kind])
            continue
        if kind not in (".service", ".socket", ".timer", ".target"):
            continue
        if kind == ".target" and name in NOT_FOLLOWED_TARGETS:
            continue
        why = init_own(name)
        if why:
            sel.skip(name, why)
            continue
        unit = sel.load(name)
        if unit is None and kind == ".target" and sel.real(name) == name:
            more = list(STANDARD_TARGET_WANTS.get(name, ())) + source.wants(name)
            queue += more
            walk.pulled.update(more)
            continue
        if unit is None:
            if sel.gone.get(sel.real(name)) == "not found" and not everything:
                sel.skip(name, "not found")
            continue
        asked = None
        if unit.name != name:            # an alias: the real name is checked as well
            if unit.name in seen:
                # its own .wants/ links still count (default.target.wants/ beside
                # multi-user.target.wants/: systemd reads both names' directories)
                more = source.wants(name) if kind == ".target" else []
                queue += more
                walk.pulled.update(more)
                continue
            seen.add(unit.name)
            asked, name = name, unit.name
            why = init_own(name)
            if why:
                sel.skip(name, why)
                continue
            if kind == ".service" and asked.rpartition(".")[0] in sel.svc_names:
                sel.skip(name, "a .svc file of the name %s wins" % asked.rpartition(".")[0])
                continue
        if kind == ".target":
            more = [n for key in ("Wants", "Requires")
                    for n, _ in sel.names(unit, "Unit", key)]
            more += list(STANDARD_TARGET_WANTS.get(name, ())) + source.wants(name)
            if asked is not None:
                more += source.wants(asked)     # the alias's own .wants/ links
            queue += more
            walk.pulled.update(more)
            continue
        if kind == ".service":
            if unit.instance == "" and not everything:
                continue             # a template is loaded through its instances
            if unit.base in sel.svc_names:
                sel.skip(name, "a .svc file of the same name wins")
                continue
            if name not in walk.services:
                walk.services.append(name)
            more = [n for key in DEPENDENCY_KEYS for n, _ in sel.names(unit, "Unit", key)]
            if not everything:
                more += source.wants(name)
            elif any(unit.values("Install", key) for key in ("WantedBy", "RequiredBy")):
                walk.pulled.add(name)    # --all: enabled as its [Install] says
            queue += more
            walk.pulled.update(more)
            continue
        attach(sel, walk, unit, queue, seen)
    served = {template.name for _, template in walk.accepting}
    walk.services = [name for name in walk.services if name not in served]
    return sel, walk


def attach(sel, walk, unit, queue, seen):
    """A socket or timer joins its service (Service=/Unit=, else its own name), which
    is then walked; an Accept=yes socket is served by its service's template."""
    result = sel.result
    kind = unit.kind
    target_key = "Service" if kind == ".socket" else "Unit"
    entry = unit.last(kind[1:].capitalize(), target_key)
    service = unit.base + ".service"
    if entry is not None:
        service, why = expand_specifiers(entry.value, unit, sel.facts)
        if service is None or INSTANCE_MARK in service:
            result.diagnostics.append(_diag(unit.path, entry.line, target_key,
                                            config.WARNING, "%s; not imported" % (
                                                why or "%i of a template")))
            return
    if not service.endswith(".service") or "%" in service:
        result.diagnostics.append(_diag(unit.path, entry.line if entry else 0,
                                        target_key, config.WARNING, "%r is not a service "
                                        "here; not imported" % _one_line(service, 80)))
        return
    accept = unit.last("Socket", "Accept") if kind == ".socket" else None
    if accept is not None and is_true(accept.value):
        template = sel.load("%s@.service" % unit.base)
        if unit.base in sel.svc_names:
            sel.skip(unit.name, "a .svc file of the name %s wins" % unit.base)
        elif template is None:
            result.diagnostics.append(_diag(unit.path, accept.line, "Accept",
                                            config.WARNING, "Accept=yes: its service "
                                            "%s@.service is not found; not imported"
                                            % unit.base))
        else:
            walk.accepting.append((unit, template))
        return
    service_unit = sel.load(service)
    service = sel.real(service)
    base = service.rpartition(".")[0]
    if base in sel.svc_names:
        sel.skip(unit.name, "its service %s is a .svc file (which wins): give it listen= or "
                 "on_calendar= there" % base)
        return
    if service_unit is None:
        result.diagnostics.append(_diag(unit.path, entry.line if entry else 0, None,
                                        config.WARNING, "its service %s is not found; "
                                        "not imported" % service))
        return
    if kind == ".socket":
        walk.sockets.setdefault(service_unit.name, []).append(unit)
    else:
        walk.timer_of[service_unit.name] = unit
    queue.insert(0, service_unit.name)
    seen.discard(service_unit.name)


def import_units(source, svc_names=(), start=None, everything=False,
                 subreaper=SUBREAPER, path_test=None, condition_test=None, facts=None):
    """Every service to import, mapped: an :class:`ImportResult`.

    ``svc_names``: the services and groups of the .svc directory.  A .svc file of a
    unit's name wins over the unit; a target ``T.target`` in ``After=`` (or implied,
    ``basic.target``, by ``DefaultDependencies=yes``) becomes ``dep=T`` when the .svc
    directory has a service or group ``T``.  ``start``: the targets to walk from
    (default: ``boot_targets``); ``everything``: every unit of the directories
    (``import-units --all``); ``subreaper``: the schema-subreaper whose --accept mode
    serves Accept=yes sockets; ``path_test(flag, path)``: checks a daemon's path
    conditions now (``-e``, ``-d``, ``-s``, ``-x``, ``-L``, ``-w`` as test(1),
    ``notempty``), and finds a command named without its directory; None: they are
    ``condition=`` lines checked at each start; ``condition_test(key, value)``: the
    machine's answer to other conditions (``ConditionCapability=`` ...), None when it
    does not know; ``facts``: ``%H %l %m %b %v`` (default: :class:`MachineFacts`)."""
    facts = MachineFacts() if facts is None else facts
    sel, walk = select_units(source, svc_names, start, everything, facts)
    result = sel.result
    services = walk.services
    on_demand = walk.on_demand()
    names = {sel.units[n].base: n for n in services}
    known = (set(svc_names) | set(names)) - {sel.units[n].base for n in on_demand}
    after = {}
    for name in list(services):
        try:
            after[name] = _after(sel.units[name], walk.sockets.get(name, ()), sel, known)
        except Exception as exc:      # noqa: B902 - this unit is refused, not the import
            _refuse(result, sel.units[name], exc)
            services.remove(name)
            sel.gone[name] = "it cannot be converted"
    by_base = {sel.units[n].base: n for n in services}
    for name in list(services):
        unit = sel.units[name]
        try:
            for other, entry in sel.names(unit, "Unit", "Before"):
                target = by_base.get(dep_name(sel.real(other)))
                if target is not None and target != name and \
                        unit.base not in [d for d, _e, _k in after[target]] and \
                        unit.base in known:
                    strong = unit.base in _required(sel.units[target], sel)
                    after[target].append((unit.base, entry, "dep" if strong else "after"))
        except Exception as exc:      # noqa: B902
            _refuse(result, unit, exc)
            services.remove(name)
            sel.gone[name] = "it cannot be converted"
    made = {}
    for name in services:
        unit = sel.units[name]
        converter = Converter(unit, walk.sockets.get(name, ()), walk.timer_of.get(name),
                              after.get(name, ()), subreaper=subreaper,
                              path_test=path_test, condition_test=condition_test,
                              facts=facts, on_demand=name in on_demand)
        generated, why = convert_one(converter, result)
        if generated is None:
            sel.gone[name] = why
        else:
            made[name] = generated
    for socket, template in walk.accepting:
        try:
            generated, _why = accept_service(socket, template, sel, subreaper, facts, result)
        except Exception as exc:      # noqa: B902
            _refuse(result, socket, exc)
            continue
        if generated is not None:
            made[socket.name] = generated
    unmet_dependencies(sel, made, result)
    result.generated = [g for g in made.values() if g is not None]
    for generated in result.generated:
        if generated.sandbox:
            result.sandbox[generated.name] = len(generated.sandbox)
    return result


def _after(unit, sockets, sel, known):
    """[(service, Entry, key)]: what UNIT (and its sockets) is ordered after.  key "dep"
    (waited for until it is up) for a target (a .svc group), the implied basic and what
    Requires=/BindsTo=/Requisite= also name; "after" (ordering only: its failure does not
    hold UNIT) for the other services, as systemd's After= alone."""
    deps = []
    required = _required(unit, sel)

    def add(dep, origin, real):
        if dep is not None and dep != unit.base and dep not in [d for d, _e, _k in deps] and \
                dep in known:
            strong = real is None or real.endswith(".target") or dep in required
            deps.append((dep, origin, "dep" if strong else "after"))

    for other, entry in sel.names(unit, "Unit", "After"):
        real = sel.real(other)
        add(dep_name(real), entry, real)
    for socket in sockets:
        for other, entry in sel.names(socket, "Unit", "After"):
            real = sel.real(other)
            add(dep_name(real), entry, real)
    default = unit.last("Unit", "DefaultDependencies")
    if default is None or is_true(default.value):
        add("basic", default, None)
    return deps


def _required(unit, sel):
    """The services and targets UNIT requires (Requires=, BindsTo=, Requisite=)."""
    return {dep_name(sel.real(other)) for key in REQUIRING_KEYS
            for other, _entry in sel.names(unit, "Unit", key)}


def unmet_dependencies(sel, made, result):
    """A dependency that is gone (missing, masked, its condition false, refused) is
    never waited for in silence: Wants=/Upholds= are told and not waited for (their
    dep= removed); Requires=/BindsTo=/Requisite= refuse the dependent as well, which may
    refuse its own dependents in turn."""
    changed = True
    while changed:
        changed = False
        for name, generated in list(made.items()):
            if generated is None:
                continue
            unit = sel.units.get(name)
            if unit is None:
                continue
            for key in DEPENDENCY_KEYS:
                for other, entry in sel.names(unit, "Unit", key):
                    real = sel.real(other)
                    why = sel.gone.get(real) or sel.gone.get(other)
                    if why is None or real == name or \
                            not real.endswith((".service", ".socket", ".timer")):
                        continue
                    base = dep_name(real)
                    generated.remove("dep", base)
                    generated.remove("after", base)
                    if key not in REQUIRING_KEYS:
                        note = (entry, "%s is not imported (%s): not waited for"
                                % (other, why))
                        if note not in [(e, w) for e, w in generated.drops]:
                            generated.drops.append(note)
                            result.diagnostics.append(_diag(entry.path, entry.line, key,
                                                            config.WARNING, note[1]))
                        continue
                    result.diagnostics.append(_diag(
                        entry.path, entry.line, key, config.ERROR,
                        "%s is not imported (%s); %s is not imported either"
                        % (other, why, name)))
                    made[name] = None
                    sel.gone[name] = "it requires %s, which is not imported" % other
                    changed = True
                    break
                if made[name] is None:
                    break


def _refuse(result, unit, exc):
    """A unit whose import raised: an error naming it; the other units go on."""
    result.diagnostics.append(_diag(unit.path, 0, None, config.ERROR,
                                    "%s cannot be converted (%s); the unit is not imported"
                                    % (unit.name, _unexpected(exc))))


def convert_one(converter, result):
    """A converter's Generated and None, or None and why the unit is not imported."""
    unit = converter.unit
    try:
        made = converter.convert()
    except Exception as exc:          # noqa: B902 - a bug here costs this unit, not all
        _refuse(result, unit, exc)
        return None, "it cannot be converted"
    if converter.skip_reason is not None:
        result.skipped.append((unit.name, converter.skip_reason))
        return None, converter.skip_reason
    if converter.failed is not None:
        entry, why = converter.failed
        result.diagnostics.append(_diag(entry.path if entry else unit.path,
                                        entry.line if entry else 0,
                                        entry.key if entry else None, config.ERROR,
                                        "%s; the unit is not imported" % why))
        return None, why
    seen = {(d.path, d.line, d.key, d.message) for d in result.diagnostics}
    for diag in capped(made[0].diagnostics(), unit.path):
        if (diag.path, diag.line, diag.key, diag.message) not in seen:
            result.diagnostics.append(diag)     # an instance's like its template's: once
    return made[0], None


def accept_service(socket, template, sel, subreaper, facts, result):
    """An Accept=yes socket: one service named after it, schema-subreaper --accept
    holding the socket and starting the template's command for each connection
    (``MaxConnections=`` at once, 64 by default), the connection as its fd 3
    (LISTEN_FDS=1) or, with ``StandardInput=socket``, its stdin and stdout."""
    name = socket.base
    if name in sel.svc_names:
        sel.skip(socket.name, "a .svc file of the same name wins")
        return None, None
    unit = Unit(template.name, template.path, template.entries, "",
                template.sources)
    converter = Converter(unit, [socket], None, (), svc_name=name, subreaper=subreaper,
                          facts=facts)
    converter.accept = socket
    return convert_one(converter, result)


def capped(diags, path):
    """At most config.MAX_DIAGNOSTICS_PER_FILE of one unit's warnings (then one saying how
    many more): a hostile unit cannot flood status; its .svc file still lists them all."""
    limit = config.MAX_DIAGNOSTICS_PER_FILE
    if len(diags) <= limit:
        return diags
    return diags[:limit] + [_diag(path, 0, None, config.WARNING, "%d more dropped lines not "
                                  "shown (schema-init import-units lists them)"
                                  % (len(diags) - limit))]


def dep_name(unit_name):
    """The service (or .svc group) an ordering against ``unit_name`` means, or None (a
    socket is listening before any service starts: ordering after it is met)."""
    base, _, kind = unit_name.rpartition(".")
    if kind in ("service", "target"):
        return base
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
        path = generated.sources[0]
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
