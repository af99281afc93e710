"""PID 1's last resort: what runs when the supervisor itself cannot.

PID 1 must never exit (the kernel panics).  When the boot raises an exception that
no guard caught, PID 1 first re-executes its own binary once (a fresh interpreter,
the same command line; the environment marks the attempt so it is made only once);
if that fails too, it stays alive as a bare reaper: it says so on the console and
reaps orphans for ever, so the machine keeps running what it runs and can still be
reached and rebooted by hand (``reboot -f`` from a shell that is already open).
"""

import os
import _signal as signal  # the C module: the signal.py wrapper loads enum
import time

ATTEMPT = "SCHEMA_INIT_LAST_RESORT"


def say(text):
    try:
        os.write(2, ("[schema-init] %s\n" % text).encode("utf-8", "replace"))
    except OSError:
        pass


def own_command():
    """(the executable, argv) this process was started with, to exec() it again: the
    kernel's copies, since the compiled program's sys.argv[0] is resolved."""
    with open("/proc/self/cmdline", "rb") as f:
        argv = [os.fsdecode(a) for a in f.read().split(b"\0")[:-1]]
    exe = os.readlink("/proc/self/exe")
    if exe.endswith(" (deleted)"):                 # replaced by an upgrade: the new one
        exe = exe[:-len(" (deleted)")]
    return exe, argv or [exe]


def reexec_once(why):
    """exec() ourselves again unless this process is already such a second try."""
    if os.environ.get(ATTEMPT):
        return
    say("PID 1 failed (%s): re-executing itself once" % why)
    try:
        exe, argv = own_command()
        os.environ[ATTEMPT] = "1"
        os.execv(exe, argv)
    except BaseException as exc:           # noqa: B902 - fall through to the reaper
        say("re-exec failed: %r" % (exc,))


def reap_forever(why):
    """Never returns: reap every child as it exits, for ever, sleeping in between."""
    say("PID 1 cannot supervise (%s): no services are managed any more; reaping "
        "orphans only - reboot this machine" % why)
    sigchld = getattr(signal, "SIGCHLD", 17)
    try:
        signal.pthread_sigmask(signal.SIG_BLOCK, {sigchld})
    except BaseException:                  # noqa: B902 - then sigwaitinfo times out
        pass
    while True:
        try:
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
        except ChildProcessError:
            pass
        except BaseException:              # noqa: B902 - nothing may end this loop
            pass
        try:
            signal.sigtimedwait({sigchld}, 60)     # the next child's exit wakes us
        except BaseException:              # noqa: B902
            try:
                time.sleep(1)
            except BaseException:          # noqa: B902
                pass
