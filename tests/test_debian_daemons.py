"""Real Debian daemons supervised by a real schema-init (not PID 1), run from the Debian
root the Debian VM tier builds (build/mkdebian.sh, cached in build/tmp/debian/root) by
chroot: Debian's rsyslogd takes /dev/log's stand-in from schema-init by socket activation
(LISTEN_FDS), serves it, and nothing sent to it while it restarts is lost."""

import os
import subprocess
import time
import uuid

import pytest

from conftest import ROOT
from harness import Supervised

pytestmark = pytest.mark.debian

DEBIAN_ROOT = os.path.join(ROOT, "build", "tmp", "debian", "root")


@pytest.fixture(scope="module")
def debian_root(tmp_path_factory):
    """The Debian tier's root: made (about a minute, once) if this checkout has none."""
    if not os.path.exists(os.path.join(DEBIAN_ROOT, "usr", "sbin", "rsyslogd")):
        image = tmp_path_factory.mktemp("root") / "debian.img"
        subprocess.run([os.path.join(ROOT, "build", "mkdebian.sh"), str(image)], check=True,
                       timeout=900)
        image.unlink()
    return DEBIAN_ROOT


def logged(path, text, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path):
            with open(path, errors="replace") as f:
                if text in f.read():
                    return True
        time.sleep(0.05)
    return False


def test_rsyslogd_takes_its_socket_from_schema_init_and_loses_nothing_on_restart(
        debian_root, tmp_path):
    tag = uuid.uuid4().hex[:8]
    sock = str(tmp_path / "log")            # a host path: rsyslogd, in the chroot, cannot
    inside = "/tmp/schema-test-%s" % tag     # bind it itself, only take it from LISTEN_FDS
    out = os.path.join(debian_root, inside.lstrip("/") + ".out")
    conf = os.path.join(debian_root, inside.lstrip("/") + ".conf")
    with open(conf, "w") as f:
        f.write('module(load="imuxsock" SysSock.Name="%s")\n'
                '*.* action(type="omfile" file="%s.out")\n' % (sock, inside))
    s = Supervised(tmp_path, {"rsyslog.svc": (
        "exec=/usr/sbin/chroot\nargs=%s\nargs=/usr/sbin/rsyslogd\nargs=-n\nargs=-iNONE\n"
        "args=-f\nargs=%s.conf\nlisten=dgram:%s\nstable_secs=1\n" % (debian_root, inside,
                                                                       sock))})
    try:
        s.start()
        s.wait_state("rsyslog", "FUNDAMENTAL")
        subprocess.run(["logger", "-u", sock, "first %s" % tag], check=True)
        assert logged(out, "first %s" % tag), s.log("rsyslog")
        # stopped: the datagram waits in schema-init's socket; started: it is written
        s.ctl("stop", "rsyslog")
        s.wait_state("rsyslog", ("EXCISED", "PERFECT", "DORMANT"))
        subprocess.run(["logger", "-u", sock, "while down %s" % tag], check=True)
        assert not logged(out, "while down %s" % tag, timeout=0.5)
        s.ctl("start", "rsyslog")
        assert logged(out, "while down %s" % tag), s.log("rsyslog")
    finally:
        s.stop()
        for path in (out, conf):
            if os.path.exists(path):
                os.unlink(path)
