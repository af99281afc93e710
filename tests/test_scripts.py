"""Every shell script of the checkout passes shellcheck, and none uses eval.

A script is a file ending in .sh, or one whose first line is a sh, dash, ash or bash
shebang, under the folders that hold them (build/, toolchains/, distros/, services/, .ci/,
tests/), build's scratch and outputs left out.  sh scripts are checked as POSIX sh (some
run under dash on the Pi or busybox sh in its initramfs), bash ones as bash.  A finding
is fixed, or disabled where the code is right, with the reason on the directive's line:
    # shellcheck disable=SC2086 # $FLAGS: a word list, split on purpose
shellcheck comes with the Makefile's DEBS (build/ensure-deps.sh)."""

import os
import re
import shutil
import subprocess

import pytest

from conftest import ROOT

FOLDERS = ("build", "toolchains", "distros", "services", ".ci", "tests")
LEFT_OUT = {os.path.join("build", "tmp"), os.path.join("build", "out")}
LEFT_OUT_NAMES = {".venv", "__pycache__", ".git", ".hypothesis"}
DIALECTS = {"sh": "sh", "dash": "sh", "ash": "sh", "bash": "bash"}
DIRECTIVE = re.compile(r"#\s*shellcheck\s+disable=")
DIRECTIVE_WITH_REASON = re.compile(r"#\s*shellcheck\s+disable=[A-Z0-9,]+\s+#\s*\S")


def dialect(path):
    """sh or bash for a script, None for any other file."""
    with open(path, "rb") as f:
        first = f.readline(200)
    if first.startswith(b"#!"):
        words = first[2:].decode("ascii", "replace").split()
        if words and os.path.basename(words[0]) == "env":
            words = words[1:]
        if words:
            return DIALECTS.get(os.path.basename(words[0]))
    return "sh" if path.endswith(".sh") else None


def scripts():
    """{relative path: dialect} of every shell script in FOLDERS."""
    found = {}
    for folder in FOLDERS:
        for top, dirs, files in os.walk(os.path.join(ROOT, folder)):
            rel_top = os.path.relpath(top, ROOT)
            dirs[:] = sorted(d for d in dirs if d not in LEFT_OUT_NAMES
                             and os.path.join(rel_top, d) not in LEFT_OUT)
            for name in sorted(files):
                path = os.path.join(top, name)
                if os.path.islink(path) or not os.path.isfile(path):
                    continue
                kind = dialect(path)
                if kind:
                    found[os.path.relpath(path, ROOT)] = kind
    return found


def shellcheck(paths, kind, cwd=ROOT):
    """shellcheck's findings for PATHS (one line each, file:line:column: ...)."""
    if not shutil.which("shellcheck"):
        pytest.fail("shellcheck is not installed: build/ensure-deps.sh shellcheck "
                    "(make test and make test-fast install the Makefile's DEBS)")
    done = subprocess.run(["shellcheck", "--norc", "-x", "-s", kind, "-f", "gcc"] + paths,
                          cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode in (0, 1), done.stderr        # 1: findings; more: it failed
    return done.stdout.splitlines()


def test_the_scripts_found_include_each_kind():
    found = scripts()
    for path, kind in (("build/mkimage.sh", "sh"), ("toolchains/recipe.sh", "sh"),
                       ("distros/raspberry-pi-zero-w/initramfs-init", "sh"),
                       ("distros/raspberry-pi-zero-w/lib/boot-data.sh", "sh"),
                       ("distros/debian/package/postinst", "sh"), (".ci/run", "bash")):
        assert found.get(path) == kind, path
    assert not [p for p in found if p.startswith(("build/tmp/", "build/out/"))]
    assert not [p for p in found if p.endswith(".svc")]


@pytest.mark.parametrize("kind", ["sh", "bash"])
def test_every_script_passes_shellcheck(kind):
    paths = sorted(p for p, k in scripts().items() if k == kind)
    assert paths
    findings = shellcheck(paths, kind)
    assert findings == [], "shellcheck -s %s:\n%s" % (kind, "\n".join(findings))


def test_the_check_reports_a_broken_script(tmp_path):
    """The harness itself: an unquoted variable and bash's [[ in a sh script are found."""
    script = tmp_path / "broken.sh"
    script.write_text('#!/bin/sh\nf=$1\nrm $f\n[[ -n "$f" ]] && echo yes\n')
    findings = "\n".join(shellcheck([str(script)], dialect(str(script)), cwd=str(tmp_path)))
    assert "SC2086" in findings and "SC3010" in findings, findings


def test_every_disabled_check_says_why():
    silent = []
    for path in scripts():
        with open(os.path.join(ROOT, path), encoding="utf-8", errors="replace") as f:
            for number, line in enumerate(f, 1):
                if DIRECTIVE.search(line) and not DIRECTIVE_WITH_REASON.search(line):
                    silent.append("%s:%d: %s" % (path, number, line.strip()))
    assert silent == [], "a disable needs its reason after it:\n" + "\n".join(silent)


def test_no_script_uses_eval():
    """Text a script reads (recipes, targets.py's output, the environment) is assigned
    with toolchains/recipe.sh, never run: no script evaluates text."""
    uses = []
    for path in scripts():
        with open(os.path.join(ROOT, path), encoding="utf-8", errors="replace") as f:
            for number, line in enumerate(f, 1):
                if line.lstrip().startswith("#"):
                    continue
                if re.search(r"(^|[;&|({`]|\$\()\s*eval\b", line):
                    uses.append("%s:%d: %s" % (path, number, line.strip()))
    assert uses == []


def test_the_makefile_installs_shellcheck_for_the_tests():
    makefile = open(os.path.join(ROOT, "Makefile")).read().replace("\\\n", " ")
    debs = re.search(r"^DEBS\s*:=(.*)$", makefile, re.M).group(1).split()
    assert "shellcheck" in debs
    for target in ("test", "test-fast"):
        recipe = re.search(r"^%s:.*\n((?:\t.*\n)+)" % re.escape(target), makefile, re.M)
        assert "build/ensure-deps.sh $(DEBS)" in recipe.group(1), target
