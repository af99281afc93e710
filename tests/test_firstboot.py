"""The Pi image's first-boot files (schema_init/firstboot/) and device identity and
services (distros/raspberry-pi-zero-w/lib/*.sh): Raspberry Pi's custom.toml as Raspberry
Pi Imager writes it, userconf.txt, ssh, wpa_supplicant.conf; checks naming file, line and
key; application into a root; secrets off the card; the scripts that use what was
applied; fuzzers."""

import hashlib
import ipaddress
import json
import os
import random
import subprocess
import sys
import time
import tomllib

import pytest

from adversary import seed_for
from conftest import ROOT, program
from schema_init.firstboot import countries, firstboot, tomlsubset, values, wpa

BOARD = os.path.join(ROOT, "distros", "raspberry-pi-zero-w")
LIB = os.path.join(BOARD, "lib")
EXAMPLE = os.path.join(BOARD, "boot", "custom.toml.example")
IDENTITY = os.path.join(LIB, "identity.sh")
# real public keys (ssh-keygen), so their base64 and blobs parse
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPetCVYsEKJFanyMDEBX4Iy2HrJZgguB3cRQzJpJwrFY ops1@site"
KEY2 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH0V91rFXDy9ofMAfXF4IdVIMlGnhmd7b9+UwZSPp/+s ops2@site"
RSA_KEY = ("ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC5m6LaYPinur2+HZcLz5LrmCbrspA5PJmAtVRIJCsDm8Kq"
           "6al3IDoWbw7f3RKEOnfuQGU2pbv2oqSiUePn5hyDkjNeNWmg50IAOEpbFgvopA/ZnNVuibJvh0yPEVX6SBk"
           "YtVRlY59+j/3B6qKV1tH15NcBL4SNioVgzlfmNZnW4v3X717/8SOEKSAcCSvQGC9O4eLxrGAeAvth7n8Egs"
           "inrfKhBoT479R5bUA/TpikHgZGij5Ft1w7yFO7Mn+D9DuX8Upd7cjHVHOOarPFoQCNfE9abTSa6/3na8QXa"
           "6mINM2/6h1bdVvOHGQrRFIKm7Xp2lA8MaxXOio5xSwkXyTh ops@site")
ECDSA_KEY = ("ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBGCK975u"
             "kH/TmFK1o5/4Aq0J+Rj3dbu6YBeyzNRGB1IqpzpFCBy8EmC1NkVrdsY1/Ndlp/m6F9e/0Srj7OGmr4I= "
             "ops@site")
# openssl passwd -6 -salt fleetsalt secret
HASH = ("$6$fleetsalt$ltC76R.9z0JUi7r.aJ9VRQN2I5zhF64sQugOgJSeJenmouqgI82e9BBkC7SL.lci3tGA/uQn"
        "2aRce1AauWe7t/")
PSK = "f42c6fc52df0ebef9ebb4b90b38a5f902e83fe1b135a70e23aed762e9710a12e"   # password/IEEE

# Raspberry Pi Imager's form: [user] password with password_encrypted = true, [wlan]
# password the PSK with password_encrypted = true, keymap (which this image ignores).
IMAGER = """config_version = 1

[system]
hostname = "pump-07"

[user]
name = "ops"
password = "%s"
password_encrypted = true

[ssh]
enabled = true
password_authentication = false
authorized_keys = [ "%s" ]

[wlan]
ssid = "plant"
password = "%s"
password_encrypted = true
hidden = false
country = "DE"

[locale]
keymap = "de"
timezone = "Europe/Berlin"
""" % (HASH, KEY, PSK)


def toml(body):
    return "config_version = 1\n" + body


def test_the_shipped_example_is_accepted_whole_and_read_alike_by_tomllib():
    with open(EXAMPLE) as f:
        text = f.read()
    settings, errors, warnings = firstboot.settings_from_toml(text)
    assert errors == [] and warnings == []
    assert tomlsubset.parse(text) == tomllib.loads(text)
    assert settings[("system", "hostname")] == "pizw-{serial}"
    assert settings[("wlan", "country")] == "GB"
    assert settings[("ssh", "enabled")] is True
    assert settings[("user", "password_hash")].startswith("$6$")


def test_raspberry_pi_imagers_custom_toml_is_accepted_and_means_the_same():
    settings, errors, warnings = firstboot.settings_from_toml(IMAGER)
    assert errors == []
    assert warnings == ["custom.toml:24: [locale] keymap: not supported by this image, "
                        "ignored (no keyboard layout on this image)"]
    assert settings[("user", "name")] == "ops"
    assert settings[("user", "password_hash")] == HASH
    assert settings[("ssh", "password_authentication")] is False
    [network] = settings[("wlan", "networks")]
    assert network["psk"] == PSK and network["passphrase"] is None
    assert settings[("locale", "timezone")] == "Europe/Berlin"


def test_a_plain_password_follows_password_encrypted_false():
    settings, errors, _ = firstboot.settings_from_toml(toml(
        '[user]\nname = "ops"\npassword = "raspberry"\npassword_encrypted = false\n'))
    assert errors == [] and settings[("user", "password_plain")] == "raspberry"
    # encrypted is Raspberry Pi's default: a plain password then is refused, with the fix
    _, errors, _ = firstboot.settings_from_toml(toml(
        '[user]\nname = "ops"\npassword = "raspberry"\n'))
    assert errors == ["custom.toml:4: [user] password: not a crypt(3) hash ($6$salt$hash or "
                      "$y$...; make one with openssl passwd -6) (or password_encrypted = "
                      "false for a plain password)"]


def test_this_images_first_form_still_reads_with_a_warning():
    settings, errors, warnings = firstboot.settings_from_toml(toml(
        '[user]\nname = "pi"\npassword_encrypted = "%s"\n' % HASH))
    assert errors == [] and settings[("user", "password_hash")] == HASH
    assert "old form" in warnings[0]


@pytest.mark.parametrize("body,where", [
    ('[system]\nhostname = "no spaces"\n', "custom.toml:3: [system] hostname:"),
    ('[system]\nhostname = "%s{serial}"\n' % ("a" * 50),
     "custom.toml:3: [system] hostname: 66 characters once {serial}"),
    ('[wlan]\nssid = "x"\npassword = "short"\ncountry = "DE"\n',
     "custom.toml:4: [wlan] password:"),
    ('[wlan]\nssid = "x"\npassword = "%s"\ncountry = "DE"\n' % HASH,
     "custom.toml:4: [wlan] password: this is a login password hash"),
    ('[wlan]\ncountry = "gb"\n', "custom.toml:3: [wlan] country: write the country in capitals"),
    ('[wlan]\ncountry = "UK"\n', "custom.toml:3: [wlan] country: UK is not an ISO 3166-1 code: "
                                 "write GB"),
    ('[wlan]\ncountry = "XX"\n', "custom.toml:3: [wlan] country: 'XX' is not an ISO"),
    ('[wlan]\nssid = "plant"\npassword = "long enough"\n',
     "custom.toml:2: [wlan] country: required with a Wi-Fi network"),
    ('[user]\nname = "root"\n', "custom.toml:3: [user] name:"),
    ('[user]\nname = "pi"\npassword = "$1$abc$def"\n', "custom.toml:4: [user] password: an MD5"),
    ('[user]\npassword = "%s"\n' % HASH, "custom.toml:3: [user] password: needs [user] name"),
    ('[ssh]\nenabled = "yes"\n', "custom.toml:3: [ssh] enabled: must be true or false"),
    ('[ssh]\nauthorized_keys = ["not a key"]\n', "custom.toml:3: [ssh] authorized_keys:"),
    ('[ssh]\nauthorized_keys = ["ssh-ed25519 notbase64!!"]\n',
     "custom.toml:3: [ssh] authorized_keys: the key's second word is not base64"),
    ('[ssh]\nauthorized_keys = ["%s,%s"]\n' % (KEY, KEY2),
     "custom.toml:3: [ssh] authorized_keys: two keys run together"),
    ('[ssh]\nauthorized_keys = "%s"\n' % KEY, "custom.toml:3: [ssh] authorized_keys: must be an"),
    ('[ssh]\npassword_authentication = false\n',
     "custom.toml:3: [ssh] password_authentication: false with no authorized_keys"),
    ('[locale]\ntimezone = "../../etc/shadow"\n', "custom.toml:3: [locale] timezone:"),
    ('[system]\nhostname = "a"\nhostname = "b"\n', "custom.toml:4: hostname given twice"),
    ('[system\n', "custom.toml:2: table header"),
    ('[wlan]\nssid = "unclosed\n', "custom.toml:3: string not closed on its line"),
    ('[wlan]\nssid = "unclosed', "custom.toml:3: string not closed"),
    ('# a comment\n\n[system]\nhostname = 3\n', "custom.toml:5: [system] hostname: must be a "
                                                "string"),
    ('[[schema-init.wlan]]\npassword = "long enough"\n',
     "custom.toml:2: [[schema-init.wlan]] #1 ssid: the network's SSID is missing"),
    ('[wlan]\ncountry = "DE"\n[[schema-init.wlan]]\nssid = "corp"\neap = "PEAP"\n'
     'identity = "me"\npassword = "pw"\n', "custom.toml:4: [[schema-init.wlan]] #1 ca_cert: "
                                          "WPA-Enterprise needs the CA certificate"),
    ('[schema-init.network]\naddresses = ["192.168.1.20"]\n',
     "custom.toml:3: [schema-init.network] addresses: 192.168.1.20: an address is written "
     "with its prefix"),
    ('[schema-init.network]\naddresses = ["192.168.1.20/24"]\ngateway4 = "10.0.0.1"\n',
     "custom.toml:4: [schema-init.network] gateway4: 10.0.0.1 is outside the network"),
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


def test_our_tables_give_networks_priorities_enterprise_and_a_static_address():
    settings, errors, warnings = firstboot.settings_from_toml(toml(
        '[wlan]\nssid = "plant"\npassword = "passphrase one"\ncountry = "DE"\n'
        '[schema-init]\ndevice = "pump-07"\nwlan_priority = 9\n'
        'root_authorized_keys = ["%s"]\n'
        '[[schema-init.wlan]]\nssid = "hidden net"\npassword = "%s"\nhidden = true\n'
        'priority = 5\n'
        '[[schema-init.wlan]]\nssid = "corp"\neap = "peap"\nidentity = "pump07@corp"\n'
        'password = "eap secret"\nca_cert = "corp-ca.pem"\n'
        '[[schema-init.wlan]]\nssid = "lab"\neap = "TLS"\nidentity = "pump07"\n'
        'ca_cert = "ca.pem"\nclient_cert = "pump.pem"\nprivate_key = "pump.key"\n'
        'private_key_password = "k"\n'
        '[schema-init.network]\naddresses = ["192.168.10.7/24", "2001:db8::7/64"]\n'
        'gateway4 = "192.168.10.1"\ngateway6 = "fe80::1"\nnameservers = ["192.168.10.1"]\n'
        % (KEY, PSK)))
    assert errors == [] and warnings == []
    plant, hidden, corp, lab = settings[("wlan", "networks")]
    assert (plant["priority"], plant["passphrase"]) == (9, "passphrase one")
    assert (hidden["hidden"], hidden["priority"], hidden["psk"]) == (True, 5, PSK)
    assert (corp["eap"], corp["password"], corp["ca_cert"]) == ("PEAP", "eap secret",
                                                                "corp-ca.pem")
    assert (lab["eap"], lab["private_key"]) == ("TLS", "pump.key")
    assert settings[("schema-init", "root_authorized_keys")] == [KEY]
    assert settings[("schema-init", "network")]["gateway6"] == "fe80::1"
    text = wpa.render("DE", settings[("wlan", "networks")])
    passphrase_psk = hashlib.pbkdf2_hmac("sha1", b"passphrase one", b"plant", 4096, 32).hex()
    assert "psk=%s\n" % passphrase_psk in text
    assert "passphrase one" not in text and "eap secret" not in text and "\tpriority=9" in text
    assert "\tssid=%s\n\tscan_ssid=1\n\tpriority=5\n" % b"hidden net".hex() in text
    assert "\tpassword=hash:%s\n" % values.nt_hash("eap secret") in text
    assert '\tca_cert="/etc/wpa_supplicant/certs/corp-ca.pem"' in text
    assert "\tprivate_key_passwd=%s\n" % b"k".hex() in text


def test_userconf_is_one_name_and_crypt_hash():
    settings, errors, _ = firstboot.settings_from_userconf("pi:%s\n" % HASH)
    assert errors == [] and settings[("user", "name")] == "pi"
    assert settings[("user", "password_hash")] == HASH
    for bad in ("pi\n", "pi:plain\n", "root:%s\n" % HASH, "a:%s\nb:%s\n" % (HASH, HASH)):
        settings, errors, _ = firstboot.settings_from_userconf(bad)
        assert settings == {} and errors and errors[0].startswith("userconf.txt:1:")


def test_a_legacy_wpa_supplicant_conf_is_read_as_raspberry_pi_os_took_it():
    settings, errors, _ = firstboot.settings_from_wpa_supplicant(
        'country=FR\nnetwork={\n\tssid="maison"\n\tpsk="mot de passe"\n\tscan_ssid=1\n'
        '\tpriority=3\n}\nnetwork={\n\tssid=6c6162\n\tpsk=%s\n}\n' % PSK)
    assert errors == []
    maison, lab = settings[("wlan", "networks")]
    assert (maison["passphrase"], maison["hidden"], maison["priority"]) == ("mot de passe",
                                                                            True, 3)
    assert (lab["ssid"], lab["psk"]) == ("lab", PSK)
    _, errors, _ = firstboot.settings_from_wpa_supplicant(
        'network={\n\tssid="x"\n\tpsk="short"\n\tbogus=1\n}\n')
    assert "wpa_supplicant.conf:3: psk: a WPA passphrase is 8 to 63" in errors[0]
    assert any(e.startswith("wpa_supplicant.conf:4: bogus: not accepted") for e in errors)
    assert any("country=: required" in e for e in errors)


def test_wpa_configuration_quotes_nothing_from_the_card():
    network = wpa.new_network('net"work\n')
    network["passphrase"] = "pass phrase 1"
    network["hidden"] = True
    text = wpa.render("DE", [network])
    assert "ssid=%s\n" % 'net"work\n'.encode().hex() in text
    assert "pass phrase 1" not in text
    assert "psk=%s" % hashlib.pbkdf2_hmac("sha1", b"pass phrase 1", b'net"work\n', 4096,
                                          32).hex() in text
    assert "country=DE" in text and "scan_ssid=1" in text


def test_the_pure_hashes_and_parsers_agree_with_the_standard_library():
    rng = random.Random(7)
    for size in (0, 1, 55, 56, 63, 64, 65, 119, 200):
        data = bytes(rng.randrange(256) for _ in range(size))
        assert values.sha1(data) == hashlib.sha1(data).digest()
    assert values._pure_pbkdf2_sha1(b"password", b"IEEE", 4096, 32).hex() == PSK
    assert values._pure_pbkdf2_sha1(b"x" * 70, b"s", 2, 32) == \
        hashlib.pbkdf2_hmac("sha1", b"x" * 70, b"s", 2, 32)
    assert values.md4(b"abc").hex() == "a448017aaf21d8525fc10ae87aa6729d"      # RFC 1320
    assert values.nt_hash("password") == "8846f7eaee8fb117ad06bdd830b7586c"
    assert values.nt_hash("p\U0001f600") == values.md4("p\U0001f600".encode("utf-16-le")).hex()
    for text in ("::", "::1", "1::", "2001:db8::10", "fe80::1:2:3:4:5:6", "1:2:3:4:5:6:7:8",
                 "::ffff:10.0.0.1", "1:2:3:4:5:6:1.2.3.4"):
        assert values.parse_ipv6(text) == int(ipaddress.IPv6Address(text)), text
    for text in ("1:2:3:4:5:6:7:8:9", ":1", "1:", "1:::2", "12345::", "g::", "1:2:3:4:5:6:7::8",
                 "::1.2.3"):
        assert values.parse_ipv6(text) is None, text
    assert values.parse_ipv4("192.168.001.1") is None and values.parse_ipv4("10.0.0.255")
    for key in (KEY, KEY2, RSA_KEY, ECDSA_KEY):
        assert values.ssh_key_error(key) is None, key
    import base64
    for size in range(1, 40):
        data = bytes(rng.randrange(256) for _ in range(size))
        assert values.b64decode(base64.b64encode(data).decode()) == data
        assert values.b64encode(data) == base64.b64encode(data).decode()


def test_a_key_whose_data_is_of_another_type_is_refused():
    ed = KEY.split()
    assert "says ssh-rsa but its data is a ssh-ed25519" in values.ssh_key_error(
        "ssh-rsa %s x" % ed[1])
    assert "cut short" in values.ssh_key_error("ssh-ed25519 %s x" % ed[1][:-8])


def test_the_country_list_is_iso_3166():
    assert len(countries.CODES) == 249
    source = "/usr/share/iso-codes/json/iso_3166-1.json"
    if os.path.exists(source):
        with open(source) as f:
            assert countries.CODES == {e["alpha_2"] for e in json.load(f)["3166-1"]}


def fixture_root(tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "home" / "ops").mkdir(parents=True)
    (root / "root").mkdir()
    (root / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\nops:x:1000:1000:ops:/home/ops:/bin/bash\n")
    zone = root / "usr" / "share" / "zoneinfo" / "Europe"
    zone.mkdir(parents=True)
    (zone / "Berlin").write_bytes(b"TZif2" + b"\0" * 40)
    return root


class Recorder:
    def __init__(self):
        self.calls = []

    def __call__(self, argv, stdin=None):
        self.calls.append((argv, stdin))


def test_the_imager_form_applied_to_a_root(tmp_path):
    root = fixture_root(tmp_path)
    settings, errors, _ = firstboot.settings_from_toml(IMAGER)
    assert firstboot.check_against_root(settings, str(root)) == []
    run = Recorder()
    assert firstboot.apply(settings, str(root), run=run) == []
    board = root / "etc/schema-board"
    assert (board / "hostname.pattern").read_text() == "pump-07\n"
    assert run.calls == [(["usermod", "--root", str(root), "-p", HASH, "ops"], None)]
    keys = root / "home/ops/.ssh/authorized_keys"
    assert keys.read_text() == KEY + "\n" and keys.stat().st_mode & 0o777 == 0o600
    assert not (root / "root/.ssh").exists()                # keys never go to root
    assert (board / "ssh-no-passwords").exists()            # password_authentication = false
    assert not (board / "ssh-root-keys").exists()
    wpa_conf = root / "etc/wpa_supplicant/wpa_supplicant-wlan0.conf"
    assert "psk=%s" % PSK in wpa_conf.read_text() and wpa_conf.stat().st_mode & 0o077 == 0
    assert os.readlink(root / "etc/localtime") == "/usr/share/zoneinfo/Europe/Berlin"


def test_apply_writes_each_setting_and_keeps_only_the_psk(tmp_path):
    root = fixture_root(tmp_path)
    settings, errors, _ = firstboot.settings_from_toml(toml(
        '[system]\nhostname = "site-{serial}"\n[user]\nname = "new"\npassword = "plain pw"\n'
        'password_encrypted = false\n[ssh]\nenabled = false\nauthorized_keys = ["%s"]\n'
        '[wlan]\nssid = "plant"\npassword = "correct horse"\ncountry = "DE"\n'
        '[locale]\ntimezone = "Europe/Berlin"\n'
        '[schema-init]\ndevice = "pump-9"\nroot_authorized_keys = ["%s"]\n'
        '[schema-init.network]\naddresses = ["192.168.10.7/24"]\ngateway4 = "192.168.10.1"\n'
        'nameservers = ["192.168.10.1", "2001:db8::53"]\n' % (KEY, KEY2)))
    assert errors == []
    run = Recorder()

    def fake_useradd(argv, stdin=None):
        run(argv, stdin)
        if argv[0] == "useradd":
            with open(root / "etc/passwd", "a") as f:
                f.write("new:x:1001:1001::/home/new:/bin/bash\n")
            (root / "home/new").mkdir()
    assert firstboot.apply(settings, str(root), run=fake_useradd) == []
    assert run.calls[0][0][:3] == ["useradd", "--root", str(root)]
    assert run.calls[1] == (["chpasswd", "--root", str(root), "-c", "SHA512"],
                            "new:plain pw\n")
    board = root / "etc/schema-board"
    assert (board / "ssh-disabled").exists()
    assert (board / "device-name").read_text() == "pump-9\n"
    assert (root / "home/new/.ssh/authorized_keys").read_text() == KEY + "\n"
    assert (root / "root/.ssh/authorized_keys").read_text() == KEY2 + "\n"
    assert (board / "ssh-root-keys").exists()
    text = (root / "etc/wpa_supplicant/wpa_supplicant-wlan0.conf").read_text()
    assert "correct horse" not in text
    assert "psk=%s" % hashlib.pbkdf2_hmac("sha1", b"correct horse", b"plant", 4096,
                                          32).hex() in text
    assert (board / "wlan0.network").read_text().splitlines()[1:] == [
        "address 192.168.10.7/24", "gateway4 192.168.10.1", "nameserver 192.168.10.1",
        "nameserver 2001:db8::53"]


def test_the_root_is_asked_before_anything_is_applied(tmp_path):
    root = fixture_root(tmp_path)
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    settings, errors, _ = firstboot.settings_from_toml(toml(
        '[ssh]\nauthorized_keys = ["%s"]\n[locale]\ntimezone = "Europe/Berln"\n' % KEY))
    assert errors == []
    problems = firstboot.check_against_root(settings, str(root))
    assert problems[0].startswith("[locale] timezone: no time zone Europe/Berln in ")
    assert problems[1].startswith("[ssh] authorized_keys: there is no user for them")


def test_one_failed_step_is_reported_and_the_others_still_run(tmp_path):
    root = fixture_root(tmp_path)
    settings = {("locale", "timezone"): "Mars/Olympus", ("system", "hostname"): "h"}
    errors = firstboot.apply(settings, str(root))
    assert errors[0].startswith("timezone: no time zone Mars/Olympus in ")
    assert (root / "etc/schema-board/hostname.pattern").read_text() == "h\n"


def test_a_file_is_overwritten_with_zeros_before_it_is_unlinked(tmp_path, monkeypatch):
    path = tmp_path / "custom.toml"
    path.write_bytes(b"password = 'secret passphrase'\n")
    seen = []
    unlink = os.unlink

    def watching_unlink(name, *args, **kwargs):
        with open(name, "rb") as f:
            seen.append(f.read())
        unlink(name, *args, **kwargs)
    monkeypatch.setattr(os, "unlink", watching_unlink)
    firstboot.wipe(str(path))
    assert seen == [bytes(31)] and not path.exists()


def test_a_rejected_file_keeps_no_secret():
    text = toml('[wlan]\nssid = "x"\npassword = "hunter22hunter"\n[[schema-init.wlan]]\n'
                'private_key_password = "k3y"\n')
    out = firstboot.redacted("custom.toml", text)
    assert "hunter22" not in out and "k3y" not in out and 'ssid = "x"' in out
    assert "(removed by the device)" in firstboot.redacted("userconf.txt", "pi:" + HASH)


def run_firstboot(boot, root):
    return subprocess.run([program("schema-firstboot"), "--boot", str(boot), "--root",
                           str(root)], capture_output=True, text=True, timeout=60)


@pytest.mark.process
def test_the_device_side_runs_without_the_modules_the_binary_leaves_out(tmp_path):
    """The static binary has no hashlib, binascii, base64, ipaddress, subprocess or
    utf_16_le codec (build/stdlib_excludes.py): with them made unimportable, a passphrase
    still becomes its PSK, an EAP password its NT hash, keys and addresses are checked."""
    root = fixture_root(tmp_path)
    boot = tmp_path / "boot"
    boot.mkdir()
    (boot / "custom.toml").write_text(toml(
        '[user]\nname = "ops"\n[ssh]\nauthorized_keys = ["%s", "%s"]\n'
        '[wlan]\nssid = "plant"\npassword = "correct horse"\ncountry = "DE"\n'
        '[[schema-init.wlan]]\nssid = "corp"\neap = "PEAP"\nidentity = "me"\n'
        'password = "eap secret"\nca_cert = "ca.pem"\n'
        '[schema-init.network]\naddresses = ["10.1.2.3/16", "2001:db8::3/64"]\n' % (KEY, ECDSA_KEY)))
    (boot / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    script = ("import sys\n"
              "for name in ('hashlib', '_hashlib', '_sha1', 'binascii', 'base64', 'ipaddress',"
              " 'subprocess', 'encodings.utf_16_le', 'tomllib'):\n"
              "    sys.modules[name] = None\n"
              "sys.path.insert(0, %r)\n"
              "from schema_init.firstboot import firstboot\n"
              "sys.exit(firstboot.main(['--boot', %r, '--root', %r]))\n" % (ROOT, str(boot),
                                                                            str(root)))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    text = (root / "etc/wpa_supplicant/wpa_supplicant-wlan0.conf").read_text()
    assert "psk=%s" % hashlib.pbkdf2_hmac("sha1", b"correct horse", b"plant", 4096,
                                          32).hex() in text
    assert "password=hash:%s" % values.nt_hash("eap secret") in text    # RFC 1320 checked above
    assert (root / "etc/wpa_supplicant/certs/ca.pem").exists()
    assert sorted(os.listdir(boot)) == []


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
def test_a_bad_file_is_kept_without_its_secrets_with_its_reasons_and_nothing_applied(
        tmp_path):
    root = fixture_root(tmp_path)
    boot = tmp_path / "boot"
    boot.mkdir()
    (boot / "custom.toml").write_text(toml('[system]\nhostname = "ok"\n[wlan]\n'
                                           'ssid = "plant"\npassword = "secret words"\n'
                                           'country = "x"\n'))
    result = run_firstboot(boot, root)
    assert result.returncode == 1
    assert "firstboot: error: custom.toml:7: [wlan] country:" in result.stdout
    assert sorted(os.listdir(boot)) == ["custom.toml.rejected", "firstboot-errors.txt"]
    assert "custom.toml:7: [wlan] country" in (boot / "firstboot-errors.txt").read_text()
    rejected = (boot / "custom.toml.rejected").read_text()
    assert "secret words" not in rejected and 'hostname = "ok"' in rejected
    assert not (root / "etc/schema-board").exists()


@pytest.mark.process
def test_the_secrets_are_gone_from_the_partitions_bytes(tmp_path):
    """The boot partition's raw bytes no longer hold the passphrase once the device has
    read the file.  This kernel has no vfat, so an ext4 loop mount stands for the FAT:
    both overwrite a file's blocks in place, and both leave an unlinked file's bytes
    where they were (the test checks that too, so it fails with a bare unlink)."""
    if os.geteuid() != 0:
        pytest.skip("needs root for a loop mount")
    part = tmp_path / "boot.ext4"
    with open(part, "wb") as f:
        f.truncate(8 << 20)
    subprocess.run(["mkfs.ext4", "-q", str(part)], check=True)
    boot = tmp_path / "boot"
    boot.mkdir()
    if subprocess.run(["mount", "-o", "loop", str(part), str(boot)]).returncode != 0:
        pytest.skip("no loop mount here")
    try:
        (boot / "custom.toml").write_text(toml(
            '[wlan]\nssid = "plant"\npassword = "Sesame-0123456789"\ncountry = "DE"\n'))
        (boot / "decoy.txt").write_text("Decoy-0123456789\n")
        subprocess.run(["sync"], check=True)
        result = run_firstboot(boot, fixture_root(tmp_path))
        assert result.returncode == 0, result.stdout
        os.unlink(boot / "decoy.txt")               # what a bare unlink leaves
    finally:
        subprocess.run(["umount", str(boot)], check=True)
    data = part.read_bytes()
    assert b"Decoy-0123456789" in data
    assert b"Sesame-0123456789" not in data


def test_fuzzed_files_give_values_never_exceptions_and_agree_with_tomllib():
    """Mutations of the Imager form and of our tables (bytes flipped, cut, repeated,
    random garbage): every outcome is (settings, errors, warnings), an error names
    custom.toml and a line; whatever the subset parser accepts, tomllib reads the same."""
    rng = random.Random(seed_for("firstboot toml fuzz"))
    with open(EXAMPLE) as f:
        bases = [f.read(), IMAGER, toml('[[schema-init.wlan]]\nssid = "a"\n[schema-init.network]\n'
                                        'addresses = ["10.0.0.2/8"]\n[[schema-init.wlan]]\n'
                                        'ssid = "b"\neap = "TLS"\n')]
    alphabet = '[]="\'\\#,.\n\t {}uU0123456789abcdefxyz-_$\x00\x7f\ufeff\r'
    slowest, agreed = 0.0, 0
    for _ in range(3000):
        text = list(rng.choice(bases))
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
        text = "".join(text)
        start = time.perf_counter()
        settings, errors, warnings = firstboot.settings_from_toml(text)
        slowest = max(slowest, time.perf_counter() - start)
        assert isinstance(settings, dict) and isinstance(warnings, list)
        assert all(e.startswith("custom.toml:") and e.split(":")[1].isdigit() for e in errors)
        assert not (settings and errors)
        try:
            mine = tomlsubset.parse(text)
        except tomlsubset.TomlError:
            continue
        body = text[1:] if text.startswith("\ufeff") else text
        assert mine == tomllib.loads(body), text
        agreed += 1
    assert slowest < 0.5 and agreed > 100


@pytest.mark.parametrize("text", [
    "a = [1]\n[[a]]\n", "[[a]]\n[a]\n", "[a]\n[[a]]\n", "[a.b]\n[a]\nc = 1\n",
    "[a]\nb = 1\n[a.b]\n", "[[a]]\nx = 1\n[a.b]\ny = 2\n[[a]]\n[a.b]\n", "[a]\n[a]\n",
    "x = 1\n[x]\n", "[[a.b]]\n[a]\nc = 1\n", "[a]\nb = []\n[[a.b]]\n", "[a.b]\n[a.b]\n",
    "[a.b.c]\n", "a.b = 1\n", "a = 1.5\n", "a = {b = 1}\n", "[ a . b ]\nc = 'd'\n",
    "a = [1]\n[a.b]\n", "a = []\n[a.b]\n", "a = [\"x\"]\n[[a.b]]\n",
])
def test_the_subset_reads_as_tomllib_or_refuses(text):
    """Tables defined twice, [[...]] after a value or a table: refused as TOML refuses
    them; what the subset accepts, tomllib reads the same."""
    try:
        expected = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        expected = None
    try:
        got = tomlsubset.parse(text)
    except tomlsubset.TomlError:
        got = None
    assert got is None or got == expected, (got, expected)
    if expected is None:
        assert got is None


def test_fuzzed_wpa_supplicant_files_give_values_never_exceptions():
    rng = random.Random(seed_for("firstboot wpa fuzz"))
    base = ('country=DE\nnetwork={\n\tssid="plant"\n\tpsk="passphrase one"\n\tpriority=2\n}\n'
            'network={\n\tssid=6c6162\n\tkey_mgmt=WPA-EAP\n\teap=PEAP\n\tidentity="me"\n'
            '\tpassword="pw"\n\tca_cert="ca.pem"\n}\n')
    for _ in range(2000):
        text = list(base)
        for _ in range(rng.randint(1, 8)):
            pos = rng.randrange(len(text) + 1)
            text.insert(pos, rng.choice('="{}\n\t #x0aZ\x00\ufeff'))
        settings, errors, _ = firstboot.settings_from_wpa_supplicant("".join(text))
        assert bool(settings) != bool(errors)
        assert all(e.startswith("wpa_supplicant.conf:") for e in errors)


# The board's scripts: what they do with what was applied.

def identity(*args, **files):
    env = dict(os.environ, DT_SERIAL=files.get("dt", "/nonexistent"),
               CPUINFO=files.get("cpuinfo", "/nonexistent"),
               BOARD_DIR=files.get("board", "/nonexistent"))
    return subprocess.run(["sh", IDENTITY] + list(args), capture_output=True, text=True,
                          env=env, timeout=10)


@pytest.mark.process
def test_the_hostname_and_machine_id_follow_the_board_serial(tmp_path):
    dt = tmp_path / "serial-number"
    dt.write_bytes(b"00000000a1b2c3d4\x00")
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("Hardware\t: BCM2835\nRevision\t: 9000c1\nSerial\t\t: 00000000FFEE0011\n")
    assert identity("serial", dt=str(dt)).stdout.strip() == "00000000a1b2c3d4"
    assert identity("serial", cpuinfo=str(cpuinfo)).stdout.strip() == "00000000ffee0011"
    assert identity("hostname", "pizw-{serial}", dt=str(dt)).stdout.strip() == "pizw-a1b2c3d4"
    assert identity("hostname", "plant-{serial}-x", cpuinfo=str(cpuinfo)).stdout.strip() == \
        "plant-ffee0011-x"
    one = identity("machine-id", dt=str(dt)).stdout.strip()
    assert len(one) == 32 and all(c in "0123456789abcdef" for c in one)
    assert identity("machine-id", dt=str(dt)).stdout.strip() == one
    assert identity("machine-id", cpuinfo=str(cpuinfo)).stdout.strip() != one
    assert identity("serial").stdout.strip() == "0000000000000000"


@pytest.mark.process
def test_a_name_longer_than_a_host_name_falls_back_to_the_default(tmp_path):
    dt = tmp_path / "serial-number"
    dt.write_bytes(b"00000000a1b2c3d4\x00")
    board = tmp_path / "board"
    board.mkdir()
    (board / "hostname.pattern").write_text("pump-{serial}\n")
    assert identity("name", dt=str(dt), board=str(board)).stdout.strip() == "pump-a1b2c3d4"
    (board / "hostname.pattern").write_text("p" * 56 + "{serial}\n")
    result = identity("name", dt=str(dt), board=str(board))
    assert result.stdout.strip() == "pizw-a1b2c3d4"
    assert "longer than 63 characters" in result.stderr


def fake_programs(tmp_path, **scripts):
    """A bin directory with shell scripts standing for the device's programs; each records
    its arguments in calls.log."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, body in scripts.items():
        path = bin_dir / name
        path.write_text("#!/bin/sh\necho \"%s $*\" >> %s\n%s\n" % (name, tmp_path / "calls.log",
                                                                   body))
        path.chmod(0o755)
    return dict(os.environ, PATH="%s:%s" % (bin_dir, os.environ["PATH"]))


DROPBEARKEY = """case $1 in
-t) f=$4; echo "key $2" > "$f" ;;
-y) t=$(cut -d' ' -f2 "$3"); echo "Public key portion is:"; echo "ssh-$t AAAA$t root@x";
    echo "Fingerprint: SHA256:x" ;;
esac"""


@pytest.mark.process
@pytest.mark.parametrize("flags,expected", [
    ((), ["-w"]),
    (("ssh-no-passwords",), ["-w", "-s"]),
    (("ssh-root-keys",), ["-g"]),
    (("ssh-root-keys", "ssh-no-passwords"), ["-g", "-s"]),
])
def test_dropbear_gets_the_first_boot_files_choices(tmp_path, flags, expected):
    """No root login unless root was given keys (then never with a password); password
    logins off when [ssh] password_authentication = false."""
    env = fake_programs(tmp_path, dropbearkey=DROPBEARKEY, dropbear="exit 0", sync="")
    board = tmp_path / "board"
    board.mkdir()
    for flag in flags:
        (board / flag).write_text("")
    env.update(SSH_KEYS=str(tmp_path / "keys"), BOARD_DIR=str(board))
    result = subprocess.run(["sh", os.path.join(LIB, "ssh.sh")], env=env, capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    call = [line for line in (tmp_path / "calls.log").read_text().splitlines()
            if line.startswith("dropbear ")][0].split()
    assert call[1:4] == ["-F", "-E", "-p"]
    assert [w for w in call if w in ("-w", "-g", "-s")] == expected
    keys = subprocess.run(["sh", os.path.join(LIB, "ssh.sh"), "keys"], env=env,
                          capture_output=True, text=True, timeout=30).stdout
    assert keys.splitlines() == ["host_key ssh-ed25519 AAAAed25519", "host_key ssh-ecdsa "
                                 "AAAAecdsa", "host_key ssh-rsa AAAArsa"]


@pytest.mark.process
def test_a_static_address_is_set_and_kept_until_the_service_stops(tmp_path):
    env = fake_programs(tmp_path, busybox="exit 0", udhcpc="exit 0", modprobe="exit 0")
    wlan = tmp_path / "wlan0"
    wlan.mkdir()
    static = tmp_path / "wlan0.network"
    static.write_text(firstboot.static_network_text({
        "addresses": ["192.168.10.7/24", "2001:db8::7/64"], "gateway4": "192.168.10.1",
        "gateway6": "fe80::1", "nameservers": ["192.168.10.1", "2001:db8::53"]}))
    env.update(WLAN_SYS=str(wlan), STATIC_NET=str(static), RESOLV_CONF=str(tmp_path / "resolv"),
               WIFI_WAIT="0")
    process = subprocess.Popen(["sh", os.path.join(LIB, "wifi.sh"), "dhcp"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log = tmp_path / "calls.log"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not (tmp_path / "resolv").exists():
        time.sleep(0.1)
    try:
        assert process.poll() is None              # kept: the address lives while it runs
        assert [c for c in log.read_text().splitlines() if c.startswith("busybox")] == [
            "busybox ip link set wlan0 up",
            "busybox ip addr add 192.168.10.7/24 dev wlan0",
            "busybox ip addr add 2001:db8::7/64 dev wlan0",
            "busybox ip route add default via 192.168.10.1 dev wlan0",
            "busybox ip -6 route add default via fe80::1 dev wlan0"]
        assert (tmp_path / "resolv").read_text() == ("nameserver 192.168.10.1\n"
                                                     "nameserver 2001:db8::53\n")
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
    assert log.read_text().splitlines()[-1] == "busybox ip addr flush dev wlan0"
    assert "udhcpc" not in log.read_text()


@pytest.mark.process
def test_the_device_writes_its_record_on_the_boot_partition_at_first_boot(tmp_path):
    boot = tmp_path / "boot"
    boot.mkdir()
    (boot / "custom.toml").write_text(toml('[system]\nhostname = "pump-{serial}"\n'
                                           '[schema-init]\ndevice = "pump-07"\n'))
    dt = tmp_path / "serial-number"
    dt.write_bytes(b"00000000c0ffee42\x00")
    root = fixture_root(tmp_path)
    board = root / "etc/schema-board"
    wrapper = tmp_path / "schema-firstboot"
    wrapper.write_text("#!/bin/sh\nexec %s \"$@\" --root %s\n" % (program("schema-firstboot"),
                                                                   root))
    wrapper.chmod(0o755)
    env = fake_programs(tmp_path, dropbearkey=DROPBEARKEY, sync="")
    env.update(BOOT_DIR=str(boot), BOARD_DIR=str(board), FIRSTBOOT=str(wrapper),
               BOARD_LIB=LIB, DT_SERIAL=str(dt), CPUINFO="/nonexistent",
               SSH_KEYS=str(tmp_path / "keys"))
    result = subprocess.run(["sh", os.path.join(LIB, "firstboot.sh")], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    report = (boot / "firstboot-report.txt").read_text().splitlines()
    assert "device pump-07" in report and "serial 00000000c0ffee42" in report
    assert "hostname pump-c0ffee42" in report and "firstboot_exit 0" in report
    assert "host_key ssh-ed25519 AAAAed25519" in report
    assert not (boot / "custom.toml").exists()
    # a later boot, no first-boot file: the record stays as it was
    (boot / "firstboot-report.txt").write_text("kept\n")
    subprocess.run(["sh", os.path.join(LIB, "firstboot.sh")], env=env, timeout=60)
    assert (boot / "firstboot-report.txt").read_text() == "kept\n"
