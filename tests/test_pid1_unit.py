"""PID 1's small decisions, as functions (the boots that use them: test_namespace, test_vm)."""

from schema_init import pid1


def test_ro_on_the_kernel_command_line_keeps_the_root_read_only_for_its_check():
    assert pid1.root_read_only_requested(b"BOOT_IMAGE=/vmlinuz root=/dev/vda1 ro quiet\n")
    assert not pid1.root_read_only_requested(b"root=/dev/vda1 rw")
    assert not pid1.root_read_only_requested(b"root=/dev/vda1 ro rw")      # the last wins
    assert pid1.root_read_only_requested(b"rw init=/sbin/schema-init ro")
    assert not pid1.root_read_only_requested(b"")
    assert not pid1.root_read_only_requested(b"rootflags=ro robust=1")     # words, not text
