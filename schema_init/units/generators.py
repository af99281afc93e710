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
  writes on stdout and stderr (into a memory file), its exit status and an overrun come
  back as ``Report``s: the import's diagnostics.
* Only ``os`` and the C modules the static binary has built in: no subprocess (its C
  half is not built in), shutil or tempfile (they bring the compressors and random).
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
import _signal as signal   # the C module: signal.py loads enum
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
        remove_tree(path)
        os.makedirs(path, 0o755)


def remove_tree(path):
    """``path`` and, for a directory, everything under it; links are removed, never
    followed.  Nothing there is no error."""
    try:
        if not os.path.isdir(path) or os.path.islink(path):
            os.unlink(path)
            return
    except FileNotFoundError:
        return
    for top, dirs, files in os.walk(path, topdown=False):
        for name in files:
            os.unlink(os.path.join(top, name))
        for name in dirs:
            inner = os.path.join(top, name)
            if os.path.islink(inner):
                os.unlink(inner)
            else:
                os.rmdir(inner)
    os.rmdir(path)


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
        output = os.memfd_create("generator-" + name, os.MFD_CLOEXEC)
        try:
            pid = _spawn(root, path[len(root):] if root else path, output)
        except OSError as exc:
            os.close(output)
            reports.append(Report(name, path, problem="cannot run: %s" % exc.strerror))
            continue
        running.append([name, path, pid, output, clock(), None])
    waiting = list(running)
    while waiting:
        for item in list(waiting):
            name, path, pid, output, started, _status = item
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done, status = pid, 0
            if done:
                item[5] = _exit_status(status)
                waiting.remove(item)
            elif clock() >= started + timeout:
                _kill_group(pid)
                waiting.remove(item)
        if waiting:
            time.sleep(0.01)
    for name, path, pid, output, started, status in running:
        os.lseek(output, 0, os.SEEK_SET)
        text = os.read(output, OUTPUT_LIMIT).decode("utf-8", "replace")
        os.close(output)
        report = Report(name, path, status, text, clock() - started)
        if status is None:
            report.problem = "killed: still running after %g s" % timeout
        reports.append(report)
    return sorted(reports, key=lambda r: r.name)


def _spawn(root, path, output):
    """fork and exec one generator: its own session, stdin /dev/null, stdout and stderr
    the memory file, chrooted into ``root`` when there is one."""
    null = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
    argv = [path] + list(OUTPUT_DIRS)
    env = dict(ENVIRONMENT)
    pid = os.fork()
    if pid == 0:                              # the child: never returns
        try:
            os.setsid()
            os.dup2(null, 0)
            os.dup2(output, 1)
            os.dup2(output, 2)
            if root:
                os.chroot(root)
            os.chdir("/")
            os.execve(path, argv, env)
        except BaseException as exc:          # noqa: B902 - said on its output, then gone
            try:
                os.write(2, ("cannot run %s: %s\n" % (path, exc)).encode("utf-8", "replace"))
            finally:
                os._exit(127)
    os.close(null)
    return pid


def _exit_status(status):
    """An exit code, or a negative signal number."""
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def _kill_group(pid):
    """The generator and whatever it started (its session's process group), reaped."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass
