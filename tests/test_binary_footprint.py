"""Build tier: what the static binary loads, and asks the kernel for, at start-up.

- Nuitka's start-up imported `inspect` (and with it ast, dis, enum, re, tokenize, ...) in
  every run, to patch it; build/nuitka-patches/0001-* patches it only once imported.
- Python seeded its string hashes with getrandom() or /dev/urandom; the binary has a fixed
  seed (build/build.sh, --python-flag=no_randomization), so an early boot with no entropy
  and no /dev does not concern it.

The loaded modules come from the binary's test hook: with SCHEMA_INIT_TEST_HOOKS=1,
entry() writes sys.modules to $SCHEMA_INIT_DUMP_MODULES when it returns.
"""

import ctypes
import os
import platform
import re
import shutil
import struct
import subprocess
import time

import pytest

from conftest import EMULATED_TARGET, ROOT

# Under qemu-user (make test-cross) the process the kernel sees is the emulator, which
# seeds itself from getrandom()/urandom before the program's first instruction.
EMULATOR_RANDOM = "the kernel sees qemu-user, which asks for random bytes itself"

pytestmark = pytest.mark.build

BINARY = os.environ.get("SCHEMA_INIT_BIN") or os.path.join(ROOT, "build", "out", "schema-init")
HEAVY = ("inspect", "re", "enum", "ast", "dis", "tokenize")


@pytest.fixture(scope="module")
def binary():
    assert os.path.exists(BINARY), "run `make` first: %s is missing" % BINARY
    return BINARY


def program(name):
    return os.path.join(os.path.dirname(BINARY), name)


def hooked_env(dump):
    # SCHEMA_CTL_PYTHON: the binary's schema-ctl serves requests in C before the
    # interpreter starts (native/ctlfast.c); here the Python client's imports are checked.
    return dict(os.environ, SCHEMA_INIT_TEST_HOOKS="1", SCHEMA_INIT_DUMP_MODULES=str(dump),
                SCHEMA_CTL_PYTHON="1")


def loaded_modules(dump):
    names = dump.read_text().split()
    assert "schema_init" in names, "the hook wrote no module list"
    return names


def heavy(names):
    """The HEAVY modules loaded, but for `enum` where the stdlib's `socket` is loaded: it
    imports enum (for AddressFamily, SocketKind), so schema-ctl and the supervisor have
    it until they use `_socket` directly."""
    allowed = ("enum",) if "socket" in names else ()
    return [name for name in HEAVY if name in names and name not in allowed]


@pytest.fixture
def services(tmp_path):
    path = tmp_path / "services"
    path.mkdir()
    (path / "a.svc").write_text("exec=/bin/sleep\nargs=1000\nstable_secs=0\n")
    (path / "b.svc").write_text("exec=/bin/true\noneshot=1\ndep=a\n")
    return path


@pytest.mark.parametrize("name,args", [
    ("schema-init", ["--version"]),
    ("schema-ctl", ["--version"]),
    ("schema-init", ["--check", "SERVICES"]),
])
def test_a_short_run_loads_none_of_the_heavy_modules(binary, services, tmp_path, name, args):
    dump = tmp_path / "modules"
    args = [str(services) if arg == "SERVICES" else arg for arg in args]
    done = subprocess.run([program(name)] + args, env=hooked_env(dump), capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
    assert heavy(loaded_modules(dump)) == []


def test_the_supervisor_and_schema_ctl_status_load_none_of_the_heavy_modules(binary, services,
                                                                             tmp_path):
    run = tmp_path / "run"
    sock = str(run / "schema-init.sock")
    supervisor_dump = tmp_path / "supervisor-modules"
    ctl_dump = tmp_path / "ctl-modules"
    proc = subprocess.Popen([binary, "--services", str(services), "--run-dir", str(run),
                             "--shm", "/schema-footprint-%d" % os.getpid()],
                            env=hooked_env(supervisor_dump), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        status = ""
        while time.monotonic() < deadline and "PERFECT" not in status:
            time.sleep(0.05)
            status = subprocess.run([program("schema-ctl"), "--socket", sock, "status"],
                                    env=hooked_env(ctl_dump), capture_output=True,
                                    text=True, timeout=30).stdout
        assert "PERFECT" in status
        assert heavy(loaded_modules(ctl_dump)) == []
        subprocess.run([program("schema-ctl"), "--socket", sock, "poweroff"], check=True,
                       capture_output=True, timeout=30)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert heavy(loaded_modules(supervisor_dump)) == [], "after the whole run"


def test_nuitkas_own_start_up_imports_are_gone_and_types_is_patched_once_imported(binary,
                                                                                  tmp_path):
    """build/nuitka-patches/0002: the import bootstrap is taken without the "importlib"
    package (whose __init__ imports "warnings"); 0003: "types" is patched for compiled
    generators only once a program imports it (journalctl does, through re and enum)."""
    short = tmp_path / "short"
    done = subprocess.run([binary, "--version"], env=hooked_env(short), capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
    assert [m for m in ("importlib", "warnings", "types") if m in loaded_modules(short)] == []
    assert "#types.coroutine" not in short.read_text()
    journal = tmp_path / "journalctl"
    done = subprocess.run([program("journalctl"), "--help"], env=hooked_env(journal),
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "types" in loaded_modules(journal)
    # Nuitka's replacement (a builtin), not the stdlib's Python function
    assert "#types.coroutine builtin_function_or_method" in journal.read_text().splitlines()


@pytest.mark.parametrize("name", ["schema-init", "schema-ctl", "schema-journald",
                                  "schema-metrics", "journalctl", "schema-update",
                                  "schema-firstboot", "systemctl", "shutdown", "reboot",
                                  "import-units"])
def test_every_program_of_the_binary_answers_help(binary, tmp_path, name):
    """The binary is built without docstrings (Nuitka's no_docstrings) and without
    textwrap: journalctl, systemctl and schema-update once printed their usage from
    __doc__, and import-units' argparse wrapped its help with textwrap; each ended in a
    traceback.  Each program is the binary under its name, as the .deb links it."""
    link = tmp_path / ("schema-init" if name == "import-units" else name)
    link.symlink_to(binary)
    args = ["import-units", "--help"] if name == "import-units" else ["--help"]
    done = subprocess.run([str(link)] + args, capture_output=True, text=True, timeout=30,
                          env=dict(os.environ, SCHEMA_CTL_PYTHON="1"))
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip(), "no usage printed"


# A seccomp filter making getrandom() fail with EAGAIN, as it does early in a boot before
# the kernel has entropy: (audit arch, getrandom's number) by machine.
SECCOMP_ARCH = {"x86_64": (0xC000003E, 318), "aarch64": (0xC00000B7, 278)}


def getrandom_fails():
    """A preexec_fn: from here on getrandom() fails with EAGAIN (GRND_NONBLOCK's "no
    entropy yet"), for this process and what it executes."""
    arch, number = SECCOMP_ARCH[platform.machine()]
    code = b"".join(struct.pack("=HBBI", *insn) for insn in (
        (0x20, 0, 0, 4),                # A = seccomp_data.arch
        (0x15, 1, 0, arch),             # native? skip the next
        (0x06, 0, 0, 0x7FFF0000),       # other ABI: allow
        (0x20, 0, 0, 0),                # A = seccomp_data.nr
        (0x15, 0, 1, number),           # getrandom? else skip the next
        (0x06, 0, 0, 0x00050000 | 11),  # SECCOMP_RET_ERRNO | EAGAIN
        (0x06, 0, 0, 0x7FFF0000)))      # allow
    buffer = ctypes.create_string_buffer(code)

    class Program(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    prog = Program(len(code) // 8, ctypes.addressof(buffer))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4

    def install():
        if libc.prctl(38, 1, 0, 0, 0) != 0:                            # PR_SET_NO_NEW_PRIVS
            os._exit(90)
        if libc.prctl(22, 2, ctypes.addressof(prog), 0, 0) != 0:       # SECCOMP_MODE_FILTER
            os._exit(91)
    install.keep = (buffer, prog)
    return install


def test_starts_without_random_bytes_from_the_kernel(binary):
    """Early boot: getrandom() has nothing yet and there is no /dev (no /dev/urandom)."""
    if EMULATED_TARGET:
        pytest.skip(EMULATOR_RANDOM)
    if platform.machine() not in SECCOMP_ARCH:
        pytest.skip("no seccomp numbers for %s" % platform.machine())
    if not shutil.which("unshare"):
        pytest.fail("unshare (util-linux) is needed for this test")
    script = "mount -t tmpfs -o size=4k none /dev && test ! -e /dev/urandom && exec %s --version" \
        % binary
    done = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                          preexec_fn=getrandom_fails(), capture_output=True, text=True,
                          timeout=30)
    assert done.returncode not in (90, 91), "could not install the seccomp filter"
    assert done.returncode == 0 and done.stdout.startswith("schema-init "), done.stderr


def test_strace_shows_no_random_bytes_asked_for_at_start_up(binary, tmp_path):
    """The same, seen directly.  What remains is glibc's malloc taking 8 bytes for its
    tcache key with GRND_NONBLOCK, which never waits (and falls back to the clock)."""
    if EMULATED_TARGET:
        pytest.skip(EMULATOR_RANDOM)
    if not shutil.which("strace"):
        pytest.skip("strace is not installed")
    trace = tmp_path / "trace"
    done = subprocess.run(["strace", "-f", "-o", str(trace), "-e", "trace=getrandom,open,openat",
                           binary, "--version"], capture_output=True, text=True, timeout=30)
    if done.returncode != 0 and "Operation not permitted" in done.stderr:
        pytest.skip("ptrace is not permitted here: " + done.stderr.strip())
    assert done.returncode == 0, done.stderr
    calls = trace.read_text().splitlines()
    assert [call for call in calls if re.search(r"/dev/u?random", call)] == []
    getrandom = [call for call in calls if "getrandom(" in call]
    assert [call for call in getrandom if not re.search(r", 8, GRND_NONBLOCK\)", call)] == []
    assert len(getrandom) <= 1
