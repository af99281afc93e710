"""``schema-init import-units``: systemd units, LSB init scripts and what systemd's
generators make, written out as .svc files.

Two callers.  A person: the files on standard output or in ``--out DIR``.  PID 1: at
boot and at each reload it runs this program as a short-lived child (``--into DIR``,
``loader.UnitImport``) and reads DIR with its own .svc loader, so parsing and
converting units never happens inside PID 1, as systemd's generators run outside
systemd.  ``--into`` replaces DIR as a whole: the files go into a fresh directory
``DIR.PID``, then a link ``DIR.new.PID`` pointing at it is renamed over ``DIR``; the file
``DIR/diagnostics`` (``write_diagnostics``) holds every warning and error of the
import, what was wanted and not imported and why, and what the generators said.

Not on PID 1's path (argparse is fine here); in the static binary all the same, so no
module whose C half it lacks (subprocess) and none that brings the compressors along
(shutil, tempfile).
"""

import argparse
import os
import sys

from schema_init.core import config
from schema_init.pid1 import loader
from schema_init.units import generators, lsb, units

GENERATED_MARK = "# Imported by schema-init import-units"
DIAGNOSTICS = loader.UnitImport.DIAGNOSTICS
HEADER = loader.UnitImport.HEADER
NOT_IMPORTED = loader.UnitImport.NOT_IMPORTED
DEPENDENCY_KEYS = ("Wants", "Requires", "BindsTo", "Requisite", "Upholds")
MAX_SCRIPTS = 1000
# Unit kinds whose work is done otherwise (mounts and swap: /etc/fstab, the services
# directory's; devices, slices, scopes: systemd's own): not said as "not imported".
DONE_OTHERWISE = frozenset(("mount", "swap", "device", "slice", "scope"))


def default_unit_dirs(root=""):
    """A machine's unit directories in systemd's order (``generators.SEARCH_PATH``: the
    generators' output among them), those that exist; one of /lib/systemd/system and
    /usr/lib/systemd/system when they are the same directory (Debian's merged /usr)."""
    found, seen = [], set()
    for directory in generators.SEARCH_PATH:
        path = root.rstrip("/") + directory
        if not os.path.isdir(path):
            continue
        real = os.path.realpath(path)
        if real in seen:
            continue
        seen.add(real)
        found.append(path)
    return found


class Wrapped(argparse.HelpFormatter):
    """argparse's help laid out without textwrap, which the static binary leaves out
    (build/stdlib_excludes.py): the words filled greedily to the width."""

    def _split_lines(self, text, width):
        return fill(text, width)

    def _fill_text(self, text, width, indent):
        return "\n".join(indent + line for line in fill(text, width - len(indent)))


def fill(text, width):
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = line + " " + word if line else word
    return lines + [line] if line else lines


def parse(argv):
    parser = argparse.ArgumentParser(
        prog="schema-init import-units", formatter_class=Wrapped,
        description="Write systemd units as .svc files: by default the units "
                    "multi-user.target reaches (enabled ones), as schema-init imports them "
                    "at boot, with the enabled LSB init scripts no unit replaces.")
    parser.add_argument("dirs", nargs="*", metavar="DIR",
                        help="unit directories, the first winning (default: the machine's, "
                             "in systemd's order, with the generators' output directories; "
                             "init scripts are imported only then)")
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
                        help="look in DIR/etc/systemd/system ... and DIR/etc/init.d (a "
                             "machine's root)")
    parser.add_argument("--generators", action="store_true",
                        help="run systemd's generators first (their output directories "
                             "emptied); with --root, chrooted into it")
    parser.add_argument("--into", metavar="DIR",
                        help="PID 1's way: every .svc file and the file 'diagnostics' in "
                             "DIR, replaced as a whole")
    parser.add_argument("--taken", metavar="NAME,...", action="append", default=[],
                        help="names of .svc services and groups (which win over units of "
                             "the same name); repeatable")
    parser.add_argument("--token", default="",
                        help="with --into: written into the diagnostics, for the caller")
    parser.add_argument("--subreaper", metavar="PATH",
                        help="the schema-subreaper the services use (default: the one "
                             "beside this program)")
    return parser.parse_args(argv)


def main(argv):
    options = parse(argv)
    root = options.root.rstrip("/")
    machine = not options.dirs
    taken = [name for chunk in options.taken for name in chunk.split(",") if name]
    services = options.services or options.out
    if services and os.path.isdir(services) and not options.into:
        loaded = loader.load_directory(services)
        taken += [s.name for s in loaded.services if not _ours(s.path)] + \
            [g.name for g in loaded.groups]
    found = collect(options.dirs, root, taken, everything=options.all, machine=machine,
                    run_generators=options.generators, at_boot=bool(options.into),
                    subreaper=options.subreaper or loader.own_subreaper())
    if options.into:
        write_into(options.into, found, options.token)
        return 0
    for diag in sorted(found.diagnostics, key=config.Diagnostic.sort_key):
        sys.stderr.write(diag.format() + "\n")
    for name, why in found.result.skipped:
        sys.stderr.write("import-units: skipped %s: %s\n" % (name, why))
    for name, wanted_by, _path, why in found.missing:
        sys.stderr.write("import-units: not imported %s (wanted by %s): %s\n"
                         % (name, wanted_by, why))
    if options.out:
        write_files(found.result.generated, options.out)
        write_scripts(found.scripts, options.out)
    else:
        sys.stdout.flush()
        n = 0
        for generated in found.result.generated:
            text, _ = generated.render()
            sys.stdout.buffer.write(_bytes(("\n" if n else "") + "### %s\n%s"
                                           % (generated.file_name, text)))
            n += 1
        for name, text in found.scripts:
            sys.stdout.buffer.write(_bytes(("\n" if n else "") + "### %s.svc\n%s"
                                           % (name, text)))
            n += 1
        sys.stdout.buffer.flush()
    errors = sum(1 for d in found.diagnostics if d.severity == config.ERROR)
    made = len(found.result.generated) + len(found.scripts)
    warnings = len(found.diagnostics) - errors
    sys.stderr.write("import-units: %d service file%s from %s, %d warning%s, %d error%s\n" % (
        made, "" if made == 1 else "s", " ".join(found.dirs), warnings,
        "" if warnings == 1 else "s", errors, "" if errors == 1 else "s"))
    return 1 if errors else 0


class Found:
    """What one import found: the units' ``result`` (``units.ImportResult``), the init
    scripts as ``[(name, .svc text)]``, every diagnostic, and ``missing``: what was
    wanted and is not imported for a reason the administrator should hear, as
    ``[(name, wanted by, path, why)]``."""

    def __init__(self):
        self.dirs = []
        self.result = None
        self.scripts = []
        self.diagnostics = []
        self.missing = []


def collect(dirs, root, taken, everything=False, machine=False, run_generators=False,
            at_boot=False, subreaper=units.SUBREAPER):
    """Generators (when asked), then the init scripts no unit replaces (a machine's
    directories only), then the units, then each script's ordering against all of
    them: a ``Found``.  ``dirs``: the unit directories (none: the root's, as they are
    once the generators have run)."""
    found = Found()
    if run_generators:
        for report in generators.run(root or "/"):
            for severity, message in report.lines():
                found.diagnostics.append(config.Diagnostic(
                    report.path, 0, "generator", severity, message))
    dirs = found.dirs = list(dirs or default_unit_dirs(root))
    inner = loader.UnitDirs(dirs, root)
    source = WatchedSource(inner)
    scripts = read_scripts(root, set(taken), inner) if machine else []
    names = [script.name for script in scripts]
    path_test = condition_test = None
    if at_boot:
        path_test = (lambda flag, path: loader.path_test(flag, root + path)) if root \
            else loader.path_test
        condition_test = loader.condition_test
    result = units.import_units(source, list(taken) + names, everything=everything,
                                subreaper=subreaper, path_test=path_test,
                                condition_test=condition_test)
    specs, diagnostics = units.services_from(result)
    found.result = result
    found.diagnostics += diagnostics
    known = set(taken) | {spec.name for spec in specs} | set(names)
    provided = {}
    for script in scripts:
        for name in script.provides():
            provided.setdefault(name, script.name)
    for script in scripts:
        try:
            text, diags = lsb.convert(script, known, provided)
        except Exception as exc:      # noqa: B902 - this script is refused, not the import
            found.diagnostics.append(config.Diagnostic(
                script.path, 0, None, config.ERROR, "cannot be converted (%s: %s); not "
                "imported" % (type(exc).__name__, exc)))
            continue
        found.scripts.append((script.name, text))
        found.diagnostics += diags
    found.missing = not_imported(source, result, set(taken), known, everything)
    return found


def read_scripts(root, taken, source):
    """The enabled init scripts of ``root``/etc/init.d that neither a unit nor a .svc file
    replaces: ``[lsb.Script]``."""
    base = root + "/etc/init.d"
    try:
        entries = sorted(os.listdir(base))[:MAX_SCRIPTS]
    except OSError:
        return []
    listings = {}
    for level in lsb.RUN_LEVELS:
        try:
            listings[level] = os.listdir(root + "/etc/" + level)[:MAX_SCRIPTS]
        except OSError:
            listings[level] = []
    scripts = []
    for entry in entries:
        name = lsb.service_name(entry)
        if name is None or name in taken or not lsb.enabled(entry, listings):
            continue
        if source.entry(name + ".service") is not None:
            continue                        # the unit wins (a masked one too)
        path = base + "/" + entry
        if not os.access(path, os.X_OK):
            continue
        data, _reason = loader.read_file(path, lsb.READ_LIMIT * 16)
        if data is None:
            continue
        scripts.append(lsb.Script(name, "/etc/init.d/" + entry, lsb.parse_header(data)))
    return scripts


class WatchedSource:
    """``loader.UnitDirs`` as ``units`` reads it, noting what wanted what (the .wants/
    links and the Wants=/Requires=/BindsTo= lines of every unit read) and which names
    were asked for and not found: ``not_imported`` says why a wanted unit is missing."""

    def __init__(self, inner):
        self.inner = inner
        self.wanted_by = {}            # name -> (the unit that wants it, where it says so)
        self.asked = []                # names looked up and not found, in order

    def entry(self, name):
        found = self.inner.entry(name)
        if found is None:
            if name not in self.asked:
                self.asked.append(name)
        elif found[0] == "file":
            try:
                entries, _ = units.parse_unit_text(found[1], found[2])
            except Exception:          # noqa: B902 - only a note is lost
                entries = []
            for entry in entries:
                if entry.section == "Unit" and entry.key in DEPENDENCY_KEYS:
                    for word in entry.value.split():
                        self.wanted_by.setdefault(word, (name, "%s:%d" % (entry.path,
                                                                          entry.line)))
        return found

    def wants(self, name):
        found = self.inner.wants(name)
        for wanted in found:
            self.wanted_by.setdefault(wanted, (name, self._link(name, wanted)))
        return found

    def _link(self, name, wanted):
        for directory in getattr(self.inner, "directories", ()):
            for suffix in (".wants", ".requires"):
                sub = "%s/%s%s" % (directory, name, suffix)
                if wanted in self.inner.listing(sub):
                    return sub + "/" + wanted
        return name

    def dropins(self, name):
        return self.inner.dropins(name)

    def names(self):
        return self.inner.names()


def _has_file(inner, name):
    entry = inner.entry(name)
    return entry is not None and entry[0] == "file"


def not_imported(source, result, taken, known, everything):
    """``[(name, wanted by, path, why)]``: units the walk reached and did not import for
    a reason the administrator should hear (not found, a path or automount unit, a false
    condition, masked ...).  Left out, as nothing is lost: what a .svc file provides,
    the early boot and the mounts (the services directory's), systemd's cgroup tree and
    devices, and what schema-init does itself."""
    inner = source.inner
    early = set()
    if not everything:
        for target in sorted(units.EARLY_TARGETS):
            early.update(inner.wants(target))
    out, said = [], set()

    def provided(name):
        base, _, kind = name.rpartition(".")
        if kind in ("mount", "swap") and _has_file(inner, name):
            return False      # a package's or a generator's (rpc_pipefs): not fstab's
        return base in taken or base in known or name in early or \
            kind in DONE_OTHERWISE or units.init_own(name) is not None

    def wanted(name):
        who, where = source.wanted_by.get(name, ("multi-user.target", name))
        return who, where

    for name, why in result.skipped:
        if provided(name) or name in said:
            continue
        said.add(name)
        who, where = wanted(name)
        entry = inner.entry(name)
        path = entry[1] if entry is not None and entry[0] in ("file", "masked", "error") \
            else where
        out.append((name, who, path, why))
    for name in source.asked:
        kind = name.rpartition(".")[2]
        if kind not in ("service", "socket", "timer") or provided(name) or name in said:
            continue
        if "@" in name:
            prefix, _, rest = name.partition("@")
            if inner.entry("%s@.%s" % (prefix, rest.rpartition(".")[2])) is not None:
                continue                   # an instance of a template that exists
        if name not in source.wanted_by:
            continue                       # looked up by the walk, wanted by nobody
        said.add(name)
        who, where = wanted(name)
        out.append((name, who, where, "no unit file of that name (looked in %s)"
                    % " ".join(getattr(inner, "directories", ()))))
    return out


# --- writing ------------------------------------------------------------------------

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


def write_scripts(scripts, directory):
    """The init scripts' .svc files, as ``write_files`` writes the units'."""
    os.makedirs(directory, exist_ok=True)
    for name, text in scripts:
        path = os.path.join(directory, name + ".svc")
        if os.path.lexists(path) and not _ours(path):
            sys.stderr.write("import-units: %s exists and was not written by import-units; "
                             "left alone\n" % path)
            continue
        with open(path + ".tmp", "wb") as f:
            f.write(_bytes(text))
        os.replace(path + ".tmp", path)


def write_into(directory, found, token=""):
    """PID 1's directory: every .svc file and the diagnostics in ``DIR.PID``, then the
    link ``DIR.new.PID`` to it renamed over ``DIR``, so a reader sees the old import or
    the new one, whole; the import before is removed."""
    directory = directory.rstrip("/")
    parent = os.path.dirname(directory) or "."
    os.makedirs(parent, 0o755, exist_ok=True)
    fresh = "%s.%d" % (directory, os.getpid())
    if os.path.lexists(fresh):
        _remove(fresh)
    os.mkdir(fresh, 0o755)
    for item in found.result.generated:
        path = os.path.join(fresh, item.file_name)
        if item.template_of is not None:
            os.symlink(item.template_of.file_name, path)
        else:
            with open(path, "wb") as f:
                f.write(_bytes(item.render()[0]))
    for name, text in found.scripts:
        if os.path.lexists(os.path.join(fresh, name + ".svc")):
            continue
        with open(os.path.join(fresh, name + ".svc"), "wb") as f:
            f.write(_bytes(text))
    with open(os.path.join(fresh, DIAGNOSTICS), "wb") as f:
        f.write(_bytes(diagnostics_text(found, token)))
    previous = os.path.realpath(directory) if os.path.islink(directory) else None
    link = "%s.new.%d" % (directory, os.getpid())
    if os.path.lexists(link):
        _remove(link)
    os.symlink(os.path.basename(fresh), link)
    if os.path.isdir(directory) and not os.path.islink(directory):
        generators.remove_tree(directory)        # not ours to keep: made by something else
    os.replace(link, directory)
    stem = os.path.basename(directory) + "."
    for entry in os.listdir(parent):             # the import before, and any a crash left
        rest = entry[len(stem):]
        rest = rest[4:] if rest.startswith("new.") else rest
        if entry.startswith(stem) and rest.isdigit() and rest.isascii() and \
                os.path.join(parent, entry) != fresh:
            _remove(os.path.join(parent, entry))
    if previous and os.path.lexists(previous) and previous != os.path.realpath(fresh):
        _remove(previous)


def diagnostics_text(found, token=""):
    """The diagnostics file PID 1 reads (``loader.UnitImport.read_diagnostics``): a header
    line with the caller's token, one line a diagnostic (severity, path, line, key,
    message, tab-separated, escaped), the not-imported ones under the key
    ``NOT_IMPORTED``, and ``end``."""
    lines = ["%s\t%s" % (HEADER, _escape(token))]
    diags = sorted(found.diagnostics, key=config.Diagnostic.sort_key)
    diags += [config.Diagnostic(path, 0, NOT_IMPORTED, config.WARNING,
                                "%s (wanted by %s): %s" % (name, who, why))
              for name, who, path, why in found.missing]
    for diag in diags:
        lines.append("\t".join(_escape(str(field)) for field in (
            diag.severity, diag.path, diag.line, diag.key or "", diag.message)))
    lines.append("end\t%d" % len(diags))
    return "\n".join(lines) + "\n"


def _escape(text):
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n") \
        .replace("\r", "\\r")


def _remove(path):
    try:
        generators.remove_tree(path)
    except OSError:
        pass


def _bytes(text):
    """The .svc text as the unit's own bytes: a unit's bytes that are not UTF-8 were read
    as lone surrogates (surrogateescape) and go out as they came in."""
    return text.encode("utf-8", "surrogateescape")


def _ours(path):
    if os.path.islink(path):
        return True
    data, _ = loader.read_file(path, 4096)
    return data is not None and (data.startswith(GENERATED_MARK.encode()))
