"""``supervisor.Ops`` is what the pure core calls for its effects, and no more: what only
the runtime uses (the listen= and NOTIFY_SOCKET holders, adopting them after a
re-exec) is the runtime's own, not reached through the supervisor's interface."""

import ast
import os

from conftest import ROOT
from fakes import FakeOps
from schema_init.core import supervisor
from schema_init.pid1 import effects


def calls_on_ops(path):
    """The attribute names read from anything called ``ops`` (``self.ops.spawn``,
    ``sup.ops.say``, ``ops.lookup_user``) in a module's source."""
    names = set()
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.Attribute):
            owner = node.value
            if (isinstance(owner, ast.Attribute) and owner.attr == "ops") or \
                    (isinstance(owner, ast.Name) and owner.id == "ops"):
                names.add(node.attr)
    return names


def interface():
    return {name for name in vars(supervisor.Ops) if not name.startswith("_")}


def test_the_ops_interface_is_exactly_what_the_core_calls():
    core = os.path.join(ROOT, "schema_init", "core")
    used = set()
    for name in os.listdir(core):
        if name.endswith(".py"):
            used |= calls_on_ops(os.path.join(core, name))
    assert interface() == used


def test_the_real_effects_and_the_fakes_offer_nothing_beyond_the_interface():
    for ops in (effects.RealOps, FakeOps):
        extra = {name for name in vars(ops) if not name.startswith("_")} - interface()
        assert extra == set(), ops


def test_the_runtime_reaches_nothing_through_ops():
    """The runtime hands its RealOps to the supervisor and uses it for nothing else."""
    for name in ("runtime.py", "machine.py"):
        assert calls_on_ops(os.path.join(ROOT, "schema_init", "pid1", name)) == set(), name
