import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_BIN = os.path.join(ROOT, ".venv", "bin")

# `make test-cross` runs the build and process tiers on another board's binary under
# qemu-user (binfmt_misc): SCHEMA_INIT_TARGET names that board.
EMULATED_TARGET = os.environ.get("SCHEMA_INIT_TARGET") \
    if os.environ.get("SCHEMA_INIT_TARGET", os.uname().machine) != os.uname().machine else None


def program(name):
    """Path of an installed entry point (schema-init, schema-ctl) of the test venv.

    SCHEMA_INIT_BIN points the process tiers at another build of the program (the
    static binary); its schema-ctl is the same file run under that name.
    """
    override = os.environ.get("SCHEMA_INIT_BIN")
    if override:
        return os.path.join(os.path.dirname(override), name)
    path = os.path.join(VENV_BIN, name)
    if not os.path.exists(path):
        path = os.path.join(os.path.dirname(sys.executable), name)
    return path


@pytest.fixture
def schema_init_cmd():
    return program("schema-init")


def started_each(build):
    """The body of a fixture handing out started things (VMs, namespaces): yields
    ``make(*args, **kwargs)``, which builds one with ``build(count, *args, **kwargs)``,
    starts it and returns it; every one made is killed at the end."""
    made = []

    def make(*args, **kwargs):
        thing = build(len(made), *args, **kwargs)
        made.append(thing)
        return thing.start()
    yield make
    for thing in made:
        thing.kill()


@pytest.fixture
def supervise(tmp_path):
    """``make(files, **kwargs)``: a started schema-init (harness.Supervised) on FILES in
    its own directory under tmp_path; every one made is stopped at the end."""
    from harness import Supervised
    made = []

    def make(files, **kwargs):
        s = Supervised(tmp_path / ("s%d" % len(made)), files, **kwargs)
        made.append(s)
        return s.start()
    yield make
    for s in made:
        s.stop()


def sh(script, **keys):
    """A .svc running ``script`` with /bin/sh -c, plus the given keys."""
    return "exec=/bin/sh\nargs=-c\nargs=%s\n" % script + \
        "".join("%s=%s\n" % kv for kv in keys.items())


# A case whose emulator stalled (pi_image.EmulatorStalled: QEMU raspi0 stopped running the
# guest, its console silent and QEMU idle) is run once more from its start, fixtures
# included, and says so; a second stall, and any other failure, stands.
STALLED = pytest.StashKey[bool]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    if call.excinfo is not None and call.excinfo.typename == "EmulatorStalled":
        item.stash[STALLED] = True


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
    if item.get_closest_marker("image") is None and item.get_closest_marker("stall_rerun") is None:
        return None
    from _pytest.runner import runtestprotocol
    item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    for attempt in (1, 2):
        item.stash[STALLED] = False
        reports = runtestprotocol(item, nextitem=nextitem, log=False)
        if attempt == 2 or not item.stash[STALLED]:
            break
        reporter = item.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line("\n%s: the emulator stalled (EmulatorStalled); the case "
                                "runs once more" % item.nodeid, yellow=True)
        item._initrequest()
    for report in reports:
        item.ihook.pytest_runtest_logreport(report=report)
    item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
    return True
