"""Users and groups read from /etc/passwd and /etc/group directly.

The static binary cannot use glibc's NSS (getpwnam and friends dlopen shared
libraries, which a static PID 1 must not do), so schema-init reads the two files
itself.  Only local accounts exist for PID 1 anyway: network directories come up as
services, after it.
"""

PASSWD = "/etc/passwd"
GROUP = "/etc/group"


def _records(path):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return
    for raw in data.split(b"\n"):
        line = raw.decode("utf-8", "replace")
        if not line or line.startswith("#"):
            continue
        yield line.split(":")


def user(name, passwd=PASSWD):
    """(name, uid, gid, home) or None."""
    for fields in _records(passwd):
        if len(fields) >= 6 and fields[0] == name:
            try:
                return fields[0], int(fields[2]), int(fields[3]), fields[5]
            except ValueError:
                return None
    return None


def group_id(name, group=GROUP):
    for fields in _records(group):
        if len(fields) >= 3 and fields[0] == name:
            try:
                return int(fields[2])
            except ValueError:
                return None
    return None


def supplementary_groups(name, gid, group=GROUP):
    """The primary gid and every group listing ``name`` as a member."""
    gids = [gid]
    for fields in _records(group):
        if len(fields) >= 4 and name in fields[3].split(","):
            try:
                value = int(fields[2])
            except ValueError:
                continue
            if value not in gids:
                gids.append(value)
    return gids
