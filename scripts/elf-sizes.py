#!/usr/bin/env python3
"""Prints the sizes of an ELF file's allocated sections as `name size` lines.

scripts/firmware.sh reads .text, .rodata, .data and .bss from it. Parsing the section
headers here (32- and 64-bit, either byte order) needs nothing but Python's standard library,
so the size report runs wherever CI runs, without llvm-tools or a cross binutils.
"""
import struct
import sys


def sections(path):
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF":
        raise SystemExit(f"{path}: not an ELF file")
    is64 = data[4] == 2
    end = "<" if data[5] == 1 else ">"
    if is64:
        shoff, = struct.unpack_from(end + "Q", data, 0x28)
        shentsize, shnum, shstrndx = struct.unpack_from(end + "HHH", data, 0x3A)
    else:
        shoff, = struct.unpack_from(end + "I", data, 0x20)
        shentsize, shnum, shstrndx = struct.unpack_from(end + "HHH", data, 0x2E)
    headers = []
    for i in range(shnum):
        off = shoff + i * shentsize
        if is64:
            name, _type, flags, _addr, offset, size = struct.unpack_from(end + "IIQQQQ", data, off)
        else:
            name, _type, flags, _addr, offset, size = struct.unpack_from(end + "IIIIII", data, off)
        headers.append((name, flags, offset, size))
    strtab = headers[shstrndx]
    names = data[strtab[2]:strtab[2] + strtab[3]]
    SHF_ALLOC = 2
    for name, flags, _offset, size in headers:
        if flags & SHF_ALLOC:
            label = names[name:names.index(b"\0", name)].decode()
            yield label, size


if __name__ == "__main__":
    for label, size in sections(sys.argv[1]):
        print(label, size)
