"""schema-init import-units: systemd unit files written out as .svc files (a program of
its own: PID 1 reads units through ``pid1.loader``, never through this room).
"""
