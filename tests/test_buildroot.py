"""The Buildroot external tree (distros/buildroot, issue 10 item 5).

No Buildroot here: its Kconfig is parsed with kconfiglib under a small stand-in for
Buildroot's own top-level Kconfig (the symbols the tree refers to, declared as Buildroot
declares them), the .config that kconfiglib writes is read by GNU make exactly as
Buildroot's Makefile reads it (quoted strings and all), and the package's .mk runs under
a stand-in for the generic-package infrastructure: its build and install commands, the
latter into a scratch TARGET_DIR.  Fast, no network.
"""

import os
import re
import shutil
import stat
import struct
import subprocess
import sys

import kconfiglib
import pytest

from conftest import ROOT

TREE = os.path.join(ROOT, "distros", "buildroot")
PACKAGE = os.path.join(TREE, "package", "schema-init")
SERVICES = os.path.join(ROOT, "services", "buildroot")
# How Config.in names it: relative to the external tree, which lives in the checkout.
SERVICES_DEFAULT = "$(BR2_EXTERNAL_SCHEMA_INIT_PATH)/../../services/buildroot"
SERVICES_EXPANDED = SERVICES_DEFAULT.replace("$(BR2_EXTERNAL_SCHEMA_INIT_PATH)", TREE)
sys.path.insert(0, os.path.join(ROOT, "toolchains"))
import targets  # noqa: E402

KCONFIG_FILES = ("Config.in", "package/schema-init/Config.in", "provides/init.in")

# Buildroot's symbols that the tree uses, declared the way Buildroot's arch/Config.in,
# arch/Config.in.arm, system/Config.in and package/Config.in do; the br2-external parts
# sourced where support/scripts/br2-external puts them (provides/init.in inside the
# init choice, Config.in under "External options").
BUILDROOT_STANDIN = r"""
choice
	prompt "Target Architecture"
config BR2_arm
	bool "ARM (little endian)"
config BR2_armeb
	bool "ARM (big endian)"
config BR2_aarch64
	bool "AArch64 (little endian)"
config BR2_x86_64
	bool "x86_64"
config BR2_mips
	bool "MIPS (big endian)"
endchoice

choice
	prompt "Target Architecture Variant"
	depends on BR2_arm || BR2_armeb
config BR2_cortex_a7
	bool "cortex-A7"
config BR2_arm1176jzf_s
	bool "arm1176jzf-s"
endchoice

config BR2_ARCH
	string
	default "arm"		if BR2_arm
	default "armeb"		if BR2_armeb
	default "aarch64"	if BR2_aarch64
	default "x86_64"	if BR2_x86_64
	default "mips"		if BR2_mips

config BR2_PACKAGE_BUSYBOX
	bool "BusyBox"
	default y

choice
	prompt "Root FS skeleton"
config BR2_ROOTFS_SKELETON_DEFAULT
	bool "default target skeleton"
config BR2_ROOTFS_SKELETON_CUSTOM
	bool "custom target skeleton"
endchoice

config BR2_PACKAGE_SKELETON_INIT_NONE
	bool

choice
	prompt "Init system"
	default BR2_INIT_BUSYBOX
config BR2_INIT_BUSYBOX
	bool "BusyBox"
	select BR2_PACKAGE_BUSYBOX
config BR2_INIT_NONE
	bool "Custom (none)"
	select BR2_PACKAGE_SKELETON_INIT_NONE if BR2_ROOTFS_SKELETON_DEFAULT
comment "init from: schema-init"
source "$BR2_EXTERNAL_SCHEMA_INIT_PATH/provides/init.in"
endchoice

if BR2_ROOTFS_SKELETON_DEFAULT
menuconfig BR2_TARGET_GENERIC_GETTY
	bool "Run a getty (login prompt) after boot"
	default y
if BR2_TARGET_GENERIC_GETTY
config BR2_TARGET_GENERIC_GETTY_PORT
	string "TTY port"
	default "console"
choice
	prompt "Baudrate"
	default BR2_TARGET_GENERIC_GETTY_BAUDRATE_KEEP
config BR2_TARGET_GENERIC_GETTY_BAUDRATE_KEEP
	bool "keep kernel default"
config BR2_TARGET_GENERIC_GETTY_BAUDRATE_115200
	bool "115200"
endchoice
config BR2_TARGET_GENERIC_GETTY_BAUDRATE
	string
	default "0"		if BR2_TARGET_GENERIC_GETTY_BAUDRATE_KEEP
	default "115200"	if BR2_TARGET_GENERIC_GETTY_BAUDRATE_115200
config BR2_TARGET_GENERIC_GETTY_TERM
	string "TERM environment variable"
	default "vt100"
config BR2_TARGET_GENERIC_GETTY_OPTIONS
	string "other options to pass to getty"
	default ""
endif
config BR2_TARGET_GENERIC_REMOUNT_ROOTFS_RW
	bool "remount root filesystem read-write during boot"
	default y
endif

menu "External options"
comment "schema-init (in $BR2_EXTERNAL_SCHEMA_INIT_PATH)"
source "$BR2_EXTERNAL_SCHEMA_INIT_PATH/Config.in"
endmenu
"""

# generic-package, reduced to what this package's .mk uses: the two steps' rules
# ($(@D) is the package's build directory: here a link to this checkout, as Buildroot's
# would be its rsync copy), the variables a package sees, and Buildroot's helpers
# (support/misc/utils.mk's qstrip, system/system.mk's SYSTEM_GETTY_*).
STANDIN_MK = r"""
BR2_EXTERNAL_SCHEMA_INIT_PATH := %(tree)s
include %(config)s
BUILD_DIR := %(build)s
TARGET_DIR := %(target)s
STAGING_DIR := /br/output/staging
HOST_DIR := /br/output/host
TARGET_CROSS := /br/output/host/bin/buildroot-linux-gnu-
TARGET_MAKE_ENV := PATH=/br/output/host/bin:$(PATH)
INSTALL := install
MAKE1 := $(MAKE) -j1
qstrip = $(strip $(subst ",,$(1)))
SYSTEM_GETTY_PORT = $(call qstrip,$(BR2_TARGET_GENERIC_GETTY_PORT))
SYSTEM_GETTY_BAUDRATE = $(call qstrip,$(BR2_TARGET_GENERIC_GETTY_BAUDRATE))
SYSTEM_GETTY_TERM = $(call qstrip,$(BR2_TARGET_GENERIC_GETTY_TERM))
SYSTEM_GETTY_OPTIONS = $(call qstrip,$(BR2_TARGET_GENERIC_GETTY_OPTIONS))
define generic-package
$(BUILD_DIR)/schema-init-$(SCHEMA_INIT_VERSION)/.stamp_built:
	$$(SCHEMA_INIT_BUILD_CMDS)
$(BUILD_DIR)/schema-init-$(SCHEMA_INIT_VERSION)/.stamp_target_installed:
	$$(SCHEMA_INIT_INSTALL_TARGET_CMDS)
endef
include %(tree)s/external.mk
print-%%:
	@echo '$($*)'
"""


@pytest.fixture(autouse=True)
def external_path(monkeypatch):
    monkeypatch.setenv("BR2_EXTERNAL_SCHEMA_INIT_PATH", TREE)
    # References to undefined symbols (a typo in "depends on") become warnings.
    monkeypatch.setenv("KCONFIG_WARN_UNDEF", "y")
    # Buildroot's kconfig writes BR2_FOO=y, not CONFIG_BR2_FOO=y.
    monkeypatch.setenv("CONFIG_", "")


def kconfig(tmp_path, tree=TREE):
    top = tmp_path / "Config.in"
    top.write_text(BUILDROOT_STANDIN)
    os.environ["BR2_EXTERNAL_SCHEMA_INIT_PATH"] = tree
    return kconfiglib.Kconfig(str(top), warn_to_stderr=False)


ARCHES = {"aarch64": ["BR2_aarch64"], "x86_64": ["BR2_x86_64"], "mips": ["BR2_mips"],
          "arm": ["BR2_arm", "BR2_arm1176jzf_s"]}


def configure(tmp_path, arch="arm", init="BR2_INIT_SCHEMA_INIT", **values):
    """A .config as Buildroot's menuconfig would save it: arch, init system, values."""
    k = kconfig(tmp_path)
    for name in ARCHES[arch]:
        k.syms[name].set_value(2)
    if init:
        k.syms[init].set_value(2)
    for name, value in values.items():
        sym = k.syms[name]
        assert sym.set_value(value), (name, value)
        assert sym.str_value == value or sym.type in (kconfiglib.BOOL,), (name, sym.str_value)
    assert not k.warnings, k.warnings
    path = tmp_path / ".config"
    k.write_config(str(path))
    return k, path


def run_make(tmp_path, config, goal, *assignments):
    build = tmp_path / "build"
    build.mkdir(exist_ok=True)
    target = tmp_path / "target"
    makefile = tmp_path / "buildroot.mk"
    makefile.write_text(STANDIN_MK % {"tree": TREE, "config": config, "build": build,
                                      "target": target})
    if goal.startswith("."):               # a step of the package: $(@D) is the checkout
        version = package_version()
        link = build / ("schema-init-" + version)
        if not link.exists():
            link.symlink_to(ROOT)
        goal = str(link / goal)
    done = subprocess.run(["make", "-f", str(makefile), "--no-print-directory"] +
                          list(assignments) + [goal],
                          capture_output=True, text=True, timeout=60, cwd=str(tmp_path))
    return done, target


def package_version():
    return re.search(r'version="([^"]+)"', open(os.path.join(ROOT, "setup.py")).read()).group(1)


def fake_elf(path, machine, elf_class):
    """The first bytes of an ELF executable: enough for the .mk's header check."""
    ident = b"\x7fELF" + bytes([2 if elf_class == 64 else 1, 1, 1]) + bytes(9)
    path.write_bytes(ident + struct.pack("<HHI", 2, machine, 1) + b"\0" * 40 + b"fake " +
                     path.name.encode())
    return path


EM = {"aarch64": (183, 64), "x86_64": (62, 64), "arm": (40, 32)}


# -- 1. structure and Kconfig -----------------------------------------------------------

def test_tree_has_what_buildroot_reads():
    for name in ("external.desc", "external.mk", "README.md", "package/schema-init/schema-init.mk",
                 "package/schema-init/schema-init.hash") + KCONFIG_FILES:
        assert os.path.isfile(os.path.join(TREE, name)), name
    desc = dict(line.split(": ", 1) for line in open(os.path.join(TREE, "external.desc"))
                .read().splitlines() if line)
    assert desc["name"] == "SCHEMA_INIT" and re.fullmatch(r"[A-Za-z0-9_]+", desc["name"])
    assert 0 < len(desc["desc"]) <= 80
    # A .hash file holds comments and "TYPE  HASH  FILE" lines only.
    for line in open(os.path.join(PACKAGE, "schema-init.hash")).read().splitlines():
        assert not line or line.startswith("#") or re.fullmatch(
            r"(md5|sha1|sha224|sha256|sha384|sha512)  [0-9a-f]+  \S+", line), line
    check = subprocess.run([sys.executable, "-m", "schema_init", "--check", SERVICES, "--strict"],
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr


def test_kconfig_parses_and_offers_the_package_only_where_a_binary_exists(tmp_path):
    k = kconfig(tmp_path)
    assert not k.warnings, k.warnings
    package = k.syms["BR2_PACKAGE_SCHEMA_INIT"]
    assert package.visibility == 0                   # no architecture chosen
    for arch, visible in (("mips", 0), ("aarch64", 2), ("x86_64", 2), ("arm", 2)):
        for name in ARCHES[arch]:
            k.syms[name].set_value(2)
        assert package.visibility == visible, arch
    k.syms["BR2_cortex_a7"].set_value(2)             # 32-bit ARM, not the Pi Zero's CPU
    assert package.visibility == 0
    k.syms["BR2_armeb"].set_value(2)                 # big endian ARM1176: no recipe
    k.syms["BR2_arm1176jzf_s"].set_value(2)
    assert package.visibility == 0
    assert k.syms["BR2_INIT_SCHEMA_INIT"].visibility == 0


def test_schema_init_as_the_init_system_choice(tmp_path):
    k, _ = configure(tmp_path, "aarch64", "BR2_INIT_SCHEMA_INIT")
    assert k.syms["BR2_PACKAGE_SCHEMA_INIT"].str_value == "y"         # selected
    assert k.syms["BR2_PACKAGE_SKELETON_INIT_NONE"].str_value == "y"  # init-less skeleton
    as_init = k.syms["BR2_PACKAGE_SCHEMA_INIT_AS_INIT"]
    assert as_init.str_value == "y" and as_init.visibility == 0      # no question asked
    assert k.syms["BR2_PACKAGE_SCHEMA_INIT_PREBUILT"].str_value == ""
    assert k.syms["BR2_PACKAGE_SCHEMA_INIT_SERVICES"].str_value == SERVICES_EXPANDED
    assert os.path.normpath(SERVICES_EXPANDED) == SERVICES


def test_custom_init_none_with_the_package(tmp_path):
    k, _ = configure(tmp_path, "arm", "BR2_INIT_NONE", BR2_PACKAGE_SCHEMA_INIT="y")
    as_init = k.syms["BR2_PACKAGE_SCHEMA_INIT_AS_INIT"]
    assert as_init.visibility == 2 and as_init.str_value == "y"       # asked, default y
    k.syms["BR2_INIT_BUSYBOX"].set_value(2)                           # busybox is init
    assert as_init.str_value == "n"


@pytest.mark.parametrize("name", KCONFIG_FILES)
@pytest.mark.parametrize("mutation", ["garbage", "endif", "typo"])
def test_a_broken_kconfig_file_is_refused(tmp_path, name, mutation):
    broken = tmp_path / "tree"
    shutil.copytree(TREE, broken)
    path = broken / name
    text = path.read_text()
    if mutation == "garbage":
        text += "\nconfig BR2_PACKAGE_SCHEMA_INIT_BROKEN\n\tbool \"x\"\n\tfrobnicate\n"
    elif mutation == "endif":
        text += "\nendif\n"
    elif name == "Config.in":                    # a misspelled path
        text, n = re.subn(r"/Config\.in\"", "/Config.inn\"", text, count=1)
        assert n == 1
    else:                                        # a misspelled symbol in a dependency
        text, n = re.subn(r"\bBR2_(aarch64|PACKAGE_SCHEMA_INIT)\b", r"BR2_\1X", text, count=1)
        assert n == 1
    path.write_text(text)
    if mutation == "typo" and name != "Config.in":
        k = kconfig(tmp_path, str(broken))
        assert any("undefined symbol" in w for w in k.warnings), k.warnings
    else:
        with pytest.raises(kconfiglib.KconfigError):
            kconfig(tmp_path, str(broken))


# -- 2. the install step --------------------------------------------------------------

def installed_services(target):
    return sorted(os.listdir(target / "etc" / "schema-init" / "services"))


def test_install_as_the_init_of_a_pi_zero_root(tmp_path):
    binary = fake_elf(tmp_path / "schema-init-armv6l", *EM["arm"])
    _, config = configure(tmp_path, "arm", "BR2_INIT_SCHEMA_INIT",
                          BR2_PACKAGE_SCHEMA_INIT_PREBUILT=str(binary),
                          BR2_TARGET_GENERIC_GETTY_PORT="ttyAMA0",
                          BR2_TARGET_GENERIC_GETTY_BAUDRATE_115200="y",
                          BR2_TARGET_GENERIC_GETTY_OPTIONS="-n -l /bin/sh")
    text = config.read_text()
    assert 'BR2_ARCH="arm"' in text                           # quoted, as make will see it
    # Buildroot's kconfig has no macro language: it saves the default unexpanded and
    # make expands it (kconfiglib expanded it from the environment).
    config.write_text(text.replace('"%s"' % SERVICES_EXPANDED, '"%s"' % SERVICES_DEFAULT))
    assert SERVICES_DEFAULT in config.read_text()
    done, target = run_make(tmp_path, config, ".stamp_target_installed")
    assert done.returncode == 0, done.stdout + done.stderr
    sbin = target / "sbin"
    assert (sbin / "schema-init").read_bytes() == binary.read_bytes()
    assert stat.S_IMODE((sbin / "schema-init").stat().st_mode) == 0o755
    for name in ("init", "schema-ctl", "schema-subreaper", "schema-powerkey", "reboot",
                 "poweroff", "halt", "shutdown", "telinit", "runlevel"):
        assert os.readlink(sbin / name) == "schema-init", name
    services = target / "etc" / "schema-init" / "services"
    assert installed_services(target) == sorted(os.listdir(SERVICES) +
                                                ["getty.svc", "remount-root.svc"])
    getty = (services / "getty.svc").read_text()
    assert re.findall(r"^args=(.*)$", getty, re.M) == [
        "-L", "-n", "-l", "/bin/sh", "ttyAMA0", "115200", "vt100"]
    assert "exec=/sbin/getty" in getty and "session=1" in getty
    assert "args=remount,rw" in (services / "remount-root.svc").read_text()
    assert not (target / "usr").exists()                     # no reference services
    check = subprocess.run([sys.executable, "-m", "schema_init", "--check",
                            str(services), "--strict"], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "5 services" in check.stdout


def test_not_the_init_no_getty_no_remount_and_the_reference_services(tmp_path):
    binary = fake_elf(tmp_path / "schema-init-aarch64", *EM["aarch64"])
    k, config = configure(tmp_path, "aarch64", "BR2_INIT_NONE",
                          BR2_PACKAGE_SCHEMA_INIT="y",
                          BR2_PACKAGE_SCHEMA_INIT_AS_INIT="n",
                          BR2_PACKAGE_SCHEMA_INIT_PREBUILT=str(binary),
                          BR2_TARGET_GENERIC_GETTY="n",
                          BR2_TARGET_GENERIC_REMOUNT_ROOTFS_RW="n",
                          BR2_PACKAGE_SCHEMA_INIT_REFERENCE_SERVICES="y")
    done, target = run_make(tmp_path, config, ".stamp_target_installed")
    assert done.returncode == 0, done.stdout + done.stderr
    sbin = target / "sbin"
    assert os.readlink(sbin / "schema-ctl") == "schema-init"
    for name in ("init", "reboot", "poweroff", "halt"):       # busybox's stay
        assert not os.path.lexists(sbin / name), name
    assert installed_services(target) == sorted(os.listdir(SERVICES))
    reference = target / "usr" / "share" / "schema-init" / "services"
    assert sorted(os.listdir(reference)) == sorted(os.listdir(os.path.join(ROOT, "services", "reference")))
    assert os.readlink(reference / "motor@1.svc") == os.readlink(
        os.path.join(ROOT, "services", "reference", "motor@1.svc"))        # cp -P, as make install


def test_a_binary_for_another_board_is_refused(tmp_path):
    for board, wrong in (("arm", "class 1, e_machine 40"), ("x86_64", "class 2, e_machine 62")):
        binary = fake_elf(tmp_path / ("schema-init-" + board), *EM[board])
        _, config = configure(tmp_path, "aarch64", BR2_PACKAGE_SCHEMA_INIT_PREBUILT=str(binary))
        done, target = run_make(tmp_path, config, ".stamp_target_installed")
        assert done.returncode != 0, board
        assert "is not a aarch64 binary (EM_AARCH64, ELF64)" in done.stderr
        assert "magic 7f454c46, " + wrong in done.stderr
        assert not (target / "sbin" / "schema-init").exists()
    script = tmp_path / "not-elf"
    script.write_text("#!/bin/sh\n")
    _, config = configure(tmp_path, "aarch64", BR2_PACKAGE_SCHEMA_INIT_PREBUILT=str(script))
    done, _ = run_make(tmp_path, config, ".stamp_target_installed")
    assert done.returncode != 0 and "magic 2321" in done.stderr
    _, config = configure(tmp_path, "aarch64",
                          BR2_PACKAGE_SCHEMA_INIT_PREBUILT=str(tmp_path / "missing"))
    done, _ = run_make(tmp_path, config, ".stamp_target_installed")
    assert done.returncode != 0 and "no binary at" in done.stderr


def test_install_of_the_checkouts_own_x86_64_binary(tmp_path):
    """No prebuilt path: the binary is the one the build step left in $(@D)."""
    binary = os.path.join(ROOT, "build", "out", "schema-init")
    if not os.path.exists(binary):
        pytest.skip("build/out/schema-init not built (make)")
    _, config = configure(tmp_path, "x86_64")
    done, target = run_make(tmp_path, config, ".stamp_target_installed")
    assert done.returncode == 0, done.stdout + done.stderr
    installed = target / "sbin" / "schema-init"
    with open(binary, "rb") as a, open(installed, "rb") as b:
        assert a.read() == b.read()
    shown = subprocess.run([str(target / "sbin" / "schema-ctl"), "--help"],
                           capture_output=True, text=True, timeout=60)
    assert "status" in shown.stdout + shown.stderr


# -- 3. the build step and the BR2_ARCH map -------------------------------------------

@pytest.mark.parametrize("arch", ["aarch64", "arm", "x86_64"])
def test_the_build_step_makes_the_target_targets_py_names(tmp_path, arch):
    expected = targets.default_target({"BR2_ARCH": arch})
    _, config = configure(tmp_path, arch)
    shown, _ = run_make(tmp_path, config, "print-SCHEMA_INIT_TARGET")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == expected
    done, _ = run_make(tmp_path, config, ".stamp_built", "MAKE1=echo MAKE1")
    assert done.returncode == 0, done.stderr
    words = done.stdout.split()
    assert words[-3:] == ["-C", os.path.join(str(tmp_path / "build"),
                                             "schema-init-" + package_version()), expected]
    for assignment in ('TARGET_CROSS="/br/output/host/bin/buildroot-linux-gnu-"',
                       'STAGING_DIR="/br/output/staging"', 'HOST_DIR="/br/output/host"',
                       'BR2_ARCH="%s"' % arch, "PATH=/br/output/host/bin:"):
        assert assignment in done.stdout, assignment


def test_a_prebuilt_binary_skips_the_build(tmp_path):
    _, config = configure(tmp_path, "aarch64", BR2_PACKAGE_SCHEMA_INIT_PREBUILT="/x/schema-init")
    done, _ = run_make(tmp_path, config, ".stamp_built", "MAKE1=echo MAKE1")
    assert done.returncode == 0 and "MAKE1" not in done.stdout, done.stdout


def test_an_architecture_without_a_recipe_is_a_clear_error(tmp_path):
    _, config = configure(tmp_path, "mips", init=None)
    done, _ = run_make(tmp_path, config, "print-SCHEMA_INIT_TARGET", "BR2_PACKAGE_SCHEMA_INIT=y")
    assert done.returncode != 0
    assert "schema-init: no target for BR2_ARCH=mips" in done.stderr
    assert "no recipe (known: aarch64, arm, x86_64)" in done.stderr      # targets.py's words


def test_a_disabled_package_costs_other_architectures_nothing(tmp_path):
    """Buildroot reads every package's .mk: with the package off, a mips build must
    not fail on it, nor run targets.py."""
    _, config = configure(tmp_path, "mips", init=None)
    assert "BR2_PACKAGE_SCHEMA_INIT=y" not in config.read_text()
    done, _ = run_make(tmp_path, config, "print-SCHEMA_INIT_RECIPE")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""


def test_the_package_version_is_the_checkouts():
    done = subprocess.run(["make", "-s", "-f", os.path.join(PACKAGE, "schema-init.mk"),
                           "BR2_EXTERNAL_SCHEMA_INIT_PATH=" + TREE, "generic-package=",
                           "--eval", "v:\n\t@echo $(SCHEMA_INIT_VERSION)", "v"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == package_version()
