"""Build tier: the single static binary (build/out/schema-init, made by `make`).

The process tier is re-run against the binary by `make test-build` (with
SCHEMA_INIT_BIN set); these tests check the file itself and that it needs nothing
beside it.
"""

import os
import platform
import shutil
import subprocess

import pytest
from elftools.elf.elffile import ELFFile

from conftest import EMULATED_TARGET, ROOT

pytestmark = pytest.mark.build

BINARY = os.environ.get("SCHEMA_INIT_BIN") or os.path.join(ROOT, "build", "out", "schema-init")
# `make test-cross` runs this tier on build/out/TARGET/schema-init under qemu-user
# (binfmt_misc, QEMU_CPU set to the board's CPU) with SCHEMA_INIT_TARGET=TARGET.
TARGET = os.environ.get("SCHEMA_INIT_TARGET") or platform.machine()
MACHINES = {"x86_64": "EM_X86_64", "aarch64": "EM_AARCH64", "armv6l": "EM_ARM",
            "armv7l": "EM_ARM"}


@pytest.fixture(scope="module")
def elf():
    assert os.path.exists(BINARY), "run `make` first: %s is missing" % BINARY
    with open(BINARY, "rb") as f:
        yield ELFFile(f)


def test_binary_is_elf_for_this_machine(elf):
    assert elf.header["e_type"] == "ET_EXEC" or elf.header["e_type"] == "ET_DYN"
    assert elf.header["e_machine"] == MACHINES[TARGET]


def test_binary_passes_the_targets_elf_checks():
    """toolchains/elfcheck.py: machine, class, static; for armv6l nothing newer than
    ARMv6KZ + VFPv2 in any object linked in (libc, libpython, the Cython loop)."""
    import sys
    done = subprocess.run([sys.executable, os.path.join(ROOT, "toolchains", "elfcheck.py"),
                           "--target", TARGET, BINARY], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_binary_is_truly_static(elf):
    kinds = [segment["p_type"] for segment in elf.iter_segments()]
    assert "PT_INTERP" not in kinds
    needed = []
    for section in elf.iter_sections():
        if section.header["sh_type"] == "SHT_DYNAMIC":
            needed += [tag.needed for tag in section.iter_tags() if tag.entry.d_tag == "DT_NEEDED"]
    assert needed == []


def test_links_make_it_a_multi_call_binary():
    out = os.path.dirname(BINARY)
    for name in ("schema-ctl", "schema-subreaper"):
        assert os.path.realpath(os.path.join(out, name)) == os.path.realpath(BINARY)


def test_runs_alone_without_python_on_the_machine(tmp_path):
    """An empty directory, no environment, and every Python library hidden."""
    if not shutil.which("unshare"):
        pytest.fail("unshare (util-linux) is needed for this test")
    hide = [p for p in ("/usr/lib/python3", "/usr/lib/python3.11", "/usr/local/lib/python3.11",
                        "/root/.pyenv", os.path.join(ROOT, ".venv"))
            if os.path.isdir(p)]
    services = tmp_path / "services"
    services.mkdir()
    (services / "a.svc").write_text("exec=/bin/sleep\nargs=1000\nstable_secs=0\n")
    (services / "b.svc").write_text("exec=/bin/true\noneshot=1\ndep=a\n")
    empty = tmp_path / "empty"
    empty.mkdir()
    copy = empty / "schema-init"
    shutil.copy(BINARY, copy)
    os.symlink("schema-init", empty / "schema-ctl")
    script = """
set -e
for d in %(hide)s; do mount -t tmpfs -o ro,size=4k none "$d"; done
test ! -e /usr/lib/python3.11/os.py
cd %(empty)s
env -i ./schema-init --version
env -i ./schema-ctl --version
env -i ./schema-init --check %(services)s
env -i ./schema-init --services %(services)s --run-dir %(run)s --shm /schema-alone-$$ > %(log)s 2>&1 &
pid=$!
i=0; while [ $i -lt 100 ]; do
  env -i ./schema-ctl --socket %(run)s/schema-init.sock status 2>/dev/null | grep -q 'b .*PERFECT' && break
  sleep 0.1; i=$((i+1))
done
env -i ./schema-ctl --socket %(run)s/schema-init.sock status
env -i ./schema-ctl --socket %(run)s/schema-init.sock poweroff
wait $pid
""" % {"hide": " ".join(hide), "empty": empty, "services": services,
       "run": tmp_path / "run", "log": tmp_path / "console.log"}
    result = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "schema-init 0.2.0\nschema-ctl 0.2.0\n" in result.stdout
    assert "b                         pid=0       state=PERFECT" in result.stdout
    assert "ok: powering off" in result.stdout
    assert sorted(os.listdir(empty)) == ["schema-ctl", "schema-init"], "nothing unpacked"


def test_subreaper_forwards_signals_and_returns_the_programs_status(tmp_path):
    if EMULATED_TARGET:
        # qemu-user 7.2 answers prctl(PR_SET_CHILD_SUBREAPER) with EINVAL; the binary
        # says so and exits 1 (checked here), the real thing runs in the cross VM tier.
        done = subprocess.run([os.path.join(os.path.dirname(BINARY), "schema-subreaper"),
                               "/bin/true"], capture_output=True, text=True, timeout=30)
        assert done.returncode == 1 and "PR_SET_CHILD_SUBREAPER" in done.stderr
        pytest.skip("PR_SET_CHILD_SUBREAPER is not emulated by qemu-user")
    sub = os.path.join(os.path.dirname(BINARY), "schema-subreaper")
    done = subprocess.run([sub, "/bin/sh", "-c", "(sleep 0.2; exit 9) & exit 7"],
                          capture_output=True, timeout=30)
    assert done.returncode == 7
    marker = tmp_path / "orphan-done"
    proc = subprocess.Popen([sub, "/bin/sh", "-c",
                             "(trap 'touch %s; exit 0' TERM; sleep 100 & wait) & exec sleep 100"
                             % marker])
    import time
    time.sleep(0.5)
    proc.terminate()
    assert proc.wait(10) == 128 + 15            # the program's own status: killed by SIGTERM
    assert marker.exists(), "the adopted orphan got the forwarded SIGTERM too"
    usage = subprocess.run([sub], capture_output=True, text=True, timeout=30)
    assert usage.returncode == 1 and usage.stderr.startswith("Usage: ")


def test_make_install_lays_out_sbin_links_and_examples(tmp_path):
    binary = ["BINARY=%s" % BINARY] if os.environ.get("SCHEMA_INIT_BIN") else []
    subprocess.run(["make", "-s", "-C", ROOT, "install", "DESTDIR=%s" % tmp_path, "PREFIX=/usr"]
                   + binary, check=True, capture_output=True, timeout=600)
    sbin = tmp_path / "sbin"
    assert (sbin / "schema-init").stat().st_mode & 0o777 == 0o755
    assert os.readlink(sbin / "schema-ctl") == "schema-init"
    assert os.readlink(sbin / "schema-subreaper") == "schema-init"
    examples = tmp_path / "usr" / "share" / "schema-init" / "services"
    assert (examples / "udev.svc").exists()
    assert os.readlink(examples / "motor@1.svc") == "motor@.svc"


def test_a_locale_the_machine_lacks_does_not_stop_the_binary_and_reaches_services(tmp_path):
    """The interpreter aborted at start-up on a LANG naming a missing locale."""
    env = {"LANG": "xx_XX.UTF-8", "PATH": "/usr/bin:/bin"}
    version = subprocess.run([BINARY, "--version"], env=env, capture_output=True, text=True,
                             timeout=30)
    assert version.returncode == 0 and version.stdout.startswith("schema-init ")
    services = tmp_path / "services"
    services.mkdir()
    out = tmp_path / "lang"
    (services / "l.svc").write_text("exec=/bin/sh\nargs=-c\nargs=echo $LANG > %s\noneshot=1\n"
                                    % out)
    proc = subprocess.Popen([BINARY, "--services", str(services), "--run-dir",
                             str(tmp_path / "run"), "--shm", "/schema-lang-%d" % os.getpid()],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        import time
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (out.exists() and out.read_text()):
            time.sleep(0.05)
        assert out.read_text() == "xx_XX.UTF-8\n"
    finally:
        proc.terminate()
        assert proc.wait(20) == 0


def test_schema_ctl_fast_path_answers_as_the_python_client(tmp_path):
    """The binary serves schema-ctl's common case in C (native/ctlfast.c): for every
    outcome its output and exit status are those of the Python client."""
    import socket
    import threading
    from harness import Supervised
    binary_ctl = os.path.join(os.path.dirname(BINARY), "schema-ctl")
    python_env = dict(os.environ, SCHEMA_CTL_PYTHON="1")
    s = Supervised(tmp_path / "sup", {"a.svc": "exec=/bin/sleep\nargs=1000\nstable_secs=0\n"})
    s.start()
    try:
        s.wait_state("a", "FUNDAMENTAL")
        cases = [["status"], ["status", "--kv"], ["list"], ["frobnicate", "x"],
                 ["pet", "nope"], ["--socket=" + s.socket, "list"], ["--help"], []]
        truncated = str(tmp_path / "truncated.sock")
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(truncated)
        server.listen(8)

        def answer_without_terminator():
            for _ in range(2):
                conn, _ = server.accept()
                conn.recv(100)
                conn.sendall(b"ok: fine\n")
                conn.close()
        threading.Thread(target=answer_without_terminator, daemon=True).start()
        for args in cases + [["--socket", truncated, "status"],
                             ["--socket", str(tmp_path / "missing.sock"), "status"]]:
            argv = args if args[:1] and args[0].startswith("--socket") else \
                ["--socket", s.socket] + args
            fast = subprocess.run([binary_ctl] + argv, capture_output=True, timeout=30)
            slow = subprocess.run([binary_ctl] + argv, capture_output=True, timeout=30,
                                  env=python_env)
            assert (fast.returncode, fast.stdout) == (slow.returncode, slow.stdout), args
            assert bool(fast.stderr) == bool(slow.stderr), args
        server.close()
        # and the two really are two paths: only the Python client starts the interpreter
        for env, interpreted in ((dict(os.environ), False), (python_env, True)):
            dump = tmp_path / ("modules-%s" % interpreted)
            env.update(SCHEMA_INIT_TEST_HOOKS="1", SCHEMA_INIT_DUMP_MODULES=str(dump))
            subprocess.run([binary_ctl, "--socket", s.socket, "status"], env=env,
                           capture_output=True, timeout=30)
            assert dump.exists() == interpreted
    finally:
        s.stop()


def test_binary_has_only_importlibs_bootstrap_frozen():
    """build/frozen.py's table, not CPython's deep-freeze: of the modules frozen by CPython
    only the bootstrap is in the binary (and getpath, which CPython runs from C), so
    start-up does not write 0.9 MB of frozen objects (bench/REPORT-floor.md)."""
    import re
    with open(BINARY, "rb") as f:
        frozen = set(re.findall(rb"<frozen ([A-Za-z_.]+)>", f.read()))
    assert frozen == {b"importlib._bootstrap", b"importlib._bootstrap_external",
                      b"getpath"}, sorted(frozen)
