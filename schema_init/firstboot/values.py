"""Each value of a first-boot file checked as the device will use it, and the few
computations the device needs (a Wi-Fi PSK, an NT password hash) without a library.

The file's rules: every ``*_error`` function is pure, takes the value and returns None or
a sentence an operator can act on (what is wrong, and the fix).  The fleet tool calls
the same functions on a spreadsheet, so a card the host accepts is a card the device
accepts.  The static binary carries no hashlib, binascii or ipaddress
(build/stdlib_excludes.py), hence the small pure versions here: SHA-1 (for PBKDF2) and
MD4 (for MSCHAPv2), base64, IPv4/IPv6; each is checked against the standard library's in
tests/test_firstboot.py.
"""

import struct

from . import countries

# identity.sh puts the serial's last 8 hex digits for {serial}; a name is checked with
# the board's whole serial (16 hex digits), so no pattern can outgrow 63 characters even
# if {serial} one day means all of it.
SERIAL_DIGITS = 16
HOST_NAME_MAX = 63
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")


def expand_hostname(pattern, serial="f" * SERIAL_DIGITS):
    return pattern.replace("{serial}", serial)


def hostname_error(value):
    """A host name label (RFC 1123) or a pattern with {serial}."""
    rest = value.replace("{serial}", "")
    if "{" in rest or "}" in rest:
        return "only {serial} may be in braces (the board's serial)"
    name = expand_hostname(value)
    if not name:
        return "a host name is 1 to 63 letters, digits and '-'"
    if len(name) > HOST_NAME_MAX:
        return ("%d characters once {serial} is the board's serial (%d hex digits): a host "
                "name is at most 63" % (len(name), SERIAL_DIGITS) if "{serial}" in value
                else "%d characters: a host name is at most 63" % len(name))
    bad = sorted(set(c for c in name if c not in _NAME_CHARS))
    if bad:
        return "%s not allowed: a host name is letters, digits and '-'" % ", ".join(
            repr(c) for c in bad)
    if name[0] == "-" or name[-1] == "-":
        return "a host name neither starts nor ends with '-'"
    if name.isdigit():
        return "a host name is not all digits"
    return None


def card_name_error(value):
    """A card's name in the fleet: it names the card's image file and its label."""
    if not 1 <= len(value) <= 63 or not (value[0].isascii() and value[0].isalnum()) or \
            any(not (c.isascii() and c.isalnum()) and c not in "._-" for c in value):
        return ("a card's name is 1 to 63 letters, digits, '.', '_' and '-', starting with a "
                "letter or digit (it names the card's file)")
    return None


RESERVED_USERS = frozenset(("root", "daemon", "bin", "sys", "sync", "games", "man", "lp",
                            "mail", "news", "uucp", "proxy", "www-data", "backup", "list",
                            "irc", "nobody", "systemd-network", "systemd-timesync",
                            "messagebus", "sshd", "_chrony", "dropbear"))


def user_error(value):
    if not 1 <= len(value) <= 31 or value[0] not in "abcdefghijklmnopqrstuvwxyz_" or \
            any(c not in "abcdefghijklmnopqrstuvwxyz0123456789_-" for c in value):
        return "not a user name (lower-case letters, digits, _ and -, at most 31)"
    if value in RESERVED_USERS:
        return "%s is a system account: choose another name" % value
    return None


# crypt(3) methods of Debian 12's libcrypt that are not broken: yescrypt (its default),
# SHA-512, SHA-256, bcrypt.  MD5 ($1$) and DES are refused.
CRYPT_METHODS = ("$y$", "$gy$", "$6$", "$5$", "$2b$", "$2y$", "$7$")
_CRYPT_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789./$=,")


def looks_like_crypt(value):
    return value.startswith("$") and value.count("$") >= 3 and \
        all(c in _CRYPT_CHARS for c in value)


def crypt_error(value):
    if value.startswith("$1$"):
        return "an MD5 crypt hash ($1$) is too weak: make one with openssl passwd -6"
    if not looks_like_crypt(value) or len(value) > 512 or \
            not value.startswith(CRYPT_METHODS):
        return "not a crypt(3) hash ($6$salt$hash or $y$...; make one with openssl passwd -6)"
    return None


def plain_password_error(value):
    if not value:
        return "an empty password"
    if any(ord(c) < 0x20 or c == "\x7f" for c in value) or ":" in value:
        return "a password has no control characters and no ':'"
    return None


# Base64 (RFC 4648, padded, the alphabet of OpenSSH's public keys).
_B64 = {c: i for i, c in enumerate(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")}


def b64decode(text):
    """bytes, or None if TEXT is not strict, padded base64."""
    if not text or len(text) % 4:
        return None
    padding = len(text) - len(text.rstrip("="))
    if padding > 2:
        return None
    body = text[:len(text) - padding]
    out = bytearray()
    bits = value = 0
    for char in body:
        digit = _B64.get(char)
        if digit is None:
            return None
        value = (value << 6) | digit
        bits += 6
        if bits >= 8:
            bits -= 8
            out.append((value >> bits) & 0xFF)
    if value & ((1 << bits) - 1):
        return None                     # bits left over that are not zero: not canonical
    return bytes(out)


def b64encode(data):
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    out = []
    for i in range(0, len(data), 3):
        chunk = data[i:i + 3]
        n = int.from_bytes(chunk + b"\0" * (3 - len(chunk)), "big")
        quad = [alphabet[(n >> s) & 63] for s in (18, 12, 6, 0)]
        if len(chunk) < 3:
            quad[len(chunk) + 1:] = "=" * (3 - len(chunk))
        out.append("".join(quad))
    return "".join(out)


def _ssh_strings(blob):
    """The length-prefixed strings of an SSH public key blob, or None if it does not
    split into them exactly."""
    out, pos = [], 0
    while pos < len(blob):
        if pos + 4 > len(blob):
            return None
        size = int.from_bytes(blob[pos:pos + 4], "big")
        if pos + 4 + size > len(blob) or len(out) > 8:
            return None
        out.append(blob[pos + 4:pos + 4 + size])
        pos += 4 + size
    return out


_CURVES = {"nistp256": 65, "nistp384": 97, "nistp521": 133}
KEY_TYPES = ("ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
             "ecdsa-sha2-nistp521", "ssh-rsa", "sk-ssh-ed25519@openssh.com",
             "sk-ecdsa-sha2-nistp256@openssh.com")


def ssh_key_error(value):
    """One line of authorized_keys: TYPE BASE64 [COMMENT], the blob's own type the same
    as the first word and its parts the right size for that type."""
    if not value or len(value) > 8192 or any(ord(c) < 0x20 or c == "\x7f" for c in value):
        return "an SSH key is one line of printable text"
    words = value.split()
    if words[0] not in KEY_TYPES:
        if any(w in KEY_TYPES for w in words[1:]):
            return "options before the key type are not accepted here (start with the type)"
        if words[0] == "ssh-dss":
            return "DSA keys are refused by the image's dropbear: use ssh-ed25519"
        return "an SSH key starts with its type (ssh-ed25519, ecdsa-sha2-nistp256, ssh-rsa)"
    if len(words) < 2:
        return "the key's base64 part is missing after %s" % words[0]
    for word in words[1:]:
        for separator in (",", ";"):
            if any(part.startswith(KEY_TYPES) for part in word.split(separator)[1:]):
                return ("two keys run together with %r: give each key on its own (a list, "
                        "or ';' between keys in a spreadsheet cell)" % separator)
    if any(w in KEY_TYPES for w in words[2:]):
        return "two keys run together: give each key on its own"
    blob = b64decode(words[1])
    if blob is None:
        return "the key's second word is not base64 (copy the whole .pub line)"
    parts = _ssh_strings(blob)
    if not parts:
        return "the key's data is cut short or damaged (copy the whole .pub line)"
    kind = parts[0].decode("ascii", "replace")
    if kind != words[0]:
        return "the key says %s but its data is a %s key" % (words[0], kind)
    sizes_ok = {
        "ssh-ed25519": len(parts) == 2 and len(parts[1]) == 32,
        "sk-ssh-ed25519@openssh.com": len(parts) == 3 and len(parts[1]) == 32,
        "ssh-rsa": len(parts) == 3 and len(parts[2].lstrip(b"\0")) * 8 >= 2048 - 8,
    }
    if kind.startswith(("ecdsa-", "sk-ecdsa-")):
        curve = kind.split("-")[-1].split("@")[0]
        want = 3 if kind.startswith("ecdsa-") else 4
        sizes_ok[kind] = len(parts) == want and parts[1] == curve.encode() and \
            len(parts[2]) == _CURVES.get(curve) and parts[2][:1] == b"\x04"
    if not sizes_ok.get(kind):
        if kind == "ssh-rsa" and len(parts) == 3:
            return "an RSA key shorter than 2048 bits: make an ssh-ed25519 key"
        return "the %s key's data has the wrong size (copy the whole .pub line)" % kind
    return None


def ssh_fingerprint(value):
    """SHA256:... of a public key line, as ssh-keygen -l prints it (host side)."""
    import hashlib
    blob = b64decode(value.split()[1])
    return "SHA256:" + b64encode(hashlib.sha256(blob).digest()).rstrip("=")


def ssid_error(value):
    if not 1 <= len(value.encode("utf-8")) <= 32:
        return "an SSID is 1 to 32 bytes"
    if any(ord(c) < 0x20 or c == "\x7f" for c in value):
        return "an SSID here has no control characters"
    return None


def is_psk(value):
    return len(value) == 64 and all(c in "0123456789abcdefABCDEF" for c in value)


def passphrase_error(value):
    """A WPA passphrase (8..63 printable ASCII) or the 64-hex-digit PSK."""
    if is_psk(value):
        return None
    if looks_like_crypt(value):
        return ("this is a login password hash (crypt), not a Wi-Fi passphrase: it belongs "
                "to the user's password")
    if not 8 <= len(value) <= 63:
        return ("a WPA passphrase is 8 to 63 characters (this one has %d), or the "
                "64-hex-digit PSK" % len(value))
    if any(not 0x20 <= ord(c) <= 0x7e for c in value):
        return "a WPA passphrase is printable ASCII (no accents, no control characters)"
    return None


def country_error(value):
    if value in countries.NOT_ISO:
        return "%s is not an ISO 3166-1 code: write %s" % (value, countries.NOT_ISO[value])
    if value.upper() in countries.CODES and value != value.upper():
        return "write the country in capitals: %s" % value.upper()
    if value not in countries.CODES:
        return "%r is not an ISO 3166-1 alpha-2 country code (GB, DE, US, FR...)" % value
    return None


_ZONE_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_+-/")


def timezone_error(value):
    if not 1 <= len(value) <= 64 or any(c not in _ZONE_CHARS for c in value) or \
            value.startswith("/") or value.endswith("/") or ".." in value or "//" in value:
        return "not a time zone name (Europe/London, America/New_York, UTC)"
    if value.startswith(("posix/", "right/")) or value in ("posixrules", "localtime"):
        return "%s is not a zone to set (write the zone's own name, e.g. Europe/London)" % value
    return None


def zone_file_error(value, zoneinfo):
    """The zone's file in ZONEINFO (a directory) exists and is a compiled zone (TZif)."""
    error = timezone_error(value)
    if error:
        return error
    try:
        with open(zoneinfo + "/" + value, "rb") as f:
            magic = f.read(4)
    except OSError:
        return "no time zone %s in %s (misspelt? e.g. Europe/Berlin, UTC)" % (value, zoneinfo)
    if magic != b"TZif":
        return "%s in %s is not a time zone file" % (value, zoneinfo)
    return None


# IP addresses (the static address of [schema-init.network]).

def parse_ipv4(text):
    """int, or None."""
    parts = text.split(".")
    if len(parts) != 4:
        return None
    value = 0
    for part in parts:
        if not part or len(part) > 3 or any(c not in "0123456789" for c in part) or \
                (len(part) > 1 and part[0] == "0") or int(part) > 255:
            return None
        value = value << 8 | int(part)
    return value


def parse_ipv6(text):
    """int, or None."""
    if not 2 <= len(text) <= 45 or text.count("::") > 1:
        return None
    tail4 = None
    if "." in text:
        head, _, last = text.rpartition(":")
        tail4 = parse_ipv4(last)
        if tail4 is None or not head:
            return None
        text = head + ":0:0" if not head.endswith(":") else head + "0:0"
    if "::" in text:
        left, right = text.split("::")
        left = left.split(":") if left else []
        right = right.split(":") if right else []
        if len(left) + len(right) > 7:
            return None
        groups = left + ["0"] * (8 - len(left) - len(right)) + right
    else:
        groups = text.split(":")
    if len(groups) != 8:
        return None
    value = 0
    for group in groups:
        if not 1 <= len(group) <= 4 or any(c not in "0123456789abcdefABCDEF" for c in group):
            return None
        value = value << 16 | int(group, 16)
    if tail4 is not None:
        value = (value & ~0xFFFFFFFF) | tail4
    return value


def address_error(value):
    """An address with its prefix: 192.168.1.20/24 or 2001:db8::20/64."""
    address, slash, prefix = value.partition("/")
    if not slash or not prefix.isdigit() or len(prefix) > 3:
        return "an address is written with its prefix length: 192.168.1.20/24, 2001:db8::20/64"
    if ":" in address:
        if parse_ipv6(address) is None or int(prefix) > 128:
            return "not an IPv6 address with a prefix (2001:db8::20/64)"
    elif parse_ipv4(address) is None or not 1 <= int(prefix) <= 32:
        return "not an IPv4 address with a prefix (192.168.1.20/24)"
    elif int(prefix) < 31:
        host = parse_ipv4(address) & ((1 << (32 - int(prefix))) - 1)
        if host in (0, (1 << (32 - int(prefix))) - 1):
            return "%s is the network's own or its broadcast address" % address
    return None


def gateway_error(value, family, addresses=()):
    parse = parse_ipv4 if family == 4 else parse_ipv6
    if "/" in value or parse(value) is None:
        return "not an IPv%d address (no /prefix for a gateway)" % family
    if family == 4:
        nets = [a for a in addresses if ":" not in a]
        gateway = parse_ipv4(value)
        for net in nets:
            address, _, prefix = net.partition("/")
            mask = ((1 << 32) - 1) ^ ((1 << (32 - int(prefix))) - 1)
            if parse_ipv4(address) & mask == gateway & mask:
                return None
        if nets:
            return "%s is outside the network of %s" % (value, ", ".join(nets))
    return None


def priority_error(value):
    if not 0 <= value <= 999:
        return "a priority is 0 to 999 (of two networks in reach, the higher is joined)"
    return None


def nameserver_error(value):
    if parse_ipv4(value) is None and parse_ipv6(value) is None:
        return "a name server is an IPv4 or IPv6 address"
    return None


# PBKDF2-HMAC-SHA1 (the WPA PSK) and MD4 (the NT hash MSCHAPv2 takes instead of the
# password), pure, for the static binary.

def _left(value, count):
    return ((value << count) | (value >> (32 - count))) & 0xFFFFFFFF


def _sha1_block(state, block):
    w = list(struct.unpack(">16I", block))
    for i in range(16, 80):
        w.append(_left(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1))
    a, b, c, d, e = state
    for i in range(80):
        if i < 20:
            f, k = (b & c) | (~b & d), 0x5A827999
        elif i < 40:
            f, k = b ^ c ^ d, 0x6ED9EBA1
        elif i < 60:
            f, k = (b & c) | (b & d) | (c & d), 0x8F1BBCDC
        else:
            f, k = b ^ c ^ d, 0xCA62C1D6
        a, b, c, d, e = (_left(a, 5) + f + e + k + w[i]) & 0xFFFFFFFF, a, _left(b, 30), c, d
    return tuple((x + y) & 0xFFFFFFFF for x, y in zip(state, (a, b, c, d, e)))


_SHA1_START = (0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0)


def sha1(data):
    """SHA-1 of DATA (bytes), pure."""
    length = len(data)
    data = data + b"\x80" + b"\0" * ((55 - length) % 64) + struct.pack(">Q", length * 8)
    state = _SHA1_START
    for i in range(0, len(data), 64):
        state = _sha1_block(state, data[i:i + 64])
    return struct.pack(">5I", *state)


def _pure_pbkdf2_sha1(password, salt, iterations, length):
    if len(password) > 64:
        password = sha1(password)
    key = password.ljust(64, b"\0")
    inner = _sha1_block(_SHA1_START, bytes(b ^ 0x36 for b in key))
    outer = _sha1_block(_SHA1_START, bytes(b ^ 0x5C for b in key))
    # a 20-byte message after the 64-byte key block: one padded block, length 84 bytes
    tail = b"\x80" + b"\0" * 35 + struct.pack(">Q", 84 * 8)

    def hmac(message):
        data = message + b"\x80" + b"\0" * ((55 - 64 - len(message)) % 64) + \
            struct.pack(">Q", (64 + len(message)) * 8)
        state = inner
        for i in range(0, len(data), 64):
            state = _sha1_block(state, data[i:i + 64])
        return struct.pack(">5I", *_sha1_block(outer, struct.pack(">5I", *state) + tail))

    out = b""
    block = 1
    while len(out) < length:
        u = hmac(salt + struct.pack(">I", block))
        words = list(struct.unpack(">5I", u))
        for _ in range(iterations - 1):
            state = _sha1_block(inner, u + tail)
            u = struct.pack(">5I", *_sha1_block(outer, struct.pack(">5I", *state) + tail))
            for j, word in enumerate(struct.unpack(">5I", u)):
                words[j] ^= word
        out += struct.pack(">5I", *words)
        block += 1
    return out[:length]


def wpa_psk(passphrase, ssid):
    """The 64-hex-digit PSK wpa_passphrase prints: PBKDF2-HMAC-SHA1(passphrase, SSID,
    4096 rounds, 32 bytes).  hashlib's when there is one (the host, the tests)."""
    password, salt = passphrase.encode("utf-8"), ssid.encode("utf-8")
    try:
        from hashlib import pbkdf2_hmac
        return pbkdf2_hmac("sha1", password, salt, 4096, 32).hex()
    except (ImportError, ValueError):
        return _pure_pbkdf2_sha1(password, salt, 4096, 32).hex()


def md4(data):
    """MD4 (RFC 1320), pure: OpenSSL 3 has it only in its legacy provider."""
    length = len(data)
    data = data + b"\x80" + b"\0" * ((55 - length) % 64) + struct.pack("<Q", length * 8)
    state = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476]
    for offset in range(0, len(data), 64):
        x = struct.unpack("<16I", data[offset:offset + 64])
        a, b, c, d = state
        for i in range(16):
            f = (b & c) | (~b & d)
            a, b, c, d = d, _left((a + f + x[i]) & 0xFFFFFFFF, (3, 7, 11, 19)[i % 4]), b, c
        for i in range(16):
            f = (b & c) | (b & d) | (c & d)
            k = (i % 4) * 4 + i // 4
            a, b, c, d = d, _left((a + f + x[k] + 0x5A827999) & 0xFFFFFFFF,
                                  (3, 5, 9, 13)[i % 4]), b, c
        for i in range(16):
            k = (0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15)[i]
            a, b, c, d = d, _left((a + (b ^ c ^ d) + x[k] + 0x6ED9EBA1) & 0xFFFFFFFF,
                                  (3, 9, 11, 15)[i % 4]), b, c
        state = [(s + v) & 0xFFFFFFFF for s, v in zip(state, (a, b, c, d))]
    return struct.pack("<4I", *state)


def nt_hash(password):
    """wpa_supplicant's password=hash:... for MSCHAPv2: MD4 of the UTF-16LE password."""
    data = bytearray()
    for char in password:              # UTF-16LE by hand: the binary keeps no utf_16_le codec
        point = ord(char)
        if point >= 0x10000:
            point -= 0x10000
            data += struct.pack("<HH", 0xD800 | point >> 10, 0xDC00 | (point & 0x3FF))
        else:
            data += struct.pack("<H", point)
    return md4(bytes(data)).hex()
