"""Wi-Fi networks: the checked form every first-boot file becomes, wpa_supplicant.conf
written from it, and the legacy ``wpa_supplicant.conf`` a card's FAT may carry (as
Raspberry Pi OS before Bookworm took it from /boot).

A network is a dict with these keys (``network_errors`` checks one):

    ssid            str, 1..32 bytes
    passphrase      str 8..63, or None        (turned into ``psk`` before it is written)
    psk             64 hex digits, or None    (PBKDF2-HMAC-SHA1 of passphrase and SSID)
    hidden          bool                      scan_ssid=1: probe for an SSID not beaconed
    priority        int 0..999                the higher one is joined when both are seen
    eap             None, "PEAP", "TTLS", "TLS"   WPA-Enterprise
    identity, anonymous_identity, domain_suffix_match        str or None
    password        EAP password (PEAP/TTLS), stored as its NT hash (MSCHAPv2); given
                    as hash:<32 hex digits>, it is that hash already
    ca_cert, client_cert, private_key   names of files on the boot partition
    private_key_password                str or None

The file written names every string in hex (``ssid=706c616e74``), so nothing a card
holds is ever parsed as wpa_supplicant syntax, and holds no passphrase: only the PSK and
the NT hash, which is all wpa_supplicant needs (a WPA3-SAE-only network needs the
passphrase itself and is not supported).
"""

from . import values

EAP_METHODS = ("PEAP", "TTLS", "TLS")
CERT_DIR = "/etc/wpa_supplicant/certs"


def new_network(ssid):
    return {"ssid": ssid, "passphrase": None, "psk": None, "hidden": False, "priority": 0,
            "eap": None, "identity": None, "anonymous_identity": None, "password": None,
            "phase2": None, "ca_cert": None, "client_cert": None, "private_key": None,
            "private_key_password": None, "domain_suffix_match": None}


def file_name_error(value):
    if not value or "/" in value or value.startswith(".") or len(value) > 64 or \
            any(not (c.isalnum() and c.isascii()) and c not in "._-" for c in value):
        return "a file on the boot partition, named by its name only (corp-ca.pem)"
    return None


def network_errors(network):
    """[(key, message)] for one network."""
    out = []
    error = values.ssid_error(network["ssid"])
    if error:
        out.append(("ssid", error))
    if network["eap"] is None:
        for key in ("identity", "anonymous_identity", "password", "ca_cert", "client_cert",
                    "private_key", "private_key_password", "domain_suffix_match", "phase2"):
            if network[key] is not None:
                out.append((key, "only for WPA-Enterprise: give eap = \"PEAP\", \"TTLS\" "
                                 "or \"TLS\""))
        return out
    if network["eap"] not in EAP_METHODS:
        return out + [("eap", "one of PEAP, TTLS, TLS")]
    if network["passphrase"] is not None or network["psk"] is not None:
        out.append(("password", "a WPA-Enterprise network has an EAP password, no "
                                "passphrase"))
    if not network["identity"]:
        out.append(("identity", "WPA-Enterprise needs the identity (the user name)"))
    if not network["ca_cert"]:
        out.append(("ca_cert", "WPA-Enterprise needs the CA certificate: without it any "
                               "access point could take the password"))
    if network["eap"] == "TLS":
        for key in ("client_cert", "private_key"):
            if not network[key]:
                out.append((key, "EAP-TLS needs the client certificate and its key"))
        if network["password"] is not None:
            out.append(("password", "EAP-TLS has no password (private_key_password is "
                                    "the key's)"))
    elif not network["password"]:
        out.append(("password", "%s needs the EAP password" % network["eap"]))
    if network["phase2"] not in (None, "MSCHAPV2"):
        out.append(("phase2", "only MSCHAPV2 here (the password is kept as its hash)"))
    for key in ("ca_cert", "client_cert", "private_key"):
        if network[key] is not None:
            error = file_name_error(network[key])
            if error:
                out.append((key, error))
    for key in ("identity", "anonymous_identity", "password", "private_key_password",
                "domain_suffix_match"):
        text = network[key]
        if text is not None and (not text or len(text) > 256 or
                                 any(ord(c) < 0x20 for c in text)):
            out.append((key, "1 to 256 characters, no control characters"))
    return out


def is_nt_hash(text):
    """hash:<32 hex digits>: an EAP password given as its NT hash (wpa_supplicant's form;
    the fleet tool writes it so, and the password never reaches the card)."""
    return text.startswith("hash:") and len(text) == 37 and \
        all(c in "0123456789abcdefABCDEF" for c in text[5:])


def nt_hash_of(password):
    return password[5:].lower() if is_nt_hash(password) else values.nt_hash(password)


def _hex(text):
    return text.encode("utf-8").hex()


def render(country, networks, psk_of=values.wpa_psk):
    """wpa_supplicant.conf for NETWORKS (checked ones); passphrases become PSKs."""
    out = ["# written by schema-firstboot from the first-boot file: PSKs and hashes only",
           "ctrl_interface=DIR=/run/wpa_supplicant GROUP=netdev", "update_config=0",
           "country=%s" % country, ""]
    for network in networks:
        out.append("network={")
        out.append("\tssid=%s" % _hex(network["ssid"]))
        if network["hidden"]:
            out.append("\tscan_ssid=1")
        if network["priority"]:
            out.append("\tpriority=%d" % network["priority"])
        if network["eap"]:
            out.append("\tkey_mgmt=WPA-EAP")
            out.append("\teap=%s" % network["eap"])
            out.append("\tidentity=%s" % _hex(network["identity"]))
            if network["anonymous_identity"]:
                out.append("\tanonymous_identity=%s" % _hex(network["anonymous_identity"]))
            if network["password"]:
                out.append("\tpassword=hash:%s" % nt_hash_of(network["password"]))
                out.append('\tphase2="auth=MSCHAPV2"')
            for key in ("ca_cert", "client_cert", "private_key"):
                if network[key]:
                    out.append('\t%s="%s/%s"' % (key, CERT_DIR, network[key]))
            if network["private_key_password"]:
                out.append("\tprivate_key_passwd=%s" % _hex(network["private_key_password"]))
            if network["domain_suffix_match"]:
                out.append("\tdomain_suffix_match=%s" % _hex(network["domain_suffix_match"]))
        elif network["psk"] or network["passphrase"]:
            psk = network["psk"] or psk_of(network["passphrase"], network["ssid"])
            out.append("\tkey_mgmt=WPA-PSK")
            out.append("\tpsk=%s" % psk.lower())
        else:
            out.append("\tkey_mgmt=NONE")
        out.append("}")
    return "\n".join(out) + "\n"


# The legacy file: wpa_supplicant.conf on the FAT.

GLOBAL_IGNORED = ("ctrl_interface", "update_config", "ap_scan", "p2p_disabled")
NETWORK_IGNORED = ("id_str", "proto", "pairwise", "group", "ieee80211w", "auth_alg",
                   "disabled")


def _conf_value(raw, line):
    """A value as wpa_supplicant reads it: "quoted" text, or a bare word."""
    if raw.startswith('"'):
        end = raw.rfind('"')
        if end <= 0:
            raise ValueError("the quote is not closed")
        if raw[end + 1:].strip():
            raise ValueError("text after the closing quote")
        return raw[1:end], True
    return raw, False


def parse_legacy(text, name="wpa_supplicant.conf"):
    """(country, [network], errors) from a wpa_supplicant.conf; errors name the line."""
    country, networks, errors = None, [], []
    current, start = None, 0
    for number, raw in enumerate(text.replace("\r\n", "\n").split("\n"), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = "%s:%d" % (name, number)
        if current is None:
            if line.replace(" ", "") == "network={":
                current, start = {}, number
                continue
            key, equals, raw_value = line.partition("=")
            if not equals:
                errors.append("%s: key=value or network={ expected" % where)
                continue
            if key == "country":
                country = raw_value.strip()
                error = values.country_error(country)
                if error:
                    errors.append("%s: country: %s" % (where, error))
            elif key not in GLOBAL_IGNORED:
                errors.append("%s: %s: not accepted here" % (where, key))
            continue
        if line == "}":
            networks.append(_legacy_network(current, name, start, errors))
            current = None
            continue
        key, equals, raw_value = line.partition("=")
        key = key.strip()
        if not equals:
            errors.append("%s: key=value or } expected" % where)
            continue
        try:
            current[key] = (_conf_value(raw_value.strip(), number), number)
        except ValueError as exc:
            errors.append("%s: %s: %s" % (where, key, exc))
    if current is not None:
        errors.append("%s:%d: network={ not closed" % (name, start))
    return country, networks, errors


def _legacy_network(fields, name, start, errors):
    def where_of(key):
        return "%s:%d" % (name, fields[key][1] if key in fields else start)

    where = "%s:%d" % (name, start)

    def text(key):
        if key not in fields:
            return None
        (value, quoted), _ = fields[key]
        if quoted:
            return value
        decoded = None
        if len(value) % 2 == 0 and all(c in "0123456789abcdefABCDEF" for c in value):
            try:
                decoded = bytes.fromhex(value).decode("utf-8")
            except UnicodeDecodeError:
                pass
        if decoded is None:
            errors.append("%s: %s: a \"quoted\" value or hex" % (where_of(key), key))
        return decoded

    network = new_network(text("ssid") or "")
    if "psk" in fields:
        (value, quoted), _ = fields["psk"]
        if quoted:
            network["passphrase"] = value
        else:
            network["psk"] = value
        error = values.passphrase_error(value)
        if error or (not quoted and not values.is_psk(value)):
            errors.append("%s: psk: %s" % (where_of("psk"), error or
                                            "64 hex digits, or a \"quoted\" passphrase"))
    for key in ("scan_ssid", "priority"):
        if key in fields:
            (value, quoted), _ = fields[key]
            if quoted or not value.isdigit() or int(value) > 999:
                errors.append("%s: %s: a number" % (where_of(key), key))
            elif key == "scan_ssid":
                network["hidden"] = value == "1"
            else:
                network["priority"] = int(value)
    key_mgmt = fields.get("key_mgmt", (("WPA-PSK", False), 0))[0][0]
    if key_mgmt == "WPA-EAP":
        for key in ("eap", "identity", "anonymous_identity", "password", "ca_cert",
                    "client_cert", "private_key", "domain_suffix_match"):
            network[key] = text(key)
        network["private_key_password"] = text("private_key_passwd")
        phase2 = text("phase2")
        network["phase2"] = None if phase2 in (None, "auth=MSCHAPV2") else phase2
    elif key_mgmt not in ("WPA-PSK", "NONE", "WPA-PSK SAE", "SAE WPA-PSK"):
        errors.append("%s: key_mgmt: WPA-PSK, WPA-EAP or NONE here" % where_of("key_mgmt"))
    known = {"ssid", "psk", "scan_ssid", "priority", "key_mgmt", "eap", "identity",
             "anonymous_identity", "password", "ca_cert", "client_cert", "private_key",
             "private_key_passwd", "phase2", "domain_suffix_match"} | set(NETWORK_IGNORED)
    for key in fields:
        if key not in known:
            errors.append("%s: %s: not accepted here" % (where_of(key), key))
    for key, message in network_errors(network):
        if key == "psk" or (key == "password" and "psk" in fields and not network["eap"]):
            continue                          # said above
        errors.append("%s: %s: %s" % (where_of({"private_key_password": "private_key_passwd"}
                                                .get(key, key)), key, message))
    return network
