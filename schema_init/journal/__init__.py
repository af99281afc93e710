"""schema-journald (the sink) and journalctl; ``journal`` is their pure core.
"""
