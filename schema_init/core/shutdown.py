"""Stopping every service, dependents before their dependencies.

Pure: each service gets SIGTERM once nothing running depends on it; SIGKILL follows
at its own stop timeout (``Supervisor.request_stop``); when the longest stop timeout
(plus a second) has passed, whatever is left is killed, and again every second.
"""

from . import lifecycle


class ShutdownOrder:
    def __init__(self, sup):
        self.sup = sup
        self.active = False
        self.deadline = None

    def begin(self, now):
        sup = self.sup
        self.active = True
        longest = 0
        for service in sup.services.values():
            longest = max(longest, service.spec.stop_timeout_sec)
            service.due = None
            service.timer_armed = False
        self.deadline = now + longest + 1
        self._stop_ready(now)

    def _stop_ready(self, now):
        sup = self.sup
        for name in reversed(sup.order):
            service = sup.services[name]
            if not service.stoppable() or service.stop_intent == "shutdown":
                continue
            if any(sup.services[d].busy() for d in sup.graph.dependents.get(name, ())):
                continue
            sup.fire(service, "shutdown", now, intent="shutdown")

    def progress(self, now):
        """Called after each event while shutting down; True once nothing runs."""
        sup = self.sup
        if now >= (self.deadline or now):
            for service in sup.services.values():
                target = service.pid or service.dying or \
                    (service.control.pid if service.control is not None else 0)
                if target:
                    sup.ops.signal(service, target, lifecycle.SIGKILL)
            self.deadline = now + 1
        else:
            self._stop_ready(now)
        return not any(s.busy() for s in sup.services.values())
