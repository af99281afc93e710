"""schema-init: a PID 1 init system and service supervisor."""

import sys

__version__ = "0.2.0"

# In the static binary the Cython hot loop is linked in as the built-in module
# `_schema_fastloop` (a built-in cannot be a submodule); make `schema_init.pid1._fastloop`
# name it, so every import site reads the same in both builds.
try:
    import _schema_fastloop
except ImportError:
    pass
else:
    sys.modules[__name__ + ".pid1._fastloop"] = _schema_fastloop
