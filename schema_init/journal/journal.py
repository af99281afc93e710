"""The journal's pure core: datagrams, stream bytes and log lines in, entries out; the
stored line format; journalctl's filters and output formats (docs/spec.md, "The journal").

Rules of this file: nothing here touches a socket, a file, a process or a clock.  Every
function takes the bytes and the facts (the time, the sender's credentials, its cgroup
text) as arguments and returns values, so the parsers can be fed anything (tests/
test_journal.py fuzzes them) and the sink (``journald.py``) and the shim
(``journalctl.py``) stay thin.

An entry is a dict of journald's field names to strings: what the sender said
(``MESSAGE``, ``PRIORITY``, ``SYSLOG_IDENTIFIER``, ...) and what the sink knows
(``_PID``, ``_UID``, ``_GID``, ``_COMM``, ``_SYSTEMD_UNIT``, ``_HOSTNAME``, ``_BOOT_ID``,
``_TRANSPORT``, ``__REALTIME_TIMESTAMP``, ``__MONOTONIC_TIMESTAMP``, ``__SEQNUM``).  It is
stored as one JSON object a line, the same object ``journalctl -o json`` prints.

Who sent an entry is never the sender's word: the fields starting with ``_`` come only
from the kernel's credentials (``SCM_CREDENTIALS``, ``SO_PEERCRED``), the sender's cgroup
and schema-init's own log files, as the sink passes them to ``complete``; a ``_`` field in
a datagram is dropped, and a syslog tag, ``SYSLOG_IDENTIFIER`` or a stream header's
identifier or unit is only ever ``SYSLOG_IDENTIFIER``.  Entries are stored per sender
(``sender_key``: a service, or a uid outside any service), and ``RateLimit`` keeps a
flooding sender to its own budget, so one sender's flood rotates only its own files.
"""

import json
import re
import struct
import time

PRIORITY_NAMES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")
PRIORITY_ALIASES = {"panic": 0, "error": 3, "warn": 4}
MAX_LINE = 48 * 1024          # a longer line is cut here (and kept)
MAX_FIELDS = 1024             # fields of one native datagram
MAX_FIELD_NAME = 64
MAX_HEADER_LINE = 1024        # a stream header line longer than this ends the connection
UNITLESS = "+system"          # storage key of root's entries from no service ('+' is in no name)
UID_PREFIX = "+uid-"          # +uid-N: storage key of uid N's entries from no service
UNIT_SUFFIXES = (".service", ".scope", ".socket")
RATE_INTERVAL = 30.0          # journald's RateLimitIntervalSec= and RateLimitBurst= defaults
RATE_BURST = 10000
RATE_KEYS = 4096              # senders whose windows are remembered (a bound, not a limit)

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
          "Dec")
_RFC3164_TIME = re.compile(rb"^([A-Z][a-z]{2}) ([ 0-9]\d) (\d\d):(\d\d):(\d\d) ")
_TAG = re.compile(rb"^([^\s:\[\]]{1,64})(?:\[(\d{1,10})\])?:(?: |$)")
_FIELD_NAME = re.compile(rb"^[A-Z_][A-Z0-9_]*$")


def _text(data):
    return data.decode("utf-8", "replace")


def _cut(data, limit=MAX_LINE):
    return data[:limit]


# --- syslog (RFC 3164 as glibc's syslog(3) sends it, RFC 5424 as `logger` can) ---

def parse_syslog(data):
    """A /dev/log datagram into fields.  Anything parses: what is not a header is the
    message; no ``<PRI>`` means user.notice (13), as syslogd reads it."""
    data = data.rstrip(b"\n\0")
    fields = {}
    priority = 13
    m = re.match(rb"^<(\d{1,3})>", data)
    if m and int(m.group(1)) < 192:
        priority = int(m.group(1))
        data = data[m.end():]
    fields["PRIORITY"] = str(priority & 7)
    fields["SYSLOG_FACILITY"] = str(priority >> 3)
    if data.startswith(b"1 "):
        _rfc5424(data[2:], fields)
    else:
        _rfc3164(data, fields)
    fields["MESSAGE"] = _text(_cut(fields.pop("_message", b"")))
    return fields


def _rfc3164(data, fields):
    m = _RFC3164_TIME.match(data)
    if m:
        fields["SYSLOG_TIMESTAMP"] = _text(m.group(0)).rstrip()
        data = data[m.end():]
    tag = _TAG.match(data)
    if tag is None:
        # "HOST TAG: msg" (logger --rfc3164): skip one word when a tag follows it
        word, space, rest = data.partition(b" ")
        if space and word and b":" not in word and b"[" not in word:
            second = _TAG.match(rest)
            if second:
                data, tag = rest, second
    if tag is not None:
        fields["SYSLOG_IDENTIFIER"] = _text(tag.group(1))
        if tag.group(2):
            fields["SYSLOG_PID"] = tag.group(2).decode()
        data = data[tag.end():]
    fields["_message"] = data


def _rfc5424(data, fields):
    # TIMESTAMP HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA MSG
    parts = data.split(b" ", 5)
    if len(parts) < 6:
        fields["_message"] = data
        return
    stamp, _host, app, procid, msgid, rest = parts
    if stamp != b"-":
        fields["SYSLOG_TIMESTAMP"] = _text(stamp[:64])
    if app != b"-":
        fields["SYSLOG_IDENTIFIER"] = _text(app[:64])
    if procid != b"-" and procid.isdigit():
        fields["SYSLOG_PID"] = procid[:10].decode()
    if msgid != b"-":
        fields["SYSLOG_MSGID"] = _text(msgid[:64])
    fields["_message"] = _skip_structured_data(rest)


def _skip_structured_data(rest):
    if rest.startswith(b"-"):
        return rest[2:] if rest.startswith(b"- ") else rest[1:]
    i = 0
    while i < len(rest) and rest[i:i + 1] == b"[":
        # an element ends at the first ']' not escaped by a backslash
        j = i + 1
        while j < len(rest) and rest[j:j + 1] != b"]":
            j += 2 if rest[j:j + 1] == b"\\" else 1
        i = j + 1
    rest = rest[i:]
    if rest.startswith(b" "):
        rest = rest[1:]
    if rest.startswith(b"\xef\xbb\xbf"):          # the BOM RFC 5424 allows before MSG
        rest = rest[3:]
    return rest


# --- the native protocol (/run/systemd/journal/socket) ---

_NAMES_OK = set()               # field names seen valid (bounded): the regex once each


def _name_ok(name):
    if name in _NAMES_OK:
        return True
    if len(name) > MAX_FIELD_NAME or not _FIELD_NAME.match(name) or name[:1] == b"_":
        return False
    if len(_NAMES_OK) < 512:
        _NAMES_OK.add(name)
    return True


def parse_native(data):
    """A native datagram into (fields, problem).  ``KEY=VALUE\\n`` lines, or ``KEY\\n``
    then a 64-bit little-endian length, the value and ``\\n``.  Names a client may not
    set (``_``-prefixed: trusted fields) or that are not valid are skipped; a length that
    runs past the datagram ends the parse (problem says so) keeping what came before."""
    fields, problem = {}, None
    lines = data.split(b"\n")
    if len(lines) <= MAX_FIELDS and all(b"=" in line for line in lines if line):
        for line in lines:                       # no binary field: the common case
            if line:
                name, _, value = line.partition(b"=")
                if _name_ok(name):
                    fields[name.decode()] = _text(value[:MAX_LINE])
        return _checked(fields), None
    pos, size = 0, len(data)
    while pos < size and len(fields) < MAX_FIELDS:
        end = data.find(b"\n", pos)
        line = data[pos:] if end < 0 else data[pos:end]
        pos = size if end < 0 else end + 1
        if not line:
            continue
        name, eq, value = line.partition(b"=")
        if not eq:
            if pos + 8 > size:
                problem = "a binary field's length is missing"
                break
            (length,) = struct.unpack_from("<Q", data, pos)
            pos += 8
            if length > size - pos:
                problem = "a binary field is longer than the datagram"
                break
            value = data[pos:pos + length]
            pos += length
            if data[pos:pos + 1] == b"\n":
                pos += 1
        if not _name_ok(name):
            continue
        fields[name.decode()] = _text(value[:MAX_LINE])
    return _checked(fields), problem


def _checked(fields):
    priority = fields.get("PRIORITY")
    if priority is not None and not (len(priority) == 1 and "0" <= priority <= "7"):
        del fields["PRIORITY"]
    return fields


# --- lines (the stdout stream, service log files) ---

class Lines:
    """Bytes in, complete lines out; a line longer than ``limit`` is cut there and the
    rest of it, up to its newline, is dropped.  Holds at most ``limit`` bytes."""

    def __init__(self, limit=MAX_LINE):
        self.limit = limit
        self.partial = b""
        self.discarding = False

    def feed(self, data):
        out = []
        start = 0
        while True:
            end = data.find(b"\n", start)
            if end < 0:
                break
            piece = data[start:end]
            if self.discarding:
                self.discarding = False
            else:
                out.append((self.partial + piece)[:self.limit])
            self.partial = b""
            start = end + 1
        tail = data[start:]
        if tail and not self.discarding:
            self.partial += tail
            if len(self.partial) >= self.limit:
                out.append(self.partial[:self.limit])
                self.partial = b""
                self.discarding = True
        return out

    def rest(self):
        """The unfinished line (at the end of the stream), if any."""
        rest, self.partial, self.discarding = self.partial, b"", False
        return [rest] if rest else []


class StreamHeaderError(ValueError):
    pass


class Stream:
    """The stdout stream protocol: seven header lines (identifier, unit id, priority,
    level_prefix, forward_to_syslog, forward_to_kmsg, forward_to_console), then one
    entry a line.  ``feed`` returns the fields of each new line; raises
    StreamHeaderError for a header that is not one (the sink closes the connection).
    The header's identifier is the lines' ``SYSLOG_IDENTIFIER``; its unit id is checked
    for length and otherwise ignored: the service is the sender's cgroup's, never what
    the sender says it is."""

    HEADER_LINES = 7

    def __init__(self, limit=MAX_LINE):
        self.lines = Lines(limit)
        self.header = []
        self.identifier = ""
        self.unit = ""
        self.priority = 6
        self.level_prefix = False

    def feed(self, data):
        out = []
        while len(self.header) < self.HEADER_LINES and data:
            end = data.find(b"\n")
            if end < 0:
                if len(self.lines.partial) + len(data) > MAX_HEADER_LINE:
                    raise StreamHeaderError("a header line is too long")
                self.lines.partial += data
                return out
            line = self.lines.partial + data[:end]
            self.lines.partial, data = b"", data[end + 1:]
            if len(line) > MAX_HEADER_LINE:
                raise StreamHeaderError("a header line is too long")
            self._header_line(line)
        if data:
            for line in self.lines.feed(data):
                out.append(self._entry(line))
        return out

    def finish(self):
        if len(self.header) < self.HEADER_LINES:
            return []
        return [self._entry(line) for line in self.lines.rest()]

    def _header_line(self, line):
        index = len(self.header)
        text = _text(line)
        if index == 0:
            self.identifier = text[:64]
        elif index == 1:
            self.unit = text[:256]
        elif index == 2:
            if not (len(text) == 1 and "0" <= text <= "7"):     # "²" is a digit to isdigit()
                raise StreamHeaderError("priority %r is not 0 to 7" % text[:16])
            self.priority = int(text)
        else:
            if text not in ("0", "1"):
                raise StreamHeaderError("header line %d is %r, not 0 or 1" % (index + 1,
                                                                              text[:16]))
            if index == 3:
                self.level_prefix = text == "1"
        self.header.append(text)

    def _entry(self, line):
        priority = self.priority
        if self.level_prefix and len(line) >= 3 and line[:1] == b"<" and line[2:3] == b">" \
                and b"0"[0] <= line[1] <= b"7"[0]:
            priority = line[1] - b"0"[0]
            line = line[3:]
        fields = {"PRIORITY": str(priority), "MESSAGE": _text(line)}
        if self.identifier:
            fields["SYSLOG_IDENTIFIER"] = self.identifier
        return fields


# --- who sent it ---

def unit_of_cgroup(text):
    """The service a process belongs to, from its /proc/PID/cgroup text: the directory
    below ``schema-init`` (PID 1) or ``schema-init.TAG.PID`` (not PID 1); "" if none."""
    for line in text.splitlines():
        if not line.startswith("0::"):
            continue
        parts = line[3:].strip().split("/")
        for i, part in enumerate(parts[:-1]):
            if part == "schema-init" or part.startswith("schema-init."):
                return parts[i + 1]
    return ""


def unit_name(unit):
    """'cron' and 'cron.service' both mean the service cron."""
    return unit[:-8] if unit.endswith(".service") else unit


def sender_key(unit, uid):
    """Whose entries these are, for storage and rate limits: the service's name, else
    the uid (``UNITLESS`` for root and for a sender the kernel named no uid for)."""
    if unit:
        return unit_name(unit)
    return "%s%d" % (UID_PREFIX, uid) if uid > 0 else UNITLESS


def storage_key(entry):
    uid = entry.get("_UID", "")
    return sender_key(entry.get("_SYSTEMD_UNIT", ""),
                      int(uid) if uid.isascii() and uid.isdigit() and len(uid) < 11 else 0)


def complete(fields, realtime_us, monotonic_us, seqnum, boot_id, hostname, transport,
             pid=0, uid=-1, gid=-1, comm="", unit=""):
    """The stored entry: the sender's fields plus what the sink knows about it.  The
    ``_`` fields are the sink's alone: the sender's are dropped, whatever parsed them."""
    entry = {"__REALTIME_TIMESTAMP": str(realtime_us),
             "__MONOTONIC_TIMESTAMP": str(monotonic_us), "__SEQNUM": str(seqnum),
             "_BOOT_ID": boot_id, "_HOSTNAME": hostname, "_TRANSPORT": transport}
    if pid > 0:
        entry["_PID"] = str(pid)
    if uid >= 0:
        entry["_UID"] = str(uid)
    if gid >= 0:
        entry["_GID"] = str(gid)
    if comm:
        entry["_COMM"] = comm
    if unit:
        entry["_SYSTEMD_UNIT"] = unit if unit.endswith(UNIT_SUFFIXES) else unit + ".service"
    for name, value in fields.items():
        if name[:1] != "_":
            entry[name] = value
    entry.setdefault("PRIORITY", "6")
    entry.setdefault("MESSAGE", "")
    if "SYSLOG_IDENTIFIER" not in entry and comm:
        entry["SYSLOG_IDENTIFIER"] = comm
    return entry


class RateLimit:
    """journald's per-service rate limit: at most ``burst`` entries of one sender (a
    ``sender_key``) in a window of ``interval`` seconds; the rest of the window's are
    suppressed and counted, and the count is handed back once, when the window has
    ended, for the sink to say "Suppressed N messages from X".  ``interval`` 0: none."""

    def __init__(self, interval=RATE_INTERVAL, burst=RATE_BURST, max_keys=RATE_KEYS):
        self.interval = interval
        self.burst = burst
        self.max_keys = max_keys
        self.windows = {}          # key -> [window start, entries in it, suppressed]
        self.suppressing = set()   # keys with a count to say

    def allow(self, key, now):
        """``(allowed, suppressed)``: whether KEY's entry is kept, and how many of KEY's
        entries an ended window suppressed (0 but once per such window)."""
        if not self.interval:
            return True, 0
        window = self.windows.get(key)
        said = 0
        if window is None or now >= window[0] + self.interval or now < window[0]:
            if window is not None and window[2]:
                said = window[2]
                self.suppressing.discard(key)
            if window is None and len(self.windows) >= self.max_keys:
                self._forget(now)
            window = self.windows[key] = [now, 0, 0]
        if window[1] < self.burst:
            window[1] += 1
            return True, said
        window[2] += 1
        self.suppressing.add(key)
        return False, said

    def ended(self, now, everything=False):
        """``[(key, suppressed)]`` of the windows that ended (all of them: EVERYTHING)
        with a count not yet said; each is said once."""
        out = []
        for key in sorted(self.suppressing):
            window = self.windows[key]
            if everything or now >= window[0] + self.interval:
                out.append((key, window[2]))
                window[2] = 0
        for key, _count in out:
            self.suppressing.discard(key)
        return out

    def next_end(self):
        """When the first window with a count to say ends (None: no such window)."""
        if not self.suppressing:
            return None
        return min(self.windows[key][0] for key in self.suppressing) + self.interval

    def _forget(self, now):
        for key in [k for k, w in self.windows.items()
                    if k not in self.suppressing and now >= w[0] + self.interval]:
            del self.windows[key]
        if len(self.windows) >= self.max_keys:       # all of them live: the oldest go
            for key in sorted(self.windows, key=lambda k: self.windows[k][0])[
                    :len(self.windows) // 2]:
                if key not in self.suppressing:
                    del self.windows[key]


def suppressed_fields(key, count):
    """The entry saying a sender's entries were suppressed (stored with that sender's)."""
    if key == UNITLESS:
        who = "root outside any service"
    elif key.startswith(UID_PREFIX):
        who = "uid %s outside any service" % key[len(UID_PREFIX):]
    else:
        who = key + ".service"
    return {"MESSAGE": "Suppressed %d messages from %s" % (count, who), "PRIORITY": "4",
            "SYSLOG_IDENTIFIER": "schema-journald"}


try:
    from _json import encode_basestring as _quote     # the C one
except ImportError:                                   # pragma: no cover
    from json.encoder import encode_basestring as _quote


def encode(entry):
    """One stored line: the entry as a JSON object (names are [A-Z0-9_]; values strings)."""
    return ("{%s}\n" % ",".join(['"%s":%s' % (k, _quote(v)) for k, v in entry.items()])
            ).encode("utf-8", "replace")


def decode(line):
    """A stored line into an entry; None for a line that is not one (a partial write
    from a full disk, say)."""
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    if not isinstance(entry, dict) or "__REALTIME_TIMESTAMP" not in entry:
        return None
    return entry


def seq_of(entry):
    try:
        return int(entry.get("__SEQNUM", "0"))
    except ValueError:
        return 0


def realtime_of(entry):
    try:
        return int(entry.get("__REALTIME_TIMESTAMP", "0"))
    except ValueError:
        return 0


# --- journalctl: filters ---

def parse_priority(word):
    word = word.strip().lower()
    if len(word) == 1 and "0" <= word <= "7":
        return int(word)
    if word in PRIORITY_NAMES:
        return PRIORITY_NAMES.index(word)
    if word in PRIORITY_ALIASES:
        return PRIORITY_ALIASES[word]
    raise ValueError("unknown priority %r (0-7 or %s)" % (word, ", ".join(PRIORITY_NAMES)))


def parse_priorities(text):
    """``-p``: one priority means it and everything more important; ``A..B`` a range."""
    if ".." in text:
        low, high = text.split("..", 1)
        a = parse_priority(low) if low else 0
        b = parse_priority(high) if high else 7
        a, b = min(a, b), max(a, b)
        return frozenset(range(a, b + 1))
    return frozenset(range(0, parse_priority(text) + 1))


_RELATIVE = re.compile(r"^([+-]?)\s*([0-9]{1,9})\s*([a-z]*)\s*(ago|left)?$", re.ASCII)
_UNITS = {"": 1, "s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1, "m": 60,
          "min": 60, "mins": 60, "minute": 60, "minutes": 60, "h": 3600, "hr": 3600,
          "hour": 3600, "hours": 3600, "d": 86400, "day": 86400, "days": 86400,
          "w": 604800, "week": 604800, "weeks": 604800}


def parse_time(text, now, localtime=time.localtime, mktime=time.mktime):
    """``--since``/``--until``: seconds since the epoch.  "YYYY-MM-DD [HH:MM[:SS]]",
    "HH:MM[:SS]" (today), "now", "today", "yesterday", "tomorrow", "-5min", "+1h",
    "5 min ago", "@EPOCH".  Raises ValueError for anything else."""
    word = text.strip().lower()
    today = localtime(now)
    midnight = mktime((today.tm_year, today.tm_mon, today.tm_mday, 0, 0, 0, 0, 0, -1))
    if word == "now":
        return now
    if word in ("today", "yesterday", "tomorrow"):
        day = {"today": 0, "yesterday": -1, "tomorrow": 1}[word]
        t = localtime(midnight + day * 86400 + 43200)     # noon: DST-proof day step
        return mktime((t.tm_year, t.tm_mon, t.tm_mday, 0, 0, 0, 0, 0, -1))
    if word.startswith("@") and len(word) <= 21 and word[1:].replace(".", "", 1).isdigit() \
            and word.isascii():
        return float(word[1:])
    m = _RELATIVE.match(word)
    if m and m.group(3) in _UNITS and (m.group(1) or m.group(4)):
        seconds = int(m.group(2)) * _UNITS[m.group(3)]
        sign = -1 if m.group(1) == "-" or m.group(4) == "ago" else 1
        return now + sign * seconds
    m = re.match(r"^(?:(\d{4})-(\d\d)-(\d\d))?[ t]?(?:(\d\d):(\d\d)(?::(\d\d))?)?"
                 r"(?:\s*(utc|z))?$", word, re.ASCII)
    if m and (m.group(1) or m.group(4)):
        if m.group(1):
            year, month, day = int(m.group(1)), int(m.group(2)), int(m.group(3))
        else:
            year, month, day = today.tm_year, today.tm_mon, today.tm_mday
        hour = int(m.group(4) or 0)
        minute = int(m.group(5) or 0)
        second = int(m.group(6) or 0)
        if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60
                and second < 62):
            raise ValueError("%r is not a time" % text)
        fields = (year, month, day, hour, minute, second, 0, 0, -1)
        if m.group(7):
            import calendar                   # datetime and locale: journalctl only
            return float(calendar.timegm(fields))
        return float(mktime(fields))
    raise ValueError("%r is not a time (YYYY-MM-DD HH:MM:SS, today, yesterday, -5min, "
                     "'5 min ago')" % text)


def boots_in_order(entries):
    """Boot ids from oldest to newest, by each boot's first entry."""
    first = {}
    for entry in entries:
        boot = entry.get("_BOOT_ID", "")
        stamp = realtime_of(entry)
        if boot not in first or stamp < first[boot]:
            first[boot] = stamp
    return sorted(first, key=first.get)


def pick_boot(boots, current, offset):
    """``-b OFFSET``: 0 (or none) this boot, -1 the one before, ...; 1 the oldest stored,
    2 the next...  A boot id given verbatim is itself.  None: no such boot stored."""
    if isinstance(offset, str):
        return offset
    if offset <= 0:
        order = [b for b in boots if b != current] + [current]
        index = len(order) - 1 + offset
        return order[index] if index >= 0 else None
    return boots[offset - 1] if offset - 1 < len(boots) else None


class Filter:
    """What journalctl keeps: units, identifiers, priorities, a boot, a time window."""

    def __init__(self, units=(), identifiers=(), priorities=None, boot=None, since=None,
                 until=None):
        self.units = frozenset(unit_name(u) for u in units)
        self.identifiers = frozenset(identifiers)
        self.priorities = priorities
        self.boot = boot
        self.since = None if since is None else int(since * 1000000)
        self.until = None if until is None else int(until * 1000000)

    def keeps(self, entry):
        if self.units and unit_name(entry.get("_SYSTEMD_UNIT", "")) not in self.units:
            return False
        if self.identifiers and entry.get("SYSLOG_IDENTIFIER") not in self.identifiers:
            return False
        if self.priorities is not None:
            try:
                if int(entry.get("PRIORITY", "6")) not in self.priorities:
                    return False
            except ValueError:
                return False
        if self.boot is not None and entry.get("_BOOT_ID") != self.boot:
            return False
        if self.since is not None or self.until is not None:
            stamp = realtime_of(entry)
            if self.since is not None and stamp < self.since:
                return False
            if self.until is not None and stamp > self.until:
                return False
        return True


class Dedup:
    """Drops an entry already seen: the same entry can be in the persistent files and in
    the runtime files (flushed, not yet rotated away), or twice in the persistent files
    after a sink killed between a write and noting it.  Per boot, a storage key's entries
    are written in sequence order, so 'seen' is 'not above the highest seq of that boot
    and key'."""

    def __init__(self):
        self.highest = {}

    def fresh(self, key, entry):
        mark = (key, entry.get("_BOOT_ID", ""))
        seq = seq_of(entry)
        if seq <= self.highest.get(mark, 0):
            return False
        self.highest[mark] = seq
        return True


# --- journalctl: output ---

def _ident(entry):
    ident = entry.get("SYSLOG_IDENTIFIER") or entry.get("_COMM") or "unknown"
    pid = entry.get("_PID") or entry.get("SYSLOG_PID")
    return "%s[%s]" % (ident, pid) if pid else ident


def format_entry(entry, output, localtime=time.localtime):
    """One entry as journalctl prints it in OUTPUT (short, short-iso, short-precise,
    json, cat, verbose is not served)."""
    if output == "json":        # ASCII: no U+2028 or U+0085 to split a reader's lines
        return json.dumps(entry, separators=(",", ":"))
    message = entry.get("MESSAGE", "")
    if output == "cat":
        return message
    stamp_us = realtime_of(entry)
    t = localtime(stamp_us // 1000000)
    host = entry.get("_HOSTNAME", "localhost")
    if output == "short-iso":
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z", t)
    elif output == "short-precise":
        stamp = "%s %02d %s.%06d" % (MONTHS[t.tm_mon - 1], t.tm_mday,
                                    time.strftime("%H:%M:%S", t), stamp_us % 1000000)
    else:
        stamp = "%s %02d %s" % (MONTHS[t.tm_mon - 1], t.tm_mday, time.strftime("%H:%M:%S", t))
    return "%s %s %s: %s" % (stamp, host, _ident(entry), message)


OUTPUTS = ("short", "short-iso", "short-precise", "json", "cat")
