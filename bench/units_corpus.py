#!/usr/bin/env python3
"""The unit corpus, RUN (issue 21): every unit a Debian 12 server's packages enable,
booted under a real schema-init and classified by what happened to it.

    python3 bench/units_corpus.py [--source worktree|HEAD|binary] [--boot-secs 60]
                                  [--units NAME,...] [--overlay DIR] [--no-report]

What it does (as root; ``make bench-units``):

1. ``bench/corpus/fetch.sh`` (the packages' own files, indexed) and
   ``bench/corpus/mkroot.sh`` (the Debian 12 roots with every package of
   ``bench/corpus/packages.txt`` installed, units enabled by their postinst), both
   cached in ``$CORPUS_CACHE`` (default /var/cache/schema-init-build/corpus).
2. For each root and each ``boot=`` group of it: an overlay on the cached root (the
   cache is never written), the other groups' enablement links hidden (daemons that take
   the same port by default are not booted together), ``schema-init`` put in as the .deb
   puts it (``/usr/sbin/schema-init`` and its names, ``/usr/bin/systemctl``; from this
   checkout run by the root's python3, or ``build/out/schema-init``), the services
   directory being services/debian made fit for a container (below), and the
   packages' generators run into directories of their own (to know which package's
   generator wanted what).  Then schema-init is PID 1 of new PID, mount, network,
   UTS, IPC and cgroup namespaces, pivot_root'ed into that root: /proc (its /proc/sys
   read-only but for net), a read-only sysfs, a /dev of a few host nodes (null, zero,
   random, tun, fuse ...: not the host's disks), tmpfs /run and /tmp, loopback up, and
   without CAP_SYS_TIME, CAP_SYS_MODULE and CAP_MAC_ADMIN in the bounding set (the clock,
   the kernel's modules and AppArmor are the host's).  It boots for ``--boot-secs``
   (less when every service has settled), every timer's job is then started once
   (``schema-ctl start``), and the harness reads ``schema-ctl status --json`` and
   ``timing --kv`` through the control socket, each service's log, the listening
   sockets of the namespace (/proc/net of its PID 1), and what ``schema-init
   import-units`` says of the same root; then ``schema-ctl poweroff``.
3. Which units are wanted is decided here, independently of the importer, the way
   systemd decides it: from default.target, every ``.wants/``/``.requires/`` link,
   ``Wants=``/``Requires=``/``BindsTo=``/``Upholds=``, a socket's or timer's service,
   the generators' output, and the LSB scripts enabled in /etc/rc[2-5].d that no unit
   replaces.  Each wanted unit is then classified (``classify``):

   works     its service reached FUNDAMENTAL (a oneshot or a timer's job PERFECT), no
             line of it dropped; or it was not run because a condition of its own is
             false, as systemd would not run it
   degraded  it runs, but the importer reported lines it did not apply (listed)
   broken    it did not run: EXCISED / FRICTION / never started, or not imported (why:
             the state's reason, the last lines of its log, the importer's diagnostic)
   missing   wanted, but no service and no word of it anywhere: a silent loss
   container it cannot run in a container (a condition that says so, a capability the
             container does not have, the log naming the kernel facility it lacks)
   replaced  schema-init or the services directory does its job by design (a .svc of
             the same name, systemd's own machinery, the early boot)

4. Writes ``bench/REPORT-units.md`` (the table per package, the counts, the directives
   dropped most; the "before" section of the previous report is kept) and
   ``bench/results/units-corpus.json``.
"""

import argparse
import datetime
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
CORPUS = os.path.join(HERE, "corpus")
PACKAGES_TXT = os.path.join(CORPUS, "packages.txt")
REPORT = os.path.join(HERE, "REPORT-units.md")
RESULTS = os.path.join(HERE, "results", "units-corpus.json")
HEAVY_LOCK = "/tmp/schema-heavy.lock"
LOG_KEPT = 2000              # characters of a service's log kept with its unit (the JSON)
CLASSES = ("works", "degraded", "broken", "missing", "container", "replaced")
SETTLED_STATES = ("FUNDAMENTAL", "PERFECT", "EXCISED", "DORMANT", "FRICTION")
GOOD_STATES = ("FUNDAMENTAL", "PERFECT")
DROPPED_CAPS = ("sys_time", "sys_module", "mac_admin")
NAMES = ("schema-ctl", "schema-subreaper", "schema-journald", "schema-metrics",
         "schema-powerkey", "reboot", "poweroff", "halt", "shutdown", "telinit", "runlevel")
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# The unit search path, systemd's order (systemd.unit(5)); the generators' output
# directories are added where their kind goes.
UNIT_DIRS = ("/etc/systemd/system", "/run/systemd/system", "/usr/local/lib/systemd/system",
             "/lib/systemd/system", "/usr/lib/systemd/system")
GENERATOR_DIRS = ("/lib/systemd/system-generators", "/usr/lib/systemd/system-generators")
UNIT_KINDS = (".service", ".socket", ".timer", ".path", ".mount", ".automount", ".swap")
# What a standard target pulls in when the root has no file for it (no systemd package).
TARGET_FALLBACK = {
    "default.target": ("multi-user.target",),
    "graphical.target": ("multi-user.target",),
    "multi-user.target": ("basic.target", "getty.target"),
    "basic.target": ("sysinit.target", "sockets.target", "timers.target", "paths.target"),
    "sysinit.target": ("local-fs.target", "swap.target"),
}
RUN_LEVELS = ("rc2.d", "rc3.d", "rc4.d", "rc5.d")
NOT_SCRIPTS = ("README", "skeleton", "rc", "rcS", "rc.local")

# services/debian made fit for a container: what is kept of it, and what becomes a
# oneshot that does nothing (the namespace has no disks to check or mount, no devices
# for udev, no interfaces but lo; sysctl, modules and the hostname are the host's).
KEEP_SVC = ("basic.grp", "network.grp", "network-online.grp", "tmpfiles.svc",
            "machine-id.svc", "dbus.svc", "boot-record.svc")
STUB_SVC = {
    "udev-trigger": "no devices to trigger in a container",
    "check-root": "the root is an overlay the harness made",
    "mount-all": "no /etc/fstab filesystems in a container",
    "modules": "the kernel's modules are the host's",
    "sysctl": "the kernel's settings are the host's",
    "hostname": "the UTS namespace's hostname is set by the harness",
    "networking": "only lo, brought up by the harness",
}
# The units of the early boot that the services directory (services/debian) does itself.
EARLY_DONE_BY = {
    "systemd-tmpfiles-setup.service": "tmpfiles.svc",
    "systemd-tmpfiles-setup-dev.service": "tmpfiles.svc",
    "systemd-tmpfiles-setup-dev-early.service": "tmpfiles.svc",
    "systemd-sysctl.service": "sysctl.svc",
    "systemd-modules-load.service": "modules.svc",
    "kmod-static-nodes.service": "udev.svc",
    "systemd-udevd.service": "udev.svc",
    "systemd-udev-trigger.service": "udev-trigger.svc",
    "systemd-udev-settle.service": "udev-trigger.svc",
    "systemd-remount-fs.service": "check-root.svc",
    "systemd-fsck-root.service": "check-root.svc",
    "systemd-machine-id-commit.service": "machine-id.svc",
    "systemd-random-seed.service": "random-seed.svc",
    "systemd-update-utmp.service": "boot-record.svc",
    "systemd-update-utmp-runlevel.service": "boot-record.svc",
    "systemd-hostnamed.service": None, "networking.service": "networking.svc",
    "ifupdown-pre.service": "networking.svc",
    "systemd-journal-flush.service": "schema-init's own logs (RUN/log/NAME.log)",
    "systemd-journald.service": "schema-init's own logs (RUN/log/NAME.log)",
    "systemd-logind.service": None,
}
# A dropped line as import-units writes it into a .svc file ("# Not carried over:").
NOT_CARRIED = re.compile(r"^#\s+(/\S+):(\d+): ([A-Za-z][\w.-]*)=.*? \(([^()]*(?:\([^()]*\)"
                         r"[^()]*)*)\)$", re.M)
# Log lines that say the container lacks a kernel facility (not schema-init's doing).
CONTAINER_SIGNS = (
    (r"(?i)module .* not found|modprobe|insmod|FATAL: Module", "needs a kernel module"),
    (r"(?i)apparmor.*(not (enabled|available|mounted)|securityfs)|/sys/kernel/security",
     "AppArmor is the host kernel's"),
    (r"(?i)audit.*(netlink|Connection refused|Protocol not supported)|"
     r"Error sending (status|enable) request", "the audit netlink is the host's only"),
    (r"(?i)adjtimex|clock_settime|settimeofday|Operation not permitted.*(clock|time)",
     "the clock is the host's (CAP_SYS_TIME dropped)"),
    (r"(?i)no (smart|ata|scsi) devices|no devices to monitor|unable to open device",
     "needs hardware"),
    (r"(?i)/proc/sys/(kernel|vm|fs).*Read-only file system", "kernel settings are the host's"),
    (r"(?i)/dev/(kvm|ipmi|watchdog|rtc)", "needs a device the container does not have"),
    (r"(?i)not supported over overlayfs", "the harness's root is an overlayfs (a storage "
     "driver that needs a real filesystem)"),
    (r"(?i)no private IP|advertise address", "the namespace has no network but lo"),
)


# --- packages.txt ------------------------------------------------------------------

def read_packages(path=PACKAGES_TXT):
    """``[{"name", "category", "root" (main|alt), "boot" (int)}]`` in file order."""
    packages = []
    with open(path) as f:
        for line in f:
            words = line.split("#", 1)[0].split()
            if not words:
                continue
            options = dict(w.split("=", 1) for w in words[2:] if "=" in w)
            packages.append({"name": words[0], "category": words[1] if len(words) > 1
                             else "-", "root": options.get("root", "main"),
                             "boot": int(options.get("boot", "1"))})
    return packages


# --- a root seen from the host -----------------------------------------------------

class View:
    """A machine's root at ``base`` (a directory or /proc/PID/root): its symbolic links
    resolved inside it, as the machine itself would."""

    def __init__(self, base):
        self.base = base.rstrip("/")

    def host(self, path):
        return self.base + path

    def resolve(self, path, limit=40):
        todo = [c for c in path.split("/") if c]
        done, hops = [], 0
        while todo:
            part = todo.pop(0)
            if part == ".":
                continue
            if part == "..":
                if done:
                    done.pop()
                continue
            here = "/" + "/".join(done + [part])
            if os.path.islink(self.host(here)):
                hops += 1
                if hops > limit:
                    return None
                target = os.readlink(self.host(here))
                if target.startswith("/"):
                    done = []
                todo = [c for c in target.split("/") if c] + todo
                continue
            done.append(part)
        return "/" + "/".join(done)

    def lexists(self, path):
        return os.path.lexists(self.host(path))

    def isfile(self, path):
        real = self.resolve(path)
        return real is not None and os.path.isfile(self.host(real))

    def listdir(self, path):
        real = self.resolve(path)
        try:
            return sorted(os.listdir(self.host(real))) if real else []
        except OSError:
            return []

    def read(self, path, limit=256 * 1024):
        real = self.resolve(path)
        if real is None:
            return None
        try:
            with open(self.host(real), "rb") as f:
                return f.read(limit)
        except OSError:
            return None


def norm(path):
    """/usr/lib/systemd/... and /lib/systemd/... are one directory on Debian 12."""
    for prefix in ("/usr/lib/", "/usr/sbin/", "/usr/bin/"):
        if path.startswith(prefix):
            return path[4:]
    return path


def dpkg_owners(view):
    """{normalised path: package} for the files an init system reads."""
    owners = {}
    info = "/var/lib/dpkg/info"
    for entry in view.listdir(info):
        if not entry.endswith(".list"):
            continue
        package = entry[:-5].split(":", 1)[0]
        data = view.read(info + "/" + entry, 8 * 1024 * 1024) or b""
        for raw in data.decode("utf-8", "replace").splitlines():
            if "/systemd/" in raw or raw.startswith("/etc/init.d/"):
                owners.setdefault(norm(raw), package)
    return owners


def parse_unit(data):
    """A unit file's text as [(section, key, value)] (comments, continuations)."""
    entries, section, pending = [], None, ""
    for raw in data.decode("utf-8", "replace").splitlines():
        line = raw.strip()
        if pending:
            line = pending + " " + line
            pending = ""
        if not line or line[0] in "#;":
            continue
        if line.endswith("\\"):
            pending = line[:-1]
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, eq, value = line.partition("=")
        if eq and section:
            entries.append((section, key.strip(), value.strip()))
    return entries


class Unit:
    """One unit as systemd would load it: where its file is, under which real name."""

    def __init__(self, name):
        self.name = name
        self.path = None           # the file (or the template's) as found in the path
        self.real = None           # the file after links
        self.real_name = name      # an alias resolves to the file's own name
        self.masked = False
        self.entries = []
        self.template = None       # NAME@.kind for an instance
        self.generated_by = None   # (package, generator) when a generator wrote it

    @property
    def exists(self):
        return self.path is not None and not self.masked

    @property
    def kind(self):
        return "." + self.name.rpartition(".")[2]

    def values(self, section, key):
        found = []
        for sec, k, value in self.entries:
            if sec == section and k == key:
                found = [] if value == "" else found + value.split()
        return found

    def last(self, section, key):
        found = None
        for sec, k, value in self.entries:
            if sec == section and k == key:
                found = value
        return found or None


class Machine:
    """The units of a root as systemd would walk them: ``dirs`` the search path
    (generator output directories included), ``generated`` {dir: (package, generator)}."""

    def __init__(self, view, generator_dirs=()):
        self.view = view
        early = [d for d, kind, _ in generator_dirs if kind == "early"]
        normal = [d for d, kind, _ in generator_dirs if kind == "normal"]
        late = [d for d, kind, _ in generator_dirs if kind == "late"]
        self.dirs = early + list(UNIT_DIRS[:2]) + normal + list(UNIT_DIRS[2:]) + late
        self.generated = {d: who for d, _, who in generator_dirs}
        self.cache = {}

    def find(self, name):
        for directory in self.dirs:
            path = directory + "/" + name
            if self.view.lexists(path):
                return directory, path
        return None, None

    def unit(self, name):
        if name in self.cache:
            return self.cache[name]
        unit = Unit(name)
        self.cache[name] = unit
        directory, path = self.find(name)
        if path is None and "@" in name:
            prefix, _, rest = name.partition("@")
            instance, dot, kind = rest.rpartition(".")
            if instance and dot:
                unit.template = "%s@.%s" % (prefix, kind)
                directory, path = self.find(unit.template)
        if path is None:
            return unit
        real = self.view.resolve(path)
        if real == "/dev/null":
            unit.path, unit.real, unit.masked = path, real, True
            return unit
        if real is None or not self.view.isfile(path):
            return unit                   # a dangling link: no unit
        unit.path, unit.real = path, real
        if not (self.view.read(path, 1) or b""):
            unit.masked = True            # an empty file masks too
            return unit
        base = os.path.basename(unit.real)
        if base != os.path.basename(path) and base.endswith(unit.kind):
            if unit.template is None:
                unit.real_name = base
            elif base.endswith("@" + unit.kind):
                unit.real_name = base[:-len(unit.kind)] + name.partition("@")[2]
        if directory in self.generated:
            unit.generated_by = self.generated[directory]
        unit.entries = parse_unit(self.view.read(path) or b"")
        for name_d in {os.path.basename(path), name, unit.real_name}:
            for d in self.dirs:
                for conf in self.view.listdir(d + "/" + name_d + ".d"):
                    if conf.endswith(".conf"):
                        unit.entries += parse_unit(
                            self.view.read(d + "/" + name_d + ".d/" + conf) or b"")
        return unit

    def links(self, name, suffix):
        """Names in NAME.wants/ (or .requires/) of every directory."""
        found = []
        for directory in self.dirs:
            for entry in self.view.listdir(directory + "/" + name + suffix):
                if entry not in found:
                    found.append(entry)
        return found

    def lsb_scripts(self):
        """Enabled LSB scripts no unit replaces: {script: rc link}."""
        found = {}
        for level in RUN_LEVELS:
            for entry in self.view.listdir("/etc/" + level):
                if not entry.startswith("S") or len(entry) < 4:
                    continue
                script = entry[3:]
                if script in NOT_SCRIPTS or script in found:
                    continue
                if not self.view.isfile("/etc/init.d/" + script):
                    continue
                if self.unit(script + ".service").path is not None:
                    continue              # a unit of its name (or a mask) replaces it
                found[script] = "/etc/%s/%s" % (level, entry)
        return found

    def walk(self, start="default.target"):
        """{unit name: (wanted by, how)} for every unit the boot pulls in."""
        reached = {}
        queue = [(start, None, "start")]
        steps = 0
        while queue and steps < 20000:
            steps += 1
            name, via, how = queue.pop(0)
            if name in reached or "%" in name:
                continue
            reached[name] = (via, how)
            unit = self.unit(name)
            if not unit.exists:
                if unit.kind == ".target" and name in TARGET_FALLBACK and unit.path is None:
                    queue += [(n, name, "target") for n in TARGET_FALLBACK[name]]
                    queue += [(n, name, "link") for n in self.links(name, ".wants")]
                continue
            names = {name, unit.real_name} | ({unit.template} if unit.template else set())
            for n in sorted(names):
                queue += [(w, name, "link %s.wants" % n) for w in self.links(n, ".wants")]
                queue += [(w, name, "link %s.requires" % n)
                          for w in self.links(n, ".requires")]
            for key in ("Wants", "Requires", "BindsTo", "Upholds"):
                queue += [(w, name, key + "=") for w in unit.values("Unit", key)]
            if unit.kind == ".socket":
                if (unit.last("Socket", "Accept") or "").lower() not in ("yes", "true", "1",
                                                                         "on"):
                    service = unit.last("Socket", "Service") or \
                        unit.real_name.rpartition(".")[0] + ".service"
                    queue.append((service, name, "socket"))
            elif unit.kind in (".timer", ".path"):
                service = unit.last(unit.kind[1:].capitalize(), "Unit") or \
                    unit.real_name.rpartition(".")[0] + ".service"
                queue.append((service, name, unit.kind[1:]))
            if name in ("multi-user.target", "graphical.target"):
                queue += [("lsb:" + s, name, "LSB " + link)
                          for s, link in sorted(self.lsb_scripts().items())]
        return reached


# --- conditions, judged by the harness as systemd would judge them here ----------------

# Units that cannot run in this container for a reason no file or condition shows (a
# fact of the kernel, said here once); their state is still shown.
KNOWN_CONTAINER = {
    "auditd.service": "the kernel's audit netlink exists only in the initial network "
                      "namespace",
    "apparmor.service": "AssertPathIsReadWrite=/sys/kernel/security/apparmor/.load: the "
                        "container's /sys is read-only, so systemd's assert fails there too",
}
CONTAINER_CONDITIONS = ("ConditionVirtualization", "ConditionCapability",
                        "ConditionSecurity")


def condition_false(view, key, value):
    """True when systemd would find ``key=value`` false in this container, False when
    true, None when the harness cannot tell."""
    negate = value.startswith("!")
    word = value[1:] if negate else value
    result = None
    if key in ("ConditionPathExists", "AssertPathExists"):
        result = view.lexists(word) and view.resolve(word) is not None and \
            os.path.exists(view.host(view.resolve(word)))
    elif key == "ConditionPathIsDirectory":
        real = view.resolve(word)
        result = real is not None and os.path.isdir(view.host(real))
    elif key == "ConditionPathIsSymbolicLink":
        result = os.path.islink(view.host(word))
    elif key == "ConditionFileNotEmpty":
        real = view.resolve(word)
        result = real is not None and os.path.isfile(view.host(real)) and \
            os.path.getsize(view.host(real)) > 0
    elif key == "ConditionFileIsExecutable":
        real = view.resolve(word)
        result = real is not None and os.path.isfile(view.host(real)) and \
            os.access(view.host(real), os.X_OK)
    elif key == "ConditionDirectoryNotEmpty":
        result = bool([e for e in view.listdir(word) if not e.startswith(".")])
    elif key == "ConditionPathExistsGlob":
        import glob
        result = bool(glob.glob(view.host(word)))
    elif key == "ConditionVirtualization":
        # a PID namespace of its own: systemd says "container" (no VM name is known)
        low = word.lower()
        if low in ("no", "false", "0", "off"):
            result = False
        elif low in ("yes", "true", "1", "on", "container"):
            result = True
        elif low == "vm":
            result = False
    elif key == "ConditionCapability":
        name = word.upper()
        name = name if name.startswith("CAP_") else "CAP_" + name
        result = name[4:].lower() not in DROPPED_CAPS
    if result is None:
        return None
    return result == negate


def conditions_false(view, unit):
    """The conditions of a unit systemd would find false here: ["Key=value"]."""
    if unit is None or not unit.exists:
        return []
    plain, triggers = [], []
    for section, key, value in unit.entries:
        if section != "Unit" or not key.startswith("Condition") or not value:
            continue
        trigger = value.startswith("|")
        value = value[1:] if trigger else value
        false = condition_false(view, key, value)
        if false is None:
            continue
        (triggers if trigger else plain).append((key, value, false))
    found = ["%s=%s" % (k, v) for k, v, false in plain if false]
    if triggers and all(false for _, _, false in triggers):
        found.append(" | ".join("%s=|%s" % (k, v) for k, v, _ in triggers))
    return found


# --- talking to the running schema-init --------------------------------------------

def ctl(sock, request, timeout=30.0):
    """One request on the control socket: the reply's lines (without the terminator)."""
    chunks = []
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(sock)
        s.sendall(request.encode() + b"\n")
        while True:
            data = s.recv(65536)
            if not data:
                break
            chunks.append(data)
    finally:
        s.close()
    text = b"".join(chunks).decode("utf-8", "replace")
    lines = text.split("\n")
    while lines and lines[-1] in ("", "."):
        lines.pop()
    return lines


def status_json(sock):
    try:
        return json.loads("\n".join(ctl(sock, "status --json")))
    except (OSError, ValueError):
        return None


def timing_kv(sock):
    found = {}
    try:
        lines = ctl(sock, "timing --kv")
    except OSError:
        return found
    for line in lines:
        key, _, value = line.partition("=")
        if key.startswith("service."):
            name, field = key[len("service."):].rsplit(".", 1)
            found.setdefault(name, {})[field] = value
    return found


def diag_parts(text):
    """'FILE:LINE: severity: KEY: message' -> (file, line, severity, key, message)."""
    m = re.match(r"^(/[^:]*)(?::(\d+))?: (error|warning): (?:([A-Za-z][\w.-]*): )?(.*)$",
                 text)
    if not m:
        return None, 0, None, None, text
    return m.group(1), int(m.group(2) or 0), m.group(3), m.group(4), m.group(5)


# --- the namespace's processes and sockets ------------------------------------------

def ns_pids(init_pid):
    """Host pids of the processes in the PID namespace of ``init_pid``."""
    try:
        ns = os.readlink("/proc/%d/ns/pid" % init_pid)
    except OSError:
        return []
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink("/proc/%s/ns/pid" % entry) == ns:
                    found.append(int(entry))
            except OSError:
                pass
    return found


def service_of(pid):
    """The service a process runs in, from its cgroup (.../schema-init/NAME/...)."""
    try:
        with open("/proc/%d/cgroup" % pid) as f:
            for line in f:
                if line.startswith("0::"):
                    parts = line.strip()[3:].split("/")
                    if "schema-init" in parts:
                        i = parts.index("schema-init")
                        return parts[i + 1] if i + 1 < len(parts) else None
    except OSError:
        pass
    return None


def listeners(init_pid):
    """{service: ["tcp 0.0.0.0:80", "unix /run/x.sock", ...]} of the namespace, and
    those PID 1 itself holds under "(schema-init)"."""
    sockets = {}
    for proto in ("tcp", "tcp6", "udp", "udp6"):
        try:
            with open("/proc/%d/net/%s" % (init_pid, proto)) as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10:
                continue
            state = fields[3]
            if proto.startswith("tcp") and state != "0A":
                continue
            if proto.startswith("udp") and state != "07":
                continue
            addr, port = fields[1].rsplit(":", 1)
            sockets[fields[9]] = "%s %s:%d" % (proto, "*" if set(addr) <= {"0"} else
                                               _addr(addr), int(port, 16))
    try:
        with open("/proc/%d/net/unix" % init_pid) as f:
            for line in f.read().splitlines()[1:]:
                fields = line.split()
                if len(fields) >= 8 and int(fields[3], 16) & 0x10000:   # listening
                    sockets[fields[6]] = "unix " + fields[7]
    except OSError:
        pass
    found = {}
    for pid in ns_pids(init_pid):
        owner = "(schema-init)" if pid == init_pid else (service_of(pid) or "?")
        try:
            fds = os.listdir("/proc/%d/fd" % pid)
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
            except OSError:
                continue
            if link.startswith("socket:["):
                inode = link[8:-1]
                if inode in sockets and sockets[inode] not in found.get(owner, []):
                    found.setdefault(owner, []).append(sockets[inode])
    return found


def _addr(hexaddr):
    if len(hexaddr) == 8:
        return ".".join(str(int(hexaddr[i:i + 2], 16)) for i in (6, 4, 2, 0))
    return "[%s]" % v6(hexaddr)


def v6(hexaddr):
    """/proc/net/tcp6's address (four 32-bit words in the host's order) as text."""
    try:
        raw = b"".join(int(hexaddr[i:i + 8], 16).to_bytes(4, sys.byteorder)
                       for i in range(0, 32, 8))
        return socket.inet_ntop(socket.AF_INET6, raw)
    except (ValueError, OSError):
        return hexaddr.lower()


# --- one boot ----------------------------------------------------------------------

class Boot:
    """One root, one group of its packages, booted under schema-init."""

    def __init__(self, options, root_name, lower, group, label, keep_link, generators,
                 work):
        self.options = options
        self.root_name = root_name
        self.lower = lower
        self.group = group                  # packages booted here
        self.label = label
        self.keep_link = keep_link          # keep_link(unit or script name, owner) -> bool
        self.generators = generators        # [(package, path inside the root)]
        self.work = work
        self.proc = None
        self.init_pid = None
        self.cgroup = None
        self.notes = []

    # the files put into the overlay before the boot
    def unlinks(self, owners):
        """Enablement links of the other groups: removed from the overlay."""
        view = View(self.lower)
        machine = Machine(view)
        gone = []
        for directory in ("/etc/systemd/system", "/lib/systemd/system"):
            for entry in view.listdir(directory):
                if not entry.endswith((".wants", ".requires")):
                    continue
                for link in view.listdir(directory + "/" + entry):
                    path = "%s/%s/%s" % (directory, entry, link)
                    unit = machine.unit(link)
                    real = norm(unit.real or unit.path or "")
                    owner = owners.get(real) or owners.get(norm(unit.path or "")) or "(local)"
                    if not self.keep_link(unit.real_name, owner, link):
                        gone.append(path)
        for level in RUN_LEVELS:
            for entry in view.listdir("/etc/" + level):
                if entry.startswith("S") and len(entry) > 3:
                    owner = owners.get("/etc/init.d/" + entry[3:]) or "(local)"
                    if not self.keep_link(entry[3:] + ".service", owner, entry[3:]):
                        gone.append("/etc/%s/%s" % (level, entry))
        return gone

    def script(self, gone):
        o = self.options
        work = self.work
        lines = ["set -eu", "W=%s" % sh(work), "R=$W/merged",
                 "mount -t overlay corpus -o lowerdir=%s,upperdir=$W/upper,workdir=$W/ovl "
                 "\"$R\"" % sh(self.lower)]
        if o.overlay:
            lines.append("cp -a %s/. \"$R/\"" % sh(o.overlay))
        lines.append("while IFS= read -r p; do rm -f \"$R$p\"; done < \"$W/unlinks\"")
        # schema-init as the .deb installs it
        lines += ["mkdir -p \"$R/etc/schema-init\"", "rm -rf \"$R/etc/schema-init/services\"",
                  "cp -a \"$W/services\" \"$R/etc/schema-init/services\""]
        if o.init_kind == "binary":
            lines += ["install -m 0755 %s \"$R/usr/sbin/schema-init\"" % sh(o.binary)]
            for name in NAMES:
                lines.append("ln -sf schema-init \"$R/usr/sbin/%s\"" % name)
            lines.append("ln -sf ../sbin/schema-init \"$R/usr/bin/systemctl\"")
        else:
            lines += ["mkdir -p \"$R/opt/schema-init-src\" "
                      "\"$R/usr/local/lib/python3.11/dist-packages\"",
                      "mount --bind -o ro %s \"$R/opt/schema-init-src\"" % sh(o.source_dir),
                      "ln -sfn /opt/schema-init-src/schema_init "
                      "\"$R/usr/local/lib/python3.11/dist-packages/schema_init\""]
            if o.source == "worktree" and os.access(o.binary, os.X_OK):
                # schema-exec (the compiled binary's C helper) for a checkout that has it:
                # spawn.schema_exec_program() takes SCHEMA_EXEC from PID 1's environment
                lines.append("install -m 0755 %s \"$R/usr/sbin/schema-init.binary\""
                             % sh(o.binary))
            for name in ("schema-init",) + NAMES + ("systemctl",):
                where = "/usr/bin/systemctl" if name == "systemctl" else "/usr/sbin/" + name
                lines.append("rm -f \"$R%s\"; printf '%%s\\n' '#!/bin/sh' "
                             "'exec /usr/bin/python3 -c \"import sys; sys.argv = sys.argv[1:]; "
                             "from schema_init.__main__ import entry; sys.exit(entry())\" "
                             "%s \"$@\"' > \"$R%s\"; chmod 755 \"$R%s\""
                             % (where, where, where, where))
        # the machine: /proc, /sys, /dev, /run, /tmp
        lines += [
            "mount -t proc -o nosuid,nodev,noexec proc \"$R/proc\"",
            "mount --bind \"$R/proc/sys\" \"$R/proc/sys\"",
            "mount -o remount,bind,ro \"$R/proc/sys\"",
            "mount --bind \"$R/proc/sys/net\" \"$R/proc/sys/net\"",
            # a bind mount keeps its source's read-only flag: the namespace's own net
            # sysctls writable again (docker sets ip_forward, as on any machine)
            "mount -o remount,bind,rw \"$R/proc/sys/net\"",
            "[ ! -e \"$R/proc/sysrq-trigger\" ] || "
            "mount --bind -o ro /dev/null \"$R/proc/sysrq-trigger\"",
            "mount -t sysfs -o ro,nosuid,nodev,noexec sysfs \"$R/sys\"",
            "mount -t tmpfs -o mode=0755,size=16m,nosuid dev \"$R/dev\"",
            "for n in null zero full random urandom tty net/tun fuse; do "
            "[ -e /dev/$n ] || continue; case $n in */*) mkdir -p \"$R/dev/${n%/*}\";; esac; "
            "touch \"$R/dev/$n\"; mount --bind /dev/$n \"$R/dev/$n\"; done",
            "mkdir -p \"$R/dev/pts\" \"$R/dev/shm\" \"$R/dev/mqueue\"",
            "mount -t devpts -o newinstance,ptmxmode=0666,mode=620,gid=5 devpts \"$R/dev/pts\"",
            "ln -sf pts/ptmx \"$R/dev/ptmx\"",
            "mount -t tmpfs -o mode=1777,nosuid,nodev shm \"$R/dev/shm\"",
            "mount -t mqueue mqueue \"$R/dev/mqueue\" 2>/dev/null || true",
            "ln -sf /proc/self/fd \"$R/dev/fd\"",
            "for n in stdin:0 stdout:1 stderr:2; do ln -sf /proc/self/fd/${n#*:} "
            "\"$R/dev/${n%:*}\"; done",
            "mount -t tmpfs -o mode=0755,nosuid,nodev run \"$R/run\"",
            "mount -t tmpfs -o mode=1777,nosuid,nodev tmp \"$R/tmp\"",
            "hostname corpus",
            "ip link set lo up 2>/dev/null || true",
            "mkdir -p \"$R/run/corpus\"",
        ]
        # the packages' generators, each into directories of its own
        for package, path in self.generators:
            out = "/run/corpus/gen/%s/%s" % (package, os.path.basename(path))
            lines.append(
                "mkdir -p \"$R%s/normal\" \"$R%s/early\" \"$R%s/late\"; "
                "timeout 20 chroot \"$R\" env -i PATH=%s SYSTEMD_SCOPE=system %s %s/normal "
                "%s/early %s/late > \"$R%s/output\" 2>&1; echo $? > \"$R%s/status\""
                % (out, out, out, PATH, sh(path), out, out, out, out, out))
        # what import-units says of the same root (with the same checks: same namespaces)
        lines.append("chroot \"$R\" env -i PATH=%s LANG=C.UTF-8 /usr/sbin/schema-init "
                     "import-units --services /etc/schema-init/services --out "
                     "/run/corpus/import-units > \"$R/run/corpus/import-units.out\" "
                     "2> \"$R/run/corpus/import-units.err\" || true" % PATH)
        lines += ["cd \"$R\"", "mkdir -p oldroot", "pivot_root . oldroot",
                  "exec chroot . /bin/sh -c 'umount -l /oldroot; rmdir /oldroot; "
                  "exec env -i PATH=%s LANG=C.UTF-8 %s/usr/sbin/schema-init'"
                  % (PATH, "SCHEMA_EXEC=/usr/sbin/schema-init.binary "
                     if o.init_kind == "python" and o.source == "worktree" and
                     os.access(o.binary, os.X_OK) else "")]
        return "\n".join(lines) + "\n"

    def start(self, owners):
        work = self.work
        if os.path.exists(work):
            subprocess.run(["rm", "-rf", work], check=False)
        for sub in ("upper", "ovl", "merged"):
            os.makedirs(os.path.join(work, sub))
        gone = self.unlinks(owners)
        with open(os.path.join(work, "unlinks"), "w") as f:
            f.write("".join(p + "\n" for p in gone))
        make_services(os.path.join(work, "services"))
        with open(os.path.join(work, "launch.sh"), "w") as f:
            f.write(self.script(gone))
        self.cgroup = make_cgroup(os.path.basename(work))
        self.console = open(os.path.join(work, "console.log"), "wb")
        command = ["setpriv", "--bounding-set",
                   ",".join("-" + c for c in DROPPED_CAPS), "--",
                   "unshare", "--pid", "--fork", "--mount", "--net", "--uts", "--ipc"]
        if self.cgroup:
            command.append("--cgroup")
        command += ["--propagation", "private", "/bin/sh", os.path.join(work, "launch.sh")]
        cgroup = self.cgroup

        def enter_cgroup():
            if cgroup:
                with open(os.path.join(cgroup, "cgroup.procs"), "w") as f:
                    f.write("%d\n" % os.getpid())
        self.proc = subprocess.Popen(command, stdout=self.console, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, preexec_fn=enter_cgroup,
                                     env={"PATH": PATH, "LANG": "C.UTF-8"})
        self.started = time.monotonic()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            self.init_pid = self.find_init()
            if self.init_pid and os.path.exists(self.sock):
                return True
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        self.notes.append("schema-init did not open its control socket:\n" +
                          self.console_text()[-3000:])
        return False

    def find_init(self):
        """The namespace's PID 1: unshare's child once it runs schema-init."""
        try:
            with open("/proc/%d/task/%d/children" % (self.proc.pid, self.proc.pid)) as f:
                children = f.read().split()
        except OSError:
            return None
        return int(children[0]) if children else None

    @property
    def sock(self):
        return "/proc/%d/root/run/schema-init.sock" % (self.init_pid or 0)

    def path(self, inside):
        return "/proc/%d/root%s" % (self.init_pid, inside)

    def console_text(self):
        try:
            with open(os.path.join(self.work, "console.log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def settle(self, seconds):
        """Wait until every service has settled (10 s without change, at least 20 s in),
        or ``seconds`` have passed."""
        last, since = None, time.monotonic()
        while time.monotonic() - self.started < seconds:
            status = status_json(self.sock)
            if status is not None:
                states = tuple((s["name"], s["state"], s.get("restarts", 0))
                               for s in status.get("services", []))
                if states != last:
                    last, since = states, time.monotonic()
                elif time.monotonic() - since >= 10 and \
                        time.monotonic() - self.started >= 20 and \
                        all(state in SETTLED_STATES for _, state, _ in states):
                    return time.monotonic() - self.started
            if self.proc.poll() is not None:
                break
            time.sleep(1)
        return time.monotonic() - self.started

    def run_timers(self, seconds):
        """Every timer's job started once; {service: (state, reason, ran)} after."""
        timing = timing_kv(self.sock)
        timers = sorted(n for n, v in timing.items() if v.get("kind") == "timer")
        before = {n: timing[n].get("spawned") for n in timers}
        for name in timers:
            try:
                ctl(self.sock, "start " + name, 10)
            except OSError:
                pass
        deadline = time.monotonic() + seconds
        results = {}
        while time.monotonic() < deadline and timers:
            time.sleep(2)
            timing = timing_kv(self.sock)
            status = {s["name"]: s for s in (status_json(self.sock) or {}).get(
                "services", [])}
            pending = 0
            for name in timers:
                t = timing.get(name, {})
                ran = t.get("spawned") not in (None, before.get(name))
                state = status.get(name, {}).get("state")
                if not ran or state in ("NEW_PROCESS", "FULL_TRUST", "FUNDAMENTAL"):
                    pending += 1
                results[name] = {"ran": ran, "state": state,
                                 "reason": status.get(name, {}).get("reason")}
            if not pending:
                break
        return results

    def poke_sockets(self, seconds):
        """Each service still 'waiting for a connection' (socket activation, Accept=no):
        one client connects to each of its unix stream sockets (in the namespace, through
        /proc/PID/root) and its TCP ones (in its network namespace, by nsenter), as the
        first client of a socket-activated daemon would; {service: its status entry
        after}, so a daemon the connection started, and then perhaps idle-exited, is
        told from one it never started."""
        status = (status_json(self.sock) or {}).get("services", [])
        waiting = [s["name"] for s in status if s.get("reason") == "waiting for a connection"]
        poked = {}
        for name in waiting:
            try:
                with open(self.path("/run/schema-init/units/%s.svc" % name),
                          errors="replace") as f:
                    lines = [l[7:].split()[0] for l in f if l.startswith("listen=")]
            except OSError:
                lines = []
            for value in lines:
                if value.startswith(("/", "stream:")):
                    path = value.split(":", 1)[1] if value.startswith("stream:") else value
                    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    client.settimeout(5)
                    try:
                        client.connect(self.path(path))
                        poked.setdefault(name, []).append(value)
                    except OSError:
                        pass
                    finally:
                        client.close()
                elif value.startswith("tcp:"):
                    port = value.rsplit(":", 1)[1]
                    code = ("import socket; s = socket.create_connection(('127.0.0.1', %s), "
                            "5); s.close()" % int(port))
                    run = subprocess.run(["nsenter", "-t", str(self.init_pid), "-n",
                                          sys.executable, "-c", code],
                                         capture_output=True, timeout=20)
                    if run.returncode == 0:
                        poked.setdefault(name, []).append(value)
                if name in poked:
                    break                      # one connection is what starts it
        deadline = time.monotonic() + seconds
        after = {}
        while poked and time.monotonic() < deadline:
            time.sleep(1)
            now = {s["name"]: s for s in (status_json(self.sock) or {}).get("services", [])}
            after = {n: dict(now.get(n, {}), poked=poked[n]) for n in poked}
            if all(a.get("state") in GOOD_STATES for a in after.values()):
                break                          # every one started (FULL_TRUST: not yet)
        for name in waiting:
            if name not in poked:
                after[name] = {"poked": [], "state": "NEW_PROCESS",
                               "reason": "no socket of it could be connected to"}
        return after

    def collect(self):
        """What the running machine says."""
        got = {"status": status_json(self.sock) or {}, "timing": timing_kv(self.sock),
               "listening": listeners(self.init_pid), "logs": {}}
        log_dir = self.path("/var/log/schema-init")
        if not os.path.isdir(log_dir):
            log_dir = self.path("/run/log/schema-init")
        for s in got["status"].get("services", []):
            try:
                with open(os.path.join(log_dir, s["name"] + ".log"), "rb") as f:
                    f.seek(0, 2)
                    size = f.tell()
                    f.seek(max(0, size - 16384))
                    got["logs"][s["name"]] = f.read().decode("utf-8", "replace")
            except OSError:
                pass
        for name in ("import-units.err", "import-units.out"):
            try:
                with open(self.path("/run/corpus/" + name), errors="replace") as f:
                    got[name] = f.read()
            except OSError:
                got[name] = ""
        got["not_carried"] = []
        out_dir = self.path("/run/corpus/import-units")
        for entry in sorted(os.listdir(out_dir)) if os.path.isdir(out_dir) else []:
            try:
                with open(os.path.join(out_dir, entry), errors="replace") as f:
                    text = f.read(262144)
            except OSError:
                continue
            for m in NOT_CARRIED.finditer(text):
                got["not_carried"].append({"path": m.group(1), "line": int(m.group(2)),
                                           "key": m.group(3), "message": m.group(4),
                                           "text": m.group(0).lstrip("# ")})
        got["generators"] = []
        for package, path in self.generators:
            out = "/run/corpus/gen/%s/%s" % (package, os.path.basename(path))
            try:
                with open(self.path(out + "/status")) as f:
                    code = f.read().strip()
                with open(self.path(out + "/output"), errors="replace") as f:
                    text = f.read()[-2000:]
            except OSError:
                code, text = "?", ""
            got["generators"].append({"package": package, "generator": path,
                                      "status": code, "output": text, "dir": out})
        try:
            with open(self.path("/var/log/schema-init/rail.log"), errors="replace") as f:
                got["rail"] = f.read()[-20000:]
        except OSError:
            got["rail"] = ""
        got["console"] = self.console_text()[-20000:]
        return got

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None and self.init_pid:
            try:
                ctl(self.sock, "poweroff", 10)
            except OSError:
                pass
            try:
                self.proc.wait(self.options.stop_secs)
            except subprocess.TimeoutExpired:
                self.notes.append("schema-init was still running %d s after poweroff: "
                                  "killed" % self.options.stop_secs)
                try:
                    os.kill(self.init_pid, signal.SIGKILL)
                except OSError:
                    pass
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.console.close()
        remove_cgroup(self.cgroup)
        if not self.options.keep:
            subprocess.run(["rm", "-rf", os.path.join(self.work, "upper"),
                            os.path.join(self.work, "ovl")], check=False)


def sh(text):
    return "'" + str(text).replace("'", "'\\''") + "'"


def make_services(directory):
    """services/debian of this checkout, made fit for a container (KEEP_SVC, STUB_SVC)."""
    source = os.path.join(TOP, "services", "debian")
    os.makedirs(directory)
    for name in KEEP_SVC:
        if os.path.exists(os.path.join(source, name)):
            shutil.copy(os.path.join(source, name), os.path.join(directory, name))
    for name, why in STUB_SVC.items():
        with open(os.path.join(directory, name + ".svc"), "w") as f:
            f.write("# units_corpus.py: %s\nexec=/bin/true\noneshot=1\n" % why)


def make_cgroup(tag):
    """A cgroup v2 directory for the namespace's cgroup root, or None."""
    mount = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            if right.split(" ", 1)[0] == "cgroup2":
                mount = left.split(" ")[4]
                break
    if mount is None:
        return None
    path = os.path.join(mount, "schema-corpus.%s.%d" % (tag, os.getpid()))
    try:
        os.makedirs(path, exist_ok=True)
        return path
    except OSError:
        return None


def remove_cgroup(path):
    if not path or not os.path.isdir(path):
        return
    for _ in range(20):
        for top, dirs, _files in os.walk(path, topdown=False):
            for d in dirs:
                try:
                    os.rmdir(os.path.join(top, d))
                except OSError:
                    pass
        try:
            os.rmdir(path)
            return
        except OSError:
            time.sleep(0.5)


# --- classification ----------------------------------------------------------------

def service_for(unit_name, unit, machine=None):
    """The service name the importer makes of a unit (its socket's, its timer's; an
    alias as the unit it names)."""
    if unit_name.startswith("lsb:"):
        return unit_name[4:]
    kind = unit_name.rpartition(".")[2]
    real = unit.real_name if unit is not None else unit_name
    service = real
    if kind == "socket" and unit is not None:
        service = unit.last("Socket", "Service") or real.rpartition(".")[0] + ".service"
    elif kind in ("timer", "path") and unit is not None:
        service = unit.last(kind.capitalize(), "Unit") or real.rpartition(".")[0] + ".service"
    if machine is not None and service != real:
        service = machine.unit(service).real_name
    return service.rpartition(".")[0]


def last_lines(text, count=3):
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-count:]


def container_sign(texts):
    for text in texts:
        for pattern, why in CONTAINER_SIGNS:
            for line in (text or "").splitlines():
                if re.search(pattern, line):
                    return "%s (%s)" % (why, line.strip()[:160])
    return None


def classify(rec):
    """A wanted unit's record -> (class, why).  The record (``unit_record``): ``service``
    (its service's status entry or None), ``dropped`` and ``errors`` (the importer's
    diagnostics naming its files), ``skipped`` (import-units' reason for not importing
    it, or None), ``said`` (anything else import-units said of it), ``log`` (the tail of
    its service's log), ``timer`` (its job's run after a ``start``), ``replaced_by``
    (what does its job instead, when that is by design), ``condition`` (the condition
    that made the importer skip it)."""
    service = rec.get("service")
    dropped = rec.get("dropped") or []
    keys = sorted({d.get("key") or "?" for d in dropped})
    false = rec.get("conditions_false") or []
    state_text = "schema-init: %s" % (service.get("state") if service else "no service")
    container = [c for c in false if c.startswith(CONTAINER_CONDITIONS)]
    if container:
        return "container", "%s: systemd would not run it in a container (%s)" % (
            ", ".join(container), state_text)
    if rec.get("known_container"):
        return "container", "%s (%s%s)" % (rec["known_container"], state_text,
                                           ": " + service["reason"] if service and
                                           service.get("reason") else "")
    if false and service is None:
        return "works", "not run, as systemd would not run it here: %s is false" % (
            ", ".join(false))
    if false:
        return "degraded", "systemd would not run it here (%s is false); schema-init ran " \
            "it: %s%s" % (", ".join(false), service.get("state"),
                          ": " + service["reason"] if service.get("reason") else "")
    if service is not None and rec.get("skipped") and \
            rec.get("unit", "").endswith((".socket", ".path", ".timer")) and \
            service.get("state") in GOOD_STATES:
        return "degraded", "its service runs, the %s itself is lost: %s" % (
            rec["unit"].rpartition(".")[2], rec["skipped"])
    if service is not None:
        state = service.get("state")
        reason = service.get("reason") or ""
        timer = rec.get("timer")
        how = ""
        if timer is not None:
            if timer.get("ran"):
                state, reason = timer.get("state") or state, timer.get("reason") or ""
                how = "its job ran: "
                if state == "PERFECT" and reason:
                    state = "PERFECT after a failed run"
            else:
                how = "armed, its job did not run when started: "
        if state in GOOD_STATES:
            if dropped:
                return "degraded", how + "lost: " + ", ".join(keys)
            return "works", how + state
        tail = last_lines(rec.get("log"), 2)
        sign = container_sign([rec.get("log"), reason])
        poked = rec.get("poked")
        if poked is not None and reason == "waiting for a connection":
            after = poked.get("state")
            if poked.get("poked") and after in GOOD_STATES + ("FULL_TRUST",) and \
                    (after != "FULL_TRUST" or not poked.get("reason")):
                how += "socket-activated, started by a connection to %s: " % \
                    poked["poked"][0]
                if dropped:
                    return "degraded", how + "lost: " + ", ".join(keys)
                return "works", how + after
            state, reason = after or state, "a connection to its socket did not start " \
                "it: %s%s" % (after, ": " + poked["reason"] if poked.get("reason") else "")
        if state == "FULL_TRUST" and not reason:
            reason = "running, never ready (not promoted) in the boot's time"
        why = "%s%s%s%s" % (how, state, ": " + reason if reason else "",
                          " | log: " + " / ".join(tail) if tail else "")
        if sign:
            return "container", sign + "; " + why
        return "broken", why
    if rec.get("replaced_by"):
        return "replaced", rec["replaced_by"]
    skipped = rec.get("skipped")
    if skipped:
        condition = rec.get("condition")
        if condition:
            if re.search(r"ConditionVirtualization|ConditionCapability=.*(%s)|"
                         r"Condition\w+=!?/(sys|proc|dev)/" % "|".join(
                             c.upper() for c in DROPPED_CAPS), condition, re.I):
                return "container", "not run: " + skipped
            return "works", "not run, as systemd would not: " + skipped
        return "broken", "not imported: " + skipped
    errors = rec.get("errors") or []
    if errors:
        return "broken", "not imported: " + errors[0]
    if rec.get("import_errors"):
        return "broken", "not imported: " + rec["import_errors"][0]
    said = rec.get("said") or []
    if said or dropped:
        return "broken", "no service; the importer said: " + (said or
                                                               [d["text"] for d in dropped])[0]
    return "missing", "wanted (%s) but no service and no word of it" % rec.get("how", "?")


# --- the run -------------------------------------------------------------------------

def ensure_inputs(options):
    env = dict(os.environ, CORPUS_CACHE=options.cache)
    timings = {}
    started = time.monotonic()
    subprocess.run([os.path.join(CORPUS, "fetch.sh")], check=True, env=env)
    timings["fetch"] = time.monotonic() - started
    started = time.monotonic()
    subprocess.run(["flock", HEAVY_LOCK, os.path.join(CORPUS, "mkroot.sh"), "main", "alt"],
                   check=True, env=env)
    timings["root"] = time.monotonic() - started
    return timings


def choose_init(options):
    """--source: the checkout as it is (worktree), its last commit (HEAD, exported), or
    build/out/schema-init (binary)."""
    options.init_kind = "python"
    options.binary = os.path.join(TOP, "build", "out", "schema-init")
    git = subprocess.run(["git", "-C", TOP, "rev-parse", "HEAD"], capture_output=True,
                         text=True)
    options.commit = git.stdout.strip() or "?"
    dirty = subprocess.run(["git", "-C", TOP, "status", "--porcelain", "--", "schema_init"],
                           capture_output=True, text=True).stdout.strip()
    options.dirty = bool(dirty)
    if options.source == "binary":
        options.init_kind = "binary"
        options.source_desc = "build/out/schema-init (%s)" % time.strftime(
            "%Y-%m-%d %H:%M", time.localtime(os.path.getmtime(options.binary)))
        return
    if options.source != "worktree":
        rev = subprocess.run(["git", "-C", TOP, "rev-parse", "--verify",
                              options.source + "^{commit}"], capture_output=True, text=True)
        if rev.returncode:
            sys.exit("units_corpus: --source %s is not worktree, binary or a commit"
                     % options.source)
        options.commit = rev.stdout.strip()
        options.dirty = False
        export = os.path.join(options.cache, "src-" + options.commit[:12])
        if not os.path.isdir(os.path.join(export, "schema_init")):
            os.makedirs(export, exist_ok=True)
            archive = subprocess.run(["git", "-C", TOP, "archive", options.commit,
                                      "schema_init"],
                                     capture_output=True, check=True).stdout
            subprocess.run(["tar", "-x", "-C", export], input=archive, check=True)
        for entry in os.listdir(os.path.join(TOP, "schema_init", "pid1")):
            if entry.startswith("_fastloop") and entry.endswith(".so"):
                shutil.copy(os.path.join(TOP, "schema_init", "pid1", entry),
                            os.path.join(export, "schema_init", "pid1", entry))
        options.source_dir = export
        subject = subprocess.run(["git", "-C", TOP, "log", "-1", "--format=%cd %s",
                                  "--date=format:%Y-%m-%d %H:%M", options.commit],
                                 capture_output=True, text=True).stdout.strip()
        options.source_desc = "schema_init of commit %s (%s), run by the root's python3" % (
            options.commit[:12], md(subject[:90]))
        return
    options.source_dir = TOP
    options.source_desc = "schema_init of this checkout as it is (commit %s%s), run by " \
        "the root's python3" % (options.commit[:12], ", with uncommitted changes"
                                if options.dirty else "")


def boots_of(options, packages, roots):
    """[(root name, lower dir, boot number, packages of that boot)]."""
    plan = []
    for root_name in ("main", "alt"):
        if root_name not in roots:
            continue
        mine = [p for p in packages if p["root"] == root_name]
        numbers = sorted({p["boot"] for p in mine}) or [1]
        if options.units:
            numbers = [1]
        for number in numbers:
            plan.append((root_name, roots[root_name], number,
                         [p["name"] for p in mine if p["boot"] == number or options.units]))
    return plan


# systemd.exec(5)'s hardening directives: counted per unit, applied or left (issue 21's
# "count, over your corpus, the directives applied and those left")
HARDENING_KEYS = (
    "PrivateTmp", "ProtectSystem", "ProtectHome", "ReadWritePaths", "ReadOnlyPaths",
    "InaccessiblePaths", "ReadWriteDirectories", "ReadOnlyDirectories",
    "InaccessibleDirectories", "PrivateDevices", "PrivateNetwork", "ProtectKernelTunables",
    "ProtectKernelModules", "ProtectControlGroups", "NoNewPrivileges",
    "CapabilityBoundingSet", "AmbientCapabilities", "RestrictAddressFamilies",
    "SystemCallFilter", "SystemCallArchitectures", "SystemCallErrorNumber",
    "MemoryDenyWriteExecute", "LockPersonality", "RestrictNamespaces", "RestrictRealtime",
    "RestrictSUIDSGID", "ProtectKernelLogs", "ProtectClock", "ProtectHostname",
    "ProtectProc", "ProcSubset", "PrivateUsers", "PrivateIPC", "PrivateMounts", "RemoveIPC",
    "DynamicUser", "ExecPaths", "NoExecPaths", "TemporaryFileSystem", "BindPaths",
    "BindReadOnlyPaths", "DevicePolicy", "DeviceAllow", "IPAddressDeny", "IPAddressAllow")


def unit_record(name, via, how, unit, owner, got, machine_said, service_names,
                machine=None):
    service_name = service_for(name, unit, machine)
    status = {s["name"]: s for s in got["status"].get("services", [])}
    rec = {"unit": name, "package": owner, "via": via, "how": how,
           "service_name": service_name, "service": status.get(service_name),
           "poked": (got.get("poked") or {}).get(service_name)}
    files = set()
    if unit is not None and unit.path:
        files |= {unit.path, unit.real or unit.path, norm(unit.path),
                  norm(unit.real or unit.path)}
    base_names = {name, service_name + ".service"} | (
        {unit.real_name, os.path.basename(unit.path)} if unit is not None and unit.path
        else set())
    if name.startswith("lsb:"):
        files.add("/etc/init.d/" + name[4:])
    dropped, errors = [], []

    def ours(path):
        parent = os.path.basename(os.path.dirname(path))
        return path in files or norm(path) in files or \
            (parent.endswith(".d") and parent[:-2] in base_names)
    for text in got["status"].get("dropped", []) + got["status"].get("rejected", []):
        path, line, severity, key, message = diag_parts(text)
        if path is None or not ours(path):
            continue
        if re.search(r"more dropped lines not shown", message):
            continue                       # PID 1's cap: import-units' .svc lists them
        entry = {"key": key, "line": line, "message": message, "text": text,
                 "path": path}
        (errors if severity == "error" else dropped).append(entry)
    seen = {(norm(d["path"]), d["line"]) for d in dropped}
    for d in got.get("not_carried", []):
        if ours(d["path"]) and (norm(d["path"]), d["line"]) not in seen:
            seen.add((norm(d["path"]), d["line"]))
            dropped.append(dict(d, text=d["text"] + " (import-units)"))
    rec["dropped"] = dropped
    rec["errors"] = [e["text"] for e in errors]
    rec["hardening"] = sorted({k for sec, k, value in (unit.entries if unit is not None
                                                      else ())
                               if sec == "Service" and k in HARDENING_KEYS and value})
    # errors of the import as a whole (naming a unit directory, not a unit): every unit
    # without a service was lost to them, and they said so
    rec["import_errors"] = [t for t in got["status"].get("rejected", [])
                            if (diag_parts(t)[0] or "").rstrip("/") in UNIT_DIRS]
    skip = machine_said["skipped"].get(name) or machine_said["skipped"].get(
        unit.real_name if unit is not None else name) or \
        machine_said["skipped"].get(service_name + ".service") or \
        machine_said["skipped"].get(service_name)
    rec["skipped"] = skip
    cond = re.search(r"(Condition\w+=\S+)", skip or "")
    rec["condition"] = cond.group(1) if cond and "false" in (skip or "") else None
    rec["said"] = [line for line in machine_said["other"]
                   if re.search(r"(^|[\s/(])%s([\s:)]|$)" % re.escape(
                       name[4:] if name.startswith("lsb:") else name), line)][:3]
    rec["log"] = got["logs"].get(service_name, "")[-LOG_KEPT:]
    rec["log_tail"] = last_lines(rec["log"], 4)
    rec["timer"] = got.get("timers", {}).get(service_name) if name.endswith(".timer") \
        else None
    rec["listening"] = got["listening"].get(service_name, [])
    replaced = None
    if rec["service"] is None:
        if skip and ".svc" in skip and "wins" in skip:
            replaced = "a .svc file of the services directory does it (%s)" % skip
        elif EARLY_DONE_BY.get(name):
            by = EARLY_DONE_BY[name]
            replaced = "the services directory's %s does it" % by \
                if by.endswith((".svc", ".grp")) else by
        elif skip and re.search(r"systemd's|schema-init (writes|answers|keeps)|"
                                r"needs systemd as PID 1|udev is in the services", skip):
            replaced = skip
    rec["replaced_by"] = replaced
    rec["conditions_false"] = conditions_false(machine.view, unit) if machine is not None \
        else []
    rec["known_container"] = KNOWN_CONTAINER.get(name)
    rec["class"], rec["why"] = classify(rec)
    return rec


def parse_import_units(err):
    """import-units' stderr: {"skipped": {unit: why}, "other": [lines]}."""
    said = {"skipped": {}, "other": []}
    for line in err.splitlines():
        m = re.match(r"^import-units: skipped (\S+): (.*)$", line)
        if m:
            said["skipped"][m.group(1)] = m.group(2)
            continue
        m = re.match(r"^import-units: not imported (\S+) \(wanted by [^)]*\): (.*)$", line)
        if m:
            said["skipped"].setdefault(m.group(1), m.group(2))
            continue
        if line.strip():
            said["other"].append(line.strip())
    return said


def run_boot(options, boot, owners, packages_by_name):
    started = time.monotonic()
    result = {"root": boot.root_name, "boot": boot.label, "packages": boot.group,
              "units": [], "notes": boot.notes}
    try:
        if not boot.start(owners):
            return result
        result["settled_after"] = round(boot.settle(options.boot_secs), 1)
        got = {"timers": boot.run_timers(options.timer_secs),
               "poked": boot.poke_sockets(options.timer_secs)}
        got.update(boot.collect())
        gen_dirs = []
        for g in got["generators"]:
            for kind in ("normal", "early", "late"):
                gen_dirs.append(("%s/%s" % (g["dir"], kind), kind,
                                 (g["package"], os.path.basename(g["generator"]))))
        machine = Machine(View(boot.path("/")), gen_dirs)
        reached = machine.walk()
        said = parse_import_units(got["import-units.err"])
        services = {s["name"] for s in got["status"].get("services", [])}
        done = set()
        for name, (via, how) in sorted(reached.items()):
            if name.startswith("lsb:"):
                unit = None
                owner = owners.get("/etc/init.d/" + name[4:]) or "(local)"
            else:
                if not name.endswith(UNIT_KINDS):
                    continue
                unit = machine.unit(name)
                if unit.path is None:
                    if how.startswith("link"):
                        result.setdefault("dangling", []).append("%s (%s)" % (name, how))
                    continue
                if unit.generated_by:
                    owner = unit.generated_by[0]
                    how = "%s (made by %s)" % (how, unit.generated_by[1])
                else:
                    owner = owners.get(norm(unit.real or unit.path)) or \
                        owners.get(norm(unit.path)) or "(local)"
            if not boot.keep_link(unit.real_name if unit else name[4:] + ".service", owner,
                                  name):
                continue
            if unit is not None and unit.masked:
                result["units"].append({"unit": name, "package": owner, "via": via,
                                        "how": how, "class": "works",
                                        "why": "masked: systemd does not run it either",
                                        "service_name": None})
                continue
            if unit is not None and unit.real_name != name:
                if unit.real_name in reached or unit.real_name in done:
                    continue              # an alias of a unit classified under its name
                name = unit.real_name
            done.add(name)
            rec = unit_record(name, via, how, unit, owner, got, said, services, machine)
            rec["category"] = packages_by_name.get(owner, {}).get("category", "-")
            result["units"].append(rec)
        result["services"] = got["status"].get("services", [])
        result["rejected_all"] = got["status"].get("rejected", [])
        result["generators"] = got["generators"]
        result["import_units"] = got["import-units.err"][-8000:]
        result["listening"] = got["listening"]
        result["console_tail"] = got["console"][-1500:]
    finally:
        boot.stop()
        result["seconds"] = round(time.monotonic() - started, 1)
    return result


def keep_link_for(options, group, packages_by_name, root_name, number):
    """Which enablement links stay in a boot."""
    wanted_units = set(options.units or ())

    def keep(real_name, owner, link):
        if wanted_units:
            names = {real_name, link, real_name.rpartition(".")[0], link.rpartition(".")[0]}
            return bool(names & wanted_units)
        package = packages_by_name.get(owner)
        if package is None:             # a dependency's unit, or a local one: boot 1
            return number == 1
        return package["root"] == root_name and package["boot"] == number
    return keep


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", default=os.environ.get(
        "CORPUS_CACHE", "/var/cache/schema-init-build/corpus"))
    parser.add_argument("--source", default="worktree",
                        help="worktree (this checkout as it is, run by the root's python3; "
                        "build/out/schema-init as its schema-exec when there is one), "
                        "binary (build/out/schema-init), or a git revision (HEAD, a "
                        "commit: its schema_init exported, run by the root's python3)")
    parser.add_argument("--boot-secs", type=float, default=60)
    parser.add_argument("--timer-secs", type=float, default=45)
    parser.add_argument("--stop-secs", type=float, default=60)
    parser.add_argument("--units", help="only these units (names, with or without the "
                        "suffix), comma-separated; one boot per root")
    parser.add_argument("--roots", default="main,alt")
    parser.add_argument("--boots", help="only these boots (main-1,alt-1 ...), comma-separated")
    parser.add_argument("--overlay", help="a directory copied over the root before it "
                        "boots (units, links, scripts of a test)")
    parser.add_argument("--json-out", default=RESULTS)
    parser.add_argument("--no-report", action="store_true",
                        help="write the JSON only (to --json-out), not the report")
    parser.add_argument("--no-build", action="store_true",
                        help="use the cached fetch and roots as they are")
    parser.add_argument("--keep", action="store_true", help="keep each boot's overlay")
    parser.add_argument("--baseline", action="store_true",
                        help="also record these counts as the report's \"before\"")
    parser.add_argument("--from-json", metavar="FILE",
                        help="write the report from an earlier run's JSON, boot nothing")
    options = parser.parse_args(argv)
    options.units = [u for u in (options.units or "").split(",") if u]
    if options.from_json:
        with open(options.from_json) as f:
            data = json.load(f)
        reclassify(data)
        with open(options.json_out, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
        write_report(data, options)
        return 0
    if os.geteuid() != 0:
        sys.exit("units_corpus: run as root (namespaces, mounts, chroot)")
    started = time.monotonic()
    timings = {}
    if not options.no_build:
        timings = ensure_inputs(options)
    choose_init(options)
    packages = read_packages()
    packages_by_name = {p["name"]: p for p in packages}
    roots = {}
    for name in options.roots.split(","):
        lower = os.path.join(options.cache, "root" if name == "main" else "root-" + name)
        if os.path.isdir(lower):
            roots[name] = lower
    if not roots:
        sys.exit("units_corpus: no root in %s (run bench/corpus/mkroot.sh)" % options.cache)
    results = []
    harness_started = time.monotonic()
    for root_name, lower, number, group in boots_of(options, packages, roots):
        if options.boots and "%s-%d" % (root_name, number) not in options.boots.split(","):
            continue
        view = View(lower)
        owners = dpkg_owners(view)
        keep = keep_link_for(options, group, packages_by_name, root_name, number)
        generators = []
        for directory in GENERATOR_DIRS:
            for entry in view.listdir(directory):
                path = directory + "/" + entry
                owner = owners.get(norm(path))
                if owner is None or owner in ("systemd", "udev", "systemd-sysv"):
                    continue           # systemd's own (fstab, getty, sysv...) are its own
                if keep("", owner, "") or (options.units and owner in packages_by_name):
                    if (owner, path) not in generators and \
                            not any(os.path.basename(p) == entry for _, p in generators):
                        generators.append((owner, path))
        label = "%s-%d" % (root_name, number)
        work = os.path.join(options.cache, "run", label)
        boot = Boot(options, root_name, lower, group, label, keep, generators, work)
        sys.stderr.write("units_corpus: boot %s (%d packages)\n" % (label, len(group)))
        result = run_boot(options, boot, owners, packages_by_name)
        sys.stderr.write("units_corpus: boot %s: %d units classified in %.0f s\n"
                         % (label, len(result["units"]), result["seconds"]))
        results.append(result)
    timings["harness"] = time.monotonic() - harness_started
    timings["total"] = time.monotonic() - started
    for what, path in (("fetch when last made", "fetch.seconds"),
                       ("root when last made", "root/.corpus-seconds"),
                       ("alt root when last made", "root-alt/.corpus-seconds")):
        try:
            with open(os.path.join(options.cache, path)) as f:
                timings[what] = float(f.read().strip())
        except (OSError, ValueError):
            pass
    data = summarise(options, packages, results, timings)
    os.makedirs(os.path.dirname(os.path.abspath(options.json_out)), exist_ok=True)
    with open(options.json_out, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
    if not options.no_report:
        write_report(data, options)
    counts = data["counts"]["corpus"]
    sys.stderr.write("units_corpus: %s\n" % ", ".join("%s %d" % (c, counts.get(c, 0))
                                                       for c in CLASSES))
    return 0


def summarise(options, packages, results, timings):
    corpus_names = {p["name"] for p in packages}
    seen, units, other = set(), [], []
    for result in results:
        for rec in result["units"]:
            key = rec["unit"]
            if key in seen:
                continue
            seen.add(key)
            rec = dict(rec, boot=result["boot"])
            (units if rec["package"] in corpus_names or options.overlay and
             rec["package"] == "(local)" else other).append(rec)
    counts = {"corpus": count(units), "other": count(other)}
    dropped = {}
    for rec in units + other:
        for key in sorted({d.get("key") or "?" for d in rec.get("dropped") or []}):
            dropped.setdefault(key, []).append(rec["unit"])
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python3 bench/units_corpus.py " + " ".join(sys.argv[1:]),
        "source": options.source_desc, "commit": options.commit, "dirty": options.dirty,
        "boot_secs": options.boot_secs, "timer_secs": options.timer_secs,
        "timings": {k: round(v, 1) for k, v in timings.items()},
        "packages": packages, "counts": counts,
        "dropped_keys": {k: sorted(v) for k, v in dropped.items()},
        "units": units, "other_units": other,
        "boots": [dict({k: v for k, v in r.items() if k != "units"},
                       units_classified=len(r["units"])) for r in results],
    }


def reclassify(data):
    """An earlier run's records classified again by this ``classify`` (each record keeps
    every fact it is judged by), and counted again."""
    for group in ("units", "other_units"):
        for rec in data[group]:
            if "service" in rec:
                rec["class"], rec["why"] = classify(rec)
        data["counts"]["corpus" if group == "units" else "other"] = count(data[group])


def count(records):
    found = {c: 0 for c in CLASSES}
    for rec in records:
        found[rec["class"]] = found.get(rec["class"], 0) + 1
    return found


# --- the report --------------------------------------------------------------------

def md(text):
    text = re.sub(r"\[([0-9A-Fa-f]{32})\]", lambda m: "[%s]" % v6(m.group(1)), str(text))
    return text.replace("|", "\\|").replace("\n", " ")


def hardening_table(records):
    """Markdown lines: each hardening directive the wanted units have, applied or left
    (a line of it dropped by the importer)."""
    have, left = {}, {}
    for rec in records:
        if rec.get("service") is None:
            continue                       # not run: nothing applied or left to count
        lost = {d.get("key") for d in rec.get("dropped") or ()}
        for key in rec.get("hardening") or ():
            have.setdefault(key, []).append(rec["unit"])
            if key in lost:
                left.setdefault(key, []).append(rec["unit"])
    if not have:
        return []
    total = sum(len(v) for v in have.values())
    dropped = sum(len(v) for v in left.values())
    lines = ["", "## Hardening: applied and left", "",
             "Over the wanted units that ran, each systemd.exec hardening directive their "
             "files set, by unit: applied by schema-exec, or left (the importer dropped the "
             "line, said at import).  In all: %d applied, %d left, of %d." % (
                 total - dropped, dropped, total), "",
             "| directive | units | applied | left (units) |", "|---|---|---|---|"]
    for key in sorted(have, key=lambda k: (-len(have[k]), k)):
        gone = left.get(key, [])
        lines.append("| `%s` | %d | %d | %s |" % (
            key, len(have[key]), len(have[key]) - len(gone),
            "%d (%s)" % (len(gone), md(", ".join(gone[:4]) + (" ..." if len(gone) > 4
                                                              else ""))) if gone else "0"))
    return lines


def write_report(data, options):
    before = previous_before(REPORT)
    counts = data["counts"]["corpus"]
    total = sum(counts.values())
    lines = ["# Debian's units, RUN under schema-init", ""]
    if options.baseline:
        lines += ["**This run is the baseline before the issue-21 work**: schema-init as main "
                  "held it when that work began (the importer, the spawn path and the "
                  "lifecycle unchanged); the \"Before\" table at the end keeps its counts "
                  "for the runs after it.", ""]
    lines += ["Made by `bench/units_corpus.py` (`make bench-units`) on %s: `%s`%s." % (
                 data["date"], data["command"], " (this text written from its JSON by "
                 "`--from-json`)" if getattr(options, "from_json", None) else ""),
             "schema-init: %s.  Roots: bench/corpus/mkroot.sh (%d packages of "
             "bench/corpus/packages.txt installed on debootstrap --variant=minbase bookworm, "
             "units enabled by their postinst); each boot %g s at most, then every timer's "
             "job started once (%g s at most)." % (data["source"], len(data["packages"]),
                                                   data["boot_secs"], data["timer_secs"]),
             "Time: %s." % ", ".join("%s %.0f s" % (k, data["timings"][k]) for k in (
                 "fetch", "root", "harness", "total", "fetch when last made",
                 "root when last made", "alt root when last made") if k in data["timings"]),
             "",
             "How it runs: each root (and each `boot=` group of it: daemons that take the "
             "same port by default are booted apart) under an overlay, schema-init PID 1 of "
             "new PID, mount, network, UTS, IPC and cgroup namespaces with lo up, /proc/sys "
             "read-only but for net, a read-only sysfs, a /dev of a few host nodes, without "
             "CAP_SYS_TIME, CAP_SYS_MODULE and CAP_MAC_ADMIN.  The services directory is "
             "services/debian with cron, rsyslog, ssh, gettys, udev and the disk and "
             "kernel steps taken out (those a container cannot do are oneshots that do "
             "nothing), so the units are what runs.  Which units are wanted is worked out "
             "by the harness itself, as systemd would (default.target, links, Wants=, "
             "sockets, timers, generators, enabled LSB scripts), not by the importer.", "",
             "Classes: **works** (its service reached FUNDAMENTAL, a oneshot or a timer's "
             "job PERFECT, nothing dropped; or a false condition of its own kept it from "
             "running, as under systemd), **degraded** (runs; lines not applied are "
             "listed), **broken** (did not run, or not imported), **missing** (wanted, no "
             "service, no word of it: a silent loss), **container** (cannot run in a "
             "container: the reason is given), **replaced** (schema-init or the services "
             "directory does its job by design).", "",
             "## Counts", "",
             "Units of the corpus's packages (%d wanted units):" % total, "",
             "| class | units |", "|---|---|"]
    lines += ["| %s | %d |" % (c, counts.get(c, 0)) for c in CLASSES]
    other = data["counts"]["other"]
    lines += ["", "Units of the packages they pulled in (%d): %s." % (
        sum(other.values()), ", ".join("%s %d" % (c, other.get(c, 0)) for c in CLASSES)), ""]
    lines += ["## Directives dropped most", "", "| directive | units |", "|---|---|"]
    ranked = sorted(data["dropped_keys"].items(), key=lambda kv: (-len(kv[1]), kv[0]))
    for key, names in ranked[:25]:
        lines.append("| `%s` | %d (%s) |" % (key, len(names), md(", ".join(names[:6]) + (
            " ..." if len(names) > 6 else ""))))
    lines += hardening_table(data["units"])
    lines += ["", "## Broken and missing: the causes", "",
              "Grouped (the cause: the importer's reason, or the state and its reason):", "",
              "| cause | units |", "|---|---|"]
    causes = {}
    for rec in data["units"]:
        if rec["class"] in ("broken", "missing"):
            causes.setdefault(cause_of(rec), []).append(rec["unit"])
    for cause, names in sorted(causes.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        lines.append("| %s | %d: %s |" % (md(cause)[:200], len(names), md(", ".join(names))))
    lines += ["", "Each one, with the last lines of its log:", ""]
    for cls in ("missing", "broken"):
        for rec in data["units"]:
            if rec["class"] == cls:
                lines.append("- **%s** `%s` (%s): %s" % (cls, rec["unit"], rec["package"],
                                                         md(rec["why"])[:400]))
    lines += ["", "## Every unit, by package", "",
              "| package | unit | class | what is lost, or why | listens | wanted by |",
              "|---|---|---|---|---|---|"]
    order = {p["name"]: i for i, p in enumerate(data["packages"])}
    for rec in sorted(data["units"], key=lambda r: (order.get(r["package"], 999),
                                                     r["package"], r["unit"])):
        lines.append("| %s | `%s` | %s | %s | %s | %s |" % (
            rec["package"], rec["unit"], rec["class"], md(rec["why"])[:300],
            md(", ".join(rec.get("listening") or []))[:100] or "-",
            md("%s (%s)" % (rec.get("via"), rec.get("how")))[:80]))
    silent = [p["name"] for p in data["packages"]
              if not any(r["package"] == p["name"] for r in data["units"])]
    lines += ["", "Packages with no wanted unit (nothing enabled at boot, or their units "
              "are another package's): %s." % (", ".join(silent) or "none"), ""]
    lines += ["## Units of the packages pulled in", "",
              "| package | unit | class | why |", "|---|---|---|---|"]
    for rec in sorted(data["other_units"], key=lambda r: (r["package"], r["unit"])):
        lines.append("| %s | `%s` | %s | %s |" % (rec["package"], rec["unit"], rec["class"],
                                                  md(rec["why"])[:200]))
    lines += ["", "## Boots", "", "| boot | packages | units | settled after | seconds | "
              "notes |", "|---|---|---|---|---|---|"]
    for b in data["boots"]:
        lines.append("| %s | %d | %s | %s | %s | %s |" % (
            b["boot"], len(b["packages"]), b.get("units_classified", "-"),
            b.get("settled_after", "-"),
            b.get("seconds", "-"), md("; ".join(b.get("notes") or [])[:200]) or "-"))
    gens = [g for b in data["boots"] for g in b.get("generators", [])]
    if gens:
        lines += ["", "Generators run: %s." % ", ".join(
            "%s (%s, exit %s)" % (os.path.basename(g["generator"]), g["package"], g["status"])
            for g in gens)]
    dangling = [d for b in data["boots"] for d in b.get("dangling", [])]
    if dangling:
        lines += ["", "Links to units that do not exist (systemd would not run them "
                  "either): %s." % ", ".join(dangling)]
    this = "| %s | %s | %s |" % (data["date"], data["source"], " | ".join(
        str(counts.get(c, 0)) for c in CLASSES))
    lines += ["", "## Before", "",
              "The counts of earlier runs; the first row is the baseline before the issue-21 "
              "work (the importer, the spawn path and the lifecycle as main held them).", "",
              "| date | schema-init | " + " | ".join(CLASSES) + " |",
              "|---|---|" + "---|" * len(CLASSES)]
    rows = [] if options.baseline else before[-9:]
    if options.baseline or not rows:
        this = this.replace("| %s |" % data["date"], "| %s (baseline) |" % data["date"], 1)
    rows.append(this)
    lines += rows
    lines.append("")
    kept = other_report(REPORT)
    if kept:
        lines += [COVERAGE_MARK, "", kept]
    with open(REPORT, "w") as f:
        f.write("\n".join(lines))


COVERAGE_MARK = ("<!-- units_corpus.py writes what is above; what follows is "
                 "bench/units_coverage.py's report, kept as it was -->")


def other_report(path):
    """What bench/units_coverage.py wrote into the same file (the static coverage of the
    importer), kept below this report: the text after COVERAGE_MARK, or the whole file
    when it is not this harness's."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return ""
    if COVERAGE_MARK in text:
        return text.split(COVERAGE_MARK, 1)[1].strip("\n") + "\n"
    if text.startswith("# Debian's units, RUN under schema-init"):
        return ""
    return text


def cause_of(rec):
    """A broken or missing unit's cause, for grouping: the importer's reason without
    its unit's own words, or the state and its reason."""
    why = rec["why"]
    if rec["class"] == "missing":
        return "wanted, no service, no word (%s)" % re.sub(r"\s.*", "", rec.get("how") or "?")
    why, _, log = why.partition(" | log: ")
    why = re.sub(r"(?<![\w*])/[\w./@-]+", "PATH", why)
    tail = log.split(" / ")[-1] if log else ""
    if tail:
        # the log's last line without its time stamps and numbers: the daemon's words
        tail = re.sub(r'^(time="[^"]*"\s*|ts=\S+\s*|\S*\d{4}-\d\d-\d\d[T ][\d:.+Z-]+\S*'
                      r'\s*|\d+:\s*)+', "", tail)
        tail = re.sub(r"\d+", "N", tail)
        return "%s: log: %s" % (why.split(":", 1)[0], tail[:140])
    return why[:160]


def previous_before(path):
    """The rows of the previous report's "Before" table (kept from run to run)."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return []
    part = text.split(COVERAGE_MARK, 1)[0].split("\n## Before\n", 1)
    if len(part) < 2:
        return []
    return [line for line in part[1].splitlines()
            if line.startswith("| ") and not line.startswith("| date") and
            not line.startswith("|---")]


if __name__ == "__main__":
    sys.exit(main())
