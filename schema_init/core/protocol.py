"""The control protocol: one definition, shared by the server and ``schema-ctl``.

Framing (kept from the original): the client sends one request line of at most
``MAX_REQUEST`` bytes; the server answers with reply lines, then a line holding a
single ``.`` (``TERMINATOR``), then closes.  ``VERBS`` lists every command: its
arguments, whether a non-root peer may run it, and its help line, from which
``schema-ctl --help`` is generated.  Replies are formatted here (``status`` and its
``--json``/``--kv`` forms, ``timing``); JSON is escaped properly.

Pure: no sockets, no OS.  ``control`` serves it, ``ctl`` speaks it.
"""

from . import schema

DEFAULT_SOCKET = "/run/schema-init.sock"
MAX_REQUEST = 4096          # bytes of one request line, newline excluded
# A reply the host gives later (a reload reads its files in slices between the loop's
# other work): the server keeps the client waiting, without its deadline, until then.
LATER = "later"
CLIENT_DEADLINE = 2.0       # seconds a client has to send its line and take its reply
MAX_CLIENTS = 64
TERMINATOR = ".\n"
CLIENT_TIMEOUT = 30         # seconds schema-ctl waits for the whole reply


class Verb:
    __slots__ = ("name", "args", "help", "read_only", "aliases")

    def __init__(self, name, args, help, read_only=False, aliases=()):
        self.name = name
        self.args = args            # "" none, "<x>" required, "[x]" optional
        self.help = help
        self.read_only = read_only  # a peer that is not root may run it
        self.aliases = aliases

    @property
    def needs_argument(self):
        return self.args.startswith("<")


VERBS = (
    Verb("status", "[--json|--kv]", "every service: pid, state, restarts", read_only=True),
    Verb("list", "", "service names", read_only=True),
    Verb("timing", "[--kv]", "seconds from start to each service's promotion (--kv: "
         "every instant and dependency, for blame, critical-chain, plot)", read_only=True),
    Verb("start", "<svc>", "queue an EXCISED or PERFECT service again", aliases=("up",)),
    Verb("stop", "<svc>", "SIGTERM it, SIGKILL after its stop timeout", aliases=("down",)),
    Verb("restart", "<svc>", "stop it and let the recovery arc respawn it"),
    Verb("reset", "[<svc>]", "clear restart counters; requeue excised/dormant/perfect ones"),
    Verb("add", "<path>", "load one more .svc file (rejected if it makes a cycle)"),
    Verb("reload", "[--evict]", "re-read the services directory"),
    Verb("pet", "<svc>", "refresh a service's Dead Man Token"),
    Verb("signal", "<svc> <sig>", "send HUP, USR1, TERM, ... to its main process only"),
    Verb("reboot", "", "stop every service and reboot the machine"),
    Verb("poweroff", "", "stop every service and power the machine off"),
    Verb("halt", "", "stop every service and halt the machine (no power-off)"),
    Verb("schedule", "<action> <seconds>", "reboot, poweroff or halt that many seconds from "
         "now (shutdown +N); replaces one already scheduled"),
    Verb("cancel", "", "cancel the scheduled shutdown (shutdown -c)"),
    Verb("reexec", "", "re-execute schema-init in place, services keep running"),
)
# Commands schema-ctl answers itself, never sent as a request: the live board reads the
# shared memory, the others ask ``timing --kv`` and draw.  native/ctlfast.c leaves them
# to the Python client (schema_ctl.h lists them).
CLIENT_VERBS = (
    Verb("top", "[--once] [--shm NAME]", "live board of every service from the shared "
         "memory (keys: s sort, f filter, r/u/d/x restart/start/stop/reset, q quit)",
         read_only=True),
    Verb("blame", "", "services by time from spawn to ready", read_only=True),
    Verb("critical-chain", "[<svc>]", "the dependencies that decided when a service "
         "became ready, with the time at each link", read_only=True),
    Verb("plot", "", "the boot as an SVG chart on standard output (> boot.svg)",
         read_only=True),
    Verb("update", "<bundle|url>", "install a signed bundle into the other A/B slot and "
         "reboot into it for one trial boot (schema-update)"),
)
_BY_WORD = {word: verb for verb in VERBS for word in (verb.name,) + verb.aliases}
READ_ONLY_VERBS = tuple(verb.name for verb in VERBS if verb.read_only)


def parse_request(request):
    """``(Verb, argument)`` for a request line, or ``(None, "")`` when it is no command."""
    word, _, argument = request.partition(" ")
    verb = _BY_WORD.get(word)
    if verb is None:
        return None, ""
    argument = argument.strip(" ")
    if verb.needs_argument and not argument or not verb.args and request != word:
        return None, ""
    return verb, argument


def may_run(request, uid):
    """A peer that is not root may run only the read-only verbs."""
    verb = _BY_WORD.get(request.split(" ", 1)[0] if request else "")
    return uid == 0 or (verb is not None and verb.read_only)


def usage(program="schema-ctl"):
    lines = ["usage: %s [--socket PATH] COMMAND [ARGS]" % program, "", "commands:"]
    for verb in VERBS + CLIENT_VERBS:
        left = ("%s %s" % (verb.name, verb.args)).strip()
        alias = "(alias %s) " % ", ".join(verb.aliases) if verb.aliases else ""
        lines.append("  %-22s %s%s" % (left, alias, verb.help))
    lines += ["", "The socket is --socket PATH, else $SCHEMA_CTL_SOCKET, else %s."
              % DEFAULT_SOCKET, ""]
    return "\n".join(lines)


def encode_reply(lines):
    """Reply lines and the terminator, as sent."""
    body = "".join(line + "\n" for line in lines) + TERMINATOR
    return body.encode("utf-8", "replace")


def decode_reply(data):
    """``(text without the terminator, complete)``: complete only when the reply ends
    with the terminator as a whole line."""
    reply = data.decode("utf-8", "replace")
    if reply == TERMINATOR:
        return "", True
    if reply.endswith("\n" + TERMINATOR):
        return reply[:-len(TERMINATOR)], True
    return reply, False


# --- formats; extra facts only where a service has a reason to show --------------------

def json_string(text):
    out = ['"']
    for ch in text:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ch < " " or ch == "\x7f":
            out.append("\\u%04x" % ord(ch))
        elif "\ud800" <= ch <= "\udfff":
            out.append("\\ufffd")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


# --- reply formats; extra facts only where a service has a reason to show -------------

def notify_facts(s):
    """What a service's sd_notify datagrams said, for the status formats: ``[(key,
    value)]`` with ``status`` (text), ``notify`` (reloading|stopping), ``errno`` and
    ``notify_dropped`` (numbers), each only when there is one."""
    facts = []
    if s.notify_status:
        facts.append(("status", s.notify_status))
    if s.notify_phase:
        facts.append(("notify", s.notify_phase))
    if s.notify_errno is not None:
        facts.append(("errno", s.notify_errno))
    if s.notify_dropped:
        facts.append(("notify_dropped", s.notify_dropped))
    return facts


def format_status(supervisor):
    services = supervisor.ordered()
    lines = ["services: %d  groups: %d" % (len(services), len(supervisor.graph.groups))]
    for s in services:
        line = "  %-24s  pid=%-6d  state=%-14s  restarts=%d" % (
            s.name, s.pid, schema.state_name(s.state), s.restarts)
        if s.reason:
            line += "  (%s)" % s.reason
        for key, value in notify_facts(s):
            line += "  %s=%s" % (key, json_string(value) if key == "status" else value)
        lines.append(line)
    lines += ["rejected: %s" % d.format() for d in supervisor.rejected]
    lines += ["dropped: %s" % d.format() for d in supervisor.dropped]
    return lines


def format_status_json(supervisor):
    services = supervisor.ordered()
    lines = ["{", '  "services_count": %d,' % len(services),
             '  "groups_count": %d,' % len(supervisor.graph.groups), '  "services": [']
    for i, s in enumerate(services):
        lines += ["    {", '      "name": %s,' % json_string(s.name),
                  '      "pid": %d,' % s.pid,
                  '      "state": "%s",' % schema.state_name(s.state)]
        if s.reason:
            lines.append('      "reason": %s,' % json_string(s.reason))
        for key, value in notify_facts(s):
            shown = json_string(value) if isinstance(value, str) else "%d" % value
            lines.append('      "%s": %s,' % (key, shown))
        lines.append('      "restarts": %d' % s.restarts)
        lines.append("    }," if i < len(services) - 1 else "    }")
    lists = [(key, items) for key, items in (("rejected", supervisor.rejected),
                                             ("dropped", supervisor.dropped)) if items]
    lines.append("  ]," if lists else "  ]")
    for n, (key, items) in enumerate(lists):
        lines.append('  "%s": [%s]%s' % (key, ", ".join(json_string(d.format()) for d in items),
                                         "," if n < len(lists) - 1 else ""))
    lines.append("}")
    return lines


def format_status_kv(supervisor):
    services = supervisor.ordered()
    lines = ["services_count=%d" % len(services), "groups_count=%d" % len(supervisor.graph.groups)]
    for s in services:
        lines += ["service.%s.pid=%d" % (s.name, s.pid),
                  "service.%s.state=%s" % (s.name, schema.state_name(s.state)),
                  "service.%s.restarts=%d" % (s.name, s.restarts)]
        if s.reason:
            lines.append("service.%s.reason=%s" % (s.name, s.reason.replace("\n", " ")))
        lines += ["service.%s.%s=%s" % (s.name, key, value) for key, value in notify_facts(s)]
    lines += ["rejected.%d=%s" % (i, d.format().replace("\n", " "))
              for i, d in enumerate(supervisor.rejected)]
    lines += ["dropped.%d=%s" % (i, d.format().replace("\n", " "))
              for i, d in enumerate(supervisor.dropped)]
    return lines


def format_timing(supervisor, kernel_to_init):
    lines = ["kernel \u2192 PID 1:            %.3fs" % kernel_to_init]
    for s in supervisor.ordered():
        if s.stable_time is not None:
            lines.append("  %-24s %.3fs" % (s.name, s.stable_time))
    return lines


# timing --kv: per service, the monotonic instants (seconds) of ``lifecycle.Service``
# shown, each only when there is one.
TIMING_INSTANTS = (("spawned", "spawned_at"), ("ready", "ready_at"),
                   ("boot_spawned", "boot_spawned_at"), ("boot_ready", "boot_ready_at"),
                   ("since", "state_since"))


def format_timing_kv(supervisor, host, now):
    """``timing --kv``: what the boot chart, ``blame`` and ``critical-chain`` read.
    Instants are seconds of the monotonic clock (as PID 1: since the kernel started);
    ``kernel_to_init`` is schema-init's start on it, ``supervisor_start`` the boot's
    origin, ``now`` the reply's moment."""
    lines = ["kernel_to_init=%.6f" % host.kernel_to_init,
             "supervisor_start=%.6f" % supervisor.started_at,
             "supervisor_pid=%d" % host.supervisor_pid, "now=%.6f" % now]
    graph = supervisor.graph
    for s in supervisor.ordered():
        spec = s.spec
        kind = "timer" if spec.is_timer else "oneshot" if spec.oneshot else "daemon"
        lines += ["service.%s.state=%s" % (s.name, schema.state_name(s.state)),
                  "service.%s.kind=%s" % (s.name, kind),
                  "service.%s.deps=%s" % (s.name, " ".join(target for _kind, target
                                                          in graph.deps.get(s.name, ())))]
        lines += ["service.%s.%s=%.6f" % (s.name, key, getattr(s, attr))
                  for key, attr in TIMING_INSTANTS if getattr(s, attr) is not None]
    lines += ["group.%s.members=%s" % (name, " ".join(group.members))
              for name, group in graph.groups.items()]
    return lines


SHUTDOWN_ACTIONS = ("reboot", "poweroff", "halt")
MAX_SCHEDULE_SECS = 366 * 86400


def parse_schedule(argument):
    """``schedule``'s argument -> ``(action, seconds)``, or ``(None, error text)``."""
    words = argument.split()
    if len(words) != 2 or words[0] not in SHUTDOWN_ACTIONS:
        return None, "usage: schedule reboot|poweroff|halt SECONDS"
    if not (words[1].isascii() and words[1].isdigit()) or len(words[1]) > 9 or \
            int(words[1]) > MAX_SCHEDULE_SECS:
        return None, "SECONDS must be a whole number from 0 to %d" % MAX_SCHEDULE_SECS
    return words[0], int(words[1])


def format_scheduled(scheduled, now):
    """The status line of a scheduled shutdown ``(action, deadline)``, or None."""
    if scheduled is None:
        return None
    action, deadline = scheduled
    return "shutdown scheduled: %s in %d s" % (action, max(0, round(deadline - now)))


def dispatch(request, uid, supervisor, host, now, wall):
    """One request -> reply lines (without the terminator).

    ``host`` provides what the supervisor cannot do itself: ``reboot()``,
    ``poweroff()``, ``halt()``, ``schedule(action, seconds, now)``, ``cancel()``,
    ``scheduled`` (``(action, deadline)`` or None), ``request_reexec()``,
    ``reload(evict, now, wall)`` (reply lines, or ``LATER``: the host answers when the
    files are read), ``kernel_to_init`` and ``supervisor_pid``.
    """
    if not may_run(request, uid):
        return ["err: '%s' requires root (uid %d has read-only access)" % (request, uid)]
    verb, argument = parse_request(request)
    name = verb.name if verb is not None else None
    if name == "status":
        if argument == "--json":
            return format_status_json(supervisor)
        if argument == "--kv":
            return format_status_kv(supervisor)
        lines = format_status(supervisor)
        scheduled = format_scheduled(host.scheduled, now)
        return lines + [scheduled] if scheduled else lines
    if name == "list":
        return [s.name for s in supervisor.ordered()]
    if name == "timing":
        if argument == "--kv":
            return format_timing_kv(supervisor, host, now)
        if argument:
            return ["err: unknown: %s" % request]
        return format_timing(supervisor, host.kernel_to_init)
    simple = {"pet": supervisor.cmd_pet, "start": supervisor.cmd_start,
              "stop": supervisor.cmd_stop, "restart": supervisor.cmd_restart,
              "reset": supervisor.cmd_reset, "signal": supervisor.cmd_signal}
    if name in simple:
        return simple[name](argument, now)
    if name == "add":
        return supervisor.cmd_add(argument, now, wall)
    if name == "reload":
        return host.reload(argument == "--evict", now, wall)
    if name == "reboot":
        host.reboot()
        return ["ok: rebooting"]
    if name == "poweroff":
        host.poweroff()
        return ["ok: powering off"]
    if name == "halt":
        host.halt()
        return ["ok: halting"]
    if name == "schedule":
        action, seconds = parse_schedule(argument)
        if action is None:
            return ["err: %s" % seconds]
        host.schedule(action, seconds, now)
        return ["ok: %s in %d s" % (action, seconds)]
    if name == "cancel":
        if host.scheduled is None:
            return ["err: no shutdown is scheduled"]
        host.cancel()
        return ["ok: shutdown cancelled"]
    if name == "reexec":
        return host.request_reexec()
    return ["err: unknown: %s" % request]


def c_header():
    """``native/schema_ctl.h``: the constants the static binary's C fast path of
    ``schema-ctl`` uses (native/ctlfast.c), from this one definition."""
    return "\n".join([
        "/* schema_ctl.h: generated by `python -m schema_init.core.protocol`; do not edit. */",
        "#ifndef SCHEMA_CTL_H", "#define SCHEMA_CTL_H", "",
        "#define SCHEMA_CTL_DEFAULT_SOCKET \"%s\"" % DEFAULT_SOCKET,
        "#define SCHEMA_CTL_MAX_REQUEST %d" % MAX_REQUEST,
        "#define SCHEMA_CTL_TERMINATOR \".\\n\"",
        "#define SCHEMA_CTL_TIMEOUT %d" % CLIENT_TIMEOUT,
        "/* answered by the Python client itself (no request is sent) */",
        "#define SCHEMA_CTL_CLIENT_VERBS %s" % ", ".join('"%s"' % verb.name
                                                       for verb in CLIENT_VERBS),
        "", "#endif", ""])


if __name__ == "__main__":
    import sys
    sys.stdout.write(c_header())
