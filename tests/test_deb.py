"""The Debian package (issue 11, item 6): build/mkdeb.sh, distros/debian/package/.

Fast: the package is built around a small fake executable (a shell script that answers
--check) and the tests' own services, then inspected with dpkg-deb and installed with
dpkg into scratch roots (``--root=ROOT --force-script-chrootless``: the maintainer
scripts run on the host with DPKG_ROOT=ROOT, and dpkg-divert honours it) holding a
fake init package laid out like Debian's systemd-sysv, sysvinit-core, or a later
release's /usr-only systemd.  Removal and purge must give back exactly the root that
was there before.
"""

import gzip
import os
import re
import stat
import subprocess

import pytest

from conftest import ROOT

MKDEB = os.path.join(ROOT, "build", "mkdeb.sh")
PACKAGE = os.path.join(ROOT, "distros", "debian", "package")
REAL_SERVICES = os.path.join(ROOT, "services", "debian")
DPKG = ["dpkg", "--force-not-root", "--force-script-chrootless"]

POWER = ("reboot", "poweroff", "halt", "shutdown", "telinit", "runlevel")
LINKS = ("schema-ctl", "schema-subreaper", "schema-powerkey") + POWER
DIVERTED = {"/sbin/" + n for n in POWER} | {"/usr/sbin/" + n for n in POWER} \
    | {"/bin/systemctl", "/usr/bin/systemctl"}

FAKE_INIT = """#!/bin/sh
# stands in for the static binary: --check answers FAKE_CHECK_STATUS (default 0)
case "$1" in
    --check) echo "checked $2"; exit "${FAKE_CHECK_STATUS:-0}" ;;
esac
echo "fake schema-init as $(basename "$0")"
"""

SAMPLE_SERVICES = {
    "alpha.svc": "exec=/bin/sleep\nargs=1000\n",
    "tty@.svc": "exec=/sbin/agetty\nargs=$INSTANCE\nsession=1\n",
}
SAMPLE_INSTANCES = {"tty@1.svc": "tty@.svc"}


def run(args, env=None, check=True):
    result = subprocess.run(args, capture_output=True, text=True,
                            env=None if env is None else {**os.environ, **env})
    if check and result.returncode != 0:
        raise AssertionError("%s: exit %d\n%s%s" % (args, result.returncode,
                                                    result.stdout, result.stderr))
    return result


def upstream_version():
    with open(os.path.join(ROOT, "schema_init", "__init__.py")) as f:
        return re.search(r'^__version__ = "(.*)"$', f.read(), re.M).group(1)


def mkdeb(tmp, binary, arch=None, services=None, env=None, check=True):
    out = tmp / "out"
    environ = {"OUTDIR": str(out), "DEB_COMPRESS": "gzip", **(env or {})}
    if services is not None:
        environ["SERVICES"] = str(services)
    result = run([MKDEB, str(binary)] + ([arch] if arch else []), env=environ, check=check)
    return result, out


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(the .deb, its version) built from the fake executable and the sample services."""
    tmp = tmp_path_factory.mktemp("deb")
    binary = tmp / "schema-init"
    binary.write_text(FAKE_INIT)
    binary.chmod(0o755)
    services = tmp / "services"
    services.mkdir()
    for name, text in SAMPLE_SERVICES.items():
        (services / name).write_text(text)
    for name, target in SAMPLE_INSTANCES.items():
        (services / name).symlink_to(target)
    result, out = mkdeb(tmp, binary, "amd64", services)
    deb = result.stdout.strip()
    assert os.path.dirname(deb) == str(out)
    version = run(["dpkg-deb", "-f", deb, "Version"]).stdout.strip()
    return deb, version


# --- the archive ---------------------------------------------------------------------

def listing(deb):
    """path -> (mode string, link target or None) from dpkg-deb -c."""
    entries = {}
    for line in run(["dpkg-deb", "-c", deb]).stdout.splitlines():
        mode, owner, _size, _date, _time, rest = line.split(None, 5)
        assert owner == "root/root", line
        path, _, target = rest.partition(" -> ")
        entries[path[1:].rstrip("/") or "/"] = (mode, target or None)
    return entries


def test_the_name_version_and_control_fields(built):
    deb, version = built
    assert re.fullmatch(re.escape(upstream_version()) + r"-\d+", version)
    assert os.path.basename(deb) == "schema-init_%s_amd64.deb" % version
    fields = run(["dpkg-deb", "-f", deb]).stdout
    assert "Package: schema-init\n" in fields and "Architecture: amd64\n" in fields
    assert re.search(r"^Installed-Size: \d+$", fields, re.M)
    assert "Depends" not in fields                    # static: nothing at all


def test_the_files_their_modes_and_links(built):
    entries = listing(built[0])
    assert entries["/usr/sbin/schema-init"] == ("-rwxr-xr-x", None)
    assert entries["/usr/sbin/schema-init-switch"] == ("-rwxr-xr-x", None)
    for name in LINKS:
        assert entries["/usr/sbin/" + name] == ("lrwxrwxrwx", "schema-init"), name
    assert entries["/usr/bin/systemctl"] == ("lrwxrwxrwx", "../sbin/schema-init")
    for name in SAMPLE_SERVICES:
        assert entries["/etc/schema-init/services/" + name] == ("-rw-r--r--", None)
    # the instances are made by postinst, not shipped (see test_upgrade_...)
    assert "/etc/schema-init/services/tty@1.svc" not in entries
    for path in ("/usr/share/doc/schema-init/copyright",
                 "/usr/share/doc/schema-init/changelog.Debian.gz",
                 "/usr/share/doc/schema-init/README.Debian",
                 "/usr/share/man/man8/schema-init.8.gz", "/usr/share/man/man8/schema-ctl.8.gz",
                 "/usr/share/man/man8/schema-init-switch.8.gz",
                 "/usr/share/lintian/overrides/schema-init",
                 "/usr/share/schema-init/default-instances"):
        assert entries[path] == ("-rw-r--r--", None), path
    for path, (mode, _) in entries.items():
        if mode.startswith("d"):
            assert mode == "drwxr-xr-x", path
    # nothing of the other inits' names shipped but the links above
    assert not [p for p in entries if p.endswith(".distrib")]


def test_every_file_under_etc_is_a_conffile_and_the_maintainer_scripts_parse(built, tmp_path):
    run(["dpkg-deb", "-e", built[0], str(tmp_path / "control")])
    control = tmp_path / "control"
    conffiles = (control / "conffiles").read_text().split()
    under_etc = [p for p, (mode, _) in listing(built[0]).items()
                 if p.startswith("/etc/") and mode.startswith("-")]
    assert sorted(conffiles) == sorted(under_etc) and conffiles
    for script in ("preinst", "postinst", "prerm", "postrm"):
        path = control / script
        assert stat.S_IMODE(path.stat().st_mode) == 0o755, script
        assert path.read_text().startswith("#!/bin/sh\n"), script
        run(["sh", "-n", str(path)])
    run(["sh", "-n", os.path.join(PACKAGE, "schema-init-switch")])


def test_the_changelog_top_entry_is_the_package_version(built, tmp_path):
    run(["dpkg-deb", "-x", built[0], str(tmp_path)])
    with gzip.open(tmp_path / "usr/share/doc/schema-init/changelog.Debian.gz", "rt") as f:
        first = f.readline()
    assert first.startswith("schema-init (%s) " % built[1])
    instances = (tmp_path / "usr/share/schema-init/default-instances").read_text()
    assert instances == "".join("%s %s\n" % kv for kv in SAMPLE_INSTANCES.items())


def test_the_architecture_follows_the_target_and_must_match_the_elf_machine(tmp_path):
    services = tmp_path / "services"
    services.mkdir()
    (services / "a.svc").write_text("exec=/bin/true\n")
    for machine, arch, target in ((62, "amd64", "x86_64"), (183, "arm64", "aarch64"),
                                  (40, "armel", "armv6l")):
        binary = tmp_path / target / "schema-init"          # build/out/<target>/ style
        binary.parent.mkdir()
        header = bytearray(b"\x7fELF" + bytes(60))
        header[18:20] = machine.to_bytes(2, "little")
        binary.write_bytes(bytes(header))
        binary.chmod(0o755)
        if target != "x86_64":                               # from the directory's name
            deb = mkdeb(tmp_path, binary, services=services)[0].stdout.strip()
            assert deb.endswith("_%s.deb" % arch), deb
        deb = mkdeb(tmp_path, binary, services=services,
                    env={"TARGET": target})[0].stdout.strip()
        assert deb.endswith("_%s.deb" % arch), deb
        wrong = "amd64" if arch != "amd64" else "arm64"
        refused = mkdeb(tmp_path, binary, wrong, services, check=False)[0]
        assert refused.returncode != 0 and "ELF machine %d" % machine in refused.stderr


def test_the_services_directory_of_the_repository_is_what_the_package_ships(tmp_path):
    """services/debian: its files become the conffiles, its links the
    default instances (or, while it has no .svc file yet, mkdeb refuses)."""
    binary = tmp_path / "schema-init"
    binary.write_text(FAKE_INIT)
    binary.chmod(0o755)
    names = sorted(os.listdir(REAL_SERVICES)) if os.path.isdir(REAL_SERVICES) else []
    result, _ = mkdeb(tmp_path, binary, "amd64", check=False)
    if not any(n.endswith(".svc") for n in names):
        assert result.returncode != 0 and "no .svc files" in result.stderr
        return
    assert result.returncode == 0, result.stderr
    prefix = "/etc/schema-init/services/"
    conffiles = sorted(p[len(prefix):] for p, (mode, _) in listing(result.stdout.strip()).items()
                       if p.startswith(prefix) and mode[0] == "-")
    files = sorted(n for n in names if not os.path.islink(os.path.join(REAL_SERVICES, n)))
    assert conffiles == files
    run(["dpkg-deb", "-x", result.stdout.strip(), str(tmp_path / "x")])
    instances = (tmp_path / "x/usr/share/schema-init/default-instances").read_text()
    links = {n: os.readlink(os.path.join(REAL_SERVICES, n)) for n in names
             if os.path.islink(os.path.join(REAL_SERVICES, n))}
    assert dict(line.split() for line in instances.splitlines()) == links


# --- installed into a scratch root -----------------------------------------------------

# The fake init packages: path in the package -> link target, or file text.
LAYOUTS = {
    # Debian 12's systemd-sysv + systemd: /sbin/NAME -> /bin/systemctl
    "systemd-bookworm": dict(
        [("bin/systemctl", "#!/bin/sh\necho systemctl\n")] +
        [("sbin/" + n, ("->", "/bin/systemctl")) for n in POWER]),
    # Debian 12's sysvinit-core: real halt, shutdown, runlevel, init; links to them
    "sysvinit-bookworm": {
        "sbin/init": "#!/bin/sh\necho init\n", "sbin/halt": "#!/bin/sh\necho halt\n",
        "sbin/shutdown": "#!/bin/sh\necho shutdown\n",
        "sbin/runlevel": "#!/bin/sh\necho runlevel\n",
        "sbin/reboot": ("->", "halt"), "sbin/poweroff": ("->", "halt"),
        "sbin/telinit": ("->", "init")},
    # a later release: everything in /usr
    "systemd-usr": dict(
        [("usr/bin/systemctl", "#!/bin/sh\necho systemctl\n")] +
        [("usr/sbin/" + n, ("->", "../bin/systemctl")) for n in POWER]),
}


def fake_init_deb(tmp, layout, version="1"):
    tree = tmp / ("fake-init-" + version)
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN" / "control").write_text(
        "Package: fake-init\nVersion: %s\nArchitecture: all\n"
        "Maintainer: tests <tests@example.org>\nDescription: the init before\n" % version)
    files = dict(LAYOUTS[layout])
    files["etc/default/grub"] = "GRUB_CMDLINE_LINUX=quiet\n"        # a GRUB machine
    for d in ("usr/bin", "usr/sbin"):          # owned, like base-files' (dpkg removes
        (tree / d).mkdir(parents=True, exist_ok=True)   # directories nothing owns)
    for path, what in files.items():
        target = tree / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(what, tuple):
            target.symlink_to(what[1])
        else:
            target.write_text(what + "# version %s\n" % version)
            target.chmod(0o755 if "bin/" in path else 0o644)
    (tree / "DEBIAN" / "conffiles").write_text("/etc/default/grub\n")
    deb = tmp / ("fake-init_%s.deb" % version)
    run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(tree), str(deb)])
    return deb


def scratch_root(tmp, merged=True):
    root = tmp / "root"
    for d in ("usr/bin", "usr/sbin", "var/lib/dpkg/info", "var/lib/dpkg/updates"):
        (root / d).mkdir(parents=True)
    (root / "var/lib/dpkg/status").write_text("")
    if merged:
        (root / "bin").symlink_to("usr/bin")
        (root / "sbin").symlink_to("usr/sbin")
    else:
        (root / "bin").mkdir()
        (root / "sbin").mkdir()
    return root


def dpkg(root, *args, env=None, check=True):
    return run(DPKG + ["--root=%s" % root] + list(args), env=env, check=check)


def snapshot(root):
    """Every path but dpkg's database: ('l', target) | ('f', mode, bytes) | ('d', mode)."""
    state = {}
    for top, dirs, files in os.walk(root):
        rel = os.path.relpath(top, root)
        if rel == os.path.join("var", "lib", "dpkg"):
            dirs[:] = []
            continue
        for name in dirs + files:
            path = os.path.join(top, name)
            key = os.path.normpath(os.path.join(rel, name))
            info = os.lstat(path)
            if stat.S_ISLNK(info.st_mode):
                state[key] = ("l", os.readlink(path))
            elif stat.S_ISDIR(info.st_mode):
                state[key] = ("d", stat.S_IMODE(info.st_mode))
            else:
                with open(path, "rb") as f:
                    state[key] = ("f", stat.S_IMODE(info.st_mode), f.read())
    return state


def diversions(root):
    out = run(["dpkg-divert", "--root=%s" % root, "--list"]).stdout
    found = re.findall(r"^diversion of (\S+) to (\S+) by (\S+)$", out, re.M)
    assert len(found) == len(out.splitlines()), out
    return {path: (to, by) for path, to, by in found}


def physical(root, path):
    """The path under ROOT that PATH (absolute, in the scratch system) is stored at."""
    rel = path.lstrip("/")
    head = rel.split("/")[0]
    if os.path.islink(os.path.join(root, head)):
        rel = os.path.join(os.readlink(os.path.join(root, head)), *rel.split("/")[1:])
    return os.path.normpath(rel)


@pytest.mark.parametrize("layout,merged", [("systemd-bookworm", True),
                                           ("sysvinit-bookworm", True),
                                           ("sysvinit-bookworm", False),
                                           ("systemd-usr", True)])
def test_install_diverts_the_inits_names_and_removal_gives_the_root_back(
        built, tmp_path, layout, merged):
    deb, version = built
    root = scratch_root(tmp_path, merged)
    dpkg(root, "-i", str(fake_init_deb(tmp_path, layout)))
    before = snapshot(root)
    originals = {physical(root, "/" + p): before[physical(root, "/" + p)]
                 for p in LAYOUTS[layout] if p.rsplit("/", 1)[1] in POWER + ("systemctl",)}

    installed = dpkg(root, "-i", deb)
    assert "schema-init-switch on" in installed.stdout          # told, not switched
    after = snapshot(root)
    assert {p: to for p, (to, by) in diversions(root).items() if by == "schema-init"} \
        == {p: p + ".distrib" for p in DIVERTED}
    for name in LINKS:
        assert after["usr/sbin/" + name] == ("l", "schema-init"), name
    assert after["usr/bin/systemctl"] == ("l", "../sbin/schema-init")
    assert after["usr/sbin/schema-init"][:2] == ("f", 0o755)
    for path, entry in originals.items():                       # kept, renamed
        assert after[path + ".distrib"] == entry, path
    assert after["etc/schema-init/services/tty@1.svc"] == ("l", "tty@.svc")
    assert not any(p.startswith("etc/default/grub.d") for p in after)  # boot unchanged

    # the init package upgraded while ours is installed: its files go to NAME.distrib,
    # ours stay (both aliases of each name are diverted)
    dpkg(root, "-i", str(fake_init_deb(tmp_path, layout, "2")))
    upgraded = snapshot(root)
    for name in LINKS:
        assert upgraded["usr/sbin/" + name] == ("l", "schema-init"), name
    assert upgraded["usr/bin/systemctl"] == ("l", "../sbin/schema-init")
    for path, entry in originals.items():
        now = upgraded[path + ".distrib"]
        assert now[0] == entry[0] and (now[0] == "l" or b"# version 2" in now[2]), path

    dpkg(root, "-r", "schema-init")
    removed = snapshot(root)
    assert not [p for p, (to, by) in diversions(root).items() if by == "schema-init"]
    for path in originals:                                      # the init's own again
        assert removed[path] == upgraded[path + ".distrib"], path
        assert path + ".distrib" not in removed
    kept = {p for p in removed if p.startswith("etc/schema-init")}
    assert "etc/schema-init/services/alpha.svc" in kept         # conffiles until purge

    dpkg(root, "-P", "schema-init")
    purged = snapshot(root)
    assert purged == at_version_2(before)
    assert diversions(root) == {}


def at_version_2(state):
    """STATE with the fake init's files as its version 2 ships them."""
    return {path: entry[:2] + (entry[2].replace(b"# version 1", b"# version 2"),)
            if entry[0] == "f" else entry for path, entry in state.items()}


def test_upgrade_keeps_the_administrators_changes_to_services(built, tmp_path):
    deb, _ = built
    root = scratch_root(tmp_path)
    dpkg(root, "-i", str(fake_init_deb(tmp_path, "systemd-bookworm")))
    dpkg(root, "-i", deb)
    services = root / "etc/schema-init/services"
    (services / "tty@1.svc").unlink()                    # no console getty here
    (services / "alpha.svc").write_text("exec=/bin/sleep\nargs=5\n")
    (services / "tty@ttyS1.svc").symlink_to("tty@.svc")
    dpkg(root, "-i", "--force-confold", deb)             # an upgrade (same version here)
    assert not os.path.lexists(services / "tty@1.svc")
    assert (services / "alpha.svc").read_text() == "exec=/bin/sleep\nargs=5\n"
    assert os.readlink(services / "tty@ttyS1.svc") == "tty@.svc"
    dpkg(root, "-P", "schema-init")
    assert not os.path.lexists(root / "etc/schema-init")


# --- schema-init-switch ------------------------------------------------------------------

def switch(root, *args, env=None):
    return run([str(root / "usr/sbin/schema-init-switch")] + list(args),
               env={"DPKG_ROOT": str(root), **(env or {})}, check=False)


def grub_cmdline(root):
    """GRUB_CMDLINE_LINUX as grub-mkconfig sees it: /etc/default/grub, then grub.d/*.cfg."""
    script = ('. "$R/etc/default/grub"; for x in "$R"/etc/default/grub.d/*.cfg; do '
              '[ -e "$x" ] && . "$x"; done; echo "$GRUB_CMDLINE_LINUX"')
    return run(["sh", "-c", script], env={"R": str(root)}).stdout.split()


def test_switching_on_and_off_is_one_command_each_and_removal_switches_back(built, tmp_path):
    deb, _ = built
    root = scratch_root(tmp_path)
    dpkg(root, "-i", str(fake_init_deb(tmp_path, "systemd-bookworm")))
    dpkg(root, "-i", deb)
    assert grub_cmdline(root) == ["quiet"]

    refused = switch(root, "on", env={"FAKE_CHECK_STATUS": "1"})  # the services have errors
    assert refused.returncode == 1 and "not switched" in refused.stdout
    assert grub_cmdline(root) == ["quiet"]

    on = switch(root, "on")
    assert on.returncode == 0, on.stdout + on.stderr
    assert "checked %s/etc/schema-init/services" % root in on.stdout
    assert grub_cmdline(root) == ["quiet", "init=/usr/sbin/schema-init"]
    assert "update-grub" in on.stdout                    # not run for another root: said
    assert "next boot: schema-init" in switch(root, "status").stdout

    off = switch(root, "off")
    assert off.returncode == 0 and grub_cmdline(root) == ["quiet"]
    assert "already off" in switch(root, "off").stdout
    assert "next boot: the distribution's init" in switch(root, "status").stdout

    assert switch(root, "on").returncode == 0
    dpkg(root, "-r", "schema-init")                      # never leaves init= to a lost file
    assert grub_cmdline(root) == ["quiet"]
    assert not os.path.lexists(root / "etc/default/grub.d/schema-init.cfg")


def test_without_grub_switching_on_prints_the_kernel_parameter(built, tmp_path):
    root = tmp_path / "root"
    run(["dpkg-deb", "-x", built[0], str(root)])
    on = switch(root, "on")
    assert on.returncode == 0
    assert "add init=/usr/sbin/schema-init to the kernel command line" in on.stdout
    assert not os.path.lexists(root / "etc/default/grub.d")
    assert switch(root, "bogus").returncode == 2


# --- what the binary does with the diversions -----------------------------------------
# schema_init/__main__.py's diverted_original() runs NAME.distrib while PID 1 is another
# init.  The package cannot avoid two layouts (seen above in the scratch roots):
#   systemd-sysv: reboot.distrib -> /bin/systemctl, and systemctl is ours now;
#   sysvinit-core: telinit.distrib -> init, which is not diverted.

def systemd_like(tmp_path):
    sbin, bin_ = tmp_path / "usr/sbin", tmp_path / "usr/bin"
    sbin.mkdir(parents=True)
    bin_.mkdir(parents=True)
    ours = sbin / "schema-init"
    ours.write_text("#!/bin/sh\n")
    ours.chmod(0o755)
    (bin_ / "systemctl").symlink_to("../sbin/schema-init")
    (bin_ / "systemctl.distrib").write_text("#!/bin/sh\n")
    (bin_ / "systemctl.distrib").chmod(0o755)
    (sbin / "reboot").symlink_to("schema-init")
    (sbin / "reboot.distrib").symlink_to(bin_ / "systemctl")        # absolute, as shipped
    (sbin / "telinit").symlink_to("schema-init")
    (sbin / "init").write_text("#!/bin/sh\n")
    (sbin / "init").chmod(0o755)
    (sbin / "telinit.distrib").symlink_to("init")
    pid1 = tmp_path / "pid1"
    pid1.symlink_to("/sbin/some-other-init")
    return sbin, bin_, ours, pid1


def test_a_diverted_link_to_our_own_systemctl_hands_over_to_systemctl_distrib(
        tmp_path, monkeypatch):
    from schema_init import __main__ as entry
    sbin, bin_, ours, pid1 = systemd_like(tmp_path)
    monkeypatch.setattr(entry, "DIVERTED_DIRS", (str(sbin), str(bin_)))
    monkeypatch.delenv("SCHEMA_CTL_SOCKET", raising=False)
    found = entry.diverted_original("reboot", str(pid1), str(ours))
    assert found and os.path.realpath(found) != os.path.realpath(ours)
    assert os.path.realpath(found) == str(bin_ / "systemctl.distrib")


def test_a_diverted_link_to_an_undiverted_program_hands_over_to_it(tmp_path, monkeypatch):
    from schema_init import __main__ as entry
    sbin, bin_, ours, pid1 = systemd_like(tmp_path)
    monkeypatch.setattr(entry, "DIVERTED_DIRS", (str(sbin), str(bin_)))
    monkeypatch.delenv("SCHEMA_CTL_SOCKET", raising=False)
    found = entry.diverted_original("telinit", str(pid1), str(ours))
    assert found and os.path.realpath(found) == str(sbin / "init")
