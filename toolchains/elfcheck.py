#!/usr/bin/env python3
"""Check ELF files (objects, executables, ar archives of objects) against a target recipe.

    elfcheck.py --target TARGET [--verbose] FILE...

For every file: the ELF class, byte order and machine of the target (toolchains/
TARGET.env); an executable (ET_EXEC, or ET_DYN as a static PIE) must be static: no
PT_INTERP, no DT_NEEDED.  For 32-bit ARM, the EABI version in e_flags and the float ABI
flag, and the file-scope "aeabi" build attributes of .ARM.attributes (ARM ABI addenda,
"Build attributes"): Tag_CPU_arch among the recipe's ARM_CPU_ARCH_OK (armv6l: v4 .. v6KZ
and v6K; v6T2 = 8 and v7 = 10 and later are refused), Tag_CPU_arch_profile not M or R,
Tag_THUMB_ISA_use 2 (Thumb-2) refused unless ARM_THUMB2_OK, Tag_FP_arch at most
ARM_FP_ARCH_MAX, no NEON (Tag_Advanced_SIMD_arch) unless ARM_NEON_OK, and argument
passing (Tag_ABI_VFP_args) of the recipe's float ABI.  A linked executable carries the
merge of its objects' attributes (the linker keeps the highest architecture), so a libc
built for ARMv7 shows in the executable's Tag_CPU_arch.

The attribute parser is this file's own (a few lines, no dependency on the pyelftools
version); tests/test_cross.py compares it with pyelftools' ARMAttributesSection and
with readelf -A.  Exit status: 0 every file passes, 1 some check failed, 2 usage or an
unreadable file.  Attributes are what the tools declare: inline assembly that lies
(.arch directives) is not seen; running under qemu -cpu arm1176 is the other proof.
"""

import argparse
import io
import os
import struct
import sys

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import targets  # noqa: E402

CPU_ARCH_NAMES = ["Pre-v4", "v4", "v4T", "v5T", "v5TE", "v5TEJ", "v6", "v6KZ", "v6T2",
                  "v6K", "v7", "v6-M", "v6S-M", "v7E-M", "v8-A", "v8-R", "v8-M.baseline",
                  "v8-M.mainline", "v8.1-A", "v8.2-A", "v8.3-A", "v8.1-M.mainline", "v9-A"]
THUMB_NAMES = {0: "none", 1: "Thumb-1", 2: "Thumb-2", 3: "Thumb (per Tag_CPU_arch)"}
FP_NAMES = ["none", "VFPv1", "VFPv2", "VFPv3", "VFPv3-D16", "VFPv4", "VFPv4-D16",
            "FP-ARMv8", "FP-ARMv8-D16"]
VFP_ARGS_NAMES = {0: "base (soft-float)", 1: "VFP registers (hard-float)", 2: "toolchain",
                  3: "compatible with both"}
TAG_NAMES = {4: "Tag_CPU_raw_name", 5: "Tag_CPU_name", 6: "Tag_CPU_arch",
             7: "Tag_CPU_arch_profile", 8: "Tag_ARM_ISA_use", 9: "Tag_THUMB_ISA_use",
             10: "Tag_FP_arch", 11: "Tag_WMMX_arch", 12: "Tag_Advanced_SIMD_arch",
             28: "Tag_ABI_VFP_args", 36: "Tag_FP_HP_extension", 68: "Tag_Virtualization_use"}
# Tags whose value is a NUL-terminated string below 32 (from 32 on: odd tags are strings).
STRING_TAGS = {4, 5, 67}
TAG_FILE = 1
EF_ARM_ABI_FLOAT_SOFT = 0x200
EF_ARM_ABI_FLOAT_HARD = 0x400
ELF_MAGIC = b"\x7fELF"
AR_MAGIC = b"!<arch>\n"


class AttributeError_(ValueError):
    pass


def _uleb(data, pos):
    result = shift = 0
    while True:
        if pos >= len(data):
            raise AttributeError_("truncated ULEB128")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return result, pos


def _ntbs(data, pos):
    end = data.find(b"\0", pos)
    if end < 0:
        raise AttributeError_("unterminated string")
    return data[pos:end].decode("latin-1"), end + 1


def parse_arm_attributes(data, little_endian=True):
    """Bytes of .ARM.attributes -> {vendor: {scope: {tag: value}}} (scope 1 = file)."""
    if not data or data[0] != 0x41:                     # 'A': the only format version
        raise AttributeError_("not an attributes section (format %r)" % data[:1])
    order = "<" if little_endian else ">"
    result = {}
    pos = 1
    while pos < len(data):
        if pos + 4 > len(data):
            raise AttributeError_("truncated subsection")
        (length,) = struct.unpack_from(order + "I", data, pos)
        end = pos + length
        if length < 5 or end > len(data):
            raise AttributeError_("bad subsection length %d" % length)
        vendor, sub = _ntbs(data, pos + 4)
        scopes = result.setdefault(vendor, {})
        while vendor == "aeabi" and sub < end:
            scope, body = _uleb(data, sub)
            if body + 4 > end:
                raise AttributeError_("truncated sub-subsection")
            (size,) = struct.unpack_from(order + "I", data, body)
            sub_end = sub + size
            if size < 5 or sub_end > end:
                raise AttributeError_("bad sub-subsection size %d" % size)
            at = body + 4
            if scope != TAG_FILE:                       # section/symbol numbers, 0-ended
                number = 1
                while number:
                    number, at = _uleb(data, at)
            attrs = scopes.setdefault(scope, {})
            while at < sub_end:
                tag, at = _uleb(data, at)
                if tag in STRING_TAGS or (tag >= 32 and tag % 2 == 1):
                    value, at = _ntbs(data, at)
                elif tag == 32:                         # Tag_compatibility: flag, vendor
                    flag, at = _uleb(data, at)
                    name, at = _ntbs(data, at)
                    value = (flag, name)
                else:
                    value, at = _uleb(data, at)
                attrs[tag] = value
            sub = sub_end
        pos = end
    return result


def _elf_members(path):
    """(display name, bytes) of the ELF file or of each ELF member of an ar archive."""
    with open(path, "rb") as f:
        data = f.read()
    if data.startswith(ELF_MAGIC):
        yield path, data
        return
    if not data.startswith(AR_MAGIC):
        raise ELFError("neither ELF nor an ar archive")
    names = b""
    pos = len(AR_MAGIC)
    while pos + 60 <= len(data):
        header = data[pos:pos + 60]
        name = header[:16].rstrip(b" ")
        size = int(header[48:58].decode().strip())
        body = data[pos + 60:pos + 60 + size]
        pos += 60 + size + (size & 1)
        if name == b"//":                               # GNU long-name table
            names = body
            continue
        if name in (b"/", b"/SYM64/"):                  # symbol table
            continue
        if name.startswith(b"/") and name[1:].isdigit():
            start = int(name[1:])
            name = names[start:names.index(b"/\n", start)]
        name = name.rstrip(b"/").decode("latin-1")
        if body.startswith(ELF_MAGIC):
            yield "%s(%s)" % (path, name), body


def arm_facts(elf):
    section = elf.get_section_by_name(".ARM.attributes")
    if section is None:
        return None
    parsed = parse_arm_attributes(section.data(), elf.little_endian)
    return parsed.get("aeabi", {}).get(TAG_FILE, {})


def _name(table, value):
    if isinstance(table, dict):
        return table.get(value, str(value))
    return table[value] if 0 <= value < len(table) else str(value)


def check_elf(elf, r):
    """Problems (list of str) and facts (list of str) of one ELF against recipe r."""
    problems, facts = [], []
    header = elf.header
    machine, etype = header["e_machine"], header["e_type"]
    facts.append("%s ELF%d %s" % (machine, elf.elfclass, etype))
    if machine != r["ELF_MACHINE"]:
        problems.append("machine %s, not %s" % (machine, r["ELF_MACHINE"]))
        return problems, facts
    if str(elf.elfclass) != r["ELF_CLASS"]:
        problems.append("ELFCLASS%d, not ELFCLASS%s" % (elf.elfclass, r["ELF_CLASS"]))
    if not elf.little_endian:
        problems.append("big-endian")
    if etype in ("ET_EXEC", "ET_DYN"):
        kinds = [segment["p_type"] for segment in elf.iter_segments()]
        if "PT_INTERP" in kinds:
            problems.append("not static: PT_INTERP (a dynamic loader)")
        for section in elf.iter_sections():
            if section.header["sh_type"] == "SHT_DYNAMIC":
                needed = [t.needed for t in section.iter_tags() if t.entry.d_tag == "DT_NEEDED"]
                if needed:
                    problems.append("not static: DT_NEEDED %s" % ", ".join(needed))
        if "PT_INTERP" not in kinds:
            facts.append("static")
    elif etype != "ET_REL":
        problems.append("unexpected type %s" % etype)
    if machine == "EM_ARM":
        _check_arm(elf, r, problems, facts)
    return problems, facts


def _check_arm(elf, r, problems, facts):
    flags = elf.header["e_flags"]
    eabi = flags >> 24
    facts.append("EABI%d" % eabi)
    if str(eabi) != r["ARM_EABI"]:
        problems.append("EABI version %d, not %s (e_flags 0x%08x)" % (eabi, r["ARM_EABI"], flags))
    hard = r["ARM_FLOAT_ABI"] == "hard"
    if flags & EF_ARM_ABI_FLOAT_HARD and not hard:
        problems.append("hard-float ABI (e_flags 0x%08x)" % flags)
    if flags & EF_ARM_ABI_FLOAT_SOFT and hard:
        problems.append("soft-float ABI (e_flags 0x%08x)" % flags)
    try:
        attrs = arm_facts(elf)
    except AttributeError_ as e:
        problems.append(".ARM.attributes unreadable: %s" % e)
        return
    if attrs is None:
        problems.append("no .ARM.attributes section: the architecture cannot be proven")
        return
    if 5 in attrs:
        facts.append("Tag_CPU_name=%s" % attrs[5])
    arch = attrs.get(6)
    if arch is None:
        problems.append("no Tag_CPU_arch")
    else:
        facts.append("Tag_CPU_arch=%s" % _name(CPU_ARCH_NAMES, arch))
        if str(arch) not in r["ARM_CPU_ARCH_OK"].split():
            problems.append("Tag_CPU_arch %s (%d) is beyond this target (allowed: %s)" % (
                _name(CPU_ARCH_NAMES, arch), arch,
                ", ".join(_name(CPU_ARCH_NAMES, int(a)) for a in r["ARM_CPU_ARCH_OK"].split())))
    profile = attrs.get(7, 0)
    if profile in (ord("M"), ord("R")):
        problems.append("Tag_CPU_arch_profile %s" % chr(profile))
    thumb = attrs.get(9, 0)
    facts.append(_name(THUMB_NAMES, thumb))
    if thumb == 2 and r["ARM_THUMB2_OK"] != "yes":
        problems.append("Tag_THUMB_ISA_use Thumb-2")
    fp = attrs.get(10, 0)
    facts.append("FP=%s" % _name(FP_NAMES, fp))
    if fp > int(r["ARM_FP_ARCH_MAX"]):
        problems.append("Tag_FP_arch %s (%d) is beyond %s" % (
            _name(FP_NAMES, fp), fp, _name(FP_NAMES, int(r["ARM_FP_ARCH_MAX"]))))
    if attrs.get(12, 0) and r["ARM_NEON_OK"] != "yes":
        problems.append("Tag_Advanced_SIMD_arch %d (NEON)" % attrs[12])
    vfp_args = attrs.get(28, 0)
    facts.append("args=%s" % _name(VFP_ARGS_NAMES, vfp_args))
    if vfp_args not in ((1, 3) if hard else (0, 3)):
        problems.append("Tag_ABI_VFP_args %s: not the %s-float ABI of this target" % (
            _name(VFP_ARGS_NAMES, vfp_args), r["ARM_FLOAT_ABI"]))


def check_file(path, target, recipe=None):
    """[(name, problems, facts)] for a file (one entry per ELF member of an archive)."""
    r = recipe or targets.recipe(target)
    results = []
    members = list(_elf_members(path))
    if not members:
        raise ELFError("no ELF member")
    for name, data in members:
        elf = ELFFile(io.BytesIO(data))
        problems, facts = check_elf(elf, r)
        results.append((name, problems, facts))
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", required=True, help="a recipe of toolchains/")
    parser.add_argument("--verbose", "-v", action="store_true", help="facts of passing files too")
    parser.add_argument("files", nargs="+")
    args = parser.parse_args(argv)
    try:
        r = targets.recipe(args.target)
    except targets.RecipeError as e:
        print("elfcheck: %s" % e, file=sys.stderr)
        return 2
    status = 0
    for path in args.files:
        try:
            results = check_file(path, args.target, r)
        except (OSError, ELFError, ValueError) as e:
            print("%s: unreadable: %s" % (path, e), file=sys.stderr)
            status = 2
            continue
        bad = [(n, p, f) for n, p, f in results if p]
        if len(results) > 1:                            # an archive: one line, or the bad members
            print("%s: %s (%d members)%s" % (path, "FAIL" if bad else "ok", len(results),
                                              "" if bad else "; " + ", ".join(results[0][2])))
            for name, problems, facts in bad if not args.verbose else results:
                print("  %s: %s" % (name, "; ".join(problems) or "ok: " + ", ".join(facts)))
        else:
            name, problems, facts = results[0]
            if problems:
                print("%s: FAIL: %s [%s]" % (name, "; ".join(problems), ", ".join(facts)))
            else:
                print("%s: ok: %s" % (name, ", ".join(facts)))
        if bad:
            status = max(status, 1)
    return status


if __name__ == "__main__":
    sys.exit(main())
