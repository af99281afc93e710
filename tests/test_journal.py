"""The journal (docs/spec.md, "The journal"): the pure parsers and filters (unit, fuzzed),
the stored files' rotation, and a real schema-journald run by a real schema-init with its
three sockets passed by listen= (process tier): syslog, native and stdout-stream senders
and a service's own stdout all reach the journalctl shim; rotation, a SIGKILL of the sink,
a full disk and a fuzzer lose nothing they should not and end no process.

JOURNAL_FUZZ_SEED=N replays a fuzz run (the seed is printed)."""

import io
import json
import os
import random
import re
import socket
import struct
import subprocess
import time

import pytest

from conftest import program
from harness import Supervised
from schema_init.journal import journal, journalctl, journald

NOW = 1700000000.0          # 2023-11-14 22:13:20 UTC


# --- syslog ---

def test_glibc_syslog_datagram():
    fields = journal.parse_syslog(b"<30>Dec  1 19:51:14 cron[812]: (root) CMD (true)")
    assert fields == {"PRIORITY": "6", "SYSLOG_FACILITY": "3", "SYSLOG_IDENTIFIER": "cron",
                      "SYSLOG_PID": "812", "SYSLOG_TIMESTAMP": "Dec  1 19:51:14",
                      "MESSAGE": "(root) CMD (true)"}


def test_logger_rfc3164_with_a_host_name_and_without():
    a = journal.parse_syslog(b"<13>Dec  1 19:51:14 vm root: hello world")
    b = journal.parse_syslog(b"<131>Dec  1 19:51:14 mytag: hello world")
    assert (a["SYSLOG_IDENTIFIER"], a["MESSAGE"], a["PRIORITY"]) == ("root", "hello world", "5")
    assert (b["SYSLOG_IDENTIFIER"], b["PRIORITY"], b["SYSLOG_FACILITY"]) == ("mytag", "3", "16")


def test_rfc5424_datagram_skips_structured_data():
    fields = journal.parse_syslog(
        b'<13>1 2026-12-01T19:51:14.96+00:00 vm root 42 ID7 [timeQuality tzKnown="1"]'
        b'[x@1 a="b\\]c"] msg2')
    assert fields["SYSLOG_IDENTIFIER"] == "root" and fields["SYSLOG_PID"] == "42"
    assert fields["SYSLOG_MSGID"] == "ID7" and fields["MESSAGE"] == "msg2"


@pytest.mark.parametrize("data,message", [
    (b"no header at all", "no header at all"), (b"<999>big", "<999>big"), (b"", ""),
    (b"<7>", ""), (b"<14>x\n", "x"), (b"<12>1 short", "short")])
def test_syslog_without_a_proper_header_is_still_a_message(data, message):
    fields = journal.parse_syslog(data)
    assert fields["MESSAGE"] == message
    assert 0 <= int(fields["PRIORITY"]) <= 7


# --- native ---

def native(*pairs):
    out = b""
    for key, value in pairs:
        if b"\n" in value:
            out += key + b"\n" + struct.pack("<Q", len(value)) + value + b"\n"
        else:
            out += key + b"=" + value + b"\n"
    return out


def test_native_datagram_with_a_binary_field():
    fields, problem = journal.parse_native(native(
        (b"MESSAGE", b"line one\nline two"), (b"PRIORITY", b"3"), (b"SYSLOG_IDENTIFIER", b"t"),
        (b"CODE_LINE", b"12")))
    assert problem is None
    assert fields == {"MESSAGE": "line one\nline two", "PRIORITY": "3",
                      "SYSLOG_IDENTIFIER": "t", "CODE_LINE": "12"}


def test_native_datagram_cannot_set_trusted_or_bad_fields():
    fields, _ = journal.parse_native(b"_PID=1\n__REALTIME_TIMESTAMP=0\nlower=x\n1BAD=y\n"
                                     b"MESSAGE=hi\nPRIORITY=9\n")
    assert fields == {"MESSAGE": "hi"}


def test_native_length_past_the_end_keeps_what_came_before():
    data = b"MESSAGE=kept\nOTHER\n" + struct.pack("<Q", 1 << 40) + b"short"
    fields, problem = journal.parse_native(data)
    assert fields == {"MESSAGE": "kept"} and "longer than the datagram" in problem


# --- lines and the stdout stream ---

def test_long_lines_are_cut_and_kept():
    lines = journal.Lines(limit=10)
    assert lines.feed(b"0123456789ABCDEF") == [b"0123456789"]
    assert lines.feed(b"GHI\nshort\npart") == [b"short"]
    assert lines.feed(b"ial\n") == [b"partial"]
    assert lines.rest() == []
    assert lines.feed(b"tail") == [] and lines.rest() == [b"tail"]


STREAM_HEADER = b"myident\nunit\n4\n1\n0\n0\n0\n"


def test_stream_header_then_lines_with_level_prefix():
    stream = journal.Stream()
    out = stream.feed(STREAM_HEADER + b"plain\n<2>critical\n<9>not a prefix\nhalf")
    assert out == [{"PRIORITY": "4", "MESSAGE": "plain", "SYSLOG_IDENTIFIER": "myident"},
                   {"PRIORITY": "2", "MESSAGE": "critical", "SYSLOG_IDENTIFIER": "myident"},
                   {"PRIORITY": "4", "MESSAGE": "<9>not a prefix",
                    "SYSLOG_IDENTIFIER": "myident"}]
    assert stream.unit == "unit"
    assert stream.finish() == [{"PRIORITY": "4", "MESSAGE": "half",
                                "SYSLOG_IDENTIFIER": "myident"}]


def test_stream_split_at_every_byte_gives_the_same_entries():
    data = STREAM_HEADER + b"one\n<3>two\nthree\n"
    whole = journal.Stream().feed(data)
    for cut in range(len(data) + 1):
        stream = journal.Stream()
        assert stream.feed(data[:cut]) + stream.feed(data[cut:]) == whole, cut


@pytest.mark.parametrize("header", [b"id\n\nx\n0\n0\n0\n0\n", b"id\n\n6\n2\n0\n0\n0\n",
                                    b"x" * 2000])
def test_bad_stream_header_is_refused(header):
    with pytest.raises(journal.StreamHeaderError):
        journal.Stream().feed(header)


# --- who sent it ---

@pytest.mark.parametrize("text,unit", [
    ("0::/schema-init/sshd\n", "sshd"),
    ("12:pids:/\n0::/user.slice/schema-init.schema-test-ab.77/web@3\n", "web@3"),
    ("0::/schema-init/db/inner\n", "db"),
    ("0::/\n", ""), ("0::/schema-init\n", ""), ("", ""), ("1:name=systemd:/schema-init/x", "")])
def test_unit_of_cgroup(text, unit):
    assert journal.unit_of_cgroup(text) == unit


def test_entry_fields_and_storage_key():
    entry = journal.complete({"MESSAGE": "m"}, 5, 6, 7, "boot", "host", "syslog", pid=9,
                             uid=0, gid=0, comm="sh", unit="web")
    assert entry["_SYSTEMD_UNIT"] == "web.service" and entry["SYSLOG_IDENTIFIER"] == "sh"
    assert entry["__SEQNUM"] == "7" and entry["PRIORITY"] == "6"
    assert journal.storage_key(entry) == "web"
    assert journal.decode(journal.encode(entry)) == entry
    bare = journal.complete({}, 5, 6, 8, "boot", "host", "journal")
    assert journal.storage_key(bare) == journal.UNITLESS and "_PID" not in bare
    assert journal.decode(b'{"MESSAGE":"x"') is None and journal.decode(b"[1]") is None


# --- filters ---

@pytest.mark.parametrize("text,expected", [
    ("err", {0, 1, 2, 3}), ("3", {0, 1, 2, 3}), ("err..warning", {3, 4}),
    ("warning..err", {3, 4}), ("0..7", set(range(8))), ("debug", set(range(8))),
    ("..crit", {0, 1, 2})])
def test_priorities(text, expected):
    assert journal.parse_priorities(text) == expected


def test_bad_priority_says_why():
    with pytest.raises(ValueError, match="unknown priority"):
        journal.parse_priorities("loud")


def utc(text):
    return journal.parse_time(text, NOW, localtime=time.gmtime, mktime=_timegm)


def _timegm(fields):
    import calendar
    return float(calendar.timegm(fields))


@pytest.mark.parametrize("text,expected", [
    ("2023-11-14 22:00:00", NOW - 800), ("2023-11-14", 1699920000.0),
    ("22:13", NOW - 20), ("today", 1699920000.0), ("yesterday", 1699920000.0 - 86400),
    ("tomorrow", 1699920000.0 + 86400), ("now", NOW), ("-5min", NOW - 300),
    ("5 min ago", NOW - 300), ("2 hours ago", NOW - 7200), ("+1h", NOW + 3600),
    ("@1000", 1000.0), ("2023-11-14 22:13:20 UTC", NOW)])
def test_times(text, expected):
    assert utc(text) == expected


@pytest.mark.parametrize("text", ["soon", "2023-13-01", "5 fortnights ago", "", "25:00"])
def test_bad_times_are_refused(text):
    with pytest.raises(ValueError):
        utc(text)


def test_boots_by_offset():
    entries = [{"_BOOT_ID": b, "__REALTIME_TIMESTAMP": str(t)}
               for b, t in (("old", 1), ("mid", 5), ("old", 3), ("cur", 9))]
    boots = journal.boots_in_order(entries)
    assert boots == ["old", "mid", "cur"]
    assert journal.pick_boot(boots, "cur", 0) == "cur"
    assert journal.pick_boot(boots, "cur", -1) == "mid"
    assert journal.pick_boot(boots, "cur", -2) == "old"
    assert journal.pick_boot(boots, "cur", -3) is None
    assert journal.pick_boot(boots, "cur", 1) == "old"
    assert journal.pick_boot(boots, "new", 0) == "new"      # nothing stored yet


def test_filter_and_dedup():
    keep = journal.Filter(units=["web.service", "db"], identifiers=["x"],
                          priorities=frozenset({3}), boot="b", since=10, until=20)
    good = {"_SYSTEMD_UNIT": "db.service", "SYSLOG_IDENTIFIER": "x", "PRIORITY": "3",
            "_BOOT_ID": "b", "__REALTIME_TIMESTAMP": "15000000"}
    assert keep.keeps(good)
    for key, value in (("_SYSTEMD_UNIT", "cron.service"), ("SYSLOG_IDENTIFIER", "y"),
                       ("PRIORITY", "6"), ("_BOOT_ID", "a"),
                       ("__REALTIME_TIMESTAMP", "21000000")):
        assert not keep.keeps(dict(good, **{key: value})), key
    dedup = journal.Dedup()
    seen = [dedup.fresh("k", {"_BOOT_ID": "b", "__SEQNUM": str(n)}) for n in (1, 2, 2, 1, 3)]
    assert seen == [True, True, False, False, True]


def test_output_formats():
    entry = {"__REALTIME_TIMESTAMP": str(int(NOW * 1e6) + 123), "_HOSTNAME": "pi",
             "SYSLOG_IDENTIFIER": "cron", "_PID": "77", "MESSAGE": "ran", "PRIORITY": "6"}
    short = journal.format_entry(entry, "short", localtime=time.gmtime)
    assert short == "Nov 14 22:13:20 pi cron[77]: ran"
    assert journal.format_entry(entry, "short-precise", localtime=time.gmtime) == \
        "Nov 14 22:13:20.000123 pi cron[77]: ran"
    assert journal.format_entry(entry, "short-iso", localtime=time.gmtime).startswith(
        "2023-11-14T22:13:20")
    assert journal.format_entry(entry, "cat") == "ran"
    assert json.loads(journal.format_entry(entry, "json")) == entry
    del entry["_PID"]
    assert journal.format_entry(entry, "short", localtime=time.gmtime).endswith(" cron: ran")


def test_parsers_survive_random_bytes():
    seed = int(os.environ.get("JOURNAL_FUZZ_SEED", random.randrange(1 << 30)))
    print("JOURNAL_FUZZ_SEED=%d" % seed)
    rng = random.Random(seed)
    pieces = [b"<", b">", b"1 ", b"MESSAGE=", b"\n", b"=", b"[", b"]", b":", b"\\",
              struct.pack("<Q", 5), struct.pack("<Q", 1 << 63), b"\xff\xfe", b" ", b"-"]
    for _ in range(3000):
        if rng.random() < 0.5:
            data = bytes(rng.randrange(256) for _ in range(rng.randrange(200)))
        else:
            data = b"".join(rng.choice(pieces) for _ in range(rng.randrange(40)))
        fields = journal.parse_syslog(data)
        assert len(fields["MESSAGE"]) <= journal.MAX_LINE
        fields, _ = journal.parse_native(data)
        assert all(not k.startswith("_") for k in fields)
        stream = journal.Stream(limit=64)
        try:
            for entry in stream.feed(STREAM_HEADER + data) + stream.finish():
                assert len(entry["MESSAGE"]) <= 64
        except journal.StreamHeaderError:
            pass
        stream = journal.Stream()
        try:
            stream.feed(data)
        except journal.StreamHeaderError:
            pass


# --- the stored files ---

def stored_lines(directory, key):
    out = []
    for path in journalctl.key_files(directory, key):
        out.extend(line for line in journalctl.read_lines(path) if line)
    return out


def test_rotation_keeps_the_newest_and_loses_nothing_within_the_cap(tmp_path):
    tier = journald.Tier(str(tmp_path), 100, 5, "t")
    for n in range(300):
        assert tier.append("svc", b'{"n":%d}\n' % n, 1)
    lines = stored_lines(str(tmp_path), "svc")
    numbers = [json.loads(line)["n"] for line in lines]
    assert numbers == list(range(numbers[0], 300))      # in order, no gap, newest kept
    assert numbers[0] > 0 and len(numbers) >= 5 * 100 // 10 - 5    # the cap: 6 files
    assert len(journalctl.key_files(str(tmp_path), "svc")) == 6
    assert not any(name.endswith(".new") for name in os.listdir(tmp_path))


def test_follower_reads_across_rotations(tmp_path):
    tier = journald.Tier(str(tmp_path), 300, 3, "t")
    follower = journalctl.Follower(str(tmp_path), "svc")
    got = []
    for n in range(200):
        tier.append("svc", b'{"n":%d}\n' % n, 1)
        if n % 7 == 0:                   # read now and then: two rotations in between
            got.extend(follower.read())
    got.extend(follower.read())
    assert [json.loads(line)["n"] for line in got if line] == list(range(200))


def test_sink_options():
    options = journald.parse_args(["--storage", "none", "--runtime-max", "64K",
                                   "--flush-interval=2.5", "--service-logs", "/a"])
    assert options["storage"] is None and options["runtime_max"] == 65536
    assert options["flush_interval"] == 2.5 and options["service_logs"] == ["/a"]
    for bad in (["--runtime-max", "-1"], ["--nope", "1"], ["--flush-interval", "x"],
                ["--storage"]):
        with pytest.raises(journald.UsageError):
            journald.parse_args(bad)


def write_entries(path, entries):
    with open(path, "wb") as f:
        for entry in entries:
            f.write(journal.encode(entry))


def test_journalctl_boots_units_priorities_and_dedup(tmp_path, monkeypatch):
    storage, runtime = tmp_path / "storage", tmp_path / "runtime"
    storage.mkdir()
    runtime.mkdir()
    boot_file = tmp_path / "boot_id"
    boot_file.write_text("cur\n")
    monkeypatch.setenv("SCHEMA_JOURNAL_BOOT_ID_FILE", str(boot_file))

    def entry(seq, boot, message, prio="6", unit="web"):
        return journal.complete({"MESSAGE": message, "PRIORITY": prio}, seq * 1000000, seq,
                                seq, boot, "h", "journal", unit=unit)
    old = [entry(1, "prev", "old one"), entry(2, "prev", "old two", "3")]
    now = [entry(3, "cur", "new one"), entry(4, "cur", "new two", "4")]
    write_entries(storage / "web.jsonl.1", old)
    write_entries(storage / "web.jsonl", now[:1])
    write_entries(runtime / "web.jsonl", now)                 # flushed one is in both
    write_entries(runtime / "db.jsonl", [entry(5, "cur", "db says", unit="db")])

    def run(*args):
        out = io.StringIO()
        status = journalctl.main(["-D", str(storage), "--runtime", str(runtime), "-o", "cat",
                                  *args], out=out)
        return status, out.getvalue().splitlines()
    assert run("-u", "web") == (0, ["old one", "old two", "new one", "new two"])
    assert run("-u", "web.service", "-b") == (0, ["new one", "new two"])
    assert run("-u", "web", "-b", "-1") == (0, ["old one", "old two"])
    assert run("-b", "-2")[0] == 1
    assert run("-u", "web", "-p", "warning") == (0, ["old two", "new two"])
    assert run("-u", "web", "-p", "err..err") == (0, ["old two"])
    assert run("-n", "2") == (0, ["new two", "db says"])
    assert run("-u", "db", "-u", "web", "-n", "1", "-r") == (0, ["db says"])
    assert run("--since", "@3", "--until", "@4") == (0, ["new one", "new two"])
    assert run("--since", "soon")[0] == 1
    status, lines = run("-u", "db", "-o", "json")
    assert json.loads(lines[0])["_SYSTEMD_UNIT"] == "db.service"


# --- a real sink, its sockets held by a real schema-init (process tier) ---

class JournalWorld:
    """A schema-init supervising schema-journald (listen= on three sockets in a private
    directory, never the host's /dev/log) and the given services."""

    def __init__(self, root, services=None, sink_args=(), scale=1.0, base="/tmp",
                 sink_command=None):
        import tempfile
        self.dir = tempfile.mkdtemp(prefix="sj-", dir=base)       # socket paths stay short
        self.bin = os.path.join(self.dir, "bin")
        os.makedirs(self.bin)
        for name in ("schema-journald", "journalctl"):
            os.symlink(program("schema-init"), os.path.join(self.bin, name))
        self.devlog = os.path.join(self.dir, "dev-log")
        self.native = os.path.join(self.dir, "journal", "socket")
        self.stdout = os.path.join(self.dir, "journal", "stdout")
        self.runtime = os.path.join(self.dir, "runtime")
        self.storage = os.path.join(self.dir, "storage")
        os.makedirs(self.storage)
        self.supervised = Supervised(root, {}, scale=scale)
        args = ["--runtime", self.runtime, "--storage", self.storage, "--service-logs",
                os.path.join(self.supervised.run_dir, "log")] + list(sink_args)
        command = sink_command or [os.path.join(self.bin, "schema-journald")]
        self.supervised.write("journal.svc", (
            "exec=%s\n%slisten=dgram:%s\nlisten=dgram:%s\nlisten=%s\nstable_secs=1\n" % (
                command[0], "".join("args=%s\n" % a for a in command[1:] + args),
                self.devlog, self.native, self.stdout)))
        for name, text in (services or {}).items():      # a callable: text of the world
            self.supervised.write(name, text(self) if callable(text) else text)

    def start(self):
        self.supervised.start()
        self.supervised.wait_state("journal", ("FULL_TRUST", "FUNDAMENTAL"))
        self.supervised.wait(lambda: os.path.exists(self.runtime), 10, "the sink")
        return self

    def stop(self):
        import shutil
        try:
            self.supervised.stop()
        finally:
            subprocess.run(["umount", "-l", self.storage], capture_output=True)
            shutil.rmtree(self.dir, ignore_errors=True)

    def journalctl(self, *args, runtime=True, timeout=30):
        result = subprocess.run(
            [os.path.join(self.bin, "journalctl"), "-D", self.storage, "--runtime",
             self.runtime if runtime else os.path.join(self.dir, "no-runtime"), *args],
            capture_output=True, text=True, timeout=timeout)
        assert result.returncode == 0, result.stderr
        return result.stdout.split("\n")[:-1]

    def json(self, *args, runtime=True):
        return [json.loads(line) for line in self.journalctl("-o", "json", *args,
                                                              runtime=runtime)]

    def wait_for(self, text, *args, timeout=15.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lines = self.journalctl("-o", "cat", *args)
            if any(text in line for line in lines):
                return lines
            time.sleep(0.1)
        raise AssertionError("%r not in journalctl %s; sink's log:\n%s" % (
            text, " ".join(args), self.supervised.log("journal")[-3000:]))

    def sink_pid(self):
        return int(self.supervised.status()["journal"]["pid"])

    def send_native(self, *pairs, sock=None):
        own = sock is None
        sock = sock or socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            send_patiently(sock, native(*pairs), self.native)
        finally:
            if own:
                sock.close()

    def stream(self, identifier, lines, priority=6):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(self.stdout)
            sock.sendall(("%s\n\n%d\n0\n0\n0\n0\n" % (identifier, priority)).encode() +
                         b"".join(line + b"\n" for line in lines))


def send_patiently(sock, data, path, timeout=10.0):
    """sendto without blocking: the socket's queue full (the sink busy or down) is
    waited out, bounded."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return sock.sendto(data, socket.MSG_DONTWAIT, path)
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.001)


@pytest.fixture
def world(tmp_path):
    made = []

    def make(*args, **kwargs):
        w = JournalWorld(tmp_path / ("w%d" % len(made)), *args, **kwargs)
        made.append(w)
        return w.start()
    yield make
    for w in made:
        w.stop()


SHORT_RE = re.compile(r"^[A-Z][a-z]{2} \d\d \d\d:\d\d:\d\d \S+ (\S+?)(\[\d+\])?: (.*)$")


@pytest.mark.process
def test_syslog_native_stream_and_service_stdout_all_reach_journalctl(world):
    tag = "t%d" % os.getpid()
    w = world({"printer.svc": lambda w: (
        "exec=/bin/sh\nargs=-c\nargs=printf 'from stdout %s\\n' >&1; "
        "printf 'to stderr %s\\n' >&2; "
        # logger stays (reading its stdin) so that its /proc/PID/cgroup can be read: a
        # sender gone before the sink looks has no unit unless its identifier names one
        "(echo 'syslog %s'; exec sleep 1000) | logger -u %s -t lp -p daemon.err\n"
        % (tag, tag, tag, w.devlog))})
    s = w.supervised
    logger = subprocess.Popen(["logger", "-u", w.devlog, "-t", "outside",
                               "outside %s" % tag])
    assert logger.wait(10) == 0
    w.send_native((b"MESSAGE", b"line one\nline two " + tag.encode()),
                  (b"PRIORITY", b"2"), (b"SYSLOG_IDENTIFIER", b"nativetest"),
                  (b"CODE_FILE", b"x.c"))
    w.stream("streamer", [b"stream line 1 " + tag.encode(), b"stream line 2 " + tag.encode()])

    lines = w.wait_for("syslog %s" % tag, "-u", "printer")
    assert "from stdout %s" % tag in lines and "to stderr %s" % tag in lines, lines
    assert s.log("printer") == "from stdout %s\nto stderr %s\n" % (tag, tag)   # as ever
    by_message = {e["MESSAGE"]: e for e in w.json("-u", "printer.service")}
    syslog = by_message["syslog %s" % tag]
    assert syslog["_TRANSPORT"] == "syslog" and syslog["PRIORITY"] == "3"
    # its unit from its cgroup (the identifier, lp, names no service)
    assert int(syslog["_PID"]) > 0 and syslog["_SYSTEMD_UNIT"] == "printer.service"
    assert syslog["SYSLOG_IDENTIFIER"] == "lp" and syslog["_COMM"] == "logger"
    assert by_message["from stdout %s" % tag]["_TRANSPORT"] == "stdout"

    w.wait_for("outside %s" % tag, "-t", "outside")
    [outside] = w.json("-t", "outside")
    assert outside["_PID"] == str(logger.pid) and outside["_UID"] == str(os.getuid())
    [entry] = w.json("-t", "nativetest")
    assert entry["MESSAGE"] == "line one\nline two " + tag and entry["PRIORITY"] == "2"
    assert entry["_PID"] == str(os.getpid()) and entry["_TRANSPORT"] == "journal"
    assert entry["CODE_FILE"] == "x.c" and len(entry["_BOOT_ID"]) == 36

    w.wait_for("stream line 2 %s" % tag, "-t", "streamer")
    short = w.journalctl("-t", "streamer", "-o", "short")
    parsed = [SHORT_RE.match(line) for line in short]
    assert all(parsed), short
    assert [(m.group(1), m.group(3)) for m in parsed] == [
        ("streamer", "stream line 1 " + tag), ("streamer", "stream line 2 " + tag)]
    assert parsed[0].group(2) == "[%d]" % os.getpid()

    important = [e["MESSAGE"] for e in w.json("-p", "err")]
    assert "syslog %s" % tag in important and "line one\nline two " + tag in important
    assert "from stdout %s" % tag not in important
    assert w.journalctl("-o", "cat", "-t", "streamer", "-n", "1") == ["stream line 2 " + tag]

    # the disk agrees with /run once the sink is stopped (SIGTERM flushes)
    ram = w.json()
    s.ctl("stop", "journal")
    s.wait_state("journal", ("EXCISED", "PERFECT", "DORMANT"))
    disk = w.json(runtime=False)
    assert [(e["__SEQNUM"], e["MESSAGE"]) for e in disk][:len(ram)] == \
        [(e["__SEQNUM"], e["MESSAGE"]) for e in ram]
    assert all(e["SYSLOG_IDENTIFIER"] == "schema-init" for e in disk[len(ram):])   # the rail


@pytest.mark.process
def test_rotation_loses_nothing_while_journalctl_follows(world):
    import threading
    w = world(sink_args=["--runtime-max", "16K", "--storage-max", "32K", "--storage-files",
                         "400", "--flush-interval", "0.5"])
    follower = subprocess.Popen(
        [os.path.join(w.bin, "journalctl"), "-D", w.storage, "--runtime", w.runtime, "-f",
         "-n", "0", "-t", "flood", "-o", "cat"], stdout=subprocess.PIPE, text=True)
    seen = []
    reader = threading.Thread(target=lambda: seen.extend(follower.stdout), daemon=True)
    reader.start()
    try:
        time.sleep(0.5)
        count = 3000
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            for n in range(count):
                w.send_native((b"MESSAGE", b"flood %d " % n + b"x" * 200),
                              (b"SYSLOG_IDENTIFIER", b"flood"), sock=sock)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(
                line.startswith("flood %d " % (count - 1)) for line in seen):
            time.sleep(0.1)
    finally:
        follower.kill()
        follower.wait()
    numbers = [int(line.split()[1]) for line in seen]
    assert numbers == list(range(count)), (len(numbers), numbers[:5], numbers[-5:])
    rotated = [n for n in os.listdir(w.runtime) if ".jsonl." in n]
    assert rotated, os.listdir(w.runtime)        # the runtime file did rotate
    w.supervised.ctl("stop", "journal")
    w.supervised.wait_state("journal", ("EXCISED", "PERFECT", "DORMANT"))
    on_disk = [int(m.split()[1]) for m in w.journalctl("-t", "flood", "-o", "cat",
                                                       runtime=False)]
    assert on_disk == list(range(count))
    assert len(journalctl.key_files(w.storage, journal.UNITLESS)) > 10


@pytest.mark.process
def test_sink_killed_with_sigkill_loses_nothing_sent_while_it_was_down(world):
    w = world({"ticker.svc": "exec=/bin/sh\nargs=-c\nargs=i=0; while :; do i=$((i+1)); "
                             "echo tick $i; sleep 0.02; done\n"},
              sink_args=["--flush-interval", "1000"])      # a restart 1 s after the death
    s = w.supervised
    for n in range(5):
        w.send_native((b"MESSAGE", b"before %d" % n), (b"SYSLOG_IDENTIFIER", b"k"))
    w.wait_for("before 4", "-t", "k")
    first = w.sink_pid()
    os.kill(first, 9)
    s.wait(lambda: s.status()["journal"].get("pid") != str(first) or
           s.state("journal") not in ("FULL_TRUST", "FUNDAMENTAL"), 10, "the kill")
    for n in range(5):        # the sink is down: these wait in schema-init's socket
        w.send_native((b"MESSAGE", b"while down %d" % n), (b"SYSLOG_IDENTIFIER", b"k"))
    w.stream("downstream", [b"streamed while down"])     # waits in the backlog
    assert s.status()["journal"].get("pid") in ("0", str(first)), "restarted too soon"
    s.wait(lambda: s.state("journal") in ("FULL_TRUST", "FUNDAMENTAL") and
           w.sink_pid() != first, 20, "the sink's restart")
    assert "died" in s.events("journal")
    w.wait_for("while down 4", "-t", "k")
    w.wait_for("streamed while down", "-t", "downstream")
    time.sleep(0.5)
    s.ctl("stop", "ticker")
    s.ctl("stop", "journal")          # SIGTERM: everything to the disk
    s.wait_state("journal", ("EXCISED", "PERFECT", "DORMANT"))
    on_disk = w.journalctl("-t", "k", "-o", "cat", runtime=False)
    # the first five were never flushed before the SIGKILL: recovered from /run
    assert on_disk == ["before %d" % n for n in range(5)] + \
        ["while down %d" % n for n in range(5)]
    ticks = [int(m.split()[1]) for m in w.journalctl("-u", "ticker", "-o", "cat")
             if m.startswith("tick ")]
    assert ticks and set(ticks) == set(range(1, max(ticks) + 1)), "a tick was lost"
    assert max(ticks) > 20 and len(ticks) - len(set(ticks)) <= 256


@pytest.mark.process
def test_full_disk_blocks_neither_a_sender_nor_the_sink(world, tmp_path):
    w = JournalWorld(tmp_path / "full", sink_args=["--flush-interval", "0.2",
                                                   "--pending-max", "64K"])
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", w.storage], check=True)
    try:
        w.start()
        pid = w.sink_pid()
        slowest = 0.0
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            for n in range(4000):
                started = time.monotonic()
                w.send_native((b"MESSAGE", b"fill %d " % n + b"y" * 300),
                              (b"SYSLOG_IDENTIFIER", b"fill"), sock=sock)
                slowest = max(slowest, time.monotonic() - started)
        lines = w.wait_for("fill 3999", "-t", "fill", "-n", "1")
        assert lines[-1].startswith("fill 3999")          # /run still has the newest
        assert slowest < 2.0
        assert w.sink_pid() == pid                        # it never died
        started = time.monotonic()
        assert w.supervised.ctl("status").returncode == 0
        assert time.monotonic() - started < 2.0
        log = w.supervised.log("journal")
        assert log.count("No space left on device") == 1, log
        assert log.count("oldest waiting entries are dropped") == 1, log
        on_disk = w.journalctl("-t", "fill", "-o", "cat", runtime=False)
        assert 0 < len(on_disk) < 4000                    # what fitted, in order
        numbers = [int(m.split()[1]) for m in on_disk]
        assert numbers == sorted(numbers)
    finally:
        w.stop()


@pytest.mark.process
def test_fuzzer_ends_neither_the_sink_nor_schema_init(world):
    seed = int(os.environ.get("JOURNAL_FUZZ_SEED", random.randrange(1 << 30)))
    print("JOURNAL_FUZZ_SEED=%d" % seed)
    rng = random.Random(seed)
    w = world(sink_args=["--max-streams", "16", "--flush-interval", "0.5"], scale=0.2)
    s = w.supervised
    held, slowest = [], 0.0
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    pieces = [b"<", b">", b"1 ", b"MESSAGE=", b"\n", b"=", b"[", b"]", b":", b"_PID=1\n",
              struct.pack("<Q", 3), struct.pack("<Q", 1 << 62), b"\xff", b" ", b"PRIORITY="]

    def junk(size):
        if rng.random() < 0.5:
            return os.urandom(size)
        return b"".join(rng.choice(pieces) for _ in range(size // 3 + 1))[:size]
    for op in range(2500):
        kind = rng.random()
        try:
            if kind < 0.6:
                path = rng.choice((w.devlog, w.native))
                size = rng.choice((0, 1, 10, 300, 4000, 60000, 200000))
                sock.sendto(junk(size), socket.MSG_DONTWAIT, path)
            elif kind < 0.65:
                memfd = os.memfd_create("fuzz")
                os.write(memfd, b"MESSAGE=in a memfd\n")
                sock.sendmsg([b""], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                      struct.pack("i", memfd))], socket.MSG_DONTWAIT,
                             w.native)
                os.close(memfd)
            elif kind < 0.9:
                conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                conn.setblocking(False)
                conn.connect(w.stdout)
                header = rng.choice((b"id\n\n6\n0\n0\n0\n0\n", b"id\n\n9\n", junk(50),
                                     b"\n" * 7, b"x" * 3000))
                conn.send(header + junk(rng.randrange(2000)))
                if rng.random() < 0.1 and len(held) < 60:
                    held.append(conn)          # kept open: more than max_streams
                else:
                    conn.close()
            else:
                for conn in held[:rng.randrange(len(held) + 1)]:
                    conn.close()
                    held.remove(conn)
        except (BlockingIOError, ConnectionRefusedError, FileNotFoundError,
                ConnectionResetError, BrokenPipeError, OSError):
            pass
        if op % 250 == 0:
            started = time.monotonic()
            assert s.ctl("status", timeout=10).returncode == 0
            slowest = max(slowest, time.monotonic() - started)
    for conn in held:
        conn.close()
    sock.close()
    assert s.proc.poll() is None, "schema-init died"
    assert slowest < 2.0, slowest
    with open("/proc/%d/status" % w.sink_pid()) as f:
        rss = [int(line.split()[1]) for line in f if line.startswith("VmRSS:")][0]
    assert rss < 100 * 1024, "the sink holds %d kB after the fuzz" % rss
    s.wait_state("journal", ("FULL_TRUST", "FUNDAMENTAL"), 20)
    w.send_native((b"MESSAGE", b"after the fuzz %d" % seed), (b"SYSLOG_IDENTIFIER", b"z"))
    w.wait_for("after the fuzz %d" % seed, "-t", "z")
    w.stream("afterfuzz", [b"stream still served"])
    w.wait_for("stream still served", "-t", "afterfuzz")
    refused = [e for e in w.json() if e.get("MESSAGE") == "in a memfd"]
    assert refused == []


DEBIAN_ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           "build", "tmp", "debian", "root")
SYSLOG_C = r"""
#include <syslog.h>
int main(int argc, char **argv) {
    openlog("csyslog", LOG_PID, LOG_DAEMON);
    syslog(LOG_WARNING, "from syslog(3) %s", argv[1]);
    closelog();
    return 0;
}
"""


@pytest.mark.debian
@pytest.mark.process
@pytest.mark.skipif(not os.path.exists(os.path.join(DEBIAN_ROOT, "usr", "bin", "logger")),
                    reason="no Debian root (build/mkdebian.sh makes it for the Debian tier)")
def test_debians_logger_and_glibc_syslog_reach_the_sink(world, tmp_path):
    """Debian's own logger, run in the Debian root, and a syslog(3) call through Debian's
    glibc (a tiny program run there, /dev/log bound to the sink's socket in a private
    mount namespace: the shared root is not changed) both reach the sink."""
    tag = "d%d" % os.getpid()
    w = JournalWorld(tmp_path / "deb", base=os.path.join(DEBIAN_ROOT, "tmp"))
    try:
        w.start()
        inside = lambda path: "/" + os.path.relpath(path, DEBIAN_ROOT)  # noqa: E731
        subprocess.run(["chroot", DEBIAN_ROOT, "/usr/bin/logger", "-u", inside(w.devlog),
                        "-t", "deblogger", "-p", "user.err", "logger %s" % tag], check=True,
                       timeout=30)
        source = tmp_path / "sysl.c"
        source.write_text(SYSLOG_C)
        program_path = os.path.join(w.dir, "sysl")
        subprocess.run(["gcc", "-O", "-o", program_path, str(source)], check=True, timeout=60)
        script = ("mount -t tmpfs none {root}/dev && touch {root}/dev/log && "
                  "mount --bind {sock} {root}/dev/log && chroot {root} {prog} {tag}").format(
            root=DEBIAN_ROOT, sock=w.devlog, prog=inside(program_path), tag=tag)
        subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                       check=True, timeout=30)
        w.wait_for("logger %s" % tag, "-t", "deblogger")
        w.wait_for("from syslog(3) %s" % tag, "-t", "csyslog")
        [logger] = w.json("-t", "deblogger")
        assert logger["PRIORITY"] == "3" and logger["_TRANSPORT"] == "syslog"
        [call] = w.json("-t", "csyslog")
        assert call["PRIORITY"] == "4" and call["SYSLOG_FACILITY"] == "3"
        assert call["SYSLOG_PID"] == call["_PID"] and int(call["_PID"]) > 0
        assert os.path.exists(os.path.join(DEBIAN_ROOT, "dev", "null"))   # root untouched
        assert not os.path.exists(os.path.join(DEBIAN_ROOT, "dev", "log"))
    finally:
        w.stop()


@pytest.mark.process
def test_a_service_log_renamed_away_is_followed_to_its_end(world):
    """Rotation of a service's log by rename: the service still writes to the renamed
    file (schema-init opens it at the spawn) until it restarts; not a line is lost."""
    w = world({"ticker.svc": "exec=/bin/sh\nargs=-c\nargs=i=0; while :; do i=$((i+1)); "
                             "echo tick $i; sleep 0.01; done\n"})
    s = w.supervised
    log = os.path.join(s.run_dir, "log", "ticker.log")
    w.wait_for("tick 20", "-u", "ticker")
    os.rename(log, log + ".1")             # as logrotate's "create" does:
    open(log, "w").close()                 # a new empty file under the name at once
    time.sleep(0.5)                        # while the service writes on to ticker.log.1
    s.ctl("restart", "ticker")             # now it writes to a new ticker.log
    s.wait(lambda: os.path.getsize(log) > 0, 10, "the restarted service's output")
    time.sleep(0.5)
    s.ctl("stop", "ticker")
    time.sleep(0.5)
    with open(log + ".1") as f:
        before = [int(line.split()[1]) for line in f if line.startswith("tick ")]
    with open(log) as f:
        after = [int(line.split()[1]) for line in f if line.startswith("tick ")]
    assert before and after
    def journal_has():
        return [int(m.split()[1]) for m in w.journalctl("-u", "ticker", "-o", "cat")
                if m.startswith("tick ")]
    s.wait(lambda: len(journal_has()) >= len(before) + len(after), 10, "every tick")
    assert journal_has() == before + after


def _store(tmp_path, **options):
    merged = dict(journald.DEFAULTS, runtime=str(tmp_path / "rt"), storage=str(tmp_path / "st"))
    merged.update(options)
    return journald.Store(merged, "boot")


def _lines(first, count):
    return [journal.encode(journal.complete({"MESSAGE": "m %d" % n}, n, n, n, "boot", "h",
                                            "journal")) for n in range(first, first + count)]


def test_a_disk_that_comes_back_gets_everything_that_waited(tmp_path, capfd):
    (tmp_path / "st").write_text("a file where the directory should be")
    store = _store(tmp_path)
    store.add({"svc": _lines(1, 50)})
    store.flush()
    assert store.pending and not os.path.isdir(tmp_path / "st")
    store.add({"svc": _lines(51, 50)})
    store.flush()                                    # said once, not twice
    (tmp_path / "st").unlink()
    store.flush()
    on_disk = [json.loads(line)["MESSAGE"] for line in stored_lines(str(tmp_path / "st"),
                                                                    "svc")]
    assert on_disk == ["m %d" % n for n in range(1, 101)]
    said = capfd.readouterr().err
    assert said.count("entries wait in memory") == 1 and said.count("writable again") == 1


def test_beyond_pending_max_the_oldest_are_dropped_and_counted(tmp_path, capfd):
    (tmp_path / "st").write_text("not a directory")
    store = _store(tmp_path, pending_max=20 * 1024)
    for first in range(1, 1001, 100):
        store.add({"svc": _lines(first, 100)})
        store.flush()
    assert store.pending_bytes <= 20 * 1024 and store.dropped_pending > 0
    (tmp_path / "st").unlink()
    store.flush()
    numbers = [int(json.loads(line)["MESSAGE"].split()[1])
               for line in stored_lines(str(tmp_path / "st"), "svc")]
    assert numbers == list(range(1001 - len(numbers), 1001))      # the newest, in order
    assert len(numbers) + store.dropped_pending == 1000
    said = capfd.readouterr().err
    assert said.count("oldest waiting entries are dropped") == 1
    assert "%d entries were dropped" % store.dropped_pending in said
    # /run had every one of them (its own cap is far away)
    assert len(stored_lines(str(tmp_path / "rt"), "svc")) == 1000


def test_a_datagram_queued_before_the_daemon_starts_keeps_its_sender(tmp_path):
    """listen=dgram: sockets ask for credentials from the start (SO_PASSCRED), so the
    sink knows who sent a datagram queued before its first start."""
    from schema_init.pid1 import sockets
    path = str(tmp_path / "log")
    held = sockets.Sockets()
    try:
        [sock] = held.for_service("journal", [("unix-dgram", path)], 0o666)
        sender = subprocess.Popen(["logger", "-u", path, "queued early"])
        assert sender.wait(10) == 0
        data, ancdata, _, _ = socket.socket(fileno=os.dup(sock.fileno())).recvmsg(
            4096, socket.CMSG_SPACE(12))
        creds = [struct.unpack("iii", c[2][:12]) for c in ancdata
                 if c[:2] == (socket.SOL_SOCKET, socket.SCM_CREDENTIALS)]
        assert data.endswith(b"queued early") and creds
        assert creds[0][0] == sender.pid
    finally:
        held.release("journal")
