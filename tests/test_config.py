""".svc/.grp parsing: every key, defaults, templates, and diagnostics."""

import os

import pytest
from hypothesis import given, settings, strategies as st

import cost
from schema_init.core import config, timers
from schema_init.pid1 import loader


def parse(text, path="/etc/svc/demo.svc"):
    return config.parse_service(path, text.encode())


def messages(diags):
    return [d.format() for d in diags]


def test_minimal_service_gets_every_default():
    spec, diags = parse("exec=/bin/true\n")
    assert diags == []
    assert spec.name == "demo" and spec.exec == "/bin/true"
    for key, rule in config.SERVICE_KEYS.items():
        if key in ("name", "exec", "start_timeout_sec"):
            continue
        assert getattr(spec, config.field_name(key)) == rule.default, key
    assert spec.start_timeout_sec == 0          # daemon: no start timeout by default
    assert spec.max_restarts == 5 and spec.stable_secs == 10
    assert spec.failsafe_timeout_ms == 500 and spec.stop_timeout_sec == 10
    assert spec.allowed_slot_min == -1 and spec.allowed_slot_max == -1
    assert spec.priority == "standard" and spec.cpuset_partition == "member"
    assert spec.flags == 0 and not spec.is_timer


def test_every_key_is_read():
    text = """\
name=full
exec=/usr/bin/env
args=-i
args=A=1 B=2
dep=a
dep=b
oneshot=1
needs_root=yes
critical=true
no_restart=on
max_restarts=7
stable_secs=0
ready_path=/run/full.ready
ready_poll_hz=2
priority=Peripheral
fuse=1
fuse_cmd=echo fused; logger x
failsafe=/usr/bin/recover --now
failsafe_timeout_ms=250
no_excise=1
watchdog_timeout_ms=3000
cpu_limit=50
mem_limit=128
cpuset=2-3
cpuset_partition=ISOLATED
allowed_slot_min=1
allowed_slot_max=4
start_timeout_sec=12
stop_timeout_sec=3
user=nobody
"""
    spec, diags = parse(text)
    assert [d for d in diags if d.severity == config.ERROR] == []
    assert spec.name == "full" and spec.args == ("-i", "A=1 B=2") and spec.deps == ("a", "b")
    assert spec.oneshot and spec.needs_root and spec.critical and spec.no_restart
    assert spec.max_restarts == 7 and spec.stable_secs == 0 and spec.ready_poll_hz == 2
    assert spec.priority == "peripheral" and spec.fuse and spec.no_excise
    assert spec.fuse_cmd == "echo fused; logger x" and spec.failsafe == "/usr/bin/recover --now"
    assert spec.failsafe_timeout_ms == 250 and spec.watchdog_timeout_ms == 3000
    assert (spec.cpu_limit, spec.mem_limit, spec.cpuset) == (50, 128, "2-3")
    assert spec.cpuset_partition == "isolated"
    assert (spec.allowed_slot_min, spec.allowed_slot_max) == (1, 4)
    assert spec.start_timeout_sec == 12 and spec.stop_timeout_sec == 3 and spec.user == "nobody"
    assert spec.flags == (config.SVC_ONESHOT | config.SVC_NEEDS_ROOT | config.SVC_CRITICAL
                          | config.SVC_NO_RESTART)
    # ready_path on a oneshot is kept but warned about
    assert any("ready_path" == d.key for d in diags)


def test_oneshot_gets_90s_start_timeout_and_timers_get_none():
    assert parse("exec=/bin/true\noneshot=1\n")[0].start_timeout_sec == 90
    timer = parse("exec=/bin/true\non_boot_sec=5\n")[0]
    assert timer.is_timer and timer.oneshot and timer.start_timeout_sec == 0
    assert timer.flags == config.SVC_ONESHOT | config.SVC_TIMER
    explicit = parse("exec=/bin/true\non_active_sec=60\nstart_timeout_sec=7\n")[0]
    assert explicit.start_timeout_sec == 7 and explicit.on_active_sec == 60


def test_calendar_timer_with_persistence():
    spec, diags = parse("exec=/bin/true\non_calendar=Mon 03:00\npersistent=1\n")
    assert diags == []
    assert spec.on_calendar == timers.parse_calendar("Mon 03:00")[0]
    assert spec.flags == (config.SVC_ONESHOT | config.SVC_TIMER | config.SVC_TIMER_CALENDAR
                          | config.SVC_TIMER_PERSIST)


def test_blanks_comments_and_inline_comments_are_tolerated():
    """The original needed key=value with no blanks and no comments."""
    spec, diags = parse("# a comment = with an equals sign\n"
                        "; another\n\n"
                        "  name = tidy  \n"
                        "exec = /bin/sleep   # the program\n"
                        "args = 5 # verbatim: this stays\n"
                        "on_calendar = 03:00   # nightly\n"
                        "stable_secs=600   # ten minutes\r\n")
    assert diags == []
    assert spec.name == "tidy" and spec.exec == "/bin/sleep"
    assert spec.args == ("5 # verbatim: this stays",)
    assert spec.on_calendar.hour == 3 and spec.stable_secs == 600


def test_boolean_zero_clears_an_earlier_one():
    spec, diags = parse("exec=/bin/true\ncritical=1\ncritical=0\n")
    assert spec.critical is False
    assert messages(diags) == [
        "/etc/svc/demo.svc:3: warning: critical: given again (first on line 2); "
        "this later value wins"]


def test_args_before_exec_are_kept():
    """The original lost args given before exec."""
    assert parse("args=-x\nexec=/bin/true\nargs=-y\n")[0].args == ("-x", "-y")


@pytest.mark.parametrize("text,expected", [
    ("exec=bin/true\n",
     "/etc/svc/demo.svc:1: error: exec: 'bin/true' is not an absolute path"),
    ("exec=/bin/sleep 10\n",
     "/etc/svc/demo.svc:1: error: exec: '/bin/sleep 10' contains a blank; "
     "give arguments with args= lines"),
    ("stable_secs=5\n",
     "/etc/svc/demo.svc: error: exec: missing: every service needs exec=/path"),
    ("exec=/bin/true\nname=bad/name\n",
     "/etc/svc/demo.svc:2: error: name: 'bad/name' contains '/'; "
     "names use only letters, digits and _ . @ : -"),
    ("exec=/bin/true\nname=" + "x" * 64 + "\n",
     "/etc/svc/demo.svc:2: error: name: value is 64 characters long; the limit is 63"),
    ("exec=/" + "e" * 255 + "\n",
     "/etc/svc/demo.svc:1: error: exec: value is 256 characters long; the limit is 255"),
    ("exec=/bin/true\non_calendar=25:00\n",
     "/etc/svc/demo.svc:2: error: on_calendar: bad value '25:00' (want HH:MM, 'Ddd HH:MM' "
     "(Sun..Sat) or 'D HH:MM' (day 1-31), 00:00-23:59)"),
])
def test_only_a_meaningless_service_is_rejected(text, expected):
    """No exec=, a bad name, or a calendar that would turn a timer into a daemon."""
    spec, diags = parse(text)
    assert spec is None, "a file with an error is rejected as a whole"
    assert messages(diags) == [expected]


@pytest.mark.parametrize("text,field,value,expected", [
    ("exec=/bin/true\nstable_secs=abc\n", "stable_secs", 10,
     "/etc/svc/demo.svc:2: warning: stable_secs: 'abc' is not a whole number; using the "
     "default (10)"),
    ("exec=/bin/true\nmax_restarts=-2\n", "max_restarts", 5,
     "/etc/svc/demo.svc:2: warning: max_restarts: -2 is out of range (0 to 1000000); using "
     "the default (5)"),
    ("exec=/bin/true\nmax_restarts=" + "9" * 5000 + "\n", "max_restarts", 5,
     "/etc/svc/demo.svc:2: warning: max_restarts: '" + "9" * 40 + "'... (5000 characters) is "
     "out of range (0 to 1000000); using the default (5)"),
    ("exec=/bin/true\ncpu_limit=150\n", "cpu_limit", 0,
     "/etc/svc/demo.svc:2: warning: cpu_limit: 150 is out of range (0 to 100); using the "
     "default (0)"),
    ("exec=/bin/true\noneshot=maybe\n", "oneshot", False,
     "/etc/svc/demo.svc:2: warning: oneshot: 'maybe' is not a boolean (use 1 or 0); using the "
     "default (0)"),
    ("exec=/bin/true\npriority=urgent\n", "priority", "standard",
     "/etc/svc/demo.svc:2: warning: priority: 'urgent' is not one of peripheral, standard, "
     "critical; using the default (standard)"),
    ("exec=/bin/true\nstabel_secs=5\n", "stable_secs", 10,
     "/etc/svc/demo.svc:2: warning: stabel_secs: unknown key (did you mean 'stable_secs'?); "
     "ignored"),
    ("exec=/bin/true\ndep=no space\n", "deps", (),
     "/etc/svc/demo.svc:2: warning: dep: 'no space' contains ' '; names use only letters, "
     "digits and _ . @ : -; this line is ignored"),
    ("exec=/bin/true\nexec=/bin/false\n", "exec", "/bin/false",
     "/etc/svc/demo.svc:2: warning: exec: given again (first on line 1); this later value wins"),
    ("exec=/bin/true\ndep=demo\n", "deps", (),
     "/etc/svc/demo.svc:2: warning: dep: a service cannot depend on itself; this line is "
     "ignored"),
    ("exec=/bin/true\nallowed_slot_min=4\nallowed_slot_max=2\n", "allowed_slot_max", -1,
     "/etc/svc/demo.svc:3: warning: allowed_slot_max: 2 is below allowed_slot_min=4: no slot "
     "could ever run this; using the default (-1: no upper bound)"),
    ("exec=/bin/true\nready_path=/run/\x01x\n", "ready_path", "",
     "/etc/svc/demo.svc:2: warning: ready_path: value contains the control character "
     "'\\x01'; using the default (unset)"),
    ("exec=/bin/true\n=5\n", "exec", "/bin/true",
     "/etc/svc/demo.svc:2: warning: line has an empty key; ignored"),
])
def test_a_typo_never_loses_the_service(text, field, value, expected):
    """An unknown key is ignored and a bad value falls back to the key's default, each
    with one warning naming file, line and key; the service still loads."""
    spec, diags = parse(text)
    assert spec is not None
    assert getattr(spec, field) == value
    assert messages(diags) == [expected]


def test_a_file_of_thousands_of_settings_or_lines_is_rejected_at_the_limits():
    """Rejected after reading no further than the limits: the parser runs as many lines
    of its code for a file twice as long (the seconds: bench/supervisor_bench.py)."""
    for line, count, what in (("a=1\n", 2000, "1000 key=value lines"),
                              ("\n", 300000, "20000 lines"), ("#\n", 300000, "20000 lines")):
        work = []
        for size in (count, 2 * count):
            (spec, diags), lines = cost.lines_run(parse, "exec=/bin/true\n" + line * size)
            assert spec is None and len(diags) == 1 and diags[0].severity == config.ERROR
            assert "more than %s: not a service or group file" % what in diags[0].message
            work.append(lines)
        assert work[1] == work[0], "%r x %d: %d lines of parser run, x %d: %d" % (
            line, count, work[0], 2 * count, work[1])


def test_unknown_key_suggestion_costs_the_same_for_a_word_twice_as_long():
    """The did-you-mean search skips keys it cannot be near (by length): 60 unknown keys
    of 3000 characters cost what 60 of 6000 do (the seconds: bench/supervisor_bench.py)."""
    work = []
    for length in (3000, 6000):
        long_keys = "".join("k%s=1\n" % ("x" * length + str(i)) for i in range(60))
        (spec, diags), lines = cost.lines_run(parse, "exec=/bin/true\n" + long_keys)
        assert spec is not None
        assert len(diags) == config.MAX_DIAGNOSTICS_PER_FILE + 1
        assert diags[-1].message == "40 more problems not shown"
        work.append(lines)
    assert work[1] == work[0], "keys of 3000 characters: %d lines run, of 6000: %d" % tuple(work)


@pytest.mark.parametrize("text,expected", [
    ("exec=/bin/true\njust words\n",
     "/etc/svc/demo.svc:2: warning: line has no '=' and is ignored"),
    ("exec=/bin/true\nkeep_caps=1\n",
     "/etc/svc/demo.svc:2: warning: keep_caps: not supported by this schema-init; ignored"),
    ("exec=/bin/true\ncpuset_partition=root\n",
     "/etc/svc/demo.svc:2: warning: cpuset_partition: set without cpuset= (no cores to "
     "isolate); using member"),
    ("exec=/bin/true\npersistent=1\n",
     "/etc/svc/demo.svc:2: warning: persistent: needs on_calendar (catch-up only applies to "
     "calendar timers); ignored"),
    ("exec=/bin/true\ndep=a\ndep=a\n", "/etc/svc/demo.svc:3: warning: dep: 'a' is listed twice"),
    ("exec=/bin/true\nafter=a\nafter=a\n",
     "/etc/svc/demo.svc:3: warning: after: 'a' is listed twice"),
    ("name=demo\nexec=/bin/true\nafter=demo\n",
     "/etc/svc/demo.svc:3: warning: after: a service cannot depend on itself; this line is "
     "ignored"),
    ("exec=/bin/true\nallowed_slot_max=3\n",
     "/etc/svc/demo.svc:2: warning: allowed_slot_max: has no effect without allowed_slot_min"),
])
def test_warnings_keep_the_file(text, expected):
    spec, diags = parse(text)
    assert spec is not None
    assert messages(diags) == [expected]


def test_after_lines_are_kept_apart_from_dep_lines():
    spec, diags = parse("exec=/bin/true\ndep=db\nafter=auditd\nafter=network\n")
    assert not diags and spec.deps == ("db",) and spec.after == ("auditd", "network")
    assert spec.line_of("after:network") == 4


def test_cpuset_partition_without_cpuset_falls_back_to_member():
    assert parse("exec=/bin/true\ncpuset_partition=root\n")[0].cpuset_partition == "member"


def test_too_many_args_is_an_error():
    text = "exec=/bin/true\n" + "args=x\n" * (config.LIST_MAX + 1)
    spec, diags = parse(text)
    assert spec is None
    assert messages(diags) == ["/etc/svc/demo.svc:%d: error: args: more than %d args lines"
                               % (config.LIST_MAX + 2, config.LIST_MAX)]


def test_template_is_checked_but_not_loaded():
    spec, diags = config.parse_service("/s/motor@.svc", b"exec=/bin/motor\n")
    assert spec is None and diags == []
    spec, diags = config.parse_service("/s/motor@.svc", b"exec=/bin/motor\nbogus=1\n")
    assert spec is None and len(diags) == 1


def test_instance_file_takes_its_name_and_instance_from_the_file_name():
    spec, diags = config.parse_service("/s/motor@12.svc", b"name=motor@\nexec=/bin/motor\n")
    assert diags == [] and spec.name == "motor@12" and spec.instance == "12"
    bad, diags = config.parse_service("/s/motor@" + "9" * 32 + ".svc", b"exec=/bin/motor\n")
    assert bad is None
    assert "characters long; the limit is 31" in diags[0].format()


def test_content_hash_follows_the_raw_bytes():
    """Reload calls a file changed when its bytes changed, comments included."""
    first, _ = parse("exec=/bin/true\n")
    same, _ = parse("exec=/bin/true\n")
    commented, _ = parse("exec=/bin/true\n# a note\n")
    assert first.content_hash == same.content_hash != commented.content_hash


def test_spec_is_immutable_and_replace_makes_a_copy():
    spec, _ = parse("exec=/bin/true\n")
    with pytest.raises(AttributeError):
        spec.exec = "/bin/false"
    other = spec.replace(critical=True)
    assert other.critical and not spec.critical and other.name == spec.name


def test_group_files():
    group, diags = config.parse_group("/s/net.grp", b"name=net\nmember=a\nmember=b\n")
    assert diags == [] and group.name == "net" and group.members == ("a", "b")
    group, diags = config.parse_group("/s/net.grp", b"member=a\n")
    assert group is None
    assert messages(diags) == ["/s/net.grp: error: name: missing: every group needs name="]
    group, diags = config.parse_group("/s/net.grp", b"name=net\nmembr=a\n")
    assert group is not None and messages(diags) == [
        "/s/net.grp:2: warning: membr: unknown key in a group file (did you mean 'member'?); "
        "ignored"]
    group, diags = config.parse_group("/s/net.grp", b"name=net\nmember=a\nmember=a\n")
    assert group.members == ("a",) and len(diags) == 1


def write(directory, name, text):
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def test_load_directory_sorts_files_and_rejects_duplicate_names(tmp_path):
    d = str(tmp_path)
    write(d, "b.svc", "exec=/bin/true\n")
    write(d, "a.svc", "exec=/bin/true\n")
    write(d, "z.svc", "name=a\nexec=/bin/true\n")
    write(d, "x.svc.example", "exec=/bin/true\n")
    write(d, "y.svc~", "exec=/bin/true\n")
    write(d, "g.grp", "name=grp\nmember=a\n")
    os.symlink("a.svc", os.path.join(d, "link@1.svc"))
    result = loader.load_directory(d)
    assert [s.name for s in result.services] == ["a", "b", "link@1"]
    assert [g.name for g in result.groups] == ["grp"]
    assert messages(result.diagnostics) == [
        "%s/z.svc:1: error: name: service 'a' is already defined by %s/a.svc; "
        "this file is ignored" % (d, d)]


def test_unreadable_directory_is_one_error(tmp_path):
    result = loader.load_directory(str(tmp_path / "missing"))
    assert result.services == []
    assert messages(result.diagnostics) == [
        "%s: error: cannot read the services directory: No such file or directory"
        % (tmp_path / "missing")]


def test_env_file_format():
    data = (b"  SLOT_ID = 12  \n# comment\n\nNOEQUALS\nPATH=/bin:/sbin\n"
            b"EMPTY=\n  = nokey\nQUOTED=\"kept\"\n")
    assert config.parse_env_file(data) == [
        ("SLOT_ID", "12"), ("PATH", "/bin:/sbin"), ("EMPTY", ""), ("QUOTED", '"kept"')]


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=2000))
def test_parser_never_raises_on_arbitrary_bytes(data):
    spec, diags = config.parse_service("/s/fuzz.svc", data)
    for d in diags:
        d.format().encode("utf-8")
    config.parse_group("/s/fuzz.grp", data)
    config.parse_env_file(data)


KEYS = st.sampled_from(list(config.SERVICE_KEYS) + ["bogus", "", " name", "env", "member"])
VALUES = st.one_of(st.text(max_size=300), st.integers().map(str),
                   st.sampled_from(["0", "1", "-1", "/bin/true", "03:00", "Mon 03:00", "x@"]))


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(KEYS, VALUES), max_size=40))
def test_parser_never_raises_on_arbitrary_key_value_lines(pairs):
    data = "".join("%s=%s\n" % (k, v.replace("\n", " ")) for k, v in pairs)
    spec, diags = config.parse_service("/s/fuzz@1.svc", data.encode("utf-8", "surrogatepass"))
    assert (spec is None) == any(d.severity == config.ERROR for d in diags)
    for d in diags:
        assert d.path == "/s/fuzz@1.svc" and d.severity in (config.ERROR, config.WARNING)
        d.format().encode("utf-8")


def test_long_args_line_is_one_argument():
    """A shell script line longer than 255 characters (the VM report service) loads."""
    script = "echo " + "x" * 1000
    spec, diags = parse("exec=/bin/sh\nargs=-c\nargs=%s\n" % script)
    assert diags == [] and spec.args == ("-c", script)
    spec, diags = parse("exec=/bin/sh\nargs=%s\n" % ("y" * (config.ARG_MAX + 1)))
    assert spec is None and "limit is %d" % config.ARG_MAX in diags[0].format()
