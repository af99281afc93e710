"""A reload read in slices: the services directory's files read and parsed a few at a
time between the loop's other work, so no reload holds the loop (docs/spec.md,
"Reloading").

Rules of this file: no policy (what a reload changes is ``core.commands``'s plan); each
``step`` reads and parses files until its budget is spent, and at least one file, so a
reload of any size ends; the unit directories (when units are imported) are read in
the last step, as one piece.
"""

import os
import time

from schema_init.core import config
from . import loader

SLICE = 0.005       # seconds of reading and parsing per loop turn


class ReloadJob:
    def __init__(self, directory, unit_dirs, evict, clock=time.monotonic):
        self.directory = directory
        self.unit_dirs = unit_dirs
        self.evict = evict
        self.clock = clock
        self.answers = []          # answer(lines) of everyone who asked for this reload
        self.parsed = []           # config.parse_entry results
        self.turns = 0             # loop turns this reload took (steps)
        self.unreadable = None
        try:
            entries = os.listdir(directory)
        except OSError as exc:
            self.unreadable = config.unreadable_directory(directory, exc.strerror or exc)
            entries = []
        # read in name order (pop from the end of the reversed list)
        self.pending = sorted((e for e in entries if config.is_config_file(e)), reverse=True)

    def step(self, budget=SLICE):
        """Read and parse files for ``budget`` seconds (at least one file); True when
        every file is parsed."""
        self.turns += 1
        deadline = self.clock() + budget
        while self.pending:
            entry = self.pending.pop()
            data, reason = loader.read_file(self.directory.rstrip("/") + "/" + entry)
            self.parsed.append(config.parse_entry(self.directory, entry, data, reason))
            if self.clock() >= deadline:
                break
        return not self.pending

    def result(self):
        """The directory's ``config.LoadResult``, once ``step`` said it is done."""
        if self.unreadable is not None:
            return self.unreadable
        loaded = config.combine_directory(self.directory, self.parsed)
        if self.unit_dirs:
            loader.add_units(loaded, self.unit_dirs)
        return loaded
