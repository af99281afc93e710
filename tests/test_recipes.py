"""The one recipe format (toolchains/*.env, distros/*/board.env): NAME="value" lines read
by toolchains/recipe.sh (sh) and toolchains/targets.py (Python) by the same rules, with
the same messages; nothing a recipe or a caller's override holds is ever run."""

import glob
import os
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT

sys.path.insert(0, os.path.join(ROOT, "toolchains"))
import targets  # noqa: E402

READER = os.path.join(ROOT, "toolchains", "recipe.sh")
MKIMAGE = os.path.join(ROOT, "build", "mkimage.sh")
BOARD_ENV = os.path.join(ROOT, "distros", "raspberry-pi-zero-w", "board.env")
RECIPES = sorted(glob.glob(os.path.join(ROOT, "toolchains", "*.env")) +
                 glob.glob(os.path.join(ROOT, "distros", "*", "board.env")))
# The shells the reader runs under: dash (Debian's sh, the Pi's), bash, busybox sh.
SHELLS = [["dash"], ["bash", "--posix"]] + ([["busybox", "sh"]] if shutil.which("busybox")
                                             else [])
# recipe_read FILE [NAME=VALUE...], then what it assigned (recipe_show: NAME=value).
READ = '. "$0" && recipe_read "$@" && recipe_show'


def sh_read(path, *overrides, shell=("dash",), cwd=None):
    """(exit status, [(name, value)...] in the recipe's order, stderr) of the sh reader."""
    done = subprocess.run(list(shell) + ["-c", READ, READER, str(path)] + list(overrides),
                          capture_output=True, text=True, encoding="utf-8", timeout=30,
                          cwd=cwd)
    pairs = [tuple(line.split("=", 1)) for line in done.stdout.splitlines()]
    return done.returncode, pairs, done.stderr


def test_there_are_recipes_of_both_kinds():
    names = [os.path.relpath(p, ROOT) for p in RECIPES]
    assert "toolchains/armv6l.env" in names and "distros/raspberry-pi-zero-w/board.env" in names
    assert len(names) >= 5


@pytest.mark.parametrize("shell", SHELLS, ids=lambda s: s[0])
@pytest.mark.parametrize("path", RECIPES, ids=lambda p: os.path.relpath(p, ROOT))
def test_each_recipe_reads_the_same_in_sh_and_python(path, shell):
    status, pairs, err = sh_read(path, shell=shell)
    assert status == 0 and err == "", err
    assert pairs == list(targets.read_recipe(path).items())
    assert len(pairs) > 5


def write(tmp_path, *lines, end="\n"):
    path = tmp_path / "test.env"
    path.write_text("\n".join(lines) + end)
    return path


# Each bad line (the third of its file) and why both readers refuse it.
EXPANDS = 'CC: a value cannot hold $ ` \\ or " (nothing in it is expanded)'
UNQUOTED = "CC: the value is not in double quotes"
BAD_NAME = "bad name '%s' (A-Z, then A-Z, 0-9, _)"
THE_SHELLS = "%s is the shell's own, not a recipe's"
BAD = {
    "command substitution": ('CC="$(touch MARK)"', EXPANDS),
    "backticks": ('CC="`touch MARK`"', EXPANDS),
    "a variable": ('CC="${HOME}/x"', EXPANDS),
    "a backslash": ('CC="a\\"', EXPANDS),
    "a quote inside": ('CC="a"b"', EXPANDS),
    "an unquoted substitution": ("CC=$(touch MARK)", UNQUOTED),
    "a missing closing quote": ('CC="gcc', UNQUOTED),
    "a missing opening quote": ('CC=gcc"', UNQUOTED),
    "no quotes": ("CC=gcc", UNQUOTED),
    "single quotes": ("CC='gcc'", UNQUOTED),
    "something after the value": ('CC="gcc" # the compiler', UNQUOTED),
    "a carriage return": ('CC="gcc"\r', UNQUOTED),
    "a lower-case name": ('cc="gcc"', BAD_NAME % "cc"),
    "a dash in the name": ('CROSS-CC="gcc"', BAD_NAME % "CROSS-CC"),
    "a digit first": ('1CC="gcc"', BAD_NAME % "1CC"),
    "an underscore first": ('_CC="gcc"', BAD_NAME % "_CC"),
    "blanks before the name": ('  CC="gcc"', BAD_NAME % "  CC"),
    "a command before it": ('touch MARK; CC="gcc"', BAD_NAME % "touch MARK; CC"),
    "export": ('export CC="gcc"', BAD_NAME % "export CC"),
    "PATH": ('PATH="/tmp/evil"', THE_SHELLS % "PATH"),
    "IFS": ('IFS="x"', THE_SHELLS % "IFS"),
    "the locale": ('LC_ALL="C"', THE_SHELLS % "LC_ALL"),
    "a command": ("touch MARK", 'not a NAME="value" line'),
}


@pytest.mark.parametrize("shell", SHELLS, ids=lambda s: s[0])
@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_line_is_refused_by_both_readers_naming_file_and_line(tmp_path, case, shell):
    line, why = BAD[case]
    path = write(tmp_path, "# a recipe", 'TARGET="armv6l"', line, 'LAST="x"')
    status, pairs, err = sh_read(path, shell=shell, cwd=str(tmp_path))
    assert status == 1
    assert err == "recipe: %s:3: %s\n" % (path, why)
    assert ("LAST", "x") not in pairs
    with pytest.raises(targets.RecipeError) as refused:
        targets.read_recipe(str(path))
    assert str(refused.value) == "%s:3: %s" % (path, why)
    assert not (tmp_path / "MARK").exists()


@pytest.mark.parametrize("name", targets.RESERVED_NAMES + ("LC_CTYPE",))
def test_the_shells_own_names_are_refused_by_both_readers(tmp_path, name):
    path = write(tmp_path, '%s="x"' % name)
    status, _, err = sh_read(path)
    assert status == 1 and err == "recipe: %s:1: %s\n" % (path, THE_SHELLS % name)
    with pytest.raises(targets.RecipeError):
        targets.read_recipe(str(path))


@pytest.mark.parametrize("shell", SHELLS, ids=lambda s: s[0])
def test_values_are_taken_as_written(tmp_path, shell):
    path = write(tmp_path, "", "\t# indented comment", "   ", 'FLAGS="-O2  -g "',
                 "EMPTY=\"\"", "QUOTE=\"it's # not a comment = x\"", 'TAB="a\tb"',
                 'UTF8="café"', 'A1_B2="last, no newline"', end="")
    expected = [("FLAGS", "-O2  -g "), ("EMPTY", ""), ("QUOTE", "it's # not a comment = x"),
                ("TAB", "a\tb"), ("UTF8", "café"), ("A1_B2", "last, no newline")]
    assert list(targets.read_recipe(str(path)).items()) == expected
    status, pairs, err = sh_read(path, shell=shell)
    assert (status, err) == (0, "")
    assert pairs == expected


@pytest.mark.parametrize("shell", SHELLS, ids=lambda s: s[0])
def test_an_override_is_taken_literally_never_run(tmp_path, shell):
    mark = tmp_path / "MARK"
    hostile = "$(touch %s) `touch %s` ${HOME} \\ \" ' ;touch %s" % (mark, mark, mark)
    status, pairs, err = sh_read(BOARD_ENV, "DISK_ID=" + hostile, "DATA_UUID= spaced ",
                                 shell=shell, cwd=str(tmp_path))
    assert (status, err) == (0, "")
    values = dict(pairs)
    assert values["DISK_ID"] == hostile and values["DATA_UUID"] == " spaced "
    assert values["ROOT_UUID"] == targets.read_recipe(BOARD_ENV)["ROOT_UUID"]
    assert not mark.exists()


@pytest.mark.parametrize("override, why", [
    ("NOT_IN_IT=1", "override: NOT_IN_IT is not a name of the recipe"),
    ("PATH=/tmp/evil", "override: " + THE_SHELLS % "PATH"),
    ("disk_id=1", "override: " + BAD_NAME % "disk_id"),
    ("DISK_ID", "override 'DISK_ID' is not NAME=VALUE"),
    ("DISK_ID=one\ntwo", "override: DISK_ID: a value is one line"),
])
def test_a_bad_override_is_refused(override, why):
    status, _, err = sh_read(BOARD_ENV, override)
    assert status == 1 and err == "recipe: %s: %s\n" % (BOARD_ENV, why)


def test_mkimage_takes_the_environments_identifiers_literally(tmp_path):
    """build/mkimage.sh --dry-run: the board's recipe with the environment's DISK_ID,
    BOOT_VOLUME_ID, DATA_UUID, ROOT_UUID as they are; nothing run, nothing made."""
    mark = tmp_path / "MARK"
    hostile = "$(touch %s)`touch %s`" % (mark, mark)
    env = dict(os.environ, DISK_ID=hostile, BOOT_VOLUME_ID="B 1", ROOT_UUID="",
               IMAGE_CACHE=str(tmp_path / "cache"), SOURCE_DATE_EPOCH="1")
    env.pop("DATA_UUID", None)
    done = subprocess.run([MKIMAGE, "--dry-run", "rpi-zero-w"], env=env, cwd=str(tmp_path),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    shown = dict(line.split("=", 1) for line in done.stdout.splitlines())
    board = targets.read_recipe(BOARD_ENV)
    assert shown["DISK_ID"] == hostile and shown["BOOT_VOLUME_ID"] == "B 1"
    assert shown["DATA_UUID"] == board["DATA_UUID"]          # not set: the board's
    assert shown["ROOT_UUID"] == board["ROOT_UUID"]          # empty: the board's
    assert shown["IMAGE_MB"] == board["IMAGE_MB"]
    assert [line for line in done.stderr.splitlines() if "step" in line] == [
        "mkimage: step %d/8: %s" % (n, name) for n, name in enumerate(
            ["make_base_root", "fetch_kernel_and_firmware", "make_root", "pack_root",
             "make_initramfs", "make_boot_fat", "make_data_partition", "assemble_card"], 1)]
    assert not mark.exists() and not (tmp_path / "cache").exists()


def clean_env():
    return {k: v for k, v in os.environ.items() if k not in targets.OVERRIDES}


@pytest.mark.parametrize("target", targets.names())
def test_the_resolved_recipe_reads_back_in_sh_as_python_resolved_it(target):
    """targets.py --shell prints the recipe format; recipe_resolve reads it back."""
    script = '. toolchains/recipe.sh && recipe_resolve "$0" "$1" && recipe_show'
    done = subprocess.run(["dash", "-c", script, sys.executable, target], cwd=ROOT,
                          env=clean_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    shown = dict(line.split("=", 1) for line in done.stdout.splitlines())
    assert shown == targets.resolve(target, env=clean_env())


def test_a_value_the_format_cannot_hold_is_refused_not_passed_on(tmp_path):
    mark = tmp_path / "MARK"
    env = dict(clean_env(), CROSS_CFLAGS="-O2 $(touch %s)" % mark)
    script = '. toolchains/recipe.sh && recipe_resolve "$0" armv6l && echo "CC=$CC"'
    done = subprocess.run(["dash", "-c", script, sys.executable], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and done.stdout == ""
    assert "ARCH_CFLAGS=" in done.stderr and "cannot hold" in done.stderr
    assert not mark.exists()
