"""Builds schema_init with its Cython hot loop (schema_init._fastloop from _fastloop.pyx).

The static single binary is built by build/ (make); this file serves the venv used by
the tests and by development.
"""

from setuptools import Extension, setup

try:
    from Cython.Build import cythonize
except ImportError:            # pragma: no cover - the Makefile installs Cython first
    raise SystemExit("setup.py needs Cython: pip install cython")

setup(
    name="schema-init",
    version="0.2.0",
    description="PID 1 init system and service supervisor",
    packages=["schema_init"],
    ext_modules=cythonize(
        [Extension("schema_init._fastloop", ["_fastloop.pyx"])],
        compiler_directives={"language_level": "3", "boundscheck": False,
                             "wraparound": False},
    ),
    entry_points={"console_scripts": [
        "schema-init = schema_init.__main__:entry",
        "schema-ctl = schema_init.__main__:entry",
        "schema-subreaper = schema_init.__main__:entry",
        "schema-journald = schema_init.__main__:entry",
        "journalctl = schema_init.__main__:entry",
        "schema-firstboot = schema_init.__main__:entry",
    ]},
    python_requires=">=3.11",
)
