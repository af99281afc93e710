#!/usr/bin/env python3
"""The target recipes (toolchains/<target>.env) resolved for this machine and environment.

The .env files are recipes: plain data, NAME="value" lines (read_recipe() below says
the rules; toolchains/recipe.sh is the sh reader of the same format).  This module is the
one place that turns a recipe into a toolchain: which compiler (Buildroot's TARGET_CROSS or
CROSS_COMPILE win over the recipe's Debian cross compiler), which sysroot, where the
target's Python 3.11 headers and libpython3.11.a are (Buildroot's STAGING_DIR, else
PYDEV_ROOT, else the host's own when the target is the host, else the cache that
toolchains/fetch_pydev.sh fills under build/tmp/cross/pydev/<deb-arch>/root).

    targets.py --list                 the known targets
    targets.py --shell [TARGET]       the resolved recipe, in the recipe format (the sh
                                      scripts read it with recipe_resolve, recipe.sh)
    targets.py --json [TARGET]        the same as JSON
    targets.py --debs [TARGET...]     the Debian packages the targets' toolchains need
                                      (default: every target that is not this machine)

TARGET may be omitted when BR2_ARCH is set (aarch64, x86_64; arm means armv6l).
Standard library only: it runs under any Python 3.
"""

import json
import os
import platform
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CACHE = os.path.join(ROOT, "build", "tmp", "cross")
PYVER = "3.11"
# build/build.sh's flags for every C file of the binary (recipe flags are added to them).
COMMON_CFLAGS = "-O2 -fPIC -ffunction-sections -fdata-sections"
# BR2_ARCH -> target: Buildroot says "arm" for every 32-bit ARM; ours is the Pi Zero's.
BR2_TARGETS = {"aarch64": "aarch64", "arm": "armv6l", "x86_64": "x86_64"}
# Environment variables that change a resolved recipe (the test clears them).
OVERRIDES = ("TARGET_CROSS", "CROSS_COMPILE", "STAGING_DIR", "HOST_DIR", "BR2_ARCH",
             "CROSS_CFLAGS", "PYDEV_ROOT", "CROSS_CACHE")
REQUIRED = ("TARGET", "DEB_ARCH", "GNU_TRIPLET", "CROSS_PREFIX", "CROSS_DEBS",
            "ARCH_CFLAGS", "QEMU", "QEMU_CPU", "UNAME_MACHINE", "BR2_ARCH",
            "ELF_MACHINE", "ELF_CLASS")
ARM_REQUIRED = ("ARM_CPU_ARCH_OK", "ARM_THUMB2_OK", "ARM_NEON_OK", "ARM_FP_ARCH_MAX",
                "ARM_FLOAT_ABI", "ARM_EABI")
# The shell's own variables and the locale (LANG, LC_*): a recipe may not set them
# (recipe.sh's recipe_reserved is the same list).
RESERVED_NAMES = ("CDPATH", "ENV", "HOME", "IFS", "LANG", "LINENO", "OLDPWD", "OPTARG",
                  "OPTIND", "PATH", "PPID", "PS1", "PS2", "PS4", "PWD", "SHELL")
NAME_FIRST = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
NAME_REST = NAME_FIRST + "0123456789_"
# Nothing in a value is expanded, so nothing that sh would expand may be in it.
NOT_IN_VALUE = '$`\\"'


class RecipeError(Exception):
    pass


def names():
    return sorted(f[:-4] for f in os.listdir(HERE) if f.endswith(".env"))


def check_name(name, where):
    if not name or name[0] not in NAME_FIRST or any(c not in NAME_REST for c in name):
        raise RecipeError("%s: bad name '%s' (A-Z, then A-Z, 0-9, _)" % (where, name))
    if name in RESERVED_NAMES or name.startswith("LC_"):
        raise RecipeError("%s: %s is the shell's own, not a recipe's" % (where, name))


def parse_recipe(text, label):
    """A recipe's text into a dict, by recipe.sh's rules: each line is blank (spaces and
    tabs), a comment (# after any blanks) or NAME="value", NAME an upper-case letter then
    A-Z, 0-9, _ (not a reserved name), value any characters but $ ` \\ and " (nothing
    is expanded).  Anything else: RecipeError naming LABEL and the line."""
    values = {}
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()                      # the newline that ends the last line
    for number, line in enumerate(lines, 1):
        where = "%s:%d" % (label, number)
        if line.lstrip(" \t") == "" or line.lstrip(" \t").startswith("#"):
            continue
        name, sep, value = line.partition("=")
        if not sep:
            raise RecipeError('%s: not a NAME="value" line' % where)
        check_name(name, where)
        if len(value) < 2 or value[0] != '"' or value[-1] != '"':
            raise RecipeError("%s: %s: the value is not in double quotes" % (where, name))
        value = value[1:-1]
        if any(c in value for c in NOT_IN_VALUE):
            raise RecipeError('%s: %s: a value cannot hold $ ` \\ or " (nothing in it '
                              'is expanded)' % (where, name))
        values[name] = value
    return values


def read_recipe(path):
    """A recipe file (toolchains/TARGET.env, distros/BOARD/board.env) as a dict."""
    try:
        with open(path, encoding="utf-8", newline="") as f:
            text = f.read()
    except UnicodeDecodeError as e:
        raise RecipeError("%s: not UTF-8 (%s)" % (path, e))
    return parse_recipe(text, path)


def recipe_lines(values):
    """The recipe format of VALUES (what --shell prints; recipe.sh reads it back)."""
    lines = []
    for name in sorted(values):
        check_name(name, "targets.py --shell")
        if any(c in values[name] for c in NOT_IN_VALUE + "\n"):
            raise RecipeError("%s=%r: a recipe value cannot hold $ ` \\ \" or a newline"
                              % (name, values[name]))
        lines.append('%s="%s"' % (name, values[name]))
    return lines


def recipe(target):
    """The recipe as written (no environment applied)."""
    path = os.path.join(HERE, target + ".env")
    if not os.path.exists(path):
        raise RecipeError("unknown target %r (known: %s)" % (target, ", ".join(names())))
    values = read_recipe(path)
    required = REQUIRED + (ARM_REQUIRED if values.get("ELF_MACHINE") == "EM_ARM" else ())
    missing = [name for name in required if name not in values]
    if missing or values["TARGET"] != target:
        raise RecipeError("%s: missing %s or TARGET is not %s" % (path, missing, target))
    return values


def default_target(env=os.environ):
    br2 = env.get("BR2_ARCH")
    if not br2:
        raise RecipeError("no target given and BR2_ARCH is not set")
    if br2 not in BR2_TARGETS:
        raise RecipeError("BR2_ARCH=%s: no recipe (known: %s)" % (br2, ", ".join(BR2_TARGETS)))
    return BR2_TARGETS[br2]


def host_deb_arch():
    try:
        return subprocess.run(["dpkg", "--print-architecture"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), "")


def resolve(target=None, env=None):
    """The recipe with the environment applied: everything cross_check.sh needs."""
    env = os.environ if env is None else env
    target = target or default_target(env)
    r = dict(recipe(target))
    br2 = env.get("BR2_ARCH")
    if br2 and BR2_TARGETS.get(br2) != target and not (br2 == "arm" and target == "armv7l"):
        raise RecipeError("BR2_ARCH=%s does not describe target %s" % (br2, target))
    cache = env.get("CROSS_CACHE") or CACHE
    r["CACHE"] = cache
    r["OUT"] = os.path.join(cache, target)
    r["COMMON_CFLAGS"] = COMMON_CFLAGS
    if env.get("CROSS_CFLAGS"):
        r["ARCH_CFLAGS"] = env["CROSS_CFLAGS"]
    # The compiler: Buildroot's TARGET_CROSS, a kernel-style CROSS_COMPILE, the recipe.
    prefix = env.get("TARGET_CROSS") or env.get("CROSS_COMPILE") or r["CROSS_PREFIX"]
    r["CROSS_PREFIX"] = prefix
    r["CC"] = prefix + "gcc"
    r["READELF"] = prefix + "readelf"
    r["TOOL_PATH"] = os.path.join(env["HOST_DIR"], "bin") if env.get("HOST_DIR") else ""
    r["HOST_IS_TARGET"] = "yes" if host_deb_arch() == r["DEB_ARCH"] else "no"
    # Sysroot and the target's Python headers / static library.
    staging = env.get("STAGING_DIR")
    if staging:
        # Buildroot: headers in $STAGING_DIR/usr/include/python3.11 (pyconfig.h there,
        # no multiarch wrapper), libraries in $STAGING_DIR/usr/lib.
        r["SYSROOT"] = staging
        r["PYDEV_KIND"] = "buildroot"
        r["PY_INCLUDE"] = os.path.join(staging, "usr", "include", "python" + PYVER)
        r["PY_INCLUDES"] = "-I" + r["PY_INCLUDE"]
        r["PY_LIBPL"] = os.path.join(staging, "usr", "lib")
        r["PYDEV_ROOT"] = staging
    else:
        r["SYSROOT"] = ""
        if env.get("PYDEV_ROOT"):
            root, kind = env["PYDEV_ROOT"], "given"
        elif r["HOST_IS_TARGET"] == "yes" and os.path.exists(
                "/usr/include/%s/python%s/pyconfig.h" % (r["GNU_TRIPLET"], PYVER)):
            root, kind = "/", "host"
        else:
            root, kind = os.path.join(cache, "pydev", r["DEB_ARCH"], "root"), "cache"
        r["PYDEV_ROOT"] = root
        r["PYDEV_KIND"] = kind
        inc = os.path.join(root, "usr", "include")
        # Debian layout: Python.h and the pyconfig.h wrapper in include/python3.11, the
        # real pyconfig.h in include/<triplet>/python3.11, chosen by the wrapper from the
        # compiler's own macros (armel vs armhf: __ARM_PCS_VFP).
        r["PY_INCLUDE"] = os.path.join(inc, "python" + PYVER)
        r["PY_INCLUDES"] = "-I%s -I%s" % (r["PY_INCLUDE"], inc)
        r["PY_LIBPL"] = os.path.join(root, "usr", "lib", "python" + PYVER,
                                     "config-%s-%s" % (PYVER, r["GNU_TRIPLET"]))
    r["PYCONFIG"] = (os.path.join(r["PY_INCLUDE"], "pyconfig.h") if staging else
                     os.path.join(r["PYDEV_ROOT"], "usr", "include", r["GNU_TRIPLET"],
                                  "python" + PYVER, "pyconfig.h"))
    r["SYSROOT_FLAG"] = "--sysroot=" + r["SYSROOT"] if r["SYSROOT"] else ""
    return r


def debs(targets):
    seen = []
    for target in targets:
        for deb in recipe(target)["CROSS_DEBS"].split():
            if deb not in seen:
                seen.append(deb)
    return seen


def main(argv):
    args = argv[1:]
    try:
        if args == ["--list"]:
            print("\n".join(names()))
        elif args and args[0] == "--debs":
            foreign = [t for t in names() if resolve(t, env={})["HOST_IS_TARGET"] == "no"]
            print(" ".join(debs(args[1:] or foreign)))
        elif args and args[0] in ("--shell", "--json") and len(args) <= 2:
            r = resolve(args[1] if len(args) == 2 else None)
            if args[0] == "--json":
                print(json.dumps(r, indent=1, sort_keys=True))
            else:
                print("\n".join(recipe_lines(r)))
        else:
            print(__doc__.strip(), file=sys.stderr)
            return 2
    except RecipeError as e:
        print("targets: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
