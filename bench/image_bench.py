#!/usr/bin/env python3
"""The Pi Zero W image's read-only root, measured: squashfs (xz, zstd) against EROFS (lz4hc).

For each variant: build/mkimage.sh with IMAGE_ROOTFS / IMAGE_SQUASHFS_COMP into
build/tmp/image/bench-VARIANT.img, then one boot in QEMU raspi0 (tests/pi_image.py) with
two services of the benchmark on the data partition: `readall` times a cold read of the
root's programs and libraries (tar of /usr/bin /usr/sbin /usr/lib to wc), `probe` prints
the settled state and the memory.  Writes bench/REPORT-image.md and
bench/results/image-rootfs.json.  Emulated (TCG): the ratios between variants are the
result, not the seconds.

    .venv/bin/python bench/image_bench.py [VARIANT ...]     (about 4 minutes a variant)
"""

import json
import os
import re
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(TOP, "tests"), TOP]
import pi_image as pi  # noqa: E402

VARIANTS = {
    "squashfs-xz": {"IMAGE_ROOTFS": "squashfs", "IMAGE_SQUASHFS_COMP": "xz"},
    "squashfs-zstd": {"IMAGE_ROOTFS": "squashfs", "IMAGE_SQUASHFS_COMP": "zstd"},
    "erofs-lz4hc": {"IMAGE_ROOTFS": "erofs"},
}
READALL = """# benchmark: a cold read of the root's programs and libraries
exec=/bin/sh
args=-c
args=a=$(cut -d' ' -f1 /proc/uptime); n=$(tar cf - /usr/bin /usr/sbin /usr/lib 2>/dev/null | wc -c); b=$(cut -d' ' -f1 /proc/uptime); echo "=== readall $n bytes from $a to $b ===" > /dev/console
oneshot=1
start_timeout_sec=0
dep=data
"""


def probe_service():
    import test_image
    return test_image.PROBE


def build(name, env):
    out = os.path.join(TOP, "build", "tmp", "image", "bench-%s.img" % name)
    started = time.monotonic()
    result = subprocess.run([os.path.join(TOP, "build", "mkimage.sh"), pi.BOARD],
                            env=dict(os.environ, IMAGE_OUT=out, **env), capture_output=True,
                            text=True, timeout=1800)
    if result.returncode != 0:
        raise SystemExit(result.stderr[-3000:])
    size = int(re.search(r"root \S+ (\d+) B", result.stderr).group(1))
    return out, size, time.monotonic() - started


def boot(image, workdir):
    card = os.path.join(workdir, "card.img")
    subprocess.run(["cp", "--sparse=always", image, card], check=True)
    with open(card, "r+b") as f:
        f.truncate(1024 << 20)
    pi.add_services(card, {"probe.svc": probe_service(), "readall.svc": READALL}, workdir)
    vm = pi.CardVM(os.path.join(workdir, "vm"), card, append="PROBE_POWEROFF=1").start()
    try:
        read = vm.wait_re(r"=== readall (\d+) bytes from ([\d.]+) to ([\d.]+) ===", 1200)
        vm.wait_for("=== end ===", timeout=1200)
        settled = time.monotonic() - vm.started
        text = vm.finish(300)
    finally:
        vm.kill()
    report = text.split("=== status ===", 1)[1]
    memory = {k: int(v) for k, v in re.findall(
        r"(MemTotal|MemAvailable|Rss|Pss|Private_Dirty):\s+(\d+) kB", report)}
    uptime = float(re.search(r"=== uptime ([\d.]+) ===", report).group(1))
    seconds = float(read.group(3)) - float(read.group(2))
    return {"settled_s": round(settled, 1), "guest_uptime_s": uptime,
            "read_bytes": int(read.group(1)), "read_s": round(seconds, 2),
            "read_mib_s": round(int(read.group(1)) / max(seconds, 0.01) / (1 << 20), 2),
            "used_kb": memory["MemTotal"] - memory["MemAvailable"],
            "pid1_rss_kb": memory["Rss"], "pid1_private_dirty_kb": memory["Private_Dirty"]}


def main(names):
    results = {}
    for name in names or list(VARIANTS):
        image, size, build_s = build(name, VARIANTS[name])
        with tempfile.TemporaryDirectory(prefix="image-bench-") as workdir:
            results[name] = dict(boot(image, workdir), root_bytes=size,
                                 build_s=round(build_s))
        print(name, results[name], flush=True)
    os.makedirs(os.path.join(TOP, "bench", "results"), exist_ok=True)
    with open(os.path.join(TOP, "bench", "results", "image-rootfs.json"), "w") as f:
        json.dump(results, f, indent=2, sort_keys=True)
    lines = ["# The Pi Zero W image's root filesystem", "",
             "`.venv/bin/python bench/image_bench.py` (%s): each variant built by "
             "build/mkimage.sh and booted once in QEMU raspi0 (TCG, one shared 2-core host; "
             "compare ratios, not seconds). `readall`: a cold `tar` of /usr/bin, /usr/sbin "
             "and /usr/lib to `wc` after boot." % time.strftime("%Y-%m-%d"), "",
             "| root | size MB | build s | QEMU start -> settled s | guest uptime at settle s "
             "| cold read MiB/s | used kB | PID 1 Rss kB |", "|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        lines.append("| %s | %.1f | %d | %.1f | %.1f | %.2f | %d | %d |" % (
            name, r["root_bytes"] / 1e6, r["build_s"], r["settled_s"], r["guest_uptime_s"],
            r["read_mib_s"], r["used_kb"], r["pid1_rss_kb"]))
    with open(os.path.join(TOP, "bench", "REPORT-image.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1:])
