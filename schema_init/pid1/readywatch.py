"""Watching ``ready_path``s with inotify: which services to look at after an event."""

import os

from . import _fastloop

READY_MASK = (_fastloop.IN_CREATE | _fastloop.IN_DELETE | _fastloop.IN_MOVED_FROM |
              _fastloop.IN_MOVED_TO | _fastloop.IN_DELETE_SELF | _fastloop.IN_MOVE_SELF |
              _fastloop.IN_ATTRIB | _fastloop.IN_ONLYDIR)


class ReadyWatcher:
    """inotify on the directory of each ready_path (or its nearest existing ancestor).

    An event concerns a service only when it names the next component of its path
    (the file itself, or the missing directory on the way to it), so a directory
    shared by many services costs one check per event, not one per service.
    Its fd is in the loop's table (``fdtable``): the services an event concerns go to
    ``on_change(names, now)``.
    """

    SELF_EVENTS = _fastloop.IN_IGNORED | _fastloop.IN_DELETE_SELF | _fastloop.IN_MOVE_SELF

    def __init__(self, fds, on_change):
        self.fd = _fastloop.inotify_open()
        self.on_change = on_change
        fds.add(self.fd, self._on_readable)
        self.paths = {}          # service name -> ready_path
        self.by_wd = {}          # wd -> {service names}
        self.wd_of = {}          # service name -> (wd, the component it waits to see)

    def watch(self, name, path):
        self.unwatch(name)
        self.paths[name] = path
        directory, expect = os.path.dirname(path) or "/", os.path.basename(path)
        while True:
            try:
                wd = _fastloop.inotify_watch(self.fd, directory, READY_MASK)
                break
            except OSError:
                if directory in ("/", ""):
                    return
                directory, expect = os.path.dirname(directory), os.path.basename(directory)
        self.by_wd.setdefault(wd, set()).add(name)
        self.wd_of[name] = (wd, expect)

    def unwatch(self, name):
        self.paths.pop(name, None)
        wd, _ = self.wd_of.pop(name, (None, None))
        if wd is None:
            return
        names = self.by_wd.get(wd)
        if names is not None:
            names.discard(name)
            if not names:
                del self.by_wd[wd]
                _fastloop.inotify_unwatch(self.fd, wd)

    def _on_readable(self, fd, mask, now, wall):
        self.on_change(self.changed(), now)

    def changed(self):
        """Drain events; returns the services to look at (re-arming moved watches)."""
        names = set()
        for wd, mask, entry in _fastloop.inotify_read(self.fd):
            if wd < 0 or mask & _fastloop.IN_Q_OVERFLOW:
                names.update(self.paths)
                continue
            watchers = self.by_wd.get(wd, ())
            if mask & self.SELF_EVENTS:
                names.update(watchers)
                if mask & _fastloop.IN_IGNORED:
                    self.by_wd.pop(wd, None)
                continue
            for name in watchers:
                if self.wd_of[name][1] == entry:
                    names.add(name)
        for name in names:
            path = self.paths.get(name)
            if path is not None and (self.wd_of.get(name, (None, None))[1] !=
                                     os.path.basename(path) or
                                     self.wd_of[name][0] not in self.by_wd):
                self.watch(name, path)        # it watched an ancestor: move closer
        return names
