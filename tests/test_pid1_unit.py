"""PID 1's small decisions, as functions (the boots that use them: test_namespace, test_vm)."""

from schema_init.pid1 import machine as pid1


def test_ro_on_the_kernel_command_line_keeps_the_root_read_only_for_its_check():
    assert pid1.root_read_only_requested(b"BOOT_IMAGE=/vmlinuz root=/dev/vda1 ro quiet\n")
    assert not pid1.root_read_only_requested(b"root=/dev/vda1 rw")
    assert not pid1.root_read_only_requested(b"root=/dev/vda1 ro rw")      # the last wins
    assert pid1.root_read_only_requested(b"rw init=/sbin/schema-init ro")
    assert not pid1.root_read_only_requested(b"")
    assert not pid1.root_read_only_requested(b"rootflags=ro robust=1")     # words, not text


def test_services_start_clean_not_with_what_the_initramfs_left():
    inherited = {"PATH": "/sbin:/usr/sbin:/bin:/usr/bin", "TERM": "vt220", "init": "/sbin/init",
                 "rootmnt": "/root", "ROOT": "/dev/vda1", "DEMO_POWEROFF": "1",
                 "BOOT_IMAGE": "/vmlinuz", "HOME": "/", "drop_caps": ""}
    cmdline = b"BOOT_IMAGE=/vmlinuz root=/dev/vda1 ro init=/sbin/schema-init DEMO_POWEROFF=1 " \
              b"SPOOF=2 quiet\n"
    locale = '# written by locale-gen\nLANG="en_GB.UTF-8"\nLC_TIME=C.UTF-8\nLC_BOGUS=x\nPATH=/evil\n'
    env = pid1.services_environment(inherited, cmdline, locale)
    assert env == {"PATH": pid1.supervisor.DEFAULT_PATH, "TERM": "vt220", "LANG": "en_GB.UTF-8",
                   "LC_TIME": "C.UTF-8", "DEMO_POWEROFF": "1"}
    assert pid1.services_environment({}, b"", "")["TERM"] == "linux"


def test_single_user_words_of_the_kernel_command_line():
    for cmdline in (b"root=/dev/vda1 single", b"ro S quiet", b"1", b"emergency",
                    b"systemd.unit=rescue.target"):
        assert pid1.single_user_requested(cmdline), cmdline
    for cmdline in (b"root=/dev/vda1 ro quiet", b"singleuser", b"loglevel=1", b""):
        assert not pid1.single_user_requested(cmdline), cmdline


def test_names_hand_over_to_the_diverted_originals_only_when_pid1_is_not_us(tmp_path, monkeypatch):
    from schema_init import __main__ as entry
    ours, other = tmp_path / "schema-init", tmp_path / "systemd"
    ours.write_text("")
    other.write_text("")
    original = tmp_path / "sbin" / "reboot.distrib"
    original.parent.mkdir()
    original.write_text("#!/bin/sh\n")
    original.chmod(0o755)
    monkeypatch.setattr(entry, "DIVERTED_DIRS", (str(original.parent),))
    monkeypatch.delenv("SCHEMA_CTL_SOCKET", raising=False)
    pid1_link = tmp_path / "pid1-exe"
    pid1_link.symlink_to(other)
    assert entry.diverted_original("reboot", str(pid1_link), str(ours)) == str(original)
    assert entry.diverted_original("halt", str(pid1_link), str(ours)) is None   # none kept
    pid1_link.unlink()
    pid1_link.symlink_to(ours)
    assert entry.diverted_original("reboot", str(pid1_link), str(ours)) is None
    monkeypatch.setenv("SCHEMA_CTL_SOCKET", "/run/x.sock")
    pid1_link.unlink()
    pid1_link.symlink_to(other)
    assert entry.diverted_original("reboot", str(pid1_link), str(ours)) is None
    monkeypatch.delenv("SCHEMA_CTL_SOCKET")
    halt = original.parent / "halt.distrib"
    halt.write_text("#!/bin/sh\n")
    halt.chmod(0o755)
    original.unlink()
    original.symlink_to("halt")            # sysvinit: reboot -> halt, both diverted
    assert entry.diverted_original("reboot", str(pid1_link), str(ours)) == str(halt)
