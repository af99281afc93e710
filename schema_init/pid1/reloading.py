"""A reload read in slices: the services directory's files read and parsed a few at a
time between the loop's other work, so no reload holds the loop (docs/spec.md,
"Reloading").

Rules of this file: no policy (what a reload changes is ``core.commands``'s plan); each
``step`` reads and parses files until its budget is spent, and at least one file, so a
reload of any size ends.  When units are imported, the import helper
(``loader.UnitImport``, ``schema-init import-units``: generators, units, init scripts)
starts once the .svc files are parsed, each later step waits for its end at most a
slice (it is killed after ``loader.IMPORT_TIMEOUT``), then the directory it wrote is
read in slices as the services directory was.  PID 1 never converts a unit itself.
"""

import time

from . import loader

SLICE = 0.005       # seconds of reading and parsing per loop turn


class ReloadJob(loader.DirectoryRead):
    """The directory read (``loader.DirectoryRead``) of one reload, and who asked."""

    def __init__(self, directory, unit_dirs, evict, clock=time.monotonic):
        loader.DirectoryRead.__init__(self, directory, unit_dirs, clock)
        self.evict = evict
        self.answers = []          # answer(lines) of everyone who asked for this reload
        self.turns = 0             # loop turns this reload took (steps)

    def step(self, budget=SLICE):
        self.turns += 1
        return loader.DirectoryRead.step(self, budget)
