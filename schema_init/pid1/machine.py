"""What only PID 1 does: mounts, the console, Ctrl-Alt-Del, the rescue shell, shutdown.

Everything else (supervision, the control socket, signals, reaping) is the same loop
as when not PID 1: :class:`Pid1Runtime` fills ``runtime.Runtime``'s hooks.  Rules:

* In a container (a PID namespace that is not the initial one, or ``container=``,
  ``/run/.containerenv``, ``/.dockerenv``) PID 1 never touches filesystems it may
  share with the host: no remount of ``/`` at boot, no read-only remounts at shutdown.
* Every mount is best-effort: where one is refused, boot carries on without it.
* Shutdown (docs/spec.md, "Shutdown"): services are stopped by the loop (SIGTERM to each cgroup,
  dependents first, SIGKILL at each stop timeout); then SIGKILL to everything left,
  a bounded ``sync()``, every filesystem remounted read-only in reverse mount order
  (virtual ones skipped), then ``reboot()``.  The watchdog stays armed and petted to
  the very end.  Each step prints one console line.
"""

import os
import _signal as signal  # the C module: the signal.py wrapper loads enum (~1 MB in PID 1)
import time

from . import _fastloop, cgroup, effects, logs, runtime, spawn
from schema_init.core import supervisor

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_RELATIME = 0x200000
MS_STRICTATIME = 0x1000000
MNT_DETACH = 0x2

RB_AUTOBOOT = 0x01234567
RB_POWER_OFF = 0x4321FEDC
RB_HALT_SYSTEM = 0xCDEF0123 - (1 << 32)     # the C int -839974621 (reboot() takes an int)
RB_DISABLE_CAD = 0

INITIAL_PID_NAMESPACE = 4026531836
SERVICES_DIR = "/etc/schema-init/services"
FALLBACK_SERVICES_DIR = "/services"
SYNC_DEADLINE_SECS = 10
KILL_WAIT_SECS = 2

# (source, target, type, flags, data), in mount order (docs/spec.md, "PID 1").
MOUNTS = (
    ("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None),
    ("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, None),
    ("devtmpfs", "/dev", "devtmpfs", MS_NOSUID | MS_STRICTATIME, None),
    ("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "gid=5,mode=620,ptmxmode=666"),
    ("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777"),
    ("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755"),
    ("cgroup2", "/sys/fs/cgroup", "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RELATIME,
     None),
)
DEV_LINKS = (("/proc/self/fd", "/dev/fd"), ("/proc/self/fd/0", "/dev/stdin"),
             ("/proc/self/fd/1", "/dev/stdout"), ("/proc/self/fd/2", "/dev/stderr"))
# Octal modes (the original passed 1777 as a decimal number).
RUN_DIRS = (("/run/dbus", 0o755), ("/run/lock", 0o1777), ("/run/shm", 0o1777),
            ("/run/user", 0o755), ("/run/user/0", 0o700), ("/run/systemd", 0o755),
            ("/run/systemd/shutdown", 0o755), ("/run/log", 0o755),
            ("/run/log/schema-init", 0o755), ("/run/sshd", 0o755))
VIRTUAL_FILESYSTEMS = frozenset((
    "proc", "sysfs", "devtmpfs", "devpts", "tmpfs", "cgroup", "cgroup2", "securityfs",
    "debugfs", "tracefs", "pstore", "bpf", "configfs", "fusectl", "mqueue", "hugetlbfs",
    "autofs", "binfmt_misc", "efivarfs", "rpc_pipefs", "nsfs", "ramfs", "rootfs",
    "selinuxfs", "overlay", "squashfs", "iso9660", "fuse", "fuse.portal"))


def say(console, text):
    console.write("[schema-init] %s\n" % text)


def mounted_targets():
    targets = set()
    try:
        with open("/proc/self/mountinfo", "rb") as f:
            for line in f:
                fields = line.split()
                if len(fields) > 4:
                    targets.add(fields[4].decode("utf-8", "replace").replace("\\040", " "))
    except OSError:
        pass
    return targets


def in_container():
    """Why we think we run inside a container (a reason string), or None."""
    if os.environ.get("container"):
        return "container=%s" % os.environ["container"]
    for marker in ("/run/.containerenv", "/.dockerenv"):
        if os.path.exists(marker):
            return marker
    try:
        inode = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return None
    if inode != INITIAL_PID_NAMESPACE:
        return "PID namespace %d is not the initial one" % inode
    return None


def mount_early(console):
    """Mount /proc first: container detection needs it."""
    if "/proc" not in mounted_targets():
        try:
            os.makedirs("/proc", exist_ok=True)
            _fastloop.mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        except OSError as exc:
            say(console, "mount /proc: %s" % exc.strerror)


def root_read_only_requested(cmdline):
    """True when the kernel command line's last word of ``ro``/``rw`` is ``ro``."""
    words = [w for w in cmdline.split() if w in (b"ro", b"rw")]
    return bool(words) and words[-1] == b"ro"


LOCALE_NAMES = ("LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "LC_NUMERIC", "LC_TIME",
                "LC_COLLATE", "LC_MONETARY", "LC_MESSAGES", "LC_PAPER", "LC_NAME",
                "LC_ADDRESS", "LC_TELEPHONE", "LC_MEASUREMENT", "LC_IDENTIFICATION")


def services_environment(inherited, cmdline, locale_text):
    """What services start with on a machine (not in a container, whose runtime's
    variables are the user's): PATH, TERM, the locale of /etc/default/locale, and the
    KEY=VALUE words of the kernel command line whose KEY is in capitals (DEMO_POWEROFF=1);
    nothing the initramfs left behind (init=, rootmnt=, ROOT=, ...)."""
    env = {"PATH": supervisor.DEFAULT_PATH, "TERM": inherited.get("TERM") or "linux"}
    for line in locale_text.splitlines():
        key, eq, value = line.strip().partition("=")
        value = value.strip()
        if eq and key in LOCALE_NAMES and value[:1] in ('"', "'") and value[-1:] == value[:1]:
            value = value[1:-1]
        if eq and key in LOCALE_NAMES and value:
            env[key] = value
    for word in cmdline.decode("utf-8", "replace").split():
        key, eq, value = word.partition("=")
        if eq and key.isupper() and key.replace("_", "").isalnum() and key != "BOOT_IMAGE" \
                and inherited.get(key) == value:
            env[key] = value
    return env


def read_small(path, limit=65536):
    try:
        with open(path, "rb") as f:
            return f.read(limit).decode("utf-8", "replace")
    except OSError:
        return ""


def kernel_cmdline():
    try:
        with open("/proc/cmdline", "rb") as f:
            return f.read(65536)
    except OSError:
        return b""


def mount_all(console, container):
    if not container:
        if root_read_only_requested(kernel_cmdline()):
            # the root filesystem is checked while read-only (fsck -a), then remounted
            # read-write by a service (services/debian/check-root.svc)
            say(console, "/ left read-only (ro on the kernel command line)")
        else:
            try:
                _fastloop.mount(None, "/", None, MS_REMOUNT)      # read-write
            except OSError as exc:
                say(console, "remount / read-write: %s" % exc.strerror)
    done = mounted_targets()
    for source, target, fstype, flags, data in MOUNTS:
        if target in done:
            continue                    # an initramfs or the kernel did it already
        try:
            os.makedirs(target, 0o755, exist_ok=True)
            _fastloop.mount(source, target, fstype, flags, data)
        except OSError as exc:
            say(console, "mount %s on %s: %s (carrying on)" % (fstype, target, exc.strerror))
    for source, link in DEV_LINKS:
        try:
            os.symlink(source, link)
        except OSError:
            pass
    try:
        with open("/sys/fs/cgroup/cgroup.controllers") as f:
            available = f.read().split()
    except OSError:
        available = []
    for name in ("cpu", "memory", "cpuset", "pids", "io"):   # one by one: a missing one
        # must not disable the others
        if name in available:
            try:
                with open("/sys/fs/cgroup/cgroup.subtree_control", "w") as f:
                    f.write("+" + name)
            except OSError:
                pass
    for path, mode in RUN_DIRS + ((("/run/systemd/system", 0o755),) if claims_systemd()
                                  else ()):
        try:
            os.makedirs(path, exist_ok=True)
            os.chmod(path, mode)
        except OSError:
            pass


SYSTEMCTL_PATHS = ("/usr/bin/systemctl", "/bin/systemctl")


def claims_systemd(paths=SYSTEMCTL_PATHS, exe="/proc/self/exe"):
    """/run/systemd/system tells Debian's invoke-rc.d, service and deb-systemd-invoke to
    call systemctl (how package upgrades restart daemons): a promise kept only when
    systemctl is this program (schema_init/systemctl/systemctl.py), e.g. installed by the .deb."""
    try:
        own = os.path.realpath(exe)
    except OSError:
        return False
    return any(os.path.realpath(path) == own for path in paths if os.path.exists(path))


def ensure_console():
    """fds 0-2 on /dev/console when the kernel could not give us one."""
    try:
        os.fstat(1)
        return
    except OSError:
        pass
    try:
        fd = os.open("/dev/console", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        fd = os.open("/dev/null", os.O_RDWR)
    for target in (0, 1, 2):
        if fd != target:
            os.dup2(fd, target)


def choose_services_dir(options):
    if options.get("services"):
        return options["services"]
    try:
        if any(e.endswith(".svc") for e in os.listdir(SERVICES_DIR)):
            return SERVICES_DIR
    except OSError:
        pass
    if os.path.isdir(FALLBACK_SERVICES_DIR):
        return FALLBACK_SERVICES_DIR
    return SERVICES_DIR


UNIT_DIRS = ("/etc/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system")


def choose_unit_dirs(options, environ=os.environ, exists=os.path.exists,
                     realpath=os.path.realpath):
    """The systemd unit directories whose enabled units PID 1 imports (docs/spec.md,
    "Services from systemd unit files"): --units DIR..., else on a Debian root
    (/etc/debian_version) booted with the default services directory (no --services)
    /etc/systemd/system and /lib/systemd/system (and /usr/lib/systemd/system when it is
    another directory); none with --no-units or SCHEMA_UNITS=none on the kernel
    command line."""
    if options.get("no_units") or environ.get("SCHEMA_UNITS") == "none":
        return []
    if options.get("units"):
        return list(options["units"])
    if options.get("services") or not exists("/etc/debian_version"):
        return []
    found, seen = [], set()
    for directory in UNIT_DIRS:
        if exists(directory) and realpath(directory) not in seen:
            seen.add(realpath(directory))
            found.append(directory)
    return found


def rescue_shell(services_dir, console):
    """A shell on the console while PID 1 keeps reaping and petting; returns its pid."""
    console.write("\n*** schema-init: nothing can boot ***\n"
                  "rescue shell: put services in %s, then type 'exit' to re-read it\n\n"
                  % services_dir)
    shell = "/bin/sh" if os.path.exists("/bin/sh") else "/bin/busybox"
    return console_program(shell, [shell] if shell == "/bin/sh" else [shell, "sh"],
                           dict(os.environ, PS1="(rescue) # "))


SINGLE_USER_WORDS = frozenset((b"single", b"s", b"S", b"1", b"-s", b"emergency", b"rescue",
                               b"systemd.unit=rescue.target",
                               b"systemd.unit=emergency.target"))
SULOGIN = ("/sbin/sulogin", "/usr/sbin/sulogin", "/bin/sulogin")


def single_user_requested(cmdline):
    return any(word in SINGLE_USER_WORDS for word in cmdline.split())


def single_user(console):
    """``single``/``emergency``/``rescue`` on the kernel command line: sulogin (a root
    shell once root's password is given; Ctrl-D goes on) on the console before any
    service starts; the boot goes on when it exits.  Orphans are reaped meanwhile."""
    program = next((p for p in SULOGIN if os.path.exists(p)), None)
    say(console, "single-user mode (kernel command line): %s on the console; the boot "
        "goes on when it exits" % (program or "/bin/sh"))
    if program is None:
        shell = "/bin/sh" if os.path.exists("/bin/sh") else "/bin/busybox"
        pid = console_program(shell, [shell] if shell == "/bin/sh" else [shell, "sh"],
                              dict(os.environ, PS1="(single) # "))
    else:
        pid = console_program(program, [program], dict(os.environ))
    while pid > 0:
        try:
            if os.waitpid(-1, 0)[0] == pid:
                break
        except ChildProcessError:
            break
        except InterruptedError:
            continue
    say(console, "single-user shell ended: booting")


def console_program(path, argv, env):
    """Start a program on the console as its session leader; returns its pid."""
    pid = os.fork()
    if pid == 0:
        try:
            spawn.default_signals()
            try:
                fd = os.open("/dev/console", os.O_RDWR)
                os.login_tty(fd)          # setsid, controlling tty, fds 0-2
            except OSError:
                os.setsid()
            os.execve(path, argv, env)
        finally:
            os._exit(127)
    return pid


def boot(options):
    """PID 1's main: prepare the machine, run the loop, shut down, reboot()."""
    ensure_console()
    console = logs.Console(1)
    mount_early(console)
    container = in_container()
    if container:
        say(console, "in a container (%s): / is left alone" % container)
    mount_all(console, container)
    ensure_console()
    try:
        _fastloop.reboot(RB_DISABLE_CAD)     # Ctrl-Alt-Del arrives as SIGINT: a clean reboot
    except OSError:
        pass
    os.umask(0o022)
    try:
        os.chdir("/")
    except OSError:
        pass
    if not container and single_user_requested(kernel_cmdline()):
        single_user(console)
    options = dict(options)
    options["units"] = choose_unit_dirs(options)
    options["services"] = choose_services_dir(options)
    from . import slots                  # issue 23: the A/B trial's watch (pid1/slots.py)
    machine = slots.trial_runtime(Pid1Runtime)(options, container, console=console)
    machine.run()
    return 0                           # not reached: finish() reboots


class Pid1Runtime(runtime.Runtime):
    """The loop of ``runtime`` with PID 1's duties in its hooks, ending in
    ``final_shutdown`` instead of an exit."""

    def __init__(self, options, container, console):
        env = dict(os.environ) if container else services_environment(
            os.environ, kernel_cmdline(), read_small("/etc/default/locale"))
        runtime.Runtime.__init__(self, options, console=console, env=env)
        self.container = container

    def make_paths(self):
        return effects.Paths.for_pid1()

    def prepare_process(self):
        pass                           # PID 1 is every orphan's parent already

    def detect_cgroups(self):
        return cgroup.Cgroups.detect(True)

    def watchdog_candidates(self):
        """--watchdog, else SCHEMA_WATCHDOG=PATH|none from the kernel command line (QEMU
        7.2's raspi0 freezes when its watchdog is started: its boots say none), else the
        first of /dev/watchdog0, /dev/watchdog."""
        path = self.options.get("watchdog") or os.environ.get("SCHEMA_WATCHDOG")
        if path == "none":
            return []
        return [path] if path else ["/dev/watchdog0", "/dev/watchdog"]

    def nothing_to_boot(self, loaded):
        runtime.Runtime.nothing_to_boot(self, loaded)
        self.start_rescue_shell()

    def start_rescue_shell(self):
        self.rescue_pid = rescue_shell(self.services_dir, self.console)

    def reaped_own_child(self, pid, now):
        if pid != self.rescue_pid or not pid:
            return False
        self.rescue_pid = 0
        self.console.write("[schema-init] rescue shell exited: re-reading %s\n"
                           % self.services_dir)
        self.begin_reload(False, self.after_rescue_reload)
        return True

    def after_rescue_reload(self, lines):
        if lines[0].startswith("err:"):
            self.start_rescue_shell()

    def after_reap(self, now):
        """The watchdog device may come with a module a oneshot loads: try again."""
        if self.watchdog.fd >= 0:
            return
        if self.watchdog.open(self.watchdog_candidates()):
            self.supervisor.deadman.start(self.pet_interval(), now)

    def publish(self):
        """Also: while a getty (session=1) runs, PID 1's lines go to the kernel log."""
        changed = self.supervisor.changed
        runtime.Runtime.publish(self)
        if changed and not self.container and self.stopping is None:
            getty = any(s.spec.session and s.pid for s in self.supervisor.services.values())
            if getty != self.console.aside:
                self.console.set_aside(getty)

    def _stop(self, how, system_state):
        self.console.set_aside(False)          # the shutdown is said on the console
        runtime.Runtime._stop(self, how, system_state)

    def finish(self):
        self.console.set_aside(False)
        final_shutdown(self, self.stopping or "poweroff")


def pet_while(machine, seconds, done):
    """Wait up to ``seconds`` for ``done()``, reaping and petting the watchdog."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        _fastloop.reap()
        machine.watchdog.pet()
        if done():
            return True
        time.sleep(0.02)
    return done()


def final_shutdown(machine, how):
    console = machine.console
    say(console, "shutdown: services stopped")
    if not machine.container:
        try:
            from schema_init.lib import utmp            # imported now: PID 1 carries it only to the end
            utmp.append_shutdown(level="6" if how == "reboot" else "0")
        except Exception:
            pass
    machine.watchdog.pet()
    try:
        os.kill(-1, signal.SIGKILL)
    except OSError:
        pass
    pet_while(machine, KILL_WAIT_SECS, lambda: not spawn.has_children())
    say(console, "shutdown: SIGKILL broadcast")
    try:
        machine.server.close()
    except Exception:
        pass
    try:
        machine.publisher.close(unlink=True)
    except Exception:
        pass
    machine.cgroups.remove_base()
    say(console, "shutdown: control socket and shm released")
    syncer = os.fork()
    if syncer == 0:
        os.sync()
        os._exit(0)
    finished = [False]

    def synced():
        try:
            pid, _ = os.waitpid(syncer, os.WNOHANG)
        except ChildProcessError:
            return True
        return pid == syncer
    finished[0] = pet_while(machine, SYNC_DEADLINE_SECS, synced)
    say(console, "shutdown: sync done" if finished[0] else "shutdown: sync timed out - continuing")
    if machine.container:
        say(console, "shutdown: in a container, filesystems left as they are")
    else:
        count = remount_read_only(console)
        say(console, "shutdown: filesystems read-only (%d)" % count)
    command = {"reboot": RB_AUTOBOOT, "halt": RB_HALT_SYSTEM}.get(how, RB_POWER_OFF)
    say(console, "PID 1 %s" % (how if how in ("reboot", "halt") else "poweroff"))
    while True:
        try:
            _fastloop.reboot(command)
        except OSError as exc:
            say(console, "reboot(): %s" % exc.strerror)
        time.sleep(1)                  # PID 1 must never return


def remount_read_only(console):
    """Every real filesystem read-only, last mounted first; returns how many."""
    entries = []
    try:
        with open("/proc/self/mounts", "rb") as f:
            for line in f:
                fields = line.decode("utf-8", "replace").split()
                if len(fields) >= 3:
                    entries.append((fields[1].replace("\\040", " "), fields[2]))
    except OSError:
        return 0
    count = 0
    for target, fstype in reversed(entries):
        if fstype in VIRTUAL_FILESYSTEMS or fstype.startswith("fuse"):
            continue
        try:
            _fastloop.mount(None, target, None, MS_REMOUNT | MS_RDONLY)
            count += 1
        except OSError as exc:
            try:
                _fastloop.umount(target, MNT_DETACH)
                say(console, "shutdown: %s busy (%s), detached" % (target, exc.strerror))
            except OSError:
                say(console, "shutdown: %s stays writable: %s" % (target, exc.strerror))
    return count
