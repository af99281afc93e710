"""The handover file a re-executing PID 1 leaves for its successor.

Tab-separated text: the watchdog fd kept open across exec, the rescue shell's pid,
a scheduled shutdown (its action and monotonic deadline: the clock runs on across exec),
every service's pid, state and counters, the instants the boot chart and the live
board show (``origin``: schema-init's and the supervisor's first start; ``times`` per
service), and the pids still to reap.  A line of a type a reader does not know is
skipped, so an older successor takes over without the newer lines.  Writing it
changes nothing in the supervisor; reading it never raises (a damaged line is
skipped).  The format is ``handover_text``'s and ``parse_handover``'s, nobody else's.
"""

MAGIC = "schema-init-handover 1"
HANDOVER_FIELDS = ("name", "pid", "state", "restarts", "failures", "dormant", "cgroup",
                   "stable_time", "ready_seen")
# Per service, on a ``times`` line of its own: counters never reset and monotonic
# instants ("" for None); the last failure's reason is the line's last field.
TIMES_FIELDS = ("spawns", "failed_runs", "state_since", "spawned_at", "ready_at",
                "boot_spawned_at", "boot_ready_at", "last_failure")


SCHEDULED_ACTIONS = ("reboot", "poweroff", "halt")


def _instant(value):
    return "" if value is None else "%.6f" % value


def handover_text(sup, watchdog_fd, rescue_pid, scheduled=None, listen=(), notify=(),
                  kernel_to_init=None):
    """Tab-separated state of every service that the next exec takes over; ``listen``:
    ``[(name, fd, description, mode, user, group)]`` of the listen= sockets kept open,
    ``notify``: ``[(name, fd, address)]`` of the NOTIFY_SOCKETs kept open."""
    lines = [MAGIC, "watchdog_fd\t%d" % watchdog_fd,
             "rescue\t%d" % rescue_pid]
    if scheduled is not None:
        lines.append("scheduled\t%s\t%.6f" % scheduled)
    if kernel_to_init is not None:
        lines.append("origin\t%.6f\t%.6f" % (kernel_to_init, sup.started_at))
    unmanaged = set(sup.unmanaged)
    for service in sup.ordered():
        if service.dying:
            unmanaged.add(service.dying)      # killed: the successor only reaps it
        lines.append("service\t" + "\t".join(str(v) for v in (
            service.name, service.pid, service.state, service.restarts, service.failures,
            service.dormant_count, service.cgroup or "",
            "" if service.stable_time is None else "%.6f" % service.stable_time,
            int(service.ready_seen))))
        lines.append("times\t" + "\t".join([service.name, str(service.spawns),
                                              str(service.failed_runs)] +
                                             [_instant(getattr(service, key))
                                              for key in TIMES_FIELDS[2:-1]] +
                                             [_one_line(service.last_failure)]))
    for pid in sorted(unmanaged):
        lines.append("unmanaged\t%d" % pid)
    for name, fd, description, mode, user, group in listen:
        lines.append("listen\t%s\t%d\t%s\t%o\t%s\t%s" % (name, fd, description, mode,
                                                         user, group))
    for name, fd, address in notify:
        lines.append("notify\t%s\t%d\t%s" % (name, fd, address))
    return "\n".join(lines) + "\n"


def _one_line(text):
    return text.replace("\t", " ").replace("\n", " ")


def parse_handover(data):
    """The handover's facts from its bytes (None or damaged: nothing handed over)."""
    result = {"services": [], "watchdog_fd": -1, "rescue": 0, "unmanaged": [],
              "scheduled": None, "listen": [], "notify": [], "origin": None, "times": {}}
    if not data or not data.startswith(MAGIC.encode() + b"\n"):
        return result
    for line in data.decode("utf-8", "replace").splitlines()[1:]:
        fields = line.split("\t")
        try:
            if fields[0] == "watchdog_fd":
                result["watchdog_fd"] = int(fields[1])
            elif fields[0] == "rescue":
                result["rescue"] = int(fields[1])
            elif fields[0] == "scheduled" and fields[1] in SCHEDULED_ACTIONS:
                result["scheduled"] = (fields[1], float(fields[2]))
            elif fields[0] == "origin" and len(fields) == 3:
                result["origin"] = (float(fields[1]), float(fields[2]))
            elif fields[0] == "times" and len(fields) == len(TIMES_FIELDS) + 2:
                spawns, failed = int(fields[2]), int(fields[3])
                instants = [float(v) if v else None for v in fields[4:-1]]
                result["times"][fields[1]] = dict(
                    zip(TIMES_FIELDS, [spawns, failed] + instants + [fields[-1]]))
            elif fields[0] == "unmanaged":
                result["unmanaged"].append(int(fields[1]))
            elif fields[0] == "listen" and len(fields) == 7:
                result["listen"].append((fields[1], int(fields[2]), fields[3],
                                         int(fields[4], 8), fields[5], fields[6]))
            elif fields[0] == "notify" and len(fields) == 4:
                result["notify"].append((fields[1], int(fields[2]), fields[3]))
            elif fields[0] == "service" and len(fields) == len(HANDOVER_FIELDS) + 1:
                name, pid, state, restarts, failures, dormant, cgroup_path, stable, ready = \
                    fields[1:]
                result["services"].append({
                    "name": name, "pid": int(pid), "state": int(state),
                    "restarts": int(restarts), "failures": int(failures),
                    "dormant": int(dormant), "cgroup": cgroup_path,
                    "stable_time": float(stable) if stable else None, "ready_seen": ready == "1"})
        except (ValueError, IndexError):
            continue
    return result


def strip_resume(argv):
    out, skip = [], False
    for word in argv:
        if skip:
            skip = False
            continue
        if word == "--resume":
            skip = True
            continue
        if word.startswith("--resume="):
            continue
        out.append(word)
    return out
