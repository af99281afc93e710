"""Reading services directories and files from disk, for the pure parser in ``config``.

Reads are bounded: a file over 1 MiB, or anything that is not a regular file (a FIFO,
a device), is refused with a reason rather than read, so no file can block the loop.
"""

import os
import stat
import sys
import time

from schema_init.core import config

READ_LIMIT = 1 << 20
UNIT_READ_LIMIT = 256 * 1024      # a systemd unit file or drop-in (units.READ_LIMIT)


def read_file(path, limit=READ_LIMIT):
    """Bytes of a file, or (None, reason).  Files over ``limit`` are refused."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as exc:
        return None, exc.strerror or str(exc)
    except ValueError:                       # a NUL byte in the path
        return None, "the path contains a NUL byte"
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None, "not a regular file"
        chunks, size = [], 0
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            size += len(chunk)
            if size > limit:
                return None, "larger than %d bytes" % limit
            chunks.append(chunk)
        return b"".join(chunks), None
    except OSError as exc:
        return None, exc.strerror or str(exc)
    finally:
        os.close(fd)


def load_service_file(path):
    """Read and parse one .svc file (used by ``add``).  Returns (spec or None, diags)."""
    data, reason = read_file(path)
    return config.parse_service_file(path, data, reason)


def load_directory(directory, unit_dirs=()):
    """Read every .svc and .grp file of ``directory``: a ``config.LoadResult``.

    ``unit_dirs``: systemd unit directories (the first wins) whose enabled units join
    the services (``units``; a .svc file of the same name wins)."""
    read = DirectoryRead(directory, unit_dirs)
    read.step()
    return read.result()


class DirectoryRead:
    """A services directory read a file at a time, in name order: ``step`` reads and
    parses files until its budget is spent (at least one file; no budget: all of them),
    ``result`` is the directory's LoadResult.  ``load_directory`` reads it in one step,
    a reload a slice per loop turn (``reloading``)."""

    def __init__(self, directory, unit_dirs=(), clock=time.monotonic):
        self.directory = directory
        self.unit_dirs = unit_dirs
        self.clock = clock
        self.parsed = []           # config.parse_entry results
        self.unreadable = None
        try:
            entries = os.listdir(directory)
        except OSError as exc:
            self.unreadable = config.unreadable_directory(directory, exc.strerror or exc)
            entries = []
        # read in name order (pop from the end of the reversed list)
        self.pending = sorted((e for e in entries if config.is_config_file(e)), reverse=True)

    def step(self, budget=None):
        """Read and parse files for ``budget`` seconds (at least one file; None: every
        file); True when every file is parsed."""
        deadline = None if budget is None else self.clock() + budget
        while self.pending:
            entry = self.pending.pop()
            data, reason = read_file(self.directory.rstrip("/") + "/" + entry)
            self.parsed.append(config.parse_entry(self.directory, entry, data, reason))
            if deadline is not None and self.clock() >= deadline:
                break
        return not self.pending

    def result(self):
        """The directory's ``config.LoadResult``, once ``step`` said it is done."""
        if self.unreadable is not None:
            return self.unreadable
        loaded = config.combine_directory(self.directory, self.parsed)
        if self.unit_dirs:
            add_units(loaded, self.unit_dirs)
        return loaded


def add_units(loaded, unit_dirs):
    """Enabled systemd units as services beside ``loaded``'s (which win by name)."""
    taken = {spec.name for spec in loaded.services} | {g.name for g in loaded.groups}
    try:
        from schema_init.units import units             # only when units are imported: PID 1 stays small
        result = units.import_units(UnitDirs(unit_dirs), taken, subreaper=own_subreaper(),
                                    path_test=path_test, condition_test=condition_test)
        specs, diagnostics = units.services_from(result)
    except Exception as exc:            # noqa: B902 - the .svc services must still boot
        loaded.diagnostics = sorted(loaded.diagnostics + [config.Diagnostic(
            unit_dirs[0], 0, None, config.ERROR, "importing the units failed (%s: %s); "
            "only the .svc files are loaded" % (type(exc).__name__, exc))],
            key=config.Diagnostic.sort_key)
        return loaded
    for spec in specs:
        if spec.name in taken:
            diagnostics.append(units.UnitDiagnostic(
                spec.path, 0, "name", config.WARNING, "'%s' is a .svc service already; "
                "the one made from this unit is not loaded" % spec.name))
            continue
        taken.add(spec.name)
        loaded.services.append(spec)
    loaded.diagnostics = sorted(loaded.diagnostics + diagnostics,
                                key=config.Diagnostic.sort_key)
    return loaded


def path_test(flag, path):
    """A unit's path condition, as test(1)'s -e -d -s -x -L -w (and ``notempty`` for a
    directory with an entry), checked when the units are read (``units.Converter``)."""
    try:
        if flag == "-e":
            return os.path.exists(path)
        if flag == "-d":
            return os.path.isdir(path)
        if flag == "-s":
            return os.path.getsize(path) > 0
        if flag == "-x":
            return os.path.isfile(path) and os.access(path, os.X_OK)
        if flag == "-L":
            return os.path.islink(path)
        if flag == "-w":
            return os.access(path, os.W_OK)
        if flag == "notempty":
            with os.scandir(path) as entries:
                return any(True for _ in entries)
    except OSError:
        return False
    return False


# Linux capability numbers (linux/capability.h), for ConditionCapability=.
CAPABILITIES = (
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID",
    "SETUID", "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN",
    "NET_RAW", "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE",
    "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME",
    "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
    "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ",
    "PERFMON", "BPF", "CHECKPOINT_RESTORE")
ARCHITECTURES = {"x86_64": "x86-64", "aarch64": "arm64", "i686": "x86", "i586": "x86",
                 "i386": "x86", "armv6l": "arm", "armv7l": "arm", "riscv64": "riscv64",
                 "ppc64le": "ppc64-le", "s390x": "s390x"}


def condition_test(key, value, proc="/proc", sys_dir="/sys"):
    """This machine's answer to a unit's ``ConditionCapability=`` (the bounding set),
    ``ConditionACPower=`` (a mains supply online, or none known), ``ConditionVirtualization=``
    (``container`` only), ``ConditionKernelCommandLine=`` and ``ConditionArchitecture=``,
    ``!`` negating; None for any other or a value it cannot judge."""
    negate = value.startswith("!")
    word = value[1:] if negate else value
    try:
        if key == "ConditionCapability":
            name = word.upper()
            name = name[4:] if name.startswith("CAP_") else name
            if name not in CAPABILITIES:
                return None
            data, _ = read_file(proc + "/self/status", 65536)
            for line in (data or b"").split(b"\n"):
                if line.startswith(b"CapBnd:"):
                    held = bool(int(line.split()[1], 16) >> CAPABILITIES.index(name) & 1)
                    return held != negate
            return None
        if key == "ConditionACPower":
            if word.lower() not in ("yes", "true", "1", "on", "no", "false", "0", "off"):
                return None
            wanted = word.lower() in ("yes", "true", "1", "on")
            return on_ac_power(sys_dir) == wanted
        if key == "ConditionVirtualization":
            if word != "container":
                return None
            return in_container(proc) != negate
        if key == "ConditionKernelCommandLine":
            data, _ = read_file(proc + "/cmdline", 65536)
            if data is None:
                return None
            words = data.decode("utf-8", "replace").split()
            found = word in words if "=" in word else \
                any(w == word or w.startswith(word + "=") for w in words)
            return found != negate
        if key == "ConditionArchitecture":
            machine = ARCHITECTURES.get(os.uname().machine)
            return None if machine is None else (machine == word) != negate
    except (OSError, ValueError, IndexError):
        return None
    return None


def on_ac_power(sys_dir="/sys"):
    """As systemd judges it: on AC unless every mains supply the kernel lists is offline."""
    base = sys_dir + "/class/power_supply"
    try:
        names = os.listdir(base)[:64]
    except OSError:
        return True
    mains = []
    for name in names:
        kind, _ = read_file(base + "/" + name + "/type", 64)
        if kind is None or kind.strip() != b"Mains":
            continue
        online, _ = read_file(base + "/" + name + "/online", 64)
        mains.append(online is not None and online.strip() == b"1")
    return any(mains) or not mains


def in_container(proc="/proc"):
    """The signs pid1.in_container reads (without importing pid1)."""
    if os.environ.get("container") or os.path.exists("/run/.containerenv") or \
            os.path.exists("/.dockerenv"):
        return True
    try:
        return os.stat(proc + "/self/ns/pid").st_ino != 4026531836
    except OSError:
        return False


def own_subreaper(argv0=None, exe="/proc/self/exe"):
    """The schema-subreaper beside this program (the link beside the static binary, or
    the entry point in a virtualenv), else the installed one (units.SUBREAPER)."""
    places = [argv0 if argv0 is not None else (sys.argv[0] if sys.argv else "")]
    try:
        places.append(os.readlink(exe))
    except OSError:
        pass
    for place in places:
        if place.startswith("/"):
            path = os.path.join(os.path.dirname(place), "schema-subreaper")
            if os.access(path, os.X_OK):
                return path
    return "/usr/sbin/schema-subreaper"


class UnitDirs:
    """systemd unit directories, read for ``units`` (the first directory that has a
    name wins: /etc/systemd/system over /lib/systemd/system).  Listings are bounded
    and cached; files are read with ``read_file``'s limits."""

    MAX_ENTRIES = 10000

    def __init__(self, directories, root=""):
        self.directories = [d.rstrip("/") or "/" for d in directories]
        self.root = root.rstrip("/")       # links in a machine's root resolve inside it
        self.listings = {}

    def listing(self, directory):
        if directory not in self.listings:
            try:
                names = os.listdir(directory)[:self.MAX_ENTRIES]
            except OSError:
                names = []
            self.listings[directory] = frozenset(names)
        return self.listings[directory]

    def entry(self, name):
        for directory in self.directories:
            if name not in self.listing(directory):
                continue
            path = directory + "/" + name
            real = self.resolve(path)
            if real in ("/dev/null", self.root + "/dev/null"):
                return ("masked", path)
            target = os.path.basename(real)
            if target != name:
                return ("alias", target)
            data, reason = read_file(real, UNIT_READ_LIMIT)
            if data is None:
                return ("error", path, reason)
            return ("file", path, data)
        return None

    def resolve(self, path):
        """Where a chain of symbolic links ends (at most 8), inside ``root``."""
        for _ in range(8):
            try:
                target = os.readlink(path)
            except OSError:
                return path
            if target.startswith("/"):
                path = self.root + target
            else:
                path = os.path.join(os.path.dirname(path), target)
        return path

    def wants(self, name):
        found = []
        for directory in self.directories:
            for suffix in (".wants", ".requires"):
                sub = directory + "/" + name + suffix
                for entry in sorted(self.listing(sub)):
                    if entry not in found:
                        found.append(entry)
        return found

    def dropins(self, name):
        chosen = {}
        for directory in self.directories:
            sub = directory + "/" + name + ".d"
            for entry in self.listing(sub):
                if entry.endswith(".conf") and entry not in chosen:
                    chosen[entry] = sub + "/" + entry
        found = []
        for entry in sorted(chosen):
            data, _reason = read_file(chosen[entry], UNIT_READ_LIMIT)
            found.append((chosen[entry], data))
        return found

    def names(self):
        seen = set()
        for directory in self.directories:
            for entry in self.listing(directory):
                if entry.endswith((".service", ".socket", ".timer")):
                    seen.add(entry)
        return sorted(seen)
