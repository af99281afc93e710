"""Reading services directories and files from disk, for the pure parser in ``config``.

Reads are bounded: a file over 1 MiB, or anything that is not a regular file (a FIFO,
a device), is refused with a reason rather than read, so no file can block the loop.
"""

import os
import stat

from . import config

READ_LIMIT = 1 << 20


def read_file(path, limit=READ_LIMIT):
    """Bytes of a file, or (None, reason).  Files over ``limit`` are refused."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as exc:
        return None, exc.strerror or str(exc)
    except ValueError:                       # a NUL byte in the path
        return None, "the path contains a NUL byte"
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None, "not a regular file"
        chunks, size = [], 0
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            size += len(chunk)
            if size > limit:
                return None, "larger than %d bytes" % limit
            chunks.append(chunk)
        return b"".join(chunks), None
    except OSError as exc:
        return None, exc.strerror or str(exc)
    finally:
        os.close(fd)


def load_service_file(path):
    """Read and parse one .svc file (used by ``add``).  Returns (spec or None, diags)."""
    data, reason = read_file(path)
    return config.parse_service_file(path, data, reason)


def load_directory(directory):
    """Read every .svc and .grp file of ``directory``: a ``config.LoadResult``."""
    try:
        entries = os.listdir(directory)
    except OSError as exc:
        return config.unreadable_directory(directory, exc.strerror or exc)
    files = []
    for entry in entries:
        if config.is_config_file(entry):
            data, reason = read_file(directory.rstrip("/") + "/" + entry)
            files.append((entry, data, reason))
    return config.parse_directory(directory, files)
