"""What a call costs, counted so that a test needs no wall-clock budget (the seconds
themselves are measured in bench/, whose reports can say how noisy the machine was).

``lines_run`` counts the lines of schema_init's own Python a call runs: exact, the same
on every machine and under any load, so a test can say "the same for a file twice as
long" (bounded by a limit) or "about twice for a chain twice as long" (linear, where a
quadratic walk would run four times as many).  It does not see work done in C (a list
scan, a copy): where such a cost matters a bench/ script times it.
"""

import os
import sys

import schema_init

PACKAGE = os.path.dirname(os.path.abspath(schema_init.__file__)) + os.sep


def lines_run(function, *args, **kwargs):
    """``(result, count)``: ``function(*args, **kwargs)`` and the number of lines of
    code under schema_init/ it ran (sys.settrace line events).  A first call may import
    modules, whose top-level lines count too: warm up before comparing two counts."""
    count = 0

    def in_frame(frame, event, arg):
        nonlocal count
        if event == "line":
            count += 1
        return in_frame

    def on_call(frame, event, arg):
        return in_frame if frame.f_code.co_filename.startswith(PACKAGE) else None

    previous = sys.gettrace()
    sys.settrace(on_call)
    try:
        result = function(*args, **kwargs)
    finally:
        sys.settrace(previous)
    return result, count
