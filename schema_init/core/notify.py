"""sd_notify readiness: what a daemon's datagram on its NOTIFY_SOCKET means (sd_notify(3)).

Rules of this file:

* Pure: bytes and facts in, decisions out.  No sockets, no clock, no /proc: whether
  the sender (or a MAINPID= it names) belongs to the service is a fact the caller
  established (``notify_socket`` reads the kernel's SCM_CREDENTIALS and /proc).
* ``FIELDS`` is the one definition of the fields schema-init acts on; any other field
  is ignored.  The supervisor applies the decisions (``Supervisor.on_notify``).

Theory of operation.  A datagram is newline-separated ``KEY=VALUE`` assignments.
:func:`parse` turns it into a dict (the last assignment of a key wins; lines without
``=`` or with a key that is not upper case, digits and ``_`` are skipped).
:func:`decide` turns the fields and the service's facts into an ordered list of
``(verb, argument)`` decisions: a sender that does not belong to the service decides
nothing but ``("drop", why)``.
"""

DATAGRAM_MAX = 4096          # bytes read of one datagram; a longer one is dropped
STATUS_MAX = 200             # characters of STATUS= kept
PHASES = ("reloading", "stopping")

FIELDS = {
    "READY": "READY=1: the service is ready; a notify=1 service is promoted (FUNDAMENTAL) "
             "only by it; it also ends RELOADING=1",
    "STATUS": "free text shown by `schema-ctl status` (at most %d characters kept, control "
              "characters replaced)" % STATUS_MAX,
    "RELOADING": "RELOADING=1: the service is reloading (shown) until its next READY=1",
    "STOPPING": "STOPPING=1: the service is stopping (shown)",
    "MAINPID": "the service's main process is now this pid (accepted only for a process "
               "of the service: in its cgroup, its session, or a descendant of its main pid)",
    "WATCHDOG": "WATCHDOG=1 pets the service's Dead Man Token; WATCHDOG=trigger counts as "
                "a missed window now",
    "WATCHDOG_USEC": "the Dead Man window in microseconds (arms it, replacing watchdog_sec=); "
                     "0 disarms it",
    "EXTEND_TIMEOUT_USEC": "the start timeout (while FULL_TRUST) or the stop timeout (while "
                           "stopping) fires no earlier than this many microseconds from now",
    "ERRNO": "an errno number the service reports; shown by `schema-ctl status`",
}

_KEY_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
_USEC_MAX = 10 ** 15          # about 31 years: beyond it a number is nonsense


class Facts:
    """What the decision needs to know about the service a datagram came for."""

    __slots__ = ("notify", "sender_belongs", "claimed_belongs")

    def __init__(self, notify, sender_belongs, claimed_belongs=False):
        self.notify = notify                    # the service has notify=1
        self.sender_belongs = sender_belongs    # the sending pid is one of the service's
        self.claimed_belongs = claimed_belongs  # the MAINPID= pid is one of the service's


def parse(data):
    """A datagram's bytes -> ``{KEY: value}`` (the last assignment of a key wins)."""
    fields = {}
    text = data.decode("utf-8", "replace")
    for line in text.split("\n"):
        key, sep, value = line.partition("=")
        if not sep or not key or len(key) > 64 or not all(c in _KEY_CHARS for c in key):
            continue
        fields[key] = value
    return fields


def _number(text, high=_USEC_MAX):
    """A decimal number 0..high, or None."""
    if not text or len(text) > 20 or not text.isdigit() or not text.isascii():
        return None
    value = int(text)
    return value if value <= high else None


def status_text(value):
    """STATUS= as shown: one line, printable, at most STATUS_MAX characters."""
    cleaned = "".join(c if c.isprintable() else " " for c in value[:STATUS_MAX])
    return cleaned.strip()


def decide(facts, fields):
    """The decisions for one datagram, in the order they are to be applied.

    Verbs: ``drop`` (why), ``mainpid`` (pid), ``refuse_mainpid`` (pid), ``ready``,
    ``phase`` (``reloading``, ``stopping`` or None), ``status`` (text), ``errno``
    (number), ``extend`` (seconds), ``watchdog_window`` (milliseconds, 0: disarmed),
    ``pet``, ``watchdog_trigger``.
    """
    if not facts.sender_belongs:
        return [("drop", "sender is not a process of the service")]
    out = []
    if "MAINPID" in fields:
        pid = _number(fields["MAINPID"], 1 << 22)
        if pid and facts.claimed_belongs:
            out.append(("mainpid", pid))
        else:
            out.append(("refuse_mainpid", fields["MAINPID"][:20]))
    if fields.get("READY") == "1":
        out.append(("phase", None))
        if facts.notify:
            out.append(("ready", None))
    if fields.get("RELOADING") == "1":
        out.append(("phase", "reloading"))
    if fields.get("STOPPING") == "1":
        out.append(("phase", "stopping"))
    if "STATUS" in fields:
        out.append(("status", status_text(fields["STATUS"])))
    if "ERRNO" in fields:
        number = _number(fields["ERRNO"], 4095)
        if number is not None:
            out.append(("errno", number))
    if "EXTEND_TIMEOUT_USEC" in fields:
        usec = _number(fields["EXTEND_TIMEOUT_USEC"])
        if usec is not None:
            out.append(("extend", usec / 1e6))
    if "WATCHDOG_USEC" in fields:
        usec = _number(fields["WATCHDOG_USEC"])
        if usec is not None:
            out.append(("watchdog_window", (usec + 999) // 1000))
    watchdog = fields.get("WATCHDOG")
    if watchdog == "1":
        out.append(("pet", None))
    elif watchdog == "trigger":
        out.append(("watchdog_trigger", None))
    return out


def abstract_name(supervisor_pid, tag, service):
    """The abstract socket name (without the leading NUL) of a service's NOTIFY_SOCKET:
    the same for the same supervisor after a re-exec (its pid is kept), so a running
    daemon's NOTIFY_SOCKET stays valid."""
    return "schema-init/%d/%s/notify/%s" % (supervisor_pid, tag, service)
