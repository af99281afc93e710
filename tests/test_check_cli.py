"""`schema-init --check DIR` as a command: exact diagnostics, exit status, determinism."""

import io
import os
import subprocess

from hypothesis import HealthCheck, given, settings, strategies as st

from conftest import ROOT, program
from schema_init.pid1 import main


def run_check(*args):
    return subprocess.run([program("schema-init"), "--check", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_reference_services_check_clean():
    result = run_check("services/reference")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == (
        "boot order:\n"
        "  1: journal logrotate motor@1 motor@2 network udev\n"
        "  2: dbus\n"
        "  3: display-manager network-manager\n"
        "  4: sshd\n"
        "services/reference: 10 services, 2 groups, 0 errors, 0 warnings\n")


def test_broken_directory_gives_exact_diagnostics():
    result = run_check("tests/data/broken")
    assert result.returncode == 1
    d = "tests/data/broken"
    # A typo (db's stabel_secs, web's stable_secs=ten) no longer loses the service: db
    # loads, and so the cycle api -> db -> api it is part of is found.
    assert result.stdout == (
        f"{d}/api.svc:2: error: dep: dependency cycle: api -> db -> api; 'api', 'db' will be "
        f"EXCISED\n"
        f"{d}/badname.svc:1: error: name: 'bad name' contains ' '; names use only letters, "
        f"digits and _ . @ : -\n"
        f"{d}/cache.svc:3: warning: keep_caps: not supported by this schema-init; ignored\n"
        f"{d}/db.svc:3: warning: stabel_secs: unknown key (did you mean 'stable_secs'?); "
        f"ignored\n"
        f"{d}/nightly.svc:3: error: on_calendar: bad value '7:5' (want HH:MM, 'Ddd HH:MM' "
        f"(Sun..Sat) or 'D HH:MM' (day 1-31), 00:00-23:59)\n"
        f"{d}/web.svc:3: error: dep: unknown dependency 'databse': no service or group has "
        f"that name; 'web' will wait for it\n"
        f"{d}/web.svc:4: warning: stable_secs: 'ten' is not a whole number; using the "
        f"default (10)\n"
        f"{d}/x.svc:2: error: dep: dependency cycle: x -> loop -> y -> x; 'x', 'y' will be "
        f"EXCISED\n"
        "boot order:\n"
        "  1: cache ok web\n"
        "excised: api (dependency cycle: api -> db -> api)\n"
        "excised: db (dependency cycle: api -> db -> api)\n"
        "excised: x (dependency cycle: x -> loop -> y -> x)\n"
        "excised: y (dependency cycle: x -> loop -> y -> x)\n"
        f"{d}: 7 services, 2 groups, 5 errors, 3 warnings\n")


def test_warnings_pass_unless_strict(tmp_path):
    (tmp_path / "a.svc").write_text("exec=/bin/true\nkeep_caps=1\n")
    assert run_check(str(tmp_path)).returncode == 0
    assert run_check(str(tmp_path), "--strict").returncode == 1


def test_empty_or_missing_directory_fails(tmp_path):
    result = run_check(str(tmp_path))
    assert result.returncode == 1 and "no services found" in result.stdout
    assert run_check(str(tmp_path / "nope")).returncode == 1


def test_version_and_help():
    version = subprocess.run([program("schema-init"), "--version"], capture_output=True,
                             text=True, timeout=30)
    assert version.returncode == 0 and version.stdout.startswith("schema-init ")
    helped = subprocess.run([program("schema-init"), "--help"], capture_output=True,
                            text=True, timeout=30)
    assert helped.returncode == 0 and "--check DIR" in helped.stdout
    refused = subprocess.run([program("schema-init")], capture_output=True, text=True,
                             timeout=30)
    assert refused.returncode == 1 and "refusing to run" in refused.stderr


LINES = st.sampled_from([
    "exec=/bin/true", "oneshot=1", "dep=a", "dep=b", "dep=grp", "dep=missing", "critical=1",
    "stable_secs=x", "bogus=1", "on_calendar=03:00", "persistent=1", "no_new_privs=1",
    "name=a", "noequals"])
FILES = st.dictionaries(st.sampled_from(["a.svc", "b.svc", "c.svc", "t@.svc", "t@1.svc",
                                         "grp.grp", "other.grp"]),
                        st.lists(LINES, max_size=5), min_size=1)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(FILES, st.randoms(use_true_random=False))
def test_check_output_is_deterministic(tmp_path_factory, files, rnd):
    outputs = []
    for attempt in range(2):
        d = tmp_path_factory.mktemp("check")
        names = list(files)
        rnd.shuffle(names)                    # different creation (readdir) order
        for name in names:
            body = files[name]
            if name.endswith(".grp"):
                body = ["name=" + name[:-4]] + ["member=" + x[4:] for x in body
                                                if x.startswith("dep=")]
            (d / name).write_text("\n".join(body) + "\n")
        out = io.StringIO()
        status = main.check(str(d), out=out)
        outputs.append((status, out.getvalue().replace(str(d), "DIR")))
    assert outputs[0] == outputs[1]
