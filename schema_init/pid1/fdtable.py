"""The loop's file descriptors: for each one in the epoll set, the handler of its events.

Rules of this file:

* One table, kept in step with the epoll set: :meth:`FdTable.add` registers an fd
  and records its handler, :meth:`FdTable.remove` undoes both.  Nothing else in
  ``pid1`` registers an fd with the loop (tests/test_fdtable.py checks the source).
* The owner of an fd adds it when it opens it and removes it before it closes it:
  the runtime its signalfd, ``readywatch`` its inotify fd, ``control`` its listening
  socket and each client, ``sockets`` the listen= sockets it watches for an
  on-demand start, ``notify_socket`` the NOTIFY_SOCKETs.
* A handler is called as ``handler(fd, mask, now, wall)`` and turns the readiness
  into events for the supervisor (through a callback its owner was given).  The
  runtime's ``dispatch`` is :meth:`FdTable.dispatch`: a lookup, no list of kinds.

An event for an fd that has no handler (its owner removed it while handling an
earlier event of the same wake-up) is dropped and counted in ``strays``.
"""

from . import _fastloop


class FdTable:
    def __init__(self, loop):
        self.loop = loop
        self.handlers = {}        # fd -> handler(fd, mask, now, wall)
        self.strays = 0           # events for an fd no one holds any more

    def add(self, fd, handler, mask=_fastloop.READABLE):
        """Watch FD for MASK; its events go to HANDLER.  Raises OSError (and records
        nothing) when the loop refuses it."""
        self.loop.register(fd, mask)
        self.handlers[fd] = handler

    def modify(self, fd, mask):
        """What FD is watched for (readable, writable); its handler stays."""
        self.loop.modify(fd, mask)

    def remove(self, fd):
        """Stop watching FD (before its owner closes it); nothing if it is not here."""
        if self.handlers.pop(fd, None) is not None:
            self.loop.unregister(fd)

    def dispatch(self, fd, mask, now, wall):
        handler = self.handlers.get(fd)
        if handler is None:
            self.strays += 1
            return
        handler(fd, mask, now, wall)
