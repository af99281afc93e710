"""systemctl as Debian's maintainer scripts call it (schema_init/systemctl/systemctl.py), run as a
name of the real program against a real supervisor; and when PID 1 claims systemd."""

import os
import subprocess

import pytest

from harness import Supervised, daemon
from schema_init.pid1 import machine as pid1
from test_power import named


def systemctl(tmp_path, s, *args):
    env = dict(os.environ, SCHEMA_CTL_SOCKET=s.socket)
    return subprocess.run([named(tmp_path, "systemctl")] + list(args), capture_output=True,
                          text=True, timeout=30, env=env)


@pytest.mark.process
def test_what_invoke_rc_d_and_deb_systemd_invoke_ask(tmp_path):
    hup = tmp_path / "hup"
    s = Supervised(tmp_path / "sup", {
        "cron.svc": daemon("trap 'echo reloaded >> %s' HUP" % hup,
                           "while :; do sleep 0.1; done", stable_secs=0)})
    s.start()
    try:
        s.wait_state("cron", "FUNDAMENTAL")
        first = s.status()["cron"]["pid"]
        done = systemctl(tmp_path, s, "--quiet", "is-enabled", "cron.service")
        assert done.returncode == 0 and done.stdout == ""
        assert systemctl(tmp_path, s, "is-active", "cron").stdout == "active\n"
        done = systemctl(tmp_path, s, "show", "-p", "MainPID", "--value", "cron.service")
        assert done.stdout == first + "\n"
        done = systemctl(tmp_path, s, "--system", "restart", "cron.service")
        assert done.returncode == 0, done.stderr
        s.wait(lambda: s.status()["cron"]["pid"] not in ("0", first) and
               s.status()["cron"]["state"] == "FUNDAMENTAL", 10, "a new cron")
        assert systemctl(tmp_path, s, "reload", "cron").returncode == 0
        s.wait(lambda: hup.exists() and "reloaded" in hup.read_text(), 5, "SIGHUP")
        assert systemctl(tmp_path, s, "stop", "cron.service").returncode == 0
        s.wait_state("cron", "EXCISED")
        done = systemctl(tmp_path, s, "is-active", "cron.service")
        assert (done.returncode, done.stdout) == (3, "inactive\n")
        assert systemctl(tmp_path, s, "try-restart", "cron.service").returncode == 0
        assert s.status()["cron"]["state"] == "EXCISED", "try-restart starts nothing stopped"
        assert systemctl(tmp_path, s, "start", "cron.service").returncode == 0
        s.wait_state("cron", "FUNDAMENTAL")
        done = systemctl(tmp_path, s, "restart", "nope.service")
        assert done.returncode == 5 and "Unit nope.service not found." in done.stderr
        assert systemctl(tmp_path, s, "is-enabled", "nope").returncode == 1
        assert systemctl(tmp_path, s, "start", "multi-user.target").returncode == 0
        assert systemctl(tmp_path, s, "daemon-reload").returncode == 0
        assert systemctl(tmp_path, s, "enable", "cron").returncode == 0
        assert "cron.service" in systemctl(tmp_path, s, "list-units").stdout
    finally:
        s.stop()


def test_pid1_claims_systemd_only_when_systemctl_is_itself(tmp_path):
    own = tmp_path / "schema-init"
    own.write_text("")
    other = tmp_path / "systemctl-real"
    other.write_text("")
    link = tmp_path / "systemctl"
    assert not pid1.claims_systemd((str(link),), str(own))          # none installed
    os.symlink(other, link)
    assert not pid1.claims_systemd((str(link),), str(own))          # systemd's own
    link.unlink()
    os.symlink(own, link)
    assert pid1.claims_systemd((str(link),), str(own))
