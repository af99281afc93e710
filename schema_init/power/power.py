"""``reboot``, ``poweroff``, ``halt``, ``shutdown``, ``telinit``, ``runlevel``: the names
people type, as names of the multi-call binary.

They ask PID 1 through the control socket (``$SCHEMA_CTL_SOCKET`` or
``/run/schema-init.sock``), so services are stopped in order and filesystems synced and
remounted read-only.  ``-f`` (``--force``) skips PID 1, as everywhere else: sync (unless
``-n``), then reboot(2) at once.  ``shutdown TIME`` has PID 1 hold the deadline
(``schedule``), so it survives the terminal that typed it; ``shutdown -c`` cancels it.
The message is written to every logged-in user's terminal (``wall``, from utmp).

Exit status: 0 done, 1 PID 1 refused or could not be reached, 2 usage error.
"""

import os
import sys
import time

from schema_init.core.digits import ascii_digits
from schema_init.lib import utmp

SYSCALLS = {"reboot": 0x01234567, "poweroff": 0x4321FEDC, "halt": 0xCDEF0123 - (1 << 32)}

USAGES = {
    "reboot": "usage: reboot [-f] [-n] [--no-wall] [-p|--poweroff] [--halt]\n",
    "poweroff": "usage: poweroff [-f] [-n] [--no-wall] [--reboot] [--halt]\n",
    "halt": "usage: halt [-f] [-n] [--no-wall] [-p|--poweroff] [--reboot]\n",
    "shutdown": "usage: shutdown [-r|-h|-P|-H] [-k] [--no-wall] [TIME] [MESSAGE...]\n"
                "       shutdown -c [MESSAGE...]\n"
                "  TIME: now, +MINUTES or HH:MM (default +1); -r reboot, -H halt,\n"
                "  -h/-P power off (the default); -k only warn; -c cancel\n",
    "telinit": "usage: telinit 0|6|2|3|4|5|q|u   (0 power off, 6 reboot, q reload,\n"
               "       u re-execute; 1/S: boot with 'single' on the kernel command line)\n",
    "runlevel": "usage: runlevel\n",
}


class Usage(Exception):
    pass


def main(name, argv, now=None):
    try:
        if name == "shutdown":
            return shutdown(argv, now)
        if name == "telinit":
            return telinit(argv)
        if name == "runlevel":
            return runlevel(argv)
        return power(name, argv)
    except Usage as exc:
        if str(exc):       # the words typed, shown as they can be (bytes not UTF-8: \xNN)
            sys.stderr.write(("%s: %s\n" % (name, exc)).encode(
                "utf-8", "backslashreplace").decode("utf-8"))
        sys.stderr.write(USAGES[name])
        return 2


def ask(line):
    """One request to PID 1: (exit status, reply text)."""
    from schema_init.ctl import ctl
    path = ctl.socket_path()
    try:
        reply = ctl.request(path, line)
    except OSError as exc:
        return 1, "cannot reach schema-init at %s (%s); -f acts without it\n" % (
            path, exc.strerror or exc)
    except ctl.IncompleteReply as exc:
        return 1, exc.text
    return (1 if reply.startswith("err:") else 0), reply


def report(status, reply):
    (sys.stderr if status else sys.stdout).write(reply)
    return status


def power(name, argv):
    action, force, sync, wall_too, record_only = name, 0, True, True, False
    for word in argv:
        if word in ("-f", "--force"):
            force += 1
        elif word in ("-ff",):
            force += 2
        elif word in ("-n", "--no-sync"):
            sync = False
        elif word == "--no-wall":
            wall_too = False
        elif word in ("-p", "--poweroff"):
            action = "poweroff"
        elif word == "--reboot":
            action = "reboot"
        elif word == "--halt":
            action = "halt"
        elif word in ("-w", "--wtmp-only"):
            record_only = True
        elif word in ("-d", "--no-wtmp", "-i"):
            pass                  # accepted for compatibility: nothing of theirs to do here
        elif word in ("-h", "--help"):
            sys.stdout.write(USAGES[name])
            return 0
        else:
            raise Usage("unknown option %s" % word)
    if record_only:
        utmp.append_shutdown(level="6" if action == "reboot" else "0")
        return 0
    if force:
        utmp.append_shutdown(level="6" if action == "reboot" else "0")
        if sync:
            os.sync()
        from schema_init.pid1 import _fastloop
        try:
            _fastloop.reboot(SYSCALLS[action])
        except OSError as exc:
            sys.stderr.write("%s: reboot(): %s\n" % (name, exc.strerror or exc))
            return 1
        return 0
    if wall_too:
        wall("The system is going down for %s NOW!" % action)
    return report(*ask(action))


def shutdown(argv, now=None):
    action, when, cancel, warn_only, wall_too, words = "poweroff", None, False, False, True, []
    options = True
    for word in argv:
        if options and word.startswith("-") and word != "-":
            if word == "--":
                options = False
            elif word in ("-r", "--reboot"):
                action = "reboot"
            elif word in ("-h", "-P", "--poweroff"):
                action = "poweroff"
            elif word in ("-H", "--halt"):
                action = "halt"
            elif word == "-c":
                cancel = True
            elif word == "-k":
                warn_only = True
            elif word == "--no-wall":
                wall_too = False
            elif word in ("-f", "-F", "-q", "-a"):
                pass               # sysvinit's fsck/quiet/access options: no meaning here
            elif word == "--help":
                sys.stdout.write(USAGES["shutdown"])
                return 0
            else:
                raise Usage("unknown option %s" % word)
        elif when is None and not cancel:
            when = word
            options = False
        else:
            words.append(word)
    message = " ".join(words)
    if cancel:
        status, reply = ask("cancel")
        if status == 0 and wall_too:
            wall(message or "The scheduled shutdown has been cancelled.")
        return report(status, reply)
    seconds = delay(when or "+1", time.localtime() if now is None else now)
    if wall_too:
        what = "The system is going down for %s %s!" % (
            action, "NOW" if seconds == 0 else "in %d minute%s" % (
                (seconds + 59) // 60, "" if seconds <= 60 else "s"))
        wall(what + ("\n" + message if message else ""))
    if warn_only:
        return 0
    if seconds == 0:
        return report(*ask(action))
    return report(*ask("schedule %s %d" % (action, seconds)))


def delay(when, local):
    """Seconds from now for ``now``, ``+MINUTES`` or ``HH:MM`` (today, else tomorrow);
    anything else is a Usage error, never an exception of its own."""
    if when == "now":
        return 0
    if when.startswith("+") and ascii_digits(when[1:], 6):
        return int(when[1:]) * 60
    hours, colon, minutes = when.partition(":")
    if colon and ascii_digits(hours, 2) and ascii_digits(minutes, 2) and len(minutes) == 2 and \
            int(hours) < 24 and int(minutes) < 60:
        target = int(hours) * 3600 + int(minutes) * 60
        current = local.tm_hour * 3600 + local.tm_min * 60 + local.tm_sec
        return (target - current) % 86400
    raise Usage("bad time %r: now, +MINUTES or HH:MM" % when[:40])


def telinit(argv):
    if len(argv) != 1:
        raise Usage("")
    word = argv[0]
    verbs = {"0": "poweroff", "6": "reboot", "q": "reload", "Q": "reload", "u": "reexec",
             "U": "reexec"}
    if word in verbs:
        return report(*ask(verbs[word]))
    if word in ("2", "3", "4", "5"):
        return 0                  # one multi-user level: already there
    if word in ("1", "s", "S"):
        sys.stderr.write("telinit: single-user mode is entered at boot: put 'single' on "
                         "the kernel command line\n")
        return 1
    raise Usage("unknown runlevel %s" % word)


def runlevel(argv):
    """sysvinit's output: previous and current level ("N 5": running multi-user)."""
    if argv:
        raise Usage("")
    status, reply = ask("list")
    if status:
        sys.stdout.write("unknown\n")
        return 1
    sys.stdout.write("N 5\n")
    return 0


def wall(text, path=utmp.UTMP):
    """Broadcast ``text`` to every logged-in terminal; never blocks on one.  Control
    characters (escape sequences) and what is not text become '?', as wall(1) does."""
    text = "".join(c if c.isprintable() or c in "\n\t" else "?" for c in text)
    banner = ("\r\nBroadcast message from schema-init (%s):\r\n\r\n%s\r\n\r\n" % (
        time.strftime("%a %Y-%m-%d %H:%M:%S"), text.replace("\n", "\r\n"))).encode()
    for tty in utmp.logged_in_terminals(path):
        try:
            fd = os.open(tty, os.O_WRONLY | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError:
            continue
        try:
            os.write(fd, banner)
        except OSError:
            pass
        finally:
            os.close(fd)
