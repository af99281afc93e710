"""Reading services directories and files from disk, for the pure parser in ``config``,
and the systemd units through the import helper.

Reads are bounded: a file over 1 MiB, or anything that is not a regular file (a FIFO,
a device), is refused with a reason rather than read, so no file can block the loop.

Units are never parsed here: ``UnitImport`` runs ``schema-init import-units --into
DIR`` as a child (at boot, waited for; in a reload, a slice at a time) and DIR is read
as a services directory.  ``UnitDirs`` and the condition tests below serve that helper
(and ``import-units`` by hand), not PID 1.
"""

import os
import stat
import sys
import time

from schema_init.core import config

READ_LIMIT = 1 << 20
UNIT_READ_LIMIT = 256 * 1024      # a systemd unit file or drop-in (units.READ_LIMIT)


def read_head(path, size):
    """The first ``size`` bytes of a regular file (b"" when it cannot be read)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except (OSError, ValueError):
        return b""
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return b""
        return os.read(fd, size)
    except OSError:
        return b""
    finally:
        os.close(fd)


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


def load_directory(directory, unit_dirs=(), import_dir=None):
    """Read every .svc and .grp file of ``directory``: a ``config.LoadResult``.

    ``unit_dirs``: systemd unit directories (the first wins) whose enabled units join
    the services (a .svc file of the same name wins), converted by the import helper
    (``UnitImport``) into ``import_dir``."""
    read = DirectoryRead(directory, unit_dirs, import_dir=import_dir)
    read.step()
    return read.result()


class DirectoryRead:
    """A services directory read a file at a time, in name order: ``step`` reads and
    parses files until its budget is spent (at least one file; no budget: all of them),
    ``result`` is the directory's LoadResult.  ``load_directory`` reads it in one step,
    a reload a slice per loop turn (``reloading``).

    With unit directories, the .svc files are read first (their names win over units),
    then the import helper runs (``UnitImport``: waited for a budget at a time), then
    the directory it wrote is read as the services directory is."""

    def __init__(self, directory, unit_dirs=(), clock=time.monotonic, import_dir=None):
        self.directory = directory
        self.unit_dirs = unit_dirs
        self.clock = clock
        self.import_dir = import_dir
        self.parsed = []           # config.parse_entry results
        self.unreadable = None
        self.loaded = None         # the .svc files' LoadResult, once every file is parsed
        self.importing = None      # UnitImport, started when the .svc files are parsed
        self.imported = None       # DirectoryRead of the directory the helper wrote
        self.final = None
        try:
            entries = os.listdir(directory)
        except OSError as exc:
            self.unreadable = config.unreadable_directory(directory, exc.strerror or exc)
            entries = []
        # read in name order (pop from the end of the reversed list)
        self.pending = sorted((e for e in entries if config.is_config_file(e)), reverse=True)

    def step(self, budget=None):
        """Read and parse files for ``budget`` seconds (at least one file; None: every
        file, and the units imported); True when everything is read."""
        deadline = None if budget is None else self.clock() + budget
        while self.pending:
            entry = self.pending.pop()
            data, reason = read_file(self.directory.rstrip("/") + "/" + entry)
            self.parsed.append(config.parse_entry(self.directory, entry, data, reason))
            if deadline is not None and self.clock() >= deadline:
                break
        if self.pending or not self.unit_dirs or self.unreadable is not None:
            return not self.pending
        if self.importing is None:
            self.loaded = config.combine_directory(self.directory, self.parsed)
            taken = [s.name for s in self.loaded.services] + \
                [g.name for g in self.loaded.groups]
            self.importing = UnitImport(self.unit_dirs, taken, self.import_dir,
                                        clock=self.clock)
            self.importing.start()
        if self.imported is None:
            left = None if deadline is None else max(0.0, deadline - self.clock())
            if not self.importing.wait(left):
                return False
            self.imported = DirectoryRead(self.importing.result_directory() or "",
                                          clock=self.clock)
            if deadline is not None and self.clock() >= deadline:
                return False
        left = None if deadline is None else max(0.0, deadline - self.clock())
        return self.imported.step(left)

    def result(self):
        """The directory's ``config.LoadResult``, once ``step`` said it is done."""
        if self.unreadable is not None:
            return self.unreadable
        if self.final is None:
            self.final = self.loaded or config.combine_directory(self.directory, self.parsed)
            if self.importing is not None and self.imported is not None:
                self.importing.merge(self.final, self.imported)
        return self.final


IMPORT_DIR = "/run/schema-init/units"
IMPORT_TIMEOUT = 20.0             # seconds the import helper may take, at boot and reload
# PID 1's default unit directories (machine.UNIT_DIRS): given these, the helper reads
# the machine's whole search path, runs its generators and its init scripts.
MACHINE_UNIT_DIRS = ("/etc/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system")


class ImportedDiagnostic(config.Diagnostic):
    """A diagnostic of the import helper: ``status`` lists it beside the files' own."""
    __slots__ = ()
    from_unit = True


class UnitImport:
    """The import helper, ``schema-init import-units --into DIR`` (the same program), run
    as PID 1's child for at most ``IMPORT_TIMEOUT`` seconds: it converts the units, runs
    the generators and the init scripts, and writes .svc files and the diagnostics into
    DIR; PID 1 reads DIR as a services directory.  So the unit parser and converter
    (``units``) never load into PID 1.

    ``start`` spawns it (its own session; output to a pipe), ``wait(budget)`` waits for
    its end up to ``budget`` seconds (None: until it ends or overruns, killed then),
    ``merge`` adds what it made to the .svc files' LoadResult.  Whether it succeeded is
    read from DIR, not from its exit status (in a reload the loop may reap it first):
    the diagnostics file must carry this run's token.  A failed import keeps DIR's
    previous import, if there is one, with an error saying why."""

    DIAGNOSTICS = "diagnostics"
    HEADER = "schema-init-import 1"
    NOT_IMPORTED = "not imported"        # the key of "wanted, not imported: why" lines
    OUTPUT_KEPT = 2048                   # bytes of the helper's own output kept
    MAX_DIAGNOSTICS = 5000
    TAKEN_CHUNK = 60000                  # bytes of names per --taken argument

    def __init__(self, unit_dirs, taken, directory=None, timeout=IMPORT_TIMEOUT,
                 clock=time.monotonic):
        self.unit_dirs = list(unit_dirs)
        self.taken = sorted(set(taken))
        self.temporary = directory is None and os.getpid() != 1
        self.directory = directory or (IMPORT_DIR if os.getpid() == 1 else
                                       "%s/schema-init-units.%d.%d" % (
                                           os.environ.get("TMPDIR") or "/tmp",
                                           os.getpid(), time.monotonic_ns()))
        self.timeout = timeout
        self.clock = clock
        self.token = "%d.%d" % (os.getpid(), time.monotonic_ns())
        self.pid = 0
        self.fd = -1
        self.poller = None
        self.output = b""
        self.failure = None              # why the import gave nothing, or None
        self.deadline = None
        self.ended = False

    def command(self):
        """(program, argv): this very program, run as ``import-units``."""
        args = ["import-units", "--into", self.directory, "--token", self.token,
                "--subreaper", own_subreaper()]
        words, size = [], 0
        for name in self.taken:
            if words and size + len(name) + 1 > self.TAKEN_CHUNK:
                args += ["--taken", ",".join(words)]
                words, size = [], 0
            words.append(name)
            size += len(name) + 1
        if words:
            args += ["--taken", ",".join(words)]
        machine = "/etc/systemd/system" in self.unit_dirs and \
            all(d in MACHINE_UNIT_DIRS for d in self.unit_dirs)
        args += ["--root", "/", "--generators"] if machine else ["--"] + self.unit_dirs
        if "__compiled__" in globals():  # the static binary: exactly the one PID 1 runs
            return "/proc/self/exe", ["schema-init"] + args
        return sys.executable, [sys.executable, "-m", "schema_init"] + args

    def start(self):
        """Spawn the helper; a failure to is kept as ``failure`` (``wait`` says done)."""
        import _signal as signal
        from . import _fastloop
        self.deadline = self.clock() + self.timeout
        try:
            program, argv = self.command()
            read_end, write_end = os.pipe()
            null = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
            try:
                self.pid = os.posix_spawn(
                    program, argv, os.environ,
                    file_actions=[(os.POSIX_SPAWN_DUP2, null, 0),
                                  (os.POSIX_SPAWN_DUP2, write_end, 1),
                                  (os.POSIX_SPAWN_DUP2, write_end, 2)],
                    setsid=True, setsigmask=(),
                    setsigdef=(signal.SIGPIPE, signal.SIGXFSZ, signal.SIGHUP,
                               signal.SIGINT, signal.SIGTERM, signal.SIGCHLD))
            finally:
                os.close(write_end)
                os.close(null)
            os.set_blocking(read_end, False)
            self.fd = read_end
            self.poller = _fastloop.Loop()
            self.poller.register(read_end)
        except OSError as exc:
            self.failure = "cannot start the import helper: %s" % (exc.strerror or exc)
            self.finish()

    def wait(self, budget=None):
        """Wait for the helper to end, at most ``budget`` seconds (None: until it ends or
        its time is up); True once it has ended (or was killed for overrunning)."""
        until = None if budget is None else self.clock() + budget
        while not self.ended:
            now = self.clock()
            if now >= self.deadline:
                self.failure = "the import helper ran over %g s and was killed" % self.timeout
                self.kill()
                self.finish()
                break
            timeout = self.deadline - now if until is None else min(until - now,
                                                                     self.deadline - now)
            if self.poller.wait(max(0.0, timeout)):
                self.read_output()
            if not self.ended and until is not None and self.clock() >= until:
                return False
        return True

    def read_output(self):
        while True:
            try:
                chunk = os.read(self.fd, 65536)
            except BlockingIOError:
                return
            except OSError:
                chunk = b""
            if not chunk:
                self.finish()
                return
            self.output = (self.output + chunk)[-self.OUTPUT_KEPT:]

    def kill(self):
        import _signal as signal
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except OSError:
            pass

    def finish(self):
        """The helper's output ended (or it never started): close, reap it if it is ours
        to reap still (the loop may have been first), judge its directory."""
        self.ended = True
        if self.poller is not None:
            self.poller.close()
            self.poller = None
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        status = None
        if self.pid:
            for _ in range(40):            # 0.2 s at most: its output ended, it is exiting
                try:
                    pid, status = os.waitpid(self.pid, os.WNOHANG)
                except ChildProcessError:
                    break
                if pid:
                    break
                status = None
                time.sleep(0.005)
        if self.failure is None and not self.token_found():
            said = self.output.decode("utf-8", "replace").strip().splitlines()
            self.failure = "the import helper %s%s" % (
                "failed" if status is None else _status_text(status),
                (": " + said[-1][:300]) if said else " and wrote nothing")

    def token_found(self):
        # the header line only: the diagnostics of a big machine run far over 4 kB
        data = read_head(self.directory + "/" + self.DIAGNOSTICS, 4096)
        first = data.split(b"\n", 1)[0].decode("utf-8", "replace")
        return first == "%s\t%s" % (self.HEADER, self.token)

    def result_directory(self):
        """Where the services to load are: this import's directory, or the previous
        import's after a failure (None: there is none)."""
        if self.failure is None:
            return self.directory
        data = read_head(self.directory + "/" + self.DIAGNOSTICS, 4096)
        if data.startswith(self.HEADER.encode() + b"\t"):
            return self.directory
        return None

    def merge(self, loaded, imported):
        """``loaded`` (the .svc files' LoadResult) with the services of ``imported`` (the
        helper's directory read) and the helper's diagnostics; a .svc service's name
        wins."""
        diagnostics = []
        if self.failure is not None:
            kept = self.result_directory() is not None
            diagnostics.append(config.Diagnostic(
                self.unit_dirs[0] if self.unit_dirs else self.directory, 0, None,
                config.ERROR, "importing the units failed (%s); %s" % (
                    self.failure, "the services of the previous import are kept" if kept
                    else "only the .svc files are loaded")))
        if self.result_directory() is not None:
            diagnostics += self.read_diagnostics()
            taken = {spec.name for spec in loaded.services} | {g.name for g in loaded.groups}
            for spec in imported.result().services:
                if spec.name in taken:
                    diagnostics.append(ImportedDiagnostic(
                        spec.path, 0, "name", config.WARNING, "'%s' is a .svc service "
                        "already; the one made from this unit is not loaded" % spec.name))
                    continue
                taken.add(spec.name)
                loaded.services.append(spec)
        if self.temporary:
            self.remove()
        loaded.diagnostics = sorted(loaded.diagnostics + diagnostics,
                                    key=config.Diagnostic.sort_key)
        return loaded

    def read_diagnostics(self):
        """The helper's diagnostics file as ``ImportedDiagnostic``s (``import_units``
        writes it: ``diagnostics_text``)."""
        data, reason = read_file(self.directory + "/" + self.DIAGNOSTICS, 2 * READ_LIMIT)
        if data is None:
            return [config.Diagnostic(self.directory, 0, None, config.ERROR,
                                      "cannot read the import's diagnostics: %s" % reason)]
        found = []
        for line in data.decode("utf-8", "replace").split("\n")[1:self.MAX_DIAGNOSTICS + 1]:
            fields = line.split("\t")
            if len(fields) != 5:
                continue
            severity, path, number, key, message = (_unescape(f) for f in fields)
            number = int(number) if number.isdigit() and len(number) < 10 else 0
            found.append(ImportedDiagnostic(path, number, key or None, severity, message))
        return found

    def remove(self):
        """A temporary import directory (not PID 1's), gone once read, with what a
        failed helper may have left beside it (``DIR.PID``, ``DIR.new.PID``).  The
        helper writes flat directories: files and links, no subdirectory (and shutil
        would load re, fnmatch and the compressors into this process)."""
        parent, stem = os.path.split(self.directory)
        try:
            entries = os.listdir(parent)
        except OSError:
            entries = []
        for entry in entries:
            if entry != stem and not entry.startswith(stem + "."):
                continue
            path = os.path.join(parent, entry)
            try:
                if os.path.isdir(path) and not os.path.islink(path):
                    for name in os.listdir(path):
                        os.unlink(os.path.join(path, name))
                    os.rmdir(path)
                else:
                    os.unlink(path)
            except OSError:
                pass


def _status_text(status):
    if os.WIFSIGNALED(status):
        return "was killed by signal %d" % os.WTERMSIG(status)
    return "exited %d" % os.WEXITSTATUS(status)


def _unescape(text):
    if "\\" not in text:
        return text
    out, i = [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            out.append({"t": "\t", "n": "\n", "r": "\r"}.get(nxt, nxt))
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


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
