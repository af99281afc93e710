"""Rail and console line formats (docs/spec.md) and the traceback formatter."""

import time

from schema_init.pid1 import logs
from schema_init.core import schema


def test_format_exception_names_every_frame():
    from schema_init.pid1 import logs

    def inner():
        raise ValueError("bad value")
    try:
        inner()
    except ValueError:
        text = logs.format_exception()
    lines = text.splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert "in inner" in lines[-2] and lines[-1] == "ValueError: bad value"
    assert "test_logs.py" in text


def test_rail_line_is_the_originals_format():
    clock = time.mktime((2024, 1, 2, 3, 4, 5, 0, 0, -1))
    line = logs.rail_line("sshd", "promote", schema.FUNDAMENTAL, 8, 1234, clock)
    assert line == ("[03:04:05] sshd                  promote       state=FUNDAMENTAL   "
                    "wt=8  pid=1234\n")


def test_rail_line_is_cut_at_255_bytes():
    line = logs.rail_line("x" * 63, "e" * 300, schema.EXCISED, 0, 0)
    assert len(line.encode()) <= 255 and line.endswith("\n")


def test_group_line_uses_lower_case_state_words():
    clock = time.mktime((2024, 1, 2, 3, 4, 5, 0, 0, -1))
    assert logs.group_line("net", schema.DORMANT, 2, clock) == \
        "[03:04:05] [group] net                   state-change  state=dormant  members=2\n"


def test_generated_reference_is_not_stale():
    import os
    from conftest import ROOT
    from schema_init import reference
    with open(os.path.join(ROOT, "docs", "reference.md")) as f:
        assert f.read() == reference.reference(), \
            "regenerate: python -m schema_init.reference > docs/reference.md"
