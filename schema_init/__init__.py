"""schema-init: a PID 1 init system and service supervisor."""

__version__ = "0.2.0"
