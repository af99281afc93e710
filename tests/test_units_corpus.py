"""The unit corpus harness (bench/units_corpus.py, issue 21): its classifier and its
walk of what a Debian root wants, checked on made-up inputs (no root needed), and one
real boot of the corpus root (marked debian: the root is bench/corpus/mkroot.sh's,
cached in $CORPUS_CACHE, made first when absent, about 15 minutes) on a handful of
units: cron, rsyslog, nginx, redis-server, nftables, plus two of this test's own in an
overlay: corpus-false.service (ExecStart=/bin/false, Restart=no: must come out broken)
and corpus-ghost, an LSB script enabled in /etc/rc[2-5].d with no unit, which systemd
would run: while schema-init neither runs it nor says a word of it, it must come out
missing."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT

HARNESS = os.path.join(ROOT, "bench", "units_corpus.py")
CACHE = os.environ.get("CORPUS_CACHE", "/var/cache/schema-init-build/corpus")
SMOKE_UNITS = ("cron", "rsyslog", "nginx", "redis-server", "nftables")


def harness():
    spec = importlib.util.spec_from_file_location("units_corpus", HARNESS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- the classifier, on records made here ----------------------------------------------

def record(**fields):
    base = {"unit": "x.service", "how": "link multi-user.target.wants", "service": None,
            "dropped": [], "errors": [], "skipped": None, "condition": None, "said": [],
            "log": "", "timer": None, "replaced_by": None}
    base.update(fields)
    return base


def test_a_service_that_reached_fundamental_with_nothing_dropped_works():
    uc = harness()
    cls, why = uc.classify(record(service={"name": "x", "state": "FUNDAMENTAL"}))
    assert cls == "works" and "FUNDAMENTAL" in why
    cls, _ = uc.classify(record(service={"name": "x", "state": "PERFECT"}))
    assert cls == "works"


def test_dropped_lines_make_it_degraded_and_are_named():
    uc = harness()
    dropped = [{"key": "ProtectSystem", "text": "..."}, {"key": "PrivateTmp", "text": "..."}]
    cls, why = uc.classify(record(service={"name": "x", "state": "FUNDAMENTAL"},
                                  dropped=dropped))
    assert cls == "degraded"
    assert "ProtectSystem" in why and "PrivateTmp" in why


def test_a_service_that_did_not_run_is_broken_with_its_log():
    uc = harness()
    for state in ("EXCISED", "FRICTION", "RECOVERY", "NEW_PROCESS", "FULL_TRUST"):
        cls, why = uc.classify(record(service={"name": "x", "state": state,
                                               "reason": "exited 1"},
                                      log="starting\nx: cannot open /etc/x.conf\n"))
        assert cls == "broken", state
        assert state in why and "exited 1" in why and "cannot open /etc/x.conf" in why


def test_a_timer_is_judged_by_its_job():
    uc = harness()
    ok = uc.classify(record(unit="x.timer", service={"name": "x", "state": "PERFECT"},
                            timer={"ran": True, "state": "PERFECT", "reason": None}))
    failed = uc.classify(record(unit="x.timer", service={"name": "x", "state": "PERFECT"},
                                timer={"ran": True, "state": "PERFECT",
                                       "reason": "exited 2"}))
    assert ok[0] == "works" and "job ran" in ok[1]
    assert failed[0] == "broken" and "exited 2" in failed[1]


def test_wanted_without_a_service_or_a_word_is_missing():
    uc = harness()
    cls, _ = uc.classify(record())
    assert cls == "missing"
    # any word of it makes it broken, not silent
    assert uc.classify(record(errors=["/x.service: error: no ExecStart="]))[0] == "broken"
    assert uc.classify(record(skipped="the early boot (sysinit.target) is the services "
                              "directory's"))[0] == "broken"
    assert uc.classify(record(said=["/lib/systemd/system/x.service:3: warning: X: y"]))[0] \
        == "broken"
    # the whole import failing is a word too: broken, with PID 1's error
    cls, why = uc.classify(record(import_errors=[
        "/etc/systemd/system: error: importing the units failed (...)"]))
    assert cls == "broken" and "importing the units failed" in why


def test_what_a_container_cannot_do_is_said_not_hidden():
    uc = harness()
    skipped = "ConditionVirtualization=!container is false (checked when the units were read)"
    cls, why = uc.classify(record(skipped=skipped, condition="ConditionVirtualization="
                                  "!container"))
    assert cls == "container" and "ConditionVirtualization" in why
    cls, why = uc.classify(record(service={"name": "x", "state": "EXCISED"},
                                  log="modprobe: FATAL: Module nf_tables not found\n"))
    assert cls == "container" and "kernel module" in why and "EXCISED" in why
    # a false condition of the unit's own: not run, as systemd would not run it
    cls, _ = uc.classify(record(skipped="ConditionPathExists=/etc/x.conf is false",
                                condition="ConditionPathExists=/etc/x.conf"))
    assert cls == "works"


def test_conditions_are_judged_by_the_harness_as_systemd_would(tmp_path):
    uc = harness()
    write(tmp_path, "/etc/x.conf", "setting\n")
    write(tmp_path, "/etc/empty.conf", "")
    view = uc.View(str(tmp_path))
    unit = uc.Unit("x.service")
    unit.path = unit.real = "/lib/systemd/system/x.service"
    unit.entries = [("Unit", "ConditionPathExists", "/etc/x.conf"),
                    ("Unit", "ConditionPathExists", "!/etc/missing"),
                    ("Unit", "ConditionFileNotEmpty", "/etc/empty.conf"),
                    ("Unit", "ConditionVirtualization", "!container"),
                    ("Unit", "ConditionPathExists", "|/etc/nothing"),
                    ("Unit", "ConditionPathExists", "|/etc/x.conf"),
                    ("Unit", "ConditionACPower", "true")]       # not judged here
    assert uc.conditions_false(view, unit) == ["ConditionFileNotEmpty=/etc/empty.conf",
                                               "ConditionVirtualization=!container"]
    unit.entries = [("Unit", "ConditionPathExists", "|/etc/nothing"),
                    ("Unit", "ConditionPathExists", "|/etc/none")]
    assert len(uc.conditions_false(view, unit)) == 1
    # what they mean for the class
    cls, why = uc.classify(record(conditions_false=["ConditionVirtualization=!container"],
                                  service={"name": "x", "state": "EXCISED"}))
    assert cls == "container" and "ConditionVirtualization" in why
    cls, _ = uc.classify(record(conditions_false=["ConditionFileNotEmpty=/etc/x.conf"]))
    assert cls == "works"
    cls, why = uc.classify(record(conditions_false=["ConditionFileNotEmpty=/etc/x.conf"],
                                  service={"name": "x", "state": "EXCISED",
                                           "reason": "exited 1"}))
    assert cls == "degraded" and "exited 1" in why


def test_what_is_done_another_way_by_design_is_replaced():
    uc = harness()
    cls, why = uc.classify(record(replaced_by="the services directory's tmpfiles.svc does it"))
    assert cls == "replaced" and "tmpfiles.svc" in why


# --- the walk: what a root wants, decided without the importer ------------------------

def write(root, path, text="", link=None):
    full = os.path.join(str(root), path.lstrip("/"))
    os.makedirs(os.path.dirname(full), exist_ok=True)
    if link is not None:
        os.symlink(link, full)
    else:
        with open(full, "w") as f:
            f.write(text)


def test_the_walk_finds_links_wants_sockets_timers_and_enabled_scripts(tmp_path):
    uc = harness()
    lib = "/lib/systemd/system/"
    write(tmp_path, lib + "multi-user.target", "[Unit]\nRequires=basic.target\n")
    write(tmp_path, lib + "basic.target", "[Unit]\nWants=sockets.target timers.target\n")
    write(tmp_path, lib + "sockets.target", "[Unit]\n")
    write(tmp_path, lib + "timers.target", "[Unit]\n")
    write(tmp_path, lib + "a.service", "[Service]\nExecStart=/bin/a\n[Unit]\nWants=b.service\n")
    write(tmp_path, lib + "b.service", "[Service]\nExecStart=/bin/b\n")
    write(tmp_path, lib + "c.socket", "[Socket]\nListenStream=/run/c\n")
    write(tmp_path, lib + "c.service", "[Service]\nExecStart=/bin/c\n")
    write(tmp_path, lib + "d.timer", "[Timer]\nOnCalendar=daily\nUnit=e.service\n")
    write(tmp_path, lib + "e.service", "[Service]\nType=oneshot\nExecStart=/bin/e\n")
    write(tmp_path, lib + "m.service", link="/dev/null")
    write(tmp_path, lib + "unwanted.service", "[Service]\nExecStart=/bin/u\n")
    write(tmp_path, "/etc/systemd/system/multi-user.target.wants/a.service", link=lib + "a.service")
    write(tmp_path, "/etc/systemd/system/multi-user.target.wants/m.service", link=lib + "m.service")
    write(tmp_path, "/etc/systemd/system/sockets.target.wants/c.socket", link=lib + "c.socket")
    write(tmp_path, "/etc/systemd/system/timers.target.wants/d.timer", link=lib + "d.timer")
    write(tmp_path, "/etc/init.d/legacy", "#!/bin/sh\n")
    write(tmp_path, "/etc/init.d/a", "#!/bin/sh\n")          # a.service replaces it
    write(tmp_path, "/etc/init.d/off", "#!/bin/sh\n")        # not enabled
    write(tmp_path, "/etc/rc2.d/S01legacy", link="../init.d/legacy")
    write(tmp_path, "/etc/rc2.d/S01a", link="../init.d/a")
    write(tmp_path, "/etc/rc2.d/K01off", link="../init.d/off")
    machine = uc.Machine(uc.View(str(tmp_path)))
    reached = machine.walk()
    wanted = {n for n in reached if n.endswith(uc.UNIT_KINDS) or n.startswith("lsb:")}
    assert wanted == {"a.service", "b.service", "c.socket", "c.service", "d.timer",
                      "e.service", "m.service", "lsb:legacy"}
    assert reached["b.service"] == ("a.service", "Wants=")
    assert reached["e.service"][1] == "timer"
    assert machine.unit("m.service").masked
    assert not machine.unit("unwanted.service").masked


def test_packages_txt_names_at_least_60_packages_each_once():
    uc = harness()
    packages = uc.read_packages()
    names = [p["name"] for p in packages]
    assert len(names) >= 60 and len(set(names)) == len(names)
    assert all(p["root"] in ("main", "alt") and p["boot"] >= 1 for p in packages)
    assert {p["category"] for p in packages} >= {"databases", "mail", "dns", "web"}


# --- one real boot --------------------------------------------------------------------

GHOST = """#!/bin/sh
### BEGIN INIT INFO
# Provides:          corpus-ghost
# Required-Start:    $remote_fs
# Required-Stop:     $remote_fs
# Default-Start:     2 3 4 5
# Default-Stop:      0 1 6
# Short-Description: tests/test_units_corpus.py: an enabled LSB-only service
### END INIT INFO
case "$1" in
    start) start-stop-daemon --start --background --make-pidfile \\
               --pidfile /run/corpus-ghost.pid --exec /bin/sleep -- 100000 ;;
    stop) start-stop-daemon --stop --pidfile /run/corpus-ghost.pid --remove-pidfile ;;
    *) exit 0 ;;
esac
"""


@pytest.fixture(scope="module")
def corpus_root():
    if os.geteuid() != 0:
        pytest.skip("the corpus boot needs root (namespaces, mounts, chroot)")
    env = dict(os.environ, CORPUS_CACHE=CACHE)
    if not os.path.exists(os.path.join(CACHE, "root", ".corpus-stamp")):
        subprocess.run([os.path.join(ROOT, "bench", "corpus", "fetch.sh")], check=True,
                       env=env, timeout=3600)
    # nothing to do when the root is cached (its stamp matches); no lock taken here: the
    # run this test is part of may hold the machine's heavy-work lock already
    subprocess.run([os.path.join(ROOT, "bench", "corpus", "mkroot.sh"), "main"],
                   check=True, env=env, timeout=3600)
    return os.path.join(CACHE, "root")


@pytest.mark.debian
def test_the_harness_runs_units_and_classifies_them(corpus_root, tmp_path):
    overlay = tmp_path / "overlay"
    etc = "/etc/systemd/system/"
    write(overlay, etc + "corpus-false.service",
          "[Unit]\nDescription=tests/test_units_corpus.py: fails at once\n"
          "[Service]\nType=simple\nExecStart=/bin/false\nRestart=no\n"
          "[Install]\nWantedBy=multi-user.target\n")
    write(overlay, etc + "multi-user.target.wants/corpus-false.service",
          link=etc + "corpus-false.service")
    write(overlay, "/etc/init.d/corpus-ghost", GHOST)
    os.chmod(str(overlay / "etc/init.d/corpus-ghost"), 0o755)
    for level in "2345":
        write(overlay, "/etc/rc%s.d/S01corpus-ghost" % level, link="../init.d/corpus-ghost")
    out = tmp_path / "corpus.json"
    names = SMOKE_UNITS + ("corpus-false", "corpus-ghost")
    # make test-debian builds the static binary first: that one, else this checkout
    source = os.environ.get("CORPUS_SOURCE") or (
        "binary" if os.access(os.path.join(ROOT, "build", "out", "schema-init"), os.X_OK)
        else "worktree")
    done = subprocess.run([sys.executable, HARNESS, "--no-build", "--no-report",
                           "--source", source,
                           "--roots", "main", "--units", ",".join(names),
                           "--overlay", str(overlay), "--boot-secs", "45",
                           "--timer-secs", "10", "--json-out", str(out)],
                          capture_output=True, text=True, timeout=900,
                          env=dict(os.environ, CORPUS_CACHE=CACHE))
    assert done.returncode == 0, done.stderr[-4000:]
    data = json.loads(out.read_text())
    uc = harness()
    units = {r["unit"]: r for r in data["units"] + data["other_units"]}
    by_base = {}
    for name, rec in units.items():
        by_base.setdefault(name.rpartition(".")[0] if not name.startswith("lsb:")
                           else name[4:], []).append(rec)
    print("\n".join("%-28s %-9s %s" % (n, r["class"], r["why"][:100])
                    for n, r in sorted(units.items())))
    # the overlay's two are wanted and found by the harness's own walk
    assert "corpus-false.service" in units and "lsb:corpus-ghost" in units, sorted(units)
    # the deliberately broken unit: it ran, failed, and is broken with its state
    false = units["corpus-false.service"]
    assert false["service"] is not None, false
    assert false["service"]["state"] not in uc.GOOD_STATES
    assert false["class"] == "broken" and false["service"]["state"] in false["why"]
    # the ghost: missing exactly when schema-init neither ran it nor said a word of it
    ghost = units["lsb:corpus-ghost"]
    silent = ghost["service"] is None and not (ghost["errors"] or ghost["skipped"] or
                                               ghost["said"] or ghost["dropped"])
    assert (ghost["class"] == "missing") == silent, ghost
    # the real units: every one the root enables is classified, by the rule
    enabled = [n for n in SMOKE_UNITS if n in by_base]
    assert enabled, "none of %s is wanted in the root" % (SMOKE_UNITS,)
    reached_good = 0
    for name in enabled:
        for rec in by_base[name]:
            assert rec["class"] in uc.CLASSES, rec
            state = (rec.get("service") or {}).get("state")
            if state in uc.GOOD_STATES and rec.get("timer") is None:
                reached_good += 1
                assert rec["class"] == ("degraded" if rec["dropped"] else "works"), rec
            if rec["class"] in ("works", "degraded") and rec.get("service"):
                assert state in uc.GOOD_STATES or rec.get("timer"), rec
            if rec["class"] == "missing":
                assert rec["service"] is None and not rec["errors"] and not rec["skipped"]
    assert reached_good, "not one of %s reached FUNDAMENTAL or PERFECT" % (enabled,)
