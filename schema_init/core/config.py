"""Reading .svc and .grp files into immutable specs, with diagnostics a person can act on.

Rules of this file:

* ``SERVICE_KEYS`` is the one definition of the .svc keys: their kind, default,
  limits and meaning.  Docs and tests read it.
* Parsing never raises, whatever the bytes: every problem is a :class:`Diagnostic`
  naming file, line and key.  A file with an error is rejected as a whole; warnings
  keep it.
* Pure: bytes in, specs and diagnostics out.  Reading the files is ``loader``'s job.

Grammar (a compatible superset of the original's): one ``key=value`` per line; the
key and the value are trimmed of blanks; blank lines and lines starting with ``#`` or
``;`` are comments; a value of an ordinary key ends at a blank followed by ``#``
(an inline comment), while ``args``, ``fuse_cmd`` and ``failsafe`` keep everything
after ``=`` (shell commands and arguments are verbatim).  ``args`` and ``dep`` repeat,
one element per line.  Booleans take ``1/0``, ``yes/no``, ``true/false``,
``on/off``, and ``=0`` clears an earlier ``=1``.
"""

import sys

from . import cmdline, timers

ERROR = "error"
WARNING = "warning"

NAME_MAX = 63
PATH_MAX = 255
ARG_MAX = 4096           # one args= element (a shell script line, say)
INSTANCE_MAX = 31
USER_MAX = 31
LIST_MAX = 64            # args and deps per service, members per group
NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                       "0123456789_.@:-")
SLOT_DETECT = "slot-detect"

# Service flag word (SVC_*), as the original exports them.
SVC_ONESHOT = 0x01
SVC_NEEDS_ROOT = 0x02
SVC_CRITICAL = 0x04
SVC_NO_RESTART = 0x08
SVC_TIMER = 0x10
SVC_TIMER_CALENDAR = 0x20
SVC_TIMER_PERSIST = 0x40


class Diagnostic:
    """One problem found in a file.  ``line`` is 0 when it concerns the whole file."""

    __slots__ = ("path", "line", "key", "severity", "message")
    from_unit = False       # True for what importing a systemd unit dropped (units.py)

    def __init__(self, path, line, key, severity, message):
        self.path = path
        self.line = line
        self.key = key
        self.severity = severity
        self.message = message

    def format(self):
        where = "%s:%d" % (self.path, self.line) if self.line else self.path
        key = "%s: " % self.key if self.key else ""
        text = "%s: %s: %s%s" % (where, self.severity, key, self.message)
        # Never let odd bytes in a file break the console that prints this.
        return text.encode("utf-8", "backslashreplace").decode("utf-8")

    def sort_key(self):
        return (self.path, self.line, self.key or "", self.message)

    def __repr__(self):
        return "Diagnostic(%r)" % self.format()


class Key:
    """How one .svc key is read."""

    __slots__ = ("kind", "default", "limit", "low", "high", "help", "choices", "context")

    def __init__(self, kind, default, help, limit=None, low=None, high=None, choices=(),
                 context=False):
        self.kind = kind        # name, path, text, command, args, deps, bool, int, enum, calendar
        self.default = default
        self.help = help
        self.limit = limit      # longest value in characters, for strings
        self.low = low          # bounds, for integers
        self.high = high
        self.choices = choices  # the words an enum accepts
        self.context = context  # an execution-context key: kept in ServiceSpec.context


PRIORITIES = ("peripheral", "standard", "critical")
PARTITIONS = ("member", "root", "isolated")
NOTIFY_ACCESS = ("default", "main", "all", "none")
KILL_MODES = ("control-group", "mixed", "process")

SERVICE_KEYS = {
    "name": Key("name", "", "service name (default: the file name without .svc)", NAME_MAX),
    "exec": Key("path", "", "absolute path of the program (required); also argv[0]", PATH_MAX),
    "args": Key("args", (), "one argv element per line, verbatim", ARG_MAX),
    "dep": Key("deps", (), "a service or group this one waits for; repeatable", NAME_MAX),
    "after": Key("deps", (), "a service or group this one starts after while it is "
                 "starting (systemd's After=): not waited for once it failed, nor when "
                 "no service has the name; repeatable", NAME_MAX),
    "oneshot": Key("bool", False, "exit 0 means done (PERFECT)"),
    "needs_root": Key("bool", False, "refuse to spawn unless schema-init runs as root"),
    "critical": Key("bool", False, "never excised; an EXCISED critical dep blocks dependents"),
    "no_restart": Key("bool", False, "any death excises the service"),
    "session": Key("bool", False, "a getty: exit 0 after promotion is a logout, respawned at "
                   "once without a failure"),
    "max_restarts": Key("int", 5, "consecutive failed runs before FRICTION", low=0, high=1000000),
    "stable_secs": Key("int", 10, "promote a daemon after this many seconds", low=0, high=86400 * 365),
    "ready_path": Key("path", "", "promote when this path appears after the spawn; "
                      "gone over 2 s kills", PATH_MAX),
    "ready_poll_hz": Key("int", 0, "accepted for compatibility (ready_path is watched, not polled)",
                         low=0, high=1000),
    "priority": Key("enum", "standard", "critical | standard | peripheral: nice and cgroup weight",
                    choices=PRIORITIES),
    "fuse": Key("bool", False, "excise when a dependency enters FRICTION or EXCISED"),
    "fuse_cmd": Key("command", "", "/bin/sh -c command run when the fuse trips", PATH_MAX),
    "failsafe": Key("command", "", "/bin/sh -c command run on death, start timeout, readiness loss",
                    PATH_MAX),
    "failsafe_timeout_ms": Key("int", 500, "SIGKILL the failsafe after this (0 means 500)",
                               low=0, high=86400000),
    "no_excise": Key("bool", False, "like critical, for excision decisions only"),
    "watchdog_timeout_ms": Key("int", 0, "Dead Man window: pet within this or the machine resets",
                               low=0, high=86400000),
    "notify": Key("bool", False, "sd_notify readiness: promoted only by READY=1 on its "
                  "NOTIFY_SOCKET (stable_secs and ready_path are not used)"),
    "notify_access": Key("enum", "default", "who is heard on NOTIFY_SOCKET: default (the "
                         "main process, or a process of the service running as root or as "
                         "its user) | main (the main process only) | all (any process of the "
                         "service, whatever its user: systemd's NotifyAccess=all) | none",
                         choices=NOTIFY_ACCESS),
    "watchdog_sec": Key("int", 0, "Dead Man window in seconds, petted by WATCHDOG=1 on "
                        "NOTIFY_SOCKET; exported as WATCHDOG_USEC and WATCHDOG_PID",
                        low=0, high=86400),
    "cpu_limit": Key("int", 0, "percent of one CPU (1-100) written to cpu.max; 0 = none",
                     low=0, high=100),
    "mem_limit": Key("int", 0, "MiB written to memory.max; 0 = none", low=0, high=1 << 40),
    "cpuset": Key("text", "", "CPUs written to cpuset.cpus", 63),
    "cpuset_partition": Key("enum", "member", "member | root | isolated (needs cpuset)",
                            choices=PARTITIONS),
    "allowed_slot_min": Key("int", -1, "slot gate lower bound (-1 = no gate)", low=-1, high=1 << 31),
    "allowed_slot_max": Key("int", -1, "slot gate upper bound (-1 = unbounded)", low=-1, high=1 << 31),
    "start_timeout_sec": Key("int", -1, "kill if not promoted/finished in N s (-1: 90 for oneshots)",
                             low=-1, high=86400 * 365),
    "stop_timeout_sec": Key("int", 10, "SIGKILL this long after SIGTERM when stopping",
                            low=0, high=86400),
    "kill_mode": Key("enum", "control-group", "control-group: stop every process of the "
                     "service | mixed: SIGTERM the main process, SIGKILL the rest | process: "
                     "only the main process (sshd's sessions outlive a restart)",
                     choices=KILL_MODES),
    "on_boot_sec": Key("int", None, "timer: first fire N s after boot", low=0, high=86400 * 3650),
    "on_active_sec": Key("int", None, "timer: period after each completion", low=0,
                         high=86400 * 3650),
    "on_calendar": Key("calendar", None, "timer: HH:MM, 'Ddd HH:MM' or 'D HH:MM', local time"),
    "randomized_delay_sec": Key("int", 0, "timer: each fire is delayed by up to N s, "
                                "chosen anew each time (spreads a fleet's runs)", low=0,
                                high=86400 * 365),
    "persistent": Key("bool", False, "calendar timer: catch up a missed fire at boot"),
    "user": Key("name", "", "run as this user (unknown user: the spawn is refused)", USER_MAX),
    "env": Key("env", (), "KEY=VALUE added to the service's environment (repeatable; "
               "env_file= values win, as in systemd)", ARG_MAX),
    "env_file": Key("optpath", (), "a file of KEY=VALUE lines (systemd's EnvironmentFile= "
                    "format) read at each spawn; -/path: a missing file is skipped, else it "
                    "fails the spawn; repeatable", PATH_MAX),
    "workdir": Key("optpath", "", "working directory (default /); -/path: carry on in / "
                   "when it cannot be entered, else that fails the spawn", PATH_MAX),
    "listen": Key("listen", (), "socket activation: a socket made before the service starts "
                  "and passed as fd 3.. (LISTEN_FDS): /path or stream:/path, dgram:/path, "
                  "tcp:[ADDR:]PORT, udp:[ADDR:]PORT, then options: ipv6only (an IPv6 "
                  "socket taking no IPv4: [::]:111 beside 0.0.0.0:111), mode=OCTAL, "
                  "user=NAME, group=NAME (this unix socket's, instead of socket_*=); "
                  "repeatable", PATH_MAX),
    "listen_on_demand": Key("bool", False, "not started at boot: started by the first "
                            "connection or datagram on one of its listen= sockets"),
    "socket_mode": Key("mode", 0o666, "permissions of listen= unix socket files (octal)"),
    "socket_user": Key("name", "", "owner of listen= unix socket files (unknown: the spawn "
                       "is refused)", USER_MAX),
    "socket_group": Key("name", "", "group of listen= unix socket files (unknown: the "
                        "spawn is refused)", USER_MAX),
    # -- The command set around exec= (docs/spec.md, "Command lines"): run by the
    # lifecycle in this order, each a control process of the service.
    "condition": Key("cmdlines", (), "run before each start; exit 1-254: the start is "
                     "skipped, not failed (systemd's ExecCondition=); repeatable", ARG_MAX),
    "exec_pre": Key("cmdlines", (), "run before each start, in order; a failure fails the "
                    "start unless the line begins with - (ExecStartPre=); repeatable", ARG_MAX),
    "exec_post": Key("cmdlines", (), "run once the service is started (ready, or its "
                     "process forked for a daemon without readiness) (ExecStartPost=)", ARG_MAX),
    "exec_reload": Key("cmdlines", (), "run by a reload instead of SIGHUP (ExecReload=)",
                       ARG_MAX),
    "exec_stop": Key("cmdlines", (), "run to stop the service, before the kill "
                     "(ExecStop=); repeatable", ARG_MAX),
    "exec_stop_post": Key("cmdlines", (), "run after the service stopped or failed "
                          "(ExecStopPost=); repeatable", ARG_MAX),
    "restart": Key("enum", "", "which ends restart it: no | always | on-success | "
                   "on-failure | on-abnormal | on-abort | on-watchdog (systemd's Restart=); "
                   "unset: schema-init's weights decide, as for any .svc", choices=(
                       "", "no", "always", "on-success", "on-failure", "on-abnormal",
                       "on-abort", "on-watchdog")),
    "success_exit_status": Key("statuses", (), "exit codes and signal names that count "
                               "as a clean end besides 0 (SuccessExitStatus=)", ARG_MAX),
    "restart_prevent_exit_status": Key("statuses", (), "ends that never restart "
                                       "(RestartPreventExitStatus=)", ARG_MAX),
    "restart_force_exit_status": Key("statuses", (), "ends that always restart "
                                     "(RestartForceExitStatus=)", ARG_MAX),
    "remain_after_exit": Key("bool", False, "a oneshot stays started after it exits 0: "
                             "exec_stop= runs when it is stopped (RemainAfterExit=)"),
    "forking": Key("bool", False, "exec= forks the daemon and exits 0: the daemon (from "
                   "pid_file= or the one process left) becomes the main process"),
    "pid_file": Key("path", "", "forking: the daemon's pid is read here (PIDFile=)", PATH_MAX),
    "kill_signal": Key("signal", 15, "the signal that stops the service (KillSignal=)"),
    "part_of": Key("names", (), "a service whose stop and restart (by an operator) stop "
                   "and restart this one too, a restart only when this one runs "
                   "(PartOf=); repeatable", NAME_MAX),
    "reload_from": Key("names", (), "a service whose reload reloads this one too "
                       "(ReloadPropagatedFrom=); repeatable", NAME_MAX),
    "no_reload": Key("bool", False, "a reload is refused, not a SIGHUP (a unit without "
                     "ExecReload=)"),
    "send_sigkill": Key("bool", True, "SIGKILL what is left after stop_timeout_sec "
                        "(SendSIGKILL=)"),
    # -- The execution context: applied by schema-exec between fork and exec (these
    # live together in ServiceSpec.context; PID 1 passes them on, unread).
    "limit": Key("rlimit", (), "NAME=SOFT[:HARD] resource limit set before the user drop: "
                 "NAME as in setrlimit (nofile, nproc, core, memlock...), a number or "
                 "infinity (the kernel's maximum); repeatable", 80, context=True),
    "group": Key("name", "", "run with this primary group (default: the user's)", USER_MAX,
                 context=True),
    "supplementary_group": Key("names", (), "an extra group; repeatable", USER_MAX,
                               context=True),
    "umask": Key("mode", 0o022, "the file mode creation mask (octal)", context=True),
    "nice": Key("int", None, "nice value -20..19 (instead of priority='s)", low=-20, high=19,
                context=True),
    "oom_score_adj": Key("int", None, "written to /proc/PID/oom_score_adj", low=-1000,
                         high=1000, context=True),
    "runtime_dir": Key("dirs", (), "a directory made under /run with owner user:group "
                       "before each start, removed when the service stops; repeatable",
                       PATH_MAX, context=True),
    "runtime_dir_mode": Key("mode", 0o755, "mode of runtime_dir= directories", context=True),
    "runtime_dir_preserve": Key("enum", "no", "no | yes | restart: keep runtime_dir= when "
                                "the service stops (restart: only across a restart)",
                                choices=("no", "yes", "restart"), context=True),
    "state_dir": Key("dirs", (), "a directory made under /var/lib (kept); repeatable",
                     PATH_MAX, context=True),
    "state_dir_mode": Key("mode", 0o755, "mode of state_dir= directories", context=True),
    "cache_dir": Key("dirs", (), "a directory made under /var/cache (kept); repeatable",
                     PATH_MAX, context=True),
    "cache_dir_mode": Key("mode", 0o755, "mode of cache_dir= directories", context=True),
    "logs_dir": Key("dirs", (), "a directory made under /var/log (kept); repeatable",
                    PATH_MAX, context=True),
    "logs_dir_mode": Key("mode", 0o755, "mode of logs_dir= directories", context=True),
    "config_dir": Key("dirs", (), "a directory made under /etc (kept); repeatable",
                      PATH_MAX, context=True),
    "config_dir_mode": Key("mode", 0o755, "mode of config_dir= directories", context=True),
    "expand_args": Key("bool", False, "$VAR and ${VAR} in args= are replaced from the "
                       "service's environment at each start", context=True),
    "no_new_privs": Key("bool", False, "PR_SET_NO_NEW_PRIVS: no setuid gain "
                        "(NoNewPrivileges=)", context=True),
    "private_tmp": Key("bool", False, "a private /tmp and /var/tmp (PrivateTmp=)",
                       context=True),
    "private_devices": Key("bool", False, "a private /dev with only the pseudo devices "
                           "(PrivateDevices=)", context=True),
    "private_network": Key("bool", False, "a network namespace with only lo "
                           "(PrivateNetwork=)", context=True),
    "protect_system": Key("enum", "no", "no | yes | full | strict: /usr and /boot (yes), "
                          "and /etc (full), or all but /dev /proc /sys (strict) read-only",
                          choices=("no", "yes", "full", "strict"), context=True),
    "protect_home": Key("enum", "no", "no | yes | read-only | tmpfs: /home, /root and "
                        "/run/user hidden, read-only or empty", choices=(
                            "no", "yes", "read-only", "tmpfs"), context=True),
    "read_write_paths": Key("paths", (), "writable in spite of protect_system= "
                            "(-/path: skipped if missing); repeatable", PATH_MAX,
                            context=True),
    "read_only_paths": Key("paths", (), "read-only (-/path: skipped if missing); "
                           "repeatable", PATH_MAX, context=True),
    "inaccessible_paths": Key("paths", (), "hidden (-/path: skipped if missing); "
                              "repeatable", PATH_MAX, context=True),
    "protect_kernel_tunables": Key("bool", False, "/proc/sys, /sys and the like "
                                   "read-only (ProtectKernelTunables=)", context=True),
    "protect_kernel_modules": Key("bool", False, "no module loading, /usr/lib/modules "
                                  "hidden (ProtectKernelModules=)", context=True),
    "protect_control_groups": Key("bool", False, "/sys/fs/cgroup read-only "
                                  "(ProtectControlGroups=)", context=True),
    "cap_bounding": Key("caps", "", "the capability bounding set: names (cap_net_bind_service"
                        " ...) kept, or ~names dropped (CapabilityBoundingSet=)", 2000,
                        context=True),
    "ambient_caps": Key("caps", "", "capabilities kept across the user drop "
                        "(AmbientCapabilities=)", 2000, context=True),
    "restrict_address_families": Key("families", "", "socket families allowed (AF_UNIX "
                                     "AF_INET ...), or ~families refused; seccomp "
                                     "(RestrictAddressFamilies=)", 2000, context=True),
}

# How many listen= lines a service may have.
LISTEN_MAX = 16
# Keys that repeat and keep every line (besides args, dep and listen).
REPEATED_KEYS = ("env", "env_file", "condition", "exec_pre", "exec_post", "exec_reload",
                 "exec_stop", "exec_stop_post", "part_of", "reload_from", "success_exit_status",
                 "restart_prevent_exit_status", "restart_force_exit_status", "limit",
                 "supplementary_group", "runtime_dir", "state_dir", "cache_dir", "logs_dir",
                 "config_dir", "read_write_paths", "read_only_paths", "inaccessible_paths")
# Keys whose lines each hold a list of words, kept as one flat tuple.
FLAT_KEYS = ("success_exit_status", "restart_prevent_exit_status",
             "restart_force_exit_status")
# The execution-context keys (ServiceSpec.context), in SERVICE_KEYS order.
CONTEXT_KEYS = tuple(key for key, rule in SERVICE_KEYS.items() if rule.context)
# The Linux signal numbers (the same on x86_64, aarch64 and arm).
SIGNALS = {"HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "TRAP": 5, "ABRT": 6, "BUS": 7,
           "FPE": 8, "KILL": 9, "USR1": 10, "SEGV": 11, "USR2": 12, "PIPE": 13, "ALRM": 14,
           "TERM": 15, "STKFLT": 16, "CHLD": 17, "CONT": 18, "STOP": 19, "TSTP": 20,
           "TTIN": 21, "TTOU": 22, "URG": 23, "XCPU": 24, "XFSZ": 25, "VTALRM": 26,
           "PROF": 27, "WINCH": 28, "IO": 29, "PWR": 30, "SYS": 31}
# setrlimit's resources by the names limit= takes (RLIMIT_NAME, Linux numbering).
RLIMITS = {"cpu": 0, "fsize": 1, "data": 2, "stack": 3, "core": 4, "rss": 5, "nproc": 6,
           "nofile": 7, "memlock": 8, "as": 9, "locks": 10, "sigpending": 11,
           "msgqueue": 12, "nice": 13, "rtprio": 14, "rttime": 15}
INFINITY = -1             # limit=NAME=infinity: the kernel's maximum
ENV_NAME_START = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_")
ENV_NAME_CHARS = ENV_NAME_START | frozenset("0123456789")

# Keys of the original's later era: a file carrying them still loads (with a warning).
LATER_ERA_KEYS = frozenset(("keep_caps", "landlock_ro", "landlock_rw", "stop_first"))

GROUP_KEYS = ("name", "member")
# A problem with these makes a service meaningless: its file is rejected.  Any other
# key's bad value falls back to the default with a warning, so a typo never loses a
# service.  What to run (exec, args) is never guessed; and a bad on_calendar is an
# error too, as its default would turn a periodic job into a daemon restarted for ever.
MEANINGFUL_KEYS = frozenset(("name", "exec", "args", "on_calendar"))
# At most this many diagnostics per file are kept (a summary line says how many more).
MAX_DIAGNOSTICS_PER_FILE = 20
# A file with more key=value lines than this is not a service or group file (the
# largest real one has about 160: every key, 64 args, 64 deps): it is rejected after
# reading this many, so no file costs the loop more than a few milliseconds.
MAX_SETTINGS_PER_FILE = 1000
MAX_LINES_PER_FILE = 20000        # comments and blank lines included


def field_name(key):
    """The ServiceSpec attribute a key fills (``dep=`` lines make ``deps``)."""
    return "deps" if key == "dep" else key


SPEC_FIELDS = tuple(field_name(key) for key, rule in SERVICE_KEYS.items()
                    if not rule.context) + ("context",)

_BOOL_WORDS = {"1": True, "yes": True, "true": True, "on": True,
               "0": False, "no": False, "false": False, "off": False}


NO_LINES = {}     # shared by specs whose later diagnostics need no line numbers


class ServiceSpec:
    """One service as its file describes it.  Immutable: replace, never mutate."""

    __slots__ = SPEC_FIELDS + (
        "instance", "path", "content_hash", "lines", "is_timer", "is_calendar", "flags")
    DERIVED = ("is_timer", "is_calendar", "flags")

    def __init__(self, **fields):
        context = dict(fields.pop("context", ()))
        for key, rule in SERVICE_KEYS.items():
            field = field_name(key)
            if rule.context:
                value = fields.pop(key, context.get(key, rule.default))
                if value != rule.default:
                    context[key] = value
                else:
                    context.pop(key, None)
                continue
            object.__setattr__(self, field, fields.pop(field, rule.default))
        # Only the keys set away from their default, in SERVICE_KEYS order: most
        # services have none, and share the empty tuple.
        object.__setattr__(self, "context", tuple(
            (key, context[key]) for key in CONTEXT_KEYS if key in context))
        object.__setattr__(self, "instance", fields.pop("instance", ""))
        object.__setattr__(self, "path", fields.pop("path", ""))
        object.__setattr__(self, "content_hash", fields.pop("content_hash", 0))
        object.__setattr__(self, "lines", fields.pop("lines", {}))
        is_calendar = self.on_calendar is not None
        is_timer = is_calendar or self.on_boot_sec is not None or self.on_active_sec is not None
        object.__setattr__(self, "is_timer", is_timer)
        object.__setattr__(self, "is_calendar", is_calendar)
        if is_timer:
            object.__setattr__(self, "oneshot", True)
        if self.start_timeout_sec < 0:
            default = 90 if self.oneshot and not is_timer else 0
            object.__setattr__(self, "start_timeout_sec", default)
        if fields:
            raise TypeError("unknown ServiceSpec fields: %s" % ", ".join(sorted(fields)))
        word = 0          # the shm flag word, computed once (it is published often)
        for on, bit in ((self.oneshot, SVC_ONESHOT), (self.needs_root, SVC_NEEDS_ROOT),
                        (self.critical, SVC_CRITICAL), (self.no_restart, SVC_NO_RESTART),
                        (is_timer, SVC_TIMER), (is_calendar, SVC_TIMER_CALENDAR),
                        (self.persistent, SVC_TIMER_PERSIST)):
            if on:
                word |= bit
        object.__setattr__(self, "flags", word)

    def __setattr__(self, key, value):
        raise AttributeError("ServiceSpec is immutable")

    def __getattr__(self, key):
        """An execution-context key (``spec.umask``): its value, or its default."""
        rule = SERVICE_KEYS.get(key)
        if rule is None or not rule.context:
            raise AttributeError(key)
        for name, value in self.context:
            if name == key:
                return value
        return rule.default

    def replace(self, **changes):
        fields = {key: getattr(self, key) for key in self.__slots__
                  if key not in self.DERIVED}
        fields.update(changes)
        return ServiceSpec(**fields)

    def line_of(self, key):
        return self.lines.get(key, 0)

    def __eq__(self, other):
        return isinstance(other, ServiceSpec) and all(
            getattr(self, k) == getattr(other, k) for k in SPEC_FIELDS)

    def __hash__(self):
        return hash(self.name)

    def __repr__(self):
        return "ServiceSpec(%s)" % self.name


def wants_notify_socket(spec):
    """Whether the service gets a NOTIFY_SOCKET: notify=1 (READY=1 promotes it) or
    watchdog_sec= (WATCHDOG=1 pets it).  The one rule: the spawn, a re-exec's adoption
    and ``notify_socket`` all ask here.  (Here, not in ``notify``: that module is loaded
    only once a service uses the socket.)"""
    return spec.notify or spec.watchdog_sec > 0


class GroupSpec:
    """One group: a name and its members, in declared order."""

    __slots__ = ("name", "members", "path", "lines")

    def __init__(self, name, members, path="", lines=None):
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "members", tuple(members))
        object.__setattr__(self, "path", path)
        object.__setattr__(self, "lines", lines or {})

    def __setattr__(self, key, value):
        raise AttributeError("GroupSpec is immutable")

    def line_of_member(self, member):
        return self.lines.get(member, 0)

    def __repr__(self):
        return "GroupSpec(%s, %r)" % (self.name, self.members)


def name_problem(text, limit=NAME_MAX):
    """Why ``text`` is not a valid service/group/user name, or None."""
    if not text:
        return "is empty"
    if len(text) > limit:
        return "is %d characters long; the limit is %d" % (len(text), limit)
    for ch in text:
        if ch not in NAME_CHARS:
            return "contains %r; names use only letters, digits and _ . @ : -" % ch
    return None


def _closest_key(word, keys):
    """A likely intended key for a typo, by edit distance (no difflib in PID 1).

    Only keys within two characters of the word's length can be within distance 2, so
    a long word costs nothing: no file can make this slow."""
    best, best_distance = None, 3
    for key in keys:
        if abs(len(key) - len(word)) >= best_distance:
            continue
        previous = list(range(len(key) + 1))
        for i, a in enumerate(word, 1):
            current = [i]
            for j, b in enumerate(key, 1):
                current.append(min(previous[j] + 1, current[j - 1] + 1,
                                   previous[j - 1] + (a != b)))
            previous = current
        if previous[-1] < best_distance:
            best, best_distance = key, previous[-1]
    return best


def shown(value, limit=40):
    """A value quoted for a message, cut short: a diagnostic stays one readable line."""
    if len(value) > limit:
        return repr(value[:limit]) + "... (%d characters)" % len(value)
    return repr(value)


def default_text(key, rule):
    """A key's default as a person would write it in a .svc file."""
    if key == "start_timeout_sec":
        return "90 for oneshots, else none"
    if rule.default is True or rule.default is False:
        return "1" if rule.default else "0"
    if rule.default is None or rule.default == "" or rule.default == ():
        return "unset"
    if rule.kind == "mode":
        return "%04o" % rule.default
    return str(rule.default)


def too_many_settings(path, line):
    if line > MAX_LINES_PER_FILE:
        what = "%d lines" % MAX_LINES_PER_FILE
    else:
        what = "%d key=value lines" % MAX_SETTINGS_PER_FILE
    return Diagnostic(path, line, None, ERROR, "more than %s: not a service or group "
                      "file; rejected" % what)


def capped(diags, path):
    """Keep a file's first MAX_DIAGNOSTICS_PER_FILE diagnostics (errors first)."""
    if len(diags) <= MAX_DIAGNOSTICS_PER_FILE:
        return diags
    ordered = sorted(diags, key=lambda d: (d.severity != ERROR, d.line))
    kept = ordered[:MAX_DIAGNOSTICS_PER_FILE]
    more = len(diags) - len(kept)
    kept.append(Diagnostic(path, 0, None, WARNING, "%d more problem%s not shown"
                           % (more, "" if more == 1 else "s")))
    return kept


class TooManySettings(Exception):
    pass


def _split_lines(data):
    """Yield (line number, key, raw value, problem) for each meaningful line.

    Raises TooManySettings after MAX_SETTINGS_PER_FILE of them."""
    text = data.decode("utf-8", "surrogateescape")
    lines = text.split("\n", MAX_LINES_PER_FILE)
    if len(lines) > MAX_LINES_PER_FILE:
        raise TooManySettings(MAX_LINES_PER_FILE + 1)
    settings = 0
    for number, line in enumerate(lines, 1):
        if line.endswith("\r"):
            line = line[:-1]
        if not line or line[0] in "#;":
            continue                  # the common comment and blank line, cheaply
        stripped = line.strip(" \t")
        if not stripped or stripped[0] in "#;":
            continue
        settings += 1
        if settings > MAX_SETTINGS_PER_FILE:
            raise TooManySettings(number)
        key, sep, value = line.partition("=")
        if not sep:
            yield number, None, stripped, "line has no '=' and is ignored"
            continue
        # Interned: every spec's line table shares one copy of each key name.
        yield number, sys.intern(key.strip(" \t")), value, None


def _strip_comment(value):
    """The value before an inline comment: a '#' after a blank."""
    cuts = [at for at in (value.find(" #"), value.find("\t#")) if at >= 0]
    return value[:min(cuts) + 1] if cuts else value


def _control_char(value):
    if value.isprintable():                # the usual case, at C speed
        return None
    for ch in value:
        if ch < " " and ch != "\t" or ch == "\x7f":
            return ch
    return None


def _convert(key, rule, raw):
    """(value, error message) for one raw value of a .svc key."""
    value = raw.strip(" \t") if rule.kind in ("args", "command") else _strip_comment(raw).strip(" \t")
    bad = _control_char(value)
    if bad is not None:
        return None, "value contains the control character %r" % bad
    if rule.limit is not None and len(value) > rule.limit:
        return None, "value is %d characters long; the limit is %d" % (len(value), rule.limit)
    kind = rule.kind
    if kind == "bool":
        word = _BOOL_WORDS.get(value.lower())
        if word is None:
            return None, "%s is not a boolean (use 1 or 0)" % shown(value)
        return word, None
    if kind == "int":
        digits = value[1:] if value[:1] in "+-" else value
        if not digits or not digits.isdigit() or not digits.isascii():
            return None, "%s is not a whole number" % shown(value)
        if len(digits) > 18:                     # int() refuses beyond 4300 digits
            return None, "%s is out of range (%d to %d)" % (shown(value), rule.low, rule.high)
        number = int(value)
        if number < rule.low or number > rule.high:
            return None, "%d is out of range (%d to %d)" % (number, rule.low, rule.high)
        return number, None
    if kind == "mode":
        if not value or len(value) > 4 or any(c not in "01234567" for c in value):
            return None, "%s is not an octal file mode (e.g. 0660)" % shown(value)
        return int(value, 8), None
    if kind == "listen":
        listen, reason = parse_listen(value)
        if listen is None:
            return None, "%s: %s" % (shown(value), reason)
        return listen, None
    if kind == "env":
        name, eq, text = value.partition("=")
        if not eq or not env_name_ok(name):
            return None, "%s is not NAME=VALUE (a name of letters, digits and _)" % shown(value)
        return (name, text), None
    if kind == "optpath":
        if key == "workdir" and value.lstrip("-") == "~":
            return value, None                  # the user's home (WorkingDirectory=~)
        if value and not value.lstrip("-").startswith("/") or value[:2] == "--":
            return None, "%s is not an absolute path (or -/path)" % shown(value)
        return value, None
    if kind == "enum":
        word = value.lower()
        if word not in rule.choices:
            return None, "%s is not one of %s" % (
                shown(value), ", ".join(word for word in rule.choices if word))
        return word, None
    if kind in _CONVERTERS:
        return _CONVERTERS[kind](key, rule, value)
    if kind == "calendar":
        calendar, reason = timers.parse_calendar(value)
        if calendar is None:
            return None, "bad value %s (%s)" % (shown(value), reason)
        return calendar, None
    if kind in ("name", "deps"):
        limit = USER_MAX if key in ("user", "socket_user", "socket_group") else NAME_MAX
        if value == "" and kind == "name":
            return "", None
        problem = name_problem(value, limit)
        if problem:
            return None, "%s %s" % (shown(value), problem)
        return value, None
    if kind == "path":
        if value and not value.startswith("/"):
            return None, "%s is not an absolute path" % shown(value)
        if key == "exec" and (" " in value or "\t" in value):
            return None, "%s contains a blank; give arguments with args= lines" % shown(value)
        return value, None
    return value, None      # text, command, args


def _convert_cmdline(key, rule, value):
    command, reason = cmdline.split(value)
    if command is None:
        return None, "%s: %s" % (shown(value), reason)
    return command, None


def _signal_number(word):
    """A signal by name (TERM, SIGTERM) or number (1-64), or None."""
    upper = word.upper()
    if upper.startswith("SIG"):
        upper = upper[3:]
    if upper in SIGNALS:
        return SIGNALS[upper]
    if upper.isdigit() and upper.isascii() and len(upper) <= 2 and 0 < int(upper) <= 64:
        return int(upper)
    return None


def _convert_signal(key, rule, value):
    number = _signal_number(value)
    if number is None:
        return None, "%s is not a signal (a name such as TERM or SIGINT)" % shown(value)
    return number, None


def _convert_statuses(key, rule, value):
    """Exit codes 0-255 and signal names; a signal is kept as its negative number."""
    out = []
    for word in value.split():
        if word.isdigit() and word.isascii():
            if len(word) > 3 or int(word) > 255:
                return None, "%s is not an exit code (0-255)" % shown(word)
            out.append(int(word))
            continue
        number = _signal_number(word) if not word.isdigit() else None
        if number is None:
            return None, "%s is not an exit code (0-255) or a signal name" % shown(word)
        out.append(-number)
    return tuple(out), None


def _limit_number(text):
    if text == "infinity":
        return INFINITY
    if not text or not text.isdigit() or not text.isascii() or len(text) > 19:
        return None
    number = int(text)
    return number if number < 1 << 63 else None


def _convert_rlimit(key, rule, value):
    name, eq, numbers = value.partition("=")
    name = name.strip().lower()
    if not eq or name not in RLIMITS:
        return None, "%s is not NAME=SOFT[:HARD] (NAME one of %s)" % (
            shown(value), " ".join(RLIMITS))
    soft_text, colon, hard_text = numbers.strip().partition(":")
    soft = _limit_number(soft_text)
    hard = _limit_number(hard_text) if colon else soft
    if soft is None or hard is None:
        return None, "%s: a limit is a number below 2^63 or infinity" % shown(value)
    if hard != INFINITY and (soft == INFINITY or soft > hard):
        return None, "%s: the soft limit is above the hard one" % shown(value)
    return (name, soft, hard), None


def _convert_names(key, rule, value):
    problem = name_problem(value, rule.limit or USER_MAX)
    if problem:
        return None, "%s %s" % (shown(value), problem)
    return value, None


def _convert_dirs(key, rule, value):
    """A directory below /run, /var/lib ...: relative, no . or .. part, no //."""
    parts = value.split("/")
    if not value or value.startswith("/") or any(p in ("", ".", "..") for p in parts):
        return None, "%s is not a relative path of named parts (no /, ., ..)" % shown(value)
    return value, None


def _convert_paths(key, rule, value):
    path = value[1:] if value[:1] in "-+" else value
    if not path.startswith("/") or any(p in (".", "..") for p in path.split("/")):
        return None, "%s is not an absolute path (or -/path)" % shown(value)
    return value, None


def _convert_words(key, rule, value, prefix, check):
    words = value.split()
    if not words:
        return "", None
    inverted = words[0].startswith("~")
    if inverted:
        words[0] = words[0][1:]
        if not words[0]:
            words.pop(0)
    for word in words:
        if not check(word):
            return None, "%s is not %s" % (shown(word), prefix)
    return ("~" if inverted else "") + " ".join(words), None


def _is_cap(word):
    low = word.lower()
    return low.startswith("cap_") and len(low) > 4 and all(
        c in "abcdefghijklmnopqrstuvwxyz_" for c in low[4:])


def _is_family(word):
    return word == "none" or word.startswith("AF_") and len(word) > 3 and all(
        c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_" for c in word[3:])


_CONVERTERS = {
    "cmdlines": _convert_cmdline,
    "signal": _convert_signal,
    "statuses": _convert_statuses,
    "rlimit": _convert_rlimit,
    "names": _convert_names,
    "dirs": _convert_dirs,
    "paths": _convert_paths,
    "caps": lambda key, rule, value: _convert_words(
        key, rule, value.lower(), "a capability name (cap_...)", _is_cap),
    "families": lambda key, rule, value: _convert_words(
        key, rule, value, "an address family (AF_UNIX, AF_INET ...)", _is_family),
}

_DECIMAL = frozenset("0123456789")
_HEX = frozenset("0123456789abcdefABCDEF")


def _ipv4_literal(text):
    """TEXT is a dotted-quad IPv4 address (four numbers 0..255, no leading zeros)."""
    parts = text.split(".")
    return len(parts) == 4 and all(
        part and len(part) <= 3 and set(part) <= _DECIMAL and
        (part == "0" or part[0] != "0") and int(part) <= 255 for part in parts)


def _ipv6_literal(text):
    """TEXT is an IPv6 address in the textual forms of RFC 4291 (groups of 1..4 hex
    digits, at most one ``::``, an IPv4 address as the last 32 bits); no zone (%IF)."""
    if text.count("::") > 1:
        return False
    head, gap, tail = text.partition("::")
    groups = (head.split(":") if head else []) + (tail.split(":") if tail else [])
    width = len(groups)
    if groups and "." in groups[-1] and (tail or not gap):
        if not _ipv4_literal(groups.pop()):
            return False
        width += 1                     # the IPv4 address is two groups' worth
    if not all(group and len(group) <= 4 and set(group) <= _HEX for group in groups):
        return False
    return width < 8 if gap else width == 8


def numeric_host(host):
    """HOST is "" (every address) or a numeric IPv4 or IPv6 address: binding it looks
    nothing up."""
    return host == "" or _ipv4_literal(host) or _ipv6_literal(host)


LISTEN_OPTIONS = ("ipv6only", "mode", "user", "group", "name")
FD_NAME_MAX = 255         # sd_listen_fds(3): a name of at most 255 characters


def parse_listen(value):
    """A listen= value as ``(kind, address)``, or ``(kind, address, options)`` when
    options follow it: kind is unix-stream, unix-dgram, tcp or udp; the address a path,
    or ``(host, port)`` (host "" for every address); options ``((name, value), ...)`` in
    ``LISTEN_OPTIONS`` order: ``("ipv6only", True)``, ``("mode", 0o660)``, ``("user",
    NAME)``, ``("group", NAME)``, ``("name", FDNAME)`` (the socket's name in
    LISTEN_FDNAMES, systemd's FileDescriptorName=).  Returns ``(listen, None)`` or ``(None, reason)``.

    Options are the blank-separated words at the end that are one (``ipv6only``,
    ``mode=``, ``user=``, ``group=``), so a unix path with a blank in it still reads as
    it always did.  A host must be a numeric IPv4 or IPv6 address: a name would have to
    be looked up (DNS, /etc/hosts) by PID 1 when it makes the socket, which may block
    its loop or find nothing early in boot; it is refused here, with the reason."""
    address, found = value, {}
    while True:
        head, _, last = address.replace("\t", " ").rpartition(" ")
        name, eq, text = last.partition("=")
        if not head.strip(" ") or name not in LISTEN_OPTIONS or bool(eq) == (name == "ipv6only"):
            break
        if name in found:
            return None, "the option %s is given twice" % name
        if name == "mode":
            if not text or len(text) > 4 or any(c not in "01234567" for c in text):
                return None, "mode=%s is not an octal file mode (e.g. 0660)" % text
            found[name] = int(text, 8)
        elif name == "name":
            if not 0 < len(text) <= FD_NAME_MAX or \
                    any(not " " < c < "\x7f" or c == ":" for c in text):
                return None, ("name=%s: a socket's name is 1 to %d printable ASCII "
                              "characters without ':'" % (text[:80], FD_NAME_MAX))
            found[name] = text
        elif name in ("user", "group"):
            problem = name_problem(text, USER_MAX)
            if problem:
                return None, "%s=%s %s" % (name, text, problem)
            found[name] = text
        else:
            found[name] = True
        address = head.rstrip(" \t")
    listen, reason = _parse_listen_address(address)
    if listen is None:
        return None, reason
    kind = listen[0]
    if "ipv6only" in found and not (kind in ("tcp", "udp") and
                                    (not listen[1][0] or ":" in listen[1][0])):
        return None, "ipv6only is for a tcp: or udp: socket on [ADDR] or every address"
    if any(name in found for name in ("mode", "user", "group")) and \
            not kind.startswith("unix-"):
        return None, "mode=, user= and group= are a unix socket file's"
    if not found:
        return listen, None
    return listen + (tuple((name, found[name]) for name in LISTEN_OPTIONS
                           if name in found),), None


def listen_options(listen):
    """The options of a parsed listen= value as a dict ({} for none)."""
    return dict(listen[2]) if len(listen) > 2 else {}


def _parse_listen_address(value):
    scheme, colon, rest = value.partition(":")
    if value.startswith("/"):
        scheme, rest = "stream", value
    elif not colon:
        return None, "give /path, stream:/path, dgram:/path, tcp:[ADDR:]PORT or udp:[ADDR:]PORT"
    if scheme in ("stream", "dgram"):
        if not rest.startswith("/"):
            return None, "a unix socket needs an absolute path"
        return ("unix-" + scheme, rest), None
    if scheme not in ("tcp", "udp"):
        return None, "unknown socket kind %r (stream, dgram, tcp, udp)" % scheme
    if " " in rest or "\t" in rest:
        word = rest.replace("\t", " ").split(" ")[-1]
        return None, "%r is not an option (ipv6only, mode=, user=, group=, name=)" % word
    host, port = "", rest
    if rest.startswith("["):
        host, close, port = rest[1:].partition("]")
        if not close or not port.startswith(":"):
            return None, "an IPv6 address is written [ADDR]:PORT"
        port = port[1:]
        if not _ipv6_literal(host):
            return None, "%r is not a numeric IPv6 address (no zone, no name)" % host
    elif ":" in rest:
        host, _, port = rest.rpartition(":")
        if ":" in host:
            return None, "an IPv6 address is written [ADDR]:PORT"
        if not _ipv4_literal(host):
            return None, ("%r is not a numeric IPv4 address: host names are not looked up "
                          "(give the address, or [ADDR] for IPv6)" % host)
    if not port.isdigit() or not port.isascii() or not 0 < int(port) < 65536:
        return None, "the port must be a number from 1 to 65535"
    return (scheme, (host, int(port))), None


def parse_service(path, data, file_name=None):
    """Parse one .svc file's bytes.  Returns ``(ServiceSpec or None, [Diagnostic])``.

    None is returned for a file with errors and for a template (``x@.svc``), which is
    checked but never loaded itself.  ``file_name`` (``x.svc``) names the service
    instead of ``path``'s last part (an imported unit's path is its unit file's).
    """
    diags = []

    def report(line, key, severity, message):
        diags.append(Diagnostic(path, line, key, severity, message))

    fields = {}
    lines = {}
    args, deps, afters, listens = [], [], [], []
    repeated = {key: [] for key in REPEATED_KEYS}
    rejected = set()            # keys whose value was refused: not also "missing"
    try:
        settings = list(_split_lines(data))
    except TooManySettings as exc:
        return None, [too_many_settings(path, exc.args[0])]
    for number, key, raw, problem in settings:
        if problem:
            report(number, None, WARNING, problem)
            continue
        rule = SERVICE_KEYS.get(key)
        if rule is None:
            if key in LATER_ERA_KEYS:
                report(number, key, WARNING, "not supported by this schema-init; ignored")
            elif not key:
                report(number, None, WARNING, "line has an empty key; ignored")
            else:
                hint = _closest_key(key, SERVICE_KEYS) \
                    if len(diags) < MAX_DIAGNOSTICS_PER_FILE else None
                report(number, key, WARNING, "unknown key" +
                       (" (did you mean '%s'?)" % hint if hint else "") + "; ignored")
            continue
        value, problem = _convert(key, rule, raw)
        if problem:
            rejected.add(key)
            if key in MEANINGFUL_KEYS:
                report(number, key, ERROR, problem)
            elif rule.kind in ("args", "deps", "listen") or key in REPEATED_KEYS:
                report(number, key, WARNING, problem + "; this line is ignored")
            else:
                report(number, key, WARNING, "%s; using the default (%s)"
                       % (problem, default_text(key, rule)))
            continue
        if rule.kind == "listen":
            if len(listens) >= LISTEN_MAX or value in listens:
                report(number, key, WARNING, "more than %d listen lines or one given twice; "
                       "this one is ignored" % LISTEN_MAX)
                continue
            listens.append(value)
            continue
        if key in repeated:
            if len(repeated[key]) >= LIST_MAX:
                report(number, key, WARNING, "more than %d %s lines; this one is ignored"
                       % (LIST_MAX, key))
                continue
            repeated[key].append(value)
            continue
        if rule.kind in ("args", "deps"):
            target = args if rule.kind == "args" else deps if key == "dep" else afters
            if len(target) >= LIST_MAX:
                if key in MEANINGFUL_KEYS:
                    report(number, key, ERROR, "more than %d %s lines" % (LIST_MAX, key))
                else:
                    report(number, key, WARNING, "more than %d %s lines; this one is ignored"
                           % (LIST_MAX, key))
                continue
            if rule.kind == "deps" and value in target:
                report(number, key, WARNING, "'%s' is listed twice" % value)
                continue
            target.append(value)
            lines.setdefault(key, number)
            if rule.kind == "deps":
                lines[key + ":" + value] = number
            continue
        if key in fields:
            report(number, key, WARNING, "given again (first on line %d); this later value wins"
                   % lines[key])
        fields[key] = value
        lines[key] = number

    base = file_name or path.rsplit("/", 1)[-1]
    base = base[:-4] if base.endswith(".svc") else base
    prefix, at, instance = base.partition("@")
    is_template = bool(at) and not instance
    name = fields.get("name", "")
    if at and instance:
        problem = name_problem(instance, INSTANCE_MAX)
        if problem:
            report(0, None, ERROR, "instance %r %s" % (instance, problem))
        name = base
    elif not name:
        name = base
    if not is_template:
        problem = name_problem(name)
        if problem:
            report(lines.get("name", 0), "name", ERROR, "service name %r %s" % (name, problem))
    if not fields.get("exec") and "exec" not in rejected:
        report(lines.get("exec", 0), "exec", ERROR, "missing: every service needs exec=/path")

    if fields.get("cpuset_partition", "member") != "member" and not fields.get("cpuset"):
        report(lines["cpuset_partition"], "cpuset_partition", WARNING,
               "set without cpuset= (no cores to isolate); using member")
        fields["cpuset_partition"] = "member"
    if fields.get("persistent") and fields.get("on_calendar") is None:
        report(lines["persistent"], "persistent", WARNING,
               "needs on_calendar (catch-up only applies to calendar timers); ignored")
        fields["persistent"] = False
    slot_min = fields.get("allowed_slot_min", -1)
    slot_max = fields.get("allowed_slot_max", -1)
    if slot_min < 0 <= slot_max:
        report(lines["allowed_slot_max"], "allowed_slot_max", WARNING,
               "has no effect without allowed_slot_min")
    if 0 <= slot_max < slot_min:
        report(lines["allowed_slot_max"], "allowed_slot_max", WARNING,
               "%d is below allowed_slot_min=%d: no slot could ever run this; using the "
               "default (-1: no upper bound)" % (slot_max, slot_min))
        fields["allowed_slot_max"] = -1
    timer = any(fields.get(k) is not None for k in ("on_boot_sec", "on_active_sec", "on_calendar"))
    if fields.get("ready_path") and (fields.get("oneshot") or timer):
        report(lines["ready_path"], "ready_path", WARNING,
               "ignored for oneshots and timers (they are done when they exit 0)")
    if fields.get("listen_on_demand") and not listens:
        report(lines["listen_on_demand"], "listen_on_demand", WARNING,
               "needs listen= lines (a socket to wait on); ignored")
        fields["listen_on_demand"] = False
    if fields.get("notify") and fields.get("ready_path"):
        report(lines["ready_path"], "ready_path", WARNING,
               "ignored with notify=1 (READY=1 on NOTIFY_SOCKET promotes)")
        fields["ready_path"] = ""
    for key, names in (("dep", deps), ("after", afters)):
        if name in names:
            report(lines[key + ":" + name], key, WARNING,
                   "a service cannot depend on itself; this line is ignored")
            names.remove(name)

    diags = capped(diags, path)
    if is_template or any(d.severity == ERROR for d in diags):
        return None, diags
    # Kept: only the lines later diagnostics name (dependencies, the name); most specs
    # then share one empty table.
    kept = {key: number for key, number in lines.items()
            if key == "name" or key.startswith(("dep:", "after:"))} or NO_LINES
    for key in FLAT_KEYS:
        repeated[key] = [word for line in repeated[key] for word in line]
    fields.update((key, tuple(values)) for key, values in repeated.items())
    fields.update(name=name, args=tuple(args), deps=tuple(deps), after=tuple(afters),
                  listen=tuple(listens),
                  instance=instance if at else "",
                  path=path, content_hash=hash(data), lines=kept)
    return ServiceSpec(**fields), diags


def parse_group(path, data):
    """Parse one .grp file's bytes.  Returns ``(GroupSpec or None, [Diagnostic])``."""
    diags = []
    name, name_line = None, 0
    members, member_lines = [], {}
    try:
        settings = list(_split_lines(data))
    except TooManySettings as exc:
        return None, [too_many_settings(path, exc.args[0])]
    for number, key, raw, problem in settings:
        if problem:
            diags.append(Diagnostic(path, number, None, WARNING, problem))
            continue
        if key not in GROUP_KEYS:
            hint = _closest_key(key, GROUP_KEYS) \
                if key and len(diags) < MAX_DIAGNOSTICS_PER_FILE else None
            message = ("unknown key in a group file" +
                       (" (did you mean '%s'?)" % hint if hint else "")) if key else \
                "line has an empty key"
            diags.append(Diagnostic(path, number, key or None, WARNING, message + "; ignored"))
            continue
        value, problem = _convert(key, SERVICE_KEYS["name"], raw)
        if not problem and not value:
            problem = "is empty"
        if problem:
            severity = ERROR if key == "name" else WARNING
            diags.append(Diagnostic(path, number, key, severity, problem if key == "name"
                                    else problem + "; this member is ignored"))
            continue
        if key == "name":
            if name is not None and name != value:
                diags.append(Diagnostic(path, number, key, WARNING,
                                        "given again (first on line %d); this later value wins"
                                        % name_line))
            name, name_line = value, number
        elif value in member_lines:
            diags.append(Diagnostic(path, number, key, WARNING, "'%s' is listed twice" % value))
        elif len(members) >= LIST_MAX:
            diags.append(Diagnostic(path, number, key, WARNING, "more than %d members; this "
                                    "one is ignored" % LIST_MAX))
        else:
            members.append(value)
            member_lines[value] = number
    if name is None:
        diags.append(Diagnostic(path, 0, "name", ERROR, "missing: every group needs name="))
    diags = capped(diags, path)
    if any(d.severity == ERROR for d in diags):
        return None, diags
    member_lines["name"] = name_line
    return GroupSpec(name, members, path, member_lines), diags


class LoadResult:
    """Everything read from one services directory."""

    __slots__ = ("services", "groups", "diagnostics", "directory")

    def __init__(self, directory, services, groups, diagnostics):
        self.directory = directory
        self.services = services          # [ServiceSpec], in file-name order
        self.groups = groups              # [GroupSpec], in file-name order
        self.diagnostics = diagnostics

    @property
    def errors(self):
        return [d for d in self.diagnostics if d.severity == ERROR]


def is_config_file(entry):
    """Whether a directory entry is a .svc or .grp file to read."""
    return len(entry) >= 5 and (entry.endswith(".svc") or entry.endswith(".grp"))


def parse_directory(directory, files):
    """Parse a directory's files: ``files`` is ``[(entry name, bytes or None, reason)]``
    in any order (``reason`` says why a file could not be read).  Returns a LoadResult."""
    return combine_directory(directory, [parse_entry(directory, entry, data, reason)
                                         for entry, data, reason in files])


def parse_entry(directory, entry, data, reason):
    """One file of a directory: ``(entry, spec or None, diagnostics)``.  The costly
    part of a directory's parse, one file at a time, so a reload can be done in slices
    between the loop's other work (``combine_directory`` puts them together)."""
    path = directory.rstrip("/") + "/" + entry
    if data is None:
        return entry, None, [Diagnostic(path, 0, None, ERROR, "cannot read: %s" % reason)]
    if entry.endswith(".svc"):
        spec, found = parse_service(path, data)
    else:
        spec, found = parse_group(path, data)
    return entry, spec, found


def combine_directory(directory, parsed):
    """``parse_entry`` results (any order) -> the directory's LoadResult: the first
    file by name wins a name; a group named like a service is said."""
    diags = []
    services, groups = [], []
    seen = {}
    for entry, spec, found in sorted(parsed, key=lambda f: f[0]):
        path = directory.rstrip("/") + "/" + entry
        diags.extend(found)
        if spec is None:
            continue
        kind = "service" if isinstance(spec, ServiceSpec) else "group"
        other = seen.get((kind, spec.name))
        if other is not None:
            line = spec.lines.get("name", 0)
            diags.append(Diagnostic(path, line, "name", ERROR,
                                    "%s '%s' is already defined by %s; this file is ignored"
                                    % (kind, spec.name, other)))
            continue
        seen[(kind, spec.name)] = path
        (services if kind == "service" else groups).append(spec)
    service_names = {s.name for s in services}
    for group in groups:
        if group.name in service_names:
            diags.append(Diagnostic(group.path, group.lines.get("name", 0), "name", WARNING,
                                    "a service is also called '%s'; dep= names mean the service"
                                    % group.name))
    diags.sort(key=Diagnostic.sort_key)
    return LoadResult(directory, services, groups, diags)


def unreadable_directory(directory, reason):
    return LoadResult(directory, [], [], [Diagnostic(
        directory, 0, None, ERROR, "cannot read the services directory: %s" % reason)])


def parse_service_file(path, data, reason=None):
    """One file given to ``add``: ``data`` None means it could not be read (``reason``)."""
    if data is None:
        return None, [Diagnostic(path, 0, None, ERROR, "cannot read: %s" % reason)]
    if not path.rsplit("/", 1)[-1].endswith(".svc"):
        return None, [Diagnostic(path, 0, None, ERROR, "a service file's name must end in .svc")]
    return parse_service(path, data)


def env_name_ok(name):
    return bool(name) and name[0] in ENV_NAME_START and all(c in ENV_NAME_CHARS for c in name)


def parse_environment_file(data):
    """An ``env_file=`` (systemd's EnvironmentFile=): ``[(key, value)]`` in file order.

    ``KEY=VALUE`` lines, an optional ``export `` before the key; blanks around the key
    and before the value are dropped; ``#``/``;`` lines are comments; a value in
    double quotes keeps its blanks and takes backslash escapes (``\\" \\\\ \\$``), one
    in single quotes is taken as it is; an unquoted value loses its trailing blanks,
    and a backslash at its end joins the next line.  Other lines are skipped."""
    pairs = []
    lines = data.decode("utf-8", "surrogateescape").replace("\r\n", "\n").split("\n")
    i = 0
    while i < len(lines) and len(pairs) < MAX_SETTINGS_PER_FILE:
        line = lines[i].lstrip(" \t")
        i += 1
        if not line or line[0] in "#;":
            continue
        if line.startswith("export "):
            line = line[7:].lstrip(" \t")
        key, eq, value = line.partition("=")
        key = key.rstrip(" \t")
        if not eq or not env_name_ok(key):
            continue
        value = value.lstrip(" \t")
        if value[:1] in ("'", '"'):
            quote, text, out = value[0], value[1:], []
            while True:
                end = text.find(quote)
                while quote == '"' and end > 0 and _escaped(text, end):
                    end = text.find(quote, end + 1)
                if end >= 0 or i >= len(lines):
                    break
                text += "\n" + lines[i]          # a quoted value goes on over lines
                i += 1
            body = text[:end] if end >= 0 else text
            if quote == '"':
                for at, ch in enumerate(body):
                    if ch == "\\" and at + 1 < len(body) and body[at + 1] in '"\\$`\n' and \
                            not (out and out[-1] is None):
                        out.append(None)           # the escape itself: the next char stays
                        continue
                    out.append(ch)
                body = "".join(c for c in out if c is not None)
            pairs.append((key, body))
            continue
        while value.endswith("\\") and i < len(lines):
            value = value[:-1] + lines[i].lstrip(" \t")
            i += 1
        pairs.append((key, value.rstrip(" \t")))
    return pairs


def _escaped(text, at):
    """Whether the character at ``at`` is preceded by an odd number of backslashes."""
    count = 0
    while at - count - 1 >= 0 and text[at - count - 1] == "\\":
        count += 1
    return count % 2 == 1


def parse_env_file(data):
    """The ``/run/schema-init/env`` format: ``[(key, value)]`` in file order.

    One ``KEY=VALUE`` a line; the line, the key and the value are trimmed of blanks;
    blank lines, ``#`` lines and lines without ``=`` are skipped; no quoting.
    """
    pairs = []
    for line in data.decode("utf-8", "surrogateescape").split("\n"):
        line = line.strip(" \t\r")
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key = key.strip(" \t")
        if not sep or not key or "\x00" in line:
            continue
        pairs.append((key, value.strip(" \t")))
    return pairs
