"""The device list: a spreadsheet (CSV) or a TOML file -> one checked Device a card, and
each Device's custom.toml.

The file's rules: every value is checked here as the device will use it, with the
device's own checks (schema_init/firstboot/values.py), before any card is written; every
error names the file, the line, the column and the fix, and all of them are reported at
once.  Then the custom.toml made of a Device is read back by the device's own parser
(firstboot.settings_from_toml): a card the host accepts is a card the device accepts.
No secret the device does not need reaches the card: a Wi-Fi passphrase is written as
its PSK (as Raspberry Pi Imager does), a login password as its crypt(3) hash, an EAP
password as its NT hash.

Columns (a spreadsheet's header; a TOML file's keys), one device a row:

    name                    the card: NAME.img, its label, the manifest (required, unique)
    hostname                a host name, or a pattern with {serial} (default pizw-{serial})
    user, user_password     the first user; a crypt hash (openssl passwd -6) or plain text
                            (hashed here)
    authorized_keys         the user's SSH keys: ';' or line breaks between keys
    root_authorized_keys    keys for root (only then may root log in, with a key)
    ssh                     true/false (default true)
    password_authentication true/false: false = SSH with keys only
    ssid, wifi_password, hidden, priority, country      a Wi-Fi network (country: ISO 3166)
    eap, identity, anonymous_identity, ca_cert, client_cert, private_key,
    private_key_password, domain_suffix_match           WPA-Enterprise (files: host paths)
    ssid_2, wifi_password_2, ... (up to _8)             more networks, the same columns
    address, gateway4, gateway6, nameservers            a static address (several: spaces)
    timezone                Europe/London, UTC... (required: the image's tzdata has it)

``password`` is read as ``wifi_password`` and ``password_encrypted`` as
``user_password`` (the first form of this list).
"""

import difflib
import os
import re
import subprocess

from schema_init.firstboot import firstboot, values, wpa

from . import sheet

NETWORK_FIELDS = ("ssid", "wifi_password", "hidden", "priority", "eap", "identity",
                  "anonymous_identity", "ca_cert", "client_cert", "private_key",
                  "private_key_password", "domain_suffix_match")
MAX_NETWORKS = 8
FIELDS = ("name", "hostname", "user", "user_password", "authorized_keys",
          "root_authorized_keys", "ssh", "password_authentication") + NETWORK_FIELDS + (
    "country", "address", "gateway4", "gateway6", "nameservers", "timezone")
ALIASES = {"password": "wifi_password", "password_encrypted": "user_password"}
BOOLEANS = ("ssh", "password_authentication", "hidden")
LISTS = ("authorized_keys", "root_authorized_keys")
SECRETS = ("user_password", "wifi_password", "private_key_password")
DEFAULT_HOSTNAME = "pizw-{serial}"
MAX_FILE = 4 << 20


def known_columns():
    names = set(FIELDS) | set(ALIASES)
    for number in range(2, MAX_NETWORKS + 1):
        names |= {"%s_%d" % (f, number) for f in NETWORK_FIELDS}
        names |= {"password_%d" % number}
    return names


def canonical(column):
    """(field, network number) of a column name, or None."""
    column = ALIASES.get(column, column)
    if column in FIELDS:
        return column, 1
    match = re.fullmatch(r"([a-z_0-9]+?)_([2-8])", column)
    if match:
        field = ALIASES.get(match.group(1), match.group(1))
        if field in NETWORK_FIELDS:
            return field, int(match.group(2))
    return None


class DeviceError(Exception):
    """One or more errors, each a line 'FILE:LINE: column N (FIELD): what; the fix'."""


class Value:
    """A device's value with where it came from."""
    __slots__ = ("value", "where", "quoted")

    def __init__(self, value, where, quoted=True):
        self.value, self.where, self.quoted = value, where, quoted


class Device:
    def __init__(self, where):
        self.where = where                 # "devices.csv:3"
        self.fields = {}                   # (field, network) -> Value
        self.notes = []

    def get(self, field, network=1, default=None):
        value = self.fields.get((field, network))
        return default if value is None else value.value

    @property
    def name(self):
        return self.get("name", default="")

    def networks(self):
        return sorted({n for (f, n) in self.fields if f in NETWORK_FIELDS})


# Reading: CSV and TOML -> [Device]

def _cell_where(name, cell, column):
    return "%s:%d: column %d (%s)" % (name, cell.line, cell.column, column)


def bounded(path, name, data=None):
    """The device list's bytes (read from PATH unless given), refused past MAX_FILE."""
    if data is None:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE + 1)
    if len(data) > MAX_FILE:
        raise DeviceError("%s: larger than %d MiB: not a device list" % (name, MAX_FILE >> 20))
    return data


def read_csv(path, data=None):
    name = os.path.basename(path)
    data = bounded(path, name, data)
    try:
        header, rows, notes = sheet.read(data, name, known_columns())
    except sheet.SheetError as exc:
        raise DeviceError(str(exc)) from None
    errors = []
    columns = []
    for index, column in enumerate(header, 1):
        found = canonical(column)
        if found is None:
            close = difflib.get_close_matches(column, sorted(known_columns()), 1, 0.75)
            errors.append("%s:1: column %d (%s): unknown column%s (known: %s)" % (
                name, index, column or "no name", "; did you mean %s?" % close[0]
                if close else "", ", ".join(FIELDS)))
        elif found in columns:
            errors.append("%s:1: column %d (%s): the same column twice" % (name, index,
                                                                           column))
        columns.append(found)
    if ("name", 1) not in columns:
        errors.append("%s:1: a header line with a name column is required (the first line "
                      "names the columns: name,hostname,ssid,...)" % name)
    if errors:
        raise DeviceError("\n".join(errors))
    devices = []
    for line, cells in rows:
        device = Device("%s:%d" % (name, line))
        device.notes = notes
        for (field, network), column, cell in zip(columns, header, cells):
            text = cell.text
            if not text.strip():
                continue
            device.fields[(field, network)] = Value(text, _cell_where(name, cell, column),
                                                    cell.quoted)
        devices.append(device)
    return devices, notes


def _toml_lines(text):
    """For each [[device]] table: its line and {key: line} of its keys; and [defaults]'s."""
    tables, current, defaults = [], None, {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if re.match(r"^\[\[\s*device\s*\]\]\s*(#.*)?$", line):
            current = (number, {})
            tables.append(current)
            continue
        if re.match(r"^\[\s*defaults\s*\]\s*(#.*)?$", line):
            current = (number, defaults)
            continue
        if line.startswith("["):
            current = None
            continue
        match = re.match(r"^([A-Za-z0-9_-]+)\s*=", line)
        if match and current is not None:
            current[1].setdefault(match.group(1), number)
    return tables, defaults


def _toml_value(value, where):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "\n".join(value)
    if isinstance(value, str):
        return value
    raise DeviceError("%s: a string, a number, true/false or a list of strings" % where)


def read_toml(path, data=None):
    import tomllib
    name = os.path.basename(path)
    data = bounded(path, name, data)
    try:
        text = data.decode("utf-8-sig")
        document = tomllib.loads(text)
    except UnicodeDecodeError as exc:
        raise DeviceError("%s: not UTF-8 (%s): save it as UTF-8" % (name, exc)) from None
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = re.search(r"\(at line (\d+), column (\d+)\)", message)
        if match:
            message = "%s:%s: column %s: %s" % (name, match.group(1), match.group(2),
                                                 message[:match.start()].strip())
        else:
            message = "%s: %s" % (name, message)
        raise DeviceError(message) from None
    except RecursionError:
        raise DeviceError("%s: nested too deep: not a device list" % name) from None
    tables, default_lines = _toml_lines(text)
    errors = []
    for key in document:
        if key not in ("defaults", "device"):
            errors.append("%s: %s: only [defaults] and [[device]] tables here" % (name, key))
    defaults = document.get("defaults", {})
    records = document.get("device", [])
    if not isinstance(records, list) or not isinstance(defaults, dict):
        raise DeviceError("%s: [defaults] once and a [[device]] table for each card" % name)
    devices = []
    for index, record in enumerate(records):
        line, key_lines = tables[index] if index < len(tables) else (1, {})
        device = Device("%s:%d" % (name, line))
        for source, lines in ((defaults, default_lines), (record, key_lines)):
            for key, value in source.items():
                where = "%s:%d: %s" % (name, lines.get(key, line), key)
                found = canonical(key)
                if found is None:
                    close = difflib.get_close_matches(key, sorted(known_columns()), 1, 0.75)
                    errors.append("%s: unknown key%s" % (where, "; did you mean %s?" % close[0]
                                                          if close else ""))
                    continue
                try:
                    device.fields[found] = Value(_toml_value(value, where), where)
                except DeviceError as exc:
                    errors.append(str(exc))
        devices.append(device)
    if errors:
        raise DeviceError("\n".join(errors))
    return devices, []


def read_devices(path):
    """([Device], notes); DeviceError with every problem of the file."""
    if path.endswith(".toml"):
        return read_toml(path)
    return read_csv(path)


# Checking: each value as the device will use it.

def _boolean(text):
    word = text.strip().lower()
    if word in ("1", "true", "yes", "on", "y"):
        return True
    if word in ("0", "false", "no", "off", "n"):
        return False
    return None


def _split_keys(text):
    return [k.strip() for k in re.split(r"[;\n]", text) if k.strip()]


def hash_password(plain):
    """A SHA-512 crypt(3) hash of PLAIN (openssl passwd -6), made on the host."""
    result = subprocess.run(["openssl", "passwd", "-6", "-stdin"], input=plain + "\n",
                            capture_output=True, text=True)
    if result.returncode != 0 or not result.stdout.startswith("$6$"):
        raise DeviceError("openssl passwd -6 failed: %s" % result.stderr.strip())
    return result.stdout.strip()


def crypt_matches(plain, hashed):
    """Whether PLAIN is the password of HASHED (None if the host cannot tell)."""
    try:
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import crypt
        return crypt.crypt(plain, hashed) == hashed
    except (ImportError, OSError):
        pass
    parts = hashed.split("$")
    if len(parts) == 4 and parts[1] in ("5", "6") and not parts[2].startswith("rounds="):
        result = subprocess.run(["openssl", "passwd", "-" + parts[1], "-salt", parts[2],
                                 "-stdin"], input=plain + "\n", capture_output=True,
                                text=True)
        return result.stdout.strip() == hashed
    return None


def zone_error(value, zones=None):
    """The zone is one the image's tzdata has: ZONES (a set), else the host's
    /usr/share/zoneinfo (Debian's tzdata, as on the image), else Python's list."""
    if zones is None and os.path.isdir("/usr/share/zoneinfo"):
        return values.zone_file_error(value, "/usr/share/zoneinfo")
    error = values.timezone_error(value)
    if error:
        return error
    if zones is None:
        import zoneinfo
        zones = zoneinfo.available_timezones()
    if value not in zones:
        close = difflib.get_close_matches(value, sorted(zones), 1, 0.8)
        return "no time zone %s%s" % (value, "; did you mean %s?" % close[0] if close else "")
    return None


def _zone_hint(value, error):
    if error and error.startswith("no time zone") and "did you mean" not in error:
        try:
            import zoneinfo
            close = difflib.get_close_matches(value, sorted(zoneinfo.available_timezones()),
                                              1, 0.8)
        except ImportError:
            close = []
        if close:
            error += "; did you mean %s?" % close[0]
    return error


class Checked:
    """A device's values as they go on the card (secrets already turned into hashes)."""

    def __init__(self, device):
        self.device = device
        self.name = device.name
        self.hostname = DEFAULT_HOSTNAME
        self.user = None
        self.password_hash = None
        self.keys = []
        self.root_keys = []
        self.ssh = True
        self.password_authentication = None
        self.networks = []                 # wpa.new_network dicts (psk, not passphrase)
        self.files = {}                    # name on the FAT -> host path (certificates)
        self.country = None
        self.static = None
        self.timezone = None


def check_device(device, base_dir, zones=None, psk_of=values.wpa_psk):
    """(Checked, [error]) of one device."""
    out = Checked(device)
    errors = []

    def value(field, network=1):
        found = device.fields.get((field, network))
        return found

    def fail(found, message):
        errors.append("%s: %s" % (found.where, message))

    def text(field, network=1, check=None, strip=True):
        found = value(field, network)
        if found is None:
            return None
        result = found.value.strip() if strip else found.value
        if check:
            error = check(result)
            if error:
                fail(found, error)
                return None
        return result

    name = value("name")
    if name is None:
        errors.append("%s: column name: every card needs a name" % device.where)
    elif values.card_name_error(name.value.strip()):
        fail(name, values.card_name_error(name.value.strip()))
    else:
        out.name = name.value.strip()
    hostname = text("hostname", check=values.hostname_error)
    if hostname:
        out.hostname = hostname
    out.user = text("user", check=values.user_error)
    password = value("user_password")
    plain_login = None
    if password is not None:
        if out.user is None and value("user") is None:
            fail(password, "a password needs its user (column user)")
        if values.looks_like_crypt(password.value.strip()):
            error = values.crypt_error(password.value.strip())
            if error:
                fail(password, error)
            else:
                out.password_hash = password.value.strip()
        else:
            error = values.plain_password_error(password.value)
            if error:
                fail(password, error)
            else:
                plain_login = password.value
    for field, target in (("authorized_keys", out.keys), ("root_authorized_keys",
                                                          out.root_keys)):
        found = value(field)
        if found is None:
            continue
        for key in _split_keys(found.value):
            error = values.ssh_key_error(key)
            if error:
                fail(found, "%s: %s" % (key[:40] + ("..." if len(key) > 40 else ""), error))
            else:
                target.append(key)
    if out.keys and value("user") is None:
        fail(value("authorized_keys"), "SSH keys need a user (column user): they go to that "
                                       "user; keys for root go in root_authorized_keys")
    for field in ("ssh", "password_authentication"):
        found = value(field)
        if found is not None:
            flag = _boolean(found.value)
            if flag is None:
                fail(found, "must be true or false, not %r" % found.value)
            elif field == "ssh":
                out.ssh = flag
            else:
                out.password_authentication = flag
    if out.password_authentication is False and out.ssh and not out.keys and \
            not out.root_keys and not any(value(f) is not None for f in LISTS):
        fail(value("password_authentication"), "false with no authorized_keys: nobody could "
                                               "log in over SSH")
    for number in device.networks():
        network = _check_network(device, number, out, errors, base_dir, plain_login, psk_of)
        if network:
            out.networks.append(network)
    ssids = [n["ssid"] for n in out.networks]
    for ssid in sorted(set(s for s in ssids if ssids.count(s) > 1)):
        errors.append("%s: the network %r is given twice" % (device.where, ssid))
    out.country = text("country", check=values.country_error)
    if device.networks() and value("country") is None:
        errors.append("%s: column country: required with Wi-Fi (the radio's channels and "
                      "power depend on it): an ISO 3166 code, GB, DE, US..." % device.where)
    addresses = value("address")
    if addresses is not None:
        out.static = {"addresses": addresses.value.split()}
        for address in out.static["addresses"]:
            error = values.address_error(address)
            if error:
                fail(addresses, "%s: %s" % (address, error))
        for field, family in (("gateway4", 4), ("gateway6", 6)):
            gateway = text(field, check=lambda v, f=family: values.gateway_error(
                v, f, out.static["addresses"]))
            if gateway:
                out.static[field] = gateway
        servers = value("nameservers")
        if servers is not None:
            out.static["nameservers"] = servers.value.replace(",", " ").split()
            for server in out.static["nameservers"]:
                error = values.nameserver_error(server)
                if error:
                    fail(servers, "%s: %s" % (server, error))
    else:
        for field in ("gateway4", "gateway6", "nameservers"):
            if value(field) is not None:
                fail(value(field), "a static address first (column address: "
                                   "192.168.1.20/24)")
    zone = value("timezone")
    if zone is None:
        errors.append("%s: column timezone: required (the device's clock, logs and "
                      "schedules follow it): Europe/London, America/New_York, UTC..."
                      % device.where)
    else:
        error = _zone_hint(zone.value.strip(), zone_error(zone.value.strip(), zones))
        if error:
            fail(zone, error)
        else:
            out.timezone = zone.value.strip()
    if plain_login is not None and not errors:
        out.password_hash = hash_password(plain_login)   # the card gets the hash only
    return out, errors


def _check_network(device, number, out, errors, base_dir, plain_login, psk_of):
    def value(field):
        return device.fields.get((field, number))

    def fail(found, message):
        errors.append("%s: %s" % (found.where if found else device.where, message))

    ssid = value("ssid")
    if ssid is None:
        fail(value(next(f for f in NETWORK_FIELDS if value(f) is not None)),
             "a network without its SSID (column %s)" % ("ssid" if number == 1
                                                        else "ssid_%d" % number))
        return None
    if not ssid.quoted and ssid.value != ssid.value.strip():
        fail(ssid, "%r has a space at its %s: if it is part of the SSID, put the cell in "
                   "double quotes" % (ssid.value, "start" if ssid.value[0] == " " else "end"))
        return None
    error = values.ssid_error(ssid.value)
    if error:
        fail(ssid, error)
        return None
    network = wpa.new_network(ssid.value)
    for field in ("hidden",):
        found = value(field)
        if found is not None:
            flag = _boolean(found.value)
            if flag is None:
                fail(found, "must be true or false, not %r" % found.value)
            network["hidden"] = bool(flag)
    priority = value("priority")
    if priority is not None:
        if not priority.value.strip().isdigit() or int(priority.value) > 999:
            fail(priority, "a number from 0 to 999 (the higher is joined first)")
        else:
            network["priority"] = int(priority.value)
    secret = value("wifi_password")
    eap = value("eap")
    if eap is not None:
        network["eap"] = eap.value.strip().upper()
        for field in ("identity", "anonymous_identity", "domain_suffix_match",
                      "private_key_password"):
            found = value(field)
            if found is not None:
                network[field] = found.value.strip() if field != "private_key_password" \
                    else found.value
        if secret is not None:
            network["password"] = "hash:" + values.nt_hash(secret.value)
        for field in ("ca_cert", "client_cert", "private_key"):
            found = value(field)
            if found is None:
                continue
            path = os.path.join(base_dir, os.path.expanduser(found.value.strip()))
            fat_name = "%s-%s" % (out.name or "card", os.path.basename(path))
            fat_name = re.sub(r"[^A-Za-z0-9._-]", "_", fat_name)[-64:].lstrip(".")
            if not os.path.isfile(path):
                fail(found, "no file %s on this computer" % path)
            elif os.path.getsize(path) > firstboot.MAX_BYTES:
                fail(found, "%s is larger than %d bytes: not a certificate or key"
                     % (path, firstboot.MAX_BYTES))
            else:
                network[field] = fat_name
                out.files[fat_name] = path
    elif secret is not None:
        passphrase = secret.value
        if not secret.quoted and passphrase != passphrase.strip():
            fail(secret, "the passphrase has a space at its %s: if it belongs to it, put "
                         "the cell in double quotes" % ("start" if passphrase[0] == " "
                                                        else "end"))
            return None
        error = values.passphrase_error(passphrase)
        if error:
            fail(secret, error)
            return None
        if plain_login is not None and passphrase == plain_login:
            fail(secret, "this is the user's login password: is it in the wrong column?")
            return None
        if out.password_hash and crypt_matches(passphrase, out.password_hash):
            fail(secret, "this is the user's login password (it matches user_password's "
                         "hash): is it in the wrong column?")
            return None
        network["psk"] = passphrase.lower() if values.is_psk(passphrase) else \
            psk_of(passphrase, ssid.value)
    for key, message in wpa.network_errors(network):
        field = {"password": "wifi_password"}.get(key, key)
        column = field if number == 1 else "%s_%d" % (field, number)
        found = value(field)
        if key in ("ca_cert", "client_cert", "private_key") and found is not None and \
                network[key] is None:
            continue                      # the file's own error is said already
        fail(found or ssid, "%s%s" % ("" if found else "column %s: " % column, message))
    return network


def check_devices(devices, base_dir, zones=None, psk_of=values.wpa_psk):
    """([Checked], errors, warnings) of the whole list: each device, then across them
    (names and host names unique)."""
    checked, errors, warnings = [], [], []
    for device in devices:
        result, device_errors = check_device(device, base_dir, zones, psk_of)
        checked.append(result)
        errors += device_errors
    seen, hosts = {}, {}
    for result in checked:
        device = result.device
        key = result.name.lower()
        if key and key in seen:
            errors.append("%s: %s is also the name on %s (a card's name is its "
                          "file and label: each is unique)" % (
                              device.fields[("name", 1)].where, result.name, seen[key]))
        seen.setdefault(key, device.where)
        if "{serial}" not in result.hostname:
            host = result.hostname.lower()
            if host in hosts:
                where = device.fields.get(("hostname", 1))
                errors.append("%s: %s is also the host name of %s (two devices with one "
                              "name on one network; a pattern with {serial} gives each its "
                              "own)" % (where.where if where else device.where,
                                        result.hostname, hosts[host]))
            hosts.setdefault(host, device.where)
    patterns = {r.hostname for r in checked if "{serial}" in r.hostname}
    for host, where in hosts.items():
        for pattern in patterns:
            regex = re.escape(pattern.lower()).replace(re.escape("{serial}"), "[0-9a-f]{8}")
            if re.fullmatch(regex, host):
                warnings.append("%s: %s is also what the pattern %s gives a board whose "
                                "serial ends %s" % (where, host, pattern,
                                                    host[len(pattern.split("{")[0]):][:8]))
    return checked, errors, warnings


# custom.toml of a checked device.

def toml_string(value):
    out = ['"']
    for char in value:
        if char in '"\\':
            out.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append("\\u%04x" % ord(char))
        else:
            out.append(char)
    return "".join(out) + '"'


def _array(items):
    if not items:
        return "[]"
    return "[\n" + "".join("  %s,\n" % toml_string(i) for i in items) + "]"


def custom_toml(card):
    """Raspberry Pi's custom.toml, as Raspberry Pi Imager writes it (the passphrase as its
    PSK, the password as its hash), and this image's [schema-init] tables."""
    lines = ["# %s: written by schema_init/fleet/fleet.py from %s" % (card.name,
                                                                       card.device.where),
             "config_version = 1", "", "[system]",
             "hostname = %s" % toml_string(card.hostname)]
    if card.user:
        lines += ["", "[user]", "name = %s" % toml_string(card.user)]
        if card.password_hash:
            lines += ["password = %s" % toml_string(card.password_hash),
                      "password_encrypted = true"]
    lines += ["", "[ssh]", "enabled = %s" % ("true" if card.ssh else "false")]
    if card.password_authentication is not None:
        lines.append("password_authentication = %s"
                     % ("true" if card.password_authentication else "false"))
    if card.keys:
        lines.append("authorized_keys = %s" % _array(card.keys))
    main = card.networks[0] if card.networks and not card.networks[0]["eap"] else None
    if main or card.country:
        lines += ["", "[wlan]"]
    if main:
        lines.append("ssid = %s" % toml_string(main["ssid"]))
        if main["psk"]:
            lines += ["password = %s" % toml_string(main["psk"]), "password_encrypted = true"]
        lines.append("hidden = %s" % ("true" if main["hidden"] else "false"))
    if card.country:
        lines.append("country = %s" % toml_string(card.country))
    if card.timezone:
        lines += ["", "[locale]", "timezone = %s" % toml_string(card.timezone)]
    lines += ["", "[schema-init]", "device = %s" % toml_string(card.name)]
    if main and main["priority"]:
        lines.append("wlan_priority = %d" % main["priority"])
    if card.root_keys:
        lines.append("root_authorized_keys = %s" % _array(card.root_keys))
    for network in card.networks[1 if main else 0:]:
        lines += ["", "[[schema-init.wlan]]", "ssid = %s" % toml_string(network["ssid"])]
        if network["psk"]:
            lines += ["password = %s" % toml_string(network["psk"]),
                      "password_encrypted = true"]
        if network["hidden"]:
            lines.append("hidden = true")
        if network["priority"]:
            lines.append("priority = %d" % network["priority"])
        for key in ("eap", "identity", "anonymous_identity", "password", "ca_cert",
                    "client_cert", "private_key", "private_key_password",
                    "domain_suffix_match"):
            if network[key]:
                lines.append("%s = %s" % (key, toml_string(network[key])))
    if card.static:
        lines += ["", "[schema-init.network]",
                  "addresses = %s" % _array(card.static["addresses"])]
        for key in ("gateway4", "gateway6"):
            if key in card.static:
                lines.append("%s = %s" % (key, toml_string(card.static[key])))
        if card.static.get("nameservers"):
            lines.append("nameservers = %s" % _array(card.static["nameservers"]))
    text = "\n".join(lines) + "\n"
    settings, errors, warnings = firstboot.settings_from_toml(text)
    if errors or warnings:
        raise DeviceError("\n".join("%s: the device would refuse the custom.toml made of it: "
                                    "%s" % (card.device.where, m) for m in errors + warnings))
    return text
