#!/usr/bin/env python3
"""The target recipes (toolchains/<target>.env) resolved for this machine and environment.

The .env files are plain data (NAME="value" lines, valid sh); this module is the one
place that turns a recipe into a toolchain: which compiler (Buildroot's TARGET_CROSS or
CROSS_COMPILE win over the recipe's Debian cross compiler), which sysroot, where the
target's Python 3.11 headers and libpython3.11.a are (Buildroot's STAGING_DIR, else
PYDEV_ROOT, else the host's own when the target is the host, else the cache that
toolchains/fetch_pydev.sh fills under build/tmp/cross/pydev/<deb-arch>/root).

    targets.py --list                 the known targets
    targets.py --shell [TARGET]       sh assignments for cross_check.sh (eval them)
    targets.py --json [TARGET]        the same as JSON
    targets.py --debs [TARGET...]     the Debian packages the targets' toolchains need
                                      (default: every target that is not this machine)

TARGET may be omitted when BR2_ARCH is set (aarch64, x86_64; arm means armv6l).
Standard library only: it runs under any Python 3.
"""

import json
import os
import platform
import shlex
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


class RecipeError(Exception):
    pass


def names():
    return sorted(f[:-4] for f in os.listdir(HERE) if f.endswith(".env"))


def parse_env(path):
    """NAME="value" lines (sh syntax without expansions) into a dict."""
    values = {}
    with open(path) as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            name, sep, value = line.partition("=")
            if not sep or not name.isidentifier() or "$" in value or "`" in value:
                raise RecipeError("%s:%d: not a NAME=\"value\" line" % (path, number))
            words = shlex.split(value)
            values[name] = words[0] if len(words) == 1 else " ".join(words)
    return values


def recipe(target):
    """The recipe as written (no environment applied)."""
    path = os.path.join(HERE, target + ".env")
    if not os.path.exists(path):
        raise RecipeError("unknown target %r (known: %s)" % (target, ", ".join(names())))
    values = parse_env(path)
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
                for name in sorted(r):
                    print("%s=%s" % (name, shlex.quote(r[name])))
        else:
            print(__doc__.strip(), file=sys.stderr)
            return 2
    except RecipeError as e:
        print("targets: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
