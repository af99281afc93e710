"""The import helper and systemd's generators: PID 1 converts no unit itself, it runs
``schema-init import-units --into DIR`` (schema_init/pid1/loader.py, UnitImport) at boot
and in a reload's slices; the helper runs the generators (schema_init/units/
generators.py) in a chroot for these tests, Debian's own postgresql-generator and
postfix-instance-generator among them (their .deb fetched with apt-get download)."""

import os
import shutil
import stat
import subprocess
import sys
import time

import pytest

from conftest import ROOT, program
from harness import Supervised
from schema_init.pid1 import loader, reloading
from schema_init.units import generators
from test_lsb import debian_package

BUSYBOX = shutil.which("busybox")
TOOLS = ("sh", "sed", "mkdir", "ln", "test", "[", "sleep", "cat", "echo", "true", "rm")


def busybox_root(root):
    """A root a shell generator runs in: a static busybox and its tools in /bin."""
    if BUSYBOX is None:
        pytest.fail("these tests need a static busybox (apt-get install busybox-static)")
    (root / "bin").mkdir(parents=True, exist_ok=True)
    shutil.copy(BUSYBOX, root / "bin" / "busybox")
    for tool in TOOLS:
        os.symlink("busybox", root / "bin" / tool)
    for name in ("usr/bin", "usr/lib", "lib/systemd/system", "etc/systemd/system", "dev"):
        (root / name).mkdir(parents=True, exist_ok=True)
    os.mknod(root / "dev" / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    return root


def script(path, text, mode=0o755):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def import_root(root, out, *extra):
    return subprocess.run([program("schema-init"), "import-units", "--root", str(root),
                           "--generators", "--into", str(out)] + list(extra),
                          capture_output=True, text=True, timeout=120)


# --- which generators, and running them ---------------------------------------------------

def test_an_earlier_directory_masks_a_later_one_and_dev_null_or_empty_masks_outright(tmp_path):
    etc = tmp_path / "etc" / "systemd" / "system-generators"
    lib = tmp_path / "lib" / "systemd" / "system-generators"
    script(etc / "one", "#!/bin/sh\n")
    script(lib / "one", "#!/bin/sh\nexit 1\n")
    lib.mkdir(parents=True, exist_ok=True)
    os.symlink("/dev/null", lib / "masked")
    script(lib / "empty", "")
    script(lib / "plain", "#!/bin/sh\n", mode=0o644)
    script(lib / "two", "#!/bin/sh\n")
    script(lib / "systemd-getty-generator", "#!/bin/sh\n")      # systemd's own: not run
    found, reports = generators.find(str(tmp_path))
    assert found == [("one", str(etc / "one")), ("two", str(lib / "two"))]
    assert [(r.name, r.problem) for r in reports] == [("plain", "not an executable file; "
                                                                "not run")]


def test_generators_get_the_three_emptied_directories_and_overrunning_ones_are_killed(tmp_path):
    root = busybox_root(tmp_path / "root")
    gens = root / "lib" / "systemd" / "system-generators"
    script(gens / "writer", "#!/bin/sh\necho '[Service]' > \"$1/made.service\"\n"
           "mkdir -p \"$2/early.d\" \"$3/late.d\"\necho early > \"$2/early.d/x.conf\"\n"
           "echo late > \"$3/late.d/x.conf\"\n")
    script(gens / "failing", "#!/bin/sh\necho 'cannot read my config' >&2\nexit 3\n")
    script(gens / "hanging", "#!/bin/sh\nsleep 4242 &\nsleep 4243\n")
    stale = root / "run" / "systemd" / "generator" / "stale.service"
    stale.parent.mkdir(parents=True)
    stale.write_text("[Service]\n")
    started = time.monotonic()
    reports = generators.run(str(root), timeout=2.0)
    assert time.monotonic() - started < 6, "the generators ran one after the other"
    normal = root / "run" / "systemd" / "generator"
    assert sorted(os.listdir(normal)) == ["made.service"]           # emptied first
    assert (root / "run/systemd/generator.early/early.d/x.conf").read_text() == "early\n"
    assert (root / "run/systemd/generator.late/late.d/x.conf").read_text() == "late\n"
    said = {r.name: r.lines() for r in reports}
    assert said["writer"] == []
    assert said["failing"] == [("warning", "exited 3"), ("warning", "said: cannot read my "
                                                                    "config")]
    assert said["hanging"] == [("warning", "killed: still running after 2 s")]
    out = subprocess.run(["pgrep", "-f", "sleep 424[23]"], capture_output=True, text=True)
    assert out.stdout.strip() == "", "the hanging generator's child outlived it"


def test_the_search_path_puts_the_generators_where_systemd_does():
    path = generators.SEARCH_PATH
    assert path.index(generators.EARLY) < path.index("/etc/systemd/system")
    assert path.index("/etc/systemd/system") < path.index("/run/systemd/system") < \
        path.index(generators.NORMAL) < path.index("/lib/systemd/system")
    assert path[-1] == generators.LATE


# --- Debian's generators ------------------------------------------------------------------

@pytest.fixture(scope="module")
def postgresql_common(tmp_path_factory):
    return debian_package("postgresql-common", tmp_path_factory)


@pytest.fixture(scope="module")
def postfix(tmp_path_factory):
    return debian_package("postfix", tmp_path_factory)


def postgresql_root(tmp_path, package, start):
    root = busybox_root(tmp_path / "root")
    for path in ("lib/systemd/system-generators/postgresql-generator",
                 "lib/systemd/system/postgresql.service",
                 "lib/systemd/system/postgresql@.service"):
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(package / path, root / path)
    cluster = root / "etc" / "postgresql" / "15" / "main"
    cluster.mkdir(parents=True)
    (cluster / "postgresql.conf").write_text("port = 5432\n")
    (cluster / "start.conf").write_text("# Automatic startup configuration\n%s\n" % start)
    script(root / "usr/lib/postgresql/15/bin/postgres", "#!/bin/sh\n")
    wants = root / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True)
    os.symlink("/lib/systemd/system/postgresql.service", wants / "postgresql.service")
    return root


def test_postgresql_generator_makes_each_auto_cluster_an_imported_instance(tmp_path,
                                                                         postgresql_common):
    root = postgresql_root(tmp_path, postgresql_common, "auto")
    out = tmp_path / "out"
    run = import_root(root, out)
    assert run.returncode == 0, run.stderr
    link = root / "run/systemd/generator/postgresql.service.wants/postgresql@15-main.service"
    assert os.readlink(link) == "/lib/systemd/system/postgresql@.service"
    made = sorted(os.listdir(out))
    assert "postgresql@15-main.svc" in made and "postgresql.svc" in made, made
    loaded = loader.load_directory(str(out))
    names = {s.name: s for s in loaded.services}
    cluster = names["postgresql@15-main"]
    assert any("/usr/bin/pg_ctlcluster" in word for word in (cluster.exec,) + cluster.args)


def test_a_manual_cluster_is_no_instance(tmp_path, postgresql_common):
    root = postgresql_root(tmp_path, postgresql_common, "manual")
    out = tmp_path / "out"
    run = import_root(root, out)
    assert run.returncode == 0, run.stderr
    assert os.listdir(root / "run/systemd/generator/postgresql.service.wants") == []
    assert not any(n.startswith("postgresql@") for n in os.listdir(out))


def test_postfix_instance_generator_makes_its_default_instance(tmp_path, postfix):
    root = busybox_root(tmp_path / "root")
    for path in ("lib/systemd/system-generators/postfix-instance-generator",
                 "lib/systemd/system/postfix.service", "lib/systemd/system/postfix@.service"):
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(postfix / path, root / path)
    script(root / "usr/sbin/postconf", "#!/bin/sh\nexit 0\n")     # no multi-instance dirs
    (root / "usr/bin").mkdir(parents=True, exist_ok=True)
    wants = root / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True)
    os.symlink("/lib/systemd/system/postfix.service", wants / "postfix.service")
    out = tmp_path / "out"
    run = import_root(root, out)
    assert run.returncode == 0, run.stderr
    assert os.readlink(root / "run/systemd/generator/postfix.service.wants/postfix@-.service") \
        == "/lib/systemd/system/postfix@.service"
    assert "postfix@-.svc" in os.listdir(out), os.listdir(out)


# --- the helper, as PID 1 runs it ---------------------------------------------------------

def units_dir(tmp_path, *names, missing=()):
    directory = tmp_path / "units"
    wants = directory / "multi-user.target.wants"
    wants.mkdir(parents=True)
    for name in names:
        (directory / (name + ".service")).write_text(
            "[Service]\nExecStart=/bin/sleep 1000\n")
        os.symlink("../%s.service" % name, wants / (name + ".service"))
    for name in missing:
        os.symlink("../%s.service" % name, wants / (name + ".service"))
    return directory


def test_into_replaces_the_directory_whole_through_a_link(tmp_path):
    units = units_dir(tmp_path, "one")
    out = tmp_path / "run" / "units"
    first = subprocess.run([program("schema-init"), "import-units", "--into", str(out),
                            "--token", "t1", str(units)], capture_output=True, text=True,
                           timeout=60)
    assert first.returncode == 0, first.stderr
    assert os.path.islink(out) and sorted(os.listdir(out)) == ["diagnostics", "one.svc"]
    old = os.path.realpath(out)
    (units / "two.service").write_text("[Service]\nExecStart=/bin/sleep 1000\n")
    os.symlink("../two.service", units / "multi-user.target.wants" / "two.service")
    second = subprocess.run([program("schema-init"), "import-units", "--into", str(out),
                             "--token", "t2", str(units)], capture_output=True, text=True,
                            timeout=60)
    assert second.returncode == 0, second.stderr
    assert sorted(os.listdir(out)) == ["diagnostics", "one.svc", "two.svc"]
    assert not os.path.exists(old) and os.path.realpath(out) != old
    assert sorted(os.listdir(tmp_path / "run")) == ["units", os.path.basename(
        os.path.realpath(out))]
    assert (out / "diagnostics").read_text().splitlines()[0] == \
        "%s\tt2" % loader.UnitImport.HEADER


def test_what_the_helper_says_comes_back_as_diagnostics_and_what_is_missing_is_named(tmp_path):
    units = units_dir(tmp_path, "present", missing=["ghost"])
    for name, text in (("data.mount", "[Mount]\nWhat=/dev/sdb1\nWhere=/data\n"),
                       ("spool.path", "[Path]\nPathChanged=/var/spool/x\n")):
        (units / name).write_text(text)
        os.symlink("../" + name, units / "multi-user.target.wants" / name)
    (tmp_path / "svc").mkdir()
    (tmp_path / "svc" / "a.svc").write_text("exec=/bin/true\n")
    loaded = loader.load_directory(str(tmp_path / "svc"), [str(units)])
    assert sorted(s.name for s in loaded.services) == ["a", "present"]
    said = [d.format() for d in loaded.diagnostics]
    assert "%s/multi-user.target.wants/ghost.service: warning: not imported: ghost.service " \
        "(wanted by multi-user.target): " % units in "\n".join(said), said
    assert "%s/spool.path: warning: not imported: spool.path (wanted by multi-user.target" \
        % units in "\n".join(said), said
    # a mount unit's file (a package's, a generator's) is not run here: said, not lost
    assert "%s/data.mount: warning: not imported: data.mount (wanted by multi-user.target" \
        "): mount units are not run here" % units in "\n".join(said), said
    assert all(d.from_unit for d in loaded.diagnostics)        # status lists them
    assert not [n for n in os.listdir("/tmp") if n.startswith("schema-init-units.%d."
                                                               % os.getpid())]


def test_a_machine_with_many_diagnostics_still_gets_its_units(tmp_path):
    """The import's diagnostics run far over 4 kB on a real server (the corpus root: 93
    units lost to this once): the header is what tells this run's import, not the size."""
    ghosts = ["ghost-%03d-with-a-long-enough-name" % i for i in range(80)]
    units = units_dir(tmp_path, "present", missing=ghosts)
    (tmp_path / "svc").mkdir()
    loaded = loader.load_directory(str(tmp_path / "svc"), [str(units)])
    said = "\n".join(d.format() for d in loaded.diagnostics)
    assert [s.name for s in loaded.services] == ["present"], said
    assert said.count("not imported: ghost-") == 80
    assert len(said) > 8192 and "importing the units failed" not in said


REAL_IMPORT = loader.UnitImport


class SlowImport(REAL_IMPORT):
    """The real helper started after a pause (a helper that takes its time)."""
    pause = 0.5

    def command(self):
        program_, argv = REAL_IMPORT.command(self)
        return "/bin/sh", ["sh", "-c", 'sleep %s; exec "$@"' % self.pause, "sh"] + argv


def test_a_helper_that_overruns_is_killed_and_the_svc_files_still_load(tmp_path, monkeypatch):
    units = units_dir(tmp_path, "present")
    (tmp_path / "svc").mkdir()
    (tmp_path / "svc" / "a.svc").write_text("exec=/bin/true\n")
    class Overrun(SlowImport):
        pause = 30

        def __init__(self, *args, **kwargs):
            SlowImport.__init__(self, *args, timeout=0.5, **kwargs)
    monkeypatch.setattr(loader, "UnitImport", Overrun)
    started = time.monotonic()
    loaded = loader.load_directory(str(tmp_path / "svc"), [str(units)])
    assert time.monotonic() - started < 3
    assert [s.name for s in loaded.services] == ["a"]
    assert [d.format() for d in loaded.errors] == [
        "%s: error: importing the units failed (the import helper ran over 0.5 s and was "
        "killed); only the .svc files are loaded" % units]


def test_a_failing_helper_says_why_and_the_previous_import_is_kept(tmp_path, monkeypatch):
    units = units_dir(tmp_path, "present")
    (tmp_path / "svc").mkdir()
    out = str(tmp_path / "units-out")
    first = loader.UnitImport([str(units)], ["x"], out)
    first.start()
    assert first.wait() and first.failure is None

    class Broken(loader.UnitImport):
        def command(self):
            return "/bin/sh", ["sh", "-c", "echo 'Traceback: boom' >&2; exit 1"]
    broken = Broken([str(units)], ["x"], out)
    broken.start()
    assert broken.wait()
    previous = loader.DirectoryRead(broken.result_directory())
    previous.step()
    loaded = broken.merge(loader.config.LoadResult(str(tmp_path / "svc"), [], [], []),
                          previous)
    assert [s.name for s in loaded.services] == ["present"]
    assert [d.format() for d in loaded.errors] == [
        "%s: error: importing the units failed (the import helper exited 1: Traceback: "
        "boom); the services of the previous import are kept" % units]


def test_a_reload_waits_for_the_helper_a_slice_at_a_time(tmp_path, monkeypatch):
    units = units_dir(tmp_path, "present")
    (tmp_path / "svc").mkdir()
    (tmp_path / "svc" / "a.svc").write_text("exec=/bin/true\n")
    monkeypatch.setattr(loader, "UnitImport", SlowImport)
    job = reloading.ReloadJob(str(tmp_path / "svc"), [str(units)], False)
    steps, longest = 0, 0.0
    while True:
        started = time.monotonic()
        done = job.step()
        longest = max(longest, time.monotonic() - started)
        steps += 1
        if done:
            break
    assert steps > 20, "the helper's half second was waited for in one piece"
    assert longest < 0.05, longest
    assert sorted(s.name for s in job.result().services) == ["a", "present"]


@pytest.mark.process
def test_pid1_imports_units_without_loading_the_unit_modules(tmp_path):
    units = units_dir(tmp_path, "present", missing=["ghost"])
    s = Supervised(tmp_path / "sup", {"a.svc": "exec=/bin/sleep\nargs=1000\n"},
                   env=dict(os.environ, SCHEMA_INIT_TEST_HOOKS="1"),
                   args=["--units", str(units)])
    s.start()
    try:
        s.wait_state("present", ("FULL_TRUST", "FUNDAMENTAL"), 20)
        modules = s.ctl("test-modules").stdout.split()
        assert "schema_init.pid1.loader" in modules
        assert not [m for m in modules if m.startswith("schema_init.units")], modules
        assert not {"argparse", "subprocess", "json"} & set(modules)
        status = s.ctl("status").stdout
        assert "dropped: %s/multi-user.target.wants/ghost.service: warning: not imported: " \
            "ghost.service (wanted by multi-user.target)" % units in status, status
        # a reload imports again, in the helper: a unit enabled since is added
        (units / "late.service").write_text("[Service]\nExecStart=/bin/sleep 1000\n")
        os.symlink("../late.service", units / "multi-user.target.wants" / "late.service")
        reply = s.ctl("reload")
        assert "  added: late" in reply.stdout.splitlines(), reply.stdout
        modules = s.ctl("test-modules").stdout.split()
        assert not [m for m in modules if m.startswith("schema_init.units")], modules
    finally:
        s.stop()


@pytest.mark.namespace
def test_pid1_of_a_debian_root_imports_its_units_through_the_helper(tmp_path):
    """The static binary as PID 1 of a root that looks like Debian (/etc/debian_version,
    units enabled in /etc/systemd/system): the helper (the same binary) converts them into
    /run/schema-init/units, PID 1 runs them, and never loads the unit modules."""
    from conftest import sh
    from nsroot import Namespace
    unit = "[Unit]\nDescription=web\n[Service]\nExecStart=/bin/sleep 1000\n"
    wants = "/etc/systemd/system/multi-user.target.wants/"
    ns = Namespace(tmp_path, {"a.svc": sh("exec sleep 1000", stable_secs=0),
                              "web.service": unit},
                   env={"SCHEMA_INIT_TEST_HOOKS": "1"},
                   links=[("/etc/debian_version", "/etc/schema-init/services/web.service"),
                          ("/lib/systemd/system/web.service",
                           "/etc/schema-init/services/web.service"),
                          (wants + "web.service", "/lib/systemd/system/web.service"),
                          (wants + "ghost.service", "/lib/systemd/system/ghost.service")])
    ns.start()
    try:
        ns.wait(lambda: ns.status().get("web", {}).get("state") in ("FULL_TRUST",
                                                                    "FUNDAMENTAL"),
                30, "web imported and running")
        modules = set(ns.ctl("test-modules").stdout.split())
        assert "schema_init.pid1.loader" in modules
        assert not [m for m in modules if m.startswith("schema_init.units")], modules
        assert modules & {"re", "shutil", "subprocess", "argparse", "json", "enum",
                          "tempfile"} == set()
        imported = ns.path("/run/schema-init/units")
        assert os.path.islink(imported)
        assert sorted(os.listdir(imported)) == ["diagnostics", "web.svc"]
        assert "dropped: %sghost.service: warning: not imported: ghost.service (wanted by " \
            "multi-user.target)" % wants in ns.ctl("status").stdout
        assert ns.ctl("reload").stdout.startswith("ok: reload")
        assert sorted(os.listdir(imported)) == ["diagnostics", "web.svc"]
    finally:
        ns.kill()
