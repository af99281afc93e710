"""Decoding the shared memory's bytes into records: the readers' half of ``shmlayout``.

A reader (``analyze/shmread.py``) copies a segment under the seqlock and hands the
bytes here.  Every field is decoded from the layout's tables, so a field added there
is read here without a line changed; a field the writer's segment does not carry (an
older schema-init still running: a smaller ``entry_size`` or ``header_size``) reads
as 0 or "".  Never loaded by PID 1.

Pure: bytes in, dicts out.
"""

import struct

from . import shmlayout as layout


def seq_consistent(before, after):
    """The seqlock's rule: a copy taken between these two reads of ``seq`` holds."""
    return before == after and not before & 1


def _text(raw):
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def _decode_fields(fields, data, at, size):
    record = {}
    for name, ctype, offset, width in fields:
        if offset + width > size or at + offset + width > len(data):
            record[name] = "" if ctype == "char" else 0
        elif ctype == "char":
            record[name] = _text(data[at + offset: at + offset + width])
        else:
            record[name] = struct.unpack_from("<" + layout.C_TYPES[ctype][0], data,
                                              at + offset)[0]
    return record


def decode_compat(data):
    """A compatible segment's bytes -> ``{"seq", "services": [(name, state, weight,
    pid, restarts)], "groups": [(name, state, members)], "system_state"}``."""
    values = struct.unpack(layout.STRUCT_FORMAT, data[:layout.SEGMENT_SIZE])
    seq, count = values[0], values[1]
    services = []
    for i in range(max(0, min(count, layout.MAX_SERVICES))):
        name, state, weight, pid, restarts = values[2 + 5 * i: 7 + 5 * i]
        services.append((_text(name), state, weight, pid, restarts))
    base = 2 + 5 * layout.MAX_SERVICES
    group_count = values[base]
    groups = []
    for i in range(max(0, min(group_count, layout.MAX_GROUPS))):
        name, state, members = values[base + 1 + 3 * i: base + 4 + 3 * i]
        groups.append((_text(name), state, members))
    return {"seq": seq, "services": services, "groups": groups, "system_state": values[-1]}


def ext_header(data):
    """The extended segment's header as a dict (None: not a segment of ours, or one
    being replaced: magic 0)."""
    if len(data) < 16:
        return None
    magic, _version, header_size = struct.unpack_from("<III", data, 4)
    if magic != layout.EXT_MAGIC:
        return None
    return _decode_fields(layout.EXT_HEADER_FIELDS, data, 0, min(header_size, len(data)))


def decode_ext(data):
    """An extended segment's bytes -> ``{header fields..., "services": [dict per
    service, table order], "groups": [dict per group]}``, None if it is not one."""
    header = ext_header(data)
    if header is None:
        return None
    entry, count = header["entry_size"], header["count"]
    at = header["header_size"]
    if entry <= 0 or at + count * entry > len(data):
        return None
    services = [_decode_fields(layout.EXT_SVC_FIELDS, data, at + i * entry, entry)
                for i in range(count)]
    stride, groups_at = header["group_entry_size"], header["groups_offset"]
    groups = []
    if stride > 0 and groups_at + header["group_count"] * stride <= len(data):
        groups = [_decode_fields(layout.EXT_GROUP_FIELDS, data, groups_at + i * stride, stride)
                  for i in range(header["group_count"])]
    header["services"] = services
    header["groups"] = groups
    return header
