"""build/frozen.py: the frozen-module table the binary links instead of CPython's
deep-freeze (pure: generates C text; the binary itself is checked in test_build.py)."""

import marshal
import os
import re
import subprocess
import sys

import pytest

from conftest import ROOT

sys.path.insert(0, os.path.join(ROOT, "build"))
import frozen  # noqa: E402

pytestmark = pytest.mark.skipif(sys.version_info[:2] != (3, 11),
                                reason="build/frozen.py is for CPython 3.11's tables")


def arrays(text):
    """name -> bytes of every `static const unsigned char NAME[N] = {...};`."""
    found = {}
    for name, size, body in re.findall(
            r"static const unsigned char (\w+)\[(\d+)\] = \{(.*?)\};", text, re.S):
        data = bytes(int(b) for b in body.replace("\n", "").split(",") if b.strip())
        assert len(data) == int(size)
        found[name] = data
    return found


def test_table_holds_the_bootstrap_marshalled_by_this_python():
    text = frozen.generate()
    found = arrays(text)
    # zipimport left out: CPython 3.11 starts without it (bench/REPORT-levers.md)
    assert set(found) == {"M__frozen_importlib", "M__frozen_importlib_external"}
    code = marshal.loads(found["M__frozen_importlib"])
    assert code.co_filename == "<frozen importlib._bootstrap>"
    assert "_install" in code.co_names
    # compiled with optimize=2: no docstrings
    assert code.co_consts[0] != frozen_doc("importlib._bootstrap")
    assert not find_and_load_doc(code)
    # the stdlib and test tables are empty, deep-freeze's start and end are no-ops
    assert "_PyImport_FrozenStdlib = no_modules" in text
    assert "int _Py_Deepfreeze_Init(void) { return 0; }" in text


def frozen_doc(module):
    """The module docstring of the stdlib module MODULE's source."""
    import ast
    with open(frozen.source_path(module)) as f:
        return ast.get_docstring(ast.parse(f.read()), clean=False)


def test_the_old_table_is_one_setting_away(monkeypatch):
    monkeypatch.setattr(frozen, "OPTIMIZE", 0)
    monkeypatch.setattr(frozen, "ZIPIMPORT", True)
    found = arrays(frozen.generate())
    assert "M_zipimport" in found
    code = marshal.loads(found["M__frozen_importlib"])
    assert frozen_doc("importlib._bootstrap") in code.co_consts
    assert find_and_load_doc(code)


def find_and_load_doc(code):
    """Whether _find_and_load's docstring is among the module's functions' constants."""
    return any(isinstance(c, str) and c.startswith("Find and load the module")
               for f in code.co_consts if hasattr(f, "co_code") for c in f.co_consts)


def test_generated_c_compiles(tmp_path):
    out = tmp_path / "frozen.c"
    frozen.main([str(out)])
    includes = subprocess.run(["python3.11-config", "--includes"], capture_output=True,
                              text=True, check=True).stdout.split()
    subprocess.run(["gcc", "-Wall", "-Werror", "-c", str(out), "-o", str(tmp_path / "f.o")]
                   + includes, check=True)
    symbols = subprocess.run(["nm", str(tmp_path / "f.o")], capture_output=True, text=True,
                             check=True).stdout
    for name in ("_PyImport_FrozenBootstrap", "_PyImport_FrozenStdlib", "_PyImport_FrozenTest",
                 "_PyImport_FrozenAliases", "PyImport_FrozenModules", "_Py_Deepfreeze_Init",
                 "_Py_Deepfreeze_Fini"):
        assert re.search(r" [DRBT] %s$" % name, symbols, re.M), name
