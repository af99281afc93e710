"""The Pi image's first-boot file (schema_init/firstboot/firstboot.py) and device identity
(distros/raspberry-pi-zero-w/lib/identity.sh): parsing, checks naming file, line and key,
application into a root, the files removed or rejected, and a fuzzer."""

import os
import random
import subprocess
import time

import pytest

from conftest import ROOT, program
from schema_init.firstboot import firstboot

BOARD = os.path.join(ROOT, "distros", "raspberry-pi-zero-w")
EXAMPLE = os.path.join(BOARD, "boot", "custom.toml.example")
IDENTITY = os.path.join(BOARD, "lib", "identity.sh")
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKexample operator@site"
HASH = "$6$abcdefgh$" + "x" * 86


def toml(body):
    return "config_version = 1\n" + body


def test_the_shipped_example_is_accepted_whole():
    with open(EXAMPLE) as f:
        settings, errors, warnings = firstboot.settings_from_toml(f.read())
    assert errors == [] and warnings == []
    assert settings[("system", "hostname")] == "pizw-{serial}"
    assert settings[("wlan", "country")] == "GB"
    assert settings[("ssh", "enabled")] is True
    assert len(settings) == 9


@pytest.mark.parametrize("body,where", [
    ('[system]\nhostname = "no spaces"\n', "custom.toml:3: [system] hostname:"),
    ('[wlan]\nssid = "x"\npassword = "short"\n', "custom.toml:4: [wlan] password:"),
    ('[wlan]\ncountry = "gb"\n', "custom.toml:3: [wlan] country:"),
    ('[user]\nname = "root"\n', "custom.toml:3: [user] name:"),
    ('[user]\nname = "pi"\npassword_encrypted = "plain"\n',
     "custom.toml:4: [user] password_encrypted:"),
    ('[ssh]\nenabled = "yes"\n', "custom.toml:3: [ssh] enabled: must be true or false"),
    ('[ssh]\nauthorized_keys = ["not a key"]\n', "custom.toml:3: [ssh] authorized_keys:"),
    ('[locale]\ntimezone = "../../etc/shadow"\n', "custom.toml:3: [locale] timezone:"),
    ('[system]\nhostname = "a"\nhostname = "b"\n', "custom.toml:4: hostname given twice"),
    ('[system\n', "custom.toml:2: table header"),
    ('[wlan]\nssid = "unclosed\n', "custom.toml:3: control character in a string"),
    ('[wlan]\nssid = "unclosed', "custom.toml:3: string not closed"),
])
def test_a_bad_value_is_an_error_naming_file_line_and_key_and_nothing_is_applied(body, where):
    settings, errors, _ = firstboot.settings_from_toml(toml(body))
    assert settings == {}
    assert any(e.startswith(where) for e in errors), errors


def test_config_version_is_required():
    _, errors, _ = firstboot.settings_from_toml('[system]\nhostname = "a"\n')
    assert errors and "config_version" in errors[0]


def test_unknown_and_unsupported_keys_are_warnings_not_errors():
    settings, errors, warnings = firstboot.settings_from_toml(toml(
        '[system]\nhostname = "h"\nfrobnicate = 1\n[locale]\nkeymap = "gb"\n'))
    assert errors == []
    assert settings == {("system", "hostname"): "h"}
    assert any("custom.toml:4: [system] frobnicate: unknown" in w for w in warnings)
    assert any("[locale] keymap: not supported" in w for w in warnings)


def test_userconf_is_one_name_and_crypt_hash():
    settings, errors, _ = firstboot.settings_from_userconf("pi:%s\n" % HASH)
    assert errors == [] and settings[("user", "name")] == "pi"
    for bad in ("pi\n", "pi:plain\n", "root:%s\n" % HASH, "a:%s\nb:%s\n" % (HASH, HASH)):
        settings, errors, _ = firstboot.settings_from_userconf(bad)
        assert settings == {} and errors and errors[0].startswith("userconf.txt:")


def test_wpa_configuration_quotes_nothing_from_the_card():
    text = firstboot.wpa_config("DE", 'net"work\n', "pass phrase 1", True)
    assert "ssid=%s\n" % 'net"work\n'.encode().hex() in text
    assert 'psk="pass phrase 1"' in text and "country=DE" in text and "scan_ssid=1" in text


def fixture_root(tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "home" / "pi").mkdir(parents=True)
    (root / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\npi:x:1000:1000:pi:/home/pi:/bin/bash\n")
    zone = root / "usr" / "share" / "zoneinfo" / "Europe"
    zone.mkdir(parents=True)
    (zone / "Berlin").write_text("TZif")
    return root


def test_apply_writes_each_setting_into_the_root(tmp_path):
    root = fixture_root(tmp_path)
    settings, errors, _ = firstboot.settings_from_toml(toml(
        '[system]\nhostname = "site-{serial}"\n[ssh]\nenabled = false\n'
        'authorized_keys = ["%s"]\n[wlan]\nssid = "plant"\npassword = "correct horse"\n'
        'country = "DE"\n[locale]\ntimezone = "Europe/Berlin"\n' % KEY))
    assert errors == []
    assert firstboot.apply(settings, str(root)) == []
    assert (root / "etc/schema-board/hostname.pattern").read_text() == "site-{serial}\n"
    assert (root / "etc/schema-board/ssh-disabled").exists()
    keys = root / "root/.ssh/authorized_keys"
    assert keys.read_text() == KEY + "\n" and oct(keys.stat().st_mode & 0o777) == "0o600"
    wpa = root / "etc/wpa_supplicant/wpa_supplicant-wlan0.conf"
    assert 'psk="correct horse"' in wpa.read_text() and wpa.stat().st_mode & 0o077 == 0
    assert os.readlink(root / "etc/localtime") == "/usr/share/zoneinfo/Europe/Berlin"
    assert (root / "etc/timezone").read_text() == "Europe/Berlin\n"


def test_one_failed_step_is_reported_and_the_others_still_run(tmp_path):
    root = fixture_root(tmp_path)
    settings = {("locale", "timezone"): "Mars/Olympus", ("system", "hostname"): "h"}
    errors = firstboot.apply(settings, str(root))
    assert errors == ["timezone: no time zone Mars/Olympus in /usr/share/zoneinfo"]
    assert (root / "etc/schema-board/hostname.pattern").read_text() == "h\n"


def run_firstboot(boot, root):
    return subprocess.run([program("schema-firstboot"), "--boot", str(boot), "--root",
                           str(root)], capture_output=True, text=True, timeout=30)


@pytest.mark.process
def test_good_files_are_applied_once_and_removed(tmp_path):
    root = fixture_root(tmp_path)
    boot = tmp_path / "boot"
    boot.mkdir()
    (boot / "custom.toml").write_text(toml('[system]\nhostname = "line-{serial}"\n'))
    (boot / "ssh").write_text("")
    (boot / "firstboot-errors.txt").write_text("an old report\n")
    result = run_firstboot(boot, root)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "applied custom.toml, ssh" in result.stdout
    assert sorted(os.listdir(boot)) == []
    assert (root / "etc/schema-board/hostname.pattern").read_text() == "line-{serial}\n"
    again = run_firstboot(boot, root)
    assert again.returncode == 0 and "no first-boot file" in again.stdout


@pytest.mark.process
def test_a_bad_file_is_renamed_rejected_with_its_reasons_and_nothing_applied(tmp_path):
    root = fixture_root(tmp_path)
    boot = tmp_path / "boot"
    boot.mkdir()
    (boot / "custom.toml").write_text(toml('[system]\nhostname = "ok"\n[wlan]\ncountry = "x"\n'))
    result = run_firstboot(boot, root)
    assert result.returncode == 1
    assert "firstboot: error: custom.toml:5: [wlan] country:" in result.stdout
    assert sorted(os.listdir(boot)) == ["custom.toml.rejected", "firstboot-errors.txt"]
    assert "custom.toml:5: [wlan] country" in (boot / "firstboot-errors.txt").read_text()
    assert not (root / "etc/schema-board").exists()


def test_fuzzed_files_give_values_never_exceptions():
    """Mutations of the example (bytes flipped, cut, repeated, random garbage): every
    outcome is (settings, errors, warnings), an error names custom.toml and a line, and
    no file takes long."""
    seed = int(os.environ.get("ADVERSARIAL_SEED", random.randrange(1 << 30)))
    print("firstboot fuzz seed", seed)
    rng = random.Random(seed)
    with open(EXAMPLE) as f:
        base = f.read()
    alphabet = '[]="\'\\#,\n\t {}uU0123456789abcdefxyz-_.$\x00\x7f\ufeff\r'
    slowest = 0.0
    for _ in range(3000):
        text = list(base)
        for _ in range(rng.randint(1, 12)):
            pos = rng.randrange(len(text) + 1)
            choice = rng.random()
            if choice < 0.4:
                text.insert(pos, rng.choice(alphabet))
            elif choice < 0.7 and text:
                del text[min(pos, len(text) - 1)]
            elif choice < 0.85:
                text[pos:pos] = text[pos:pos + rng.randint(1, 40)] * rng.randint(1, 50)
            else:
                text[pos:pos] = [chr(rng.randrange(1, 0x3000)) for _ in range(rng.randint(1, 8))]
        start = time.perf_counter()
        settings, errors, warnings = firstboot.settings_from_toml("".join(text))
        slowest = max(slowest, time.perf_counter() - start)
        assert isinstance(settings, dict) and isinstance(warnings, list)
        assert all(e.startswith("custom.toml:") and e.split(":")[1].isdigit() for e in errors)
        assert not (settings and errors)
    assert slowest < 0.5


def identity(*args, **files):
    env = dict(os.environ, DT_SERIAL=files.get("dt", "/nonexistent"),
               CPUINFO=files.get("cpuinfo", "/nonexistent"))
    return subprocess.run(["sh", IDENTITY] + list(args), capture_output=True, text=True,
                          env=env, timeout=10).stdout.strip()


@pytest.mark.process
def test_the_hostname_and_machine_id_follow_the_board_serial(tmp_path):
    dt = tmp_path / "serial-number"
    dt.write_bytes(b"00000000a1b2c3d4\x00")
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("Hardware\t: BCM2835\nRevision\t: 9000c1\nSerial\t\t: 00000000FFEE0011\n")
    assert identity("serial", dt=str(dt)) == "00000000a1b2c3d4"
    assert identity("serial", cpuinfo=str(cpuinfo)) == "00000000ffee0011"
    assert identity("hostname", "pizw-{serial}", dt=str(dt)) == "pizw-a1b2c3d4"
    assert identity("hostname", "plant-{serial}-x", cpuinfo=str(cpuinfo)) == "plant-ffee0011-x"
    one = identity("machine-id", dt=str(dt))
    assert len(one) == 32 and all(c in "0123456789abcdef" for c in one)
    assert identity("machine-id", dt=str(dt)) == one
    assert identity("machine-id", cpuinfo=str(cpuinfo)) != one
    assert identity("serial") == "0000000000000000"
