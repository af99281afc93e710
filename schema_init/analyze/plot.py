"""The boot as a picture: a Gantt chart in SVG, one row per service.

Drawn from a ``boot.Timeline``: the kernel's own time first (as PID 1), then each
service's first spawn to its first readiness (amber: starting), from there the state
it is in now (its colour, pale: up), a tick where it settled into that state when that
came later (a failure, a stop), and for a service never ready its run in its state's
colour.  Time runs left to right from the kernel's start (or the supervisor's, when
it is not PID 1).  A plain SVG 1.1 file: any browser shows it, the names and times
are text (search, copy), each bar carries its instants as ``data-`` attributes and a
tooltip.

Pure: a timeline in, the file's text out.
"""

WIDTH = 1200
NAMES = 230                   # the names' column
RIGHT = 40
TOP = 86
ROW = 22
BAR = 14

STARTING = "#f2b134"
KERNEL = "#9e9e9e"
STATE_COLOURS = {"FUNDAMENTAL": "#2f9e55", "PERFECT": "#3f74c9", "SETTLED": "#6cc08b",
                 "NEW_PROCESS": STARTING, "FULL_TRUST": STARTING, "RECOVERY": "#ef7a2a",
                 "FRICTION": "#d9534f", "DORMANT": "#8e6cc0", "EXCISED": "#b3261e"}
LEGEND = (("kernel", KERNEL), ("starting (spawn \u2192 ready)", STARTING),
          ("FUNDAMENTAL (up)", STATE_COLOURS["FUNDAMENTAL"]),
          ("PERFECT (oneshot done)", STATE_COLOURS["PERFECT"]),
          ("RECOVERY", STATE_COLOURS["RECOVERY"]), ("FRICTION", STATE_COLOURS["FRICTION"]),
          ("DORMANT", STATE_COLOURS["DORMANT"]), ("EXCISED", STATE_COLOURS["EXCISED"]))
STEPS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600)


def escape(text):
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


def _fmt(seconds):
    if seconds >= 10 or seconds == int(seconds):
        return "%gs" % round(seconds, 1)
    return "%.2fs" % seconds if seconds < 1 else "%.1fs" % seconds


def chart_end(timeline):
    """The chart's right edge, seconds on its axis: the boot's last instant, a little
    more; later changes (a restart an hour on) are written, not drawn."""
    last = 0.0
    for s in timeline.services.values():
        for instant in (s.boot_spawned, s.boot_ready):
            if instant is not None:
                last = max(last, instant)
    last += timeline.kernel
    return max(last * 1.08, last + 0.05, 0.5)


def render(timeline, title="schema-init boot"):
    services = list(timeline.services.values())
    services.sort(key=lambda s: (s.boot_spawned is None, s.boot_spawned or 0.0, s.name))
    kernel = timeline.kernel
    end = chart_end(timeline)
    span = WIDTH - NAMES - RIGHT
    scale = span / end

    def x(instant):                 # seconds since schema-init started -> px
        return NAMES + (kernel + instant) * scale

    rows = len(services) + (1 if timeline.pid1 else 0)
    height = TOP + rows * ROW + 70
    out = ['<?xml version="1.0" encoding="UTF-8"?>',
           '<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="%d" height="%d" '
           'viewBox="0 0 %d %d" data-scale="%.6f" data-origin-x="%.3f" data-kernel="%.6f">'
           % (WIDTH, height, WIDTH, height, scale, NAMES + kernel * scale, kernel),
           '<style>text{font-family:DejaVu Sans,Verdana,sans-serif;font-size:12px;fill:#222}'
           '.title{font-size:18px;font-weight:bold}.sub{font-size:12px;fill:#555}'
           '.tick{font-size:10px;fill:#666}.grid{stroke:#e4e4e4;stroke-width:1}'
           '.name{font-size:12px}.time{font-size:11px;fill:#444}</style>',
           '<rect width="100%" height="100%" fill="#ffffff"/>',
           '<text class="title" x="16" y="28">%s</text>' % escape(title),
           '<text class="sub" x="16" y="48">%s</text>' % escape(_summary(timeline))]
    step = next((s for s in STEPS if end / s <= 14), STEPS[-1])
    decimals = 2 if step < 0.1 else 1 if step < 1 else 0
    tick = 0.0
    while tick <= end + 1e-9:
        tx = NAMES + tick * scale
        out.append('<line class="grid" x1="%.1f" y1="%d" x2="%.1f" y2="%d"/>'
                   % (tx, TOP - 10, tx, TOP + rows * ROW))
        out.append('<text class="tick" x="%.1f" y="%d" text-anchor="middle">%.*fs</text>'
                   % (tx, TOP - 14, decimals, tick))
        tick += step
    y = TOP
    if timeline.pid1:
        out.append('<g class="kernel" data-from="0" data-to="%.6f">' % kernel)
        out.append('<text class="name" x="%d" y="%d" text-anchor="end">kernel</text>'
                   % (NAMES - 8, y + BAR - 2))
        out.append('<rect x="%.2f" y="%d" width="%.2f" height="%d" fill="%s"><title>kernel: '
                   '%s before schema-init</title></rect>'
                   % (NAMES, y, max(kernel * scale, 1), BAR, KERNEL, _fmt(kernel)))
        out.append('<text class="time" x="%.1f" y="%d">%s</text></g>'
                   % (NAMES + kernel * scale + 4, y + BAR - 2, _fmt(kernel)))
        y += ROW
    for s in services:
        out += _service_row(s, y, x, end - kernel)
        y += ROW
    out += _legend(y + 24)
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _summary(timeline):
    last = timeline.last_ready()
    ready_at = timeline.services[last].boot_ready if last else None
    parts = []
    if timeline.pid1:
        parts.append("kernel %s" % _fmt(timeline.kernel))
    if ready_at is not None:
        parts.append("last service ready (%s) %s after schema-init started"
                     % (last, _fmt(ready_at)))
    if not timeline.pid1:
        parts.append("not PID 1: the time axis starts with the supervisor")
    waiting = [s.name for s in timeline.services.values() if s.boot_ready is None]
    if waiting:
        parts.append("never ready: %d" % len(waiting))
    return "; ".join(parts) or "no service has started"


def _service_row(s, y, x, end):
    colour = STATE_COLOURS.get(s.state, "#777777")
    rows = ['<g class="service" data-service="%s" data-state="%s" data-kind="%s">'
            % (escape(s.name), escape(s.state), escape(s.kind)),
            '<text class="name" x="%d" y="%d" text-anchor="end">%s</text>'
            % (NAMES - 8, y + BAR - 2, escape(s.name))]
    detail = ["%s (%s)" % (s.name, s.kind), "state: %s" % s.state]
    right = NAMES
    if s.boot_spawned is not None:
        start = s.boot_spawned
        if s.boot_ready is not None:
            # a daemon starting; a oneshot's (a timer's) run, done: its state's colour
            stop, what = s.boot_ready, "activating"
            fill = STARTING if s.kind == "daemon" else colour
        else:                         # never ready: its run in its state's colour
            stop = min(s.since if s.since is not None and s.since > start else end, end)
            fill, what = colour, "failed"
        rows.append('<rect class="%s" x="%.2f" y="%d" width="%.2f" height="%d" fill="%s" '
                    'data-from="%.6f" data-to="%.6f"/>'
                    % (what, x(start), y, max((stop - start) * (x(1) - x(0)), 1.5), BAR, fill,
                       start, stop))
        right = x(stop)
        detail.append("spawned %s" % _fmt(start))
        if s.boot_ready is not None:
            detail.append("ready %s (+%s)" % (_fmt(s.boot_ready), _fmt(s.activation)))
            if s.kind == "daemon" and end > s.boot_ready:
                rows.append('<rect class="active" x="%.2f" y="%d" width="%.2f" height="%d" '
                            'fill="%s" fill-opacity="0.35" data-from="%.6f" data-to="%.6f"/>'
                            % (x(s.boot_ready), y, (end - s.boot_ready) * (x(1) - x(0)), BAR,
                               colour, s.boot_ready, end))
    if s.since is not None and s.state in ("FUNDAMENTAL", "PERFECT", "EXCISED", "DORMANT"):
        detail.append("%s since %s" % (s.state, _fmt(s.since)))
        if s.boot_ready is not None and s.since > s.boot_ready + 1e-3 and s.since <= end:
            rows.append('<rect class="settled" x="%.2f" y="%d" width="3" height="%d" '
                        'fill="%s" data-at="%.6f"/>' % (x(s.since) - 1.5, y - 2, BAR + 4,
                                                        colour, s.since))
    if s.boot_spawned is None:
        label = "not spawned: %s" % s.state
    elif s.activation is not None:
        label = "+%s" % _fmt(s.activation)
        if s.since is not None and s.since > end and s.state not in ("FUNDAMENTAL", "PERFECT"):
            label += " (%s since %s)" % (s.state, _fmt(s.since))
    else:
        label = s.state if s.since is None else "%s since %s" % (s.state, _fmt(s.since))
    width = 7 * len(label)
    at = right + 5 if right + 5 + width <= WIDTH - 4 else max(NAMES + 2, right - 5 - width)
    rows.append('<text class="time" x="%.1f" y="%d">%s</text>' % (at, y + BAR - 2,
                                                                   escape(label)))
    rows.insert(1, "<title>%s</title>" % escape("\n".join(detail)))
    rows.append("</g>")
    return rows


def _legend(y):
    out, lx = [], 16
    for label, colour in LEGEND:
        out.append('<rect x="%d" y="%d" width="12" height="12" fill="%s"/>'
                   % (lx, y - 10, colour))
        out.append('<text x="%d" y="%d">%s</text>' % (lx + 16, y, escape(label)))
        lx += 34 + 7 * len(label)
    return out
