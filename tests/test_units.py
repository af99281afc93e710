"""Services from systemd unit files (schema_init/units/units.py): the pure mapping line by line,
which units a machine's links select, the real Debian units of tests/data/units against
their expected .svc files, the env=/env_file=/workdir= keys, and imported services run
for real by a real schema-init (not PID 1)."""

import os
import subprocess
import sys

import pytest

from conftest import ROOT, program
from harness import Supervised
from schema_init.core import config
from schema_init.pid1 import loader
from schema_init.units import units

DATA = os.path.join(ROOT, "tests", "data", "units")
EXPECTED = os.path.join(ROOT, "tests", "data", "units-expected")


def unit(name, text, instance=None):
    entries, diags = units.parse_unit_text("/u/" + name, text.encode())
    assert diags == []
    return units.Unit(name, "/u/" + name, entries, instance)


def imported(files, svc_names=(), wants=None, dropins=None, everything=False):
    source = units.DictSource({k: (v.encode() if isinstance(v, str) else v)
                               for k, v in files.items()}, wants, dropins)
    result = units.import_units(source, svc_names, everything=everything)
    return result, {g.name: g.render()[0] for g in result.generated}


def svc_lines(text):
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def warnings(result):
    return [d.format() for d in result.diagnostics]


# --- command lines -------------------------------------------------------------------

@pytest.mark.parametrize("text, words", [
    ("/bin/a b  c", ["/bin/a", "b", "c"]),
    ("/bin/a 'b c' \"d e\"", ["/bin/a", "b c", "d e"]),
    ("/bin/a x'y z'w", ["/bin/a", "xy zw"]),
    ("/bin/a '-p -- \\\\u'", ["/bin/a", "-p -- \\u"]),
    ("/bin/a \\x41\\t\\101", ["/bin/a", "A\tA"]),
    ("/bin/a ''", ["/bin/a", ""]),
])
def test_systemd_word_splitting_quotes_and_escapes(text, words):
    assert units.split_words(text) == (words, None)


@pytest.mark.parametrize("text", ["/bin/a 'open", "/bin/a \\q", "/bin/a end\\"])
def test_a_broken_command_line_is_refused_with_a_reason(text):
    words, why = units.split_words(text)
    assert words is None and why


def test_variables_split_as_a_word_and_stay_one_argument_in_braces():
    flags, words, why = units.parse_command(
        "-/usr/sbin/sshd -D $SSHD_OPTS --x=${A}y '$$lit' \"$B\"", unit("s.service", ""))
    assert why is None and flags == "-"
    assert words == [[("text", "/usr/sbin/sshd")], [("text", "-D")], [("split", "SSHD_OPTS")],
                     [("text", "--x="), ("var", "A"), ("text", "y")], [("text", "$lit")],
                     [("split", "B")]]


def test_specifiers_of_a_template_become_the_instance_and_the_colon_prefix_keeps_dollars():
    template = unit("e2scrub@.service", "", instance="")
    _, words, _ = units.parse_command("/sbin/e2scrub -t %I %n %t/x %%", template)
    assert words == [[("text", "/sbin/e2scrub")], [("text", "-t")], [("var", "INSTANCE")],
                     [("text", "e2scrub@"), ("var", "INSTANCE"), ("text", ".service")],
                     [("text", "/run/x")], [("text", "%")]]
    flags, words, _ = units.parse_command(":/bin/echo $HOME", unit("a.service", ""))
    assert flags == ":" and words[1] == [("text", "$HOME")]
    assert units.parse_command("/bin/x %H", unit("a.service", ""))[2] == \
        "specifier %H is not known here"


@pytest.mark.parametrize("text, seconds", [
    ("90", 90), ("1min 30s", 90), ("15min", 900), ("1d", 86400), ("1.5h", 5400),
    ("100ms", 0.1), ("infinity", None), ("2w", 1209600),
])
def test_time_spans(text, seconds):
    assert units.parse_timespan(text) == (seconds, None)


@pytest.mark.parametrize("text, ours, note", [
    ("daily", "00:00", None), ("weekly", "Mon 00:00", None), ("monthly", "1 00:00", None),
    ("Sun *-*-* 03:10:00", "Sun 03:10", None), ("*-*-* 6:00", "06:00", None),
    ("*-*-* 6,18:00", "06:00", "only the first of the hours 6,18 is kept"),
    ("*-*-15 04:30", "15 04:30", None), ("Fri 22:05", "Fri 22:05", None),
])
def test_calendars_our_grammar_accepts(text, ours, note):
    assert units.map_calendar(text) == (ours, note)


@pytest.mark.parametrize("text", ["hourly", "Mon..Fri 10:00", "*-*-* *:00/15",
                                  "2026-01-01 00:00", "*-*-* 03:10:30", "Sat,Sun 10:00"])
def test_calendars_beyond_our_grammar_are_reported(text):
    ours, why = units.map_calendar(text)
    assert ours is None and why


# --- one unit ------------------------------------------------------------------------

def test_every_line_is_mapped_or_reported_with_file_line_and_key():
    result, out = imported({"a.service": (
        "[Unit]\nDescription=A\nAfter=network.target\n"
        "[Service]\nExecStart=/bin/a -x\nProtectSystem=full\nFrobnicate=1\n"
        "LimitMEMLOCK=10\n[Install]\nWantedBy=multi-user.target\n")}, everything=True)
    assert svc_lines(out["a"]) == ["exec=/bin/a", "args=-x", "no_restart=1"]
    assert warnings(result) == [
        "/lib/systemd/system/a.service:6: warning: ProtectSystem: sandboxing: schema-init "
        "does not confine services",
        "/lib/systemd/system/a.service:7: warning: Frobnicate: no schema-init equivalent",
        "/lib/systemd/system/a.service:8: warning: LimitMEMLOCK: resource limits (setrlimit) "
        "are not set"]
    assert "#   /lib/systemd/system/a.service:7: Frobnicate=1 (no schema-init equivalent)" \
        in out["a"].splitlines()
    assert all(d.from_unit for d in result.diagnostics)


def test_types_restart_and_timeouts_map_to_keys():
    _, out = imported({
        "n.service": "[Service]\nType=notify\nExecStart=/bin/n\nRestart=always\n"
                     "TimeoutStopSec=1min 30s\nTimeoutStartSec=infinity\nWatchdogSec=2.5\n"
                     "KillMode=mixed\nUser=daemon\nGroup=daemon\n",
        "o.service": "[Service]\nType=oneshot\nExecStart=/bin/o\nRemainAfterExit=yes\n",
        "f.service": "[Service]\nType=forking\nPIDFile=/run/f.pid\nExecStart=/usr/sbin/f -d\n"
                     "Restart=on-failure\n"}, everything=True)
    assert svc_lines(out["n"]) == ["exec=/bin/n", "notify=1", "user=daemon", "kill_mode=mixed",
                                   "start_timeout_sec=0", "stop_timeout_sec=90",
                                   "watchdog_sec=3"]
    assert svc_lines(out["o"]) == ["exec=/bin/o", "oneshot=1", "no_restart=1"]
    assert svc_lines(out["f"]) == ["exec=" + units.SUBREAPER, "args=/usr/sbin/f", "args=-d"]


def test_exec_prefixes_and_variables_go_through_the_shell_only_when_needed():
    _, out = imported({
        "v.service": "[Service]\nEnvironmentFile=-/etc/default/v\nEnvironment=\"A=1 2\" B=3\n"
                     "ExecStart=/bin/v $OPTS ${A}\nWorkingDirectory=-/srv\n",
        "ig.service": "[Service]\nType=oneshot\nExecStart=-/bin/false\n",
        "rel.service": "[Service]\nType=oneshot\nExecStart=true\n"}, everything=True)
    assert svc_lines(out["v"]) == [
        "exec=/bin/sh", "args=-c", 'args=set -f; exec /bin/v ${OPTS} "${A}"', "no_restart=1",
        "env=A=1 2", "env=B=3", "env_file=-/etc/default/v", "workdir=-/srv"]
    assert svc_lines(out["ig"])[:3] == ["exec=/bin/sh", "args=-c", "args=/bin/false || :"]
    assert svc_lines(out["rel"])[:3] == ["exec=/bin/sh", "args=-c", "args=exec true"]


def test_runtime_and_state_directories_are_made_before_the_command_and_its_pre():
    result, out = imported({"d.service": (
        "[Service]\nUser=daemon\nRuntimeDirectory=d d/sub\nRuntimeDirectoryMode=0750\n"
        "StateDirectory=d\nConfigurationDirectory=d\nExecStartPre=/bin/check\n"
        "ExecStart=/bin/d\n")}, everything=True)
    made = ("mkdir -p -m 0750 /run/d && chown daemon: /run/d || exit; "
            "mkdir -p -m 0750 /run/d/sub && chown daemon: /run/d/sub || exit; "
            "mkdir -p -m 0755 /var/lib/d && chown daemon: /var/lib/d || exit; "
            "mkdir -p -m 0755 /etc/d || exit; ")
    assert svc_lines(out["d"])[:3] == ["exec=/bin/sh", "args=-c", "args=" + made + "exec /bin/d"]
    assert svc_lines(out["d-pre"])[:3] == ["exec=/bin/sh", "args=-c",
                                           "args=" + made + "exec /bin/check"]
    assert result.diagnostics == []


def test_exec_start_pre_becomes_a_prior_oneshot_the_service_depends_on():
    result, out = imported({"p.service": (
        "[Service]\nUser=nobody\nEnvironment=X=1\nExecStartPre=/bin/check\n"
        "ExecStartPre=-/bin/maybe\nExecStart=/bin/p\n")}, everything=True)
    assert svc_lines(out["p-pre"]) == ["exec=/bin/sh", "args=-c",
                                       "args=/bin/check || exit; /bin/maybe || :",
                                       "oneshot=1", "user=nobody", "env=X=1"]
    assert "dep=p-pre" in svc_lines(out["p"])
    assert result.diagnostics == []


def test_path_conditions_of_a_oneshot_are_checked_by_the_shell_others_reported():
    result, out = imported({"c.service": (
        "[Unit]\nConditionPathExists=!/etc/skip\nConditionFileIsExecutable=/etc/rc.local\n"
        "ConditionACPower=true\n[Service]\nType=oneshot\nExecStart=/bin/c\n")},
        everything=True)
    assert svc_lines(out["c"])[2] == \
        "args=! [ -e /etc/skip ] || exit 0; [ -x /etc/rc.local ] || exit 0; exec /bin/c"
    assert warnings(result) == ["/lib/systemd/system/c.service:4: warning: ConditionACPower: "
                                "not checked (only the path conditions of a oneshot are)"]


def test_path_assertions_fail_the_start_of_any_service():
    result, out = imported({"a.service": (
        "[Unit]\nAssertPathExists=/etc/a.conf\nAssertPathIsDirectory=!/etc/a.d\n"
        "[Service]\nExecStart=/bin/a\n")}, everything=True)
    assert svc_lines(out["a"])[2] == (
        "args=[ -e /etc/a.conf ] || { echo 'schema-init: AssertPathExists=/etc/a.conf "
        "failed' >&2; exit 1; }; ! [ -d /etc/a.d ] || { echo 'schema-init: "
        "AssertPathIsDirectory=!/etc/a.d failed' >&2; exit 1; }; exec /bin/a")
    assert result.diagnostics == []


def test_a_daemons_path_conditions_are_checked_when_the_units_are_read():
    files = {"s.service": "[Unit]\nConditionPathExists=!/etc/ssh/sshd_not_to_be_run\n"
                          "ConditionPathIsDirectory=/srv\n[Service]\nExecStart=/bin/s\n"}
    source = units.DictSource({k: v.encode() for k, v in files.items()})
    asked = []

    def present(*paths):
        def test(flag, path):
            asked.append((flag, path))
            return path in paths
        return test

    result = units.import_units(source, everything=True, path_test=present("/srv"))
    assert [g.name for g in result.generated] == ["s"] and result.diagnostics == []
    assert asked == [("-e", "/etc/ssh/sshd_not_to_be_run"), ("-d", "/srv")]
    result = units.import_units(source, everything=True,
                                path_test=present("/srv", "/etc/ssh/sshd_not_to_be_run"))
    assert result.generated == [] and result.skipped == [(
        "s.service", "ConditionPathExists=!/etc/ssh/sshd_not_to_be_run is false (checked "
        "when the units were read)")]
    # without a test (import-units writing files for later), they are reported
    result = units.import_units(source, everything=True)
    assert [d.key for d in result.diagnostics] == ["ConditionPathExists",
                                                   "ConditionPathIsDirectory"]


def test_a_tty_service_gets_its_terminal_and_is_a_session():
    _, out = imported({"getty@.service": (
        "[Service]\nExecStart=-/sbin/agetty - $TERM\nRestart=always\nStandardInput=tty\n"
        "StandardOutput=tty\nTTYPath=/dev/%I\n")}, everything=True)
    assert svc_lines(out["getty@"]) == [
        "exec=/bin/sh", "args=-c",
        'args=set -f; case "${INSTANCE}" in tty[0-9]|tty[0-9][0-9]) TERM=linux;; '
        '*) TERM=vt220;; esac; export TERM; '
        'exec /sbin/agetty - ${TERM} </dev/"${INSTANCE}" >/dev/"${INSTANCE}" 2>&1',
        "session=1"]


@pytest.mark.parametrize("tty, line", [
    ("/dev/tty2", "export TERM=linux"), ("/dev/ttyS0", "export TERM=vt220"),
    ("/dev/ttyAMA0", "export TERM=vt220"), ("/dev/console", None)])
def test_a_tty_service_gets_the_term_systemd_would_give_it(tty, line):
    _, out = imported({"t.service": "[Service]\nExecStart=/sbin/agetty - $TERM\n"
                                    "StandardInput=tty\nTTYPath=%s\n" % tty}, everything=True)
    script = svc_lines(out["t"])[2]
    assert (line in script.split("; ")) if line else "TERM=" not in script


def test_sockets_and_timers_join_their_service():
    result, out = imported({
        "d.service": "[Service]\nExecStart=/bin/d\n",
        "d.socket": "[Socket]\nListenStream=/run/d.sock\nListenDatagram=514\n"
                    "ListenStream=[::1]:22\nSocketMode=660\nSocketUser=d\nSocketGroup=adm\n"
                    "ListenStream=@abstract\n",
        "j.service": "[Service]\nType=oneshot\nExecStart=/bin/j\n",
        "j.timer": "[Timer]\nOnCalendar=Sun *-*-* 03:10:00\nPersistent=true\n",
        "k.service": "[Service]\nType=oneshot\nExecStart=/bin/k\n",
        "k.timer": "[Timer]\nOnBootSec=15min\nOnUnitActiveSec=1d\nPersistent=yes\n",
    }, everything=True)
    assert svc_lines(out["d"]) == ["exec=/bin/d", "no_restart=1", "listen=/run/d.sock",
                                   "listen=tcp:[::1]:22", "listen=udp:514",
                                   "socket_mode=0660", "socket_user=d", "socket_group=adm"]
    assert svc_lines(out["j"]) == ["exec=/bin/j", "oneshot=1", "on_calendar=Sun 03:10",
                                   "persistent=1"]
    assert svc_lines(out["k"]) == ["exec=/bin/k", "oneshot=1", "on_boot_sec=900",
                                   "on_active_sec=86400"]
    assert warnings(result) == [
        "/lib/systemd/system/d.socket:8: warning: ListenStream: abstract unix sockets are "
        "not supported",
        "/lib/systemd/system/k.timer:4: warning: Persistent: Persistent= applies to calendar "
        "timers only"]


def test_drop_ins_apply_in_order_and_an_empty_assignment_resets_a_list():
    result, out = imported(
        {"a.service": "[Service]\nExecStart=/bin/old\nEnvironment=A=1\n",
         "a.socket": "[Socket]\nListenStream=/run/old\n"},
        dropins={"a.service": [("/etc/systemd/system/a.service.d/10.conf",
                                b"[Service]\nExecStart=\nExecStart=/bin/new\n"),
                               ("/etc/systemd/system/a.service.d/20.conf",
                                b"[Service]\nEnvironment=\nEnvironment=B=2\n")],
                 "a.socket": [("/etc/systemd/system/a.socket.d/x.conf",
                               b"[Socket]\nListenStream=\nListenStream=/run/new\n")]},
        everything=True)
    assert svc_lines(out["a"]) == ["exec=/bin/new", "no_restart=1", "env=B=2",
                                   "listen=/run/new"]
    assert result.diagnostics == []         # the lines a reset cleared are not "dropped"
    assert out["a"].splitlines()[0].endswith(
        "/lib/systemd/system/a.service, /etc/systemd/system/a.service.d/10.conf, "
        "/etc/systemd/system/a.service.d/20.conf, /lib/systemd/system/a.socket, "
        "/etc/systemd/system/a.socket.d/x.conf")


def test_a_unit_with_hundreds_of_unknown_keys_reports_twenty_and_a_count():
    text = "[Service]\nExecStart=/bin/a\n" + "".join("Odd%d=1\n" % n for n in range(300))
    result, out = imported({"a.service": text}, everything=True)
    assert len(result.diagnostics) == 21
    assert result.diagnostics[-1].format() == (
        "/lib/systemd/system/a.service: warning: 280 more dropped lines not shown "
        "(schema-init import-units lists them)")
    assert sum(1 for line in out["a"].splitlines() if line.startswith("#   ")) == 300


def test_a_unit_without_exec_start_is_an_error_naming_it():
    result, out = imported({"x.service": "[Service]\nType=simple\n"}, everything=True)
    assert out == {}
    assert warnings(result) == ["/lib/systemd/system/x.service: error: no ExecStart=; the "
                                "unit is not imported"]


def test_a_huge_or_endless_unit_file_is_refused_quickly():
    entries, diags = units.parse_unit_text("/u/big.service", b"#" * (units.READ_LIMIT + 1))
    assert entries == [] and diags[0].severity == config.ERROR
    entries, diags = units.parse_unit_text("/u/many.service", b"[Service]\n" + b"A=1\n" * 5000)
    assert entries == [] and "more than 1000 key=value lines" in diags[0].message


# --- which units: the walk -------------------------------------------------------------

DEBIAN_LIKE = {
    "multi-user.target": "[Unit]\nRequires=basic.target\n",
    "basic.target": "[Unit]\nRequires=sysinit.target\nWants=sockets.target timers.target\n",
    "cron.service": "[Service]\nExecStart=/usr/sbin/cron -f\n",
    "rsyslog.service": "[Unit]\nRequires=syslog.socket\n[Service]\nExecStart=/usr/sbin/rsyslogd"
                       "\n[Install]\nAlias=syslog.service\n",
    "syslog.socket": "[Socket]\nListenDatagram=/run/systemd/journal/syslog\n",
    "web.service": "[Unit]\nAfter=network-online.target cron.service\n"
                   "Wants=helper.service udev-thing.service\n"
                   "[Service]\nExecStart=/bin/web\n",
    "helper.service": "[Unit]\nBefore=web.service\n[Service]\nType=oneshot\nExecStart=/bin/h\n",
    "masked.service": ("masked", "/etc/systemd/system/masked.service"),
    "sshd.service": ("alias", "ssh.service"),
    "udev.service": ("alias", "systemd-udevd.service"),
    "systemd-udevd.service": "[Service]\nExecStart=/lib/systemd/systemd-udevd\n",
    "syslogd.service": ("alias", "rsyslog.service"),
    "ssh.service": "[Service]\nExecStart=/usr/sbin/sshd -D\n",
    "systemd-logind.service": "[Service]\nExecStart=/lib/systemd/systemd-logind\n",
    "udev-thing.service": "[Service]\nExecStart=/bin/early\n",
    "unused.service": "[Service]\nExecStart=/bin/unused\n",
    "tick.timer": "[Timer]\nOnCalendar=daily\n",
    "tick.service": "[Service]\nType=oneshot\nExecStart=/bin/tick\n",
    "getty@.service": "[Service]\nExecStart=/sbin/agetty %I\nRestart=always\n",
    "mnt-data.mount": "[Mount]\nWhat=/dev/sdb\n",
}
DEBIAN_WANTS = {
    "multi-user.target": ["cron.service", "rsyslog.service", "web.service", "masked.service",
                          "sshd.service", "systemd-logind.service", "getty.target",
                          "mnt-data.mount", "udev.service", "syslogd.service"],
    "getty.target": ["getty@tty1.service", "getty@ttyS0.service"],
    "timers.target": ["tick.timer"],
    "sysinit.target": ["udev-thing.service"],
}


def test_the_walk_imports_what_multi_user_target_reaches_and_nothing_else():
    result, out = imported(DEBIAN_LIKE, svc_names=("basic", "ssh", "getty@ttyS0"),
                           wants=DEBIAN_WANTS)
    assert sorted(out) == ["cron", "getty@", "getty@tty1", "helper", "rsyslog", "tick", "web"]
    assert dict(result.skipped) == {
        "masked.service": "masked (/etc/systemd/system/masked.service is a link to /dev/null)",
        "ssh.service": "a .svc file of the same name wins",
        "systemd-logind.service": "needs systemd as PID 1 (sessions are its cgroup scopes)",
        "getty@ttyS0.service": "a .svc file of the same name wins",
        "mnt-data.mount": "mounts are /etc/fstab's (the services directory mounts it)",
        "udev-thing.service": "the early boot (sysinit.target) is the services directory's",
        "systemd-udevd.service": "udev is in the services directory's early boot"}
    # rsyslog takes syslog.socket (its service, syslog.service, is rsyslog's alias)
    assert "listen=dgram:/run/systemd/journal/syslog" in svc_lines(out["rsyslog"])
    # After= a service and a target without a .svc name: dep on the service only; the
    # implied basic.target: dep=basic (a .svc group of that name); Before= in helper
    assert [l for l in svc_lines(out["web"]) if l.startswith("dep=")] == \
        ["dep=cron", "dep=basic", "dep=helper"]
    assert "on_calendar=00:00" in svc_lines(out["tick"])
    assert out["getty@tty1"].splitlines()[1] == "# (the instance getty@tty1 of the template " \
        "getty@.svc)"


def test_imported_specs_are_parsed_by_config_and_templates_instantiate():
    source = units.DictSource({k: (v.encode() if isinstance(v, str) else v)
                               for k, v in DEBIAN_LIKE.items()}, DEBIAN_WANTS)
    result = units.import_units(source, ("basic",))
    specs, diags = units.services_from(result)
    by_name = {s.name: s for s in specs}
    assert sorted(by_name) == ["cron", "getty@tty1", "getty@ttyS0", "helper", "rsyslog",
                               "ssh", "tick", "web"]
    assert by_name["getty@tty1"].instance == "tty1"
    assert by_name["getty@tty1"].args == ("-c", 'exec /sbin/agetty "${INSTANCE}"')
    assert by_name["tick"].is_calendar and by_name["cron"].no_restart
    assert by_name["rsyslog"].listen == (("unix-dgram", "/run/systemd/journal/syslog"),)
    assert by_name["ssh"].path == "/lib/systemd/system/ssh.service"
    assert all(d.from_unit for d in diags)


def test_unit_directories_on_disk_etc_wins_masks_aliases_and_drop_ins(tmp_path):
    etc, lib = tmp_path / "etc", tmp_path / "lib"
    for d in (etc / "multi-user.target.wants", lib / "a.service.d", etc / "a.service.d"):
        d.mkdir(parents=True)
    (lib / "a.service").write_text("[Service]\nExecStart=/bin/lib-a\nEnvironment=X=lib\n")
    (lib / "b.service").write_text("[Service]\nExecStart=/bin/b\n")
    (etc / "b.service").write_text("[Service]\nExecStart=/bin/etc-b\n")
    (lib / "c.service").write_text("[Service]\nExecStart=/bin/c\n")
    os.symlink("/dev/null", etc / "c.service")
    (lib / "a.service.d" / "x.conf").write_text("[Service]\nEnvironment=X=lib-dropin\n")
    (etc / "a.service.d" / "x.conf").write_text("[Service]\nEnvironment=X=etc-dropin\n")
    (lib / "a.service.d" / "y.conf").write_text("[Service]\nEnvironment=Y=1\n")
    for name in ("a.service", "b.service", "c.service", "alias-a.service"):
        os.symlink(str(lib / "a.service") if name == "alias-a.service" else str(lib / name),
                   etc / "multi-user.target.wants" / name)
    source = loader.UnitDirs([str(etc), str(lib)])
    result = units.import_units(source)
    out = {g.name: svc_lines(g.render()[0]) for g in result.generated}
    assert out == {"a": ["exec=/bin/lib-a", "no_restart=1", "env=X=lib", "env=X=etc-dropin",
                         "env=Y=1"],
                   "b": ["exec=/bin/etc-b", "no_restart=1"]}
    assert ("c.service", "masked (%s/c.service is a link to /dev/null)" % etc) in result.skipped


# --- the real Debian units -------------------------------------------------------------

def test_the_real_debian_units_give_exactly_the_expected_svc_files(tmp_path):
    out = tmp_path / "out"
    run = subprocess.run([program("schema-init"), "import-units", "--all", "--out", str(out),
                          "tests/data/units"], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stderr
    made = sorted(os.listdir(out))
    assert made == sorted(n for n in os.listdir(EXPECTED) if n.endswith(".svc"))
    for name in made:
        with open(out / name) as f, open(os.path.join(EXPECTED, name)) as g:
            assert f.read() == g.read(), name
    # every dropped line is a warning naming file, line and key, and a comment of the file
    warned = [l for l in run.stderr.splitlines() if ": warning: " in l]
    commented = [l for n in made for l in (out / n).read_text().splitlines()
                 if l.startswith("#   ")]
    assert len(warned) == len(commented) > 50
    assert run.stderr.splitlines()[-1] == (
        "import-units: %d service files from tests/data/units, %d warnings, 0 errors"
        % (len(made), len(warned)))


def test_the_expected_files_pass_check_with_our_parser(tmp_path):
    for name in os.listdir(EXPECTED):
        with open(os.path.join(EXPECTED, name), "rb") as f:
            spec, diags = config.parse_service(os.path.join(EXPECTED, name), f.read())
        assert [d for d in diags if d.severity == config.ERROR] == [], name
        assert [d.format() for d in diags if "not supported" in d.message] == [], name


def test_writing_into_a_services_directory_respects_its_own_files_and_groups(tmp_path):
    units_dir = tmp_path / "units"
    (units_dir / "multi-user.target.wants").mkdir(parents=True)
    for name in ("cron.service", "e2scrub_reap.service"):
        os.symlink(os.path.join(DATA, name), units_dir / name)
        os.symlink("../" + name, units_dir / "multi-user.target.wants" / name)
    out = tmp_path / "services"
    out.mkdir()
    (out / "cron.svc").write_text("exec=/usr/sbin/cron\nargs=-f\n")
    (out / "basic.grp").write_text("name=basic\nmember=cron\n")
    for _ in range(2):                   # again: its own earlier files do not win
        run = subprocess.run([program("schema-init"), "import-units", "--out", str(out),
                              str(units_dir)], capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr
        assert sorted(os.listdir(out)) == ["basic.grp", "cron.svc", "e2scrub_reap.svc"]
        assert "import-units: skipped cron.service: a .svc file of the same name wins" in \
            run.stderr.splitlines()
        assert "dep=basic" in (out / "e2scrub_reap.svc").read_text().splitlines()
    assert (out / "cron.svc").read_text() == "exec=/usr/sbin/cron\nargs=-f\n"


def test_stdout_is_the_default_and_a_file_import_units_did_not_write_is_kept(tmp_path):
    run = subprocess.run([program("schema-init"), "import-units", "--all", DATA],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and run.stdout.startswith("### apt-daily-upgrade.svc\n")
    (tmp_path / "cron.svc").write_text("exec=/mine\n")
    (tmp_path / "elsewhere").mkdir()        # --services elsewhere: cron.svc there is in the way
    run = subprocess.run([program("schema-init"), "import-units", "--all", "--out",
                          str(tmp_path), "--services", str(tmp_path / "elsewhere"), DATA],
                         capture_output=True, text=True, timeout=60)
    assert (tmp_path / "cron.svc").read_text() == "exec=/mine\n"
    assert "cron.svc exists and was not written by import-units; left alone" in run.stderr


# --- env=, env_file=, workdir= ----------------------------------------------------------

def test_env_file_format_of_systemd():
    data = (b"# comment\n; also\nA=1\n  B = two words  \nexport C=3\nD=\"q \\\"x\\\" \\\\ y\"\n"
            b"E='single $x'\nF=con\\\ntinued\nnot a line\n1BAD=x\nG=\"multi\nline\"\n")
    assert config.parse_environment_file(data) == [
        ("A", "1"), ("B", "two words"), ("C", "3"), ("D", 'q "x" \\ y'), ("E", "single $x"),
        ("F", "continued"), ("G", "multi\nline")]


def test_env_env_file_and_workdir_keys_parse_and_refuse_bad_values():
    spec, diags = config.parse_service("/d/a.svc", b"exec=/bin/a\nenv=A=1\nenv=B=x=y\n"
                                       b"env_file=-/etc/default/a\nenv_file=/etc/a.env\n"
                                       b"workdir=/srv\nenv=1A=no\nenv_file=rel\n")
    assert spec.env == (("A", "1"), ("B", "x=y"))
    assert spec.env_file == ("-/etc/default/a", "/etc/a.env") and spec.workdir == "/srv"
    assert [d.format() for d in diags] == [
        "/d/a.svc:7: warning: env: '1A=no' is not NAME=VALUE (a name of letters, digits and "
        "_); this line is ignored",
        "/d/a.svc:8: warning: env_file: 'rel' is not an absolute path (or -/path); this line is "
        "ignored"]


# --- run for real ------------------------------------------------------------------------

def test_an_imported_unit_runs_with_its_environment_file_variables_and_directory(tmp_path):
    units_dir = tmp_path / "units"
    (units_dir / "multi-user.target.wants").mkdir(parents=True)
    work = tmp_path / "work"
    work.mkdir()
    envfile = tmp_path / "defaults"
    envfile.write_text("# as /etc/default/NAME\nOPTS=\"-n two\"\nWHO='a b'\n")
    out = tmp_path / "out.txt"
    (units_dir / "show.service").write_text(
        "[Unit]\nDescription=show\n[Service]\nType=oneshot\nEnvironment=GREETING=hi\n"
        "EnvironmentFile=%s\nEnvironmentFile=-/nonexistent/file\nWorkingDirectory=%s\n"
        "ExecStartPre=/bin/sh -c 'echo pre > pre.txt'\n"
        "ExecStart=/bin/sh -c 'echo \"$0|$1|$2|$GREETING|$(pwd)\" > %s' $OPTS ${WHO}\n"
        "ProtectSystem=full\n" % (envfile, work, out))
    os.symlink("../show.service", units_dir / "multi-user.target.wants" / "show.service")
    s = Supervised(tmp_path, {"idle.svc": "exec=/bin/sleep\nargs=1000\n"},
                   args=["--units", str(units_dir)])
    try:
        s.start()
        s.wait_state("show", "PERFECT", 20)
        assert out.read_text() == "-n|two|a b|hi|%s\n" % work
        assert (work / "pre.txt").read_text() == "pre\n"
        assert s.state("show-pre") == "PERFECT"
        status = s.ctl("status").stdout
        assert "dropped: %s/show.service:11: warning: ProtectSystem: sandboxing: schema-init " \
            "does not confine services" % units_dir in status
        assert "dropped.0=%s/show.service:11" % units_dir in s.ctl("status", "--kv").stdout
        assert '"dropped": ["%s/show.service:11: warning: ProtectSystem' % units_dir in \
            s.ctl("status", "--json").stdout
        # a unit enabled later is picked up by reload, as a .svc file would be
        (units_dir / "late.service").write_text(
            "[Service]\nType=oneshot\nExecStart=/bin/sh -c 'echo late > %s/late.txt'\n" % work)
        os.symlink("../late.service", units_dir / "multi-user.target.wants" / "late.service")
        reply = s.ctl("reload")
        assert "  added: late" in reply.stdout.splitlines(), reply.stdout
        s.wait_state("late", "PERFECT", 20)
        assert (work / "late.txt").read_text() == "late\n"
    finally:
        s.stop()


def test_the_real_dbus_units_run_dbus_daemon_on_its_socket(tmp_path):
    """Debian's own dbus.service and dbus.socket (tests/data/units), with a drop-in
    moving the socket into the test's directory, serve a D-Bus client."""
    if not os.path.exists("/usr/bin/dbus-daemon") or not os.path.exists("/usr/bin/dbus-send"):
        pytest.fail("this test needs dbus-daemon and dbus-send (apt-get install dbus-daemon "
                    "dbus-bin)")
    units_dir = tmp_path / "units"
    wants = units_dir / "sockets.target.wants"
    wants.mkdir(parents=True)
    for name in ("dbus.service", "dbus.socket"):
        with open(os.path.join(DATA, name)) as f:
            (units_dir / name).write_text(f.read())
    os.symlink("../dbus.socket", wants / "dbus.socket")
    bus = tmp_path / "bus"
    (units_dir / "dbus.socket.d").mkdir()
    (units_dir / "dbus.socket.d" / "test.conf").write_text(
        "[Socket]\nListenStream=\nListenStream=%s\n" % bus)
    s = Supervised(tmp_path, {"idle.svc": "exec=/bin/sleep\nargs=1000\n"},
                   args=["--units", str(units_dir)])
    try:
        s.start()
        s.wait(lambda: s.state("dbus") in ("FULL_TRUST", "FUNDAMENTAL"), 20, "dbus running")
        reply = None
        for _ in range(100):
            reply = subprocess.run(
                ["dbus-send", "--bus=unix:path=%s" % bus, "--print-reply",
                 "--dest=org.freedesktop.DBus", "/org/freedesktop/DBus",
                 "org.freedesktop.DBus.GetId"], capture_output=True, text=True, timeout=10)
            if reply.returncode == 0:
                break
            s.wait(lambda: True, 0.1)
        assert reply.returncode == 0, reply.stderr + s.log("dbus")
        assert "string" in reply.stdout
        status = s.ctl("status").stdout
        assert "dropped: %s/dbus.service:10: warning: ExecReload" % units_dir in status
        assert "ListenStream" not in status
        # OOMScoreAdjust=-900, where the kernel lets root set it (a container may refuse:
        # then, as with systemd, the daemon runs anyway, as it just did)
        allowed = subprocess.run(["/bin/sh", "-c", "echo -900 > /proc/self/oom_score_adj"],
                                 capture_output=True).returncode == 0
        with open("/proc/%s/oom_score_adj" % s.status()["dbus"]["pid"]) as f:
            assert f.read() == ("-900\n" if allowed else "0\n")
    finally:
        s.stop()


def test_pid1_without_units_never_imports_the_units_module():
    code = ("import sys; from schema_init.pid1 import machine as pid1, loader, main, runtime; "
            "assert 'schema_init.units.units' not in sys.modules; assert 're' not in sys.modules; "
            "print(pid1.choose_unit_dirs({'no_units': True}), "
            "pid1.choose_unit_dirs({}, {'SCHEMA_UNITS': 'none'}), "
            "pid1.choose_unit_dirs({'units': ['/u']}), "
            "pid1.choose_unit_dirs({}, {}, exists=lambda p: p != '/usr/lib/systemd/system'), "
            "pid1.choose_unit_dirs({}, {}, exists=lambda p: False), "
            "pid1.choose_unit_dirs({'services': '/s'}, {}, exists=lambda p: True))")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout == "[] [] ['/u'] ['/etc/systemd/system', '/lib/systemd/system'] [] []\n"


def test_the_units_module_loads_nothing_heavy():
    code = ("import sys; before = set(sys.modules); import schema_init.units.units; "
            "new = set(sys.modules) - before; "
            "assert not new & {'re', 'json', 'argparse', 'subprocess', 'enum'}, new")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0, run.stderr


def test_a_forking_unit_runs_under_schema_subreaper_and_stops_with_its_daemon(tmp_path):
    units_dir = tmp_path / "units"
    (units_dir / "multi-user.target.wants").mkdir(parents=True)
    pidfile = tmp_path / "forky.pid"
    (units_dir / "forky.service").write_text(
        "[Service]\nType=forking\nPIDFile=%s\n"
        "ExecStart=/bin/sh -c 'sleep 1000 & echo $$! > %s'\n" % (pidfile, pidfile))
    os.symlink("../forky.service", units_dir / "multi-user.target.wants" / "forky.service")
    s = Supervised(tmp_path, {"idle.svc": "exec=/bin/sleep\nargs=1000\n"},
                   args=["--units", str(units_dir)])
    try:
        s.start()
        s.wait(lambda: pidfile.exists() and pidfile.read_text().strip(), 20, "the pid file")
        daemon = int(pidfile.read_text())
        main_pid = int(s.status()["forky"]["pid"])
        with open("/proc/%d/cmdline" % main_pid, "rb") as f:
            words = f.read().split(b"\0")[:2]      # the binary, or python and the script
        assert any(w.endswith(b"/schema-subreaper") for w in words), words
        s.wait(lambda: _parent(daemon) == main_pid, 10, "the daemon adopted by the subreaper")
        assert s.state("forky") in ("FULL_TRUST", "FUNDAMENTAL")
        s.ctl("stop", "forky")
        s.wait(lambda: not os.path.exists("/proc/%d" % daemon) or _parent(daemon) != main_pid,
               20, "the daemon stopped")
    finally:
        s.stop()


def _parent(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return int(f.read().rpartition(")")[2].split()[1])
    except OSError:
        return None


def test_status_lists_dropped_lines_beside_rejected_files_in_every_format():
    import json
    from fakes import FakeOps
    from schema_init.core import graph, protocol, supervisor
    source = units.DictSource({"a.service": b"[Service]\nExecStart=/bin/a\nLimitMEMLOCK=0\n",
                               "b.service": b"[Service]\nType=simple\n"})
    result = units.import_units(source, everything=True)
    specs, diags = units.services_from(result)
    sup = supervisor.Supervisor(graph.resolve(specs, []), FakeOps(), 0.0, 1e9)
    sup.note_rejected(diags)
    dropped = ("/lib/systemd/system/a.service:3: warning: LimitMEMLOCK: resource limits "
               "(setrlimit) are not set")
    rejected = "/lib/systemd/system/b.service: error: no ExecStart=; the unit is not imported"
    assert protocol.format_status(sup)[-2:] == ["rejected: " + rejected, "dropped: " + dropped]
    assert protocol.format_status_kv(sup)[-2:] == ["rejected.0=" + rejected,
                                                   "dropped.0=" + dropped]
    parsed = json.loads("\n".join(protocol.format_status_json(sup)))
    assert parsed["rejected"] == [rejected] and parsed["dropped"] == [dropped]
    sup.note_rejected([])
    assert "dropped" not in json.loads("\n".join(protocol.format_status_json(sup)))


def test_pid1_importing_units_loads_no_heavy_module(tmp_path):
    units_dir = tmp_path / "units"
    (units_dir / "multi-user.target.wants").mkdir(parents=True)
    for name in ("ssh.service", "ssh.socket", "cron.service", "man-db.service"):
        os.symlink(os.path.join(DATA, name), units_dir / name)
        os.symlink(os.path.join(DATA, name),
                   units_dir / "multi-user.target.wants" / name)
    code = ("import sys; from schema_init.pid1 import machine as pid1, loader; "
            "r = loader.load_directory(%r, [%r]); "
            "print(sorted(s.name for s in r.services)); "
            "heavy = {'re', 'json', 'argparse', 'subprocess', 'enum', 'inspect'} & set(sys.modules); "
            "assert not heavy, heavy" % (os.path.join(ROOT, "services", "debian"),
                                          str(units_dir)))
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout == str(sorted(["boot-record", "check-root", "cron", "dbus", "getty@tty1",
                                     "getty@ttyS0", "hostname", "machine-id", "man-db",
                                     "modules", "mount-all", "networking", "power-button",
                                     "random-seed", "rsyslog", "ssh", "sysctl", "tmpfiles",
                                     "udev", "udev-trigger"])) + "\n"


def test_a_failure_inside_the_importer_still_loads_the_svc_files(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("injected")
    monkeypatch.setattr(units, "import_units", broken)
    loaded = loader.load_directory(os.path.join(ROOT, "services", "debian"), [DATA])
    assert len(loaded.services) == 19
    assert [d.format() for d in loaded.errors] == [
        "%s: error: importing the units failed (RuntimeError: injected); only the .svc files "
        "are loaded" % DATA]


WORDS = ("ExecStart", "ExecStartPre", "Type", "User", "Environment", "EnvironmentFile",
         "WorkingDirectory", "After", "Before", "Wants", "Requires", "Restart", "KillMode",
         "TimeoutSec", "TimeoutStopSec", "WatchdogSec", "ListenStream", "ListenDatagram",
         "SocketMode", "OnCalendar", "OnBootSec", "OnUnitActiveSec", "Persistent",
         "StandardInput", "TTYPath", "ConditionPathExists", "RuntimeDirectory", "Nice",
         "CPUQuota", "MemoryMax", "Service", "Unit", "Alias", "DefaultDependencies",
         "StartLimitBurst", "Conflicts", "PIDFile", "RemainAfterExit", "Accept")
PIECES = ("/bin/x", "a.service", "b.socket", "c.timer", "t.target", "x@.service", "%i", "%I",
          "%", "%%", "$A", "${B}", "$$", "'", '"', "\\", "\\x4", "\\u12", "-", "@", "+", "!",
          ":", "|", ";", "simple", "oneshot", "forking", "notify", "always", "no", "1min",
          "infinity", "daily", "*-*-* 6,18:00", "Sun 03:10", "0666", "22", "[::1]:22", "tty",
          "/dev/%I", "=", " ", "\t", "\x00", "\x7f", "\u00e9", "9" * 30, "yes", "A=1")


def test_a_socket_or_timer_naming_itself_as_its_service_ends_the_walk():
    """Found by the fuzzer below (it hung the walk): Service=a.socket in a.socket."""
    result, out = imported({"a.socket": "[Socket]\nService=a.socket\nListenStream=/run/a\n",
                            "b.timer": "[Timer]\nUnit=b.timer\nOnBootSec=1\n"},
                           wants={"multi-user.target": ["a.socket", "b.timer"]})
    assert out == {}
    assert warnings(result) == [
        "/lib/systemd/system/a.socket:2: warning: Service: 'a.socket' is not a service here; "
        "not imported",
        "/lib/systemd/system/b.timer:2: warning: Unit: 'b.timer' is not a service here; "
        "not imported"]


def test_seeded_fuzz_the_importer_never_raises_nor_hangs():
    import random
    import signal

    def hung(signo, frame):
        raise AssertionError("UNITS_FUZZ_SEED=%d: the importer hung" % seed)

    seed = int(os.environ.get("UNITS_FUZZ_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(60)
    try:
        fuzz_units(rng, seed)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def fuzz_units(rng, seed):
    for _ in range(300):
        files = {}
        for n in range(rng.randrange(1, 6)):
            name = rng.choice(["a", "b", "c", "x@", "x@1", "d"]) + rng.choice(
                [".service", ".socket", ".timer", ".target"])
            lines = []
            for _ in range(rng.randrange(0, 20)):
                if rng.random() < 0.15:
                    lines.append("[%s]" % rng.choice(["Unit", "Service", "Socket", "Timer",
                                                      "Install", "X"]))
                    continue
                value = "".join(rng.choice(PIECES) for _ in range(rng.randrange(0, 6)))
                lines.append("%s=%s%s" % (rng.choice(WORDS), value,
                                          rng.choice(["", "\\", " \\"])))
            files[name] = "\n".join(lines).encode("utf-8", "surrogateescape")
        source = units.DictSource(files, {"multi-user.target": list(files)})
        for everything in (False, True):
            try:
                result = units.import_units(source, ("d",), everything=everything,
                                            path_test=lambda flag, path: len(path) % 2 == 0)
                units.services_from(result)
                for generated in result.generated:
                    generated.render()
            except Exception as exc:
                raise AssertionError("UNITS_FUZZ_SEED=%d: %r raised %r" % (seed, files, exc))


def test_check_with_units_shows_their_diagnostics_and_boot_order(tmp_path):
    units_dir = tmp_path / "units"
    (units_dir / "timers.target.wants").mkdir(parents=True)
    for name in ("logrotate.service", "logrotate.timer"):
        os.symlink(os.path.join(DATA, name), units_dir / name)
    os.symlink("../logrotate.timer", units_dir / "timers.target.wants" / "logrotate.timer")
    run = subprocess.run([program("schema-init"), "--check", "services/debian",
                          "--units", str(units_dir)], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    lines = run.stdout.splitlines()
    assert run.returncode == 0, run.stdout
    assert "%s/logrotate.service:12: warning: Nice: nice 19 approximated by " \
        "priority=peripheral (nice 10)" % units_dir in lines
    assert "  6: dbus logrotate" in lines          # after the early boot (dep=basic)
    assert lines[-1].startswith("services/debian: 20 services, 3 groups, 0 errors, ")
    run = subprocess.run([program("schema-init"), "--check", "services/debian",
                          "--units", str(units_dir), "--no-units"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert run.stdout.splitlines()[-1] == \
        "services/debian: 19 services, 3 groups, 0 errors, 0 warnings"


def test_unset_environment_oom_score_and_count_limits_are_set_by_the_shell():
    result, out = imported({"l.service": (
        "[Service]\nExecStart=/bin/l\nUnsetEnvironment=LANG LC_ALL\nOOMScoreAdjust=-900\n"
        "LimitNOFILE=16384\nLimitNPROC=100:200\nLimitCORE=infinity\nLimitAS=1G\n")},
        everything=True)
    assert svc_lines(out["l"])[2] == (
        "args=unset LANG LC_ALL; echo -900 2>/dev/null >/proc/self/oom_score_adj || :; "
        "ulimit -n 16384 || exit; { ulimit -S -p 100 && ulimit -H -p 200; } 2>/dev/null || "
        "{ ulimit -H -p 200 && ulimit -S -p 100; } || exit; ulimit -c unlimited || exit; "
        "exec /bin/l")
    assert warnings(result) == ["/lib/systemd/system/l.service:8: warning: LimitAS: resource "
                                "limits (setrlimit) are not set"]


def test_a_template_instance_and_a_timer_run_for_real(tmp_path):
    units_dir = tmp_path / "units"
    (units_dir / "multi-user.target.wants").mkdir(parents=True)
    (units_dir / "timers.target.wants").mkdir(parents=True)
    out = tmp_path / "out"
    out.mkdir()
    (units_dir / "echo@.service").write_text(
        "[Unit]\nDescription=echo %%i\n[Service]\nType=oneshot\n"
        "ExecStart=/bin/sh -c 'echo %%i %%n > %s/%%i.txt'\n" % out)
    os.symlink("../echo@.service", units_dir / "multi-user.target.wants" / "echo@one.service")
    (units_dir / "tick.service").write_text(
        "[Service]\nType=oneshot\nExecStart=/bin/sh -c 'echo tick >> %s/tick.txt'\n" % out)
    (units_dir / "tick.timer").write_text("[Timer]\nOnBootSec=1\nOnUnitActiveSec=1\n")
    os.symlink("../tick.timer", units_dir / "timers.target.wants" / "tick.timer")
    s = Supervised(tmp_path, {"idle.svc": "exec=/bin/sleep\nargs=1000\n"},
                   args=["--units", str(units_dir)])
    try:
        s.start()
        s.wait(lambda: (out / "one.txt").exists(), 20, "the instance's output")
        assert (out / "one.txt").read_text() == "one echo@one.service\n"
        s.wait(lambda: (out / "tick.txt").exists() and
               (out / "tick.txt").read_text().count("tick") >= 2, 20, "two timer runs")
        assert "echo@" not in s.status()           # the template itself is not a service
    finally:
        s.stop()


def test_every_generated_shell_script_parses_even_from_fuzzed_units():
    """The quoting: whatever words a unit has, the /bin/sh -c line made of them is one
    valid script (sh -n), for the real units and for seeded random ones."""
    import random
    seed = int(os.environ.get("UNITS_FUZZ_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    scripts = []

    def collect(result):
        for generated in result.generated:
            lines = generated.render()[0].splitlines()
            scripts.extend(lines[i + 1][5:] for i, line in enumerate(lines[:-1])
                           if line == "args=-c")

    collect(units.import_units(loader.UnitDirs([DATA]), everything=True))
    real = len(scripts)
    for _ in range(60):
        words = [rng.choice(PIECES + ("a b", "'x y'", '"$Z"', "${Q}x", "%%i", "\\\\n"))
                 for _ in range(rng.randrange(1, 8))]
        text = ("[Unit]\nConditionPathExists=!/x %s\n[Service]\nType=%s\nUser=u\n"
                "RuntimeDirectory=r\nUnsetEnvironment=A\nExecStartPre=-/bin/p %s\n"
                "ExecStart=/bin/x %s\nStandardInput=tty\nTTYPath=/dev/tty%s\n" % (
                    rng.choice(PIECES), rng.choice(["oneshot", "simple", "forking"]),
                    " ".join(rng.sample(words, len(words))), " ".join(words),
                    rng.choice(["1", "S0", "%I"])))
        name = rng.choice(["f.service", "f@.service"])
        collect(units.import_units(units.DictSource({name: text.encode()}), everything=True))
    assert real >= 10 and len(scripts) > real
    for script in scripts:
        run = subprocess.run(["/bin/sh", "-n", "-c", script], capture_output=True, text=True)
        assert run.returncode == 0, "UNITS_FUZZ_SEED=%d: %r: %s" % (seed, script, run.stderr)


def test_a_nul_in_a_unit_is_dropped_with_a_warning_never_put_in_a_script():
    """Found by the fuzzer above: a NUL byte in a value, raw or as an escape, reached the
    /bin/sh -c line, which no program can be given."""
    text = ("[Unit]\nConditionPathExists=!/x \x00\n[Service]\nType=oneshot\n"
            "ExecStartPre=/bin/p a\\x00b\nExecStart=/bin/x \x00 y\nExecStart=/bin/z\n")
    result = units.import_units(units.DictSource({"n.service": text.encode()}),
                                everything=True)
    messages = [d.message for d in result.diagnostics]
    assert sum("NUL" in m for m in messages) == 3, messages
    for generated in result.generated:
        assert "\0" not in generated.render()[0]


def test_the_shell_line_passes_exactly_the_arguments_systemd_would():
    _, out = imported({"q.service": (
        "[Service]\nExecStart=/bin/sh -c 'printf \"[%%s]\" \"$@\"' argv0 \"a b\" 'c\"d' "
        "$SPLIT ${ONE} x${ONE}y $$HOME \"*\" '' e\\x41\n")}, everything=True)
    lines = svc_lines(out["q"])
    assert lines[:2] == ["exec=/bin/sh", "args=-c"]
    run = subprocess.run(["/bin/sh", "-c", lines[2][5:]], capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "SPLIT": " 1  2 ", "ONE": "p  q",
                              "HOME": "/root"}, cwd="/")
    assert run.stdout == "[a b][c\"d][1][2][p  q][xp  qy][$HOME][*][][eA]"


def test_other_conditions_are_the_machines_answer_when_the_units_are_read():
    files = {"e.service": "[Unit]\nConditionCapability=CAP_SYS_ADMIN\nConditionACPower=true\n"
                          "ConditionFirstBoot=yes\n[Service]\nType=oneshot\nExecStart=/bin/e\n"}
    source = units.DictSource({k: v.encode() for k, v in files.items()})
    answers = {"ConditionCapability": True, "ConditionACPower": True}
    result = units.import_units(source, everything=True,
                                condition_test=lambda key, value: answers.get(key))
    assert [g.name for g in result.generated] == ["e"]
    assert [d.key for d in result.diagnostics] == ["ConditionFirstBoot"]   # not known
    answers["ConditionACPower"] = False
    result = units.import_units(source, everything=True,
                                condition_test=lambda key, value: answers.get(key))
    assert result.generated == [] and result.skipped == [
        ("e.service", "ConditionACPower=true is false (checked when the units were read)")]


def test_the_machine_facts_behind_conditions(tmp_path):
    proc, sys_dir = tmp_path / "proc", tmp_path / "sys"
    (proc / "self").mkdir(parents=True)
    (proc / "self" / "status").write_text("Name:\tx\nCapBnd:\t0000000000200000\n")  # bit 21
    (proc / "cmdline").write_text("BOOT_IMAGE=/vmlinuz root=/dev/sda1 quiet\n")
    test = lambda key, value: loader.condition_test(key, value, str(proc), str(sys_dir))
    assert test("ConditionCapability", "CAP_SYS_ADMIN") is True
    assert test("ConditionCapability", "CAP_SYS_RAWIO") is False
    assert test("ConditionCapability", "!CAP_SYS_RAWIO") is True
    assert test("ConditionCapability", "CAP_NOT_ONE") is None
    assert test("ConditionKernelCommandLine", "quiet") is True
    assert test("ConditionKernelCommandLine", "root") is True
    assert test("ConditionKernelCommandLine", "root=/dev/sdb1") is False
    assert test("ConditionKernelCommandLine", "!single") is True
    assert test("ConditionFirstBoot", "yes") is None
    assert test("ConditionACPower", "true") is True          # no supply known: AC
    for name, kind, online in (("AC", "Mains", "0"), ("BAT0", "Battery", "1")):
        (sys_dir / "class" / "power_supply" / name).mkdir(parents=True)
        (sys_dir / "class" / "power_supply" / name / "type").write_text(kind + "\n")
        (sys_dir / "class" / "power_supply" / name / "online").write_text(online + "\n")
    assert test("ConditionACPower", "true") is False         # on battery
    assert test("ConditionACPower", "false") is True
    (sys_dir / "class" / "power_supply" / "AC" / "online").write_text("1\n")
    assert test("ConditionACPower", "true") is True
