"""The fleet tool's updates (issue 23): a bundle made, published as static files for the
devices to poll, and the fleet's state read back.

    fleet.py bundle [--board rpi-zero-w]      build/mkbundle.sh: the signed bundle of the
                                              image made last (make image)
    fleet.py publish BUNDLE --dir DIR --rollout PERCENT [--keyring CERT]
                                              the bundle checked as a device checks it,
                                              copied to DIR, DIR/manifest.txt written
                                              (renamed over the old one last)
    fleet.py status SOURCE...                 per device: slot, version, commit state and
                                              the last trial, from node_exporter scrapes
                                              (http://HOST:9100/metrics, or saved files)
                                              or, with --ssh, `schema-update status` over
                                              SSH (HOST or USER@HOST)
"""

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import urllib.request

from schema_init.update import bundle as bundlelib
from schema_init.update import rollout

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class RolloutError(Exception):
    pass


def make_bundle(board):
    result = subprocess.run([os.path.join(ROOT, "build", "mkbundle.sh"), board],
                            capture_output=True, text=True)
    if result.returncode:
        raise RolloutError(result.stderr.strip() or "mkbundle.sh failed")
    return result.stdout.strip().splitlines()[-1]


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def publish(bundle_path, directory, percent, keyring):
    """The bundle (checked with the device's own reader) and manifest.txt in DIRECTORY;
    returns the manifest's text."""
    if not 0 <= percent <= 100:
        raise RolloutError("--rollout %d: a percentage 0..100" % percent)
    with tempfile.TemporaryDirectory() as work:
        try:
            checked = bundlelib.Bundle(bundle_path, keyring, work)
        except bundlelib.BundleError as exc:
            raise RolloutError("%s: %s" % (bundle_path, exc)) from None
        version, compatible = checked.version, checked.compatible
        checked.close()
    os.makedirs(directory, exist_ok=True)
    name = os.path.basename(bundle_path)
    target = os.path.join(directory, name)
    if os.path.abspath(target) != os.path.abspath(bundle_path):
        shutil.copyfile(bundle_path, target + ".tmp")
        os.replace(target + ".tmp", target)
    text = rollout.manifest_text(version, name, file_sha256(target), os.path.getsize(target),
                                 percent, compatible)
    manifest = os.path.join(directory, "manifest.txt")
    with open(manifest + ".tmp", "w") as f:
        f.write(text)
    os.replace(manifest + ".tmp", manifest)
    return text


METRIC = re.compile(r'^(schema_update_info|schema_update_last_trial)\{(.*)\}\s+1\s*$')
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_scrape(text):
    """{"slot", "version", "commit", "result", "reason"} from node_exporter's text."""
    found = {}
    for line in text.splitlines():
        match = METRIC.match(line.strip())
        if not match:
            continue
        labels = {k: v.replace('\\"', '"').replace("\\\\", "\\")
                  for k, v in LABEL.findall(match.group(2))}
        if match.group(1) == "schema_update_info":
            found.update(slot=labels.get("slot"), version=labels.get("version"),
                         commit=labels.get("commit"))
        else:
            found.update(result=labels.get("result"), reason=labels.get("reason"),
                         trial_version=labels.get("version"))
    return found


def read_source(source, ssh=False):
    if ssh:
        result = subprocess.run(["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
                                 source, "schema-update", "status"], capture_output=True,
                                text=True, timeout=60)
        if result.returncode:
            return {"error": (result.stderr.strip() or "ssh failed")[:200]}
        lines = result.stdout.splitlines()
        head = re.match(r"slot (\S+) \((committed|on trial)\), version (\S+)", lines[0]) \
            if lines else None
        if not head:
            return {"error": "unexpected reply: %s" % result.stdout[:100]}
        state = {"slot": head.group(1), "version": head.group(3),
                 "commit": "committed" if head.group(2) == "committed" else "trial"}
        for line in lines:
            if line.startswith("record: "):
                words = line.split()
                state.update(result=words[1], reason=line.split(": ", 2)[-1])
        return state
    try:
        if source.startswith(("http://", "https://")):
            with urllib.request.urlopen(source, timeout=20) as reply:
                text = reply.read(4 << 20).decode("utf-8", "replace")
        else:
            with open(source, encoding="utf-8", errors="replace") as f:
                text = f.read()
    except (OSError, ValueError) as exc:
        return {"error": str(exc)[:200]}
    state = parse_scrape(text)
    return state if state else {"error": "no schema_update metrics (metrics = true?)"}


def status(sources, ssh=False):
    """Lines of a table, one device a line, then the counts by version and state."""
    rows, counts = [], {}
    for source in sources:
        state = read_source(source, ssh)
        if "error" in state:
            rows.append("%-32s  error: %s" % (source, state["error"]))
            counts["unreachable"] = counts.get("unreachable", 0) + 1
            continue
        rows.append("%-32s  slot %s  %-20s %-9s last trial: %s%s" % (
            source, state.get("slot", "-"), state.get("version", "-"),
            state.get("commit", "-"), state.get("result", "none"),
            " (%s)" % state["reason"] if state.get("reason") else ""))
        key = "%s %s" % (state.get("version", "-"), state.get("commit", "-"))
        counts[key] = counts.get(key, 0) + 1
    rows.append("")
    rows += ["%4d  %s" % (n, key) for key, n in sorted(counts.items())]
    return rows
