"""systemd unit files: ``units`` (pure) maps them onto services; ``import_units`` is
``schema-init import-units``.  Never loaded by PID 1 unless unit files are imported.
"""
