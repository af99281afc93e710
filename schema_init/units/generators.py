"""systemd's generators (systemd.generator(7)), run by the import helper before it reads
the units, so what a package generates at boot (Debian's postgresql-common: one
``postgresql@VERSION-CLUSTER.service`` per cluster, wanted by ``postgresql.service``;
postfix: its instances) is imported as systemd would load it.

Rules of this file:

* Runs only in ``schema-init import-units`` (the helper PID 1 starts at boot and at
  each reload), never in PID 1: it starts processes and waits for them.
* Each generator gets the three output directories (normal, early, late) as its
  arguments, emptied first; it runs with ``TIMEOUT`` seconds of its own (all of them at
  once), in its own session, killed with its children when it overruns.  What it
  writes on stdout and stderr, its exit status and an overrun come back as
  ``Report``s: the import's diagnostics.
* A generator of a directory earlier in ``GENERATOR_DIRS`` masks one of the same name
  later; a link to /dev/null or an empty file masks it outright.
* systemd's own generators (``systemd-*``: fstab, getty, sysv, cryptsetup, gpt-auto ...)
  are not run: what they make is the services directory's (mounts, gettys, the early
  boot) or ``lsb``'s (init scripts), and some need systemd itself.  The packages'
  generators run (postgresql-common's, postfix's ...).
* Not the machine's root (a root given to ``import-units --root``): each generator
  runs chrooted into that root (root privileges needed), so it reads that machine's
  configuration and writes into that root's /run/systemd.

Where the output sits in the unit search path (``SEARCH_PATH``; systemd.unit(5), the
system manager's path): ``generator.early`` before /etc/systemd/system (it overrides
even the administrator's units), ``generator`` after /etc/systemd/system and
/run/systemd/system (before the packages' units), ``generator.late`` after everything.
"""

import os
import shutil
import signal
import subprocess
import tempfile
import time

GENERATOR_DIRS = ("/run/systemd/system-generators", "/etc/systemd/system-generators",
                  "/usr/local/lib/systemd/system-generators",
                  "/lib/systemd/system-generators", "/usr/lib/systemd/system-generators")
NORMAL = "/run/systemd/generator"
EARLY = "/run/systemd/generator.early"
LATE = "/run/systemd/generator.late"
OUTPUT_DIRS = (NORMAL, EARLY, LATE)          # the order of a generator's arguments
# The unit directories of a machine, the first that has a name winning (systemd.unit(5):
# the system manager's load path without the directories only systemd's own interfaces
# write: system.control, transient, system.attached).
SEARCH_PATH = (EARLY, "/etc/systemd/system", "/run/systemd/system", NORMAL,
               "/usr/local/lib/systemd/system", "/lib/systemd/system",
               "/usr/lib/systemd/system", LATE)
TIMEOUT = 5.0                 # seconds each generator may take
SYSTEMD_OWN = "systemd-"      # systemd's own generators: not run (see above)
MAX_GENERATORS = 256
OUTPUT_LIMIT = 16 * 1024      # bytes of a generator's output kept for the diagnostics
ENVIRONMENT = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
               "SYSTEMD_SCOPE": "system", "SYSTEMD_IN_INITRD": "0", "LANG": "C.UTF-8"}


class Report:
    """What one generator did: ``status`` its exit status (a negative signal number),
    None when it was killed for overrunning; ``output`` its stdout and stderr."""

    __slots__ = ("name", "path", "status", "output", "seconds", "problem")

    def __init__(self, name, path, status=None, output="", seconds=0.0, problem=None):
        self.name, self.path, self.status = name, path, status
        self.output, self.seconds, self.problem = output, seconds, problem

    def lines(self):
        """The report as (severity, message) lines for the import's diagnostics: nothing
        for a generator that exited 0 in silence."""
        out = []
        if self.problem:
            out.append(("warning", self.problem))
        elif self.status is None:
            out.append(("warning", "killed: still running after %g s" % TIMEOUT))
        elif self.status < 0:
            out.append(("warning", "killed by signal %d" % -self.status))
        elif self.status:
            out.append(("warning", "exited %d" % self.status))
        for line in self.output.splitlines()[:50]:
            if line.strip():
                out.append(("warning", "said: %s" % line.strip()))
        return out


def find(root=""):
    """The generators to run: ``([(name, path)], [Report])``, by name; the reports say
    which were masked or not executable."""
    chosen, seen, skipped = {}, set(), []
    for directory in GENERATOR_DIRS:
        path = root.rstrip("/") + directory
        try:
            real = os.path.realpath(path)
            names = sorted(os.listdir(path))[:MAX_GENERATORS]
        except (OSError, ValueError):
            continue
        if real in seen:                 # /lib and /usr/lib: one directory (merged /usr)
            continue
        seen.add(real)
        for name in names:
            if not name.startswith(SYSTEMD_OWN):
                chosen.setdefault(name, path + "/" + name)
    found = []
    for name, path in sorted(chosen.items())[:MAX_GENERATORS]:
        target = _inside(root, path)
        try:
            st = os.stat(target)
        except OSError:
            continue                     # a dangling link: nothing to run
        if target.endswith("/dev/null") or (os.path.isfile(target) and st.st_size == 0):
            continue                     # masked
        if not os.path.isfile(target) or not os.access(target, os.X_OK):
            skipped.append(Report(name, path, problem="not an executable file; not run"))
            continue
        found.append((name, path))
    return found, skipped


def _inside(root, path):
    """Where a chain of links ends, a link's absolute target read inside ``root``."""
    root = root.rstrip("/")
    for _ in range(8):
        try:
            target = os.readlink(path)
        except (OSError, ValueError):
            return path
        path = root + target if target.startswith("/") else \
            os.path.join(os.path.dirname(path), target)
    return path


def empty_outputs(root=""):
    """The three output directories, made empty (a link in their place is removed, never
    followed)."""
    for directory in OUTPUT_DIRS:
        path = root.rstrip("/") + directory
        if os.path.islink(path) or os.path.isfile(path):
            os.unlink(path)
        elif os.path.isdir(path):
            shutil.rmtree(path)
        os.makedirs(path, 0o755)


def run(root="/", timeout=TIMEOUT, clock=time.monotonic):
    """Run every generator of ``root`` (chrooted into it unless it is /) with the output
    directories emptied first: ``[Report]``, the failures and anything said."""
    root = "" if root.rstrip("/") == "" else root.rstrip("/")
    found, reports = find(root)
    try:
        empty_outputs(root)
    except OSError as exc:
        return reports + [Report("generators", root + NORMAL,
                                 problem="cannot empty the output directories: %s; no "
                                 "generator run" % (exc.strerror or exc))]
    if root and found and os.geteuid() != 0:
        return reports + [Report(name, path, problem="not run: running the generators of "
                                 "another root needs root (chroot)") for name, path in found]
    running = []
    for name, path in found:
        output = tempfile.TemporaryFile()
        inside = path[len(root):] if root else path
        try:
            proc = subprocess.Popen(
                [inside] + list(OUTPUT_DIRS), stdin=subprocess.DEVNULL, stdout=output,
                stderr=subprocess.STDOUT, env=dict(ENVIRONMENT), cwd="/",
                start_new_session=True,
                preexec_fn=(lambda: (os.chroot(root), os.chdir("/"))) if root else None)
        except (OSError, subprocess.SubprocessError) as exc:
            output.close()
            reports.append(Report(name, path, problem="cannot run: %s" % exc))
            continue
        running.append((name, path, proc, output, clock()))
    for name, path, proc, output, started in running:
        status = None
        try:
            status = proc.wait(max(0.0, started + timeout - clock()))
        except subprocess.TimeoutExpired:
            _kill_group(proc)
        seconds = clock() - started
        output.seek(0)
        text = output.read(OUTPUT_LIMIT).decode("utf-8", "replace")
        output.close()
        report = Report(name, path, status, text, seconds)
        if status is None:
            report.problem = "killed: still running after %g s" % timeout
        reports.append(report)
    return sorted(reports, key=lambda r: r.name)


def _kill_group(proc):
    """The generator and whatever it started (its session's process group)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        proc.kill()
    proc.wait()
