"""Services from LSB init scripts (schema_init/units/lsb.py): the header read robustly, the
real scripts of Debian's isc-dhcp-server, tftpd-hpa and exim4 (their .deb fetched with
apt-get download into /var/cache/schema-init-build/debs and unpacked), which scripts
run (an S link in rc2.d..rc5.d, no unit of the name), and the import of a root through
``schema-init import-units --root``."""

import os
import random
import subprocess

import pytest

from conftest import program
from schema_init.core import config
from schema_init.units import lsb

DEBS = os.environ.get("SCHEMA_DEB_CACHE", "/var/cache/schema-init-build/debs")


def debian_package(name, tmp_path_factory):
    """The unpacked files of Debian's package NAME (its .deb cached in DEBS)."""
    os.makedirs(DEBS, exist_ok=True)
    found = [f for f in os.listdir(DEBS) if f.startswith(name + "_") and f.endswith(".deb")]
    if not found:
        run = subprocess.run(["apt-get", "download", name], cwd=DEBS, capture_output=True,
                             text=True, timeout=300)
        found = [f for f in os.listdir(DEBS) if f.startswith(name + "_") and
                 f.endswith(".deb")]
        if not found:
            pytest.fail("this test needs Debian's %s package (apt-get download %s in %s): "
                        "%s" % (name, name, DEBS, run.stderr.strip()))
    out = tmp_path_factory.mktemp(name)
    subprocess.run(["dpkg-deb", "-x", os.path.join(DEBS, sorted(found)[-1]), str(out)],
                   check=True, timeout=120)
    return out


@pytest.fixture(scope="module")
def scripts(tmp_path_factory):
    """{script name: bytes} of the real packages."""
    found = {}
    for package, script in (("isc-dhcp-server", "isc-dhcp-server"),
                            ("tftpd-hpa", "tftpd-hpa"), ("exim4-base", "exim4")):
        root = debian_package(package, tmp_path_factory)
        found[script] = (root / "etc" / "init.d" / script).read_bytes()
    return found


def convert(name, data, known, provided=None):
    script = lsb.Script(name, "/etc/init.d/" + name, lsb.parse_header(data))
    text, diags = lsb.convert(script, set(known), provided or {})
    spec, found = config.parse_service("/run/schema-init/units/%s.svc" % name, text.encode())
    assert found == [], [d.format() for d in found]
    return spec, [d.format() for d in diags], text


KNOWN = ("basic", "network", "rsyslog", "slapd")


def test_isc_dhcp_server_runs_from_its_script_ordered_by_its_header(scripts):
    spec, notes, text = convert("isc-dhcp-server", scripts["isc-dhcp-server"], KNOWN)
    assert (spec.exec, spec.args, spec.forking) == ("/etc/init.d/isc-dhcp-server",
                                                     ("start",), True)
    # Required-Start: $remote_fs $network $syslog; Should-Start: $local_fs slapd $named
    assert spec.deps == ("basic", "network", "rsyslog", "slapd")
    assert spec.exec_stop == (("", ("/etc/init.d/isc-dhcp-server", "stop")),)
    # its case has "restart | force-reload)", no reload
    assert spec.exec_reload == (("", ("/etc/init.d/isc-dhcp-server", "force-reload")),)
    # two daemons, their pid files chosen at run time: the script's run is the service
    assert spec.remain_after_exit and spec.pid_file == ""
    assert ("SYSTEMCTL_SKIP_REDIRECT", "1") in spec.env     # no loop back to systemctl
    assert notes == ["/etc/init.d/isc-dhcp-server:7: warning: Should-Start: $named: no "
                     "service here provides it; dropped"]
    assert "# DHCP server" in text.splitlines()


def test_tftpd_hpa_is_its_scripts_run_not_its_pid_file_variable(scripts):
    """Its PIDFILE=/var/run/tftpd-hpa.pid is a file in.tftpd never writes (the corpus:
    DORMANT, 'forking: /var/run/tftpd-hpa.pid: No such file'); systemd's generator reads
    only a '# pidfile:' header, so does this."""
    spec, notes, _ = convert("tftpd-hpa", scripts["tftpd-hpa"], ("basic", "networking",
                                                                 "syslog-ng"))
    assert spec.pid_file == "" and spec.remain_after_exit and spec.forking
    # Required-Start: $local_fs $remote_fs $syslog $network
    assert spec.deps == ("basic", "syslog-ng", "networking")
    assert notes == []


def test_exim4_names_what_no_service_provides_and_orders_after_other_scripts(scripts):
    spec, notes, _ = convert("exim4", scripts["exim4"], ("basic", "network", "rsyslog",
                                                         "pgsql"), {"postgresql": "pgsql"})
    assert spec.exec_reload == (("", ("/etc/init.d/exim4", "reload")),)
    assert spec.deps == ("basic", "rsyslog", "network", "pgsql")   # Should-Start: postgresql
    assert notes == [
        "/etc/init.d/exim4:12: warning: Required-Start: $named: no service here provides "
        "it; dropped",
        "/etc/init.d/exim4:12: warning: Required-Start: $time: no service here provides "
        "it; dropped"]
    # a facility its provider satisfies once that service is known
    spec, notes, _ = convert("exim4", scripts["exim4"], ("chrony", "unbound"))
    assert spec.deps == ("unbound", "chrony")


def test_a_missing_required_script_is_said_an_optional_one_is_not():
    data = (b"#!/bin/sh\n### BEGIN INIT INFO\n# Provides: a b\n# Required-Start: gone $all\n"
            b"# Should-Start: absent $bogus\n### END INIT INFO\n")
    spec, notes, _ = convert("a", data, ("basic",))
    assert spec.deps == ("basic",)
    assert notes == [
        "/etc/init.d/a:4: warning: Required-Start: gone: no service or script of that "
        "name; dropped",
        "/etc/init.d/a:4: warning: Required-Start: $all (after every other script) is not "
        "kept: schema-init starts what is ready at once",
        "/etc/init.d/a:5: warning: Should-Start: $bogus: an unknown facility; dropped"]


def test_a_script_without_a_header_still_runs_and_says_so():
    spec, notes, _ = convert("plain", b"#!/bin/sh\ncase $1 in start) ;; esac\n", ())
    assert spec.deps == () and spec.forking and spec.exec_reload == ()
    assert notes == ["/etc/init.d/plain: warning: no LSB header (### BEGIN INIT INFO): "
                     "started without ordering"]


def test_header_fields_continue_and_hints_are_read():
    data = (b"#!/bin/sh\n# pidfile: /run/x.pid\nPIDFILE=/run/other.pid\n"
            b"### BEGIN INIT INFO\n# Provides:\tx\n# Description: one\n#   two\n"
            b"#\tthree\n### END INIT INFO\n  reload)\n")
    header = lsb.parse_header(data)
    assert header.text("Description") == "one two three"
    assert header.pid_file == "/run/x.pid" and header.pid_line == 2
    assert header.reload == "reload"
    assert lsb.parse_header(b"PIDFILE=/run/y.pid\n  stop|restart)\n").pid_file is None
    assert lsb.parse_header(b"  stop|restart)\n").reload is None


def test_which_scripts_are_services_and_which_are_enabled():
    assert lsb.service_name("hwclock.sh") == "hwclock"
    for name in ("README", "skeleton", "rc", "rcS", "x.dpkg-old", "x~", ".hidden",
                 "a b", "x@y", "\u00e9t\u00e9"):
        assert lsb.service_name(name) is None, name
    listings = {"rc2.d": ["K01tftpd-hpa", "README"], "rc3.d": ["S01tftpd-hpa"],
                "rc5.d": ["S02exim4x"]}
    assert lsb.enabled("tftpd-hpa", listings)
    assert not lsb.enabled("exim4", listings)           # S02exim4x is another script
    assert not lsb.enabled("tftpd-hpa", {"rc2.d": ["K01tftpd-hpa"], "rcS.d": ["S01tftpd-hpa"]})


def test_any_bytes_make_a_header_never_an_exception(scripts):
    seed = int(os.environ.get("LSB_FUZZ_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    pieces = [b"### BEGIN INIT INFO\n", b"### END INIT INFO\n", b"# Provides:", b"# ",
              b"#\t", b"Required-Start:", b"$network ", b"\n", b"\r\n", b"\x00", b"\xff\xfe",
              b"# pidfile: /run/a", b"PIDFILE=\"/x", b"reload)", b"|", b")", b":", b"\\",
              "\u00e9".encode(), b"\xed\xa0\x80"] + [bytes([b]) for b in range(0, 256, 7)]
    real = list(scripts.values())
    for _ in range(3000):
        if rng.random() < 0.3:
            data = bytearray(rng.choice(real))
            for _ in range(rng.randrange(1, 20)):
                at = rng.randrange(len(data))
                data[at:at + rng.randrange(0, 8)] = rng.choice(pieces)
            data = bytes(data)
        else:
            data = b"".join(rng.choice(pieces) for _ in range(rng.randrange(0, 60)))
        try:
            header = lsb.parse_header(data)
            text, _ = lsb.convert(lsb.Script("x", "/etc/init.d/x", header),
                                  {"basic", "network"}, {})
            spec, found = config.parse_service("/x.svc", text.encode("utf-8",
                                                                     "surrogateescape"))
        except Exception as exc:
            raise AssertionError("LSB_FUZZ_SEED=%d: %r raised %r" % (seed, data, exc))
        assert spec is not None and not [d for d in found if d.severity == config.ERROR], \
            "LSB_FUZZ_SEED=%d: %r" % (seed, data)


def machine(tmp_path, scripts):
    """A root: tftpd-hpa enabled (S link), isc-dhcp-server installed but not enabled,
    exim4 enabled, a script whose unit exists (the unit wins), one the .svc files have."""
    root = tmp_path / "root"
    initd = root / "etc" / "init.d"
    initd.mkdir(parents=True)
    for name in ("tftpd-hpa", "isc-dhcp-server", "exim4"):
        (initd / name).write_bytes(scripts[name])
        (initd / name).chmod(0o755)
    for name in ("both", "mine"):
        (initd / name).write_text("#!/bin/sh\n### BEGIN INIT INFO\n# Provides: %s\n"
                                  "### END INIT INFO\n" % name)
        (initd / name).chmod(0o755)
    for level, links in (("rc2.d", ["S01tftpd-hpa", "S01both", "S01mine", "K01isc-dhcp-server"]),
                         ("rc3.d", ["S03exim4"]), ("rcS.d", ["S01isc-dhcp-server"])):
        (root / "etc" / level).mkdir()
        for link in links:
            os.symlink("../init.d/" + link[3:], root / "etc" / level / link)
    units = root / "lib" / "systemd" / "system"
    units.mkdir(parents=True)
    (units / "both.service").write_text("[Service]\nExecStart=/bin/both\n")
    (root / "etc" / "systemd" / "system" / "multi-user.target.wants").mkdir(parents=True)
    os.symlink("/lib/systemd/system/both.service",
               root / "etc" / "systemd" / "system" / "multi-user.target.wants" / "both.service")
    return root


def test_import_of_a_root_runs_the_enabled_scripts_no_unit_replaces(tmp_path, scripts):
    root = machine(tmp_path, scripts)
    out = tmp_path / "out"
    run = subprocess.run([program("schema-init"), "import-units", "--root", str(root),
                          "--taken", "mine,basic,network,rsyslog", "--into", str(out)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    made = sorted(n for n in os.listdir(out) if n.endswith(".svc"))
    assert made == ["both.svc", "exim4.svc", "tftpd-hpa.svc"]
    tftp = (out / "tftpd-hpa.svc").read_text()
    assert "exec=/etc/init.d/tftpd-hpa" in tftp.splitlines()
    assert ["dep=basic", "dep=rsyslog", "dep=network"] == [
        line for line in tftp.splitlines() if line.startswith("dep=")]
    assert "exec=/bin/both" in (out / "both.svc").read_text()     # the unit, not the script
    diagnostics = (out / "diagnostics").read_text()
    assert "/etc/init.d/exim4\t12\tRequired-Start\t$named: no service here provides it" \
        in diagnostics
    # the same root by hand: the files and the summary line
    run = subprocess.run([program("schema-init"), "import-units", "--root", str(root)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "### tftpd-hpa.svc\n" in run.stdout and "### isc-dhcp-server" not in run.stdout
    assert run.stderr.splitlines()[-1].startswith("import-units: 4 service files from ")
