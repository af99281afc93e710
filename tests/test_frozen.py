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
    assert set(found) == {"M__frozen_importlib", "M__frozen_importlib_external",
                          "M_zipimport"}
    code = marshal.loads(found["M__frozen_importlib"])
    assert code.co_filename == "<frozen importlib._bootstrap>"
    assert "_install" in code.co_names
    # the stdlib and test tables are empty, deep-freeze's start and end are no-ops
    assert "_PyImport_FrozenStdlib = no_modules" in text
    assert "int _Py_Deepfreeze_Init(void) { return 0; }" in text


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
