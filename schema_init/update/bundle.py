"""A RAUC bundle (format=verity, as build/mkbundle.sh makes it) read piece by piece from a
file or an HTTP server (range requests): the CMS signature at its end, checked by
``openssl cms -verify`` against the device's keyring, which yields the manifest; the
squashfs payload's superblock and root directory, which give each image's place; then
each image's bytes, streamed.  Nothing is downloaded whole.

The bundle's layout (RAUC's verity format): squashfs payload, dm-verity hash tree, the
CMS signature (DER, the manifest inside it), the signature's size as 8 bytes big-endian.
The payload is made with uncompressed tables and data (build/mkbundle.sh), but
zlib-compressed metadata and data blocks are read too.  The signed manifest gives
every image's sha256 and size: an image whose bytes do not hash to it is refused
(install.py streams it through sha256sum before anything is written).
"""

import os

from . import run

CHUNK = 1 << 20
MAX_SIGNATURE = 1 << 20


class BundleError(Exception):
    pass


# --- where the bytes come from --------------------------------------------------------

class FileSource:
    def __init__(self, path):
        self.name = path
        try:
            self.fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise BundleError("%s: %s" % (path, exc.strerror)) from None
        self.size = os.fstat(self.fd).st_size
        self.requests = 0

    def read(self, offset, length):
        self.requests += 1
        data = os.pread(self.fd, length, offset)
        if len(data) != length:
            raise BundleError("%s: short read at %d" % (self.name, offset))
        return data

    def stream(self, offset, length):
        self.requests += 1
        while length > 0:
            data = os.pread(self.fd, min(CHUNK, length), offset)
            if not data:
                raise BundleError("%s: ends at %d" % (self.name, offset))
            yield data
            offset += len(data)
            length -= len(data)

    def close(self):
        os.close(self.fd)


class HttpSource:
    """http://HOST[:PORT]/PATH, each read one ``Range: bytes=a-b`` request (206 Partial
    Content required).  No TLS in the device's binary: the bundle's signature, not the
    transport, is what is trusted."""

    TIMEOUT = 60.0

    def __init__(self, url):
        if not url.startswith("http://"):
            raise BundleError("%s: only http:// URLs (the bundle is signed; no TLS here)" % url)
        rest = url[len("http://"):]
        hostport, _, path = rest.partition("/")
        host, _, port = hostport.rpartition(":") if ":" in hostport else (hostport, "", "80")
        if not port.isdigit():
            raise BundleError("%s: bad port" % url)
        self.name, self.host, self.port, self.path = url, host, int(port), "/" + path
        self.requests = 0
        head = self._request(0, 0)
        self.size = head[0]
        head[1].close()

    def _request(self, first, last):
        import _socket
        self.requests += 1
        # the host as bytes: a str would be IDNA-encoded, a codec the device's binary lacks
        infos = _socket.getaddrinfo(self.host.encode("ascii", "replace"), self.port, 0,
                                    _socket.SOCK_STREAM)
        if not infos:
            raise BundleError("%s: no address for %s" % (self.name, self.host))
        family, kind, proto = infos[0][:3]
        sock = _socket.socket(family, kind, proto)
        sock.settimeout(self.TIMEOUT)
        try:
            sock.connect(infos[0][4])
            sock.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nRange: bytes=%d-%d\r\n"
                          "Connection: close\r\nUser-Agent: schema-update\r\n\r\n"
                          % (self.path, self.host, first, last)).encode("ascii"))
            data = b""
            while b"\r\n\r\n" not in data:
                more = sock.recv(65536)
                if not more or len(data) > 65536:
                    raise BundleError("%s: no HTTP reply" % self.name)
                data += more
        except OSError as exc:
            sock.close()
            raise BundleError("%s: %s" % (self.name, exc)) from None
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = lines[0].split()
        if len(status) < 2 or status[1] != "206":
            sock.close()
            raise BundleError("%s: %s (a server that answers range requests is needed)"
                              % (self.name, lines[0]))
        headers = {k.strip().lower(): v.strip() for k, _, v in
                   (line.partition(":") for line in lines[1:])}
        total = headers.get("content-range", "").rpartition("/")[2]
        if not total.isdigit():
            sock.close()
            raise BundleError("%s: no Content-Range size" % self.name)
        return int(total), _Body(sock, body, last - first + 1)

    def read(self, offset, length):
        data = b"".join(self.stream(offset, length))
        if len(data) != length:
            raise BundleError("%s: short read at %d" % (self.name, offset))
        return data

    def stream(self, offset, length):
        if length <= 0:
            return
        _, body = self._request(offset, offset + length - 1)
        try:
            yield from body.chunks()
        finally:
            body.close()

    def close(self):
        pass


class _Body:
    def __init__(self, sock, first, length):
        self.sock, self.first, self.left = sock, first, length

    def chunks(self):
        data = self.first[:self.left]
        while True:
            if data:
                self.left -= len(data)
                yield data
            if self.left <= 0:
                return
            data = self.sock.recv(min(CHUNK, self.left))
            if not data:
                raise BundleError("the server closed %d bytes early" % self.left)

    def close(self):
        self.sock.close()


def open_source(where):
    return HttpSource(where) if where.startswith("http://") else FileSource(where)


# --- the signature and the manifest ---------------------------------------------------

def parse_manifest(text):
    """RAUC's manifest (INI) -> {section: {key: value}}."""
    sections, current = {}, None
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1].strip(), {})
        elif "=" in line and current is not None:
            key, _, value = line.partition("=")
            current[key.strip()] = value.strip()
    return sections


MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def signing_time(signature):
    """The signingTime attribute of the CMS SIGNATURE (a DER file), in seconds since the
    epoch, or None when it has none or openssl cannot print it."""
    code, out = run.capture(["openssl", "cms", "-cmsout", "-print", "-inform", "DER",
                             "-in", signature])
    if code != 0 or "signingTime" not in out:
        return None
    for line in out.split("signingTime", 1)[1].splitlines()[1:6]:
        line = line.strip()
        if line.startswith(("UTCTIME:", "GENERALIZEDTIME:")):
            parts = line.split(":", 1)[1].split()  # Dec  6 21:51:15 2026 GMT
            try:
                month = MONTHS.index(parts[0]) + 1
                day, year = int(parts[1]), int(parts[3])
                hour, minute, second = (int(float(x)) for x in parts[2].split(":"))
            except (ValueError, IndexError):
                return None
            if 1970 <= year < 10000 and 1 <= day <= 31:
                import calendar           # in the static build for journalctl; only here
                return calendar.timegm((year, month, day, hour, minute, second))
            return None
    return None


def signed_manifest(source, keyring, workdir):
    """The manifest's text, once the CMS signature at the bundle's end is checked
    against KEYRING (PEM), or BundleError saying why not."""
    if source.size < 4096 + 8:
        raise BundleError("%s: too small for a bundle (%d bytes)" % (source.name, source.size))
    size = int.from_bytes(source.read(source.size - 8, 8), "big")
    if not 0 < size <= min(MAX_SIGNATURE, source.size - 8 - 4096):
        raise BundleError("%s: no signature (its size field says %d): an unsigned or "
                          "damaged bundle" % (source.name, size))
    signature = os.path.join(workdir, "signature.der")
    manifest = os.path.join(workdir, "manifest.raucm")
    with open(signature, "wb") as f:
        f.write(source.read(source.size - 8 - size, size))
    # The certificate is checked at the bundle's signing time (a signed attribute, so only
    # the key's holder sets it), not at the device's: a Zero W has no clock of its own and
    # runs with its build time or its last saved time until NTP answers, often before the
    # certificate of a key made since (as RAUC's use-bundle-signing-time does).
    when = signing_time(signature)
    code, out = run.capture(["openssl", "cms", "-verify", "-inform", "DER", "-in", signature,
                             "-CAfile", keyring, "-binary", "-out", manifest]
                            + (["-attime", str(when)] if when is not None else []))
    if code != 0:
        first = [line for line in out.splitlines() if line.strip()][:2]
        raise BundleError("%s: the signature does not verify against %s (%s)"
                          % (source.name, keyring, "; ".join(first) or "openssl %d" % code))
    with open(manifest, encoding="utf-8", errors="replace") as f:
        text = f.read()
    return text, size


# --- the squashfs payload ---------------------------------------------------------------

def _u(data, offset, size):
    return int.from_bytes(data[offset:offset + size], "little")


class Payload:
    """The images at the root of the bundle's squashfs: {name: (file size, [(offset,
    stored size, compressed)])}."""

    def __init__(self, source):
        sb = source.read(0, 96)
        if sb[:4] != b"hsqs" or _u(sb, 28, 2) != 4:
            raise BundleError("%s: the payload is not a squashfs 4.0" % source.name)
        self.source = source
        self.block_size = _u(sb, 12, 4)
        self.compression = _u(sb, 20, 2)
        root_ref = _u(sb, 32, 8)
        self.id_table = _u(sb, 48, 8)
        self.inode_table = _u(sb, 64, 8)
        self.dir_table = _u(sb, 72, 8)
        end = min(x for x in (_u(sb, 80, 8), _u(sb, 88, 8), self.id_table, _u(sb, 56, 8))
                  if x > self.dir_table)
        if not self.inode_table < self.dir_table < end or end - self.inode_table > 16 << 20:
            raise BundleError("%s: the payload's tables make no sense" % source.name)
        raw = source.read(self.inode_table, end - self.inode_table)
        self.inodes = self._metadata(raw, 0, self.dir_table - self.inode_table)
        self.dirs = self._metadata(raw, self.dir_table - self.inode_table, len(raw))
        self.files = self._root_files(root_ref)

    def _metadata(self, raw, start, stop):
        """Metadata blocks from raw[start:stop] -> (bytes, {block's offset: its place})."""
        out, places, pos = bytearray(), {}, start
        while pos + 2 <= stop:
            header = _u(raw, pos, 2)
            size = header & 0x7FFF
            block = raw[pos + 2:pos + 2 + size]
            places[pos - start] = len(out)
            out += block if header & 0x8000 else self._inflate(block)
            pos += 2 + size
        return bytes(out), places

    def _inflate(self, block):
        if self.compression != 1:
            raise BundleError("payload compression %d: only gzip or none is read here"
                              % self.compression)
        import zlib
        return zlib.decompress(block)

    def _at(self, table, block, offset):
        data, places = table
        if block not in places:
            raise BundleError("the payload's metadata reference %d is not a block" % block)
        return data, places[block] + offset

    def _root_files(self, root_ref):
        data, pos = self._at(self.inodes, root_ref >> 16, root_ref & 0xFFFF)
        kind = _u(data, pos, 2)
        if kind == 1:
            block, size, offset = _u(data, pos + 16, 4), _u(data, pos + 24, 2), \
                _u(data, pos + 26, 2)
        elif kind == 8:
            size, block, offset = _u(data, pos + 20, 4), _u(data, pos + 24, 4), \
                _u(data, pos + 34, 2)
        else:
            raise BundleError("the payload's root is not a directory")
        listing, at = self._at(self.dirs, block, offset)
        stop, files = at + size - 3, {}
        while at < stop:
            count, start = _u(listing, at, 4) + 1, _u(listing, at + 4, 4)
            at += 12
            for _ in range(count):
                entry_offset, name_size = _u(listing, at, 2), _u(listing, at + 6, 2) + 1
                name = listing[at + 8:at + 8 + name_size].decode("utf-8", "replace")
                at += 8 + name_size
                files[name] = self._file(start, entry_offset)
        return files

    def _file(self, block, offset):
        data, pos = self._at(self.inodes, block, offset)
        kind = _u(data, pos, 2)
        if kind == 2:
            start, fragment, size = _u(data, pos + 16, 4), _u(data, pos + 20, 4), \
                _u(data, pos + 28, 4)
            sizes_at = pos + 32
        elif kind == 9:
            start, size, fragment = _u(data, pos + 16, 8), _u(data, pos + 24, 8), \
                _u(data, pos + 44, 4)
            sizes_at = pos + 56
        else:
            return None
        blocks = (size + self.block_size - 1) // self.block_size
        if fragment != 0xFFFFFFFF:
            raise BundleError("an image in a fragment: bundles need -no-fragments")
        pieces = []
        for n in range(blocks):
            word = _u(data, sizes_at + 4 * n, 4)
            stored = word & 0xFFFFFF
            pieces.append((start, stored, not word & 0x1000000))
            start += stored
        return size, pieces

    def stream(self, name):
        """The bytes of image NAME, in chunks."""
        size, pieces = self.files[name]
        left = size
        # uncompressed neighbours are read in one request (mkbundle.sh makes them all so)
        run_start, run_length = None, 0
        for offset, stored, compressed in pieces + [(None, 0, True)]:
            if not compressed and run_start is not None and run_start + run_length == offset:
                run_length += stored
                continue
            if run_start is not None:
                for chunk in self.source.stream(run_start, run_length):
                    chunk = chunk[:left]
                    left -= len(chunk)
                    yield chunk
                run_start = None
            if offset is None:
                break
            if compressed:
                # size 0: a sparse block (all zeros, nothing stored)
                chunk = self._inflate(self.source.read(offset, stored)) if stored else \
                    bytes(min(self.block_size, left))
                chunk = chunk[:left]
                left -= len(chunk)
                yield chunk
            else:
                run_start, run_length = offset, stored
        if left:
            raise BundleError("image %s: %d bytes missing in the payload" % (name, left))


class Bundle:
    """A checked bundle: ``manifest`` (sections), ``images`` {slot class: (filename,
    sha256, size)}, ``payload``."""

    def __init__(self, where, keyring, workdir):
        self.source = open_source(where)
        text, self.signature_size = signed_manifest(self.source, keyring, workdir)
        self.manifest = parse_manifest(text)
        update = self.manifest.get("update", {})
        self.compatible = update.get("compatible", "")
        self.version = update.get("version", "")
        self.meta = self.manifest.get("meta.schema-init", {})
        self.images = {}
        for section, values in self.manifest.items():
            if section.startswith("image."):
                digest, size = values.get("sha256", ""), values.get("size", "")
                if len(digest) != 64 or not size.isdigit() or not values.get("filename"):
                    raise BundleError("manifest [%s]: filename, sha256 and size are needed"
                                      % section)
                self.images[section[len("image."):]] = (values["filename"], digest, int(size))
        if self.manifest.get("bundle", {}).get("format") != "verity":
            raise BundleError("bundle format %r: only verity bundles are read here"
                              % self.manifest.get("bundle", {}).get("format"))
        self.payload = Payload(self.source)
        for slot_class, (name, _, size) in self.images.items():
            found = self.payload.files.get(name)
            if found is None or found[0] != size:
                raise BundleError("image %s (%s): not in the payload with the manifest's "
                                  "size" % (slot_class, name))

    def close(self):
        self.source.close()
