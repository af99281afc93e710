"""Shared memory: the layout, the generated C header, and a C reader under churn."""

import os
import struct
import subprocess

import pytest

from conftest import ROOT
from harness import Supervised, daemon
from schema_init.core import shmdecode, shmlayout
from schema_init.pid1 import shm


def entry(name, state=1, weight=8, pid=0, restarts=0, flags=0, spawns=0, failures=0,
          since=0, spawned=0, ready=0, boot_spawned=0, boot_ready=0, last_failure=b""):
    """One service's values in EXT_SVC_FIELDS' order (what Supervisor.snapshot gives)."""
    return (name, state, weight, pid, restarts, flags, spawns, failures, since, spawned,
            ready, boot_spawned, boot_ready, last_failure)


def test_compatible_layout_is_the_originals():
    assert shm.SEGMENT_SIZE == 6032
    assert struct.calcsize("<Ii" + "64sBB2xii" * 64 + "i" + "64sB3xi" * 16 + "B3x") == 6032
    assert (shm.SVC_OFFSET, shm.GROUP_COUNT_OFFSET, shm.GROUPS_OFFSET,
            shm.SYSTEM_STATE_OFFSET) == (8, 4872, 4876, 6028)
    assert shm.SVC_SIZE == 76 and shm.GROUP_SIZE == 72


def test_checked_in_header_is_not_stale():
    with open(os.path.join(ROOT, "native/schema_shm.h")) as f:
        assert f.read() == shm.c_header(), "regenerate: python -m schema_init.pid1.shm > native/schema_shm.h"


def test_publisher_writes_even_seq_and_only_when_changed(tmp_path):
    name = "/schema-unit-%d" % os.getpid()
    pub = shm.Publisher(name)
    try:
        services = [entry(b"a", 1, 8, 100, 1, 0), entry(b"b", 88, 8, 0, 2, 1)]
        assert pub.publish(services, [(b"g", 1, 2)])
        with open("/dev/shm" + name, "rb") as f:
            snap = shm.read_snapshot(f.read())
        assert snap["seq"] % 2 == 0 and snap["seq"] > 0
        assert snap["services"] == [("a", 1, 8, 100, 1), ("b", 88, 8, 0, 2)]
        assert snap["groups"] == [("g", 1, 2)] and snap["system_state"] == 0
        assert oct(os.stat("/dev/shm" + name).st_mode & 0o777) == "0o644"
        seq = snap["seq"]
        assert not pub.publish(services, [(b"g", 1, 2)])       # nothing changed: no write
        with open("/dev/shm" + name, "rb") as f:
            assert shm.read_snapshot(f.read())["seq"] == seq
        pub.set_system_state(shm.SYSTEM_POWEROFF)
        with open("/dev/shm" + name, "rb") as f:
            assert shm.read_snapshot(f.read())["system_state"] == 13
    finally:
        pub.close()
    assert not os.path.exists("/dev/shm" + name)


def test_extended_segment_carries_every_service():
    name = "/schema-unit-ext-%d" % os.getpid()
    pub = shm.Publisher(name)
    try:
        services = [entry(b"s%03d" % i, 1, 8, 1000 + i, 1, 0) for i in range(150)]
        pub.publish(services, [])
        with open("/dev/shm" + name, "rb") as f:
            assert shm.read_snapshot(f.read())["services"][-1][0] == "s063"
        with open("/dev/shm" + name + ".ext", "rb") as f:
            data = f.read()
        seq, magic, version, header, size, count = struct.unpack_from("<6I", data, 0)
        assert (magic, version, header, size, count) == (shm.EXT_MAGIC, 2, 64, 256, 150)
        assert seq % 2 == 0
        last = data[header + 149 * size: header + 150 * size]
        assert last[:4] == b"s149" and struct.unpack_from("<i", last, 68)[0] == 1149
    finally:
        pub.close()


def test_the_layout_is_defined_once_in_the_core():
    """pid1/shm.py writes what core/shmlayout.py defines: the same objects, not copies."""
    assert shm.EXT_SVC_FIELDS is shmlayout.EXT_SVC_FIELDS
    assert shm.SVC_FIELDS is shmlayout.SVC_FIELDS and shm.c_header is shmlayout.c_header
    offsets = [(offset, width) for _, _, offset, width in shmlayout.EXT_SVC_FIELDS]
    assert all(a + w <= b for (a, w), (b, _) in zip(offsets, offsets[1:]))   # no overlap
    assert offsets[-1][0] + offsets[-1][1] <= shmlayout.EXT_SVC_SIZE
    assert shmlayout.EXT_SVC_FIELDS[:len(shmlayout.SVC_FIELDS)] == shmlayout.SVC_FIELDS
    for _, ctype, offset, width in shmlayout.EXT_SVC_FIELDS + shmlayout.EXT_HEADER_FIELDS:
        assert ctype == "char" or offset % width == 0           # naturally aligned for C


def test_extended_entries_carry_the_boards_fields_and_decode_back():
    name = "/schema-unit-fields-%d" % os.getpid()
    pub = shm.Publisher(name)
    pub.set_origin(4242, 1.5, 2.25)
    try:
        pub.publish([entry(b"web", 8, 9, 77, 3, 5, spawns=4, failures=2, since=9000001,
                           spawned=8000000, ready=8500000, boot_spawned=3000000,
                           boot_ready=3100000, last_failure=b"exited 1")], [(b"g", 8, 1)])
        with open("/dev/shm" + name + ".ext", "rb") as f:
            snap = shmdecode.decode_ext(f.read())
        (web,) = snap["services"]
        assert web == {"name": "web", "state": 8, "weight": 9, "child_pid": 77,
                       "restart_count": 3, "flags": 5, "spawns": 4, "failures": 2,
                       "state_since_us": 9000001, "spawned_us": 8000000,
                       "ready_us": 8500000, "boot_spawned_us": 3000000,
                       "boot_ready_us": 3100000, "last_failure": "exited 1"}
        assert (snap["supervisor_pid"], snap["init_start_us"], snap["supervisor_start_us"]) \
            == (4242, 1500000, 2250000)
        assert (snap["ab_slot"], snap["ab_commit"]) == (0, 0)         # no A/B slots
        assert snap["groups"] == [{"name": "g", "state": 8, "member_count": 1}]
    finally:
        pub.close()


def test_an_older_writers_segment_decodes_with_the_missing_fields_empty():
    """A version-1 segment (an older schema-init still running under a newer client):
    80-byte entries behind a 48-byte header; the fields it lacks read as 0 or ""."""
    header = struct.pack("<10IB7x", 2, shmlayout.EXT_MAGIC, 1, 48, 80, 1, 72, 0, 48 + 80,
                         48 + 80, 0)
    service = struct.pack("<64sBB2xiiI", b"old", 8, 9, 5, 1, 0)
    snap = shmdecode.decode_ext(header + service)
    (old,) = snap["services"]
    assert (old["name"], old["state"], old["child_pid"], old["restart_count"]) == \
        ("old", 8, 5, 1)
    assert old["spawns"] == 0 and old["last_failure"] == "" and snap["supervisor_pid"] == 0
    assert shmdecode.decode_ext(b"\0" * 64) is None                 # magic 0: re-open


def test_the_seqlock_rule():
    assert shmdecode.seq_consistent(4, 4)
    assert not shmdecode.seq_consistent(5, 5)        # a writer was inside
    assert not shmdecode.seq_consistent(4, 6)        # a write happened during the copy


@pytest.mark.process
def test_c_reader_sees_consistent_snapshots_while_services_churn(tmp_path):
    binary = tmp_path / "shm_reader"
    subprocess.run(["gcc", "-O2", "-Wall", "-Werror", "-I", os.path.join(ROOT, "native"), "-o", str(binary),
                    os.path.join(ROOT, "tests", "c", "shm_reader.c")], check=True)
    files = {"churn%02d.svc" % i: daemon("sleep 0.0%d" % (i % 5 + 1), "exit 1",
                                         max_restarts=1000000) for i in range(12)}
    s = Supervised(tmp_path, files, scale=0.01).start()
    try:
        s.wait(lambda: s.shm()["services"] and len(s.shm()["services"]) == 12, 10, "12 services")
        result = subprocess.run([str(binary), s.shm_name, "3", "12"], capture_output=True,
                                text=True, timeout=30)
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.startswith("snapshots=")
    finally:
        s.stop()


def test_the_reader_follows_a_segment_replaced_by_a_larger_one():
    """analyze/shmread.py keeps its fd; when the writer outgrows the segment (magic 0 in
    the old one, a new file under the name) the next read opens the new one."""
    from schema_init.analyze import shmread
    name = "/schema-unit-reader-%d" % os.getpid()
    pub = shm.Publisher(name)
    reader = shmread.ShmReader(name)
    try:
        assert reader.read() is None                         # nothing published yet
        pub.publish([entry(b"a%d" % i) for i in range(10)], [])
        assert len(reader.read()["services"]) == 10
        pub.publish([entry(b"b%d" % i) for i in range(100)], [])   # capacity 64 -> 128
        snap = reader.read()
        assert len(snap["services"]) == 100 and snap["services"][99]["name"] == "b99"
    finally:
        reader.close()
        pub.close()
