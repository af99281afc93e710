"""The Dead Man Token: the hardware watchdog is petted only while every service that
asked for a pet window (``watchdog_timeout_ms``) was petted within it.

Pure: the clock is passed in; petting the device is ``ops.pet_watchdog``.  A miss
prints one line (not one per interval) and stops the petting until the service pets
again, so the hardware resets the machine if it never does.
"""


def window_ms(service):
    """The service's pet window in ms (0: none): WATCHDOG_USEC= or watchdog_sec= when
    given (``Service.watchdog_ms``), else watchdog_timeout_ms=."""
    if service.watchdog_ms is not None:
        return service.watchdog_ms
    return service.spec.watchdog_timeout_ms


class DeadManToken:
    def __init__(self, interval, now):
        self.interval = interval            # None: no hardware watchdog is open
        self.next_pet = now if interval else None

    def start(self, interval, now):
        """A watchdog device appeared (its module was loaded after boot)."""
        self.interval = interval
        self.next_pet = now

    def deadlines(self, services):
        if not self.interval:
            return []
        instants = [self.next_pet]
        for service in services:
            window = window_ms(service)
            if window and service.running() and not service.pet_missed:
                instants.append(service.last_pet + window / 1000.0)
        return instants

    def check(self, sup, now):
        if not self.interval:
            return
        healthy = True
        for service in sup.services.values():
            window = window_ms(service)
            if not window or not service.running():
                continue
            elapsed = (now - service.last_pet) * 1000.0
            if elapsed > window:
                healthy = False
                if not service.pet_missed:
                    service.pet_missed = True
                    sup.ops.say("[schema-init] watchdog: service '%s' missed pet window "
                                "(%dms > %dms)" % (service.name, elapsed, window))
        if healthy and self.next_pet is not None and now >= self.next_pet:
            sup.ops.pet_watchdog()
            self.next_pet = now + self.interval
        elif not healthy:
            self.next_pet = None          # stop petting: the hardware resets the machine

    def pet(self, service, now):
        """The service petted its token (``schema-ctl pet``)."""
        service.last_pet = now
        if service.pet_missed:
            service.pet_missed = False
            if self.interval and self.next_pet is None:
                self.next_pet = now
