"""Services from systemd unit files (schema_init/units/units.py): the pure mapping onto the
manager's keys line by line (each generated .svc parsed back by config into the spec
fields it must give), specifiers, which units a machine's links select (default.target
and sysinit.target), dependencies that are gone, the real Debian units of
tests/data/units against their expected .svc files, and imported services run for real
by a real schema-init (not PID 1)."""

import os
import subprocess
import sys

import pytest

from conftest import ROOT
from harness import Supervised
from schema_init.core import config
from schema_init.pid1 import loader
from schema_init.units import units

DATA = os.path.join(ROOT, "tests", "data", "units")
EXPECTED = os.path.join(ROOT, "tests", "data", "units-expected")
FACTS = {"H": "web1.example.org", "m": "0123456789abcdef0123456789abcdef",
         "b": "fedcba9876543210fedcba9876543210", "v": "6.1.0-28-amd64"}


def unit(name, text, instance=None):
    entries, diags = units.parse_unit_text("/u/" + name, text.encode())
    assert diags == []
    return units.Unit(name, "/u/" + name, entries, instance)


def imported(files, svc_names=(), wants=None, dropins=None, everything=False, **kwargs):
    source = units.DictSource({k: (v.encode() if isinstance(v, str) else v)
                               for k, v in files.items()}, wants, dropins)
    kwargs.setdefault("facts", FACTS)
    result = units.import_units(source, svc_names, everything=everything, **kwargs)
    return result, {g.name: g.render()[0] for g in result.generated}


def specs_of(files, **kwargs):
    """The specs config reads from the generated text, which must parse without a
    diagnostic of its own (every one names a unit line)."""
    kwargs.setdefault("everything", True)
    result, _ = imported(files, **kwargs)
    specs, diags = units.services_from(result)
    assert [d.format() for d in diags if "(as " in d.message] == []
    return {s.name: s for s in specs}, result


def svc_lines(text):
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def warnings(result):
    return [d.format() for d in result.diagnostics]


def debian(*names):
    files = {}
    for name in names:
        with open(os.path.join(DATA, name), "rb") as f:
            files[name] = f.read()
    return files


# --- command lines, specifiers, numbers ------------------------------------------------

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


def test_every_specifier_of_an_instance_is_resolved():
    instance = unit("sys-fsck@dev-disk-by\\x2dlabel-root.service", "", "dev-disk-by\\x2dlabel-root")
    text = " ".join("%" + c for c in "iInNpPjJftSCLEhuUgGHlmbv%")
    assert units.expand_specifiers(text, instance, FACTS) == (" ".join([
        "dev-disk-by\\x2dlabel-root", "dev/disk/by-label/root",
        "sys-fsck@dev-disk-by\\x2dlabel-root.service", "sys-fsck@dev-disk-by\\x2dlabel-root",
        "sys-fsck", "sys/fsck", "fsck", "fsck", "/dev/disk/by-label/root", "/run",
        "/var/lib", "/var/cache", "/var/log", "/etc", "/root", "root", "0", "root", "0",
        "web1.example.org", "web1", "0123456789abcdef0123456789abcdef",
        "fedcba9876543210fedcba9876543210", "6.1.0-28-amd64", "%"]), None)


def test_specifiers_of_a_template_become_the_instance_variable_and_bad_ones_say_why():
    template = unit("e2scrub@.service", "", instance="")
    _, words, _ = units.parse_command("/sbin/e2scrub -t %I %n %t/x %%", template)
    assert words == [[("text", "/sbin/e2scrub")], [("text", "-t")], [("var", "INSTANCE")],
                     [("text", "e2scrub@"), ("var", "INSTANCE"), ("text", ".service")],
                     [("text", "/run/x")], [("text", "%")]]
    flags, words, _ = units.parse_command(":/bin/echo $HOME", unit("a.service", ""))
    assert flags == ":" and words[1] == [("text", "$HOME")]
    assert units.parse_command("/bin/x %z", unit("a.service", ""))[2] == \
        "specifier %z is not known here"
    assert units.parse_command("/bin/x %m", unit("a.service", ""), {})[2] == \
        "specifier %m: the machine id cannot be read"


def test_machine_facts_are_read_from_the_machine_once():
    facts = units.MachineFacts()
    with open("/proc/sys/kernel/hostname") as f:
        assert facts.get("H") == f.read().strip()
    assert facts.get("v") == os.uname().release
    assert len(facts.get("b")) == 32 and "-" not in facts.get("b")
    assert facts.get("H") is facts.known["H"]


@pytest.mark.parametrize("text, seconds", [
    ("90", 90), ("1min 30s", 90), ("15min", 900), ("1d", 86400), ("1.5h", 5400),
    ("100ms", 0.1), ("infinity", None), ("2w", 1209600),
])
def test_time_spans(text, seconds):
    assert units.parse_timespan(text) == (seconds, None)


@pytest.mark.parametrize("text, how, value", [
    ("65535", "count", "65535"), ("infinity", "count", "infinity"), ("64K", "size", "65536"),
    ("1.5M", "size", "1572864"), ("8G", "size", str(8 << 30)), ("30min", "time", "1800"),
    ("90", "time", "90"), ("1s", "usec", "1000000"), ("200", "usec", "200"),
    ("-5", "nice", "25"), ("+19", "nice", "1"), ("30", "nice", "30"), ("41", "nice", None),
    ("\u00b2", "count", None), ("9" * 20, "count", None), ("16E", "size", None),
])
def test_limit_values_in_systemds_units(text, how, value):
    assert units.limit_value(text, how) == value


@pytest.mark.parametrize("text, ours, note", [
    ("daily", "00:00", None), ("weekly", "Mon 00:00", None), ("monthly", "1 00:00", None),
    ("Sun *-*-* 03:10:00", "Sun 03:10", None), ("*-*-* 6:00", "06:00", None),
    ("*-*-* 6,18:00", "06:00", "only the first of the hours 6,18 is kept"),
    ("*-*-* 07..23:30", "07:30", "only the first of the hours 07..23 is kept"),  # anacron
    ("*-*-15 04:30", "15 04:30", None), ("Fri 22:05", "Fri 22:05", None),
])
def test_calendars_our_grammar_accepts(text, ours, note):
    assert units.map_calendar(text) == (ours, note)


@pytest.mark.parametrize("text", ["hourly", "Mon..Fri 10:00", "*-*-* *:00/15",
                                  "2026-01-01 00:00", "*-*-* 03:10:30", "Sat,Sun 10:00"])
def test_calendars_beyond_our_grammar_are_reported(text):
    ours, why = units.map_calendar(text)
    assert ours is None and why


# --- one unit onto the manager's keys --------------------------------------------------

def test_redis_servers_real_unit_gives_its_limits_directories_and_sandbox():
    specs, result = specs_of(debian("redis-server.service"))
    redis = specs["redis-server"]
    assert (redis.exec, redis.args) == ("/usr/bin/redis-server", (
        "/etc/redis/redis.conf", "--supervised", "systemd", "--daemonize", "no"))
    assert redis.notify and redis.restart == "always" and redis.user == "redis"
    assert redis.group == "redis" and redis.stop_timeout_sec == 86400
    assert redis.limit == (("nofile", 65535, 65535),)
    assert redis.umask == 0o007
    assert (redis.runtime_dir, redis.runtime_dir_mode) == (("redis",), 0o2755)
    assert redis.protect_system == "strict" and redis.protect_home == "yes"
    assert redis.read_write_paths == ("-/var/lib/redis", "-/var/log/redis", "-/var/run/redis",
                                      "-/etc/redis")
    assert redis.private_tmp and redis.private_devices and redis.no_new_privs
    assert redis.protect_kernel_tunables and redis.protect_kernel_modules and \
        redis.protect_control_groups
    assert redis.cap_bounding == "~" + " ".join(units.CAPABILITIES)   # CapabilityBoundingSet=
    assert redis.restrict_address_families == "AF_INET AF_INET6 AF_UNIX"
    # what cannot be applied is said line by line, and counted apart
    sandbox = sorted(d.key for d in result.diagnostics if "sandboxing:" in d.message)
    assert sandbox == sorted([
        "LockPersonality", "MemoryDenyWriteExecute", "PrivateUsers", "ProtectClock",
        "ProtectHostname", "ProtectKernelLogs", "ProtectProc", "RemoveIPC",
        "RestrictNamespaces", "RestrictRealtime", "RestrictSUIDSGID",
        "SystemCallArchitectures", "SystemCallFilter", "SystemCallFilter", "NoExecPaths",
        "ExecPaths"])
    assert result.sandbox == {"redis-server": 16}
    assert "# Not carried over (16 sandboxing lines: it runs less confined than under " \
        "systemd):" in result.generated[0].render()[0]


def test_nftables_real_unit_is_a_oneshot_that_stays_with_its_reload_and_stop():
    specs, _ = specs_of(debian("nftables.service"))
    nft = specs["nftables"]
    assert (nft.exec, nft.args) == ("/usr/sbin/nft", ("-f", "/etc/nftables.conf"))
    assert nft.oneshot and nft.remain_after_exit and nft.restart == "no"
    assert nft.exec_reload == (("", ("/usr/sbin/nft", "-f", "/etc/nftables.conf")),)
    assert nft.exec_stop == (("", ("/usr/sbin/nft", "flush", "ruleset")),)
    assert (nft.protect_system, nft.protect_home) == ("full", "yes")


def test_every_command_line_keeps_its_prefixes_and_its_order():
    specs, result = specs_of({"c.service": (
        "[Service]\nUser=web\nExecCondition=/bin/check-c\nExecStartPre=-/bin/pre one\n"
        "ExecStartPre=+/bin/pre two\nExecStart=/bin/c\nExecStartPost=@/bin/post post-argv0\n"
        "ExecReload=/bin/kill -USR1 $MAINPID\nExecReload=/bin/kill -HUP $MAINPID\n"
        "ExecStop=!/bin/stop \"a b\"\nExecStopPost=:/bin/echo $literal %n\n")})
    c = specs["c"]
    assert c.user == "web" and (c.exec, c.args, c.expand_args) == ("/bin/c", (), False)
    assert c.condition == (("", ("/bin/check-c",)),)
    assert c.exec_pre == (("-", ("/bin/pre", "one")), ("+", ("/bin/pre", "two")))
    assert c.exec_post == (("@", ("/bin/post", "post-argv0")),)
    # kill -HUP $MAINPID is what a reload does without exec_reload=
    assert c.exec_reload == (("", ("/bin/kill", "-USR1", "$MAINPID")),)
    assert c.exec_stop == (("!", ("/bin/stop", "a b")),)
    assert c.exec_stop_post == ((":", ("/bin/echo", "$literal", "c.service")),)
    assert result.diagnostics == []


def test_permissions_start_only_runs_every_other_command_with_full_privileges():
    """tor@default.service: PermissionsStartOnly=yes and a bounding set without CAP_CHOWN;
    its ExecStartPre= install -o debian-tor must run as systemd runs it, with the + prefix
    (else: Operation not permitted, the unit never starts)."""
    specs, result = specs_of({"t.service": (
        "[Service]\nUser=tor\nPermissionsStartOnly=yes\nCapabilityBoundingSet=CAP_SETUID\n"
        "ExecStartPre=/usr/bin/install -o tor -d /run/tor\nExecStartPre=!/bin/pre\n"
        "ExecStart=/usr/bin/tor\nExecReload=-/bin/kill -USR1 $MAINPID\n"
        "ExecStopPost=/bin/post\n")})
    t = specs["t"]
    assert t.exec_pre == (("+", ("/usr/bin/install", "-o", "tor", "-d", "/run/tor")),
                          ("!", ("/bin/pre",)))
    assert t.exec_reload == (("-+", ("/bin/kill", "-USR1", "$MAINPID")),)
    assert t.exec_stop_post == (("+", ("/bin/post",)),)
    assert (t.exec, t.user) == ("/usr/bin/tor", "tor")       # the main command is confined
    assert result.diagnostics == []


def test_part_of_and_reload_propagated_from_and_a_unit_without_exec_reload():
    """postgresql@.service: PartOf=/ReloadPropagatedFrom=postgresql.service become
    part_of=/reload_from=; a target is said and dropped; no ExecReload=: no_reload=1
    (systemctl reload refuses it, as systemd does), ExecReload=kill -HUP: a reload."""
    specs, result = specs_of({
        "pgi.service": "[Unit]\nPartOf=pg.service nut.target\n"
                       "ReloadPropagatedFrom=pg.service\n[Service]\nExecStart=/bin/pg %i\n"
                       "ExecReload=/bin/kill -HUP $MAINPID\n",
        "pg.service": "[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/true\n"
                      "ExecReload=/bin/true\n",
        "db.service": "[Service]\nExecStart=/bin/db\n"}, everything=True)
    _, out = imported({"pg@.service": "[Unit]\nPartOf=pg.service\n"
                                      "ReloadPropagatedFrom=pg.service\n[Service]\n"
                                      "ExecStart=/bin/pg %i\n"}, everything=True)
    assert [l for l in svc_lines(out["pg@"]) if l.startswith(("part_of", "reload_from"))] == \
        ["part_of=pg", "reload_from=pg"]
    pg_i = specs["pgi"]
    assert (pg_i.part_of, pg_i.reload_from) == (("pg",), ("pg",))
    assert not pg_i.no_reload and pg_i.exec_reload == ()
    assert specs["pg"].exec_reload == (("", ("/bin/true",)),) and not specs["pg"].no_reload
    assert specs["db"].no_reload
    assert warnings(result) == ["/lib/systemd/system/pgi.service:2: warning: PartOf: "
                                "nut.target is not a service: not kept"]


def test_variables_in_exec_start_keep_their_words_with_expand_args():
    specs, _ = specs_of({
        "v.service": "[Service]\nExecStart=/bin/v -x $OPTS ${A}b '$$HOME' c\n",
        "p.service": "[Service]\nExecStart=/bin/p '$$HOME' 50%%\n",
        "q.service": "[Service]\nExecStart=:/bin/q $OPTS\n"})
    assert specs["v"].args == ("-x", "$OPTS", "${A}b", "$$HOME", "c") and \
        specs["v"].expand_args
    assert specs["p"].args == ("$HOME", "50%") and not specs["p"].expand_args
    assert specs["q"].args == ("$OPTS",) and not specs["q"].expand_args


def test_types_map_onto_notify_oneshot_forking_and_dbus_is_said():
    specs, result = specs_of({
        "n.service": "[Service]\nType=notify\nExecStart=/bin/n\nNotifyAccess=all\n",
        "o.service": "[Service]\nType=oneshot\nExecStart=/bin/o\nRemainAfterExit=yes\n",
        "f.service": "[Service]\nType=forking\nPIDFile=%t/f.pid\nExecStart=/usr/sbin/f -d\n",
        "r.service": "[Service]\nType=forking\nRemainAfterExit=yes\nExecStart=/etc/rc.local\n",
        "d.service": "[Service]\nType=dbus\nBusName=org.d\nExecStart=/bin/d\n",
        "i.service": "[Service]\nType=idle\nExecStart=/bin/i\n",
        "s.service": "[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStop=/bin/s stop\n"})
    assert specs["n"].notify and not specs["n"].oneshot
    assert specs["o"].oneshot and specs["o"].remain_after_exit
    f = specs["f"]
    assert (f.forking, f.pid_file, f.exec, f.args) == (True, "/run/f.pid", "/usr/sbin/f",
                                                       ("-d",))
    # a script that starts things and is done (rc.local)
    assert specs["r"].oneshot and specs["r"].remain_after_exit and not specs["r"].forking
    assert not (specs["d"].notify or specs["d"].oneshot or specs["i"].oneshot)
    assert specs["s"].exec == units.TRUE and specs["s"].exec_stop == (
        ("", ("/bin/s", "stop")),)
    assert warnings(result) == [
        "/lib/systemd/system/d.service:2: warning: Type: Type=dbus: ready as a simple "
        "daemon is (stable_secs), not when it takes its bus name"]


def test_restart_and_exit_statuses_with_signal_and_status_names():
    specs, result = specs_of({"r.service": (
        "[Service]\nExecStart=/bin/r\nRestart=on-abnormal\n"
        "SuccessExitStatus=3 SIGUSR1 TEMPFAIL\nSuccessExitStatus=HUP 300\n"
        "RestartPreventExitStatus=255 SIGKILL\nRestartForceExitStatus=EXIT_FAILURE\n"),
        "m.service": "[Service]\nExecStart=-/bin/m\n",
        "a.service": "[Service]\nExecStart=/bin/a\nRestart=sometimes\n"})
    r = specs["r"]
    assert r.restart == "on-abnormal"
    assert r.success_exit_status == (3, -10, 75, -1)
    assert r.restart_prevent_exit_status == (255, -9)
    assert r.restart_force_exit_status == (1,)
    # the - prefix: every end of the command counts as a success, as in systemd
    assert set(specs["m"].success_exit_status) == set(range(1, 256)) | {
        -n for n in config.SIGNALS.values()}
    assert specs["m"].restart == "no" and specs["a"].restart == "no"
    assert warnings(result) == [
        "/lib/systemd/system/a.service:3: warning: Restart: Restart=sometimes is not a "
        "Restart= value",
        "/lib/systemd/system/r.service:5: warning: SuccessExitStatus: not an exit code "
        "(0-255), exit status name or signal: 300"]


def test_limits_with_systemds_suffixes_become_numbers():
    specs, result = specs_of({"l.service": (
        "[Service]\nExecStart=/bin/l\nLimitNOFILE=1024:4096\nLimitMEMLOCK=64M\n"
        "LimitCPU=30min\nLimitRTTIME=1s:infinity\nLimitCORE=infinity\nLimitNICE=-5\n"
        "LimitAS=8G:4G\nLimitSTACK=\u00b2\n")})
    assert specs["l"].limit == (("cpu", 1800, 1800), ("core", -1, -1),
                                ("nofile", 1024, 4096), ("memlock", 64 << 20, 64 << 20),
                                ("nice", 25, 25), ("rttime", 1000000, -1))
    assert warnings(result) == [
        "/lib/systemd/system/l.service:9: warning: LimitAS: the soft limit is above the hard one",
        "/lib/systemd/system/l.service:10: warning: LimitSTACK: not a limit (a number of bytes, "
        "K, M, G, T, or infinity) below 2^63"]


def test_process_settings_nice_oom_umask_groups_and_the_working_directory():
    specs, result = specs_of({
        "p.service": ("[Service]\nExecStart=/bin/p\nUser=www-data\nGroup=%p\n"
                      "SupplementaryGroups=adm ssl-cert\nSupplementaryGroups=video\n"
                      "Nice=-5\nOOMScoreAdjust=-900\nUMask=027\nWorkingDirectory=~\n"),
        "q.service": "[Service]\nExecStart=/bin/q\nWorkingDirectory=-%S/q\nNice=20\n"})
    p = specs["p"]
    assert (p.user, p.group, p.supplementary_group) == ("www-data", "p",
                                                        ("adm", "ssl-cert", "video"))
    assert (p.nice, p.oom_score_adj, p.umask, p.workdir) == (-5, -900, 0o027, "~")
    assert specs["q"].workdir == "-/var/lib/q" and specs["q"].nice is None
    assert warnings(result) == ["/lib/systemd/system/q.service:4: warning: Nice: not a "
                                "number from -20 to 19"]


def test_directories_their_modes_and_preserve():
    specs, result = specs_of({"d.service": (
        "[Service]\nExecStart=/bin/d\nUser=daemon\nRuntimeDirectory=d d/sub\n"
        "RuntimeDirectoryMode=0750\nRuntimeDirectoryPreserve=restart\nStateDirectory=%p\n"
        "CacheDirectory=d\nLogsDirectory=d\nLogsDirectoryMode=2750\n"
        "ConfigurationDirectory=d\nStateDirectory=../escape\n")})
    d = specs["d"]
    assert (d.runtime_dir, d.runtime_dir_mode, d.runtime_dir_preserve) == (
        ("d", "d/sub"), 0o750, "restart")
    assert (d.state_dir, d.cache_dir, d.logs_dir, d.config_dir) == (
        ("d",), ("d",), ("d",), ("d",))
    assert d.logs_dir_mode == 0o2750 and d.state_dir_mode == 0o755
    assert warnings(result) == [
        "/lib/systemd/system/d.service:12: warning: StateDirectory: '../escape' is not a "
        "relative path of named parts (no /, ., ..)"]


def test_sandboxing_directives_and_capability_sets_merge_as_systemd_merges_them():
    specs, result = specs_of({
        "s.service": ("[Service]\nExecStart=/bin/s\nPrivateTmp=yes\nPrivateDevices=true\n"
                      "PrivateNetwork=1\nNoNewPrivileges=on\nProtectSystem=true\n"
                      "ProtectHome=tmpfs\nProtectKernelTunables=yes\nProtectKernelModules=no\n"
                      "ReadOnlyPaths=/etc \"-/srv/a b\"\nInaccessiblePaths=-/home\n"
                      "CapabilityBoundingSet=CAP_NET_BIND_SERVICE CAP_CHOWN\n"
                      "CapabilityBoundingSet=~CAP_CHOWN\nAmbientCapabilities=CAP_NET_RAW\n"
                      "RestrictAddressFamilies=~AF_PACKET\n"),
        "t.service": ("[Service]\nExecStart=/bin/t\nCapabilityBoundingSet=~CAP_SYS_ADMIN\n"
                      "CapabilityBoundingSet=~CAP_SYS_PTRACE\nRestrictAddressFamilies=none\n"
                      "CapabilityBoundingSet=CAP_BOGUS\nProtectSystem=sometimes\n")})
    s = specs["s"]
    assert s.private_tmp and s.private_devices and s.private_network and s.no_new_privs
    assert (s.protect_system, s.protect_home) == ("yes", "tmpfs")
    assert s.protect_kernel_tunables and not s.protect_kernel_modules
    assert s.read_only_paths == ("/etc", "-/srv/a b") and s.inaccessible_paths == ("-/home",)
    assert s.cap_bounding == "cap_net_bind_service" and s.ambient_caps == "cap_net_raw"
    assert s.restrict_address_families == "~AF_PACKET"
    t = specs["t"]
    assert t.cap_bounding == "~cap_sys_ptrace cap_sys_admin"
    assert t.restrict_address_families == "none" and t.protect_system == "no"
    assert warnings(result) == [
        "/lib/systemd/system/t.service:6: warning: CapabilityBoundingSet: sandboxing: not "
        "applied: unknown cap_bogus",
        "/lib/systemd/system/t.service:7: warning: ProtectSystem: sandboxing: "
        "ProtectSystem=sometimes is not applied here"]
    assert result.sandbox == {"t": 2}


def test_specifiers_are_resolved_in_every_value_of_an_instance():
    specs, result = specs_of({"w@.service": (
        "[Service]\nType=forking\nEnvironment=SITE=%i HOST=%H\nEnvironmentFile=-%E/w/%i.env\n"
        "WorkingDirectory=%S/w/%i\nPIDFile=%t/w-%i.pid\nRuntimeDirectory=w-%i\n"
        "StateDirectory=w/%I\nReadWritePaths=%L/w-%i\nExecStart=/usr/sbin/w --site %i "
        "--id %m\nExecStop=/usr/sbin/w --stop %N\n")},
        wants={"multi-user.target": ["w@blog.service"]}, everything=False)
    w = specs["w@blog"]
    assert w.env == (("SITE", "blog"), ("HOST", "web1.example.org"))
    assert w.env_file == ("-/etc/w/blog.env",) and w.workdir == "/var/lib/w/blog"
    assert w.pid_file == "/run/w-blog.pid" and w.runtime_dir == ("w-blog",)
    assert w.state_dir == ("w/blog",) and w.read_write_paths == ("/var/log/w-blog",)
    assert w.args == ("--site", "blog", "--id", FACTS["m"]) and not w.expand_args
    assert w.exec_stop == (("", ("/usr/sbin/w", "--stop", "w@blog")),)
    assert w.instance == "blog" and result.diagnostics == []


def test_a_template_itself_keeps_the_instance_as_a_variable():
    _, out = imported({"e@.service": (
        "[Service]\nExecStart=/bin/e %i\nExecStop=/bin/e stop %I\nEnvironment=X=%i\n")},
        everything=True)
    assert svc_lines(out["e@"]) == ["exec=/bin/e", "args=${INSTANCE}", "expand_args=1",
                                    "restart=no", "no_reload=1",
                                    "exec_stop=/bin/e stop ${INSTANCE}"]


def test_a_oneshots_several_commands_run_in_order_around_exec():
    specs, result = specs_of({"m.service": (
        "[Service]\nType=oneshot\nUser=man\nExecStartPre=/bin/pre\n"
        "ExecStart=+/usr/bin/install -d -o man /var/cache/man\nExecStart=-/usr/bin/find x\n"
        "ExecStart=/usr/bin/mandb --quiet\nExecStartPost=/bin/post\n"),
        "r.service": "[Service]\nType=oneshot\nUser=x\nExecStart=+/bin/a\nExecStart=!/bin/b\n"})
    m = specs["m"]
    assert (m.user, m.exec, m.args) == ("man", "/usr/bin/find", ("x",))
    assert m.exec_pre == (("", ("/bin/pre",)), ("+", ("/usr/bin/install", "-d", "-o", "man",
                                                       "/var/cache/man")))
    assert m.exec_post == (("", ("/usr/bin/mandb", "--quiet")), ("", ("/bin/post",)))
    assert m.success_exit_status       # its own - prefix
    # every command asks for root: no user at all
    assert (specs["r"].user, specs["r"].exec) == ("", "/bin/a")
    assert specs["r"].exec_post == (("!", ("/bin/b",)),)
    assert result.diagnostics == []


def test_a_command_named_without_its_directory_is_found_or_left_to_env():
    files = {"t.service": "[Service]\nType=oneshot\nExecStart=systemd-tmpfiles --clean\n"
                          "ExecStartPost=true\n"}
    specs, _ = specs_of(files)
    assert (specs["t"].exec, specs["t"].args) == (units.ENV, ("systemd-tmpfiles", "--clean"))
    assert specs["t"].exec_post == (("", (units.ENV, "true")),)
    specs, _ = specs_of(files, path_test=lambda flag, path: path in (
        "/usr/bin/systemd-tmpfiles", "/bin/true") and flag == "-x")
    assert (specs["t"].exec, specs["t"].args) == ("/usr/bin/systemd-tmpfiles", ("--clean",))
    assert specs["t"].exec_post == (("", ("/bin/true",)),)


def test_a_value_config_would_read_otherwise_is_a_dropped_line_never_a_surprise():
    specs, result = specs_of({"c.service": (
        "[Service]\nExecStart=/bin/c\nEnvironment=\"A=x #y\" B=1\nExecStop=/bin/stop \"a #b\"\n"
        "Environment=\"C=trailing \"\n"),
        "d.service": "[Service]\nExecStart=/bin/d \"a\\nb\"\n"})
    assert specs["c"].env == (("B", "1"),) and specs["c"].exec_stop == ()
    assert "d" not in specs
    assert [d.format() for d in result.diagnostics] == [
        "/lib/systemd/system/c.service:3: warning: Environment: a blank then # in 'A=x #y' "
        "would be read as a comment in a .svc line",
        "/lib/systemd/system/c.service:4: warning: ExecStop: a blank then # in "
        "'/bin/stop \"a #b\"' would be read as a comment in a .svc line",
        "/lib/systemd/system/c.service:5: warning: Environment: blanks at the ends of "
        "'C=trailing ' would be lost in a .svc line",
        "/lib/systemd/system/d.service:2: error: ExecStart: value contains the control "
        "character '\\n'; the unit is not imported"]


def test_every_line_is_mapped_or_reported_with_file_line_and_key():
    result, out = imported({"a.service": (
        "[Unit]\nDescription=A\nAfter=network.target\n"
        "[Service]\nExecStart=/bin/a -x\nProtectClock=yes\nFrobnicate=1\n"
        "IOSchedulingClass=idle\n[Install]\nWantedBy=multi-user.target\n")}, everything=True)
    assert svc_lines(out["a"]) == ["exec=/bin/a", "args=-x", "restart=no", "no_reload=1"]
    assert warnings(result) == [
        "/lib/systemd/system/a.service:6: warning: ProtectClock: sandboxing: not applied "
        "here (no key for it)",
        "/lib/systemd/system/a.service:7: warning: Frobnicate: no schema-init equivalent",
        "/lib/systemd/system/a.service:8: warning: IOSchedulingClass: this scheduling or "
        "cgroup setting is not supported (nice=, cpu_limit=, mem_limit= are)"]
    assert "#   /lib/systemd/system/a.service:7: Frobnicate=1 (no schema-init equivalent)" \
        in out["a"].splitlines()
    assert all(d.from_unit for d in result.diagnostics)


def test_timeouts_kill_settings_and_limits_of_the_cgroup():
    specs, result = specs_of({"n.service": (
        "[Service]\nExecStart=/bin/n\nTimeoutStopSec=1min 30s\nTimeoutStartSec=infinity\n"
        "WatchdogSec=2.5\nKillMode=mixed\nKillSignal=SIGINT\nSendSIGKILL=no\nCPUQuota=50%\n"
        "MemoryMax=1G\nStartLimitBurst=3\n")})
    n = specs["n"]
    assert (n.stop_timeout_sec, n.start_timeout_sec, n.watchdog_sec) == (90, 0, 3)
    assert (n.kill_mode, n.kill_signal, n.send_sigkill) == ("mixed", 2, False)
    assert (n.cpu_limit, n.mem_limit, n.max_restarts) == (50, 1024, 3)
    assert result.diagnostics == []


# --- conditions ------------------------------------------------------------------------

def test_path_conditions_are_condition_lines_checked_at_each_start(tmp_path):
    full, empty, missing = tmp_path / "full", tmp_path / "empty", tmp_path / "missing"
    full.mkdir()
    (full / "x").write_text("")
    empty.mkdir()
    specs, result = specs_of({"c.service": (
        "[Unit]\nConditionPathExists=!/etc/skip\nConditionFileIsExecutable=/etc/rc.local\n"
        "ConditionDirectoryNotEmpty=/etc/c.d\nConditionPathIsMountPoint=/srv\n"
        "ConditionPathIsMountPoint=!/mnt\nConditionDirectoryNotEmpty=|/a\n"
        "ConditionPathIsDirectory=|!/b\nAssertPathExists=/etc/c.conf\n"
        "[Service]\nType=oneshot\nExecStart=/bin/c\n")})
    c = specs["c"]
    assert c.condition == (
        (":", (units.TEST, "!", "-e", "/etc/skip")), (":", (units.TEST, "-x", "/etc/rc.local")),
        (":", (units.SHELL, "-c", '[ -n "$(ls -A -- "$1" 2>/dev/null)" ]', "-", "/etc/c.d")),
        (":", (units.MOUNTPOINT, "-q", "/srv")),
        (":", (units.SHELL, "-c", '! %s -q -- "$1"' % units.MOUNTPOINT, "-", "/mnt")),
        (":", (units.SHELL, "-c", '[ -n "$(ls -A -- "${1}" 2>/dev/null)" ] || [ ! -d "${2}" ]',
               "-", "/a", "/b")))
    assert c.exec_pre == ((":", (units.TEST, "-e", "/etc/c.conf")),)   # false fails it
    assert result.diagnostics == []

    def holds(argv, *paths):         # each line as the executor runs it (exit 0: start)
        argv = list(argv[:len(argv) - len(paths)]) + [str(p) for p in paths]
        return subprocess.run(argv).returncode == 0

    assert holds(c.condition[0][1], missing) and not holds(c.condition[0][1], full)
    assert holds(c.condition[2][1], full) and not holds(c.condition[2][1], empty)
    assert not holds(c.condition[2][1], missing)
    assert holds(c.condition[5][1], empty, missing) and holds(c.condition[5][1], full, full)
    assert not holds(c.condition[5][1], empty, full)
    if os.path.exists(units.MOUNTPOINT):
        assert holds(c.condition[3][1], "/proc") and not holds(c.condition[4][1], "/proc")


def test_a_daemons_path_conditions_are_checked_when_the_units_are_read():
    files = {"s.service": "[Unit]\nConditionPathExists=!/etc/ssh/sshd_not_to_be_run\n"
                          "ConditionPathIsDirectory=/srv\n[Service]\nExecStart=/bin/s\n"}
    asked = []

    def present(*paths):
        def test(flag, path):
            asked.append((flag, path))
            return path in paths
        return test

    result, out = imported(files, everything=True, path_test=present("/srv"))
    assert list(out) == ["s"] and result.diagnostics == []
    assert "condition=" not in out["s"]
    assert asked == [("-e", "/etc/ssh/sshd_not_to_be_run"), ("-d", "/srv")]
    result, out = imported(files, everything=True,
                           path_test=present("/srv", "/etc/ssh/sshd_not_to_be_run"))
    assert out == {} and result.skipped == [(
        "s.service", "ConditionPathExists=!/etc/ssh/sshd_not_to_be_run is false (checked "
        "when the units were read)")]


def test_other_conditions_are_the_machines_answer_when_the_units_are_read():
    files = {"e.service": "[Unit]\nConditionCapability=CAP_SYS_ADMIN\nConditionACPower=true\n"
                          "ConditionFirstBoot=yes\n[Service]\nType=oneshot\nExecStart=/bin/e\n"}
    answers = {"ConditionCapability": True, "ConditionACPower": True}
    result, out = imported(files, everything=True,
                           condition_test=lambda key, value: answers.get(key))
    assert list(out) == ["e"]
    assert [d.key for d in result.diagnostics] == ["ConditionFirstBoot"]   # not known
    answers["ConditionACPower"] = False
    result, out = imported(files, everything=True,
                           condition_test=lambda key, value: answers.get(key))
    assert out == {} and result.skipped == [
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
    assert test("ConditionKernelCommandLine", "root=/dev/sdb1") is False
    assert test("ConditionACPower", "true") is True          # no supply known: AC


# --- terminals -------------------------------------------------------------------------

def test_a_tty_instance_gets_its_terminal_through_the_one_shell_and_its_term():
    specs, result = specs_of({"getty@.service": (
        "[Service]\nExecStart=-/sbin/agetty -o '-p -- \\\\u' --noclear - $TERM\n"
        "Restart=always\nStandardInput=tty\nStandardOutput=tty\nTTYPath=/dev/%I\n")},
        wants={"multi-user.target": ["getty@tty1.service", "getty@ttyS0.service"]},
        everything=False)
    tty1 = specs["getty@tty1"]
    assert (tty1.exec, tty1.args) == (units.SHELL, (
        "-c", 'exec "$$0" "$$@" </dev/tty1 >/dev/tty1 2>&1', "/sbin/agetty", "-o",
        "-p -- \\u", "--noclear", "-", "$TERM"))
    assert tty1.expand_args and tty1.session and tty1.env == (("TERM", "linux"),)
    assert specs["getty@ttyS0"].env == (("TERM", "vt220"),)
    # the script and the words as the shell gets them (expand_args: $$ is $)
    script = tty1.args[1].replace("$$", "$").replace("/dev/tty1", "/dev/null")
    run = subprocess.run(["/bin/sh", "-c", script, "/bin/echo", "a b", "c"],
                         capture_output=True, text=True)
    assert run.returncode == 0
    assert result.diagnostics == []


@pytest.mark.parametrize("tty, term", [
    ("/dev/tty2", "linux"), ("/dev/ttyS0", "vt220"), ("/dev/ttyAMA0", "vt220"),
    ("/dev/console", None)])
def test_a_tty_service_gets_the_term_systemd_would_give_it(tty, term):
    specs, _ = specs_of({"t.service": "[Service]\nExecStart=/sbin/agetty - $TERM\n"
                                      "StandardInput=tty\nTTYPath=%s\n" % tty})
    assert specs["t"].env == ((("TERM", term),) if term else ())


# --- sockets ---------------------------------------------------------------------------

def test_rpcbinds_real_sockets_keep_ipv6_only_beside_ipv4_in_their_order():
    specs, result = specs_of(debian("rpcbind.service", "rpcbind.socket"))
    rpcbind = specs["rpcbind"]
    name = ("name", "rpcbind.socket")        # LISTEN_FDNAMES: the socket unit's name
    assert rpcbind.listen == (
        ("unix-stream", "/run/rpcbind.sock", (name,)), ("tcp", ("0.0.0.0", 111), (name,)),
        ("udp", ("0.0.0.0", 111), (name,)), ("tcp", ("::", 111), (("ipv6only", True), name)),
        ("udp", ("::", 111), (("ipv6only", True), name)))
    assert rpcbind.args == ("-f", "$OPTIONS") and rpcbind.env == (("OPTIONS", "-w"),)
    assert not rpcbind.listen_on_demand          # rpcbind.service is enabled itself
    assert [d.key for d in result.diagnostics] == ["RequiresMountsFor"]


def test_each_socket_unit_keeps_its_own_mode_and_owner():
    specs, result = specs_of({
        "d.service": "[Service]\nExecStart=/bin/d\n",
        "d.socket": "[Socket]\nListenStream=/run/d.sock\nSocketMode=0600\nSocketUser=d\n",
        "d-admin.socket": "[Socket]\nService=d.service\nListenStream=/run/d-admin.sock\n"
                          "SocketGroup=adm\nSocketMode=660\n",
        "e.service": "[Service]\nExecStart=/bin/e\n",
        "e.socket": "[Socket]\nListenDatagram=514\nListenStream=@abstract\n"
                    "ListenStream=/run/e\nSocketMode=0640\nSocketGroup=adm\nBacklog=5\n"})
    assert specs["d"].listen == (
        ("unix-stream", "/run/d-admin.sock", (("mode", 0o660), ("group", "adm"),
                                              ("name", "d-admin.socket"))),
        ("unix-stream", "/run/d.sock", (("mode", 0o600), ("user", "d"), ("name", "d.socket"))))
    e = specs["e"]
    assert e.listen == (("udp", ("", 514), (("name", "e.socket"),)),
                        ("unix-stream", "/run/e", (("name", "e.socket"),)))
    assert (e.socket_mode, e.socket_group) == (0o640, "adm")
    assert warnings(result) == [
        "/lib/systemd/system/e.socket:3: warning: ListenStream: abstract unix sockets are "
        "not supported",
        "/lib/systemd/system/e.socket:7: warning: Backlog: this socket option is not set"]


def test_a_service_only_its_socket_reaches_is_started_by_a_connection():
    files = {"dbus.service": "[Service]\nExecStart=/usr/bin/dbus-daemon --system\n",
             "dbus.socket": "[Socket]\nListenStream=/run/dbus/system_bus_socket\n",
             "web.service": "[Unit]\nAfter=dbus.service dbus.socket\n"
                            "[Service]\nExecStart=/bin/web\nRestart=on-failure\n",
             "web.socket": "[Socket]\nListenStream=80\n",
             "multi-user.target": "[Unit]\n"}
    wants = {"sockets.target": ["dbus.socket", "web.socket"],
             "multi-user.target": ["web.service"]}
    specs, _ = specs_of(files, wants=wants, everything=False)
    assert specs["dbus"].listen_on_demand and specs["dbus"].restart == ""
    assert not specs["web"].listen_on_demand and specs["web"].restart == "on-failure"
    assert specs["web"].deps == ()          # nothing waits for an on-demand service
    # --all: a socket's service without [Install] is on demand, one enabled is not
    files["web.service"] += "[Install]\nWantedBy=multi-user.target\n"
    specs, _ = specs_of(files)
    assert specs["dbus"].listen_on_demand and not specs["web"].listen_on_demand


def test_an_accept_yes_socket_runs_its_template_per_connection_through_the_subreaper():
    specs, result = specs_of({
        "echo.socket": "[Socket]\nListenStream=7777\nAccept=yes\nMaxConnections=8\n",
        "echo@.service": "[Unit]\nPartOf=inetd.service\n"
                         "[Service]\nExecStart=/bin/cat\nStandardInput=socket\nUser=nobody\n"
                         "ExecStartPre=/bin/true\n"})
    echo = specs["echo"]
    assert echo.part_of == ("inetd",)        # its [Unit] keys kept as any service's
    assert (echo.exec, echo.args) == (units.SUBREAPER, ("--accept", "--max", "8", "--stdio",
                                                        "/bin/cat"))
    assert echo.listen == (("tcp", ("", 7777), (("name", "echo.socket"),)),) and \
        echo.user == "nobody"
    assert warnings(result) == ["/lib/systemd/system/echo@.service:7: warning: ExecStartPre: "
                                "Accept=yes: a command around each connection's is not run"]


# --- timers ----------------------------------------------------------------------------

def test_timers_join_their_service_with_randomized_delay_and_persistence():
    specs, result = specs_of({
        "j.service": "[Service]\nType=oneshot\nExecStart=/bin/j\n",
        "j.timer": "[Timer]\nOnCalendar=Sun *-*-* 03:10:00\nPersistent=true\n"
                   "RandomizedDelaySec=1h\n",
        "k.service": "[Service]\nType=oneshot\nExecStart=/bin/k\n",
        "k.timer": "[Timer]\nOnBootSec=15min\nOnUnitActiveSec=1d\nOnUnitInactiveSec=12h\n"
                   "Persistent=yes\n",
        "u.service": "[Service]\nType=oneshot\nExecStart=/bin/u\n",
        "u.timer": "[Timer]\nOnUnitInactiveSec=1h\n"})
    j = specs["j"]
    assert j.is_calendar and j.persistent and j.randomized_delay_sec == 3600 and j.oneshot
    k = specs["k"]
    assert (k.on_boot_sec, k.on_active_sec, k.is_calendar) == (900, 43200, False)
    assert specs["u"].on_active_sec == 3600
    assert warnings(result) == [
        "/lib/systemd/system/k.timer:3: warning: OnUnitActiveSec: only the earliest of the "
        "timer's unit settings is kept (OnUnitInactiveSec=12h)",
        "/lib/systemd/system/k.timer:5: warning: Persistent: Persistent= applies to calendar "
        "timers only",
        "/lib/systemd/system/u.timer:2: warning: OnUnitInactiveSec: without OnBootSec= it "
        "first fires at boot here (systemd waits for the service's first start)"]


def test_a_timer_of_a_template_instance_runs_that_instance():
    specs, result = specs_of({
        "backup@.service": "[Service]\nType=oneshot\nExecStart=/bin/backup %i\n",
        "backup@.timer": "[Timer]\nOnCalendar=daily\nUnit=backup@%i.service\n"},
        wants={"timers.target": ["backup@home.timer", "backup@srv.timer"]}, everything=False)
    assert sorted(specs) == ["backup@home", "backup@srv"]
    assert specs["backup@home"].args == ("home",) and specs["backup@home"].is_calendar
    assert specs["backup@srv"].instance == "srv" and result.diagnostics == []


# --- which units: the walk -------------------------------------------------------------

DEBIAN_LIKE = {
    "default.target": ("alias", "graphical.target"),
    "graphical.target": "[Unit]\nRequires=multi-user.target\nWants=display-manager.service\n",
    "multi-user.target": "[Unit]\nRequires=basic.target\n",
    "basic.target": "[Unit]\nRequires=sysinit.target\nWants=sockets.target timers.target\n",
    "sysinit.target": "[Unit]\nWants=local-fs.target swap.target\n",
    "cron.service": "[Service]\nExecStart=/usr/sbin/cron -f\n",
    "rsyslog.service": "[Unit]\nRequires=syslog.socket\n[Service]\nExecStart=/usr/sbin/rsyslogd"
                       "\n[Install]\nAlias=syslog.service\n",
    "syslog.socket": "[Socket]\nListenDatagram=/run/systemd/journal/syslog\n",
    "web.service": "[Unit]\nAfter=network-online.target cron.service\n"
                   "Wants=helper.service\n[Service]\nExecStart=/bin/web\n",
    "helper.service": "[Unit]\nBefore=web.service\n[Service]\nType=oneshot\nExecStart=/bin/h\n",
    "masked.service": ("masked", "/etc/systemd/system/masked.service"),
    "sshd.service": ("alias", "ssh.service"),
    "udev.service": ("alias", "systemd-udevd.service"),
    "systemd-udevd.service": "[Service]\nExecStart=/lib/systemd/systemd-udevd\n",
    "systemd-sysctl.service": "[Service]\nType=oneshot\nExecStart=/lib/systemd/systemd-sysctl\n",
    "syslogd.service": ("alias", "rsyslog.service"),
    "ssh.service": "[Service]\nExecStart=/usr/sbin/sshd -D\n",
    "systemd-logind.service": "[Service]\nExecStart=/lib/systemd/systemd-logind\n",
    "nftables.service": "[Unit]\nDefaultDependencies=no\n[Service]\nType=oneshot\n"
                        "RemainAfterExit=yes\nExecStart=/usr/sbin/nft -f /etc/nftables.conf\n",
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
    "sysinit.target": ["nftables.service", "systemd-sysctl.service", "gone.service"],
}


def test_the_walk_goes_from_default_target_and_sysinit_target_and_says_what_it_skips():
    result, out = imported(DEBIAN_LIKE, svc_names=("basic", "ssh", "getty@ttyS0"),
                           wants=DEBIAN_WANTS)
    assert sorted(out) == ["cron", "getty@tty1", "helper", "nftables", "rsyslog", "tick",
                           "web"]
    assert dict(result.skipped) == {
        "display-manager.service": "not found",
        "masked.service": "masked (/etc/systemd/system/masked.service is a link to /dev/null)",
        "ssh.service": "a .svc file of the same name wins",
        "systemd-logind.service": "needs systemd as PID 1 (sessions are its cgroup scopes)",
        "getty@ttyS0.service": "a .svc file of the same name wins",
        "mnt-data.mount":
            "mount units are not run here (the services directory mounts /etc/fstab's)",
        "systemd-udevd.service": "udev is the services directory's (udev, udev-trigger)",
        "systemd-sysctl.service": "sysctl.d is the services directory's (sysctl)",
        "gone.service": "not found"}
    # rsyslog takes syslog.socket (its service, syslog.service, is rsyslog's alias)
    assert "listen=dgram:/run/systemd/journal/syslog name=syslog.socket" in \
        svc_lines(out["rsyslog"])
    # After= a service and a target without a .svc name: ordering after the service only
    # (after=: its failure does not hold web); the implied basic.target: dep=basic (a .svc
    # group of that name); Before= in helper
    assert [l for l in svc_lines(out["web"]) if l.startswith(("dep=", "after="))] == \
        ["after=cron", "dep=basic", "after=helper"]
    assert "dep=basic" not in svc_lines(out["nftables"])      # DefaultDependencies=no
    assert "on_calendar=00:00" in svc_lines(out["tick"])
    assert "args=tty1" in svc_lines(out["getty@tty1"])


def test_without_default_target_the_walk_starts_at_graphical_or_multi_user():
    files = {"multi-user.target": "[Unit]\n", "a.service": "[Service]\nExecStart=/bin/a\n",
             "n.service": "[Service]\nExecStart=/bin/n\n"}
    wants = {"multi-user.target": ["a.service"], "sysinit.target": ["n.service"]}
    source = units.DictSource({k: v.encode() for k, v in files.items()}, wants)
    assert units.boot_targets(source) == ("multi-user.target", "sysinit.target")
    _, out = imported(files, wants=wants)
    assert sorted(out) == ["a", "n"]


def test_links_in_default_target_wants_count_beside_the_real_targets():
    """podman enables podman-restart.service in default.target.wants/ (the alias's own
    directory): systemd reads it beside multi-user.target.wants/; the corpus lost it in
    silence."""
    files = {"default.target": ("alias", "multi-user.target"),
             "multi-user.target": "[Unit]\n", "a.service": "[Service]\nExecStart=/bin/a\n",
             "p.service": "[Service]\nExecStart=/bin/p\n"}
    wants = {"multi-user.target": ["a.service"], "default.target": ["p.service"]}
    _, out = imported(files, wants=wants)
    assert sorted(out) == ["a", "p"]


def test_a_dependency_that_is_gone_is_said_and_never_waited_for():
    files = {
        "app.service": "[Unit]\nWants=cache.service opt.service\nAfter=cache.service "
                       "opt.service\n[Service]\nExecStart=/bin/app\n",
        "cache.service": "[Unit]\nConditionPathExists=/etc/cache.conf\n"
                         "[Service]\nExecStart=/bin/cache\n",
        "db.service": "[Unit]\nRequires=disk.service\nAfter=disk.service\n"
                      "[Service]\nExecStart=/bin/db\n",
        "disk.service": ("masked", "/etc/systemd/system/disk.service"),
        "api.service": "[Unit]\nRequires=db.service\n[Service]\nExecStart=/bin/api\n",
        "other.service": "[Service]\nExecStart=/bin/other\n"}
    wants = {"multi-user.target": ["app.service", "api.service", "other.service"]}
    result, out = imported(files, wants=wants, path_test=lambda flag, path: False)
    assert sorted(out) == ["app", "other"]
    assert [l for l in svc_lines(out["app"]) if l.startswith("dep=")] == []
    assert warnings(result) == [
        "/lib/systemd/system/app.service:2: warning: Wants: cache.service is not imported "
        "(ConditionPathExists=/etc/cache.conf is false (checked when the units were read)): "
        "not waited for",
        "/lib/systemd/system/app.service:2: warning: Wants: opt.service is not imported "
        "(not found): not waited for",
        "/lib/systemd/system/db.service:2: error: Requires: disk.service is not imported "
        "(masked); db.service is not imported either",
        "/lib/systemd/system/api.service:2: error: Requires: db.service is not imported "
        "(it requires disk.service, which is not imported); api.service is not imported "
        "either"]
    specs, diags = units.services_from(result)
    assert sorted(s.name for s in specs) == ["app", "other"]


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
    assert svc_lines(out["a"]) == ["exec=/bin/new", "env=B=2", "no_reload=1",
                                   "listen=/run/new name=a.socket", "listen_on_demand=1"]
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


def test_a_socket_or_timer_naming_itself_as_its_service_ends_the_walk():
    """Found by the fuzzer (it hung the walk): Service=a.socket in a.socket."""
    result, out = imported({"a.socket": "[Socket]\nService=a.socket\nListenStream=/run/a\n",
                            "b.timer": "[Timer]\nUnit=b.timer\nOnBootSec=1\n"},
                           wants={"multi-user.target": ["a.socket", "b.timer"]})
    assert out == {}
    assert warnings(result) == [
        "/lib/systemd/system/a.socket:2: warning: Service: 'a.socket' is not a service here; "
        "not imported",
        "/lib/systemd/system/b.timer:2: warning: Unit: 'b.timer' is not a service here; "
        "not imported"]


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
    result = units.import_units(source, facts=FACTS)
    out = {g.name: svc_lines(g.render()[0]) for g in result.generated}
    assert out == {"a": ["exec=/bin/lib-a", "restart=no", "env=X=lib", "env=X=etc-dropin",
                         "env=Y=1", "no_reload=1"],
                   "b": ["exec=/bin/etc-b", "restart=no", "no_reload=1"]}
    assert ("c.service", "masked (%s/c.service is a link to /dev/null)" % etc) in result.skipped


# --- the real Debian units -------------------------------------------------------------

def test_the_real_debian_units_give_exactly_the_expected_svc_files(tmp_path):
    result = units.import_units(loader.UnitDirs([DATA]), everything=True, facts=FACTS)
    made = {g.file_name: g.render()[0].replace(DATA, "/lib/systemd/system")
            for g in result.generated}
    assert sorted(made) == sorted(n for n in os.listdir(EXPECTED) if n.endswith(".svc"))
    for name, text in made.items():
        with open(os.path.join(EXPECTED, name)) as f:
            assert text == f.read(), name
    # every dropped line is a warning naming file, line and key, and a comment of a file
    warned = [d for d in result.diagnostics if d.severity == config.WARNING]
    commented = [l for text in made.values() for l in text.splitlines() if l.startswith("#   ")]
    assert len(warned) == len(commented) > 50
    specs, diags = units.services_from(result)
    assert [d.format() for d in diags if "(as " in d.message] == []
    assert len(specs) == len(made) - 3          # the templates are checked, not loaded


def test_the_expected_files_pass_check_with_our_parser():
    for name in os.listdir(EXPECTED):
        with open(os.path.join(EXPECTED, name), "rb") as f:
            spec, diags = config.parse_service(os.path.join(EXPECTED, name), f.read())
        assert [d.format() for d in diags] == [], name


def write_expected():
    """Renew tests/data/units-expected (python -c 'import test_units; ...' in tests/)."""
    result = units.import_units(loader.UnitDirs([DATA]), everything=True, facts=FACTS)
    for name in os.listdir(EXPECTED):
        os.unlink(os.path.join(EXPECTED, name))
    for generated in result.generated:
        with open(os.path.join(EXPECTED, generated.file_name), "w") as f:
            f.write(generated.render()[0].replace(DATA, "/lib/systemd/system"))


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
        "ExecStart=/bin/sh -c 'echo \"$OPTS|$WHO|$GREETING|$(pwd)|%%n\" > %s'\n"
        "ProtectClock=yes\n" % (envfile, work, out))
    os.symlink("../show.service", units_dir / "multi-user.target.wants" / "show.service")
    s = Supervised(tmp_path, {"idle.svc": "exec=/bin/sleep\nargs=1000\n"},
                   args=["--units", str(units_dir)])
    try:
        s.start()
        s.wait_state("show", "PERFECT", 20)
        assert out.read_text() == "-n two|a b|hi|%s|show.service\n" % work
        status = s.ctl("status").stdout
        assert "dropped: %s/show.service:10: warning: ProtectClock: sandboxing: not applied " \
            "here (no key for it)" % units_dir in status
    finally:
        s.stop()


def test_the_real_dbus_units_start_dbus_daemon_at_the_first_connection(tmp_path):
    """Debian's own dbus.service and dbus.socket (tests/data/units), with a drop-in
    moving the socket into the test's directory: dbus.service is reached only through
    its socket, so the first D-Bus client starts it."""
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
    # the OOM score is schema-exec's (tests/test_exec_context.py), not this test's
    (units_dir / "dbus.service.d").mkdir()
    (units_dir / "dbus.service.d" / "test.conf").write_text("[Service]\nOOMScoreAdjust=\n")
    s = Supervised(tmp_path, {"idle.svc": "exec=/bin/sleep\nargs=1000\n"},
                   args=["--units", str(units_dir)])
    try:
        s.start()
        s.wait(lambda: bus.exists(), 20, "the socket made before dbus runs")
        assert "waiting for a connection" in s.ctl("status").stdout
        reply = subprocess.run(
            ["dbus-send", "--bus=unix:path=%s" % bus, "--print-reply",
             "--dest=org.freedesktop.DBus", "/org/freedesktop/DBus",
             "org.freedesktop.DBus.GetId"], capture_output=True, text=True, timeout=30)
        assert reply.returncode == 0, reply.stderr + s.log("dbus")
        assert "string" in reply.stdout
        assert s.state("dbus") in ("FULL_TRUST", "FUNDAMENTAL")
    finally:
        s.stop()


def test_pid1_without_units_never_imports_the_units_module():
    code = ("import sys; from schema_init.pid1 import machine as pid1, loader, main, runtime; "
            "assert 'schema_init.units.units' not in sys.modules; assert 're' not in sys.modules")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0, run.stderr


def test_the_units_module_loads_nothing_heavy():
    code = ("import sys; before = set(sys.modules); import schema_init.units.units; "
            "new = set(sys.modules) - before; "
            "assert not new & {'re', 'json', 'argparse', 'subprocess', 'enum'}, new")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0, run.stderr


def test_status_lists_dropped_lines_beside_rejected_files_in_every_format():
    import json
    from fakes import FakeOps
    from schema_init.core import graph, protocol, supervisor
    source = units.DictSource({"a.service": b"[Service]\nExecStart=/bin/a\nProtectClock=1\n",
                               "b.service": b"[Service]\nType=simple\n"})
    result = units.import_units(source, everything=True, facts=FACTS)
    specs, diags = units.services_from(result)
    sup = supervisor.Supervisor(graph.resolve(specs, []), FakeOps(), 0.0, 1e9)
    sup.note_rejected(diags)
    dropped = ("/lib/systemd/system/a.service:3: warning: ProtectClock: sandboxing: not "
               "applied here (no key for it)")
    rejected = "/lib/systemd/system/b.service: error: no ExecStart=; the unit is not imported"
    assert protocol.format_status(sup)[-2:] == ["rejected: " + rejected, "dropped: " + dropped]
    parsed = json.loads("\n".join(protocol.format_status_json(sup)))
    assert parsed["rejected"] == [rejected] and parsed["dropped"] == [dropped]


def test_an_accept_yes_socket_serves_each_connection_for_real(tmp_path):
    import socket
    port = _free_port()
    units_dir = tmp_path / "units"
    (units_dir / "sockets.target.wants").mkdir(parents=True)
    (units_dir / "echo.socket").write_text("[Socket]\nListenStream=127.0.0.1:%d\nAccept=yes\n"
                                           "MaxConnections=2\n" % port)
    (units_dir / "echo@.service").write_text(
        "[Service]\nExecStart=/bin/sh -c 'read line; echo \"$line $REMOTE_ADDR\"'\n"
        "StandardInput=socket\n")
    os.symlink("../echo.socket", units_dir / "sockets.target.wants" / "echo.socket")
    s = Supervised(tmp_path, {"idle.svc": "exec=/bin/sleep\nargs=1000\n"},
                   args=["--units", str(units_dir)])
    try:
        s.start()
        s.wait(lambda: s.state("echo") in ("FULL_TRUST", "FUNDAMENTAL"), 20, "echo running")
        clients = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(3)]
        for n, client in enumerate(clients):
            client.sendall(b"hello %d\n" % n)
        replies = [client.makefile("rb").readline() for client in clients]
        assert replies == [b"hello %d 127.0.0.1\n" % n for n in range(3)]
        for client in clients:
            client.close()
        assert s.state("echo") in ("FULL_TRUST", "FUNDAMENTAL")   # the helper stays
    finally:
        s.stop()


def _free_port():
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
