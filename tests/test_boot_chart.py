"""The boot as text and as a picture (schema_init/analyze/): ``timing --kv`` read back,
``blame``, ``critical-chain`` and ``plot`` from a real supervisor's recorded instants, the
SVG parsed and its bars checked against those instants, and a browser's rendering."""

import os
import re
import shutil
import struct
import subprocess
import tempfile
import xml.etree.ElementTree as ET
import zlib

import pytest

from conftest import ROOT
from harness import daemon
from schema_init.analyze import boot, plot

SVG = "{http://www.w3.org/2000/svg}"

TIMING = """kernel_to_init=1.500000
supervisor_start=1.600000
supervisor_pid=1
now=9.000000
service.mount.state=PERFECT
service.mount.kind=oneshot
service.mount.deps=
service.mount.boot_spawned=1.600000
service.mount.boot_ready=1.700000
service.db.state=FUNDAMENTAL
service.db.kind=daemon
service.db.deps=mount
service.db.boot_spawned=1.700000
service.db.boot_ready=2.600000
service.cache.state=FUNDAMENTAL
service.cache.kind=daemon
service.cache.deps=mount
service.cache.boot_spawned=1.700000
service.cache.boot_ready=1.900000
service.web.state=FUNDAMENTAL
service.web.kind=daemon
service.web.deps=backends
service.web.boot_spawned=2.600000
service.web.boot_ready=3.100000
service.broken.state=EXCISED
service.broken.kind=daemon
service.broken.deps=
service.broken.boot_spawned=1.600000
service.broken.since=4.000000
group.backends.members=db cache
"""


def test_blame_orders_by_time_from_spawn_to_ready():
    lines = boot.blame(boot.Timeline.parse(TIMING))
    assert [line.split()[1] for line in lines] == ["db", "web", "cache", "mount", "broken"]
    assert lines[0].split()[0] == "900ms" and "never ready, EXCISED" in lines[-1]


def test_the_critical_chain_follows_the_dependency_ready_last():
    """web waits for the group backends: db (ready at 1.0 s) decided, not cache (0.3 s);
    db waited for mount."""
    lines = boot.critical_chain(boot.Timeline.parse(TIMING))
    chain = [line for line in lines if "@" in line and not line.startswith("The")]
    assert chain == ["web @1.500s +500ms", "\u2514\u2500db @1.000s +900ms",
                     "  \u2514\u2500mount @100ms +100ms"]
    assert "The kernel ran 1.500s before schema-init started." in lines
    assert boot.critical_chain(boot.Timeline.parse(TIMING), "nothing") == \
        ["err: not found: nothing"]


def bars(svg_text):
    """{service: (activating rect, its data-from, data-to)} and the scale and origin."""
    root = ET.fromstring(svg_text)
    scale, origin = float(root.get("data-scale")), float(root.get("data-origin-x"))
    found = {}
    for group in root.iter(SVG + "g"):
        if group.get("class") != "service":
            continue
        rect = next((r for r in group.iter(SVG + "rect") if r.get("class") in
                     ("activating", "failed")), None)
        found[group.get("data-service")] = (group, rect)
    return root, scale, origin, found


def test_the_chart_draws_each_service_at_its_instants():
    timeline = boot.Timeline.parse(TIMING)
    root, scale, origin, found = bars(plot.render(timeline, "test"))
    assert set(found) == {"mount", "db", "cache", "web", "broken"}
    kernel = next(g for g in root.iter(SVG + "g") if g.get("class") == "kernel")
    assert float(kernel.find(SVG + "rect").get("width")) == pytest.approx(1.5 * scale, abs=0.5)
    for name, spawn, ready in (("db", 0.1, 1.0), ("web", 1.0, 1.5), ("mount", 0.0, 0.1)):
        group, rect = found[name]
        assert float(rect.get("x")) == pytest.approx(origin + spawn * scale, abs=0.5)
        assert float(rect.get("width")) == pytest.approx((ready - spawn) * scale, abs=0.5)
    assert found["broken"][1].get("class") == "failed"
    assert found["broken"][1].get("fill") == plot.STATE_COLOURS["EXCISED"]


@pytest.mark.process
def test_a_real_boot_as_blame_chain_and_chart(supervise, tmp_path):
    ready = tmp_path / "db.ready"
    s = supervise({
        "mount.svc": daemon("sleep 0.2", oneshot=1),
        "db.svc": daemon("sleep 0.4", "touch %s" % ready, "exec sleep 1000",
                         ready_path=str(ready), dep="mount"),
        "web.svc": daemon(stable_secs=1, dep="db"),
        "side.svc": daemon(stable_secs=0)})
    s.wait_state("web", "FUNDAMENTAL", timeout=20)
    kv = s.ctl("timing", "--kv")
    assert kv.returncode == 0, kv.stderr
    values = dict(line.split("=", 1) for line in kv.stdout.splitlines())
    origin = float(values["supervisor_start"])

    def at(name, key):
        return float(values["service.%s.%s" % (name, key)]) - origin

    blame = s.ctl("blame").stdout.splitlines()
    assert [line.split()[1] for line in blame][:1] == ["web"]          # 1 s of stable_secs
    chain = s.ctl("critical-chain", "web").stdout
    links = re.findall(r"^[\s\u2514\u2500]*(\w+) @", chain, re.M)
    assert links == ["web", "db", "mount"], chain
    assert s.ctl("critical-chain", "nope").returncode == 1
    result = s.ctl("plot")
    assert result.returncode == 0, result.stderr
    (tmp_path / "boot.svg").write_text(result.stdout)
    root, scale, origin_x, found = bars(result.stdout)
    assert root.get("data-kernel") == "0.000000"              # not PID 1: no kernel bar
    assert set(found) == {"mount", "db", "web", "side"}
    for name in ("mount", "db", "web"):
        group, rect = found[name]
        spawn, ready_at = at(name, "boot_spawned"), at(name, "boot_ready")
        assert float(rect.get("data-from")) == pytest.approx(spawn, abs=1e-5)
        assert float(rect.get("data-to")) == pytest.approx(ready_at, abs=1e-5)
        assert float(rect.get("x")) == pytest.approx(origin_x + spawn * scale, abs=0.5)
        assert float(rect.get("width")) == pytest.approx(max((ready_at - spawn) * scale, 1.5),
                                                         abs=0.5)
    assert at("db", "boot_spawned") >= at("mount", "boot_ready")       # the order it ran
    assert at("web", "boot_spawned") >= at("db", "boot_ready")


def png_pixels(path):
    """(width, height, rows of RGB(A) bytes) of an 8-bit, non-interlaced PNG."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = header
    assert depth == 8 and interlace == 0 and colour in (2, 6)
    bpp = 3 if colour == 2 else 4
    raw, rows, previous = zlib.decompress(idat), [], bytearray(width * bpp)
    stride = width * bpp
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - bpp] if i >= bpp else 0
            up, corner = previous[i], previous[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + left) & 255
            elif kind == 2:
                line[i] = (line[i] + up) & 255
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 255
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc
                                      else corner)) & 255
        rows.append(bytes(line))
        previous = line
    return width, height, bpp, rows


def colour_count(image, hex_colour, tolerance=8):
    width, height, bpp, rows = image
    want = bytes.fromhex(hex_colour.lstrip("#"))
    return sum(1 for row in rows for x in range(0, width * bpp, bpp)
               if all(abs(row[x + k] - want[k]) <= tolerance for k in range(3)))


@pytest.mark.see
def test_a_browser_draws_the_chart(tmp_path):
    """Debian's chromium, headless, renders the SVG: the kernel, starting, up and failed
    colours are on the screenshot in the bars' proportions."""
    browser = shutil.which("chromium")
    if browser is None:
        pytest.skip("chromium is not installed (make test-see installs it)")
    svg = tmp_path / "boot.svg"
    svg.write_text(plot.render(boot.Timeline.parse(TIMING), "schema-init boot: test"))
    shot = tmp_path / "boot.png"
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                        "--disable-quic", "--no-first-run", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync",
                        "--user-data-dir=" + profile, "--screenshot=%s" % shot,
                        "--window-size=1200,400", "file://%s" % svg],
                       capture_output=True, timeout=120)
    assert shot.exists()
    image = png_pixels(str(shot))
    assert image[:2] == (1200, 400)
    scale = (plot.WIDTH - plot.NAMES - plot.RIGHT) / plot.chart_end(boot.Timeline.parse(TIMING))
    starting = colour_count(image, plot.STARTING)
    # db 0.9 s + web 0.5 s + cache 0.2 s of amber bars, 14 px high, and the legend's square
    expected = (0.9 + 0.5 + 0.2) * scale * plot.BAR
    assert expected * 0.8 < starting < expected * 1.2 + 400, (starting, expected)
    assert colour_count(image, plot.KERNEL) > 1.5 * scale * plot.BAR * 0.8
    assert colour_count(image, plot.STATE_COLOURS["EXCISED"]) > 100
    if os.environ.get("BOOT_CHART_KEEP"):
        shutil.copy(shot, os.environ["BOOT_CHART_KEEP"])


def test_the_committed_chart_is_a_real_runs_and_parses():
    path = os.path.join(ROOT, "docs", "boot-chart.svg")
    root, _, _, found = bars(open(path).read())
    assert len(found) >= 4 and root.get("width")


@pytest.mark.process
def test_the_boots_instants_and_counters_survive_a_reexec(supervise):
    """The handover carries them (core/handover.py: origin and times lines): after
    `schema-ctl reexec` the chart still shows the boot, not the re-execution."""
    s = supervise({"web.svc": daemon(stable_secs=0), "bad.svc": daemon("exit 3",
                                                                       max_restarts=1)})
    s.wait_state("web", "FUNDAMENTAL")
    s.wait(lambda: "exited 3" in s.ctl("status").stdout, 10, "bad to fail")

    def kv():
        return dict(line.split("=", 1) for line in s.ctl("timing", "--kv").stdout.splitlines())
    before = kv()
    assert s.ctl("reexec").returncode == 0
    s.wait(lambda: "resumed" in s.console_text(), 20, "the re-executed supervisor")
    after = kv()
    for key in ("supervisor_start", "kernel_to_init", "service.web.boot_spawned",
                "service.web.boot_ready", "service.web.since", "service.bad.boot_spawned"):
        assert after[key] == before[key], key
