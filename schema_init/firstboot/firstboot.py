"""The first-boot files of a flashed card, read from its FAT partition and applied once:
Raspberry Pi's ``custom.toml`` (the keys Raspberry Pi Imager writes and Raspberry Pi OS's
init_config reads, with their meaning) plus this image's own table ``[schema-init]``;
``userconf.txt``/``userconf``, ``ssh``/``ssh.txt`` and ``wpa_supplicant.conf`` as
Raspberry Pi OS takes them.

The file's rules: this is an input channel anyone holding the card writes to, so

* parsing is strict and bounded (tomlsubset.py), every value is checked as the device
  will use it (values.py, wpa.py), and a file with one error is applied not at all:
  ``settings_from_*`` are pure, text in, (settings, errors, warnings) out, each error
  naming the file, its line and key and the fix;
* ``check_against_root`` asks the root what only it knows (the time zones of its
  tzdata, its first user) before anything is written;
* ``apply`` is the thin shell: each step is applied on its own, a failed one is
  reported and the others still run; ``main`` never lets a bad file stop the boot;
* secrets leave the card: each file is overwritten with zeros, synced and only then
  unlinked (a FAT unlink leaves the bytes in place); a rejected file is kept for the
  operator with its secret values removed; the Wi-Fi passphrase is kept on the data
  partition only as its PSK, an EAP password only as its NT hash;
* SSH keys go to the first user, never to root unless ``[schema-init]
  root_authorized_keys`` says so.

Run as ``schema-firstboot --boot /boot/firmware`` (a name of the binary, like schema-ctl;
distros/raspberry-pi-zero-w/lib/firstboot.sh), so the image needs no Python.  The static
binary carries only the standard library PID 1 needs: nothing here imports more than
os, sys and struct.
"""

import os
import sys

from . import tomlsubset, values, wpa

MAX_BYTES = tomlsubset.MAX_BYTES
TomlError = tomlsubset.TomlError
parse_toml = tomlsubset.parse
OURS = "schema-init"

# What each accepted key must be: (type, check) where check returns an error or None.
# Raspberry Pi's keys, with the meaning init_config gives them.
SCHEMA = {
    ("system", "hostname"): (str, values.hostname_error),
    ("user", "name"): (str, values.user_error),
    ("user", "password"): (str, None),                # checked with password_encrypted
    ("user", "password_encrypted"): (bool, None),     # default true: a crypt(3) hash
    ("ssh", "enabled"): (bool, None),
    ("ssh", "password_authentication"): (bool, None),
    ("ssh", "authorized_keys"): (list, values.ssh_key_error),
    ("wlan", "ssid"): (str, values.ssid_error),
    ("wlan", "password"): (str, values.passphrase_error),
    ("wlan", "password_encrypted"): (bool, None),     # true: password is the 64-hex PSK
    ("wlan", "hidden"): (bool, None),
    ("wlan", "country"): (str, values.country_error),
    ("locale", "timezone"): (str, values.timezone_error),
    # this image's own keys, in its own table (init_config ignores it with a warning)
    (OURS, "device"): (str, values.card_name_error),  # the card's name in the fleet
    (OURS, "root_authorized_keys"): (list, values.ssh_key_error),
    (OURS, "wlan_priority"): (int, values.priority_error),  # [wlan]'s priority
    (OURS, "metrics"): (bool, None),                  # schema-metrics + node_exporter on
}
# Raspberry Pi's keys this image has no use for: accepted, reported as ignored.
IGNORED = {("locale", "keymap"): "no keyboard layout on this image",
           ("ssh", "ssh_import_id"): "needs ssh-import-id and a network at first boot",
           ("system", "wifi_country"): "write [wlan] country"}

# [[schema-init.wlan]]: more networks (key -> type); [schema-init.network]: a static
# address, with cloud-init's network-config v2 (netplan) names.
NETWORK_KEYS = {"ssid": str, "password": str, "password_encrypted": bool, "hidden": bool,
                "priority": int, "eap": str, "identity": str, "anonymous_identity": str,
                "phase2": str, "ca_cert": str, "client_cert": str, "private_key": str,
                "private_key_password": str, "domain_suffix_match": str}
STATIC_KEYS = {"addresses": list, "gateway4": str, "gateway6": str, "nameservers": list}
SECRET_KEYS = ("password", "private_key_password", "psk", "private_key_passwd")
KIND_NAMES = {str: "a string", bool: "true or false", list: "an array", int: "an integer"}


class _Report:
    """Errors and warnings of one file, each 'FILE:LINE: [table] key: message'."""

    def __init__(self, name, lines=None):
        self.name, self.lines = name, lines or {}
        self.errors, self.warnings = [], []

    def where(self, path, key=""):
        line = self.lines.get((path, key)) or self.lines.get((path, "")) or 1
        if len(path) == 3:                 # an entry of an array of tables
            table = "[[%s.%s]] #%d" % (path[0], path[1], path[2] + 1)
        else:
            table = "[%s]" % ".".join(path) if path else ""
        return "%s:%d: %s%s" % (self.name, line, table + " " if table and key else table,
                                key)

    def error(self, path, key, message):
        self.errors.append("%s: %s" % (self.where(path, key), message))

    def warn(self, path, key, message):
        self.warnings.append("%s: %s" % (self.where(path, key), message))


def _typed(report, path, key, value, kind):
    if type(value) is not kind:
        report.error(path, key, "must be %s" % KIND_NAMES[kind])
        return False
    if kind is list and any(type(item) is not str for item in value):
        report.error(path, key, "must be an array of strings")
        return False
    return True


def _typed_table(report, path, table, kinds):
    """{key: value} of TABLE's keys of the right kind (KINDS: key -> type); the others
    are warned about (unknown) or errors (of another kind)."""
    out = {}
    for key, value in sorted(table.items()):
        if key not in kinds:
            report.warn(path, key, "unknown, ignored")
        elif _typed(report, path, key, value, kinds[key]):
            out[key] = value
    return out


def _network(report, path, fields, main=False):
    """A wpa.new_network from typed FIELDS ([wlan]'s, checked by SCHEMA already, or a
    [[schema-init.wlan]] entry's); None if there is no SSID."""
    if "ssid" not in fields:
        if "password" in fields or not main:
            report.error(path, "ssid", "the network's SSID is missing")
        return None
    network = wpa.new_network(fields["ssid"])
    network["hidden"] = fields.get("hidden", False)
    network["priority"] = fields.get("priority", 0)
    error = values.priority_error(network["priority"])
    if error:
        report.error(path, "priority", error)
    eap = fields.get("eap")
    if eap is not None:
        network["eap"] = eap.upper()
        for key in ("identity", "anonymous_identity", "ca_cert", "client_cert",
                    "private_key", "private_key_password", "domain_suffix_match",
                    "password"):
            network[key] = fields.get(key)
        phase2 = fields.get("phase2")
        network["phase2"] = phase2.upper() if phase2 else None
    elif "password" in fields:
        password = fields["password"]
        error = None if main else values.passphrase_error(password)
        if error:
            report.error(path, "password", error)
        elif values.is_psk(password):
            network["psk"] = password.lower()
        else:
            if fields.get("password_encrypted") is True:
                # Raspberry Pi's meaning: an encrypted password is the PSK; a passphrase
                # under it still works there (NetworkManager takes either), so here too.
                report.warn(path, "password_encrypted", "true, but the password is not "
                            "the 64-hex-digit PSK: taken as a passphrase")
            network["passphrase"] = password
    for key, message in wpa.network_errors(network):
        if not (main and key == "ssid"):          # [wlan] ssid: checked by SCHEMA
            report.error(path, key, message)
    return network


def settings_from_toml(text, name="custom.toml"):
    """(settings {(table, key): value}, errors [str], warnings [str]); errors mean nothing
    of the file is applied.  Besides the keys of SCHEMA, settings may hold
    ("wlan", "networks") (every network, wpa.new_network form), ("schema-init",
    "network") (the static address) and ("user", "password_hash") or
    ("user", "password_plain")."""
    lines = {}
    try:
        document = parse_toml(text, lines)
    except TomlError as exc:
        return {}, ["%s:%d: %s" % (name, exc.line, exc.message)], []
    report = _Report(name, lines)
    settings = {}
    version = document.pop("config_version", None)
    if version != 1 or isinstance(version, bool):
        report.error((), "config_version", "1 is required (found %r)" % (version,))
    ours = document.get(OURS) if isinstance(document.get(OURS), dict) else {}
    extra_networks = ours.pop("wlan", None)
    static = ours.pop("network", None)
    user = document.get("user")
    if isinstance(user, dict) and isinstance(user.get("password_encrypted"), str):
        # this image's first form: the crypt hash under password_encrypted
        report.warn(("user",), "password_encrypted", "a crypt hash here is the old form: "
                    "write password = \"$6$...\" and password_encrypted = true")
        if user.setdefault("password", user["password_encrypted"]) != \
                user["password_encrypted"]:
            report.error(("user",), "password_encrypted", "differs from [user] password")
        user["password_encrypted"] = True
    for table, entries in sorted(document.items(), key=lambda item: item[0]):
        if not isinstance(entries, dict):
            report.error((), table, "must be inside a [table]")
            continue
        for key, value in sorted(entries.items()):
            path = (table,)
            if (table, key) in IGNORED:
                report.warn(path, key, "not supported by this image, ignored (%s)"
                            % IGNORED[(table, key)])
                continue
            if (table, key) not in SCHEMA:
                if isinstance(value, dict) or isinstance(value, list) and value and \
                        isinstance(value[0], dict):
                    report.warn(path + (key,), "", "unknown table, ignored")
                else:
                    report.warn(path, key, "unknown, ignored")
                continue
            kind, check = SCHEMA[(table, key)]
            if not _typed(report, path, key, value, kind):
                continue
            error = None
            if check and kind is list:
                for item in value:
                    error = error or check(item)
            elif check:
                error = check(value)
            if error:
                report.error(path, key, error)
                continue
            settings[(table, key)] = value
    _user(report, settings)
    networks = []
    main = {key: settings[("wlan", key)] for key in ("ssid", "password", "hidden",
                                                     "password_encrypted")
            if ("wlan", key) in settings}
    if main:
        main["priority"] = settings.get((OURS, "wlan_priority"), 0)
        network = _network(report, ("wlan",), main, main=True)
        if network:
            networks.append(network)
    if extra_networks is not None:
        if not isinstance(extra_networks, list):
            report.error((OURS,), "wlan", "write each network as a [[schema-init.wlan]] table")
        else:
            for index, table in enumerate(extra_networks):
                path = (OURS, "wlan", index)
                network = _network(report, path, _typed_table(report, path, table,
                                                              NETWORK_KEYS))
                if network:
                    networks.append(network)
    if networks:
        settings[("wlan", "networks")] = networks
    if static is not None:
        _static(report, settings, static)
    _across(report, settings)
    return ({} if report.errors else settings), report.errors, report.warnings


def _user(report, settings):
    """[user] password with password_encrypted (default true, as init_config has it)."""
    password = settings.get(("user", "password"))
    if password is None:
        return
    if ("user", "name") not in settings:
        report.error(("user",), "password", "needs [user] name")
        return
    if settings.get(("user", "password_encrypted"), True):
        error = values.crypt_error(password)
        if error:
            report.error(("user",), "password", error + (
                " (or password_encrypted = false for a plain password)"
                if not values.looks_like_crypt(password) else ""))
        else:
            settings[("user", "password_hash")] = password
    else:
        error = values.plain_password_error(password)
        if error:
            report.error(("user",), "password", error)
        else:
            settings[("user", "password_plain")] = password


def _static(report, settings, table):
    path = (OURS, "network")
    if not isinstance(table, dict):
        report.error((OURS,), "network", "write it as a [schema-init.network] table")
        return
    static = _typed_table(report, path, table, STATIC_KEYS)
    for address in static.get("addresses", []):
        error = values.address_error(address)
        if error:
            report.error(path, "addresses", "%s: %s" % (address, error))
    if not static.get("addresses"):
        report.error(path, "addresses", "a static address needs addresses = [\"A.B.C.D/N\"]")
    for key, family in (("gateway4", 4), ("gateway6", 6)):
        if key in static:
            error = values.gateway_error(static[key], family, static.get("addresses", []))
            if error:
                report.error(path, key, error)
    for server in static.get("nameservers", []):
        error = values.nameserver_error(server)
        if error:
            report.error(path, "nameservers", "%s: %s" % (server, error))
    settings[(OURS, "network")] = static


def _across(report, settings):
    """Checks between keys: what one key needs of another."""
    if ("wlan", "networks") in settings and ("wlan", "country") not in settings:
        report.error(("wlan",), "country", "required with a Wi-Fi network: the channels and "
                     "power the radio may use depend on it (GB, DE, US...)")
    ssids = [n["ssid"] for n in settings.get(("wlan", "networks"), [])]
    for ssid in sorted(set(s for s in ssids if ssids.count(s) > 1)):
        report.error((OURS, "wlan"), "", "the network %r is given twice" % ssid)
    if settings.get(("ssh", "password_authentication")) is False and \
            settings.get(("ssh", "enabled"), True) and \
            not settings.get(("ssh", "authorized_keys")) and \
            not settings.get((OURS, "root_authorized_keys")):
        report.error(("ssh",), "password_authentication", "false with no authorized_keys: "
                     "nobody could log in over SSH (add keys, or enabled = false)")


def settings_from_userconf(text, name="userconf.txt"):
    """userconf.txt: one line NAME:CRYPT-HASH, as Raspberry Pi OS reads it."""
    lines = [line for line in text.replace("\r\n", "\n").split("\n") if line.strip()]
    if len(text) > 4096 or len(lines) != 1 or lines[0].count(":") != 1:
        return {}, ["%s:1: one line NAME:ENCRYPTED-PASSWORD is expected" % name], []
    user, crypted = lines[0].strip().split(":")
    errors = ["%s:1: %s" % (name, e) for e in (values.user_error(user),
                                                values.crypt_error(crypted)) if e]
    if errors:
        return {}, errors, []
    return {("user", "name"): user, ("user", "password"): crypted,
            ("user", "password_encrypted"): True, ("user", "password_hash"): crypted}, [], []


def settings_from_wpa_supplicant(text, name="wpa_supplicant.conf"):
    country, networks, errors = wpa.parse_legacy(text, name)
    if not networks and not errors:
        errors.append("%s:1: no network={ ... } in it" % name)
    if networks and not country:
        errors.append("%s:1: country=: required with a network (GB, DE, US...)" % name)
    if errors:
        return {}, errors, []
    return {("wlan", "networks"): networks, ("wlan", "country"): country}, [], []


def check_against_root(settings, root="/", boot=None):
    """What only the device's root and boot partition can tell, asked before anything is
    applied: [error]."""
    errors = []
    zone = settings.get(("locale", "timezone"))
    if zone:
        error = values.zone_file_error(zone, os.path.join(root, "usr/share/zoneinfo"))
        if error:
            errors.append("[locale] timezone: %s" % error)
    if settings.get(("ssh", "authorized_keys")) and ("user", "name") not in settings and \
            first_user(root) is None:
        errors.append("[ssh] authorized_keys: there is no user for them: add [user] name "
                      "(keys go to that user, never to root; [schema-init] "
                      "root_authorized_keys is for root)")
    for network in settings.get(("wlan", "networks"), []):
        for key in ("ca_cert", "client_cert", "private_key"):
            if network[key] and boot is not None and \
                    not os.path.isfile(os.path.join(boot, network[key])):
                errors.append("%s %s: no file %s on the boot partition"
                              % (network["ssid"], key, network[key]))
    return errors


# The thin shell: files on the boot partition in, files in /etc out.

FIRST_BOOT_FILES = ("custom.toml", "userconf.txt", "userconf", "ssh", "ssh.txt",
                    "wpa_supplicant.conf")
REPORT = "firstboot-errors.txt"


def _write(path, text, mode=0o644):
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    temporary = path + ".new"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)
        data = text.encode("utf-8") if isinstance(text, str) else text
        while data:
            data = data[os.write(fd, data):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(temporary, path)


def _run(argv, stdin=None):
    """Run a program (useradd, usermod, chpasswd) to its end; OSError with its output if
    it fails.  fork/exec by hand: the static binary carries no subprocess module."""
    read_end, write_end = os.pipe()
    in_read, in_write = os.pipe() if stdin is not None else (None, None)
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            if in_read is not None:
                os.close(in_write)
                os.dup2(in_read, 0)
            os.dup2(write_end, 1)
            os.dup2(write_end, 2)
            os.execvp(argv[0], argv)
        finally:
            os._exit(127)
    os.close(write_end)
    if in_read is not None:
        os.close(in_read)
        data = stdin.encode("utf-8")
        try:
            while data:
                data = data[os.write(in_write, data):]
        except OSError:
            pass
        os.close(in_write)
    output = b""
    with os.fdopen(read_end, "rb") as pipe:
        output = pipe.read(65536)
        while pipe.read(65536):            # drained, so the program never blocks on it
            pass
    code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    if code != 0:
        raise OSError("%s exited %d: %s" % (" ".join(argv[:2]), code,
                                            output.decode("utf-8", "replace").strip()[-200:]))


# The groups of Raspberry Pi OS's first user that this image has (serial ports, video,
# network control): those missing from /etc/group are left out rather than failing useradd.
USER_GROUPS = ("adm", "dialout", "video", "netdev", "plugdev", "users")


def _group_exists(root, name):
    try:
        with open(os.path.join(root, "etc/group")) as f:
            return any(line.split(":", 1)[0] == name for line in f)
    except OSError:
        return False


def _passwd_entries(root):
    try:
        with open(os.path.join(root, "etc/passwd")) as f:
            return [fields for fields in (line.rstrip("\n").split(":") for line in f)
                    if len(fields) >= 7]
    except OSError:
        return []


def _passwd_entry(root, name):
    return next((e for e in _passwd_entries(root) if e[0] == name), None)


def first_user(root):
    """The first user's name (uid 1000, as Raspberry Pi OS's first-boot tools take it)."""
    return next((e[0] for e in _passwd_entries(root) if e[2] == "1000"), None)


def _install_keys(root, owner, keys):
    entry = _passwd_entry(root, owner)
    if entry is None:
        raise OSError("no user %s for the authorized keys" % owner)
    home = os.path.join(root, entry[5].lstrip("/"))
    path = os.path.join(home, ".ssh", "authorized_keys")
    _write(path, "".join(k + "\n" for k in keys), 0o600)
    for p in (os.path.dirname(path), path):
        os.chown(p, int(entry[2]), int(entry[3]))
    os.chmod(os.path.dirname(path), 0o700)


def _flag(path, on, text):
    if on:
        _write(path, text)
    elif os.path.lexists(path):
        os.unlink(path)


def static_network_text(static):
    """/etc/schema-board/wlan0.network: one 'kind value' a line, read by lib/wifi.sh."""
    out = ["# written by schema-firstboot ([schema-init.network]); lib/wifi.sh applies it"]
    out += ["address %s" % a for a in static.get("addresses", [])]
    out += ["%s %s" % (k, static[k]) for k in ("gateway4", "gateway6") if k in static]
    out += ["nameserver %s" % s for s in static.get("nameservers", [])]
    return "\n".join(out) + "\n"


def apply(settings, root="/", board_dir="/etc/schema-board", boot=None, run=_run):
    """Each step applied on its own; returns [error] of the steps that failed.  RUN runs
    a program (tests pass a recorder)."""
    errors = []
    join = lambda *parts: os.path.join(root, *parts)   # noqa: E731
    board = join(board_dir.lstrip("/"))
    rooted = ["--root", root] if root != "/" else []
    steps = []
    if ("system", "hostname") in settings:
        steps.append(("hostname", lambda: _write(os.path.join(board, "hostname.pattern"),
                                                 settings[("system", "hostname")] + "\n")))
    if (OURS, "device") in settings:
        steps.append(("device", lambda: _write(os.path.join(board, "device-name"),
                                               settings[(OURS, "device")] + "\n")))
    user = settings.get(("user", "name"))
    if user:
        def add_user():
            if _passwd_entry(root, user) is None:
                groups = ",".join(g for g in USER_GROUPS if _group_exists(root, g))
                run(["useradd"] + rooted + ["-m", "-s", "/bin/bash", "-U"] +
                    (["-G", groups] if groups else []) + [user])
            if ("user", "password_hash") in settings:
                run(["usermod"] + rooted + ["-p", settings[("user", "password_hash")], user])
            elif ("user", "password_plain") in settings:
                run(["chpasswd"] + rooted + ["-c", "SHA512"],
                    stdin="%s:%s\n" % (user, settings[("user", "password_plain")]))
        steps.append(("user", add_user))
    if ("ssh", "enabled") in settings:
        steps.append(("ssh", lambda: _flag(os.path.join(board, "ssh-disabled"),
                                           not settings[("ssh", "enabled")],
                                           "disabled by the first-boot file\n")))
    if ("ssh", "password_authentication") in settings:
        steps.append(("ssh password logins", lambda: _flag(
            os.path.join(board, "ssh-no-passwords"),
            not settings[("ssh", "password_authentication")],
            "[ssh] password_authentication = false: dropbear -s\n")))
    if settings.get(("ssh", "authorized_keys")):
        steps.append(("authorized_keys", lambda: _install_keys(
            root, user or first_user(root) or "", settings[("ssh", "authorized_keys")])))
    if (OURS, "metrics") in settings:
        steps.append(("metrics", lambda: _flag(
            os.path.join(board, "metrics-enabled"), settings[(OURS, "metrics")],
            "[schema-init] metrics = true: schema-metrics and node_exporter run\n")))
    if settings.get((OURS, "root_authorized_keys")):
        def root_keys():
            _install_keys(root, "root", settings[(OURS, "root_authorized_keys")])
            _write(os.path.join(board, "ssh-root-keys"),
                   "root may log in with a key, never a password (dropbear -g)\n")
        steps.append(("root_authorized_keys", root_keys))
    if ("wlan", "networks") in settings:
        def wifi():
            networks = settings[("wlan", "networks")]
            for network in networks:
                for key in ("ca_cert", "client_cert", "private_key"):
                    if network[key]:
                        with open(os.path.join(boot or "/nonexistent", network[key]),
                                  "rb") as f:
                            data = f.read(MAX_BYTES + 1)
                        if len(data) > MAX_BYTES:
                            raise OSError("%s is larger than %d bytes" % (network[key],
                                                                           MAX_BYTES))
                        _write(join(wpa.CERT_DIR.lstrip("/"), network[key]), data, 0o600)
            _write(join("etc/wpa_supplicant/wpa_supplicant-wlan0.conf"),
                   wpa.render(settings[("wlan", "country")], networks), 0o600)
        steps.append(("wlan", wifi))
    if (OURS, "network") in settings:
        steps.append(("network", lambda: _write(os.path.join(board, "wlan0.network"),
                                                static_network_text(
                                                    settings[(OURS, "network")]))))
    if ("locale", "timezone") in settings:
        def timezone():
            zone = settings[("locale", "timezone")]
            error = values.zone_file_error(zone, join("usr/share/zoneinfo"))
            if error:
                raise OSError(error)
            link = join("etc/localtime")
            if os.path.lexists(link):
                os.unlink(link)
            os.symlink("/usr/share/zoneinfo/" + zone, link)
            _write(join("etc/timezone"), zone + "\n")
        steps.append(("timezone", timezone))
    for name, step in steps:
        try:
            step()
        except (OSError, ValueError) as exc:
            errors.append("%s: %s" % (name, exc))
    return errors


def read_boot_files(boot, root="/"):
    """(settings, errors, warnings, files found) from the boot partition's directory,
    checked against ROOT too (check_against_root)."""
    settings, errors, warnings, found = {}, [], [], []
    origin = {}
    for name in FIRST_BOOT_FILES:
        path = os.path.join(boot, name)
        if not os.path.isfile(path):
            continue
        found.append(name)
        try:
            with open(path, "rb") as f:
                data = f.read(MAX_BYTES + 1)
            text = data.decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            errors.append("%s:1: unreadable (%s)" % (name, exc))
            continue
        if name == "custom.toml":
            got = settings_from_toml(text, name)
        elif name.startswith("userconf"):
            got = settings_from_userconf(text, name)
        elif name == "wpa_supplicant.conf":
            got = settings_from_wpa_supplicant(text, name)
        else:
            got = ({("ssh", "enabled"): True}, [], [])
        for key, value in got[0].items():
            if key in settings and settings[key] != value:
                errors.append("%s: [%s] %s: also given by %s, differently"
                              % (name, key[0], key[1], origin[key]))
            settings[key], origin[key] = value, name
        errors.extend(got[1])
        warnings.extend(got[2])
    if found and not errors:
        errors.extend(check_against_root(settings, root, boot))
    return settings, errors, warnings, found


def redacted(name, text):
    """A rejected file as the operator gets it back: every secret value replaced."""
    out = []
    for line in text.replace("\r\n", "\n").split("\n"):
        key = line.split("=", 1)[0].strip() if "=" in line else ""
        if key in SECRET_KEYS:
            line = line.split("=", 1)[0] + '= "(removed by the device)"'
        elif name.startswith("userconf") and ":" in line:
            line = line.split(":", 1)[0] + ":(removed by the device)"
        out.append(line)
    return "\n".join(out)


def wipe(path):
    """The file's bytes overwritten with zeros where they lie, synced, then unlinked: a FAT
    unlink alone leaves them readable in the freed clusters.  (The card's controller may
    still keep old copies in flash the block interface no longer reaches.)"""
    size = os.path.getsize(path)
    fd = os.open(path, os.O_WRONLY)
    try:
        zeros = bytes(min(size, 65536))
        done = 0
        while done < size:
            done += os.write(fd, zeros[:min(len(zeros), size - done)])
        os.fsync(fd)
    finally:
        os.close(fd)
    os.unlink(path)
    try:
        directory = os.open(os.path.dirname(path) or ".", os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except OSError:
        pass


def _main_paths(argv):
    boot, root = "/boot/firmware", "/"
    args = list(argv)
    while args:
        option = args.pop(0)
        if option in ("--boot", "--root") and args:
            if option == "--boot":
                boot = args.pop(0)
            else:
                root = args.pop(0)
        else:
            return None
    return boot, root


def main(argv):
    usage = "usage: schema-firstboot [--boot DIR] [--root DIR]"
    if argv[:1] in (["-h"], ["--help"]):
        print(usage)
        return 0
    paths = _main_paths(argv)
    if paths is None:
        print(usage, file=sys.stderr)
        return 2
    boot, root = paths
    settings, errors, warnings, found = read_boot_files(boot, root)
    if not found:
        print("firstboot: no first-boot file on the boot partition")
        return 0
    for warning in warnings:
        print("firstboot: warning: %s" % warning)
    if not errors:
        errors = apply(settings, root, boot=boot)
    files = list(found)
    for network in settings.get(("wlan", "networks"), []) if not errors else []:
        files += [network[k] for k in ("ca_cert", "client_cert", "private_key") if network[k]]
    for name in files:
        path = os.path.join(boot, name)
        try:
            if errors and name in found:
                with open(path, "rb") as f:
                    text = f.read(MAX_BYTES).decode("utf-8", "replace")
                _write(path + ".rejected", redacted(name, text))
            wipe(path)
        except OSError as exc:
            errors.append("%s: cannot be removed (%s)" % (name, exc))
    report = os.path.join(boot, REPORT)
    try:
        if errors:
            _write(report, "".join(e + "\n" for e in errors))
        elif os.path.exists(report):
            os.unlink(report)
    except OSError:
        pass
    if errors:
        for error in errors:
            print("firstboot: error: %s" % error)
        print("firstboot: %s not applied (kept as *.rejected without its secrets; reasons "
              "in %s)" % (", ".join(found), REPORT))
        return 1
    print("firstboot: applied %s (%d settings), overwritten and removed"
          % (", ".join(found), len(settings)))
    return 0
