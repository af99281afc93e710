"""Which processes a signal meant for a service reaches, as its kill_mode= says.

Rules of this file:

* Pure: the facts in (the service's kill_mode, the signal, its main pid, whether it
  has a cgroup), the targets out, in the order they are to be signalled.  ``spawn``
  carries them out with one system call each and decides nothing.
* The targets are the words below; nothing else is ever signalled for a service.

Theory of operation (config's ``kill_mode`` key; docs/spec.md).  ``control-group``, the
default, reaches every process of the service: its cgroup (SIGKILL through
``cgroup.kill``, which the kernel applies to every member at once; any other signal to
each pid of ``cgroup.procs``), then the process group ``spawn``'s setsid made (the
service's processes when there is no cgroup), then the main process itself (it may have
left its group).  ``process`` reaches the main process only: what it started outlives
it (sshd's sessions across a restart).  ``mixed`` is ``process`` for SIGTERM (the main
process stops its children itself) and ``control-group`` for SIGKILL.  A process that is
no service's (a failsafe command, an evicted orphan) has no kill_mode (None): its group,
then itself; a control command of the service (exec_pre, exec_stop, ...) is signalled
so too, alone, while the rest of the service runs on.

The stop's first signal is the service's ``kill_signal`` (SIGTERM by default), the
SIGKILL at its stop timeout only with ``send_sigkill`` (``leftover_signal`` says what
the remains of an ended run get).
"""

from .lifecycle import SIGKILL

CGROUP_KILL = "cgroup.kill"     # write 1 to the cgroup's cgroup.kill (SIGKILL only)
CGROUP = "cgroup"               # the signal to each pid of the cgroup's cgroup.procs
GROUP = "group"                 # kill(-pid, sig): the main process's process group
MAIN = "main"                   # kill(pid, sig): the main process


def signal_targets(kill_mode, sig, pid, has_cgroup):
    """What to signal, in order: a tuple of CGROUP_KILL, CGROUP, GROUP, MAIN.

    ``pid``: the main process (0: none, only the cgroup is left); ``has_cgroup``: the
    service's processes are in a cgroup of their own."""
    if kill_mode == "process" or (kill_mode == "mixed" and sig != SIGKILL):
        return (MAIN,) if pid > 0 else ()
    targets = ()
    if has_cgroup:
        targets = (CGROUP_KILL,) if sig == SIGKILL else (CGROUP,)
    if pid > 0:
        targets += (GROUP, MAIN)
    return targets


def kills_leftovers(kill_mode):
    """Whether what is left of a service once its main process has ended (its cgroup's
    other processes) is killed: always but with kill_mode=process."""
    return kill_mode != "process"


def leftover_signal(kill_mode, kill_signal, send_sigkill):
    """The signal what is left of a service gets once its run is over (None: it is
    left alone): SIGKILL, or with send_sigkill=0 only its kill_signal."""
    if not kills_leftovers(kill_mode):
        return None
    return SIGKILL if send_sigkill else kill_signal
