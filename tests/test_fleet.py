"""schema_init/fleet/fleet.py: a device list (CSV or TOML) -> each card's first-boot file in the FAT of
its own copy (mtools, no root), checked by the device's own parser first; writing a card
with a read-back verify.  On a small image made here with the same tools as mkimage.sh."""

import os
import subprocess
import sys

import pytest

from conftest import ROOT
from schema_init.firstboot import firstboot

from schema_init.fleet import fleet

pytestmark = pytest.mark.process

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFleetTestKey0000000000000000000000 ops@site"


@pytest.fixture
def image(tmp_path):
    """An 16 MiB card: MBR, a FAT boot partition at 1 MiB, an empty second partition."""
    path = str(tmp_path / "base.img")
    with open(path, "wb") as f:
        f.truncate(16 << 20)
    subprocess.run(["sfdisk", "--quiet", path], input="label: dos\nlabel-id: 0x1234abcd\n"
                   "start=2048, size=16384, type=c, bootable\nstart=18432, type=83\n",
                   text=True, check=True)
    fat = str(tmp_path / "boot.fat")
    subprocess.run(["mkfs.vfat", "-C", "-n", "BOOT", fat, "8192"], check=True,
                   capture_output=True)
    (tmp_path / "config.txt").write_text("enable_uart=1\n")
    subprocess.run(["mcopy", "-i", fat, str(tmp_path / "config.txt"), "::config.txt"],
                   check=True)
    subprocess.run(["dd", "if=%s" % fat, "of=%s" % path, "bs=512", "seek=2048",
                    "conv=notrunc", "status=none"], check=True)
    return path


def fat_text(path, name):
    return fleet.mtools("mtype", "-i", fleet.boot_partition(path), "::" + name)


def test_cards_from_csv_each_get_their_own_checked_first_boot_file(image, tmp_path):
    devices = tmp_path / "devices.csv"
    devices.write_text(
        "name,hostname,user,password_encrypted,authorized_keys,ssid,password,country,timezone\n"
        "pump-01,pump-01,pi,$6$salt$hash,%s;%s,plant,passphrase one,DE,Europe/Berlin\n"
        "pump-02,pump-{serial},,,,plant,\"pass, with comma\",DE,\n" % (KEY, KEY))
    out = tmp_path / "out"
    assert fleet.main(["cards", image, str(devices), "--out", str(out)]) == 0
    assert sorted(os.listdir(out)) == ["pump-01.img", "pump-02.img"]
    one = firstboot.settings_from_toml(fat_text(str(out / "pump-01.img"), "custom.toml"))
    assert one[1] == [] and one[2] == []
    assert one[0][("system", "hostname")] == "pump-01"
    assert one[0][("ssh", "authorized_keys")] == [KEY, KEY]
    assert one[0][("locale", "timezone")] == "Europe/Berlin"
    two = firstboot.settings_from_toml(fat_text(str(out / "pump-02.img"), "custom.toml"))
    assert two[1] == []
    assert two[0][("wlan", "password")] == "pass, with comma"
    assert ("user", "name") not in two[0]
    # the rest of the card is the image's
    assert fat_text(str(out / "pump-02.img"), "config.txt") == "enable_uart=1\n"
    with open(image, "rb") as a, open(out / "pump-02.img", "rb") as b:
        assert a.read(1 << 20) == b.read(1 << 20)


def test_cards_from_toml_with_defaults(image, tmp_path):
    devices = tmp_path / "site.toml"
    devices.write_text('[defaults]\nssid = "plant"\npassword = "passphrase one"\n'
                       'country = "GB"\nauthorized_keys = ["%s"]\n\n'
                       '[[device]]\nname = "a"\n\n[[device]]\nname = "b"\nssh = false\n' % KEY)
    out = tmp_path / "out"
    assert fleet.main(["cards", image, str(devices), "--out", str(out)]) == 0
    b = firstboot.settings_from_toml(fat_text(str(out / "b.img"), "custom.toml"))[0]
    assert b[("ssh", "enabled")] is False and b[("wlan", "country")] == "GB"


@pytest.mark.parametrize("rows,message", [
    ("name,ssid,password\npump,plant,short\n", "devices.csv:2: password: a WPA passphrase"),
    ("name,country\nok,GB\npump,gb\n", "devices.csv:3: country: a country is two capital"),
    ("name,hostname\npump,bad name\n", "devices.csv:2: hostname: not a host name"),
    ("name,colour\npump,red\n", "devices.csv:2: colour: unknown field"),
    ("name,ssh\npump,maybe\n", "devices.csv:2: ssh: must be true or false"),
    ("name\npump\npump\n", "devices.csv:3: name: pump is also on devices.csv:2"),
    ("hostname\nx\n", "devices.csv:1: a header line with a name column"),
    ("name\n../evil\n", "devices.csv:2: name: required"),
])
def test_a_bad_device_is_an_error_naming_file_line_and_field_and_no_card_is_written(
        image, tmp_path, capsys, rows, message):
    devices = tmp_path / "devices.csv"
    devices.write_text(rows)
    out = tmp_path / "out"
    assert fleet.main(["cards", image, str(devices), "--out", str(out)]) == 1
    assert message in capsys.readouterr().err
    assert not out.exists() or os.listdir(out) == []


def test_flash_writes_verifies_and_adds_the_device(image, tmp_path, capsys):
    card = tmp_path / "card"             # a card reader's device, here a file
    with open(card, "wb") as f:
        f.truncate(32 << 20)
    devices = tmp_path / "devices.csv"
    devices.write_text("name,hostname\npump-07,pump-07\n")
    assert fleet.main(["flash", image, str(card), "--devices", str(devices),
                       "--device", "pump-07"]) == 0
    captured = capsys.readouterr()
    assert "written and verified" in captured.out and "100%" in captured.err
    settings = firstboot.settings_from_toml(fat_text(str(card), "custom.toml"))[0]
    assert settings[("system", "hostname")] == "pump-07"


def test_verify_finds_a_byte_the_card_did_not_keep(image, tmp_path):
    card = str(tmp_path / "card")
    expected = fleet.write_image(image, card, stream=None)
    assert fleet.verify(card, os.path.getsize(image), expected, stream=None) is None
    with open(card, "r+b") as f:
        f.seek(5 << 20)
        byte = f.read(1)
        f.seek(5 << 20)
        f.write(bytes([byte[0] ^ 0x40]))
    assert "differs" in fleet.verify(card, os.path.getsize(image), expected, stream=None)
    with open(card, "r+b") as f:
        f.truncate(1 << 20)
    assert "shorter" in fleet.verify(card, os.path.getsize(image), expected, stream=None)


def test_check_lists_partitions_and_boot_files(image, capsys):
    assert fleet.main(["check", image]) == 0
    out = capsys.readouterr().out
    assert "partition 1: start 2048, 8 MiB, type c, bootable" in out
    assert "config" in out and "txt" in out
