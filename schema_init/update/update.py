"""schema-update, and ``schema-ctl update BUNDLE|URL`` (issue 23).

What it serves is USAGE (a constant, not this docstring: the static binary is built
without docstrings).
"""

import os
import sys
import time

from schema_init.pid1 import slots

from . import install, rollout

USAGE = """\
    schema-update install BUNDLE|URL [--no-reboot]   the other slot written, then a
                                                     reboot into it for one trial boot
    schema-update status                             slot, version, record, autoboot mode
    schema-update poll MANIFEST_URL [--once] [--every SECONDS]
                                                     the fleet's manifest; install when
                                                     this device's bucket is in
    schema-update metrics [--dir DIR]                schema_update.prom for node_exporter
    schema-update identity                           the identity the rollout hashes
    schema-update commit REASON | fail REASON        the trial's end (PID 1 runs these)

Exit status: 0 done, 1 refused or failed (the reason on stderr), 2 usage.
SCHEMA_UPDATE_CARD (a card image instead of /dev/mmcblk0), SCHEMA_UPDATE_SLOT,
SCHEMA_UPDATE_BOARD_LIB, SCHEMA_UPDATE_KEYRING: other places (tests, the host).
"""

TEXTFILE_DIR = "/run/prometheus-node-exporter"
REBOOT = ("/usr/sbin/schema-ctl", "reboot")


def card_path():
    return os.environ.get("SCHEMA_UPDATE_CARD", slots.DISK)


def err(text):
    sys.stderr.write("schema-update: %s\n" % text)
    return 1


def say(text):
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def identity():
    from . import run
    code, out = run.capture([os.path.join(install.BOARD_LIB, "identity.sh"), "serial"])
    serial = out.strip() if code == 0 else ""
    if serial and serial.strip("0"):
        return serial
    try:
        with open("/etc/machine-id") as f:
            return f.read().strip() or "unknown"
    except OSError:
        return "unknown"


def reboot():
    from . import run
    code, out = run.capture(list(REBOOT))
    return code


def cmd_install(args):
    reboot_after = "--no-reboot" not in args
    args = [a for a in args if a != "--no-reboot"]
    if len(args) != 1:
        return usage()
    try:
        target, version, seconds = install.install(args[0], card_path(), say=say)
    except install.InstallError as exc:
        return err("refused: %s" % exc)
    say("update: version %s installed in slot %s in %.1f s" % (version, target, seconds))
    write_metrics(quiet=True)
    if reboot_after:
        say("update: rebooting into slot %s for its trial boot" % target)
        return 0 if reboot() == 0 else err("schema-ctl reboot failed: reboot by hand")
    return 0


def status_lines():
    path = card_path()
    slot = os.environ.get("SCHEMA_UPDATE_SLOT") or slots.running_slot()[0] or "-"
    sector = slots.record_sector(install.BOARD_LIB)
    record = slots.read_record(path, sector) if sector is not None else None
    committed = not (record and record.get("state") == "trial" and record.get("slot") == slot)
    lines = ["slot %s (%s), version %s" % (slot, "committed" if committed else "on trial",
                                            install.board_fact("version", "-")),
             "mode %s, record at sector %s" % (install.board_fact("ab-mode", "counter"),
                                               sector if sector is not None else "-")]
    if record:
        lines.append("record: %s slot %s from %s version %s: %s" % (
            record.get("state"), record.get("slot"), record.get("from"),
            record.get("version"), record.get("reason", "")))
    return slot, committed, record, lines


def write_metrics(directory=None, quiet=False):
    directory = directory or TEXTFILE_DIR
    slot, committed, record, _ = status_lines()
    text = rollout.metrics_text(slot, install.board_fact("version", "-"), committed, record)
    try:
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, "schema_update.prom")
        with open(path + ".tmp", "w") as f:
            f.write(text)
        os.replace(path + ".tmp", path)
    except OSError as exc:
        if not quiet:
            return err("%s: %s" % (directory, exc.strerror))
    return 0


def fetch_text(url, limit=65536):
    if url.startswith("http://"):
        from .bundle import HttpSource
        source = HttpSource(url)
        return source.read(0, min(source.size, limit)).decode("utf-8", "replace")
    with open(url, encoding="utf-8", errors="replace") as f:
        return f.read(limit)


def poll_once(url):
    from .bundle import BundleError
    try:
        manifest = rollout.parse_manifest(fetch_text(url))
    except (OSError, BundleError, rollout.ManifestError) as exc:
        return err("%s: %s" % (url, exc))
    sector = slots.record_sector(install.BOARD_LIB)
    record = slots.read_record(card_path(), sector) if sector is not None else None
    action, why = rollout.decide(manifest, identity(), install.board_fact("version"), record)
    say("update: %s: %s" % (action, why))
    if action != "install":
        return 0
    return cmd_install([rollout.bundle_url(url, manifest["bundle"])])


def cmd_poll(args):
    once = "--once" in args
    every = 3600
    words = [a for a in args if a != "--once"]
    if "--every" in words:
        at = words.index("--every")
        if at + 1 >= len(words) or not words[at + 1].isdigit():
            return usage()
        every = max(60, int(words[at + 1]))
        del words[at:at + 2]
    if len(words) != 1:
        return usage()
    while True:
        code = poll_once(words[0])
        if once:
            return code
        time.sleep(every)


def usage():
    sys.stderr.write(USAGE.split("\n\n")[0] + "\n")
    return 2


def main(argv):
    if not argv or argv[0] in ("-h", "--help"):
        sys.stdout.write(USAGE)
        return 0 if argv else 2
    command, args = argv[0], argv[1:]
    if command == "install":
        return cmd_install(args)
    if command == "status":
        for line in status_lines()[3]:
            say(line)
        return 0
    if command == "metrics":
        directory = args[1] if args[:1] == ["--dir"] and len(args) == 2 else None
        return write_metrics(directory)
    if command == "identity":
        say(identity())
        return 0
    if command == "poll":
        return cmd_poll(args)
    if command in ("commit", "fail") and len(args) >= 1:
        reason = " ".join(args)
        try:
            code = (install.commit if command == "commit" else install.fail)(
                reason, card_path(), say=say)
        except Exception as exc:                  # noqa: B902 - said, with its exit status
            return err("%s: %s" % (command, exc))
        write_metrics(quiet=True)
        return code
    return usage()


def ctl_main(args):
    """``schema-ctl update BUNDLE|URL`` (or any schema-update command)."""
    if len(args) == 1 and args[0] not in ("status", "metrics", "identity", "-h", "--help"):
        return cmd_install(args)
    return main(args)
