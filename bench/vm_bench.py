"""PID 1 in a VM: boot time to all-FUNDAMENTAL, PID 1's memory, shutdown data safety.

    python bench/vm_bench.py [--boots 3] [--safety 100] [--out bench/REPORT-vm.md]

Boots build/out/schema-init as PID 1 of Debian's kernel under QEMU TCG (see
tests/vm.py).  "All FUNDAMENTAL" is kernel -> PID 1 plus the latest promotion in
`schema-ctl timing`, as printed by the `report` service of services/qemu.  The safety
run writes data without fsync, powers off, and checks the ext4 image (dumpe2fs state
"clean", the data read back with debugfs) after each of N runs.
"""

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))

import vm as vmlib  # noqa: E402


def services(directory):
    return {n: open(os.path.join(directory, n)).read() for n in os.listdir(directory)}


def boot_once(tmp):
    v = vmlib.VM(tmp, services(os.path.join(ROOT, "services", "qemu")),
                 append="DEMO_POWEROFF=1").start()
    t0 = time.monotonic()
    text = v.finish()
    wall = time.monotonic() - t0
    kernel_to_init = float(re.search(r"kernel \u2192 PID 1:\s+([\d.]+)s", text).group(1))
    timing = text.split("=== schema-ctl timing ===", 1)[1].split("===", 1)[0]
    latest = max(float(x) for x in re.findall(r"^  \S+\s+([\d.]+)s$", timing, re.M))
    memory = dict(re.findall(r"^(VmRSS|RssAnon|RssFile):\s+(\d+) kB", text, re.M))
    return kernel_to_init, kernel_to_init + latest, wall, {k: int(v) for k, v in memory.items()}


def safety(tmp, runs):
    image = os.path.join(tmp, "disk.img")
    vmlib.make_ext4(image)
    files = {
        "modules.svc": services(os.path.join(ROOT, "services", "qemu"))["modules.svc"],
        "data.svc": "exec=/bin/mount\nargs=-t\nargs=ext4\nargs=/dev/vda\nargs=/data\n"
                    "oneshot=1\ndep=modules\n",
        "writer.svc": "exec=/bin/sh\nargs=-c\nargs=echo $TOKEN > /data/token; head -c 4194304 "
                      "/dev/urandom > /data/blob; touch /data/written; exec sleep 100000\n"
                      "dep=data\nready_path=/data/written\n",
        "off.svc": "exec=/sbin/schema-ctl\nargs=poweroff\noneshot=1\ndep=writer\n",
    }
    good = 0
    for i in range(runs):
        token = uuid.uuid4().hex
        run_dir = os.path.join(tmp, "run%d" % i)
        os.makedirs(run_dir)
        v = vmlib.VM(run_dir, files, append="TOKEN=%s" % token, disk=image).start()
        v.finish()
        if vmlib.fs_state(image) == "clean" and \
                vmlib.read_file(image, "/token").strip() == token:
            good += 1
        else:
            print("run %d: state %s" % (i, vmlib.fs_state(image)))
    return good


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--boots", type=int, default=3)
    parser.add_argument("--safety", type=int, default=100)
    parser.add_argument("--out", default=os.path.join(ROOT, "bench", "REPORT-vm.md"))
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="schema-vmbench-")
    results = [boot_once(os.path.join(tmp, "boot%d" % i)) for i in range(args.boots)]
    good = safety(tmp, args.safety)
    init = statistics.median(r[0] for r in results)
    up = statistics.median(r[1] for r in results)
    wall = statistics.median(r[2] for r in results)
    memory = results[-1][3]
    report = """# PID 1 in a VM

Measured by `python bench/vm_bench.py --boots %d --safety %d` on %s (QEMU TCG, Debian
kernel `%s`, 384 MB, initramfs with busybox and services/qemu).

| what | measured (median of %d boots) |
|---|---|
| kernel start -> PID 1 start (`timing`) | %.2f s |
| kernel start -> all services FUNDAMENTAL/PERFECT | %.2f s |
| PID 1 start -> all up | %.2f s |
| QEMU wall time, boot to power-off | %.1f s |
| PID 1 VmRSS / RssAnon / RssFile (all up) | %d KB / %d KB / %d KB |
| shutdown data safety: data present and ext4 clean after poweroff | %d of %d runs |
""" % (args.boots, args.safety, time.strftime("%Y-%m-%d"), os.path.basename(vmlib.kernel()),
       args.boots, init, up, up - init, wall, memory.get("VmRSS", 0), memory.get("RssAnon", 0),
       memory.get("RssFile", 0), good, args.safety)
    with open(args.out, "w") as f:
        f.write(report)
    sys.stdout.write(report)


if __name__ == "__main__":
    main()
