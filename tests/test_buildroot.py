"""The Buildroot external tree (distros/buildroot): its Kconfig parses as Buildroot's
would, and the package's install step, run by GNU make against a small stand-in for
Buildroot's package infrastructure, lays out a target root with schema-init as init."""

import os
import shutil
import stat
import subprocess
import sys

import kconfiglib
import pytest

from conftest import ROOT

TREE = os.path.join(ROOT, "distros", "buildroot")
PACKAGE = os.path.join(TREE, "package", "schema-init")
sys.path.insert(0, os.path.join(ROOT, "toolchains"))
import targets  # noqa: E402

# The Buildroot symbols the tree depends on, declared as Buildroot's own Config.in does.
BUILDROOT_STANDIN = """
config BR2_aarch64
	bool "aarch64"
config BR2_x86_64
	bool "x86_64"
config BR2_arm1176jzf_s
	bool "arm1176jzf-s"
config BR2_INIT_NONE
	bool "no init"
menu "External options"
source "%s/Config.in"
endmenu
"""


def kconfig(tmp_path, tree=TREE):
    top = tmp_path / "Config.in"
    top.write_text(BUILDROOT_STANDIN % tree)
    os.environ["BR2_EXTERNAL_SCHEMA_INIT_PATH"] = tree
    return kconfiglib.Kconfig(str(top), warn_to_stderr=False)


def test_tree_has_what_buildroot_reads():
    for name in ("external.desc", "Config.in", "external.mk",
                 "package/schema-init/Config.in", "package/schema-init/schema-init.mk",
                 "package/schema-init/schema-init.hash"):
        assert os.path.isfile(os.path.join(TREE, name)), name
    desc = dict(line.split(": ", 1) for line in open(os.path.join(TREE, "external.desc"))
                .read().splitlines() if line)
    assert desc["name"] == "SCHEMA_INIT" and desc["desc"]


def test_kconfig_parses_and_the_options_depend_on_the_target_and_init(tmp_path):
    k = kconfig(tmp_path)
    package = k.syms["BR2_PACKAGE_SCHEMA_INIT"]
    as_init = k.syms["BR2_PACKAGE_SCHEMA_INIT_AS_INIT"]
    assert not k.warnings, k.warnings
    assert package.visibility == 0                   # no supported target chosen
    k.syms["BR2_arm1176jzf_s"].set_value(2)
    assert package.visibility == 2
    package.set_value(2)
    assert as_init.visibility == 0                   # needs BR2_INIT_NONE
    k.syms["BR2_INIT_NONE"].set_value(2)
    assert as_init.str_value == "y"
    assert k.syms["BR2_PACKAGE_SCHEMA_INIT_PREBUILT"].str_value == ""


def test_a_broken_config_in_is_refused(tmp_path):
    broken = tmp_path / "tree"
    shutil.copytree(TREE, broken)
    path = broken / "package" / "schema-init" / "Config.in"
    path.write_text(path.read_text().replace("if BR2_PACKAGE_SCHEMA_INIT\n", "", 1))
    with pytest.raises(kconfiglib.KconfigError):
        kconfig(tmp_path, str(broken))


# Just enough of Buildroot's package infrastructure to run the package's own commands:
# generic-package makes the two stamps rules ($(@D) is the package's build directory).
STANDIN_MK = r"""
BR2_EXTERNAL_SCHEMA_INIT_PATH := %(tree)s
BUILD_DIR := %(build)s
TARGET_DIR := %(target)s
INSTALL := install
TARGET_MAKE_ENV :=
qstrip = $(strip $(subst ",,$(1)))
define generic-package
$(BUILD_DIR)/schema-init/.stamp_built:
	$$(SCHEMA_INIT_BUILD_CMDS)
$(BUILD_DIR)/schema-init/.stamp_target_installed:
	$$(SCHEMA_INIT_INSTALL_TARGET_CMDS)
endef
include %(tree)s/external.mk
"""


def run_package(tmp_path, *assignments, goal=".stamp_target_installed"):
    build = tmp_path / "build"
    (build / "schema-init").mkdir(parents=True, exist_ok=True)
    target = tmp_path / "target"
    makefile = tmp_path / "buildroot.mk"
    makefile.write_text(STANDIN_MK % {"tree": TREE, "build": build, "target": target})
    return subprocess.run(["make", "-f", str(makefile), "--no-print-directory"] +
                          list(assignments) + [str(build / "schema-init" / goal)],
                          capture_output=True, text=True, timeout=60), target


def test_install_step_lays_out_the_target_root(tmp_path):
    fake = tmp_path / "schema-init-arm"
    fake.write_bytes(b"\x7fELF not really")
    done, target = run_package(tmp_path, "BR2_ARCH=arm", 'BR2_PACKAGE_SCHEMA_INIT_PREBUILT="%s"'
                               % fake, "BR2_PACKAGE_SCHEMA_INIT_AS_INIT=y",
                               'BR2_PACKAGE_SCHEMA_INIT_SERVICES="$(BR2_EXTERNAL_SCHEMA_INIT_PATH)'
                               '/services"')
    assert done.returncode == 0, done.stdout + done.stderr
    sbin = target / "sbin"
    assert (sbin / "schema-init").read_bytes() == fake.read_bytes()
    assert stat.S_IMODE((sbin / "schema-init").stat().st_mode) == 0o755
    for name in ("init", "schema-ctl", "reboot", "poweroff", "shutdown", "schema-powerkey"):
        assert os.readlink(sbin / name) == "schema-init", name
    installed = sorted(os.listdir(target / "etc" / "schema-init" / "services"))
    assert installed == sorted(os.listdir(os.path.join(TREE, "services")))
    check = subprocess.run([sys.executable, "-m", "schema_init", "--check",
                            str(target / "etc" / "schema-init" / "services")],
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout


def test_without_as_init_there_is_no_sbin_init(tmp_path):
    fake = tmp_path / "bin"
    fake.write_bytes(b"x")
    done, target = run_package(tmp_path, "BR2_ARCH=aarch64",
                               'BR2_PACKAGE_SCHEMA_INIT_PREBUILT="%s"' % fake,
                               'BR2_PACKAGE_SCHEMA_INIT_SERVICES="%s"'
                               % os.path.join(TREE, "services"))
    assert done.returncode == 0, done.stderr
    assert not os.path.lexists(target / "sbin" / "init")


@pytest.mark.parametrize("br2_arch", ["aarch64", "x86_64", "arm"])
def test_the_build_step_asks_the_checkout_for_the_target_targets_py_names(tmp_path, br2_arch):
    """Without a prebuilt binary the package runs the checkout's make TARGET, with
    Buildroot's variables: the same mapping as toolchains/targets.py's."""
    expected = targets.default_target({"BR2_ARCH": br2_arch})
    done, _ = run_package(tmp_path, "BR2_ARCH=%s" % br2_arch, "MAKE=echo MAKE",
                          "TARGET_CROSS=/opt/x/bin/%s-linux-" % br2_arch,
                          goal=".stamp_built")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-1] == expected, done.stdout
    assert 'TARGET_CROSS="/opt/x/bin/%s-linux-"' % br2_arch in done.stdout


def test_an_architecture_without_a_recipe_is_a_clear_error(tmp_path):
    done, _ = run_package(tmp_path, "BR2_ARCH=mips", goal=".stamp_built")
    assert done.returncode != 0
    assert "no recipe for BR2_ARCH=mips" in done.stderr
