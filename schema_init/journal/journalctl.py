"""``journalctl`` for the journal schema-journald keeps (docs/spec.md, "The journal"):
what it serves is USAGE (a constant, not this docstring: the static binary is built
without docstrings)."""

import os
import re
import sys
import time

from schema_init.core.digits import ascii_digits
from . import journal

USAGE = """\
Served: -u/--unit UNIT (repeatable; with or without .service), -t/--identifier ID
(repeatable), -f/--follow, -n/--lines [N], -b/--boot [OFFSET|ID], -S/--since, -U/--until,
-p/--priority PRIO|A..B, -o/--output short|short-iso|short-precise|json|cat, -r/--reverse,
-q/--quiet, --no-pager, --no-hostname, -a, -x, -e (accepted), --list-boots,
-D/--directory DIR (the persistent files; also $SCHEMA_JOURNAL_STORAGE), --runtime DIR
(the /run files; also $SCHEMA_JOURNAL_RUNTIME).  Exit 0; 1 for a bad option value or
-b naming a boot not stored.
"""

STORAGE = "/var/log/schema-journal"
RUNTIME = "/run/schema-journal"
BOOT_ID_FILE = "/proc/sys/kernel/random/boot_id"
FOLLOW_POLL = 0.1
_SEQ = re.compile(rb'"__SEQNUM":"(\d+)"')


class Usage(Exception):
    pass


def parse(argv):
    o = {"units": [], "identifiers": [], "follow": False, "lines": None, "boot": None,
         "since": None, "until": None, "priority": None, "output": "short",
         "reverse": False, "no_hostname": False, "list_boots": False,
         "storage": os.environ.get("SCHEMA_JOURNAL_STORAGE", STORAGE),
         "runtime": os.environ.get("SCHEMA_JOURNAL_RUNTIME", RUNTIME)}
    args = list(argv)
    takes = {"-u": "units", "--unit": "units", "-t": "identifiers", "--identifier": "identifiers",
             "-S": "since", "--since": "since", "-U": "until", "--until": "until",
             "-p": "priority", "--priority": "priority", "-o": "output", "--output": "output",
             "-D": "storage", "--directory": "storage", "--runtime": "runtime"}
    while args:
        word = args.pop(0)
        if word.startswith("--") and "=" in word:
            word, value = word.split("=", 1)
            args.insert(0, value)
        elif word[:2] in ("-u", "-t", "-p", "-o", "-D", "-S", "-U", "-n") and len(word) > 2 \
                and not word.startswith("--"):
            args.insert(0, word[2:])
            word = word[:2]
        if word in takes:
            if not args:
                raise Usage("%s needs a value" % word)
            value = args.pop(0)
            key = takes[word]
            if isinstance(o[key], list):
                o[key].append(value)
            else:
                o[key] = value
        elif word in ("-f", "--follow"):
            o["follow"] = True
        elif word in ("-n", "--lines"):
            if args and (_count(args[0]) or args[0] == "all"):
                value = args.pop(0)
                o["lines"] = None if value == "all" else int(value)
            else:
                o["lines"] = 10
        elif word in ("-b", "--boot"):
            o["boot"] = 0
            if args and _boot_word(args[0]):
                value = args.pop(0)
                o["boot"] = int(value) if _count(value[1:] if value[:1] in "+-" else value) \
                    else value
        elif word in ("-r", "--reverse"):
            o["reverse"] = True
        elif word == "--no-hostname":
            o["no_hostname"] = True
        elif word == "--list-boots":
            o["list_boots"] = True
        elif word in ("-e", "--pager-end"):
            o["lines"] = 1000 if o["lines"] is None else o["lines"]
        elif word in ("--no-pager", "-q", "--quiet", "-a", "--all", "-x", "--catalog",
                      "--no-tail", "--merge", "-m", "--system"):
            pass
        elif word in ("-h", "--help", "--version"):
            raise Usage(word)
        else:
            raise Usage("unknown option %r" % word)
    if o["output"] not in journal.OUTPUTS:
        raise Usage("output %r is not one of %s" % (o["output"], ", ".join(journal.OUTPUTS)))
    return o


def _count(word):
    """A count typed on the command line: 1 to 9 ASCII digits ("²" is a digit to
    str.isdigit(), not to int())."""
    return ascii_digits(word, 9)


def _boot_word(word):
    text = word[1:] if word[:1] in "+-" else word
    return _count(text) or (len(word) == 32 and all(c in "0123456789abcdef" for c in word))


def read_lines(path):
    try:
        with open(path, "rb") as f:
            return f.read().split(b"\n")
    except OSError:
        return []


def key_files(directory, key):
    """KEY's files oldest first: KEY.jsonl.N ... KEY.jsonl.1, KEY.jsonl (KEY.jsonl.new)."""
    base = os.path.join(directory, key + ".jsonl")
    rotated = []
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    prefix = key + ".jsonl."
    for name in names:
        if name.startswith(prefix) and _count(name[len(prefix):]):
            rotated.append((int(name[len(prefix):]), os.path.join(directory, name)))
    # KEY.jsonl.new: the newest data while the sink rotates (written before the renames)
    fresh = [base + ".new"] if key + ".jsonl.new" in names else []
    return [p for _, p in sorted(rotated, reverse=True)] + [base] + fresh


def read_chain(directory, key):
    """The lines of all of KEY's files, oldest first, as they were at one moment: the
    files are opened, then their names looked at again; a rotation in between (a file
    renamed while we opened the next) makes us open them again."""
    for _ in range(20):
        paths = key_files(directory, key)
        opened = []
        for path in paths:
            try:
                opened.append(os.open(path, os.O_RDONLY | os.O_CLOEXEC))
            except OSError:
                pass
        inodes = [os.fstat(fd).st_ino for fd in opened]
        again = []
        for path in key_files(directory, key):
            try:
                again.append(os.stat(path).st_ino)
            except OSError:
                pass
        if again == inodes:
            break
        for fd in opened:
            os.close(fd)
    else:
        return []
    lines = []
    for fd in opened:
        with os.fdopen(fd, "rb") as f:
            lines.extend(f.read().split(b"\n"))
    return lines


def keys_in(directories, units):
    if units:
        return sorted(set(journal.unit_name(u) for u in units))
    keys = set()
    for directory in directories:
        try:
            names = os.listdir(directory)
        except OSError:
            continue
        for name in names:
            if ".jsonl" in name and not name.endswith(".new"):
                keys.add(name.split(".jsonl", 1)[0])
    return sorted(keys)


class Follower:
    """One key's runtime files followed across rotations: it reads its file to the end,
    then the file that came after it (by inode, in KEY.jsonl.N ... .1, KEY.jsonl).  A
    reader that fell behind by more rotations than /run keeps goes on from the oldest
    runtime file and reads the disk too: the sink writes to the disk what a rotation of
    /run would drop before it drops it."""

    def __init__(self, directory, key, storage=None, storage_first=False):
        self.directory = directory
        self.storage = storage
        self.storage_first = storage_first   # a key that appeared while following
        self.key = key
        self.fd = -1
        self.inode = None
        self.partial = b""

    def _chain(self):
        """[(inode, path)] oldest first, the same in two looks in a row: a rotation
        during one look (a file seen under two names, or one missed) shows as a
        difference and is looked at again."""
        previous = None
        for _ in range(20):
            out = []
            for path in key_files(self.directory, self.key):
                try:
                    out.append((os.stat(path).st_ino, path))
                except OSError:
                    pass
            if out == previous:
                return out
            previous = out
        return previous

    def _drain(self, out):
        while True:
            data = os.read(self.fd, 1 << 20)
            if not data:
                return
            lines = (self.partial + data).split(b"\n")
            self.partial = lines.pop()
            out.extend(lines)

    def _open(self, path):
        if self.fd >= 0:
            os.close(self.fd)
        self.fd, self.partial = -1, b""
        try:
            self.fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return False
        self.inode = os.fstat(self.fd).st_ino
        return True

    def read(self):
        """The lines appended since the last read, oldest first."""
        out = []
        gap = False
        for _ in range(64):
            if self.fd >= 0:
                self._drain(out)
            chain = self._chain()
            if not chain:
                break
            inodes = [ino for ino, _ in chain]
            if self.fd >= 0 and inodes[-1] == self.inode:
                break
            if self.fd >= 0:
                # a newer file exists, so ours is complete: what the sink was still
                # writing during the drain above is read now
                self._drain(out)
            if self.inode in inodes:
                nxt = inodes.index(self.inode) + 1
                if self._open(chain[nxt][1]) and self.inode == chain[nxt][0]:
                    continue                   # the file after ours, as it should be
            elif self.inode is None and not (self.storage_first and len(chain) > 1):
                self._open(chain[0][1])
                continue
            # fell behind by more rotations than /run keeps (or a rotation raced this
            # look): go on from the oldest runtime file, and read the disk afterwards
            gap = True
            if not any(self._open(path) for _, path in chain):
                break
        if gap and self.storage:
            # read after the runtime files: whatever the sink dropped from /run before
            # we read it, it wrote to the disk first.  In sequence order for the Dedup.
            out.extend(read_chain(self.storage, self.key))
            out.sort(key=_seq_of_line)
        return out


def _seq_of_line(line):
    m = _SEQ.search(line)
    return int(m.group(1)) if m else 0


_HEAD = re.compile(rb'^\{"__REALTIME_TIMESTAMP":"(\d+)","__MONOTONIC_TIMESTAMP":"\d+",'
                   rb'"__SEQNUM":"(\d+)","_BOOT_ID":"([^"]*)"')


def _head(line):
    """(realtime, seq, boot) of a stored line without parsing all of it; None if it is
    not an entry."""
    m = _HEAD.match(line)
    if m:
        return int(m.group(1)), int(m.group(2)), m.group(3).decode("utf-8", "replace")
    entry = journal.decode(line)
    if entry is None:
        return None
    return journal.realtime_of(entry), journal.seq_of(entry), entry.get("_BOOT_ID", "")


class Stored:
    """What the files hold, per key in time order, each entry once; decoded only when
    asked for (``journalctl -u x -n 10`` reads 10 entries, not all of them)."""

    def __init__(self):
        self.lines = {}          # key -> [line]
        self.dedup = journal.Dedup()
        self.first_seen = {}     # boot -> its first realtime

    def add(self, key, lines):
        seen = set()
        kept = self.lines.setdefault(key, [])
        for line in lines:
            if not line:
                continue
            head = _head(line)
            if head is None or (head[2], head[1]) in seen:
                continue
            seen.add((head[2], head[1]))
            kept.append(line)
            mark = (key, head[2])
            if head[1] > self.dedup.highest.get(mark, 0):
                self.dedup.highest[mark] = head[1]
            if head[0] < self.first_seen.get(head[2], 1 << 62):
                self.first_seen[head[2]] = head[0]

    def boots(self):
        return sorted(self.first_seen, key=self.first_seen.get)

    def select(self, keep, limit):
        """The entries KEEP keeps, in time order; only the last LIMIT when given."""
        chosen = []
        for lines in self.lines.values():
            if limit is None:
                picked = [e for e in map(journal.decode, lines) if e and keep.keeps(e)]
            else:
                picked = []
                for line in reversed(lines):
                    if len(picked) >= limit:
                        break
                    entry = journal.decode(line)
                    if entry is not None and keep.keeps(entry):
                        picked.append(entry)
            chosen.extend(picked)
        chosen.sort(key=lambda e: (journal.realtime_of(e), journal.seq_of(e)))
        if limit is not None:
            chosen = chosen[-limit:] if limit else []
        return chosen


def collect(o):
    """(Stored, followers of the runtime files)."""
    storage, runtime = o["storage"], o["runtime"]
    dirs = [d for d in (storage, runtime) if d]
    stored = Stored()
    followers = {}
    on_disk = storage if storage and storage != runtime else None
    for key in keys_in(dirs, o["units"]):
        fresh = []
        if runtime:
            # /run first, the disk after: what a rotation dropped from /run between the
            # two reads, the sink had written to the disk before dropping it.  The disk
            # holds the older entries, /run the newer: disk first in time order.
            follower = followers[key] = Follower(runtime, key, on_disk)
            fresh = follower.read()
        stored.add(key, (read_chain(on_disk, key) if on_disk else []) + fresh)
    return stored, followers


def _take(lines, key, dedup, out):
    for line in lines:
        if not line:
            continue
        entry = journal.decode(line)
        if entry is not None and dedup.fresh(key, entry):
            out.append(entry)


def make_filter(o, boots, current_boot, now):
    priorities = journal.parse_priorities(o["priority"]) if o["priority"] else None
    since = journal.parse_time(o["since"], now) if o["since"] else None
    until = journal.parse_time(o["until"], now) if o["until"] else None
    boot = None
    if o["boot"] is not None:
        boot = journal.pick_boot(boots, current_boot, o["boot"])
        if boot is None:
            raise Usage("no boot %s stored" % o["boot"])
    return journal.Filter(o["units"], o["identifiers"], priorities, boot, since, until)


def show(entries, o, out):
    for entry in entries:
        if o["no_hostname"] and o["output"].startswith("short"):
            entry = dict(entry)
            entry["_HOSTNAME"] = ""
            line = journal.format_entry(entry, o["output"]).replace("  ", " ", 1)
        else:
            line = journal.format_entry(entry, o["output"])
        out.write(line + "\n")


def main(argv, out=None):
    out = out or sys.stdout
    try:
        o = parse(argv)
    except Usage as exc:
        if str(exc) in ("-h", "--help", "--version"):
            out.write(USAGE if str(exc) != "--version" else
                      "journalctl (schema-init's journal)\n")
            return 0
        sys.stderr.write("journalctl: %s\n" % exc)
        return 1
    try:
        with open(os.environ.get("SCHEMA_JOURNAL_BOOT_ID_FILE", BOOT_ID_FILE)) as f:
            current_boot = f.read().strip()
    except OSError:
        current_boot = ""
    now = time.time()
    stored, followers = collect(o)
    dedup = stored.dedup
    if o["list_boots"]:
        boots = stored.boots()
        for i, boot in enumerate(boots):
            out.write("%3d %s\n" % (i - len(boots) + 1, boot))
        return 0
    try:
        keep = make_filter(o, stored.boots(), current_boot, now)
    except (Usage, ValueError) as exc:
        sys.stderr.write("journalctl: %s\n" % exc)
        return 1
    lines = o["lines"] if o["lines"] is not None else (10 if o["follow"] else None)
    chosen = stored.select(keep, lines)
    if o["reverse"]:
        chosen.reverse()
    try:
        show(chosen, o, out)
        out.flush()
        if o["follow"]:
            follow(o, followers, dedup, keep, out)
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        return 0
    return 0


def follow(o, followers, dedup, keep, out):
    runtime = o["runtime"]
    while True:
        time.sleep(FOLLOW_POLL)
        for key in keys_in([runtime], o["units"]):
            if key not in followers:
                followers[key] = Follower(runtime, key, o["storage"], storage_first=True)
        fresh = []
        for key, follower in followers.items():
            _take(follower.read(), key, dedup, fresh)
        fresh = [e for e in fresh if keep.keeps(e)]
        if fresh:
            fresh.sort(key=lambda e: (journal.realtime_of(e), journal.seq_of(e)))
            show(fresh, o, out)
            out.flush()
