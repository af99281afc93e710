"""systemctl as Debian's maintainer scripts call it (schema_init/systemctl/systemctl.py), run as a
name of the real program against a real supervisor; and when PID 1 claims systemd."""

import os
import signal
import subprocess

import pytest

from harness import Supervised, daemon
from schema_init.pid1 import loader, machine as pid1
from test_power import named


def systemctl(tmp_path, s, *args):
    env = dict(os.environ, SCHEMA_CTL_SOCKET=s.socket)
    return subprocess.run([named(tmp_path, "systemctl")] + list(args), capture_output=True,
                          text=True, timeout=30, env=env)


@pytest.mark.process
def test_what_invoke_rc_d_and_deb_systemd_invoke_ask(tmp_path):
    hup = tmp_path / "hup"
    s = Supervised(tmp_path / "sup", {
        "cron.svc": daemon("trap 'echo reloaded >> %s' HUP" % hup,
                           "while :; do sleep 0.1; done", stable_secs=0)})
    s.start()
    try:
        s.wait_state("cron", "FUNDAMENTAL")
        first = s.status()["cron"]["pid"]
        done = systemctl(tmp_path, s, "--quiet", "is-enabled", "cron.service")
        assert done.returncode == 0 and done.stdout == ""
        assert systemctl(tmp_path, s, "is-active", "cron").stdout == "active\n"
        done = systemctl(tmp_path, s, "show", "-p", "MainPID", "--value", "cron.service")
        assert done.stdout == first + "\n"
        done = systemctl(tmp_path, s, "--system", "restart", "cron.service")
        assert done.returncode == 0, done.stderr
        s.wait(lambda: s.status()["cron"]["pid"] not in ("0", first) and
               s.status()["cron"]["state"] == "FUNDAMENTAL", 10, "a new cron")
        s.wait_trapped("cron", signal.SIGHUP)
        assert systemctl(tmp_path, s, "reload", "cron").returncode == 0
        s.wait(lambda: hup.exists() and "reloaded" in hup.read_text(), 5, "SIGHUP")
        assert systemctl(tmp_path, s, "stop", "cron.service").returncode == 0
        s.wait_state("cron", "EXCISED")
        done = systemctl(tmp_path, s, "is-active", "cron.service")
        assert (done.returncode, done.stdout) == (3, "inactive\n")
        assert systemctl(tmp_path, s, "try-restart", "cron.service").returncode == 0
        assert s.status()["cron"]["state"] == "EXCISED", "try-restart starts nothing stopped"
        assert systemctl(tmp_path, s, "start", "cron.service").returncode == 0
        s.wait_state("cron", "FUNDAMENTAL")
        done = systemctl(tmp_path, s, "restart", "nope.service")
        assert done.returncode == 5 and "Unit nope.service not found." in done.stderr
        assert systemctl(tmp_path, s, "is-enabled", "nope").returncode == 1
        assert systemctl(tmp_path, s, "start", "multi-user.target").returncode == 0
        assert systemctl(tmp_path, s, "daemon-reload").returncode == 0
        assert systemctl(tmp_path, s, "enable", "cron").returncode == 0
        assert "cron.service" in systemctl(tmp_path, s, "list-units").stdout
    finally:
        s.stop()


@pytest.mark.process
def test_list_jobs_names_what_is_still_starting(tmp_path):
    """ifupdown's if-up.d/mountnfs greps `systemctl list-jobs`: a oneshot still running is
    a start job; a running daemon and a finished oneshot are not; none left says so."""
    gate = tmp_path / "gate"
    s = Supervised(tmp_path / "sup", {
        "cron.svc": daemon("exec sleep 1000", stable_secs=0),
        "prepare.svc": daemon("until [ -e %s ]; do sleep 0.05; done" % gate, oneshot=1)})
    s.start()
    try:
        s.wait_state("cron", "FUNDAMENTAL")
        s.wait(lambda: s.status()["prepare"]["pid"] != "0", 10, "prepare running")
        done = systemctl(tmp_path, s, "list-jobs")
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert lines[0].split() == ["JOB", "UNIT", "TYPE", "STATE"]
        assert [line.split()[1:] for line in lines[1:-2]] == [
            ["prepare.service", "start", "running"]]
        assert lines[-1] == "1 jobs listed."
        gate.write_text("")
        s.wait_state("prepare", "PERFECT")
        done = systemctl(tmp_path, s, "list-jobs")
        assert (done.returncode, done.stdout) == (0, "No jobs running.\n")
    finally:
        s.stop()


def test_pid1_claims_systemd_only_when_systemctl_is_itself(tmp_path):
    own = tmp_path / "schema-init"
    own.write_text("")
    other = tmp_path / "systemctl-real"
    other.write_text("")
    link = tmp_path / "systemctl"
    assert not pid1.claims_systemd((str(link),), str(own))          # none installed
    os.symlink(other, link)
    assert not pid1.claims_systemd((str(link),), str(own))          # systemd's own
    link.unlink()
    os.symlink(own, link)
    assert pid1.claims_systemd((str(link),), str(own))


# --- an administrator's systemctl against a supervisor importing units ---------------------

UNITS = {
    "web.service": "[Unit]\nDescription=The web\n[Service]\nExecStart=/bin/sleep 1000\n"
                   "[Install]\nWantedBy=multi-user.target\n",
    "job.service": "[Service]\nType=oneshot\nExecStart=/bin/sh -c 'exit 3'\n"
                   "[Install]\nWantedBy=multi-user.target\n",
    "done.service": "[Service]\nType=oneshot\nExecStart=/bin/true\nRemainAfterExit=yes\n"
                    "[Install]\nWantedBy=multi-user.target\n",
    "worker@.service": "[Service]\nExecStart=/bin/sleep 100%i\n"
                       "[Install]\nWantedBy=multi-user.target\n",
    "off.service": "[Service]\nExecStart=/bin/sleep 1000\n[Install]\nWantedBy=multi-user.target\n",
    "static.service": "[Service]\nExecStart=/bin/sleep 1000\n",
    "pair.service": "[Service]\nExecStart=/bin/sleep 1000\n[Install]\n"
                    "WantedBy=multi-user.target\nRequiredBy=other.target\n"
                    "Alias=pair-alias.service\nAlso=extra.service\n",
    "extra.service": "[Service]\nExecStart=/bin/sleep 1000\n[Install]\nWantedBy=multi-user.target\n",
    "tick.service": "[Service]\nType=oneshot\nExecStart=/bin/true\n",
    "flaky.service": "[Service]\nExecStart=/bin/sh -c 'exit 1'\nRestart=always\n"
                     "RestartSec=0\n[Install]\nWantedBy=multi-user.target\n",
    "tick.timer": "[Timer]\nOnBootSec=1000\n[Install]\nWantedBy=timers.target\n",
    # postgresql's shape: a remain_after_exit parent, an instance PartOf= it and in its
    # .wants/ (made by postgresql's generator on a real machine)
    "pg.service": "[Service]\nType=oneshot\nExecStart=/bin/true\nExecReload=/bin/true\n"
                  "RemainAfterExit=yes\n[Install]\nWantedBy=multi-user.target\n",
    "pg@.service": "[Unit]\nPartOf=pg.service\nReloadPropagatedFrom=pg.service\n"
                   "[Service]\nExecStart=/bin/sleep 100%i\n",
}
ENABLED = {"multi-user.target.wants": ["web.service", "job.service", "done.service",
                                       "flaky.service",
                                       "worker@1.service", "ghost.service", "pg.service"],
           "timers.target.wants": ["tick.timer"],
           "pg.service.wants": ["pg@15.service"]}


def machine_root(tmp_path):
    root = tmp_path / "root"
    lib = root / "lib" / "systemd" / "system"
    lib.mkdir(parents=True)
    for name, text in UNITS.items():
        (lib / name).write_text(text)
    (lib / "web.service.d").mkdir()
    (lib / "web.service.d" / "local.conf").write_text("[Service]\nEnvironment=A=1\n")
    for directory, names in ENABLED.items():
        wants = root / "etc" / "systemd" / "system" / directory
        wants.mkdir(parents=True)
        for name in names:
            target = name if "@" not in name else name.partition("@")[0] + "@.service"
            os.symlink("/lib/systemd/system/" + target, wants / name)
    return root


@pytest.fixture
def admin(tmp_path):
    root = machine_root(tmp_path)
    s = Supervised(tmp_path / "sup", {"cron.svc": daemon(stable_secs=0)},
                   args=["--units", str(root / "etc/systemd/system"),
                         "--units", str(root / "lib/systemd/system")])
    s.start()
    s.wait_state("web", ("FULL_TRUST", "FUNDAMENTAL"), 20)
    s.wait_state("job", ("RECOVERY", "FRICTION", "DORMANT", "EXCISED"), 20)

    def ctl(*args):
        return systemctl(tmp_path, s, "--no-pager", *args)
    ctl.root, ctl.s = root, s
    try:
        yield ctl
    finally:
        s.stop()


@pytest.mark.process
def test_queries_answer_with_systemctls_exit_codes(admin):
    done = admin("is-active", "web", "worker@1", "job.service", "off", "nope")
    assert (done.returncode, done.stdout) == (0, "active\nactive\nactivating\ninactive\n"
                                                 "inactive\n") or \
        (done.returncode, done.stdout) == (0, "active\nactive\nfailed\ninactive\ninactive\n")
    done = admin("is-active", "off", "nope")
    assert (done.returncode, done.stdout) == (3, "inactive\ninactive\n")
    assert admin("-q", "is-active", "off").stdout == ""
    admin.s.wait_state("job", ("DORMANT", "EXCISED"), 60)
    assert (admin("is-failed", "job").returncode, admin("is-failed", "job").stdout) == \
        (0, "failed\n")
    assert admin("is-failed", "web").returncode == 1
    done = admin("--root=%s" % admin.root, "is-enabled", "web", "off", "static", "worker@1",
                 "worker@.service", "tick.timer")
    assert done.stdout == "enabled\ndisabled\nstatic\nenabled\nindirect\nenabled\n"
    assert done.returncode == 0
    assert admin("--root=%s" % admin.root, "is-enabled", "off").returncode == 1
    done = admin("--root=%s" % admin.root, "is-enabled", "nope")
    assert done.returncode == 1 and "No such file" in done.stderr


@pytest.mark.process
def test_status_says_why_what_is_not_running_is_not(admin):
    done = admin("status", "--root=%s" % admin.root, "web")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "\u25cf web.service - The web"
    assert lines[1].startswith("     Loaded: loaded (/lib/systemd/system/web.service; enabled)")
    assert lines[2].startswith("     Active: active (running)")
    assert lines[3] == "   Main PID: %s" % admin.s.status()["web"]["pid"]
    done = admin("status", "--root=%s" % admin.root, "off")
    assert done.returncode == 3
    assert "     Active: inactive (dead)" in done.stdout.splitlines()
    assert "   Not imported: nothing that boots wants it (systemctl enable off.service)" in \
        done.stdout.splitlines()
    done = admin("status", "ghost")                 # wanted, no unit file: no such unit
    assert done.returncode == 4
    assert done.stderr.startswith("Unit ghost.service could not be found. Wanted, not "
                                  "imported: (wanted by multi-user.target): ")
    done = admin("status", "nope.service")
    assert (done.returncode, done.stderr) == (4, "Unit nope.service could not be found.\n")
    done = admin("status", "--root=%s" % admin.root, "web", "off")    # several: the worst
    assert done.returncode == 3 and done.stdout.count("Loaded:") == 2


@pytest.mark.process
def test_show_speaks_systemds_vocabulary(admin):
    props = "MainPID,ActiveState,SubState,ExecMainStatus,NRestarts,Result"
    pid = admin.s.status()["web"]["pid"]
    assert admin("show", "-p", props, "web").stdout == (
        "MainPID=%s\nActiveState=active\nSubState=running\nExecMainStatus=0\nNRestarts=0\n"
        "Result=success\n" % pid)
    admin.s.wait_state("job", ("DORMANT", "EXCISED"), 60)
    shown = dict(line.split("=", 1) for line in admin("show", "-p", props,
                                                       "job.service").stdout.splitlines())
    assert shown["ActiveState"] == "failed" and shown["ExecMainStatus"] == "3"
    assert shown["Result"] == "exit-code" and shown["NRestarts"] == "0"     # Restart=no
    admin.s.wait(lambda: int(admin.s.status()["flaky"]["restarts"]) >= 3, 30, "restarts")
    shown = dict(line.split("=", 1) for line in admin("show", "-p", props,
                                                       "flaky").stdout.splitlines())
    assert int(shown["NRestarts"]) >= 2 and shown["ExecMainStatus"] == "1"
    assert admin("show", "-p", "ActiveState,SubState", "--value", "done").stdout == \
        "active\nexited\n"
    assert admin("show", "-p", "LoadState", "--value", "nope").stdout == "not-found\n"
    assert admin("show", "--root=%s" % admin.root, "-p", "LoadState,UnitFileState",
                 "--value", "off").stdout == \
        "loaded\ndisabled\n"
    assert admin("stop", "web").returncode == 0
    admin.s.wait_state("web", "EXCISED")
    assert admin("show", "-p", "ActiveState,SubState,Result,MainPID", "--value",
                 "web").stdout == "inactive\ndead\nsuccess\n0\n"


@pytest.mark.process
def test_start_stop_restart_several_units_and_instances(admin):
    done = admin("start", "nope", "web")
    assert done.returncode == 5
    assert "Failed to start nope.service: Unit nope.service not found." in done.stderr
    assert admin("stop", "ghost").returncode == 5
    assert admin("stop", "web", "worker@1").returncode == 0
    admin.s.wait_state("web", "EXCISED")
    admin.s.wait_state("worker@1", "EXCISED")
    assert admin("start", "web", "worker@1.service").returncode == 0   # waits: it runs
    assert admin.s.state("web") in ("FULL_TRUST", "FUNDAMENTAL")
    assert admin.s.state("worker@1") in ("FULL_TRUST", "FUNDAMENTAL")
    before = admin.s.status()["web"]["pid"]
    assert admin("restart", "web").returncode == 0
    assert admin.s.status()["web"]["pid"] not in ("0", before)
    done = admin("restart", "job")
    assert done.returncode == 1 and "Job for job.service failed: exited 3" in done.stderr


@pytest.mark.process
def test_preset_enables_what_the_preset_files_say(admin):
    """deb-systemd-helper enables a newly installed daemon with `systemctl --root=/
    --system --preset-mode=enable-only preset NAME`: a preset that did nothing left
    every daemon apt installed disabled (memcached never started)."""
    root = admin.root
    etc = root / "etc" / "systemd" / "system"
    vendor = root / "lib" / "systemd" / "system-preset"
    local = root / "etc" / "systemd" / "system-preset"
    vendor.mkdir(parents=True)
    local.mkdir(parents=True)
    (vendor / "80-site.preset").write_text("# vendor\ndisable pair.service\nenable *\n")
    (vendor / "90-default.preset").write_text("disable extra.service\n")
    (local / "90-default.preset").write_text("enable extra.service\n")     # hides it
    done = admin("--root=%s" % root, "--system", "--preset-mode=enable-only", "preset",
                 "pair.service", "extra")
    assert done.returncode == 0, done.stderr
    assert not (etc / "multi-user.target.wants" / "pair.service").exists()
    assert os.readlink(etc / "multi-user.target.wants" / "extra.service") == \
        "/lib/systemd/system/extra.service"
    # full mode disables what a rule says to
    admin("--root=%s" % root, "enable", "pair")
    assert (etc / "multi-user.target.wants" / "pair.service").is_symlink()
    done = admin("--root=%s" % root, "preset", "pair")
    assert done.returncode == 0, done.stderr
    assert not (etc / "multi-user.target.wants" / "pair.service").is_symlink()
    assert admin("--root=%s" % root, "--preset-mode=bogus", "preset", "pair").returncode == 1


@pytest.mark.process
def test_a_parent_takes_its_part_of_instance_along_as_systemd_does(admin):
    """systemctl stop/start/restart/reload of postgresql.service reach
    postgresql@15-main: PartOf= propagates the stop and the restart, the start pulls in
    what the parent's .wants/ links name, ReloadPropagatedFrom= the reload."""
    s = admin.s
    s.wait_state("pg@15", ("FULL_TRUST", "FUNDAMENTAL"), 20)
    first = s.status()["pg@15"]["pid"]
    assert admin("reload", "pg").returncode == 0
    assert admin("stop", "pg").returncode == 0
    s.wait_state("pg@15", "EXCISED", 20)
    done = admin("--root=%s" % admin.root, "start", "pg")
    assert done.returncode == 0, done.stderr
    s.wait_state("pg@15", ("FULL_TRUST", "FUNDAMENTAL"), 20)
    second = s.status()["pg@15"]["pid"]
    assert second not in ("0", first)
    assert admin("--root=%s" % admin.root, "restart", "pg").returncode == 0
    s.wait(lambda: s.status()["pg@15"]["pid"] not in ("0", second), 20, "pg@15 restarted")
    assert admin("is-active", "pg", "pg@15").stdout == "active\nactive\n"


@pytest.mark.process
def test_enable_and_disable_make_the_links_install_asks_for(admin, tmp_path):
    root = admin.root
    etc = root / "etc" / "systemd" / "system"
    done = admin("--root=%s" % root, "enable", "pair")
    assert done.returncode == 0, done.stderr
    assert os.readlink(etc / "multi-user.target.wants" / "pair.service") == \
        "/lib/systemd/system/pair.service"
    assert os.readlink(etc / "other.target.requires" / "pair.service") == \
        "/lib/systemd/system/pair.service"
    assert os.readlink(etc / "pair-alias.service") == "/lib/systemd/system/pair.service"
    assert os.readlink(etc / "multi-user.target.wants" / "extra.service") == \
        "/lib/systemd/system/extra.service"                              # Also=
    assert "Created symlink /etc/systemd/system/pair-alias.service \u2192 " \
        "/lib/systemd/system/pair.service." in done.stderr.splitlines()
    assert admin("--root=%s" % root, "is-enabled", "pair", "pair-alias", "extra").stdout == \
        "enabled\nalias\nenabled\n"
    done = admin("--root=%s" % root, "enable", "worker@2", "static")
    assert done.returncode == 0
    assert os.readlink(etc / "multi-user.target.wants" / "worker@2.service") == \
        "/lib/systemd/system/worker@.service"
    assert "has no [Install] section" in done.stderr
    done = admin("--root=%s" % root, "enable", "worker@")
    assert done.returncode == 1 and "template without DefaultInstance=" in done.stderr
    assert admin("--root=%s" % root, "enable", "nope").returncode == 1
    # daemon-reload: what was enabled runs
    assert admin("daemon-reload").returncode == 0
    admin.s.wait_state("pair", ("FULL_TRUST", "FUNDAMENTAL"), 20)
    admin.s.wait_state("worker@2", ("FULL_TRUST", "FUNDAMENTAL"), 20)
    assert admin("is-active", "extra").stdout == "active\n"
    done = admin("--root=%s" % root, "disable", "--now", "pair")
    assert done.returncode == 0, done.stderr
    assert not os.path.lexists(etc / "multi-user.target.wants" / "pair.service")
    assert not os.path.lexists(etc / "other.target.requires" / "pair.service")
    assert not os.path.lexists(etc / "pair-alias.service")
    assert not os.path.lexists(etc / "multi-user.target.wants" / "extra.service")
    assert admin.s.state("pair") == "EXCISED"                          # --now: stopped
    assert admin("--root=%s" % root, "is-enabled", "pair").stdout == "disabled\n"
    assert admin("--root=%s" % root, "mask", "off").returncode == 0
    assert os.readlink(etc / "off.service") == "/dev/null"
    assert admin("--root=%s" % root, "is-enabled", "off").stdout == "masked\n"
    assert admin("--root=%s" % root, "enable", "off").returncode == 1
    assert admin("--root=%s" % root, "unmask", "off").returncode == 0
    assert not os.path.lexists(etc / "off.service")


@pytest.mark.process
def test_cat_list_units_and_list_timers(admin):
    done = admin("cat", "--root=%s" % admin.root, "web")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "# /lib/systemd/system/web.service\n%s\n" \
        "# /lib/systemd/system/web.service.d/local.conf\n[Service]\nEnvironment=A=1\n" % \
        UNITS["web.service"]
    assert admin("cat", "nope").returncode == 1
    listed = admin("list-units").stdout.splitlines()
    assert listed[0].split() == ["UNIT", "LOAD", "ACTIVE", "SUB", "DESCRIPTION"]
    assert any(line.split()[:4] == ["web.service", "loaded", "active", "running"]
               for line in listed)
    assert listed[-1].endswith("loaded units listed. Pass --all to see loaded but "
                               "inactive units, too.")
    timers = admin("list-timers").stdout.splitlines()
    assert timers[0].split() == ["UNIT", "ACTIVATES", "LAST", "STATE"]
    assert timers[1].split()[:2] == ["tick.timer", "tick.service"]


def test_systemctl_reads_units_where_the_import_does():
    from schema_init.systemctl import systemctl as ours
    from schema_init.units import generators
    assert ours.UNIT_PATH == generators.SEARCH_PATH
    assert ours.IMPORTED_DIR == loader.IMPORT_DIR
    assert ours.NOT_IMPORTED == loader.UnitImport.NOT_IMPORTED


def test_preset_globs_match_as_fnmatch_does():
    """The static binary carries no fnmatch: systemctl's own glob, against the standard
    module on seeded random patterns and names (the preset files' syntax)."""
    import fnmatch
    import random
    from schema_init.systemctl.systemctl import glob_match
    rng = random.Random(21)
    for _ in range(20000):
        pattern = "".join(rng.choice("ab*?[]!-") for _ in range(rng.randint(0, 7)))
        name = "".join(rng.choice("ab-]![") for _ in range(rng.randint(0, 6)))
        assert glob_match(pattern, name) == fnmatch.fnmatchcase(name, pattern), (pattern, name)
    assert glob_match("postgresql@*.service", "postgresql@15-main.service")
    assert not glob_match("*.socket", "cups.service")
