"""A local user against the journal (docs/security.md, "journal"; docs/spec.md, "The
journal"): who sent an entry is the kernel's word and the sender's cgroup's, never the
entry's (a syslog tag, a native SYSLOG_IDENTIFIER or _SYSTEMD_UNIT, a stream header
naming a service); and one sender's flood stays in its own files, rate limited, so the
entries of a service it names are never rotated out.

The pure parts and the sink's own bookkeeping with a fake /proc first (unit tier); then
a real schema-journald under a real schema-init, the forger and flooder a process of
another uid outside any service (process tier)."""

import io
import json
import os
import socket
import subprocess
import sys
import time

import pytest

from schema_init.journal import journal, journalctl, journald
from test_journal import native, world  # noqa: F401 - world: the fixture

NOBODY = 65534
FORGED_STREAM_HEADER = b"victim\nvictim.service\n6\n0\n0\n0\n0\n"


# --- the fields: a sender's word claims no identity ----------------------------------

def test_a_senders_underscore_fields_never_reach_the_entry():
    forged = {"MESSAGE": "m", "_SYSTEMD_UNIT": "victim.service", "_PID": "1", "_UID": "0",
              "_COMM": "victim", "_EXE": "/usr/sbin/victim", "_CMDLINE": "victim",
              "_SYSTEMD_CGROUP": "/schema-init/victim", "__SEQNUM": "1", "_BOOT_ID": "x"}
    entry = journal.complete(forged, 5, 6, 7, "boot", "host", "journal", pid=50, uid=1000,
                             gid=1000, comm="sh")
    assert entry["_PID"] == "50" and entry["_UID"] == "1000" and entry["_COMM"] == "sh"
    assert entry["__SEQNUM"] == "7" and entry["_BOOT_ID"] == "boot"
    for name in ("_SYSTEMD_UNIT", "_EXE", "_CMDLINE", "_SYSTEMD_CGROUP"):
        assert name not in entry
    assert journal.storage_key(entry) == "+uid-1000"


def test_each_sender_outside_a_service_has_its_own_storage_key():
    assert journal.sender_key("web", 1000) == "web"
    assert journal.sender_key("web.service", 0) == "web"
    assert journal.sender_key("", 0) == journal.UNITLESS
    assert journal.sender_key("", -1) == journal.UNITLESS
    assert journal.sender_key("", 1000) == "+uid-1000"
    assert journal.sender_key("", 1001) != journal.sender_key("", 1000)


def test_rate_limit_suppresses_beyond_the_burst_and_says_so_once_per_window():
    limit = journal.RateLimit(interval=10, burst=3)
    assert [limit.allow("flood", 100 + i * 0.1)[0] for i in range(8)] == [True] * 3 + [False] * 5
    assert limit.allow("victim", 101) == (True, 0)       # another sender's own budget
    assert limit.next_end() == 110
    assert limit.ended(105) == []                        # the window is not over
    assert limit.allow("flood", 110.5) == (True, 5)      # said with the next one, once
    assert limit.allow("flood", 110.6) == (True, 0)
    for _ in range(4):
        limit.allow("flood", 111)
    assert limit.ended(121) == [("flood", 3)] and limit.ended(122) == []
    assert journal.RateLimit(interval=0).allow("x", 0) == (True, 0)
    assert "Suppressed 5 messages from uid 1000 outside any service" in \
        journal.suppressed_fields("+uid-1000", 5)["MESSAGE"]
    assert journal.suppressed_fields("cron", 2)["MESSAGE"] == \
        "Suppressed 2 messages from cron.service"


# --- the sink with a fake /proc -------------------------------------------------------

def fake_proc(tmp_path, pid, cgroup, uids, comm="forger"):
    directory = tmp_path / "proc" / str(pid)
    directory.mkdir(parents=True)
    (directory / "cgroup").write_text(cgroup)
    (directory / "comm").write_text(comm + "\n")
    (directory / "status").write_text("Name:\t%s\nUid:\t%s\nGid:\t0\t0\t0\t0\n"
                                      % (comm, "\t".join(str(u) for u in uids)))
    return str(tmp_path / "proc")


def make_sink(tmp_path, **options):
    chosen = journald.parse_args(["--runtime", str(tmp_path / "rt"), "--storage",
                                  str(tmp_path / "st"), "--service-logs", "none"])
    chosen.update(options)
    boot = tmp_path / "boot_id"
    boot.write_text("b" * 32 + "\n")
    chosen["boot_id_file"] = str(boot)
    return journald.Sink(chosen, [])


def journalctl_json(tmp_path, *args):
    out = io.StringIO()
    assert journalctl.main(["-D", str(tmp_path / "st"), "--runtime", str(tmp_path / "rt"),
                            "-o", "json", *args], out=out) == 0
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_a_sender_outside_any_service_cannot_name_a_victim_unit(tmp_path):
    sink = make_sink(tmp_path)
    sink.senders.proc = fake_proc(tmp_path, 4242, "0::/user.slice/session-1\n",
                                  [1000, 1000, 1000, 1000])
    victim = journald.ServiceLog("/x/victim.log", -1, 1, 0, "victim")
    sink._log_line(victim, b"the victim's real line", 0.0)
    stream = journal.Stream()
    forged = [journal.parse_syslog(b"<13>victim: forged by a tag"),
              journal.parse_syslog(b"<13>1 - host victim 1 - - forged by an app name"),
              journal.parse_native(native((b"MESSAGE", b"forged natively"),
                                          (b"SYSLOG_IDENTIFIER", b"victim"),
                                          (b"_SYSTEMD_UNIT", b"victim.service"),
                                          (b"_PID", b"1")))[0]]
    forged += stream.feed(FORGED_STREAM_HEADER + b"forged by a stream header\n")
    for fields in forged:
        sink._add(fields, "syslog", 4242, 1000, 1000, 1.0)
    sink.wake(0)
    sink.store.flush()
    assert [e["MESSAGE"] for e in journalctl_json(tmp_path, "-u", "victim")] == \
        ["the victim's real line"]
    by_them = journalctl_json(tmp_path, "-t", "victim")
    assert len(by_them) == 5
    for entry in by_them:
        if entry["MESSAGE"].startswith("forged"):
            assert "_SYSTEMD_UNIT" not in entry and entry["_PID"] == "4242"
            assert entry["_UID"] == "1000" and entry["_COMM"] == "forger"
    assert os.path.exists(tmp_path / "rt" / "+uid-1000.jsonl")


def test_a_pid_reused_by_a_service_of_another_uid_lends_it_no_unit(tmp_path):
    """The forger sent as uid 1000 and exited; its pid is now a process of the victim
    (uid 0) when the sink reads /proc: the uids differ, so the entry has no unit."""
    sink = make_sink(tmp_path)
    sink.senders.proc = fake_proc(tmp_path, 77, "0::/schema-init/victim\n", [0, 0, 0, 0],
                                  comm="victim")
    sink._add({"MESSAGE": "forged by a dead pid"}, "journal", 77, 1000, 1000, 1.0)
    sink._add({"MESSAGE": "the victim itself"}, "journal", 77, 0, 0, 1.0)
    sink.wake(0)
    entries = {e["MESSAGE"]: e for e in journalctl_json(tmp_path)}
    assert "_SYSTEMD_UNIT" not in entries["forged by a dead pid"]
    assert entries["the victim itself"]["_SYSTEMD_UNIT"] == "victim.service"


def test_a_flood_rotates_only_the_flooders_own_files_and_is_suppressed(tmp_path):
    sink = make_sink(tmp_path, runtime_max=8192, storage_max=8192, storage_files=1,
                     rate_limit_interval=60.0, rate_limit_burst=200)
    sink.senders.proc = fake_proc(tmp_path, 4242, "0::/\n", [1000] * 4)
    victim = journald.ServiceLog("/x/victim.log", -1, 1, 0, "victim")
    now = time.monotonic()              # the clock wake() reads too
    for n in range(20):
        sink._log_line(victim, b"real %d" % n, now)
    sink._add({"MESSAGE": "root outside a service"}, "journal", 1, 0, 0, now)
    sink.wake(0)
    for n in range(3000):
        sink._add({"MESSAGE": "flood %d " % n + "x" * 200, "SYSLOG_IDENTIFIER": "victim"},
                  "journal", 4242, 1000, 1000, now + n / 1000)
        if n % 100 == 0:
            sink.wake(0)
    sink.wake(0)
    assert journalctl_json(tmp_path, "-t", "schema-journald") == []   # not yet: once
    sink.say_ended_suppressions(now + 61)
    sink.wake(0)
    sink.store.flush()
    assert [e["MESSAGE"] for e in journalctl_json(tmp_path, "-u", "victim")] == \
        ["real %d" % n for n in range(20)]
    assert [e["MESSAGE"] for e in journalctl_json(tmp_path, "-t", "victim")][:20] == \
        ["real %d" % n for n in range(20)]
    assert any(e["MESSAGE"] == "root outside a service" for e in journalctl_json(tmp_path))
    said = [e for e in journalctl_json(tmp_path, "-t", "schema-journald")]
    assert [e["MESSAGE"] for e in said] == \
        ["Suppressed 2800 messages from uid 1000 outside any service"]
    assert said[0]["_TRANSPORT"] == "driver" and "_SYSTEMD_UNIT" not in said[0]
    flood = [e for e in journalctl_json(tmp_path) if e["MESSAGE"].startswith("flood")]
    assert 0 < len(flood) <= 200                       # rotated within its own files


def test_a_stream_header_with_a_unicode_digit_closes_that_stream_not_the_sink(tmp_path):
    """'²'.isdigit() is true and int('²') raises ValueError, which the sink did not catch:
    any local user could end schema-journald with one connection."""
    with pytest.raises(journal.StreamHeaderError):
        journal.Stream().feed("x\n\n\u00b2\n0\n0\n0\n0\nhello\n".encode())
    sink = make_sink(tmp_path)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    theirs.sendall("x\n\n\u00b2\n0\n0\n0\n0\nhello\n".encode())
    ours.setblocking(False)
    sink.streams[ours.fileno()] = journald.StreamConn(ours, 5, 1000, 1000)
    sink._read_stream(ours.fileno(), 1.0)
    assert sink.bad_headers == 1 and sink.streams == {}
    theirs.close()


def test_sink_options_for_the_rate_limit():
    options = journald.parse_args(["--rate-limit-interval", "0", "--rate-limit-burst", "5"])
    assert options["rate_limit_interval"] == 0 and options["rate_limit_burst"] == 5
    assert journald.parse_args([])["rate_limit_burst"] == journal.RATE_BURST
    for bad in (["--rate-limit-interval", "-1"], ["--rate-limit-burst", "0"],
                ["--rate-limit-burst", "\u00b2"], ["--runtime-max", "9" * 5000]):
        with pytest.raises(journald.UsageError):
            journald.parse_args(bad)


# --- a real sink, a real forger of another uid (process tier) --------------------------

FORGER = r"""
import os, socket, struct, sys
devlog, native_path, stdout_path, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
os.setgid(%d); os.setuid(%d)

def send(sock, data, path):
    while True:
        try:
            return sock.sendto(data, path)
        except BlockingIOError:
            pass

d = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
send(d, b"<13>victim: forged by a tag", devlog)
send(d, b"<13>1 - host victim 1 - - forged by an app name", devlog)
send(d, b"MESSAGE=forged natively\nSYSLOG_IDENTIFIER=victim\n_SYSTEMD_UNIT=victim.service\n"
        b"_PID=1\n_UID=0\n", native_path)
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(stdout_path)
s.sendall(b"victim\nvictim.service\n6\n0\n0\n0\n0\nforged by a stream header\n")
s.close()
for n in range(count):
    send(d, b"MESSAGE=flood %%d %%s\nSYSLOG_IDENTIFIER=victim\n_SYSTEMD_UNIT=victim.service\n"
            %% (n, b"x" * 200), native_path)
""" % (NOBODY, NOBODY)


@pytest.mark.process
@pytest.mark.skipif(os.geteuid() != 0, reason="the forger is another uid: needs root")
def test_forger_of_another_uid_neither_names_nor_floods_out_a_service(world):
    w = world({"victim.svc": "exec=/bin/sh\nargs=-c\nargs=for i in $(seq 1 20); do "
                             "echo real $i; done; exec sleep 1000\n"},
              sink_args=["--runtime-max", "16K", "--storage-max", "16K", "--storage-files",
                         "1", "--flush-interval", "0.5", "--rate-limit-interval", "3",
                         "--rate-limit-burst", "300"])
    for path in (w.dir, os.path.dirname(w.native)):
        os.chmod(path, 0o755)                 # the sockets themselves are 0666
    w.wait_for("real 20", "-u", "victim")
    w.send_native((b"MESSAGE", b"root outside a service"), (b"SYSLOG_IDENTIFIER", b"rt"))
    w.wait_for("root outside a service", "-t", "rt")
    def forge(flood):
        forger = subprocess.run([sys.executable, "-c", FORGER, w.devlog, w.native,
                                 w.stdout, str(flood)], capture_output=True, text=True,
                                timeout=60)
        assert forger.returncode == 0, forger.stderr
    forge(0)
    w.wait_for("forged by a stream header", "-t", "victim")
    forged = [e for e in w.json("-t", "victim") if e["MESSAGE"].startswith("forged")]
    assert len(forged) == 4, forged
    for entry in forged:
        assert "_SYSTEMD_UNIT" not in entry and entry["_UID"] == str(NOBODY), entry
        assert entry["_PID"] != "1"
    assert w.journalctl("-o", "cat", "-u", "victim") == ["real %d" % n for n in range(1, 21)]

    forge(3000)                           # a flood naming the victim, rate limited at 300
    w.wait_for("Suppressed", "-t", "schema-journald", timeout=20)
    assert w.journalctl("-o", "cat", "-u", "victim") == ["real %d" % n for n in range(1, 21)]
    said = w.json("-t", "schema-journald")     # once a window (one, unless a slow host)
    assert said and all(e["MESSAGE"].startswith("Suppressed ") and e["MESSAGE"].endswith(
        " messages from uid %d outside any service" % NOBODY) for e in said), said
    assert w.journalctl("-o", "cat", "-t", "rt") == ["root outside a service"]
    # what of the flood was kept is the flooder's, in its own (rotated) files
    theirs = w.json("-t", "victim")
    assert all("_SYSTEMD_UNIT" not in e for e in theirs if not e["MESSAGE"].startswith("real "))
    assert 0 < len([e for e in theirs if e["MESSAGE"].startswith("flood")]) <= 300 * len(said)
    assert journal.sender_key("", NOBODY) + ".jsonl.1" in os.listdir(w.runtime)
