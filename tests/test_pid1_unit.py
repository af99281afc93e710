"""PID 1's small decisions, as functions (the boots that use them: test_namespace, test_vm)."""

from schema_init import pid1


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
