"""The timer services' actions of the lifecycle table (see ``actions``, whose rules apply).

A timer rests in PERFECT between runs with ``due`` set to its next fire: interval
timers count from boot (``on_boot_sec``) and from each completion (``on_active_sec``),
calendar timers are compared on the wall clock (``timers``), and a persistent one
catches up a run missed while the machine was off (a stamp file per timer).  Each fire
(a catch-up too) waits a further ``randomized_delay_sec`` at most
(``timers.randomized_delay``).
"""

from . import schema, timers


class TimerActions:
    def arm_timer(self, service, now, wall, boot=False):
        """Schedule a timer's next run; it rests in PERFECT meanwhile."""
        sup, spec = self.sup, service.spec
        sup.enter(service, schema.PERFECT, now)
        service.timer_armed = True
        delay = timers.randomized_delay(spec.randomized_delay_sec, spec.name, now)
        if not spec.is_calendar:
            service.due = timers.interval_first_fire(now, spec.on_boot_sec) + delay
            return
        if boot and spec.persistent:
            stamp = sup.ops.read_stamp(spec.name)
            if not stamp:
                sup.ops.write_stamp(spec.name, int(wall))
            elif timers.catch_up_due(spec.on_calendar, wall, stamp):
                service.due = now + delay
                service.timer_wall = wall
                sup.rail(service, "timer-catchup")
                return
        fire = timers.next_occurrence(spec.on_calendar, wall, service.last_fire)
        if fire is None:
            service.timer_armed = False
            return
        service.timer_wall = fire
        service.due = now + (fire - wall) + delay

    def finish_timer_run(self, service, now, code, wall):
        sup, spec = self.sup, service.spec
        sup.enter(service, schema.PERFECT, now, reason="" if code == 0 else
                  "last run exited %d" % code)
        sup.rail(service, "timer-done" if code == 0 else "timer-failed")
        service.stable_time = now - sup.started_at
        if code == 0:
            service.mark_ready(now)
        else:
            service.count_failure()
        self._end_run(service, now, cleanup=False, post=code == 0)   # command_actions
        self.schedule_next_run(service, now, wall)

    def schedule_next_run(self, service, now, wall):
        """After a run (or a run a condition skipped): the timer's next one."""
        sup, spec = self.sup, service.spec
        if spec.is_calendar:
            if spec.persistent:
                sup.ops.write_stamp(spec.name, int(wall))
            self.arm_timer(service, now, wall)
            return
        service.due = timers.interval_next_fire(now, spec.on_active_sec)
        if service.due is not None:
            service.due += timers.randomized_delay(spec.randomized_delay_sec, spec.name, now)
        service.timer_armed = service.due is not None

    def fire_timer(self, service, now, wall):
        if service.spec.is_calendar and service.timer_wall is not None and \
                wall < service.timer_wall - 0.5:
            service.due = now + (service.timer_wall - wall)     # the wall clock went back
            return
        service.due = None
        service.last_fire = wall
        self.sup.enter(service, schema.NEW_PROCESS, now)
        self.sup.rail(service, "timer-fire")
