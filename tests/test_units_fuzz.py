"""Hostile unit files (docs/security.md, "unit files"): a seeded fuzzer over the real
Debian units of tests/data/units, mutated with the values that used to raise (unicode
digits such as ``Nice=²``, numbers of 5,000 digits, ``\\UFFFFFFFF`` escapes), specifiers,
NUL bytes, invalid UTF-8 and overlong lines.  Whatever the files say, importing them never
raises, every unit still imports or is refused alone with a diagnostic naming it, and each
value known to be bad gives a diagnostic ``FILE:LINE: warning: KEY: why`` at its line.
Then the same for the command lines of ``shutdown``.

The seed is printed; ADVERSARIAL_SEED=N replays a run, ADVERSARIAL_SCALE=full is the
long form (as tests/test_adversarial.py's fuzzers)."""

import os
import random
import subprocess
import time

import pytest

import adversary as adv
from conftest import ROOT, program
from schema_init.core import config, protocol
from schema_init.journal import journalctl
from schema_init.pid1 import loader
from schema_init.power import power
from schema_init.units import units

DATA = os.path.join(ROOT, "tests", "data", "units")
UNIT_DIR = "/lib/systemd/system"

# Values no key below may take: each must be reported at its line.
BAD_NUMBERS = ["\u00b2", "1\u00b2", "\u0663", "\u0661\u0662", "9" * 5000, "-" + "9" * 5000,
               "\uff11", "1" * 4301 + "s", "\U0001d7d9", "\u00b2\u00b2%", "9" * 5000 + "%",
               "\u00b2:00", "*-*-\u00b2 00:00", "\u00b2M", "9" * 5000 + "K"]
BAD_SPECIFIERS = ["%z", "%", "%Y", "%\u00b2", "x%"]
BAD_ESCAPES = ["\\UFFFFFFFF", "\\U00110000", "\\uD800", "\\uDFFF", "\\U0000DC80", "\\u0000",
               "\\x00", "\\000", "\\U", "\\u12", "\\q", "\\400", "\\U0000D800x"]
# Keys that read a number, and the section they are read in.
NUMBER_KEYS = [("Service", k) for k in (
    "Nice", "OOMScoreAdjust", "CPUQuota", "MemoryMax", "MemoryLimit", "TimeoutStopSec",
    "TimeoutStartSec", "TimeoutSec", "WatchdogSec", "StartLimitBurst", "LimitNOFILE",
    "LimitNPROC", "LimitCORE", "LimitMEMLOCK", "LimitCPU", "LimitRTTIME", "LimitNICE",
    "RuntimeDirectoryMode", "StateDirectoryMode", "UMask", "SuccessExitStatus",
    "RestartPreventExitStatus", "KillSignal")] + [
    ("Unit", "StartLimitBurst"), ("Timer", "OnBootSec"), ("Timer", "OnUnitActiveSec"),
    ("Timer", "OnUnitInactiveSec"), ("Timer", "RandomizedDelaySec"), ("Timer", "OnCalendar"),
    ("Socket", "ListenStream"), ("Socket", "ListenDatagram"), ("Socket", "SocketMode")]
# Keys whose words are read (escapes, specifiers, variables): a bad escape or specifier
# among them is reported at its line.
WORD_KEYS = [("Service", "ExecStart"), ("Service", "ExecStartPre"),
             ("Service", "ExecStartPost"), ("Service", "ExecCondition"),
             ("Service", "ExecReload"), ("Service", "ExecStop"), ("Service", "ExecStopPost"),
             ("Service", "Environment"), ("Service", "EnvironmentFile"),
             ("Service", "WorkingDirectory"), ("Service", "TTYPath"), ("Service", "PIDFile"),
             ("Service", "RuntimeDirectory"), ("Service", "StateDirectory"),
             ("Service", "ReadWritePaths"), ("Service", "User"), ("Service", "Group"),
             ("Unit", "ConditionPathExists"), ("Socket", "ListenStream")]
# Keys of the execution context and the sandbox, fed junk: never an exception.
CONTEXT_KEYS = [("Service", k) for k in (
    "CapabilityBoundingSet", "AmbientCapabilities", "RestrictAddressFamilies",
    "ProtectSystem", "ProtectHome", "PrivateTmp", "NoNewPrivileges", "SupplementaryGroups",
    "RuntimeDirectoryPreserve", "Restart", "Type", "RemainAfterExit", "SendSIGKILL",
    "StandardInput", "SystemCallFilter")] + [
    ("Socket", k) for k in ("BindIPv6Only", "Accept", "SocketUser", "MaxConnections")]
PIECES = ["%i", "%I", "%n", "%N", "%%", "%", "%z", "%p", "%f", "%t", "%h", "%u", "\\n",
          "\\x41", "\\101", "\\u00e9", "\\U0001F600", "$FOO", "${FOO}", "$$", "'", '"', " ",
          "\t", "\\", ";", "|", "-", "@", "+", "!", ":", "0", "9", "\u00b2", "\u0663", "/",
          "..", "=", "\x00", "\x01", "\x7f", "\u2028", "\udcff", "é", "s", "min", "."]


# --- the findings, one by one -------------------------------------------------------

GOOD = b"[Service]\nExecStart=/bin/good\n"


@pytest.mark.parametrize("kind,section,key,value", [
    ("service", "Service", "Nice", "\u00b2"),
    ("service", "Service", "Nice", "9" * 5000),
    ("service", "Service", "Nice", "-\u0661"),
    ("service", "Service", "TimeoutStopSec", "9" * 5000),
    ("service", "Service", "TimeoutStopSec", "\u00b2s"),
    ("service", "Service", "TimeoutStartSec", "1\u00b2min"),
    ("service", "Service", "WatchdogSec", "\u0663"),
    ("service", "Service", "CPUQuota", "\u00b2%"),
    ("service", "Service", "CPUQuota", "9" * 5000 + "%"),
    ("service", "Service", "OOMScoreAdjust", "\u00b2"),
    ("service", "Service", "OOMScoreAdjust", "-" + "9" * 5000),
    ("service", "Service", "MemoryMax", "\u00b2M"),
    ("service", "Service", "StartLimitBurst", "\u00b2"),
    ("service", "Service", "LimitNOFILE", "\u00b2"),
    ("service", "Service", "RuntimeDirectoryMode", "\u00b2"),
    ("service", "Service", "ExecStart", "/bin/echo \\UFFFFFFFF"),
    ("service", "Service", "ExecStart", "/bin/echo \\uD800"),
    ("service", "Service", "ExecStart", "/bin/echo \\U0000DC80"),
    ("service", "Service", "ExecStart", "/bin/echo \\400"),
    ("socket", "Socket", "ListenStream", "1.2.3.4:" + "9" * 5000),
    ("socket", "Socket", "ListenStream", "\u00b2\u00b2"),
    ("timer", "Timer", "OnCalendar", "*-*-\u00b2 00:00"),
    ("timer", "Timer", "OnCalendar", "*-*-" + "9" * 5000 + " 00:00"),
    ("timer", "Timer", "OnCalendar", "\u00b2:00"),
    ("timer", "Timer", "OnBootSec", "9" * 5000),
    ("service", "Service", "LimitMEMLOCK", "9" * 5000 + "K"),
    ("service", "Service", "LimitCPU", "\u00b2min"),
    ("service", "Service", "LimitNICE", "-\u00b2"),
    ("service", "Service", "UMask", "\u00b2"),
    ("service", "Service", "SuccessExitStatus", "9" * 5000),
    ("service", "Service", "KillSignal", "\u00b2"),
    ("service", "Service", "StateDirectoryMode", "9" * 5000),
    ("service", "Service", "ExecStop", "/bin/stop \\UFFFFFFFF"),
    ("service", "Service", "ExecStartPre", "/bin/pre %z"),
    ("service", "Service", "Environment", "A=%z"),
    ("service", "Service", "RuntimeDirectory", "x%"),
    ("timer", "Timer", "RandomizedDelaySec", "9" * 5000),
    ("timer", "Timer", "OnUnitInactiveSec", "\u00b2h"),
])
def test_a_bad_number_or_escape_is_a_warning_at_its_line_and_every_unit_imports(
        kind, section, key, value):
    """Findings 6 and 7: each of these raised (ValueError from int() of "²" or of 5,000
    digits, OverflowError from chr() of 0xFFFFFFFF, UnicodeEncodeError from a surrogate), and the
    exception dropped every imported unit."""
    head = {"service": "[Service]\nExecStart=/bin/victim\n",
            "socket": "[Socket]\nListenStream=/run/victim.sock\n",
            "timer": "[Timer]\nOnBootSec=5min\n"}[kind]
    if key == "ExecStart":
        head = "[Service]\nType=simple\n"        # the one ExecStart= is the bad one
    files = {"victim." + kind: (head + "[%s]\n%s=%s\n" % (section, key, value)).encode(),
             "good.service": GOOD}
    if kind != "service":
        files["victim.service"] = b"[Service]\nExecStart=/bin/victim\n"
    line = head.count("\n") + 2
    source = units.DictSource(files, {"multi-user.target": sorted(files)})
    result = units.import_units(source)
    specs, diagnostics = units.services_from(result)
    path = "%s/victim.%s" % (UNIT_DIR, kind)
    said = [d.format() for d in diagnostics if d.path == path and d.line == line]
    assert said, [d.format() for d in diagnostics]
    assert said[0].startswith("%s:%d: " % (path, line)) and (": %s: " % key) in said[0]
    names = {s.name for s in specs}
    assert "good" in names
    if key != "ExecStart":                   # a command that cannot be run refuses its unit
        assert "victim" in names, said


def test_a_unit_whose_conversion_raises_is_dropped_alone_naming_it(monkeypatch, tmp_path):
    """The last guard: a bug of the converter costs the unit it met (and what requires
    it), not every unit."""
    real = units.Converter.convert

    def convert(self):
        if self.unit.name == "bad.service":
            raise RuntimeError("a bug")
        return real(self)
    monkeypatch.setattr(units.Converter, "convert", convert)
    unit_dir = tmp_path / "units"
    wants = unit_dir / "multi-user.target.wants"
    wants.mkdir(parents=True)
    for name in ("bad", "good", "other"):
        (unit_dir / (name + ".service")).write_bytes(b"[Service]\nExecStart=/bin/%s\n"
                                                      % name.encode())
        os.symlink("../%s.service" % name, wants / (name + ".service"))
    result = units.import_units(loader.UnitDirs([str(unit_dir)]), ["mine"], facts={})
    specs, diagnostics = units.services_from(result)
    assert sorted(s.name for s in specs) == ["good", "other"]
    assert [d.format() for d in diagnostics] == [
        "%s/bad.service: error: bad.service cannot be converted (RuntimeError: a bug); "
        "the unit is not imported" % unit_dir]


def test_import_units_with_hostile_units_ends_without_a_traceback(tmp_path):
    unit_dir = tmp_path / "units"
    unit_dir.mkdir()
    (unit_dir / "bad.service").write_bytes(
        b"[Service]\nExecStart=/bin/echo \xff\xfe caf\xc3\xa9\nNice=\xc2\xb2\n"
        b"TimeoutStopSec=" + b"9" * 5000 + b"\nExecStartPre=/bin/echo \\UFFFFFFFF\n")
    (unit_dir / "good.service").write_bytes(GOOD)
    env = dict(os.environ, LANG="C.UTF-8", LC_ALL="C.UTF-8")
    for out in ([], ["--out", str(tmp_path / "out")]):
        run = subprocess.run([program("schema-init"), "import-units", "--all", *out,
                              str(unit_dir)], capture_output=True, env=env, timeout=60)
        err = run.stderr.decode("utf-8", "replace")
        assert run.returncode == 0 and "Traceback" not in err, err
        assert "%s/bad.service:3: warning: Nice: not a number from -20 to 19" % unit_dir in err
        assert "%s/bad.service:4: warning: TimeoutStopSec: not a time span" % unit_dir in err
        assert "bad.service:5: warning: ExecStartPre: \\UFFFFFFFF is not a unicode " \
            "character" in err
        assert "import-units: 2 service files" in err
    assert b"args=\xff\xfe" in run.stdout or \
        b"args=\xff\xfe" in (tmp_path / "out" / "bad.svc").read_bytes()


def test_shutdown_times_with_unicode_digits_are_usage_errors(monkeypatch, capsys):
    monkeypatch.setattr(power, "ask", lambda line: (_ for _ in ()).throw(
        AssertionError("asked PID 1: %r" % line)))
    monkeypatch.setattr(power.utmp, "logged_in_terminals", lambda path=None: [])
    for argv in (["-k", "+\u00b2"], ["2\u00b2:00"], ["+" + "9" * 5000], ["\u0661\u0662:00"],
                 ["-r", "1\u00b2:3\u00b2"]):
        assert power.main("shutdown", argv) == 2, argv
        assert "bad time" in capsys.readouterr().err
    assert power.main("shutdown", ["-k", "+5", "\udcff \x1b[2J"]) == 0


def test_wall_writes_no_control_characters(tmp_path, monkeypatch):
    tty = tmp_path / "tty"
    tty.write_bytes(b"")
    monkeypatch.setattr(power.utmp, "logged_in_terminals", lambda path=None: [str(tty)])
    power.wall("hi \x1b]0;owned\x07 \udcff\nbye")
    text = tty.read_bytes()
    assert b"\x1b" not in text and b"\x07" not in text and b"hi ?]0;owned? ?\r\nbye" in text


@pytest.mark.parametrize("argv", [["-n", "\u00b2"], ["-n", "9" * 5000], ["-b", "\u00b2"],
                                  ["-b", "+-5"], ["-p", "\u00b2"], ["-S", "@" + "9" * 5000],
                                  ["-S", "9" * 5000 + " min ago"], ["-U", "\u00b2\u00b2:00"],
                                  ["-S", "-\u0661min"]])
def test_journalctl_bad_numbers_exit_1_with_a_message(argv, tmp_path, capsys):
    assert journalctl.main(["-D", str(tmp_path), "--runtime", str(tmp_path), *argv]) == 1
    assert capsys.readouterr().err.startswith("journalctl: ")


def load_data():
    files, dropins = {}, {}
    for name in sorted(os.listdir(DATA)):
        path = os.path.join(DATA, name)
        if name.endswith(".d") and os.path.isdir(path):
            dropins[name[:-2]] = [(os.path.join(path, d), open(os.path.join(path, d), "rb").read())
                                  for d in sorted(os.listdir(path))]
        elif name.rpartition(".")[2] in ("service", "socket", "timer"):
            with open(path, "rb") as f:
                files[name] = f.read()
    return files, dropins


FACTS = {"H": "host", "m": "0" * 32, "b": "1" * 32, "v": "6.1"}


def import_all(files, dropins, wants=None, path_test=None):
    """What the boot and ``import-units --all`` do with the files, every step of it; the
    generated text must read back as it was meant: config says nothing of its own."""
    source = units.DictSource(files, wants, {k: list(v) for k, v in dropins.items()})
    result = units.import_units(source, (), everything=wants is None, facts=FACTS,
                                path_test=path_test)
    specs, diagnostics = units.services_from(result)
    for generated in result.generated:
        text, _ = generated.render()
        text.encode("utf-8", "surrogateescape")        # as import-units writes it
        spec, found = config.parse_service(generated.sources[0], text.encode(
            "utf-8", "surrogateescape"), file_name=generated.file_name)
        assert [d.format() for d in found] == [], text
    assert [d.format() for d in diagnostics if "(as " in d.message] == []
    for diag in diagnostics:
        diag.format()
    return result, specs, diagnostics


def junk(rng):
    size = rng.choice((1, 3, 10, 40, 200))
    return "".join(rng.choice(PIECES) for _ in range(size))


def hostile_value(rng, section, key):
    roll = rng.random()
    if roll < 0.3:
        return rng.choice(BAD_NUMBERS), (section, key) in NUMBER_KEYS
    if roll < 0.5 and key.startswith("Exec"):
        return "/bin/echo " + rng.choice(BAD_ESCAPES), True
    if roll < 0.6 and (section, key) in WORD_KEYS:
        return "/x " + rng.choice(BAD_SPECIFIERS), True
    if roll < 0.55:
        return "x" * rng.choice((5000, 70000)), False        # overlong
    return junk(rng), False


def mutate_bytes(rng, data):
    """Whole-file damage: a byte flipped, a NUL, a line doubled, invalid UTF-8, a cut."""
    data = bytearray(data)
    for _ in range(rng.randrange(1, 6)):
        op = rng.randrange(6)
        pos = rng.randrange(len(data) + 1)
        if op == 0 and data:
            data[min(pos, len(data) - 1)] = rng.randrange(256)
        elif op == 1:
            data[pos:pos] = b"\x00"
        elif op == 2:
            data[pos:pos] = rng.choice((b"\xff\xfe", b"\xed\xa0\x80", b"\xc3", b"\\\n",
                                        b"\r\n", b"[Service]\n", b"="))
        elif op == 3:
            start = bytes(data).rfind(b"\n", 0, pos) + 1
            end = bytes(data).find(b"\n", pos)
            end = len(data) if end < 0 else end
            data[pos:pos] = b"\n" + bytes(data[start:end]) * rng.randrange(1, 4)
        elif op == 4:
            del data[pos:]
        else:
            data[pos:pos] = rng.choice(PIECES).encode("utf-8", "surrogateescape")
    return bytes(data)


def test_hostile_unit_values_never_raise_and_each_bad_one_is_reported():
    files, dropins = load_data()
    _, clean_specs, _ = import_all(files, dropins)
    clean_names = {s.name for s in clean_specs}
    rng = random.Random(adv.seed_for("unit fuzzer"))
    count = adv.size(400, 10000)
    budget = adv.size(60, 1200)
    started = time.monotonic()
    names = sorted(files)
    for n in range(count):
        if time.monotonic() - started > budget:
            break
        name = rng.choice(names)
        kind = name.rpartition(".")[2]
        mutated = dict(files)
        bad_line = None
        if rng.random() < 0.2:
            mutated[name] = mutate_bytes(rng, files[name])
        else:
            section_of = {"service": ("Service", "Unit"), "socket": ("Socket", "Unit"),
                          "timer": ("Timer", "Unit")}[kind]
            keys = [k for k in NUMBER_KEYS + WORD_KEYS + CONTEXT_KEYS if k[0] in section_of]
            section, key = rng.choice(keys)
            value, bad = hostile_value(rng, section, key)
            text = files[name].rstrip(b"\n") + b"\n"
            line = text.count(b"\n") + 2
            mutated[name] = text + ("[%s]\n%s=%s\n" % (section, key, value)).encode(
                "utf-8", "surrogateescape")
            overridden = any(("\n%s=" % key).encode() in d for _, d in dropins.get(name, ()))
            if bad and not overridden:
                bad_line = (name, line, key, value)
        try:
            result, specs, diagnostics = import_all(mutated, dropins)
        except Exception as exc:                      # noqa: B902 - the finding itself
            raise AssertionError("mutation %d of %s raised %r; the unit:\n%r"
                                 % (n, name, exc, mutated[name][-400:])) from exc
        path = "/lib/systemd/system/" + name
        # the other units are all still there: one bad unit costs only itself
        others = {s.name for s in specs}
        own = name.rpartition(".")[0]
        lost = {s for s in clean_names - others if not s.startswith(own.partition("@")[0])}
        assert not lost or any(d.path == path for d in diagnostics), (n, name, lost)
        if bad_line is not None:
            _, line, key, value = bad_line
            refused = [d for d in diagnostics if d.path == path and
                       (d.line == line or d.severity == config.ERROR)]
            assert refused, "mutation %d: %s=%r at %s:%d gave no diagnostic" % (
                n, key, value[:40], path, line)
            for diag in refused:
                assert diag.format().startswith("%s:" % path)


def test_shutdown_command_lines_never_raise(monkeypatch, capsys):
    asked = []
    monkeypatch.setattr(power, "ask", lambda line: (asked.append(line), (1, "err: no\n"))[1])
    monkeypatch.setattr(power.utmp, "logged_in_terminals", lambda path=None: [])
    rng = random.Random(adv.seed_for("shutdown fuzzer"))
    words = ["-r", "-h", "-P", "-H", "-k", "-c", "--no-wall", "--", "-", "now", "+", "+0",
             "+5", "+\u00b2", "+" + "9" * 5000, "+9999999", "2\u00b2:00", "\u00b2:00",
             "12:00", "23:59", "24:00", "12:60", "1:5", ":", "12:", ":30", "\u0661\u0662:00",
             "12:\u0660\u0660", "9" * 5000 + ":00", "\x00", "\udcff", "\x1b[2J", "é", "-f"]
    local = time.localtime(1700000000)
    for _ in range(adv.size(3000, 100000)):
        argv = [rng.choice(words) if rng.random() < 0.7 else junk(rng)
                for _ in range(rng.randrange(4))]
        status = power.main("shutdown", argv, now=local)
        assert status in (0, 1, 2), (argv, status)
    for line in asked:                    # only well-formed requests reach PID 1
        if line.startswith("schedule "):
            action, seconds = line.split()[1:]
            assert action in protocol.SHUTDOWN_ACTIONS and seconds.isascii() and \
                seconds.isdigit() and len(seconds) < 10, line
        else:
            assert line in protocol.SHUTDOWN_ACTIONS + ("cancel",), line
    capsys.readouterr()


# --- random units made of the mapped keys ---------------------------------------------

WORDS = ("ExecStart", "ExecStartPre", "ExecStartPost", "ExecStop", "ExecReload",
         "ExecCondition", "Type", "User", "Group", "Environment", "EnvironmentFile",
         "WorkingDirectory", "After", "Before", "Wants", "Requires", "Restart", "KillMode",
         "TimeoutSec", "TimeoutStopSec", "WatchdogSec", "ListenStream", "ListenDatagram",
         "SocketMode", "SocketUser", "BindIPv6Only", "OnCalendar", "OnBootSec",
         "OnUnitActiveSec", "OnUnitInactiveSec", "RandomizedDelaySec", "Persistent",
         "StandardInput", "TTYPath", "ConditionPathExists", "AssertPathExists",
         "RuntimeDirectory", "RuntimeDirectoryMode", "Nice", "UMask", "LimitNOFILE",
         "LimitMEMLOCK", "CapabilityBoundingSet", "ProtectSystem", "ReadWritePaths",
         "SuccessExitStatus", "CPUQuota", "MemoryMax", "Service", "Unit", "Alias",
         "DefaultDependencies", "StartLimitBurst", "Conflicts", "PIDFile", "RemainAfterExit",
         "Accept", "MaxConnections")
FUZZ_PIECES = ("/bin/x", "a.service", "b.socket", "c.timer", "t.target", "x@.service", "%i",
               "%I", "%H", "%", "%%", "$A", "${B}", "$$", "'", '"', "\\", "\\x4", "\\u12", "-",
               "@", "+", "!", ":", "|", ";", "#", " #", "simple", "oneshot", "forking",
               "notify", "always", "no", "1min", "infinity", "daily", "*-*-* 6,18:00",
               "Sun 03:10", "0666", "22", "[::1]:22", "tty", "/dev/%I", "=", " ", "\t",
               "\x00", "\x7f", "\u00e9", "9" * 30, "yes", "A=1", "64M", "~CAP_CHOWN",
               "ipv6-only", "SIGKILL", "strict", "-/var/lib/x", "socket")


def test_seeded_random_units_never_raise_hang_or_write_what_config_reads_otherwise():
    import signal

    rng = random.Random(adv.seed_for("random units"))

    def hung(signo, frame):
        raise AssertionError("the importer hung (replay with the seed printed above)")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(120)
    try:
        for _ in range(adv.size(300, 5000)):
            files = {}
            for n in range(rng.randrange(1, 6)):
                name = rng.choice(["a", "b", "c", "x@", "x@1", "d"]) + rng.choice(
                    [".service", ".socket", ".timer", ".target"])
                lines = []
                for _ in range(rng.randrange(0, 20)):
                    if rng.random() < 0.15:
                        lines.append("[%s]" % rng.choice(["Unit", "Service", "Socket",
                                                          "Timer", "Install", "X"]))
                        continue
                    value = "".join(rng.choice(FUZZ_PIECES)
                                    for _ in range(rng.randrange(0, 6)))
                    lines.append("%s=%s%s" % (rng.choice(WORDS), value,
                                              rng.choice(["", "\\", " \\"])))
                files[name] = "\n".join(lines).encode("utf-8", "surrogateescape")
            for wants in (None, {"multi-user.target": list(files)}):
                try:
                    import_all(files, {}, wants, lambda flag, path: len(path) % 2 == 0)
                except Exception as exc:
                    raise AssertionError("%r raised %r" % (files, exc)) from exc
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_a_nul_in_a_unit_is_dropped_with_a_warning_never_written():
    """A NUL byte in a value, raw or as an escape, can be given to no program."""
    text = ("[Unit]\nConditionPathExists=!/x \x00\n[Service]\nType=oneshot\n"
            "ExecStartPre=/bin/p a\\x00b\nExecStart=/bin/x \x00 y\nExecStart=/bin/z\n")
    result = units.import_units(units.DictSource({"n.service": text.encode()}),
                                everything=True, facts=FACTS)
    messages = [d.message for d in result.diagnostics]
    assert sum("NUL" in m for m in messages) == 3, messages
    for generated in result.generated:
        assert "\0" not in generated.render()[0]
