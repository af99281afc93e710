"""A fleet's rollout without a server of its own (issue 23): a manifest served as a static
file (any web server, CDN or object store), which every device polls; a device takes
part when the hash of its identity and the manifest's version falls under the
manifest's percentage.  Pure: the fleet tool (build side) and the device compute the
same buckets from the same text.

The manifest (``manifest.txt``, written by ``fleet.py publish``), ``key=value`` lines:

    version=0.2.0.1796000000
    bundle=schema-init-rpi-zero-w-0.2.0.1796000000.raucb   (relative to the manifest's URL)
    sha256=<the bundle file's sha256>
    size=<its bytes>
    rollout=25                                             (percent, 0..100)
    compatible=schema-init-rpi-zero-w

The bucket of a device: the first 4 bytes of sha256("IDENTITY:VERSION") as a number,
modulo 10000; it takes part when bucket < rollout * 100.  For one version a device
that took part at 10 % takes part at every higher percentage; each version draws its
own order.  The identity is the board serial (identity.sh serial), else the machine-id.
"""

KEYS = ("version", "bundle", "sha256", "size", "rollout", "compatible")
BUCKETS = 10000


class ManifestError(Exception):
    pass


def parse_manifest(text):
    values = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, eq, value = line.partition("=")
        if not eq or key.strip() not in KEYS:
            raise ManifestError("manifest line %d: %r is not one of %s"
                                % (number, line[:40], ", ".join(KEYS)))
        values[key.strip()] = value.strip()
    for key in ("version", "bundle", "rollout"):
        if not values.get(key):
            raise ManifestError("manifest: %s= missing" % key)
    rollout = values["rollout"]
    if not (rollout.isascii() and rollout.isdigit() and 0 <= int(rollout) <= 100):
        raise ManifestError("manifest: rollout=%s is not a percentage 0..100" % rollout)
    values["rollout"] = int(rollout)
    return values


def manifest_text(version, bundle, sha256, size, rollout, compatible):
    return "".join("%s=%s\n" % kv for kv in (
        ("version", version), ("bundle", bundle), ("sha256", sha256), ("size", size),
        ("rollout", rollout), ("compatible", compatible)))


def bundle_url(manifest_url, bundle):
    """The bundle's URL: as written if absolute, else beside the manifest."""
    if "://" in bundle:
        return bundle
    return manifest_url.rsplit("/", 1)[0] + "/" + bundle


# --- sha256 without hashlib (the device's binary has none); a few bytes only ---------

_K = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
    0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
    0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
    0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
    0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2]


def sha256(data):
    """SHA-256 of DATA (bytes), as hex: FIPS 180-4, for short inputs."""
    h = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c,
         0x1f83d9ab, 0x5be0cd19]
    mask = 0xFFFFFFFF
    padded = data + b"\x80" + b"\0" * ((55 - len(data)) % 64) + (len(data) * 8).to_bytes(8, "big")

    def rotr(x, n):
        return (x >> n) | (x << (32 - n)) & mask
    for block in range(0, len(padded), 64):
        w = [int.from_bytes(padded[block + 4 * i:block + 4 * i + 4], "big") for i in range(16)]
        for i in range(16, 64):
            s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3)
            s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10)
            w.append((w[i - 16] + s0 + w[i - 7] + s1) & mask)
        a, b, c, d, e, f, g, hh = h
        for i in range(64):
            s1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)
            t1 = (hh + s1 + ((e & f) ^ (~e & g)) + _K[i] + w[i]) & mask
            s0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)
            t2 = (s0 + ((a & b) ^ (a & c) ^ (b & c))) & mask
            a, b, c, d, e, f, g, hh = (t1 + t2) & mask, a, b, c, (d + t1) & mask, e, f, g
        h = [(x + y) & mask for x, y in zip(h, (a, b, c, d, e, f, g, hh))]
    return "".join("%08x" % x for x in h)


def bucket(identity, version):
    return int(sha256(("%s:%s" % (identity, version)).encode())[:8], 16) % BUCKETS


def selected(identity, version, rollout):
    """Whether the device IDENTITY takes part in VERSION's rollout at ROLLOUT percent."""
    return bucket(identity, version) < rollout * (BUCKETS // 100)


def decide(manifest, identity, running_version, record):
    """(action, why): "install", or "skip" with the reason, for one poll."""
    if manifest["version"] == running_version:
        return "skip", "version %s runs already" % running_version
    if record and record.get("version") == manifest["version"] and \
            record.get("state") == "failed":
        return "skip", "version %s failed its trial here: %s" % (
            manifest["version"], record.get("reason", ""))
    if not selected(identity, manifest["version"], manifest["rollout"]):
        return "skip", "not in the first %d%% for version %s (bucket %d of %d)" % (
            manifest["rollout"], manifest["version"], bucket(identity, manifest["version"]),
            BUCKETS)
    return "install", "in the first %d%% for version %s (bucket %d of %d)" % (
        manifest["rollout"], manifest["version"], bucket(identity, manifest["version"]),
        BUCKETS)


# --- node_exporter's textfile collector ---------------------------------------------

def metrics_text(slot, version, committed, record):
    """The device's update state for Prometheus (schema_update.prom)."""
    def label(text):
        return str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")[:200]
    last = (record or {}).get("state", "none")
    result = {"committed": "committed", "failed": "failed", "trial": "trial",
              "installing": "installing"}.get(last, "none")
    lines = [
        "# HELP schema_update_info The slot running, its version and commit state.",
        "# TYPE schema_update_info gauge",
        'schema_update_info{slot="%s",version="%s",commit="%s"} 1'
        % (label(slot), label(version), "committed" if committed else "trial"),
        "# HELP schema_update_committed 1 when the running slot is committed, 0 on trial.",
        "# TYPE schema_update_committed gauge",
        "schema_update_committed %d" % (1 if committed else 0),
        "# HELP schema_update_last_trial The last trial's result and why (the record).",
        "# TYPE schema_update_last_trial gauge",
        'schema_update_last_trial{result="%s",slot="%s",version="%s",reason="%s"} 1'
        % (result, label((record or {}).get("slot", "-")),
           label((record or {}).get("version", "-")), label((record or {}).get("reason", ""))),
    ]
    return "\n".join(lines) + "\n"
