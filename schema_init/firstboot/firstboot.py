"""The first-boot file of a flashed card: Raspberry Pi's custom.toml (a subset), userconf.txt
and an empty ``ssh`` file, read from the FAT partition and applied once.

The file's rules: this is an input channel anyone holding the card writes to, so

* parsing is strict and bounded: a small TOML subset (tables, bare keys, strings, integers,
  booleans, arrays of those), anything else is an error naming the line; no recursion,
  no size beyond ``MAX_BYTES``;
* ``settings_from_toml`` and ``settings_from_userconf`` are pure: text in, (settings,
  errors, warnings) out; every value is checked against what the files it lands in
  accept (a hostname label, a user name, a crypt hash without ``:``, a Wi-Fi
  passphrase), so nothing from the card reaches /etc unchecked;
* ``apply`` is the thin shell: it writes files and runs useradd; one failed step is
  reported and the others still run; ``main`` never lets a bad file stop the boot.

The static binary excludes tomllib (build/stdlib_excludes.py), hence the parser here.
Run as ``schema-firstboot --boot /boot/firmware`` (a name of the binary, like schema-ctl;
distros/raspberry-pi-zero-w/lib/firstboot.sh), so the image needs no Python.
"""

import os
import sys

MAX_BYTES = 65536
MAX_LINES = 2000
MAX_ARRAY = 64
MAX_KEY = 64


class TomlError(ValueError):
    def __init__(self, line, message):
        ValueError.__init__(self, "line %d: %s" % (line, message))
        self.line = line


_BARE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_ESCAPES = {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", '"': '"', "\\": "\\"}


def _skip_space(text, pos):
    while pos < len(text) and text[pos] in " \t":
        pos += 1
    return pos


def _bare_key(text, pos, line):
    start = pos
    while pos < len(text) and text[pos] in _BARE:
        pos += 1
    if pos == start:
        raise TomlError(line, "a key is expected (letters, digits, _ and -)")
    if pos - start > MAX_KEY:
        raise TomlError(line, "key longer than %d characters" % MAX_KEY)
    return text[start:pos], pos


def _basic_string(text, pos, line):
    """A "..." string from pos (just after the quote) to the closing quote."""
    out = []
    while True:
        if pos >= len(text):
            raise TomlError(line, "string not closed")
        char = text[pos]
        if char == '"':
            return "".join(out), pos + 1
        if char == "\\":
            code = text[pos + 1:pos + 2]
            if code in _ESCAPES:
                out.append(_ESCAPES[code])
                pos += 2
                continue
            if code in ("u", "U"):
                width = 4 if code == "u" else 8
                digits = text[pos + 2:pos + 2 + width]
                if len(digits) != width or any(c not in "0123456789abcdefABCDEF" for c in digits):
                    raise TomlError(line, "bad \\%s escape" % code)
                value = int(digits, 16)
                if value > 0x10FFFF or 0xD800 <= value <= 0xDFFF:
                    raise TomlError(line, "escape \\%s%s is not a character" % (code, digits))
                out.append(chr(value))
                pos += 2 + width
                continue
            raise TomlError(line, "unknown escape \\%s" % code)
        if char == "\n" or (ord(char) < 0x20 and char != "\t") or char == "\x7f":
            raise TomlError(line, "control character in a string")
        out.append(char)
        pos += 1


def _literal_string(text, pos, line):
    end = text.find("'", pos)
    newline = text.find("\n", pos)
    if end < 0 or (0 <= newline < end):
        raise TomlError(line, "string not closed")
    value = text[pos:end]
    if any((ord(c) < 0x20 and c != "\t") or c == "\x7f" for c in value):
        raise TomlError(line, "control character in a string")
    return value, end + 1


def _scalar(text, pos, line):
    char = text[pos:pos + 1]
    if char == '"':
        if text.startswith('"""', pos):
            raise TomlError(line, "multi-line strings are not accepted here")
        return _basic_string(text, pos + 1, line)
    if char == "'":
        if text.startswith("'''", pos):
            raise TomlError(line, "multi-line strings are not accepted here")
        return _literal_string(text, pos + 1, line)
    end = pos
    while end < len(text) and text[end] not in " \t\n,]#":
        end += 1
    word = text[pos:end]
    if word == "true":
        return True, end
    if word == "false":
        return False, end
    digits = word[1:] if word[:1] in "+-" else word
    if digits and len(digits) <= 18 and all(c in "0123456789" for c in digits) and \
            (digits == "0" or digits[0] != "0"):
        return int(word), end
    raise TomlError(line, "value %r is not a string, integer, boolean or array" % word[:40])


def _skip_blank(text, pos, line):
    """Spaces, newlines and comments inside an array; returns (pos, line)."""
    while pos < len(text):
        char = text[pos]
        if char in " \t":
            pos += 1
        elif char == "\n":
            pos += 1
            line += 1
        elif char == "#":
            newline = text.find("\n", pos)
            pos = len(text) if newline < 0 else newline
        else:
            break
    return pos, line


def _value(text, pos, line):
    """A value at pos; returns (value, pos, line) since an array may span lines."""
    if text[pos:pos + 1] != "[":
        if pos >= len(text) or text[pos] in "\n#":
            raise TomlError(line, "a value is expected after =")
        value, pos = _scalar(text, pos, line)
        return value, pos, line
    items = []
    pos, line = _skip_blank(text, pos + 1, line)
    while True:
        if pos >= len(text):
            raise TomlError(line, "array not closed")
        if text[pos] == "]":
            return items, pos + 1, line
        if text[pos] == "[":
            raise TomlError(line, "nested arrays are not accepted here")
        value, pos = _scalar(text, pos, line)
        items.append(value)
        if len(items) > MAX_ARRAY:
            raise TomlError(line, "array longer than %d" % MAX_ARRAY)
        pos, line = _skip_blank(text, pos, line)
        if text[pos:pos + 1] == ",":
            pos, line = _skip_blank(text, pos + 1, line)
        elif text[pos:pos + 1] != "]":
            raise TomlError(line, "',' or ']' expected in the array")


def parse_toml(text, lines=None):
    """The TOML subset as nested dicts; raises TomlError naming the line.  ``lines``, if
    given, receives {(table, key): line number} ("" is the table of top-level keys)."""
    if len(text) > MAX_BYTES:
        raise TomlError(1, "file larger than %d bytes" % MAX_BYTES)
    if text.startswith("\ufeff"):
        text = text[1:]
    text = text.replace("\r\n", "\n")
    if "\r" in text:
        raise TomlError(1, "a carriage return outside a line end")
    if text.count("\n") > MAX_LINES:
        raise TomlError(MAX_LINES, "more than %d lines" % MAX_LINES)
    document = {}
    table, table_name = document, ""
    pos, line = 0, 1
    while pos < len(text):
        pos = _skip_space(text, pos)
        char = text[pos:pos + 1]
        if char == "[":
            if text.startswith("[[", pos):
                raise TomlError(line, "arrays of tables are not accepted here")
            name, pos = _bare_key(text, _skip_space(text, pos + 1), line)
            pos = _skip_space(text, pos)
            if text[pos:pos + 1] != "]":
                raise TomlError(line, "table header must be [name]")
            if name in document:
                raise TomlError(line, "[%s] defined twice" % name)
            table = document[name] = {}
            table_name = name
            if lines is not None:
                lines[(name, "")] = line
            pos += 1
        elif char not in ("", "\n", "#"):
            key, pos = _bare_key(text, pos, line)
            pos = _skip_space(text, pos)
            if text[pos:pos + 1] != "=":
                raise TomlError(line, "'=' expected after %s" % key)
            if key in table:
                raise TomlError(line, "%s given twice" % key)
            if lines is not None:
                lines[(table_name, key)] = line
            value, pos, line = _value(text, _skip_space(text, pos + 1), line)
            table[key] = value
        pos = _skip_space(text, pos)
        if text[pos:pos + 1] == "#":
            comment_end = text.find("\n", pos)
            comment = text[pos:len(text) if comment_end < 0 else comment_end]
            if any(ord(c) < 0x20 and c != "\t" for c in comment):
                raise TomlError(line, "control character in a comment")
            pos += len(comment)
        if pos < len(text):
            if text[pos] != "\n":
                raise TomlError(line, "unexpected %r" % text[pos])
            pos += 1
            line += 1
    return document


# What each accepted key must be: (type, check) where check returns an error or None.

def _hostname_error(value):
    """A host name label (RFC 1123); {serial} is replaced by the board's serial."""
    name = value.replace("{serial}", "0")
    if not 1 <= len(name) <= 63 or name[0] == "-" or name[-1] == "-" or \
            any(c not in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-"
                for c in name):
        return "not a host name (1-63 letters, digits, '-'; {serial} allowed)"
    return None


def _user_error(value):
    if not 1 <= len(value) <= 31 or value[0] not in "abcdefghijklmnopqrstuvwxyz_" or \
            any(c not in "abcdefghijklmnopqrstuvwxyz0123456789_-" for c in value):
        return "not a user name (lower-case letters, digits, _ and -, at most 31)"
    if value in ("root", "daemon", "bin", "sys", "nobody"):
        return "a system account cannot be configured here"
    return None


def _crypt_error(value):
    allowed = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789./$=,")
    if not value.startswith("$") or len(value) > 512 or any(c not in allowed for c in value) \
            or value.count("$") < 3:
        return "not a crypt(3) hash ($id$salt$hash; make one with openssl passwd -6)"
    return None


def _key_error(value):
    if not value or len(value) > 8192 or any(ord(c) < 0x20 or c == "\x7f" for c in value):
        return "an authorized key is one line of printable text"
    if value.split(" ", 1)[0] not in ("ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256",
                                      "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521"):
        return "an authorized key starts with its type (ssh-ed25519, ssh-rsa, ecdsa-...)"
    return None


def _ssid_error(value):
    if not 1 <= len(value.encode("utf-8")) <= 32:
        return "an SSID is 1 to 32 bytes"
    return None


def _passphrase_error(value):
    if len(value) == 64 and all(c in "0123456789abcdefABCDEF" for c in value):
        return None
    if not 8 <= len(value) <= 63 or any(not 0x20 <= ord(c) <= 0x7e for c in value):
        return "a WPA passphrase is 8 to 63 printable ASCII characters (or 64 hex digits)"
    return None


def _country_error(value):
    if len(value) != 2 or any(c not in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" for c in value):
        return "a country is two capital letters (ISO 3166: GB, DE, US)"
    return None


def _timezone_error(value):
    allowed = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_+-/")
    if not 1 <= len(value) <= 64 or any(c not in allowed for c in value) or \
            value.startswith("/") or ".." in value or "//" in value:
        return "not a time zone name (Europe/London, UTC)"
    return None


def _keys_error(value):
    for key in value:
        error = _key_error(key)
        if error:
            return error
    return None


SCHEMA = {
    ("system", "hostname"): (str, _hostname_error),
    ("user", "name"): (str, _user_error),
    ("user", "password_encrypted"): (str, _crypt_error),
    ("ssh", "enabled"): (bool, None),
    ("ssh", "password_authentication"): (bool, None),
    ("ssh", "authorized_keys"): (list, _keys_error),
    ("wlan", "ssid"): (str, _ssid_error),
    ("wlan", "password"): (str, _passphrase_error),
    ("wlan", "password_encrypted"): (bool, None),
    ("wlan", "hidden"): (bool, None),
    ("wlan", "country"): (str, _country_error),
    ("locale", "timezone"): (str, _timezone_error),
    ("locale", "keymap"): (str, None),
}
# Raspberry Pi's keys this image has no use for: accepted, reported as ignored.
IGNORED = {("system", "wifi_country"), ("user", "password"), ("locale", "keymap")}


def settings_from_toml(text):
    """(settings {(table, key): value}, errors [str], warnings [str]); errors mean nothing
    of the file is applied."""
    lines = {}
    try:
        document = parse_toml(text, lines)
    except TomlError as exc:
        return {}, ["custom.toml:%d: %s" % (exc.line, str(exc).split(": ", 1)[1])], []
    errors, warnings, settings = [], [], {}
    version = document.pop("config_version", None)
    if version != 1 or isinstance(version, bool):
        errors.append("custom.toml:%d: config_version: 1 is required (found %r)"
                      % (lines.get(("", "config_version"), 1), version))
    for table, values in sorted(document.items(), key=lambda item: item[0]):
        if not isinstance(values, dict):
            errors.append("custom.toml:%d: %s: must be inside a [table]"
                          % (lines.get(("", table), 1), table))
            continue
        for key, value in sorted(values.items()):
            where = "custom.toml:%d: [%s] %s" % (lines.get((table, key), 1), table, key)
            if (table, key) in IGNORED:
                warnings.append("%s: not supported by this image, ignored" % where)
                continue
            if (table, key) not in SCHEMA:
                warnings.append("%s: unknown, ignored" % where)
                continue
            kind, check = SCHEMA[(table, key)]
            if type(value) is not kind:
                errors.append("%s: must be %s" % (where, {str: "a string", bool: "true or false",
                                                          list: "an array"}[kind]))
                continue
            if kind is list and any(type(item) is not str for item in value):
                errors.append("%s: must be an array of strings" % where)
                continue
            error = check(value) if check else None
            if error:
                errors.append("%s: %s" % (where, error))
                continue
            settings[(table, key)] = value
    if ("wlan", "ssid") in settings and ("wlan", "password_encrypted") in settings and \
            settings[("wlan", "password_encrypted")] and \
            _passphrase_error(settings.get(("wlan", "password"), "")) is None and \
            len(settings.get(("wlan", "password"), "")) != 64:
        errors.append("custom.toml:%d: [wlan] password_encrypted: true needs the "
                      "64-hex-digit PSK" % lines.get(("wlan", "password_encrypted"), 1))
    if ("user", "password_encrypted") in settings and ("user", "name") not in settings:
        errors.append("custom.toml:%d: [user] password_encrypted: needs [user] name"
                      % lines.get(("user", "password_encrypted"), 1))
    return ({} if errors else settings), errors, warnings


def settings_from_userconf(text):
    """userconf.txt: one line NAME:CRYPT-HASH, as Raspberry Pi OS reads it."""
    lines = [line for line in text.replace("\r\n", "\n").split("\n") if line.strip()]
    if len(text) > 4096 or len(lines) != 1 or lines[0].count(":") != 1:
        return {}, ["userconf.txt: one line NAME:ENCRYPTED-PASSWORD is expected"], []
    name, crypted = lines[0].strip().split(":")
    errors = ["userconf.txt: %s" % e for e in (_user_error(name), _crypt_error(crypted)) if e]
    if errors:
        return {}, errors, []
    return {("user", "name"): name, ("user", "password_encrypted"): crypted}, [], []


# The thin shell: files on the boot partition in, files in /etc out.

FIRST_BOOT_FILES = ("custom.toml", "userconf.txt", "userconf", "ssh", "ssh.txt")


def _write(path, text, mode=0o644):
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    temporary = path + ".new"
    with open(temporary, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(temporary, mode)
    os.rename(temporary, path)


def _run(argv):
    """Run a program (useradd, usermod) to its end; OSError with its output if it fails.
    fork/exec by hand: the static binary carries no subprocess module."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            os.dup2(write_end, 1)
            os.dup2(write_end, 2)
            os.execvp(argv[0], argv)
        finally:
            os._exit(127)
    os.close(write_end)
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


def _passwd_entry(root, name):
    try:
        with open(os.path.join(root, "etc/passwd")) as f:
            for line in f:
                fields = line.rstrip("\n").split(":")
                if fields[0] == name and len(fields) >= 7:
                    return fields
    except OSError:
        pass
    return None


def wpa_config(country, ssid, passphrase, hidden):
    ssid_hex = ssid.encode("utf-8").hex()
    if len(passphrase) == 64:
        psk = passphrase.lower()
    else:
        psk = '"%s"' % passphrase
    return ("# written by the first-boot file (custom.toml [wlan])\n"
            "ctrl_interface=DIR=/run/wpa_supplicant GROUP=netdev\n"
            "update_config=0\ncountry=%s\n\nnetwork={\n\tssid=%s\n\tscan_ssid=%d\n"
            "\tpsk=%s\n\tkey_mgmt=WPA-PSK\n}\n" % (country or "GB", ssid_hex, int(hidden), psk))


def apply(settings, root="/", board_dir="/etc/schema-board"):
    """Each step applied on its own; returns [error] of the steps that failed."""
    errors = []
    join = lambda *parts: os.path.join(root, *parts)   # noqa: E731
    steps = []
    if ("system", "hostname") in settings:
        steps.append(("hostname", lambda: _write(join(board_dir.lstrip("/"), "hostname.pattern"),
                                                 settings[("system", "hostname")] + "\n")))
    user = settings.get(("user", "name"))
    if user:
        def add_user():
            if _passwd_entry(root, user) is None:
                groups = ",".join(g for g in USER_GROUPS if _group_exists(root, g))
                _run(["useradd"] + (["--root", root] if root != "/" else []) +
                     ["-m", "-s", "/bin/bash", "-U"] + (["-G", groups] if groups else []) +
                     [user])
            crypted = settings.get(("user", "password_encrypted"))
            if crypted:
                _run(["usermod"] + (["--root", root] if root != "/" else []) +
                     ["-p", crypted, user])
        steps.append(("user", add_user))
    if ("ssh", "enabled") in settings:
        flag = join(board_dir.lstrip("/"), "ssh-disabled")

        def ssh_switch():
            if settings[("ssh", "enabled")]:
                if os.path.exists(flag):
                    os.unlink(flag)
            else:
                _write(flag, "disabled by custom.toml\n")
        steps.append(("ssh", ssh_switch))
    if ("ssh", "authorized_keys") in settings:
        def keys():
            owner = user or "root"
            entry = _passwd_entry(root, owner)
            if entry is None:
                raise OSError("no user %s for the authorized keys" % owner)
            home = join(entry[5].lstrip("/"))
            path = os.path.join(home, ".ssh", "authorized_keys")
            _write(path, "".join(k + "\n" for k in settings[("ssh", "authorized_keys")]), 0o600)
            for p in (os.path.dirname(path), path):
                os.chown(p, int(entry[2]), int(entry[3]))
            os.chmod(os.path.dirname(path), 0o700)
        steps.append(("authorized_keys", keys))
    if ("wlan", "ssid") in settings:
        steps.append(("wlan", lambda: _write(
            join("etc/wpa_supplicant/wpa_supplicant-wlan0.conf"),
            wpa_config(settings.get(("wlan", "country")), settings[("wlan", "ssid")],
                       settings.get(("wlan", "password"), ""),
                       settings.get(("wlan", "hidden"), False)), 0o600)))
    if ("locale", "timezone") in settings:
        def timezone():
            zone = settings[("locale", "timezone")]
            if not os.path.isfile(join("usr/share/zoneinfo", zone)):
                raise OSError("no time zone %s in /usr/share/zoneinfo" % zone)
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


def read_boot_files(boot):
    """(settings, errors, warnings, files found) from the boot partition's directory."""
    settings, errors, warnings, found = {}, [], [], []
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
            errors.append("%s: unreadable (%s)" % (name, exc))
            continue
        if name == "custom.toml":
            got = settings_from_toml(text)
        elif name.startswith("userconf"):
            got = settings_from_userconf(text)
        else:
            got = ({("ssh", "enabled"): True}, [], [])
        settings.update(got[0])
        errors.extend(got[1])
        warnings.extend(got[2])
    return settings, errors, warnings, found


def main(argv):
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
            print("usage: schema-firstboot [--boot DIR] [--root DIR]", file=sys.stderr)
            return 2
    settings, errors, warnings, found = read_boot_files(boot)
    if not found:
        print("firstboot: no first-boot file on the boot partition")
        return 0
    for warning in warnings:
        print("firstboot: warning: %s" % warning)
    if not errors:
        errors = apply(settings, root)
    for name in found:
        path = os.path.join(boot, name)
        try:
            if errors:
                os.replace(path, path + ".rejected")
            else:
                os.unlink(path)
        except OSError as exc:
            errors.append("%s: cannot be removed (%s)" % (name, exc))
    report = os.path.join(boot, "firstboot-errors.txt")
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
        print("firstboot: %s not applied (renamed *.rejected; reasons in firstboot-errors.txt)"
              % ", ".join(found))
        return 1
    print("firstboot: applied %s (%d settings) and removed" % (", ".join(found), len(settings)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
