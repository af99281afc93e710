"""``schema-ctl top``: a live board of every service, read from the shared memory.

Each refresh is one seqlock read of ``/dev/shm/NAME.ext`` (``analyze.shmread``) and
one read of the supervisor's ``/proc/PID/status``: no request reaches PID 1, which is
neither woken nor asked (tests/test_top.py counts its context switches while the
board runs).  Only an action (restart, start, stop, reset) goes through the control
socket, and only for a user ``protocol.may_run`` lets run it; others get the reason
on the board and nothing is sent.

The board is drawn with ECMA-48 escape sequences (cursor moves, SGR colours), the
lines that changed only, on the alternate screen; the terminal is put in raw input
mode by the compiled loop's ``terminal_raw`` (the static binary's Python has neither
``_curses`` nor ``termios``).  It fits 80x24 and gives the last-failure column what a
wider terminal has; a taller one shows more services.
"""

import os
import select
import time

from schema_init.analyze import shmread
from schema_init.core import protocol, schema, shmlayout

KEYS_HELP = ("q quit  \u2191\u2193 select  s sort  f filter  r restart  u start  "
             "d stop  x reset")
KEYS_HELP_ASCII = "q quit  up/down select  s sort  f filter  r restart  u start  d stop  x reset"
SORTS = ("name", "state", "restarts", "time", "ready", "weight")
ACTIONS = {"r": "restart", "u": "start", "d": "stop", "x": "reset"}

# SGR attributes by state: green up, blue done, yellow starting, red failing.
STATE_SGR = {schema.FUNDAMENTAL: "32", schema.PERFECT: "36", schema.SETTLED: "32",
             schema.NEW_PROCESS: "33", schema.FULL_TRUST: "33", schema.RECOVERY: "1;33",
             schema.FRICTION: "1;31", schema.DORMANT: "35", schema.EXCISED: "1;37;41"}
STATE_ORDER = {state: i for i, state in enumerate((
    schema.EXCISED, schema.FRICTION, schema.RECOVERY, schema.DORMANT, schema.FULL_TRUST,
    schema.NEW_PROCESS, schema.SETTLED, schema.FUNDAMENTAL, schema.PERFECT))}
WEIGHT_FULL = 8                     # a full F8 word: what a healthy service shows


def utf8_terminal(env):
    for key in ("LC_ALL", "LC_CTYPE", "LANG"):
        value = env.get(key)
        if value:
            return "utf-8" in value.lower() or "utf8" in value.lower()
    return False


def since(seconds):
    """A duration in at most five characters: 9s, 12m05, 3h07m, 12d04."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return "%ds" % seconds
    if seconds < 3600:
        return "%dm%02d" % (seconds // 60, seconds % 60)
    if seconds < 86400:
        return "%dh%02dm" % (seconds // 3600, seconds % 3600 // 60)
    return "%dd%02d" % (seconds // 86400, seconds % 86400 // 3600)


def latency(service):
    """Spawn to readiness of the current run, or None."""
    spawned, ready = service["spawned_us"], service["ready_us"]
    if not spawned or not ready or ready < spawned:
        return None
    return (ready - spawned) / 1e6


def short_seconds(value):
    if value is None:
        return "-"
    if value < 1:
        return "%dms" % round(value * 1000)
    if value < 100:
        return "%.2fs" % value
    return since(value)


class Board:
    """What is shown and chosen; ``frame`` turns a snapshot into lines of segments
    ``[(text, sgr or None)]`` for a width and a height."""

    def __init__(self, utf8=True):
        self.sort = "name"
        self.filter = ""
        self.selected = None          # a service name
        self.message = ""
        self.prompt = None            # ("filter", text) or ("confirm", request)
        self.utf8 = utf8
        self.last_switches = None     # (monotonic, voluntary switches) of the supervisor
        self.wakeups = None

    def visible(self, services, now_us):
        rows = [s for s in services if not self.filter or
                self.filter.lower() in s["name"].lower() or
                self.filter.lower() in schema.state_name(s["state"]).lower()]
        keys = {"name": lambda s: s["name"],
                "state": lambda s: (STATE_ORDER.get(s["state"], 99), s["name"]),
                "restarts": lambda s: (-s["restart_count"], s["name"]),
                "time": lambda s: (-(now_us - s["state_since_us"]) if s["state_since_us"]
                                   else 0, s["name"]),
                "ready": lambda s: (-(latency(s) or -1), s["name"]),
                "weight": lambda s: (s["weight"], s["name"])}
        return sorted(rows, key=keys[self.sort])

    def note_supervisor(self, status, now):
        """Wake-ups per second of the supervisor since the last refresh."""
        voluntary = status.get("voluntary")
        if voluntary is None:
            self.wakeups = None
            return
        if self.last_switches is not None and now > self.last_switches[0]:
            self.wakeups = (voluntary - self.last_switches[1]) / (now - self.last_switches[0])
        self.last_switches = (now, voluntary)

    def frame(self, snap, status, width, height, now_us, clock):
        width = max(width, 40)
        lines = []
        if snap is None:
            lines.append([("schema-ctl top: no shared memory to read (is schema-init "
                           "running? --shm NAME)", "1")])
            lines += [[]] * (height - 2) + [[(self.footer(), "7")]]
            return lines[:height]
        services = snap["services"]
        rss = status.get("rss_kb")
        pid = snap["supervisor_pid"]
        head = "schema-init %s  rss %s  wake-ups %s  slot %s  commit %s" % (
            "pid %d" % pid if pid else "pid ?",
            "%.1f MB" % (rss / 1024.0) if rss is not None else "-",
            "%.1f/s" % self.wakeups if self.wakeups is not None else "-",
            shmread_slot(snap), shmread_commit(snap))
        lines.append(_fit([(head, "1")], width - 9) + [(" " * max(1, width - 9 - len(head)), None),
                                                        (clock, None)])
        counts = {}
        for s in services:
            counts[s["state"]] = counts.get(s["state"], 0) + 1
        summary = "%d services: " % len(services) + ", ".join(
            "%d %s" % (counts[state], schema.state_name(state))
            for state in sorted(counts, key=lambda st: STATE_ORDER.get(st, 99)))
        lines.append([(summary, None)])
        rows = self.visible(services, now_us)
        names = [s["name"] for s in rows]
        if self.selected not in names:
            self.selected = names[0] if names else None
        name_w = min(max([4] + [len(n) for n in names]), 24 if width >= 100 else 16)
        cols = ("%-*s %-11s %-8s %4s %8s %7s %6s " % (name_w, "NAME", "STATE", "WEIGHT",
                                                        "RST", "IN STATE", "PID", "READY"))
        lines.append([(_pad(cols + "LAST FAILURE", width), "7")])
        body = height - 5
        first = 0
        if self.selected in names and names.index(self.selected) >= body:
            first = names.index(self.selected) - body + 1
        block, empty = ("\u2588", "\u00b7") if self.utf8 else ("#", ".")
        for s in rows[first:first + body]:
            state = s["state"]
            weight = min(s["weight"], WEIGHT_FULL)
            in_state = since((now_us - s["state_since_us"]) / 1e6) if s["state_since_us"] else "-"
            left = "%-*s " % (name_w, s["name"][:name_w])
            fail = s["last_failure"] or "-"
            segments = [(left, None), ("%-11s" % schema.state_name(state)[:11],
                                       STATE_SGR.get(state)), (" ", None),
                        (block * weight, STATE_SGR.get(state, "")), (empty * (WEIGHT_FULL - weight), "2"),
                        (" %4d %8s %7s %6s " % (s["restart_count"], in_state,
                                                s["child_pid"] or "-",
                                                short_seconds(latency(s))), None),
                        (fail, "31" if s["last_failure"] else None)]
            segments = _fit(segments, width)
            if s["name"] == self.selected:
                segments = [(text, "7" if not sgr else sgr + ";7") for text, sgr in segments]
                segments.append((" " * max(0, width - _length(segments)), "7"))
            lines.append(segments)
        while len(lines) < height - 2:
            lines.append([])
        status_line = self.message
        if self.prompt and self.prompt[0] == "filter":
            status_line = "filter: %s_" % self.prompt[1]
        elif self.prompt and self.prompt[0] == "confirm":
            status_line = "%s? [y/N]" % self.prompt[1]
        shown = "sort: %s  filter: %s" % (self.sort, self.filter or "-")
        lines.append(_fit([(status_line, "1"), ("  " if status_line else "", None),
                           (shown, None)], width))
        lines.append([(_pad(self.footer()[:width], width), "7")])
        return lines[:height]

    def footer(self):
        return KEYS_HELP if self.utf8 else KEYS_HELP_ASCII

    # --- keys --------------------------------------------------------------------

    def key(self, key, names, uid, send):
        """One key (a str; "UP"/"DOWN" for the arrows).  Returns False to quit."""
        if self.prompt is not None:
            return self._prompt_key(key, uid, send)
        if key in ("q", "Q", "\x03"):
            return False
        if key in ("UP", "DOWN") and names:
            at = names.index(self.selected) if self.selected in names else 0
            at = max(0, min(len(names) - 1, at + (-1 if key == "UP" else 1)))
            self.selected = names[at]
        elif key == "s":
            self.sort = SORTS[(SORTS.index(self.sort) + 1) % len(SORTS)]
        elif key in ("f", "/"):
            self.prompt = ("filter", self.filter)
        elif key in ACTIONS and self.selected:
            request = "%s %s" % (ACTIONS[key], self.selected)
            if not protocol.may_run(request, uid):
                self.message = "%s: refused, only root may (you are uid %d)" % (request, uid)
            else:
                self.prompt = ("confirm", request)
        return True

    def _prompt_key(self, key, uid, send):
        kind, value = self.prompt
        if kind == "filter":
            if key in ("\r", "\n"):
                self.filter, self.prompt = value, None
            elif key == "\x1b":
                self.filter, self.prompt = "", None
            elif key in ("\x7f", "\x08"):
                self.prompt = (kind, value[:-1])
            elif len(key) == 1 and key.isprintable():
                self.prompt = (kind, value + key)
            return True
        self.prompt = None
        if key in ("y", "Y"):
            self.message = send(value)
        else:
            self.message = "%s: not done" % value
        return True


def shmread_slot(snap):
    """The A/B slot booted, "-" on a machine without A/B slots."""
    return shmlayout.AB_SLOTS.get(snap.get("ab_slot", 0), "-")


def shmread_commit(snap):
    return shmlayout.AB_COMMITS.get(snap.get("ab_commit", 0), "-")


def _length(segments):
    return sum(len(text) for text, _ in segments)


def _pad(text, width):
    return text[:width] + " " * max(0, width - len(text))


def _fit(segments, width):
    """Cut segments to ``width`` visible characters."""
    out, room = [], width
    for text, sgr in segments:
        if room <= 0:
            break
        out.append((text[:room], sgr))
        room -= len(text[:room])
    return out


def render_plain(lines):
    return "\n".join("".join(text for text, _ in line).rstrip() for line in lines) + "\n"


def render_line(segments):
    out = []
    for text, sgr in segments:
        out.append("\x1b[%sm%s\x1b[0m" % (sgr, text) if sgr else text)
    return "".join(out)


# --- the terminal --------------------------------------------------------------------

ARROWS = {"\x1b[A": "UP", "\x1b[B": "DOWN", "\x1bOA": "UP", "\x1bOB": "DOWN"}


def split_keys(data):
    """Bytes typed -> keys (arrow sequences as "UP"/"DOWN")."""
    text = data.decode("utf-8", "replace")
    keys, i = [], 0
    while i < len(text):
        sequence = text[i:i + 3]
        if sequence in ARROWS:
            keys.append(ARROWS[sequence])
            i += 3
        elif text[i] == "\x1b" and text[i + 1:i + 2] in ("[", "O"):
            i += 3                        # another sequence: ignored
        else:
            keys.append(text[i])
            i += 1
    return keys


class Screen:
    """Draws frames on a terminal: only the lines that changed."""

    def __init__(self, fd):
        self.fd = fd
        self.shown = []

    def write(self, text):
        data = text.encode("utf-8", "replace")
        while data:
            data = data[os.write(self.fd, data):]

    def open(self):
        self.write("\x1b[?1049h\x1b[?25l\x1b[2J")

    def close(self):
        self.write("\x1b[0m\x1b[?25h\x1b[?1049l")

    def draw(self, lines, size):
        if len(self.shown) != len(lines) or getattr(self, "size", None) != size:
            self.shown = [None] * len(lines)
            self.size = size
            self.write("\x1b[2J")
        out = []
        for row, line in enumerate(lines):
            text = render_line(line)
            if self.shown[row] != text:
                out.append("\x1b[%d;1H%s\x1b[0m\x1b[K" % (row + 1, text))
                self.shown[row] = text
        if out:
            self.write("".join(out))


def parse_args(args):
    options = {"once": False, "shm": shmread.DEFAULT_NAME, "interval": 1.0}
    words = list(args)
    while words:
        word = words.pop(0)
        if word == "--once":
            options["once"] = True
        elif word in ("--shm", "-d", "--delay") and words:
            value = words.pop(0)
            if word == "--shm":
                options["shm"] = value
            else:
                try:
                    options["interval"] = max(0.1, float(value))
                except ValueError:
                    return None
        else:
            return None
    return options


def terminal_size(fd):
    try:
        size = os.get_terminal_size(fd)
        return size.columns, size.lines
    except OSError:
        return (int(os.environ.get("COLUMNS", "80") or 80),
                int(os.environ.get("LINES", "24") or 24))


def main(args, send, stdout=1, stdin=0):
    """``send(request line) -> first reply line``; returns the exit status."""
    options = parse_args(args)
    if options is None:
        os.write(2, b"usage: schema-ctl top [--once] [--shm NAME] [-d SECONDS]\n")
        return 2
    board = Board(utf8_terminal(os.environ))
    reader = shmread.ShmReader(options["shm"])
    uid = os.geteuid()
    if options["once"] or not os.isatty(stdin) or not os.isatty(stdout):
        snap = reader.read()
        status = shmread.supervisor_status(snap["supervisor_pid"]) if snap else {}
        width, height = terminal_size(stdout)
        if snap is not None and not os.isatty(stdout):
            height = max(height, len(snap["services"]) + 5)
        lines = board.frame(snap, status, width, height, int(time.monotonic() * 1e6),
                            time.strftime("%H:%M:%S"))
        if not os.isatty(stdout):
            lines = [line for line in lines if line]      # no screen to fill
        os.write(stdout, render_plain(lines).encode("utf-8", "replace"))
        return 0 if snap is not None else 3
    return run(board, reader, options["interval"], send, uid, stdout, stdin)


def run(board, reader, interval, send, uid, stdout, stdin):
    import _signal
    from schema_init.pid1 import _fastloop      # the terminal's raw mode
    screen = Screen(stdout)
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    old_wakeup = _signal.set_wakeup_fd(wake_w)
    old_winch = _signal.signal(_signal.SIGWINCH, lambda signo, frame: None)
    saved = _fastloop.terminal_raw(stdin)
    screen.open()
    try:
        next_read, snap, status, keep = 0.0, None, {}, True
        while keep:
            now = time.monotonic()
            if now >= next_read:
                snap = reader.read()
                status = shmread.supervisor_status(snap["supervisor_pid"]) if snap else {}
                board.note_supervisor(status, now)
                next_read = now + interval
            size = terminal_size(stdout)
            lines = board.frame(snap, status, size[0], size[1], int(now * 1e6),
                                time.strftime("%H:%M:%S"))
            screen.draw(lines, size)
            ready, _, _ = select.select([stdin, wake_r], [], [], max(0.0, next_read - now))
            if wake_r in ready:
                os.read(wake_r, 256)
            if stdin in ready:
                data = os.read(stdin, 256)
                if not data:
                    break
                names = [s["name"] for s in board.visible(snap["services"], int(now * 1e6))] \
                    if snap else []
                for key in split_keys(data):
                    keep = board.key(key, names, uid, send)
                    if not keep:
                        break
    finally:
        screen.close()
        _fastloop.terminal_restore(stdin, saved)
        _signal.signal(_signal.SIGWINCH, old_winch)
        _signal.set_wakeup_fd(old_wakeup)
        os.close(wake_r)
        os.close(wake_w)
        reader.close()
    return 0
