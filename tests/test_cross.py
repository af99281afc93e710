"""Cross tier, fast part (issue 10): toolchains/ for aarch64 and armv6l.

The Cython hot loop and the binary's other C files are compiled for aarch64 and armv6l
against each target's own Python 3.11 headers (toolchains/cross_check.sh), checked by
toolchains/elfcheck.py, and a tiny static program runs under qemu-user with the target's
CPU (qemu-arm-static -cpu arm1176 for the Pi Zero).  The armv6l check is shown to fail:
the same sources built with Debian's gnueabihf compiler are refused, and its static
program dies of SIGILL on the ARM1176.

Nothing is installed here: `make cross-deps` installs the Debian packages (Makefile
CROSSDEBS) and fetches the targets' headers into build/tmp/cross/pydev.  Without them the
tests that need them skip, unless `make cross-deps` was run (its stamp
build/tmp/cross/.deps exists): then a missing piece is a failure.  About 15 s.
"""

import ast
import glob
import os
import re
import resource
import shutil
import signal
import struct
import subprocess
import sys

import pytest
from elftools.elf.elffile import ELFFile
from elftools.elf.enums import ENUM_ATTR_TAG_ARM

from conftest import ROOT

sys.path.insert(0, os.path.join(ROOT, "toolchains"))
import elfcheck  # noqa: E402
import targets  # noqa: E402

pytestmark = pytest.mark.cross_fast

STAMP = os.path.join(ROOT, "build", "tmp", "cross", ".deps")
CROSS_CHECK = os.path.join(ROOT, "toolchains", "cross_check.sh")
ELFCHECK = os.path.join(ROOT, "toolchains", "elfcheck.py")
# What people try on a Pi Zero with Debian's armhf compiler: the ARM1176's own flags.
V6_FLAGS_HARD = "-mcpu=arm1176jzf-s -mfpu=vfp -mfloat-abi=hard -marm"
OBJECTS = ("_schema_fastloop.o", "inittab.o", "preinit.o", "ctlfast.o", "powerkey.o")


def _no_core():
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in targets.OVERRIDES}
    env.update(PY=sys.executable, CROSS_OFFLINE="yes")
    env.update(extra)
    return env


def _missing():
    missing = []
    for target in ("aarch64", "armv6l", "armv7l"):
        r = targets.resolve(target, env={})
        for tool in (r["CC"], r["QEMU"]):
            if not shutil.which(tool):
                missing.append(tool)
        if not os.path.exists("/usr/%s/include/stdio.h" % r["GNU_TRIPLET"]):
            missing.append("libc headers of %s" % r["GNU_TRIPLET"])
        if not os.path.isfile(r["PYCONFIG"]):
            missing.append(os.path.relpath(r["PYCONFIG"], ROOT))
    return missing


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    """Every cross_check.sh run of this module, in parallel: {name: (status, output, dir)}."""
    missing = _missing()
    if missing:
        if os.path.exists(STAMP):
            pytest.fail("make cross-deps was run but these are missing: %s" % ", ".join(missing))
        pytest.skip("cross toolchains absent (run make cross-deps): %s" % ", ".join(missing))
    base = tmp_path_factory.mktemp("cross")
    runs = {
        "aarch64": ("aarch64", {}),
        "armv6l": ("armv6l", {}),
        # Debian armhf as it comes (ARMv7-A, Thumb-2, hard-float) ...
        "armv7l": ("armv7l", {}),
        # ... and with the ARM1176's flags: our objects are then ARMv6, not its libc.
        "hf-v6flags": ("armv7l", {"CROSS_CFLAGS": V6_FLAGS_HARD}),
        # The hf compiler given armel's exact flags does not even compile.
        "hf-armel-flags": ("armv6l", {"CROSS_COMPILE": "arm-linux-gnueabihf-"}),
        # The host's Python headers put first: cross_check.sh must notice.
        "host-headers": ("aarch64", {"CROSS_CFLAGS": "-march=armv8-a -I/usr/include/python3.11"}),
    }
    procs = {}
    for name, (target, extra) in runs.items():
        out = base / name
        procs[name] = subprocess.Popen(
            [CROSS_CHECK, target], env=_env(CROSS_OUT=str(out), **extra),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=str(base),
            preexec_fn=_no_core)
    results = {}
    for name, proc in procs.items():
        output, _ = proc.communicate(timeout=300)
        results[name] = (proc.returncode, output, base / name)
    return results


def _elfcheck_cli(target, *paths):
    return subprocess.run([sys.executable, ELFCHECK, "--target", target] + [str(p) for p in paths],
                          capture_output=True, text=True, timeout=60)


def _facts(path, target):
    ((_, problems, facts),) = elfcheck.check_file(str(path), target)
    return problems, facts


def test_aarch64_loop_compiles_passes_elfcheck_and_runs_on_cortex_a53(builds):
    status, output, out = builds["aarch64"]
    assert status == 0, output
    assert "under qemu-aarch64-static -cpu cortex-a53" in output
    assert "machine=aarch64" in output and "probe: ok" in output
    for name in OBJECTS:
        problems, facts = _facts(out / name, "aarch64")
        assert problems == [] and facts[0] == "EM_AARCH64 ELF64 ET_REL"
    problems, facts = _facts(out / "probe", "aarch64")
    assert problems == [] and "static" in facts


def test_armv6l_loop_is_armv6_clean_and_runs_on_arm1176(builds):
    status, output, out = builds["armv6l"]
    assert status == 0, output
    assert "under qemu-arm-static -cpu arm1176" in output
    assert "machine=armv6l" in output and "platform=v6l" in output
    assert "sizeof_long=4 sizeof_void_p=4" in output and "probe: ok" in output
    for name in OBJECTS + ("probe",):
        problems, facts = _facts(out / name, "armv6l")
        assert problems == [], (name, problems)
        assert "Tag_CPU_arch=v6KZ" in facts and "EABI5" in facts
        assert "Thumb-1" in facts and "args=base (soft-float)" in facts
    # The target's own pyconfig.h, not the host's (cross_check.sh checks every header).
    deps = (out / "_schema_fastloop.o.d").read_text()
    assert "pydev/armel/root/usr/include/arm-linux-gnueabi/python3.11/pyconfig.h" in deps
    assert not re.search(r"(^|\s)/usr/include/", deps)


def test_armv6l_check_refuses_what_gnueabihf_builds(builds):
    for name in ("armv7l", "hf-v6flags"):
        status, output, _ = builds[name]
        assert status == 0, output            # good armv7l builds: they run on a Cortex-A7
    v7 = builds["armv7l"][2]
    hf = builds["hf-v6flags"][2]

    # Debian armhf's defaults: ARMv7, Thumb-2, VFPv3-D16, hard-float.
    refused = _elfcheck_cli("armv6l", v7 / "_schema_fastloop.o")
    assert refused.returncode == 1, refused.stdout
    for reason in ("Tag_CPU_arch v7 (10)", "Thumb-2", "VFPv3-D16", "Tag_ABI_VFP_args"):
        assert reason in refused.stdout
    # With -mcpu=arm1176jzf-s the object is ARMv6 code, but of the hard-float ABI that
    # armel's libc and libpython do not speak ...
    refused = _elfcheck_cli("armv6l", hf / "_schema_fastloop.o")
    assert refused.returncode == 1 and "Tag_ABI_VFP_args VFP registers" in refused.stdout
    assert "Tag_CPU_arch=v6KZ" in refused.stdout
    # ... and linked, armhf's crt files and libc.a make the program ARMv7 / Thumb-2.
    refused = _elfcheck_cli("armv6l", hf / "probe")
    assert refused.returncode == 1
    assert "Tag_CPU_arch v7 (10)" in refused.stdout and "Thumb-2" in refused.stdout
    assert "hard-float ABI (e_flags 0x05000400)" in refused.stdout
    # The same files pass as what they are: the refusal is about the Pi Zero.
    assert _elfcheck_cli("armv7l", v7 / "_schema_fastloop.o", hf / "probe").returncode == 0


def test_gnueabihf_program_dies_of_sigill_on_arm1176(builds):
    hf_probe = builds["hf-v6flags"][2] / "probe"
    v6_probe = builds["armv6l"][2] / "probe"
    died = subprocess.run(["qemu-arm-static", "-cpu", "arm1176", str(hf_probe)],
                          capture_output=True, text=True, timeout=60, preexec_fn=_no_core,
                          cwd=str(hf_probe.parent))
    assert died.returncode in (-signal.SIGILL, 128 + signal.SIGILL), died
    assert "probe: ok" not in died.stdout
    ran = subprocess.run(["qemu-arm-static", "-cpu", "cortex-a7", str(hf_probe)],
                         capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0 and "machine=armv7l" in ran.stdout
    ran = subprocess.run(["qemu-arm-static", "-cpu", "arm1176", str(v6_probe)],
                         capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0 and "machine=armv6l" in ran.stdout


def test_gnueabihf_compiler_cannot_take_armel_flags(builds):
    status, output, _ = builds["hf-armel-flags"]
    assert status == 1
    assert "gnu/stubs-soft.h" in output       # armhf's libc has no soft-float ABI
    assert "arm-linux-gnueabihf-gcc could not compile" in output


def test_host_python_headers_are_noticed(builds):
    status, output, _ = builds["host-headers"]
    assert status == 1
    assert "FAIL: Python headers not from " in output
    assert "/usr/include/python3.11/Python.h" in output


def _patched(src, dst, offset, data):
    blob = bytearray(src.read_bytes())
    blob[offset:offset + len(data)] = data
    dst.write_bytes(bytes(blob))
    return dst


def test_each_armv6l_check_can_fail(builds, tmp_path):
    probe = builds["armv6l"][2] / "probe"
    with open(probe, "rb") as f:
        elf = ELFFile(f)
        section = elf.get_section_by_name(".ARM.attributes")
        base, data = section["sh_offset"], section.data()
        flags = elf.header["e_flags"]
    assert flags == 0x05000200
    # gcc's order: Tag_CPU_arch=v6KZ, Tag_ARM_ISA_use=1, Tag_THUMB_ISA_use=1, Tag_FP_arch=VFPv2
    at = base + data.index(bytes([6, 7, 8, 1, 9, 1, 10, 2]))
    e_flags = 0x24                                      # ELF32 header
    cases = {
        "EABI version 4": (e_flags, struct.pack("<I", 0x04000200)),
        "hard-float ABI": (e_flags, struct.pack("<I", 0x05000400)),
        "Tag_CPU_arch v7 (10)": (at + 1, bytes([10])),
        "Tag_CPU_arch v6T2 (8)": (at + 1, bytes([8])),
        "Tag_THUMB_ISA_use Thumb-2": (at + 5, bytes([2])),
        "Tag_FP_arch VFPv3 (3)": (at + 7, bytes([3])),
    }
    for i, (reason, (offset, patch)) in enumerate(cases.items()):
        bad = _patched(probe, tmp_path / ("bad%d" % i), offset, patch)
        result = _elfcheck_cli("armv6l", bad)
        assert result.returncode == 1 and reason in result.stdout, (reason, result.stdout)
    # v6K (9) is a subset of the ARM1176's v6KZ: accepted.
    ok = _patched(probe, tmp_path / "v6k", at + 1, bytes([9]))
    assert _elfcheck_cli("armv6l", ok).returncode == 0
    # Machine and static checks.
    wrong = _elfcheck_cli("aarch64", probe)
    assert wrong.returncode == 1 and "machine EM_ARM, not EM_AARCH64" in wrong.stdout
    dynamic = _elfcheck_cli("x86_64", os.path.realpath(shutil.which("sh")))
    assert dynamic.returncode == 1 and "not static: PT_INTERP" in dynamic.stdout


def _pyelftools_file_attributes(path):
    names = {v: k for k, v in ENUM_ATTR_TAG_ARM.items()}
    with open(path, "rb") as f:
        section = ELFFile(f).get_section_by_name(".ARM.attributes")
        result = {}
        for sub in section.iter_subsections("aeabi"):
            for subsub in sub.iter_subsubsections():
                if subsub.header.tag != "TAG_FILE":
                    continue
                for attribute in subsub.iter_attributes():
                    tag = ENUM_ATTR_TAG_ARM[attribute.tag]
                    assert names[tag] == attribute.tag
                    result[tag] = attribute.value
        return result


def test_attribute_parser_agrees_with_pyelftools_and_readelf(builds):
    paths = [builds["armv6l"][2] / "_schema_fastloop.o", builds["armv6l"][2] / "probe",
             builds["armv7l"][2] / "_schema_fastloop.o", builds["hf-v6flags"][2] / "probe"]
    for path in paths:
        with open(path, "rb") as f:
            ours = elfcheck.arm_facts(ELFFile(f))
        assert ours == _pyelftools_file_attributes(path), path
        shown = subprocess.run(["arm-linux-gnueabi-readelf", "-A", str(path)],
                               capture_output=True, text=True, check=True).stdout
        arch = re.search(r"^\s*Tag_CPU_arch: (\S+)$", shown, re.M).group(1)
        assert arch == elfcheck.CPU_ARCH_NAMES[ours[6]], path


def test_debian_armel_libpython_is_armv6_clean(builds):
    """The static libpython the whole armv6l binary will link (toolchains/README.md)."""
    r = targets.resolve("armv6l", env={})
    archive = os.path.join(r["PY_LIBPL"], "libpython3.11-pic.a")
    results = elfcheck.check_file(archive, "armv6l")
    assert len(results) > 100
    assert [name for name, problems, _ in results if problems] == []
    assert {f for _, _, facts in results for f in facts if f.startswith("Tag_CPU_arch=")} == {
        "Tag_CPU_arch=v5TE"}


def test_buildroot_variables_choose_compiler_sysroot_and_headers():
    env = {"BR2_ARCH": "arm", "TARGET_CROSS": "/br/host/bin/arm-buildroot-linux-gnueabi-",
           "STAGING_DIR": "/br/staging", "HOST_DIR": "/br/host", "CROSS_COMPILE": "ignored-"}
    r = targets.resolve(None, env=env)
    assert r["TARGET"] == "armv6l"
    assert r["CC"] == "/br/host/bin/arm-buildroot-linux-gnueabi-gcc"
    assert r["SYSROOT_FLAG"] == "--sysroot=/br/staging"
    assert r["PY_INCLUDES"] == "-I/br/staging/usr/include/python3.11"
    assert r["PYCONFIG"] == "/br/staging/usr/include/python3.11/pyconfig.h"
    assert r["PY_LIBPL"] == "/br/staging/usr/lib" and r["TOOL_PATH"] == "/br/host/bin"
    assert r["ARCH_CFLAGS"] == "-mcpu=arm1176jzf-s -mfpu=vfp -mfloat-abi=softfp -marm"
    assert targets.resolve("aarch64", env={"CROSS_COMPILE": "x-"})["CC"] == "x-gcc"
    assert targets.resolve("aarch64", env={})["CC"] == "aarch64-linux-gnu-gcc"
    with pytest.raises(targets.RecipeError):
        targets.resolve("armv6l", env={"BR2_ARCH": "aarch64"})
    with pytest.raises(targets.RecipeError):
        targets.resolve(None, env={})


def test_recipes_are_sh_data_and_the_makefile_installs_their_compilers():
    for name in targets.names():
        path = os.path.join(ROOT, "toolchains", name + ".env")
        values = targets.recipe(name)
        shown = subprocess.run(
            ["sh", "-c", '. "$1" && for v in %s; do eval "printf \'%%s\\n\' \\"\\$$v\\""; done'
             % " ".join(sorted(values)), "sh", path],
            capture_output=True, text=True, check=True).stdout.splitlines()
        assert shown == [values[k] for k in sorted(values)], name
    makefile = open(os.path.join(ROOT, "Makefile")).read().replace("\\\n", " ")
    crossdebs = re.search(r"^CROSSDEBS\s*:=(.*)$", makefile, re.M).group(1).split()
    foreign = [t for t in targets.names() if t != "x86_64"]
    assert set(targets.debs(foreign)) | {"qemu-user-static"} <= set(crossdebs)
    assert re.search(r"^cross-deps:", makefile, re.M)


def test_compiled_code_does_not_read_host_folded_sys_constants():
    """Nuitka folds sys.maxsize to the build host's value (HardImportRegistry trusts it):
    on armv6l, built on x86_64, it would be 2**63 - 1 instead of 2**31 - 1.  Only
    schema_init is compiled to C (the standard library is embedded as bytecode), so
    schema_init must not read it (toolchains/README.md, "Next: the whole binary")."""
    uses = []
    for path in sorted(glob.glob(os.path.join(ROOT, "schema_init", "*.py"))):
        tree = ast.parse(open(path).read(), path)
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and node.attr == "maxsize"
                    and isinstance(node.value, ast.Name) and node.value.id == "sys"):
                uses.append("%s:%d" % (os.path.basename(path), node.lineno))
            if isinstance(node, ast.ImportFrom) and node.module == "sys":
                uses += ["%s:%d" % (os.path.basename(path), node.lineno)
                         for alias in node.names if alias.name == "maxsize"]
    assert uses == []


UTMP_PROBE = r"""
#include <stdio.h>
#include <string.h>
#include <utmp.h>
int main(int argc, char **argv) {
    struct utmp u;
    if (argc > 1) {                          /* read one record from stdin, print it */
        if (fread(&u, sizeof u, 1, stdin) != 1) return 2;
        printf("%d %d %s %s %lld %lld\n", u.ut_type, u.ut_pid, u.ut_line, u.ut_user,
               (long long)u.ut_tv.tv_sec, (long long)u.ut_tv.tv_usec);
        return 0;
    }
    memset(&u, 0, sizeof u);                 /* write a known record to stdout */
    u.ut_type = BOOT_TIME; u.ut_pid = 1234; u.ut_session = 77;
    strcpy(u.ut_line, "~"); strcpy(u.ut_user, "reboot"); strcpy(u.ut_host, "h");
    u.ut_tv.tv_sec = 1700000000; u.ut_tv.tv_usec = 5;
    fwrite(&u, sizeof u, 1, stdout);
    return 0;
}
"""


@pytest.mark.parametrize("target", ["x86_64", "aarch64", "armv6l"])
def test_utmp_layout_is_the_c_librarys_of_each_target(tmp_path, target):
    """schema_init.lib.utmp packs and reads struct utmp as glibc does on each board (400
    bytes on aarch64, 384 on x86_64 and arm): checked both ways against a C program."""
    from schema_init.lib import utmp
    r = targets.resolve(target, env={})
    if not shutil.which(r["CC"]) or (r["HOST_IS_TARGET"] != "yes" and not shutil.which(r["QEMU"])):
        if os.path.exists(STAMP):
            pytest.fail("make cross-deps was run but %s or %s is missing" % (r["CC"], r["QEMU"]))
        pytest.skip("cross toolchain for %s absent (run make cross-deps)" % target)
    source = tmp_path / "utmp.c"
    source.write_text(UTMP_PROBE)
    program = tmp_path / "utmp-probe"
    subprocess.run([r["CC"]] + r["ARCH_CFLAGS"].split() + ["-static", "-O2", "-o", str(program),
                    str(source)], check=True, timeout=120)
    runner = [] if r["HOST_IS_TARGET"] == "yes" else [r["QEMU"], "-cpu", r["QEMU_CPU"]]
    written = subprocess.run(runner + [str(program)], capture_output=True, check=True,
                             timeout=60).stdout
    machine = r["UNAME_MACHINE"]
    assert len(written) == utmp.layout(machine).size
    (got,) = utmp.records(written, machine)
    assert (got["type"], got["pid"], utmp.text(got["line"]), utmp.text(got["user"]),
            utmp.text(got["host"]), got["session"], got["tv_sec"], got["tv_usec"]) == \
        (utmp.BOOT_TIME, 1234, "~", "reboot", "h", 77, 1700000000, 5)
    ours = utmp.record(utmp.RUN_LVL, "shutdown", pid=utmp.runlevel_pid("6", "5"),
                       when=1700000123.25, machine=machine)
    read = subprocess.run(runner + [str(program), "read"], input=ours, capture_output=True,
                          check=True, timeout=60).stdout.decode()
    assert read == "1 %d ~ shutdown 1700000123 250000\n" % utmp.runlevel_pid("6", "5")
