"""schema_init/fleet/: a device list (a spreadsheet's CSV, or TOML) -> each card's
custom.toml, checked as the device will use it; sparse card images with a manifest and
labels; flashing only to a spare removable disk, every byte read back.  On a small image
made here with the same tools as mkimage.sh; the flashing on loop devices (root)."""

import csv
import hashlib
import json
import os
import random
import subprocess

import pytest

from adversary import seed_for
from conftest import ROOT
from schema_init.firstboot import firstboot
from schema_init.fleet import devices, drives, fleet, sheet

pytestmark = pytest.mark.process

FLEET = os.path.join(ROOT, "schema_init", "fleet", "fleet.py")
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPetCVYsEKJFanyMDEBX4Iy2HrJZgguB3cRQzJpJwrFY ops1@site"
KEY2 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH0V91rFXDy9ofMAfXF4IdVIMlGnhmd7b9+UwZSPp/+s ops2@site"
HASH = ("$6$fleetsalt$ltC76R.9z0JUi7r.aJ9VRQN2I5zhF64sQugOgJSeJenmouqgI82e9BBkC7SL.lci3tGA/uQn"
        "2aRce1AauWe7t/")                     # openssl passwd -6 -salt fleetsalt secret
HEADER = "name,hostname,user,user_password,authorized_keys,ssid,wifi_password,country,timezone\n"
GOOD = "pump-01,pump-01,ops,%s,%s,plant,passphrase one,DE,Europe/Berlin\n" % (HASH, KEY)


def make_image(path, size_mb=16):
    """An MBR card: a FAT boot partition at 1 MiB (8 MiB), an empty second partition."""
    with open(path, "wb") as f:
        f.truncate(size_mb << 20)
    subprocess.run(["sfdisk", "--quiet", path], input="label: dos\nlabel-id: 0x1234abcd\n"
                   "start=2048, size=16384, type=c, bootable\nstart=18432, type=83\n",
                   text=True, check=True)
    fat = path + ".fat"
    subprocess.run(["mkfs.vfat", "-C", "-n", "BOOT", fat, "8192"], check=True,
                   capture_output=True)
    config = path + ".config.txt"
    with open(config, "w") as f:
        f.write("enable_uart=1\n")
    subprocess.run(["mcopy", "-i", fat, config, "::config.txt"], check=True)
    subprocess.run(["dd", "if=%s" % fat, "of=%s" % path, "bs=512", "seek=2048",
                    "conv=notrunc", "status=none"], check=True)
    with open(path, "r+b") as f:                   # some data past the FAT, like a root
        f.seek(10 << 20)
        f.write(b"root filesystem " * 4096)
    os.unlink(fat)
    os.unlink(config)
    return path


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    """One base image for the module (read, never written, by every test)."""
    return make_image(str(tmp_path_factory.mktemp("image") / "base.img"))


def fat_text(path, name):
    return fleet.fat_read(fleet.boot_partition(path), name).decode()


def write_list(tmp_path, content, name="devices.csv"):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return str(path)


def test_cards_from_a_spreadsheet_each_get_raspberry_pis_custom_toml(image, tmp_path, capsys):
    rows = HEADER + GOOD + ('pump-02,pump-{serial},,,,plant,"pass, with comma",DE,UTC\n'
                            'pump-03,pump-03,ops,secret pw,"%s;%s",,,,Europe/London\n'
                            % (KEY, KEY2))
    out = tmp_path / "out"
    assert fleet.main(["cards", image, write_list(tmp_path, rows), "--out", str(out)]) == 0
    assert sorted(n for n in os.listdir(out) if n.endswith(".img")) == [
        "pump-01.img", "pump-02.img", "pump-03.img"]
    one = fat_text(str(out / "pump-01.img"), "custom.toml")
    settings, errors, warnings = firstboot.settings_from_toml(one)
    assert errors == [] and warnings == []
    # as Raspberry Pi Imager writes it: the hash with password_encrypted, the PSK
    assert '[user]\nname = "ops"\npassword = "%s"\npassword_encrypted = true\n' % HASH in one
    psk = hashlib.pbkdf2_hmac("sha1", b"passphrase one", b"plant", 4096, 32).hex()
    assert 'password = "%s"\npassword_encrypted = true\n' % psk in one
    assert "passphrase one" not in one
    assert settings[("ssh", "authorized_keys")] == [KEY]
    assert settings[("schema-init", "device")] == "pump-01"
    two = firstboot.settings_from_toml(fat_text(str(out / "pump-02.img"), "custom.toml"))[0]
    assert two[("wlan", "networks")][0]["psk"] == hashlib.pbkdf2_hmac(
        "sha1", b"pass, with comma", b"plant", 4096, 32).hex()
    three = fat_text(str(out / "pump-03.img"), "custom.toml")
    assert "secret pw" not in three                 # a plain password is hashed here
    three_settings = firstboot.settings_from_toml(three)[0]
    assert devices.crypt_matches("secret pw", three_settings[("user", "password_hash")])
    assert three_settings[("ssh", "authorized_keys")] == [KEY, KEY2]
    # the rest of the card is the image's
    assert fat_text(str(out / "pump-02.img"), "config.txt") == "enable_uart=1\n"
    with open(image, "rb") as a, open(out / "pump-02.img", "rb") as b:
        assert a.read(1 << 20) == b.read(1 << 20)
        a.seek(10 << 20)
        b.seek(10 << 20)
        assert a.read(1 << 20) == b.read(1 << 20)


def test_cards_are_sparse_private_and_recorded(image, tmp_path):
    rows = HEADER + GOOD + "pump-02,,,,,,,,UTC\n"
    out = tmp_path / "out"
    assert fleet.main(["cards", image, write_list(tmp_path, rows), "--out", str(out)]) == 0
    card = out / "pump-01.img"
    info = card.stat()
    assert info.st_size == 16 << 20
    assert info.st_blocks * 512 < 1 << 20           # 16 MiB of card, under 1 MiB on disk
    assert info.st_mode & 0o777 == 0o600
    with open(out / "manifest.json") as f:
        manifest = json.load(f)["cards"]
    assert [m["card"] for m in manifest] == ["pump-01", "pump-02"]
    assert manifest[0]["sha256"] == hashlib.sha256(card.read_bytes()).hexdigest()
    assert manifest[0]["hostname"] == "pump-01" and manifest[1]["hostname"] == "pizw-{serial}"
    assert manifest[0]["wifi"] == "plant" and manifest[0]["source"] == "devices.csv:2"
    assert "first boot" in manifest[0]["ssh_host_keys"]
    assert manifest[0]["image_sha256"] == hashlib.sha256(open(image, "rb").read()).hexdigest()
    with open(out / "manifest.csv", newline="") as f:
        assert [r["sha256"] for r in csv.DictReader(f)] == [m["sha256"] for m in manifest]
    labels = (out / "labels-1.svg").read_text()
    assert "pump-01" in labels and manifest[0]["sha256"][:16] in labels
    assert "passphrase" not in json.dumps(manifest) + labels


def test_a_dry_run_shows_the_table_and_writes_nothing(image, tmp_path, capsys):
    rows = HEADER + GOOD + "pump-02,pump-{serial},,,,,,,UTC\n"
    out = tmp_path / "out"
    assert fleet.main(["cards", image, write_list(tmp_path, rows), "--out", str(out),
                       "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert not out.exists()
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["card", "host", "name"]
    assert "pump-01" in lines[2] and "plant [DE]" in lines[2] and "Europe/Berlin" in lines[2]
    assert "pump-{serial} (e.g. pump-a1b2c3d4)" in lines[3]
    assert "dry run: 2 cards checked, nothing written" in text


def test_cards_from_toml_with_defaults(image, tmp_path):
    path = write_list(tmp_path, '[defaults]\nssid = "plant"\nwifi_password = "passphrase one"\n'
                      'country = "GB"\ntimezone = "Europe/London"\nuser = "ops"\n'
                      'authorized_keys = ["%s"]\n\n'
                      '[[device]]  # the first\nname = "a"\n\n[[device]]\nname = "b"\n'
                      'ssh = false\nssid_2 = "backup"\nwifi_password_2 = "another passphrase"\n'
                      'priority_2 = 5\nhidden_2 = true\n' % KEY, "site.toml")
    out = tmp_path / "out"
    assert fleet.main(["cards", image, path, "--out", str(out)]) == 0
    b = firstboot.settings_from_toml(fat_text(str(out / "b.img"), "custom.toml"))[0]
    assert b[("ssh", "enabled")] is False and b[("wlan", "country")] == "GB"
    plant, backup = b[("wlan", "networks")]
    assert (backup["ssid"], backup["priority"], backup["hidden"]) == ("backup", 5, True)


def test_enterprise_and_static_address_columns(image, tmp_path):
    (tmp_path / "corp-ca.pem").write_text("-----BEGIN CERTIFICATE-----\nMIIB\n"
                                          "-----END CERTIFICATE-----\n")
    rows = ("name,ssid,eap,identity,wifi_password,ca_cert,country,address,gateway4,"
            "nameservers,timezone\n"
            "pump-01,corp,PEAP,pump01@corp,eap secret,corp-ca.pem,DE,192.168.10.21/24 "
            "2001:db8::21/64,192.168.10.1,192.168.10.1,UTC\n")
    out = tmp_path / "out"
    assert fleet.main(["cards", image, write_list(tmp_path, rows), "--out", str(out)]) == 0
    card = str(out / "pump-01.img")
    text = fat_text(card, "custom.toml")
    assert "eap secret" not in text
    settings = firstboot.settings_from_toml(text)[0]
    [corp] = settings[("wlan", "networks")]
    assert corp["password"] == "hash:" + firstboot.values.nt_hash("eap secret")
    assert fat_text(card, corp["ca_cert"]).startswith("-----BEGIN CERTIFICATE-----")
    assert settings[("schema-init", "network")] == {
        "addresses": ["192.168.10.21/24", "2001:db8::21/64"], "gateway4": "192.168.10.1",
        "nameservers": ["192.168.10.1"]}


# What real spreadsheets save.

GERMAN = ("name;hostname;ssid;wifi_password;country;timezone\r\n"
          "pumpe-01;pumpe-01;Büro;Passwort-fuer-alle;DE;Europe/Berlin\r\n"
          ";;;;;\r\n;;;;;\r\n")


@pytest.mark.parametrize("encoded,note", [
    (HEADER.encode() + GOOD.encode(), None),
    (b"\xef\xbb\xbf" + HEADER.encode() + GOOD.encode(), None),           # UTF-8 with BOM
    (GERMAN.encode("cp1252"), "read as Windows-1252"),                   # German Excel
    (GERMAN.encode("utf-8"), None),
    (b"\xff\xfe" + GERMAN.replace(";", "\t").encode("utf-16-le"), "read as UTF-16"),
    ((HEADER + GOOD + ",,,,,,,,\n,,,,,,,,\n").encode(), None),           # Excel's empty rows
    ((HEADER.replace("name,", "Name,") + GOOD).encode(), None),          # a capital
])
def test_what_spreadsheets_save_is_read(image, tmp_path, capsys, encoded, note):
    out = tmp_path / "out"
    assert fleet.main(["cards", image, write_list(tmp_path, encoded), "--out", str(out),
                       "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "1 cards checked" in text
    if note:
        assert note in text
    if b"pumpe" in encoded or b"p\x00u\x00m\x00p\x00e" in encoded:
        assert "Büro" in text


def test_a_windows_1252_ssid_reaches_the_card_as_utf8(image, tmp_path):
    out = tmp_path / "out"
    assert fleet.main(["cards", image, write_list(tmp_path, GERMAN.encode("cp1252")),
                       "--out", str(out)]) == 0
    settings = firstboot.settings_from_toml(fat_text(str(out / "pumpe-01.img"),
                                                     "custom.toml"))[0]
    assert settings[("wlan", "networks")][0]["ssid"] == "Büro"


# The operator's mistakes: each refused, naming file, line, column and the fix; no card.

LONG = "a" * 48
MISTAKES = [
    # accepted silently before (issue 26)
    ("duplicate host name", HEADER + GOOD + GOOD.replace("pump-01,pump-01", "pump-02,pump-01"),
     "devices.csv:3: column 2 (hostname): pump-01 is also the host name of devices.csv:2"),
    ("no country column", "name,ssid,wifi_password,timezone\npump,plant,passphrase one,UTC\n",
     "devices.csv:2: column country: required with Wi-Fi"),
    ("UK", HEADER + GOOD.replace(",DE,", ",UK,"),
     "devices.csv:2: column 8 (country): UK is not an ISO 3166-1 code: write GB"),
    ("XX", HEADER + GOOD.replace(",DE,", ",XX,"),
     "devices.csv:2: column 8 (country): 'XX' is not an ISO 3166-1 alpha-2 country code"),
    ("no time zone", HEADER + GOOD.replace(",Europe/Berlin", ","),
     "devices.csv:2: column timezone: required"),
    ("misspelt time zone", HEADER + GOOD.replace("Europe/Berlin", "Europe/Berln"),
     "devices.csv:2: column 9 (timezone): no time zone Europe/Berln in /usr/share/zoneinfo "
     "(misspelt? e.g. Europe/Berlin, UTC); did you mean Europe/Berlin?"),
    ("pattern too long", HEADER + GOOD.replace("pump-01,pump-01", "pump-01,%s{serial}" % LONG),
     "devices.csv:2: column 2 (hostname): 64 characters once {serial} is the board's serial"),
    ("keys separated by commas", HEADER + GOOD.replace(KEY, '"%s,%s"' % (KEY, KEY2)),
     "devices.csv:2: column 5 (authorized_keys): ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPet...: "
     "two keys run together with ','"),
    ("SSID with a trailing space", HEADER + GOOD.replace(",plant,", ",plant ,"),
     "devices.csv:2: column 6 (ssid): 'plant ' has a space at its end: if it is part of the "
     "SSID, put the cell in double quotes"),
    ("passphrase with a trailing space", HEADER + GOOD.replace("passphrase one", "passphrase one "),
     "devices.csv:2: column 7 (wifi_password): the passphrase has a space at its end"),
    ("login hash in the Wi-Fi column", HEADER + GOOD.replace("passphrase one", HASH),
     "devices.csv:2: column 7 (wifi_password): this is a login password hash (crypt), not a "
     "Wi-Fi passphrase"),
    ("login password in the Wi-Fi column", HEADER + GOOD.replace("passphrase one", "secret"),
     "devices.csv:2: column 7 (wifi_password): a WPA passphrase is 8 to 63 characters"),
    ("the login password, long enough", HEADER + GOOD.replace("passphrase one", "secret pw 12")
     .replace(HASH, "secret pw 12"),
     "devices.csv:2: column 7 (wifi_password): this is the user's login password"),
    ("not base64", HEADER + GOOD.replace(KEY, "ssh-ed25519 notbase64!!"),
     "devices.csv:2: column 5 (authorized_keys): ssh-ed25519 notbase64!!: the key's second "
     "word is not base64"),
    ("keys without a user", HEADER + GOOD.replace("pump-01,ops,%s" % HASH, "pump-01,,"),
     "devices.csv:2: column 5 (authorized_keys): SSH keys need a user (column user)"),
    ("password logins off and no keys", "name,password_authentication,timezone\npump,false,UTC\n",
     "devices.csv:2: column 2 (password_authentication): false with no authorized_keys"),
    # refused before, naming the wrong field
    ("a missing middle value", HEADER + "pump-01,pump-01,ops,%s,%s,plant,DE,Europe/Berlin\n"
     % (HASH, KEY), "devices.csv:2: 8 values for 9 columns (name, hostname, user, user_password,"
     " authorized_keys, ssid, wifi_password, country, timezone): a value is missing"),
    ("an unknown column", "name,colour,timezone\npump,red,UTC\n",
     "devices.csv:1: column 2 (colour): unknown column"),
    ("a misspelt column", "name,timezon\npump,UTC\n",
     "devices.csv:1: column 2 (timezon): unknown column; did you mean timezone?"),
    # refused before, and still
    ("short passphrase", "name,ssid,wifi_password,country,timezone\npump,plant,short,DE,UTC\n",
     "devices.csv:2: column 3 (wifi_password): a WPA passphrase is 8 to 63 characters"),
    ("lower-case country", HEADER + GOOD.replace(",DE,", ",de,"),
     "devices.csv:2: column 8 (country): write the country in capitals: DE"),
    ("a space in a host name", HEADER + GOOD.replace("pump-01,pump-01", "pump-01,bad name"),
     "devices.csv:2: column 2 (hostname): ' ' not allowed"),
    ("yes/no", "name,ssh,timezone\npump,maybe,UTC\n",
     "devices.csv:2: column 2 (ssh): must be true or false, not 'maybe'"),
    ("a name twice", "name,timezone\npump,UTC\npump,UTC\n",
     "devices.csv:3: column 1 (name): pump is also the name on devices.csv:2"),
    ("no name column", "hostname,timezone\nx,UTC\n", "devices.csv:1: a header line with a name"),
    ("a path as a name", "name,timezone\n../evil,UTC\n", "devices.csv:2: column 1 (name): a "
                                                           "card's name is 1 to 63"),
    ("a stray quote", 'name,timezone\npu"mp,UTC\n', "devices.csv:2: column 1: a quote inside"),
    ("an open quote", 'name,timezone\n"pump,UTC\n', "devices.csv:2: column 1: a quote opened "
                                                     "here is never closed"),
    ("a static gateway elsewhere", "name,address,gateway4,timezone\n"
     "pump,192.168.1.20/24,10.0.0.1,UTC\n", "devices.csv:2: column 3 (gateway4): 10.0.0.1 is "
                                            "outside the network of 192.168.1.20/24"),
    ("enterprise without its CA", "name,ssid,eap,identity,wifi_password,country,timezone\n"
     "pump,corp,PEAP,me,pw,DE,UTC\n", "devices.csv:2: column 2 (ssid): column ca_cert: "
                                      "WPA-Enterprise needs the CA certificate"),
]


@pytest.mark.parametrize("rows,message", [m[1:] for m in MISTAKES], ids=[m[0] for m in MISTAKES])
def test_a_mistake_is_an_error_naming_file_line_column_and_fix_and_no_card_is_written(
        image, tmp_path, capsys, rows, message):
    out = tmp_path / "out"
    assert fleet.main(["cards", image, write_list(tmp_path, rows), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert not out.exists() or os.listdir(out) == []


def test_a_toml_error_names_its_line_even_after_a_comment(image, tmp_path, capsys):
    path = write_list(tmp_path, '# site list\n[defaults]\ntimezone = "UTC"\n\n'
                      '[[device]]  # pump one\nname = "a"\ncountry = "UK"\nssid = "plant"\n'
                      'wifi_password = "passphrase one"\n', "site.toml")
    assert fleet.main(["cards", image, path, "--out", str(tmp_path / "out")]) == 1
    assert "site.toml:7: country: UK is not an ISO 3166-1 code: write GB" in \
        capsys.readouterr().err
    path = write_list(tmp_path, '[[device]]\nname = "a"\ntimezone = UTC\n', "bad.toml")
    assert fleet.main(["cards", image, path, "--out", str(tmp_path / "out")]) == 1
    assert "bad.toml:3: column 12: Invalid value" in capsys.readouterr().err


def test_the_readmes_commands_run_as_written(image, tmp_path):
    """README's and the board README's commands: fleet.py runs as a program."""
    for readme in ("README.md", "distros/raspberry-pi-zero-w/README.md"):
        with open(os.path.join(ROOT, readme)) as f:
            text = f.read()
        assert "schema_init/fleet/fleet.py cards" in text and "build/fleet.py" not in text
    assert os.access(FLEET, os.X_OK)
    rows = write_list(tmp_path, HEADER + GOOD)
    result = subprocess.run([FLEET, "cards", image, rows, "--out", str(tmp_path / "cards")],
                            capture_output=True, text=True, timeout=120, cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr
    result = subprocess.run([FLEET, "check", str(tmp_path / "cards" / "pump-01.img")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "custom.toml: the card of device pump-01" in result.stdout
    assert "keys only" not in result.stdout and "plant PSK [DE]" in result.stdout
    result = subprocess.run([FLEET, "drives"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_check_reads_the_devices_report_back(image, tmp_path, capsys):
    rows = write_list(tmp_path, HEADER + GOOD)
    assert fleet.main(["cards", image, rows, "--out", str(tmp_path / "out")]) == 0
    card = str(tmp_path / "out" / "pump-01.img")
    report = tmp_path / "firstboot-report.txt"
    report.write_text("# this device's record\ndevice pump-01\nserial 00000000c0ffee42\n"
                      "hostname pump-01\nmachine_id 0123\nfirstboot_exit 0\n"
                      "host_key %s\n" % " ".join(KEY.split()[:2]))
    fleet.put_files(fleet.boot_partition(card), {"firstboot-report.txt": report.read_bytes()})
    capsys.readouterr()
    assert fleet.main(["check", card]) == 0
    out = capsys.readouterr().out
    assert "serial       00000000c0ffee42" in out
    fingerprint = subprocess.run(["ssh-keygen", "-lf", "-"], input=KEY, capture_output=True,
                                 text=True).stdout.split()[1]
    assert "host key     ssh-ed25519 %s" % fingerprint in out


def test_the_spreadsheet_reader_never_raises_but_its_own_error():
    rng = random.Random(seed_for("fleet csv fuzz"))
    base = (HEADER + GOOD + 'pump-02,"pump-{serial}",,,,"a ""b""",x;y,DE,UTC\n').encode()
    for round_ in range(1000):
        data = bytearray(base if round_ % 4 else GERMAN.encode("cp1252"))
        for _ in range(rng.randint(1, 10)):
            pos = rng.randrange(len(data) + 1)
            choice = rng.random()
            if choice < 0.5:
                data[pos:pos] = bytes([rng.choice(b',;\t"\r\n \xef\xbb\xbf\xff\xfe\x00\x81$=')])
            elif choice < 0.8 and data:
                del data[min(pos, len(data) - 1)]
            else:
                data[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 6)))
        try:
            found, _ = devices.read_csv("fuzz.csv", bytes(data))
            devices.check_devices(found, "/nonexistent", zones={"UTC"},
                                  psk_of=lambda p, s: "0" * 64)
        except devices.DeviceError as exc:
            assert str(exc).startswith("fuzz.csv")


def test_the_toml_reader_never_raises_but_its_own_error():
    rng = random.Random(seed_for("fleet toml fuzz"))
    base = ('[defaults]\ntimezone = "UTC"\nssid = "plant"\nwifi_password = "passphrase one"\n'
            'country = "DE"\n\n[[device]]  # one\nname = "a"\nauthorized_keys = ["%s"]\n'
            'user = "ops"\n\n[[device]]\nname = "b"\nssh = false\npriority_2 = 3\n' % KEY)
    for _ in range(1000):
        data = bytearray(base.encode())
        for _ in range(rng.randint(1, 10)):
            pos = rng.randrange(len(data) + 1)
            if rng.random() < 0.7:
                data[pos:pos] = bytes([rng.choice(b'[]{}="\'#,.\n \\xu0123\xff\x00')])
            elif data:
                del data[min(pos, len(data) - 1)]
        try:
            found, _ = devices.read_toml("fuzz.toml", bytes(data))
            devices.check_devices(found, "/nonexistent", zones={"UTC"},
                                  psk_of=lambda p, s: "0" * 64)
        except devices.DeviceError as exc:
            assert str(exc).startswith("fuzz.toml")
    with pytest.raises(devices.DeviceError, match="fuzz.toml: nested too deep|fuzz.toml:1"):
        devices.read_toml("fuzz.toml", b"a = " + b"[" * 100000)


def test_the_delimiter_is_the_one_that_names_columns():
    known = devices.known_columns()
    assert sheet.sniff("name;ssid;country\npump;a,b;DE\n", known) == ";"
    assert sheet.sniff("name,ssid\npump;x,y\n", known) == ","
    assert sheet.sniff("name\tssid\n", known) == "\t"


# Flashing: only a spare removable whole disk, checked before a byte is written.

def facts(**changes):
    base = {"path": "/dev/sdz", "exists": True, "block": True, "partition": False,
            "disk": "sdz", "size": 32 << 30, "removable": True, "read_only": False,
            "sd_card": False, "model": "Reader", "transport": "usb", "type": "disk",
            "mounted": [], "holders": [], "in_use": []}
    base.update(changes)
    return base


@pytest.mark.parametrize("changes,reason", [
    ({"exists": False}, "/dev/sdz does not exist"),
    ({"block": False, "regular": True}, "is not a block device but a regular file"),
    ({"partition": True, "disk": "sdz"}, "is a partition: give the whole card, /dev/sdz"),
    ({"in_use": ["holds / of this machine"]}, "in use by this machine: holds /"),
    ({"in_use": ["holds swap (/dev/sdz2)"]}, "holds swap"),
    ({"mounted": ["/media/card"]}, "is mounted (/media/card)"),
    ({"holders": ["dm-0"]}, "is held by dm-0 (LVM, RAID, dm-crypt"),
    ({"removable": False, "transport": "sata", "model": "Samsung SSD"},
     "(Samsung SSD, sata) is not a removable drive"),
    ({"read_only": True}, "read-only"),
    ({"size": 8 << 20}, "holds 8 MiB, the image 16 MiB: a larger card is needed"),
])
def test_a_target_is_refused_for_what_the_kernel_says_of_it(changes, reason):
    assert reason in drives.refusal(facts(**changes), 16 << 20)
    assert drives.refusal(facts(), 16 << 20) is None
    assert drives.refusal(facts(removable=False, transport="", sd_card=True), 16 << 20) is None


def test_the_disk_holding_this_machines_root_is_refused_whatever_the_flags():
    number = os.stat("/").st_dev
    if os.major(number) == 0:
        pytest.skip("/ is on no block device here (overlay, tmpfs)")
    path = "/dev/" + drives.disk_of(number)
    if not os.path.exists(path):
        pytest.skip("no %s node" % path)
    reason = drives.refusal(drives.facts(path), 0, allow_non_removable=True)
    assert "in use by this machine" in reason and "holds / of this machine" in reason


def test_flash_never_makes_a_file_of_a_mistyped_target(image, tmp_path, capsys):
    target = tmp_path / "sdb"                       # /dev/sdb mistyped: no such device
    assert fleet.main(["flash", image, str(target)]) == 1
    assert "does not exist" in capsys.readouterr().err and not target.exists()
    target.write_bytes(b"precious")
    assert fleet.main(["flash", image, str(target)]) == 1
    assert "not a block device" in capsys.readouterr().err
    assert target.read_bytes() == b"precious"


@pytest.fixture
def loops(tmp_path):
    """Loop devices over files (root); their removable flag is 0, as the kernel says."""
    if os.geteuid() != 0:
        pytest.skip("needs root for loop devices")
    made = []

    def make(size_mb, partitions=False):
        backing = tmp_path / ("loop%d.img" % len(made))
        with open(backing, "wb") as f:
            f.truncate(size_mb << 20)
        result = subprocess.run(["losetup", "-f", "--show"] + (["-P"] if partitions else []) +
                                [str(backing)], capture_output=True, text=True)
        if result.returncode != 0:
            pytest.skip("no loop device: %s" % result.stderr.strip())
        made.append(result.stdout.strip())
        return result.stdout.strip()
    yield make
    for device in made:
        subprocess.run(["umount", "-l", device + "p1"], capture_output=True)
        subprocess.run(["losetup", "-d", device], capture_output=True)


def device_bytes(device, length):
    with open(device, "rb") as f:
        return f.read(length)


def test_a_loop_device_is_refused_as_not_removable(image, loops, capsys):
    device = loops(32)
    found = drives.facts(device)
    assert found["block"] and not found["partition"] and not found["removable"]
    assert found["size"] == 32 << 20 and found["type"] == "loop"
    assert open("/sys/block/%s/removable" % os.path.basename(device)).read().strip() == "0"
    assert fleet.main(["flash", image, device]) == 1
    assert "is not a removable drive" in capsys.readouterr().err
    assert device_bytes(device, 1 << 20) == bytes(1 << 20)


def test_a_card_too_small_is_refused_before_a_byte_is_written(image, loops, capsys):
    device = loops(8)
    with open(device, "r+b") as f:
        f.write(b"old card")
    assert fleet.main(["flash", image, device, "--allow-non-removable"]) == 1
    assert "holds 8 MiB, the image 16 MiB: a larger card is needed" in capsys.readouterr().err
    assert device_bytes(device, 8) == b"old card"


def test_a_mounted_card_and_a_partition_are_refused(image, loops, tmp_path, capsys):
    device = loops(32, partitions=True)
    subprocess.run(["sfdisk", "--quiet", device], input="label: dos\nstart=2048, type=83\n",
                   text=True, check=True)
    subprocess.run(["partx", "-u", device], capture_output=True)
    part = device + "p1"
    if not os.path.exists(part):
        pytest.skip("no partition device for the loop device")
    subprocess.run(["mkfs.ext4", "-q", part], check=True)
    mount = tmp_path / "mnt"
    mount.mkdir()
    if subprocess.run(["mount", part, str(mount)]).returncode != 0:
        pytest.skip("cannot mount here")
    try:
        assert fleet.main(["flash", image, device, "--allow-non-removable"]) == 1
        err = capsys.readouterr().err
        assert "in use by this machine: mounted on %s" % mount in err
        assert fleet.main(["flash", image, part, "--allow-non-removable"]) == 1
        assert "is a partition: give the whole card, /dev/%s" % os.path.basename(device) in \
            capsys.readouterr().err
    finally:
        subprocess.run(["umount", str(mount)], check=True)
    with pytest.raises(fleet.FleetError, match="Device or resource busy|cannot be opened"):
        holder = os.open(part, os.O_RDONLY | os.O_EXCL)     # held by another opener
        try:
            fleet.open_card(device)
        finally:
            os.close(holder)


def test_flash_writes_cards_at_once_reads_every_byte_back_and_records_them(
        image, loops, tmp_path, capsys):
    first, second = loops(32), loops(24)
    with open(second, "r+b") as f:
        f.write(b"\xff" * (1 << 20))                 # an old card's bytes, replaced
    rows = write_list(tmp_path, HEADER + GOOD + GOOD.replace("pump-01,pump-01",
                                                               "pump-02,pump-02"))
    records = tmp_path / "records"
    assert fleet.main(["flash", image, first, second, "--devices", rows, "--device", "pump-01",
                       "--device", "pump-02", "--records", str(records),
                       "--allow-non-removable"]) == 0
    out = capsys.readouterr().out
    size = os.path.getsize(image)
    for device, name in ((first, "pump-01"), (second, "pump-02")):
        written = device_bytes(device, size)
        digest = hashlib.sha256(written).hexdigest()
        assert "%s: written and read back, every byte: sha256 %s (%d bytes), the card of %s" \
            % (device, digest, size, name) in out
        settings = firstboot.settings_from_toml(fleet.fat_read(
            "%s@@%d" % (device, 1 << 20), "custom.toml").decode())[0]
        assert settings[("schema-init", "device")] == name
        assert written[10 << 20:(10 << 20) + 16] == b"root filesystem "
    [manifest] = [p for p in os.listdir(records) if p.endswith(".json")]
    with open(records / manifest) as f:
        cards = json.load(f)["cards"]
    assert [c["card"] for c in cards] == ["pump-01", "pump-02"]
    assert cards[0]["sha256"] == hashlib.sha256(device_bytes(first, size)).hexdigest()
    assert cards[0]["written_to"].startswith(first)


def test_a_card_that_gives_back_other_bytes_is_reported(image, loops, monkeypatch, capsys):
    device = loops(32)
    real = fleet.read_back

    def failing_card(target, length, progress=None):
        digest, done = real(target, length, progress)
        return hashlib.sha256(b"other").hexdigest(), done
    monkeypatch.setattr(fleet, "read_back", failing_card)
    assert fleet.main(["flash", image, device, "--allow-non-removable"]) == 1
    assert "what was read back differs from what was written" in capsys.readouterr().err
