"""Builds schema_init with its Cython hot loop (schema_init.pid1._fastloop from _fastloop.pyx).

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
    packages=["schema_init", "schema_init.core", "schema_init.pid1", "schema_init.lib",
              "schema_init.journal", "schema_init.units", "schema_init.ctl",
              "schema_init.systemctl", "schema_init.power", "schema_init.firstboot",
              "schema_init.subreaper", "schema_init.fleet", "schema_init.analyze",
              "schema_init.metrics"],
    ext_modules=cythonize(
        [Extension("schema_init.pid1._fastloop", ["_fastloop.pyx"])],
        compiler_directives={"language_level": "3", "boundscheck": False,
                             "wraparound": False},
        build_dir="build/tmp/cython",
    ),
    # setuptools' own scratch (build/lib*, build/temp*) goes with the other outputs,
    # not beside the recipe in build/.
    options={"build": {"build_base": "build/tmp/setuptools"}},
    entry_points={"console_scripts": [
        "schema-init = schema_init.__main__:entry",
        "schema-ctl = schema_init.__main__:entry",
        "schema-subreaper = schema_init.__main__:entry",
        "schema-journald = schema_init.__main__:entry",
        "journalctl = schema_init.__main__:entry",
        "schema-firstboot = schema_init.__main__:entry",
        "schema-metrics = schema_init.__main__:entry",
    ]},
    python_requires=">=3.11",
)
