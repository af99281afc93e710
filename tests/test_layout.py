"""The folder rules (docs/architecture.md): which room of ``schema_init`` may import which.

Read from the source with ``ast`` (nothing is imported), so a forbidden import fails
here even when it is made lazily inside a function.  Each rule below fails when one
import line breaks it; ``test_the_rules_catch_a_forbidden_import`` proves the checker
itself sees such a line.
"""

import ast
import os
import sys

import pytest

from conftest import ROOT

PACKAGE = os.path.join(ROOT, "schema_init")

# room -> the rooms it may import (the standard library is always allowed).  The
# arrows run one way only: programs -> pid1 -> units -> core.
ALLOWED = {
    "core": set(),
    "lib": set(),
    "units": {"core"},
    "pid1": {"core", "lib"},                # units: only in the import helper
    "journal": {"pid1", "core"},         # the compiled loop's inotify and trim_heap; digits
    "ctl": {"core", "analyze", "pid1", "update"},  # pid1: top's terminal mode; update
    "analyze": {"core"},                 # the shm reader, the boot's timeline and chart
    "metrics": {"analyze", "core"},
    "systemctl": {"ctl"},
    "power": {"ctl", "lib", "pid1", "core"},
    "firstboot": set(),
    "subreaper": {"pid1"},
    "fleet": {"firstboot", "update"},    # the rollout's buckets, the bundle's reader
    "update": {"core", "pid1"},          # pid1/slots.py: the record, autoboot.txt
    "import_units": {"core", "units", "pid1"},   # reads unit dirs as PID 1 does (loader)
    # the package's top level: the multi-call entry and the docs generator
    "": {"core", "pid1", "ctl", "systemctl", "power", "journal", "firstboot", "subreaper",
         "units", "import_units", "metrics", "update"},
}


def rooms():
    return sorted(name for name in os.listdir(PACKAGE)
                  if os.path.isdir(os.path.join(PACKAGE, name)) and name != "__pycache__")


def modules():
    """(room, path) for every module of the package; room "" for the top level."""
    for dirpath, dirnames, filenames in os.walk(PACKAGE):
        dirnames[:] = [d for d in dirnames if d != "__pycache__"]
        room = os.path.relpath(dirpath, PACKAGE)
        room = "" if room == "." else room.split(os.sep)[0]
        for name in filenames:
            if name.endswith(".py"):
                yield room, os.path.join(dirpath, name)


def imported_rooms(source, room):
    """The rooms of schema_init a module's source imports, each with its line."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:
                names = [room] if node.module or room else [a.name for a in node.names]
            elif node.level:
                names = ["<up>"]              # `from .. import`: always forbidden
            elif node.module == "schema_init":
                names = [a.name if a.name in ALLOWED else "" for a in node.names]
            elif node.module and node.module.startswith("schema_init."):
                names = [node.module.split(".")[1]]
            else:
                continue
        elif isinstance(node, ast.Import):
            names = [a.name.split(".")[1] if a.name.count(".") else ""
                     for a in node.names if a.name.startswith("schema_init")]
        else:
            continue
        found.extend((name, node.lineno) for name in names)
    return found


def violations(room, path, source):
    out = []
    for target, line in imported_rooms(source, room):
        if target in ("", room):
            continue                          # the package itself (__version__), own room
        if target not in ALLOWED.get(room, set()):
            out.append("%s:%d: room %r imports %r" % (os.path.relpath(path, ROOT), line,
                                                       room or "(top)", target))
    return out


def test_every_room_has_rules_and_a_docstring():
    assert set(rooms()) == set(ALLOWED) - {""}
    for room in rooms():
        with open(os.path.join(PACKAGE, room, "__init__.py")) as f:
            tree = ast.parse(f.read())
        # a room's __init__ is a docstring and nothing else: PID 1 pays for every line
        # of code in it (docs/architecture.md)
        assert len(tree.body) == 1 and isinstance(tree.body[0], ast.Expr), room


def test_every_import_follows_the_rooms_arrows():
    bad = []
    for room, path in modules():
        with open(path) as f:
            bad += violations(room, path, f.read())
    assert not bad, "\n".join(bad)


def test_the_core_imports_nothing_outside_itself_but_the_standard_library():
    """The pure core's stdlib imports: nothing that starts a process or opens a file of
    its own (os is allowed for its constants and path functions; tests/test_lifecycle.py
    runs the core with os's process and file functions raising)."""
    stdlib = set(sys.stdlib_module_names)
    for room, path in modules():
        if room != "core":
            continue
        with open(path) as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                tops = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                tops = [node.module.split(".")[0]]
            else:
                continue
            for top in tops:
                assert top in stdlib, "%s:%d imports %s" % (path, node.lineno, top)
                assert top not in ("subprocess", "socket", "select", "signal", "_signal",
                                   "threading", "multiprocessing"), (path, node.lineno, top)


def test_the_rooms_have_no_circle():
    edges = {room: set() for room in ALLOWED}
    for room, path in modules():
        with open(path) as f:
            for target, _ in imported_rooms(f.read(), room):
                if target in ALLOWED and target not in ("", room):
                    edges[room].add(target)

    def reaches(start, goal, seen=()):
        return any(nxt == goal or (nxt not in seen and reaches(nxt, goal, seen + (nxt,)))
                   for nxt in edges[start])
    circles = [room for room in edges if room and reaches(room, room)]
    assert not circles, circles


def test_the_rules_catch_a_forbidden_import():
    """The checker is not blind: lines that break the rules are reported."""
    path = os.path.join(PACKAGE, "core", "x.py")
    assert violations("core", path, "from schema_init.pid1 import runtime\n")
    assert violations("core", path, "def f():\n    from schema_init.lib import utmp\n")
    assert violations("core", path, "import schema_init.journal.journal\n")
    assert violations("core", path, "from .. import pid1\n")
    assert violations("units", path, "from schema_init.pid1 import loader\n")
    assert not violations("pid1", path, "from schema_init.core import config\n")
    assert not violations("core", path, "from . import schema\n")


def test_the_compiled_loop_names_its_room():
    with open(os.path.join(ROOT, "_fastloop.pyx")) as f:
        head = f.read(2000)
    assert "schema_init.pid1._fastloop" in head
    with open(os.path.join(ROOT, "setup.py")) as f:
        assert 'Extension("schema_init.pid1._fastloop"' in f.read()


def test_build_holds_the_recipe_not_the_product():
    """C sources and headers of the product live in native/; build/ has the recipe
    (scripts, patches) and its outputs (out/, tmp/, ignored by git)."""
    product = []
    for dirpath, dirnames, filenames in os.walk(os.path.join(ROOT, "build")):
        dirnames[:] = [d for d in dirnames if d not in ("out", "tmp", "__pycache__")]
        product += [os.path.join(dirpath, n) for n in filenames if n.endswith((".c", ".h"))]
    assert not product, product
    native = os.listdir(os.path.join(ROOT, "native"))
    assert {"preinit.c", "ctlfast.c", "powerkey.c", "inittab.c", "schema_ctl.h",
            "schema_shm.h"} <= set(native)


def test_every_service_set_lives_under_services():
    """One place per service set, named by what boots it; no .svc elsewhere but test
    data."""
    stray = []
    for dirpath, dirnames, filenames in os.walk(ROOT):
        rel = os.path.relpath(dirpath, ROOT)
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and
                       (rel, d) not in ((".", "build"), (".", "tests"))]
        if rel == "services" or rel.startswith("services" + os.sep):
            continue
        stray += [os.path.join(rel, n) for n in filenames if n.endswith((".svc", ".grp"))]
    assert not stray, stray
    sets = sorted(os.listdir(os.path.join(ROOT, "services")))
    assert sets == ["bench", "buildroot", "debian", "demo", "qemu", "reference", "rpi-zero-w"]


@pytest.mark.parametrize("room", ["core"])
def test_a_room_docstring_states_its_rule(room):
    with open(os.path.join(PACKAGE, room, "__init__.py")) as f:
        assert "imports only" in f.read()


# Rooms the static binary does not carry (build/build.sh: --nofollow-import-to).
NOT_IN_THE_BINARY = ("fleet",)
NOT_IN_THE_BINARY_FILES = ("reference.py",)
# Excluded modules a binary's module may still import, each with why that is safe.
KNOWN_OUTSIDE = {
    # built into Debian's static libpython3.11-pic.a (Nuitka's report finds it there)
    "schema_init/update/bundle.py:zlib": "a gzip squashfs block, on the device",
    # ssh_fingerprint: card making on the host, never run by the device's binary
    "schema_init/firstboot/values.py:hashlib": "the host's ssh fingerprint",
}


def test_no_module_of_the_binary_imports_a_standard_module_the_build_leaves_out():
    """build/stdlib_excludes.py lists the standard modules the static binary does not
    carry (those no eager import of the programs reaches); a lazy import of one inside a
    function fails only in the binary, only when that line runs: `systemctl preset`
    imported fnmatch and broke every `apt-get install` of a daemon.  Every import line
    of the binary's modules, function-level ones included, is checked here."""
    import subprocess
    excluded = set(subprocess.run([sys.executable, os.path.join(ROOT, "build",
                                                                "stdlib_excludes.py")],
                                  capture_output=True, text=True, check=True,
                                  cwd=ROOT).stdout.strip().split(","))
    assert "fnmatch" in excluded and "os" not in excluded      # the list is the real one
    excluded -= set(sys.builtin_module_names)     # gc: in the interpreter itself
    found = []
    for room, path in modules():
        if room in NOT_IN_THE_BINARY or os.path.basename(path) in NOT_IN_THE_BINARY_FILES:
            continue
        with open(path) as f:
            tree = ast.parse(f.read())
        guarded = {id(inner) for node in ast.walk(tree) if isinstance(node, ast.Try) and
                   any("ImportError" in ast.dump(h) for h in node.handlers)
                   for statement in node.body for inner in ast.walk(statement)}
        for node in ast.walk(tree):
            if id(node) in guarded:
                continue                          # try: ... except ImportError: a fallback
            names = []
            if isinstance(node, ast.Import):
                names = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module.split(".")[0]]
            for name in names:
                where = "%s:%s" % (os.path.relpath(path, ROOT), name)
                if name in excluded and where not in KNOWN_OUTSIDE:
                    found.append("%s:%d: imports %s" % (os.path.relpath(path, ROOT),
                                                        node.lineno, name))
    assert found == []
