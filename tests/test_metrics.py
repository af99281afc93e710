"""schema-metrics (schema_init/metrics/): the exposition text from the shared memory, the
file written atomically and only on change, Debian's promtool and node_exporter reading
it, the Grafana dashboard's queries, and the Pi image's switch ([schema-init] metrics)."""

import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.request

import pytest

from conftest import ROOT, program
from harness import daemon
from schema_init.firstboot import firstboot
from schema_init.metrics import metrics

DASHBOARD = os.path.join(ROOT, "distros", "grafana", "schema-init-fleet.json")
METRICS_GATE = os.path.join(ROOT, "distros", "raspberry-pi-zero-w", "lib", "metrics.sh")


def snapshot(**header):
    services = [
        {"name": "sshd", "state": 1, "weight": 8, "child_pid": 40, "restart_count": 1,
         "flags": 0, "spawns": 3, "failures": 2, "state_since_us": 5000000,
         "spawned_us": 4000000, "ready_us": 4500000, "boot_spawned_us": 2000000,
         "boot_ready_us": 2250000, "last_failure": "exited 1"},
        {"name": 'we"ird\\name', "state": 76, "weight": 2, "child_pid": 0,
         "restart_count": 5, "flags": 0, "spawns": 5, "failures": 5, "state_since_us": 0,
         "spawned_us": 0, "ready_us": 0, "boot_spawned_us": 0, "boot_ready_us": 0,
         "last_failure": ""}]
    snap = {"supervisor_pid": 1, "init_start_us": 1500000, "supervisor_start_us": 1600000,
            "ab_slot": 0, "ab_commit": 0, "services": services}
    snap.update(header)
    return snap


def samples(text):
    """{(name, labels text): value} of an exposition text."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name_labels, value = line.rsplit(" ", 1)
            name, _, labels = name_labels.partition("{")
            out[(name, labels.rstrip("}"))] = float(value)
    return out


def test_every_service_state_and_counter_is_a_sample():
    text = metrics.render(snapshot(), {"rss_kb": 10000, "voluntary": 7}, boot_wall=1e9)
    got = samples(text)
    assert got[("schema_init_service_state", 'service="sshd",state="FUNDAMENTAL"')] == 1
    assert got[("schema_init_service_state", 'service="sshd",state="EXCISED"')] == 0
    assert sum(v for (n, labels), v in got.items()
               if n == "schema_init_service_state" and 'service="sshd"' in labels) == 1
    assert got[("schema_init_service_restarts_total", 'service="sshd"')] == 2     # spawns - 1
    assert got[("schema_init_service_failures_total", 'service="sshd"')] == 2
    assert got[("schema_init_service_ready_latency_seconds", 'service="sshd"')] == 0.5
    assert got[("schema_init_service_boot_ready_seconds", 'service="sshd"')] == 0.65
    assert got[("schema_init_service_state_since_timestamp_seconds", 'service="sshd"')] \
        == 1e9 + 5
    assert got[("schema_init_boot_kernel_seconds", "")] == 1.5                 # PID 1
    assert got[("schema_init_supervisor_resident_memory_bytes", "")] == 10000 * 1024
    assert got[("schema_init_supervisor_wakeups_total", "")] == 7
    assert got[("schema_init_ab_info", 'slot="-",commit="-"')] == 1
    # a name with a quote and a backslash is escaped, not broken
    assert got[("schema_init_service_state", 'service="we\\"ird\\\\name",state="EXCISED"')] == 1
    # every metric written is declared once, with a TYPE; counters end in _total
    for name in {n for n, _ in got}:
        kind, _ = metrics.METRICS[name]
        assert text.count("# TYPE %s %s\n" % (name, kind)) == 1
        assert (kind == "counter") == name.endswith("_total")


def test_not_pid1_has_no_kernel_time_and_no_segment_is_up_zero():
    got = samples(metrics.render(snapshot(supervisor_pid=4242), {}, boot_wall=0))
    assert got[("schema_init_boot_kernel_seconds", "")] == 0
    assert samples(metrics.render(None, {}, boot_wall=0)) == {("schema_init_up", ""): 0}


@pytest.mark.process
def test_the_file_is_written_atomically_and_only_when_something_changed(supervise, tmp_path):
    s = supervise({"web.svc": daemon(stable_secs=0), "job.svc": daemon("exit 0", oneshot=1)})
    s.wait_state("web", "FUNDAMENTAL")
    s.wait_state("job", "PERFECT")
    out = tmp_path / "textfile"
    out.mkdir()
    helper = metrics.Helper(s.shm_name, str(out))
    assert helper.step()
    assert os.listdir(out) == ["schema_init.prom"]           # no temporary file left
    got = samples((out / "schema_init.prom").read_text())
    assert got[("schema_init_service_state", 'service="web",state="FUNDAMENTAL"')] == 1
    assert got[("schema_init_service_state", 'service="job",state="PERFECT"')] == 1
    # the instants PID 1 recorded came through the shm: web's state began a moment ago
    assert abs(got[("schema_init_service_state_since_timestamp_seconds", 'service="web"')]
               - time.time()) < 60
    assert 0 <= got[("schema_init_service_ready_latency_seconds", 'service="web"')] < 5
    inode = os.stat(out / "schema_init.prom").st_ino
    assert not helper.step()                                  # idle: nothing rewritten
    assert os.stat(out / "schema_init.prom").st_ino == inode
    s.ctl("stop", "web")
    s.wait_state("web", "EXCISED")
    assert helper.step()                                      # a change: a new file
    assert os.stat(out / "schema_init.prom").st_ino != inode
    got = samples((out / "schema_init.prom").read_text())
    assert got[("schema_init_service_state", 'service="web",state="EXCISED"')] == 1


@pytest.mark.process
def test_the_program_runs_under_its_name_and_removes_its_file_on_sigterm(supervise, tmp_path):
    s = supervise({"web.svc": daemon(stable_secs=0)})
    s.wait_state("web", "FUNDAMENTAL")
    out = tmp_path / "textfile"
    helper = subprocess.Popen([program("schema-metrics"), "--dir", str(out), "--shm",
                               s.shm_name, "--interval", "0.2"])
    try:
        path = out / "schema_init.prom"
        deadline = time.monotonic() + 20
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert 'schema_init_service_state{service="web",state="FUNDAMENTAL"} 1' in \
            path.read_text()
        with open("/proc/%d/status" % helper.pid) as f:
            rss = [line for line in f if line.startswith("VmRSS")]
        print("schema-metrics", rss[0].strip())
    finally:
        helper.terminate()
        assert helper.wait(10) == 0
    assert not path.exists()


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.see
@pytest.mark.process
def test_promtool_and_node_exporter_accept_the_file(supervise, tmp_path):
    """Debian's promtool lints the text; Debian's node_exporter serves it over HTTP."""
    for tool in ("promtool", "prometheus-node-exporter"):
        if shutil.which(tool) is None:
            pytest.skip("%s is not installed (make test-see installs it)" % tool)
    s = supervise({"web.svc": daemon(stable_secs=0), "bad.svc": daemon("exit 3",
                                                                       max_restarts=1)})
    s.wait_state("web", "FUNDAMENTAL")
    # "bad" has died at least once (its failure counted) before the file is written: on
    # a loaded host it may not have been spawned yet when "web" is up
    s.wait_state("bad", ("RECOVERY", "FRICTION", "SETTLED", "DORMANT", "EXCISED"), timeout=30)
    out = tmp_path / "textfile"
    out.mkdir()
    metrics.Helper(s.shm_name, str(out)).step()
    text = (out / "schema_init.prom").read_text()
    lint = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                          text=True, timeout=60)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    port = free_port()
    exporter = subprocess.Popen(["prometheus-node-exporter", "--collector.disable-defaults",
                                 "--collector.textfile",
                                 "--collector.textfile.directory=%s" % out,
                                 "--web.listen-address=127.0.0.1:%d" % port],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline, scraped = time.monotonic() + 30, None
        while scraped is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port,
                                            timeout=5) as reply:
                    scraped = reply.read().decode()
            except OSError:
                time.sleep(0.2)
        assert scraped is not None, exporter.stderr.read1().decode()
    finally:
        exporter.terminate()
        exporter.wait(10)
    assert 'schema_init_service_state{service="web",state="FUNDAMENTAL"} 1' in scraped
    assert re.search(r'^schema_init_service_failures_total\{service="bad"\} [1-9]', scraped, re.M)
    assert re.search(r'^node_textfile_scrape_error 0$', scraped, re.M)
    print("scraped %d schema_init samples" % sum(1 for line in scraped.splitlines()
                                                  if line.startswith("schema_init_")))


PROMQL_WORDS = {"sum", "by", "max", "min", "avg", "count", "rate", "increase", "time",
                "without", "on", "ignoring", "topk", "bottomk", "sort", "sort_desc", "irate",
                "label_replace", "clamp_min", "offset", "and", "or", "unless", "bool",
                "count_over_time", "max_over_time", "changes", "resets", "absent", "vector"}


def test_the_grafana_dashboard_asks_only_for_metrics_the_helper_writes():
    with open(DASHBOARD) as f:
        board = json.load(f)
    exprs = [target["expr"] for panel in board["panels"] for target in panel.get("targets", ())]
    assert len(exprs) >= 6
    for expr in exprs:
        bare = re.sub(r'"[^"]*"', "", re.sub(r"\{[^}]*\}", "", expr))     # labels, strings
        bare = re.sub(r"\[[^\]]*\]", "", bare)                            # ranges
        bare = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", bare)   # label lists
        for word in re.findall(r"[a-zA-Z_][a-zA-Z0-9_]*", bare):
            if word in PROMQL_WORDS or word.startswith("node_"):
                continue
            assert word in metrics.METRICS, (word, expr)
    variables = [v["name"] for v in board.get("templating", {}).get("list", ())]
    assert "instance" in variables


def test_the_first_boot_key_turns_metrics_on_and_off(tmp_path):
    on, errors, _ = firstboot.settings_from_toml(
        "config_version = 1\n[schema-init]\nmetrics = true\n")
    assert errors == [] and on[("schema-init", "metrics")] is True
    board = tmp_path / "etc" / "schema-board"
    board.mkdir(parents=True)
    assert firstboot.apply(on, str(tmp_path)) == []
    assert (board / "metrics-enabled").exists()
    off, errors, _ = firstboot.settings_from_toml(
        "config_version = 1\n[schema-init]\nmetrics = false\n")
    assert firstboot.apply(off, str(tmp_path)) == []
    assert not (board / "metrics-enabled").exists()
    _, errors, _ = firstboot.settings_from_toml(
        "config_version = 1\n[schema-init]\nmetrics = \"yes\"\n")
    assert errors and "metrics" in errors[0]


def test_the_images_gate_adds_the_services_only_when_on(tmp_path):
    """lib/metrics.sh: without the flag nothing is added; with it, both services."""
    asked = tmp_path / "asked"
    ctl = tmp_path / "schema-ctl"
    ctl.write_text("#!/bin/sh\necho \"$@\" >> %s\n" % asked)
    ctl.chmod(0o755)
    env = dict(os.environ, BOARD_DIR=str(tmp_path / "board"), SCHEMA_CTL=str(ctl),
               OPTIONAL_DIR="/opt", TEXTFILE_DIR=str(tmp_path / "textfile"))
    (tmp_path / "board").mkdir()
    off = subprocess.run([METRICS_GATE], env=env, capture_output=True, text=True)
    assert off.returncode == 0 and "off" in off.stdout and not asked.exists()
    (tmp_path / "board" / "metrics-enabled").write_text("on\n")
    on = subprocess.run([METRICS_GATE], env=env, capture_output=True, text=True)
    assert on.returncode == 0, on.stderr
    assert asked.read_text().splitlines() == ["add /opt/schema-metrics.svc",
                                              "add /opt/node-exporter.svc"]
    assert (tmp_path / "textfile").is_dir()
