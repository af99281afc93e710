"""schema-init: the PID 1 path (and the supervisor beside another init).

The event loop, its effects on the OS, the control socket's server, shared memory,
the rail, and what only PID 1 does; the compiled loop ``_fastloop`` (from the
top-level ``_fastloop.pyx``) lives here.  Imports: ``core``, ``lib``, ``units``
(lazily, when unit files are imported).
"""
