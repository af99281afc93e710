"""``schema-init import-units``: systemd unit files written out as .svc files.

Not on PID 1's path (argparse is fine here): PID 1 imports units through
``loader.add_units`` and never loads this module.
"""

import argparse
import os
import sys

from schema_init.core import config
from schema_init.pid1 import loader
from schema_init.units import units

DEFAULT_DIRS = ("/etc/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system")
GENERATED_MARK = "# Imported by schema-init import-units"


def default_unit_dirs(root=""):
    """/etc/systemd/system, then /lib/systemd/system and /usr/lib/systemd/system (one
    of them when they are the same directory, as with Debian's merged /usr)."""
    found, seen = [], set()
    for directory in DEFAULT_DIRS:
        path = root.rstrip("/") + directory
        if not os.path.isdir(path):
            continue
        real = os.path.realpath(path)
        if real in seen:
            continue
        seen.add(real)
        found.append(path)
    return found


def parse(argv):
    parser = argparse.ArgumentParser(
        prog="schema-init import-units",
        description="Write systemd units as .svc files: by default the units "
                    "multi-user.target reaches (enabled ones), as schema-init --units "
                    "imports them at boot.")
    parser.add_argument("dirs", nargs="*", metavar="DIR",
                        help="unit directories, the first winning (default: "
                             "/etc/systemd/system /lib/systemd/system)")
    parser.add_argument("--all", action="store_true",
                        help="every .service/.socket/.timer of the directories, enabled "
                             "or not (templates as templates)")
    parser.add_argument("--services", metavar="DIR",
                        help="a .svc directory: its services win over units of the same "
                             "name, and its groups and services are what T.target in "
                             "After= can mean (default: the --out directory, its files "
                             "import-units wrote not counted)")
    parser.add_argument("--out", metavar="DIR",
                        help="write NAME.svc files there (instances as links to their "
                             "template); default: all of them to standard output")
    parser.add_argument("--root", metavar="DIR", default="",
                        help="look in DIR/etc/systemd/system ... (a machine's root)")
    return parser.parse_args(argv)


def main(argv):
    options = parse(argv)
    dirs = options.dirs or default_unit_dirs(options.root)
    svc_names = ()
    services = options.services or options.out
    if services and os.path.isdir(services):
        loaded = loader.load_directory(services)
        svc_names = [s.name for s in loaded.services if not _ours(s.path)] + \
            [g.name for g in loaded.groups]
    result = units.import_units(loader.UnitDirs(dirs, options.root), svc_names,
                                everything=options.all)
    _specs, diagnostics = units.services_from(result)
    for diag in sorted(diagnostics, key=config.Diagnostic.sort_key):
        sys.stderr.write(diag.format() + "\n")
    for name, why in result.skipped:
        sys.stderr.write("import-units: skipped %s: %s\n" % (name, why))
    if options.out:
        write_files(result.generated, options.out)
    else:
        sys.stdout.flush()
        for n, generated in enumerate(result.generated):
            text, _ = generated.render()
            sys.stdout.buffer.write(_bytes(("\n" if n else "") + "### %s\n%s"
                                           % (generated.file_name, text)))
        sys.stdout.buffer.flush()
    errors = sum(1 for d in diagnostics if d.severity == config.ERROR)
    sys.stderr.write("import-units: %d service file%s from %s, %d warning%s, %d error%s\n" % (
        len(result.generated), "" if len(result.generated) == 1 else "s", " ".join(dirs),
        len(diagnostics) - errors, "" if len(diagnostics) - errors == 1 else "s",
        errors, "" if errors == 1 else "s"))
    return 1 if errors else 0


def write_files(generated, directory):
    """Each file written anew (through a temporary name); a file there that import-units
    did not write is left alone, with a warning."""
    os.makedirs(directory, exist_ok=True)
    for item in generated:
        path = os.path.join(directory, item.file_name)
        if os.path.lexists(path) and not _ours(path):
            sys.stderr.write("import-units: %s exists and was not written by import-units; "
                             "left alone\n" % path)
            continue
        tmp = path + ".tmp"
        if os.path.lexists(tmp):
            os.unlink(tmp)
        if item.template_of is not None:
            os.symlink(item.template_of.file_name, tmp)
        else:
            with open(tmp, "wb") as f:
                f.write(_bytes(item.render()[0]))
        os.replace(tmp, path)


def _bytes(text):
    """The .svc text as the unit's own bytes: a unit's bytes that are not UTF-8 were read
    as lone surrogates (surrogateescape) and go out as they came in."""
    return text.encode("utf-8", "surrogateescape")


def _ours(path):
    if os.path.islink(path):
        return True
    data, _ = loader.read_file(path, 4096)
    return data is not None and data.startswith(GENERATED_MARK.encode())
