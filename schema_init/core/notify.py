"""sd_notify readiness: what a daemon's datagram on its NOTIFY_SOCKET means (sd_notify(3)).

Rules of this file:

* Pure: bytes and facts in, decisions out.  No sockets, no clock, no /proc: the
  sender's credentials come from the kernel (SCM_CREDENTIALS, read by
  ``notify_socket``); whether the sender (or a MAINPID= it names) belongs to the
  service, and a named pid's uid, are facts the caller established from /proc.
* ``FIELDS`` is the one definition of the fields schema-init acts on; any other field
  is ignored.  The supervisor applies the decisions (``Supervisor.on_notify``).
* Trust follows the service's own credentials (docs/security.md, "notify"): the
  cheap verdict :func:`standing` comes first and needs no /proc read, so a flood
  from another user costs PID 1 no file read at all.

Theory of operation.  A datagram arrives with its sender's pid and uid.
:func:`standing` sorts the sender by those alone: the service's main process
(``MAIN``), a process of root or of the uid the service runs as, which may be one of
the service's (``KIN``: its membership is then checked, which reads /proc, at most
``CHECK_RATE`` times a second per service, ``Budget``), or anyone else (``FOREIGN``:
dropped unread).  A datagram is newline-separated ``KEY=VALUE`` assignments.
:func:`parse` turns it into a dict (the last assignment of a key wins; lines without
``=`` or with a key that is not upper case, digits and ``_`` are skipped).
:func:`decide` turns the fields and the service's facts into an ordered list of
``(verb, argument)`` decisions: a sender that does not belong to the service decides
nothing but ``("drop", why)``; ``MAINPID=`` moves the main process only as
:func:`mainpid_allowed` says.
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
               "of the service: in its cgroup, its session, or a descendant of its main "
               "pid; and, unless the main process or root sent it, running as the "
               "service's own uid)",
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

# What :func:`standing` makes of a sender.
MAIN = "main"                 # the service's main process: heard, no /proc read
KIN = "kin"                   # root or the service's uid: heard if it is the service's
FOREIGN = "foreign"           # any other uid: dropped before any /proc read

# Membership checks (each reads /proc) a service's datagrams may cost: CHECK_RATE a
# second, CHECK_BURST at once.  Datagrams from the main process cost none.
CHECK_RATE = 50.0
CHECK_BURST = 100.0
# Datagrams read from one NOTIFY_SOCKET: READ_RATE a second, READ_BURST at once; past
# that the socket is left unread (out of the loop's epoll set) for READ_PAUSE seconds,
# its datagrams waiting in it, so a flood costs PID 1 a bounded share of a CPU.
READ_RATE = 200.0
READ_BURST = 400.0
READ_PAUSE = 0.1


def standing(sender_pid, sender_uid, main_pid, service_uid, access="default"):
    """MAIN, KIN or FOREIGN for a datagram from SENDER_PID running as SENDER_UID (the
    kernel's SCM_CREDENTIALS), for a service whose main process is MAIN_PID (0: none)
    and whose processes run as SERVICE_UID (None: unknown), under the service's
    ``notify_access=`` ACCESS.

    By default the main process is heard whatever its uid (a daemon may drop its
    privileges itself).  Any other sender must run as root or as the service's uid: a
    process of another user below the service (a login session under sshd) decides
    nothing, not even a STATUS=, so it can neither forge the service's state nor make
    PID 1 read /proc for it.  ``main`` hears the main process only, ``none`` nobody;
    ``all`` (a unit's NotifyAccess=all: squid's workers, which drop to the proxy user
    themselves, say READY=1) hears a sender of any uid that proves to be of the
    service (KIN: its membership is checked, within the service's budget)."""
    if sender_pid <= 0 or access == "none":
        return FOREIGN
    if main_pid > 0 and sender_pid == main_pid:
        return MAIN
    if access == "main":
        return FOREIGN
    if access == "all" or sender_uid == 0 or \
            (service_uid is not None and sender_uid == service_uid):
        return KIN
    return FOREIGN


class Budget:
    """A token bucket: RATE a second, at most BURST saved up (by default the membership
    checks, /proc reads, one service's datagrams may still cost)."""

    __slots__ = ("tokens", "at", "rate", "burst")

    def __init__(self, now, rate=CHECK_RATE, burst=CHECK_BURST):
        self.tokens = burst
        self.at = now
        self.rate = rate
        self.burst = burst

    def available(self, now):
        """The tokens there are now."""
        if now > self.at:
            self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
            self.at = now
        return self.tokens

    def take(self, now, count=1):
        """Take COUNT tokens if there are as many now; whether they were taken."""
        if self.available(now) >= count:
            self.tokens -= count
            return True
        return False


class Facts:
    """What the decision needs to know about the service a datagram came for."""

    __slots__ = ("notify", "sender_belongs", "claimed_belongs", "sender_main", "sender_uid",
                 "service_uid", "claimed_uids")

    def __init__(self, notify, sender_belongs, claimed_belongs=False, sender_main=False,
                 sender_uid=0, service_uid=0, claimed_uids=None):
        self.notify = notify                    # the service has notify=1
        self.sender_belongs = sender_belongs    # the sending pid is one of the service's
        self.claimed_belongs = claimed_belongs  # the MAINPID= pid is one of the service's
        self.sender_main = sender_main          # the sender is the service's main process
        self.sender_uid = sender_uid            # the sender's uid (SCM_CREDENTIALS)
        self.service_uid = service_uid          # the uid the service's processes run as
        self.claimed_uids = claimed_uids        # the MAINPID= pid's (real, effective) uids


def mainpid_allowed(facts):
    """Whether a MAINPID= naming a pid may move the service's main process.

    The named pid must be one of the service's.  Named by the main process itself or by
    root, that is enough (systemd takes a new main pid outside the service from a
    privileged sender; we ask membership of root too).  Named by another process of the
    service's uid, the named process must run as that uid as well (real and effective):
    the service's credentials vouch for it, not the sender's word."""
    if not facts.claimed_belongs:
        return False
    if facts.sender_main or facts.sender_uid == 0:
        return True
    uids = facts.claimed_uids
    return facts.service_uid is not None and bool(uids) and \
        all(uid == facts.service_uid for uid in uids)


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
        if pid and mainpid_allowed(facts):
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
