"""Shared memory: the layout, the generated C header, and a C reader under churn."""

import os
import struct
import subprocess

import pytest

from conftest import ROOT
from harness import Supervised, daemon
from schema_init.pid1 import shm


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
        services = [(b"a", 1, 8, 100, 1, 0), (b"b", 88, 8, 0, 2, 1)]
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
        services = [(b"s%03d" % i, 1, 8, 1000 + i, 1, 0) for i in range(150)]
        pub.publish(services, [])
        with open("/dev/shm" + name, "rb") as f:
            assert shm.read_snapshot(f.read())["services"][-1][0] == "s063"
        with open("/dev/shm" + name + ".ext", "rb") as f:
            data = f.read()
        seq, magic, version, header, entry, count = struct.unpack_from("<6I", data, 0)
        assert (magic, version, header, entry, count) == (shm.EXT_MAGIC, 1, 48, 80, 150)
        assert seq % 2 == 0
        last = data[header + 149 * entry: header + 150 * entry]
        assert last[:4] == b"s149" and struct.unpack_from("<i", last, 68)[0] == 1149
    finally:
        pub.close()


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
