"""The A/B slots of a Pi card, as PID 1 sees them (issue 23): which slot runs, the
boot-attempt record, autoboot.txt, and the trial boot's watch.

The card (distros/raspberry-pi-zero-w/board.env): partition 1 the selector (FAT,
``autoboot.txt``), 2 and 3 the boot partitions of slots A and B, 5 and 6 their roots.

* The running slot: ``/proc/device-tree/chosen/bootloader/partition`` (2: A, 3: B) and
  ``tryboot`` where the firmware gives them, else the kernel command line's
  ``root=/dev/mmcblk0p5`` (A) or ``p6`` (B), which each slot's cmdline.txt names.
* The boot-attempt record: two copies of one 512-byte text (``record_text``) in raw
  sectors of the gap before the selector (``AB_RECORD_SECTOR`` and the next), and a
  sector of marks after them, one ``x`` written by the initramfs at each trial boot.  A
  copy whose CRC does not match is skipped, so a write torn by a power cut leaves the
  other copy, old or new.
* autoboot.txt is replaced, never edited: the new text is written to ``autoboot.new``,
  synced, renamed over ``autoboot.txt`` and the directory synced (``write_autoboot``).
  FAT has no atomic rename: a cut in the middle can leave either name, both, or neither
  readable.  What protects the card: (1) autoboot.txt changes only when both slots are
  whole (an install writes the other slot, checks it, and only then switches); (2) both
  texts name bootable slots; (3) without a readable autoboot.txt the firmware boots its
  default, the first FAT partition with start.elf: boot A, always whole after the first
  flash (tests/test_update*.py cut the power during installs and trials).
* The trial (a slot's first boot after an update, ``state=trial`` in the record): PID 1
  asks ``core/trial.py`` for a verdict as services change state and at the verdict's
  recheck time; commit and fail are carried out by a helper (``schema-update commit``,
  ``schema-update fail REASON``: the update room mounts the selector, which PID 1 never
  does), and after a fail PID 1 reboots; the record then sends the card back.

``trial_runtime(Pid1Runtime)`` is PID 1's class with the watch in its hooks; on a
machine without A/B slots it costs a look at two files at boot and nothing after.
"""

import os

from . import _fastloop

DISK = "/dev/mmcblk0"
BOOT_PARTITIONS = {"A": 2, "B": 3}
ROOT_PARTITIONS = {"A": 5, "B": 6}
SLOT_OF_BOOT = {2: "A", 3: "B"}
OTHER = {"A": "B", "B": "A"}
BOOTLOADER_DT = "/proc/device-tree/chosen/bootloader"
BOARD_LIB = "/usr/lib/schema-init-board"
TRIAL_SETTINGS = "/etc/schema-update/trial.conf"
HELPER = "/usr/sbin/schema-update"
RECORD_MAGIC = "schema-ab 1"
HELPER_TIMEOUT = 120.0
# shm codes (core/shmlayout.py AB_SLOTS, AB_COMMITS)
SHM_SLOT = {"A": 1, "B": 2}
SHM_COMMIT = {"trial": 1, "committed": 2}


# --- the running slot -------------------------------------------------------------------

def _read(path, limit=4096):
    try:
        with open(path, "rb") as f:
            return f.read(limit)
    except OSError:
        return None


def running_slot(dt_dir=BOOTLOADER_DT, cmdline=None):
    """(slot "A"/"B" or None, tryboot flag, where it was read: "device-tree",
    "cmdline" or "")."""
    partition, tryboot = _read(os.path.join(dt_dir, "partition")), \
        _read(os.path.join(dt_dir, "tryboot"))
    if partition is not None and len(partition) == 4:
        number = int.from_bytes(partition, "big")
        flag = tryboot is not None and len(tryboot) == 4 and int.from_bytes(tryboot, "big") == 1
        if number in SLOT_OF_BOOT:
            return SLOT_OF_BOOT[number], flag, "device-tree"
    if cmdline is None:
        cmdline = _read("/proc/cmdline", 65536) or b""
    for word in cmdline.split():
        for slot, number in ROOT_PARTITIONS.items():
            if word == b"root=%sp%d" % (DISK.encode(), number):
                return slot, False, "cmdline"
    return None, False, ""


# --- autoboot.txt -----------------------------------------------------------------------

def autoboot_text(default_slot):
    """The selector's autoboot.txt booting DEFAULT_SLOT, and the other on a tryboot."""
    return "[all]\ntryboot_a_b=1\nboot_partition=%d\n[tryboot]\nboot_partition=%d\n" % (
        BOOT_PARTITIONS[default_slot], BOOT_PARTITIONS[OTHER[default_slot]])


def autoboot_default(text):
    """The slot autoboot.txt's [all] section boots (None: unreadable, the default)."""
    section, chosen = "all", None
    for line in text[:512].splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip().lower()
        elif section == "all" and line.replace(" ", "").startswith("boot_partition="):
            value = line.split("=", 1)[1].strip()
            chosen = SLOT_OF_BOOT.get(int(value)) if value.isdigit() else None
    return chosen


def write_autoboot(directory, text):
    """autoboot.txt replaced in DIRECTORY (the mounted selector): autoboot.new written
    and synced, renamed over autoboot.txt, the directory synced."""
    new, final = os.path.join(directory, "autoboot.new"), os.path.join(directory, "autoboot.txt")
    fd = os.open(new, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, text.encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(new, final)
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --- the boot-attempt record ------------------------------------------------------------

def _crc_table():
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0xEDB88320 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC = None


def crc32(data):
    global _CRC
    if _CRC is None:
        _CRC = _crc_table()
    c = 0xFFFFFFFF
    for byte in data:
        c = _CRC[(c ^ byte) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


# the first line's words, in order (the initramfs greps "^state=trial slot=X ")
RECORD_WORDS = ("state", "slot", "from", "mode", "attempts", "version")


def record_text(fields):
    """A record (dict: state, slot, from, mode, attempts, version, reason, since) as its
    512 bytes: words on one line, the reason on the next, a CRC of both."""
    words = " ".join("%s=%s" % (key, str(fields.get(key, "-")).replace(" ", "_") or "-")
                     for key in RECORD_WORDS)
    reason = " ".join(str(fields.get("reason", "")).split())[:300]
    body = "%s\n%s \n" % (RECORD_MAGIC, words) + "since=%s\nreason=%s\n" % (
        fields.get("since", 0), reason)
    raw = body.encode("utf-8", "replace")[:480]
    raw += b"crc=%08x\n" % crc32(raw)
    return raw.ljust(512, b"\0")


def parse_record(raw):
    """The fields of one copy, or None when it is not a whole record."""
    text = raw.split(b"\0", 1)[0]
    body, _, crc = text.rpartition(b"crc=")
    if not body.startswith(RECORD_MAGIC.encode()) or crc.strip() != b"%08x" % crc32(body):
        return None
    lines = body.decode("utf-8", "replace").split("\n")
    fields = dict(word.split("=", 1) for word in lines[1].split() if "=" in word)
    for line in lines[2:]:
        key, eq, value = line.partition("=")
        if eq:
            fields[key] = value
    try:
        fields["attempts"] = int(fields.get("attempts", "1"))
    except ValueError:
        fields["attempts"] = 1
    return fields


def read_record(disk, sector):
    """The record (the first whole copy of the two), or None."""
    try:
        fd = os.open(disk, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        for copy in (0, 1):
            record = parse_record(os.pread(fd, 512, (sector + copy) * 512))
            if record is not None:
                return record
    except OSError:
        return None
    finally:
        os.close(fd)
    return None


def read_marks(disk, sector):
    """How many trial boots the initramfs counted (the marks sector after the record)."""
    try:
        fd = os.open(disk, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return 0
    try:
        return os.pread(fd, 512, (sector + 2) * 512).count(b"x")
    except OSError:
        return 0
    finally:
        os.close(fd)


def write_record(disk, sector, fields, clear_marks=False):
    """Both copies, one after the other, each synced (O_DSYNC); the marks zeroed first
    when asked (a new trial)."""
    data = record_text(fields)
    fd = os.open(disk, os.O_WRONLY | os.O_DSYNC | os.O_CLOEXEC)
    try:
        if clear_marks:
            os.pwrite(fd, b"\0" * 512, (sector + 2) * 512)
        for copy in (0, 1):
            os.pwrite(fd, data, (sector + copy) * 512)
            os.fsync(fd)
    finally:
        os.close(fd)


def record_sector(board_lib=BOARD_LIB):
    raw = _read(os.path.join(board_lib, "ab-record-sector"), 64)
    text = raw.decode("ascii", "replace").strip() if raw else ""
    return int(text) if text.isdigit() else None


# --- the trial's watch in PID 1 ---------------------------------------------------------

class TrialWatch:
    """The slot PID 1 booted, its commit state, and during a trial the verdicts.

    ``state``: "committed", "trial", "failing" (helper running, then reboot),
    "committing" (helper running).  ``last``: the record's word on the last trial."""

    def __init__(self, slot, source, record, sector, disk=DISK, settings_text=""):
        self.slot = slot
        self.source = source
        self.sector = sector
        self.disk = disk
        self.record = record or {}
        self.helper_pid = 0
        self.helper_started = None
        self.helper_action = None
        self.recheck = None
        self.reason = ""
        self.settings = None
        self.settings_text = settings_text
        self.commit_tries = 0
        state = self.record.get("state")
        self.state = "trial" if state == "trial" and self.record.get("slot") == slot \
            else "committed"
        self.last = "%s: %s" % (state, self.record.get("reason", "")) \
            if state in ("failed", "committed") and self.record.get("reason") else ""

    @classmethod
    def at_boot(cls, console, now, dt_dir=BOOTLOADER_DT, cmdline=None, board_lib=BOARD_LIB,
                disk=DISK):
        """The watch for this boot, or None on a machine without A/B slots."""
        slot, tryboot, source = running_slot(dt_dir, cmdline)
        sector = record_sector(board_lib)
        if slot is None or sector is None:
            return None
        record = read_record(disk, sector)
        settings = _read(TRIAL_SETTINGS, 65536) or b""
        for word in (cmdline if cmdline is not None else _read("/proc/cmdline", 65536) or
                     b"").split():
            if word.startswith(b"schema_trial."):        # cmdline.txt's own settings
                settings += b"\n" + word[len(b"schema_trial."):]
        watch = cls(slot, source, record, sector, disk, settings.decode("utf-8", "replace"))
        if record and record.get("state") == "trial" and record.get("slot") != slot:
            # the trial of the other slot ended without a commit: the firmware or the
            # counter brought the card back here (the record's own reason is still the
            # installer's "installed, not booted yet": replaced)
            reason = "the trial boot of slot %s did not commit (a hang, a reset or a " \
                "power cut; %d boot(s) tried): back on slot %s" \
                % (record.get("slot"), read_marks(disk, sector), slot)
            fields = dict(record, state="failed", reason=reason)
            try:
                write_record(disk, sector, fields)
            except OSError:
                pass
            watch.record = fields
            watch.last = "failed: %s" % fields["reason"]
        say = "slot %s (%s%s), %s" % (slot, source, ", tryboot" if tryboot else "",
                                       watch.state)
        if watch.state == "trial":
            say += ", boot %d of %d" % (read_marks(disk, sector), record.get("attempts", 1))
        if watch.last:
            say += "; last trial %s" % watch.last
        console.write("[schema-init] A/B: %s\n" % say)
        return watch

    def shm_values(self):
        return SHM_SLOT.get(self.slot, 0), SHM_COMMIT.get(
            "trial" if self.state != "committed" else "committed", 0)

    def trial_settings(self):
        if self.settings is None:
            from schema_init.core import trial
            self.settings, errors = trial.parse_settings(self.settings_text)
            self.errors = errors
        return self.settings

    def check(self, host, now):
        """During a trial: a verdict from the services' facts; commit or fail by the
        helper.  Returns True when the shm's A/B values changed."""
        if self.state != "trial":
            return self.helper_overdue(host, now)
        from schema_init.core import trial
        settings = self.trial_settings()
        facts = [trial.Fact(s.name, s.state, bool(s.spec.critical), s.failed_runs,
                            s.last_failure, s.state_since)
                 for s in host.supervisor.services.values()]
        verdict = trial.decide(facts, now, settings)
        self.reason = verdict.reason
        self.recheck = verdict.recheck
        if verdict.action == trial.COMMIT:
            self.start_helper(host, "commit", verdict.reason, now)
        elif verdict.action == trial.FAIL:
            host.console.write("[schema-init] A/B: the trial of slot %s failed: %s\n"
                               % (self.slot, verdict.reason))
            self.start_helper(host, "fail", verdict.reason, now)
        return False

    def start_helper(self, host, action, reason, now):
        self.state = "committing" if action == "commit" else "failing"
        self.helper_action = action
        self.helper_started = now
        self.reason = reason
        try:
            self.helper_pid = spawn_helper([HELPER, action, reason])
        except OSError as exc:
            host.console.write("[schema-init] A/B: cannot start %s: %s\n" % (HELPER, exc))
            self.helper_pid = 0
            self.helper_done(host, 127, now)

    def helper_overdue(self, host, now):
        if self.helper_pid and now - self.helper_started > HELPER_TIMEOUT:
            host.console.write("[schema-init] A/B: %s %s took over %d s\n"
                               % (HELPER, self.helper_action, HELPER_TIMEOUT))
            self.helper_pid = 0
            self.helper_done(host, 124, now)
        return False

    def reaped(self, host, pid, now):
        """The helper ended: what it did is read back from the record (a commit is
        done when the record says so)."""
        if not pid or pid != self.helper_pid:
            return False
        self.helper_pid = 0
        record = read_record(self.disk, self.sector) or {}
        done = record.get("state") == "committed" and record.get("slot") == self.slot
        self.helper_done(host, 0 if done else 1, now)
        return True

    def helper_done(self, host, code, now):
        if self.helper_action == "commit":
            if code == 0:
                self.state = "committed"
                self.last = "committed: %s" % self.reason
                host.console.write("[schema-init] A/B: slot %s committed (%s)\n"
                                   % (self.slot, self.reason))
            else:
                self.commit_tries += 1
                self.state = "trial"      # looked at again; never committed, it rolls back
                self.recheck = now + 30.0 if self.commit_tries < 3 else None
                host.console.write("[schema-init] A/B: commit failed (exit %d)\n" % code)
        else:
            self.state = "failing"
            host.console.write("[schema-init] A/B: rebooting into slot %s\n"
                               % OTHER[self.slot])
            host.reboot()
        host.publisher.set_ab(*self.shm_values())
        host.supervisor.changed = True

    def next_deadline(self):
        if self.helper_pid:
            return self.helper_started + HELPER_TIMEOUT
        return self.recheck if self.state == "trial" else None

    def status_facts(self, now):
        """(key, value) pairs for schema-ctl status."""
        facts = [("slot", self.slot), ("commit", "committed" if self.state == "committed"
                                       else "trial")]
        if self.state != "committed":
            settings = self.trial_settings()
            facts.append(("deadline", "%d s after boot (%d s left)" % (
                settings.deadline, max(0, settings.deadline - now))))
            if self.reason:
                facts.append(("trial", self.reason))
        if self.last:
            facts.append(("last_trial", self.last))
        return facts

    def decorate(self, request, lines, now):
        """schema-ctl status, --json, --kv with the A/B facts added."""
        words = request.split()
        if not words or words[0] != "status" or not lines or lines[0].startswith("err:"):
            return lines
        facts = self.status_facts(now)
        if words[1:] == ["--json"]:
            from schema_init.core import protocol
            body = ", ".join("%s: %s" % (protocol.json_string(k), protocol.json_string(v))
                             for k, v in facts)
            return lines[:-2] + [lines[-2] + ",", '  "ab": {%s}' % body, lines[-1]]
        if words[1:] == ["--kv"]:
            return lines + ["ab.%s=%s" % (k, v) for k, v in facts]
        return lines + ["A/B: " + "  ".join("%s=%s" % kv for kv in facts)]


def spawn_helper(argv):
    """ARGV started as PID 1's own child (reaped by ``reaped``), its output on the
    console."""
    pid = os.fork()
    if pid == 0:
        try:
            _fastloop.clear_signal_mask()
            os.setsid()
            os.execv(argv[0], argv)
        finally:
            os._exit(127)
    return pid


def trial_runtime(base):
    """BASE (pid1.Pid1Runtime) with the trial's watch in its hooks."""

    class TrialRuntime(base):
        ab = None

        def setup(self):
            import time
            self.ab = TrialWatch.at_boot(self.console, time.monotonic())
            base.setup(self)
            if self.ab is not None:
                self.publisher.set_ab(*self.ab.shm_values())

        def publish(self):
            if self.ab is not None and self.stopping is None:
                import time
                now = time.monotonic()
                if self.supervisor.changed or (self.ab.next_deadline() or now + 1) <= now:
                    self.guarded(self.ab.check, self, now)
            base.publish(self)

        def next_timeout(self, now):
            timeout = base.next_timeout(self, now)
            deadline = self.ab.next_deadline() if self.ab is not None else None
            if deadline is None:
                return timeout
            wait = max(0.0, deadline - now)
            return wait if timeout is None else min(timeout, wait)

        def reaped_own_child(self, pid, now):
            if self.ab is not None and self.ab.reaped(self, pid, now):
                return True
            return base.reaped_own_child(self, pid, now)

        def handle_request(self, request, uid, now, wall):
            lines = base.handle_request(self, request, uid, now, wall)
            if self.ab is not None and isinstance(lines, list):
                return self.ab.decorate(request, lines, now)
            return lines

    TrialRuntime.__name__ = base.__name__
    return TrialRuntime
