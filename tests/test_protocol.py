"""The control protocol's one definition: verbs, permissions, framing, help text."""

import subprocess

import pytest

from conftest import program
from fakes import FakeOps
from schema_init.core import config, graph, protocol, supervisor
from schema_init.ctl import ctl

SAMPLE_ARGUMENTS = {"<svc>": "a", "[<svc>]": "a", "<path>": "/nonexistent.svc",
                    "[--json|--kv]": "--json", "[--evict]": "--evict", "": "", "[--kv]": "--kv",
                    "<action> <seconds>": "reboot 60", "<svc> <sig>": "a HUP"}


class Ops(FakeOps):
    def load_service_file(self, path):
        return config.parse_service_file(path, None, "No such file or directory")

    def load_directory(self):
        return config.parse_directory("/d", [("a.svc", b"exec=/bin/true\n", None)])


class Host:
    kernel_to_init = 0.5
    supervisor_pid = 1

    def __init__(self):
        self.asked = []
        self.scheduled = None

    def reboot(self):
        self.asked.append("reboot")

    def poweroff(self):
        self.asked.append("poweroff")

    def halt(self):
        self.asked.append("halt")

    def schedule(self, action, seconds, now):
        self.scheduled = (action, now + seconds)

    def cancel(self):
        self.scheduled = None

    def request_reexec(self):
        self.asked.append("reexec")
        return ["ok: re-executing"]

    def reload(self, evict, now, wall):       # the runtime reads in slices; here at once
        self.asked.append("reload")
        return self.sup.cmd_reload(evict, now, wall)


def make():
    specs = [config.ServiceSpec(name="a", exec="/bin/true", stable_secs=0)]
    sup = supervisor.Supervisor(graph.resolve(specs, []), Ops(), 0.0, 1e9, env={})
    sup.settle(0.0)
    host = Host()
    host.sup = sup
    return sup, host


def test_every_verb_and_alias_is_served():
    for verb in protocol.VERBS:
        for word in (verb.name,) + verb.aliases:
            sup, host = make()
            request = ("%s %s" % (word, SAMPLE_ARGUMENTS[verb.args])).strip()
            reply = protocol.dispatch(request, 0, sup, host, 1.0, 1e9)
            assert reply and not reply[0].startswith("err: unknown"), (request, reply)
    assert host.asked == ["reexec"]


def test_only_read_only_verbs_are_open_to_other_users():
    sup, host = make()
    for verb in protocol.VERBS:
        request = ("%s %s" % (verb.name, SAMPLE_ARGUMENTS[verb.args])).strip()
        reply = protocol.dispatch(request, 1000, sup, host, 1.0, 1e9)
        refused = reply[0].startswith("err: '%s' requires root" % request)
        assert refused == (not verb.read_only), (request, reply)
    assert host.asked == []
    assert protocol.READ_ONLY_VERBS == ("status", "list", "timing")


def test_requests_missing_or_adding_arguments_are_unknown():
    sup, host = make()
    for request in ("start", "stop", "add", "pet", "list x", "timing now", "frobnicate"):
        assert protocol.dispatch(request, 0, sup, host, 1.0, 1e9) == \
            ["err: unknown: %s" % request]


def test_framing_round_trip_and_truncation():
    body = protocol.encode_reply(["one", "two"])
    assert body == b"one\ntwo\n.\n"
    assert protocol.decode_reply(body) == ("one\ntwo\n", True)
    assert protocol.decode_reply(b".\n") == ("", True)
    assert protocol.decode_reply(b"one\ntwo\n") == ("one\ntwo\n", False)
    assert protocol.decode_reply(b"a.\n") == ("a.\n", False)     # not a whole line


@pytest.mark.process
def test_schema_ctl_help_is_generated_from_the_verbs():
    result = subprocess.run([program("schema-ctl"), "--help"], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0
    assert result.stdout == protocol.usage() == ctl.USAGE
    for verb in protocol.VERBS:
        assert "  %s" % verb.name in result.stdout


def test_c_header_of_the_client_constants_is_fresh():
    import os
    with open(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           "native", "schema_ctl.h")) as f:
        assert f.read() == protocol.c_header(), \
            "regenerate: python -m schema_init.core.protocol > native/schema_ctl.h"


def test_scheduled_shutdown_is_shown_and_cancelled():
    sup, host = make()
    assert protocol.dispatch("cancel", 0, sup, host, 1.0, 1e9) == ["err: no shutdown is scheduled"]
    assert protocol.dispatch("schedule reboot 300", 0, sup, host, 10.0, 1e9) == \
        ["ok: reboot in 300 s"]
    assert host.scheduled == ("reboot", 310.0)
    status = protocol.dispatch("status", 0, sup, host, 70.0, 1e9)
    assert status[-1] == "shutdown scheduled: reboot in 240 s"
    assert protocol.dispatch("schedule reboot 300", 1000, sup, host, 70.0, 1e9)[0].startswith(
        "err: 'schedule reboot 300' requires root")
    assert protocol.dispatch("cancel", 0, sup, host, 80.0, 1e9) == ["ok: shutdown cancelled"]
    assert "shutdown scheduled" not in protocol.dispatch("status", 0, sup, host, 81.0, 1e9)[-1]
    for bad in ("schedule reboot", "schedule explode 5", "schedule halt -1",
                "schedule halt 99999999999", "schedule poweroff 5 6"):
        assert protocol.dispatch(bad, 0, sup, host, 1.0, 1e9)[0].startswith("err: "), bad
    assert protocol.dispatch("halt", 0, sup, host, 1.0, 1e9) == ["ok: halting"]
    assert host.asked == ["halt"]


def test_signal_reaches_the_main_process_only_and_names_bad_signals():
    sup, host = make()
    pid = sup.services["a"].pid
    assert protocol.dispatch("signal a HUP", 0, sup, host, 1.0, 1e9) == \
        ["ok: SIGHUP \u2192 a (pid %d)" % pid]
    assert protocol.dispatch("signal a sigusr1", 0, sup, host, 1.0, 1e9)[0].startswith("ok: SIGUSR1")
    assert sup.ops.signals == [(pid, 1), (pid, 10)]
    assert protocol.dispatch("signal a BOOM", 0, sup, host, 1.0, 1e9)[0].startswith(
        "err: unknown signal 'BOOM'")
    assert protocol.dispatch("signal nope HUP", 0, sup, host, 1.0, 1e9) == ["err: not found: nope"]
    assert protocol.dispatch("signal a HUP", 1000, sup, host, 1.0, 1e9)[0].startswith("err: 'signal")
