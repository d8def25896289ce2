"""Section sizes and symbols of an ELF file, read from its headers (no tool, no dependency).

Enough of the ELF format for firmware accounting: the section headers (name, type, flags, address,
size) and the symbol table (name -> value), for 32- and 64-bit little-endian files (AVR, MSP430
and x86-64 hosts all are).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

SHF_WRITE, SHF_ALLOC, SHF_EXECINSTR = 0x1, 0x2, 0x4
SHT_SYMTAB, SHT_NOBITS = 2, 8
# AVR ELF files carry EEPROM, fuse, lock and signature bytes as allocated sections; they are
# neither flash program memory nor SRAM.
NOT_MEMORY = (".eeprom", ".fuse", ".lock", ".signature", ".user_signatures")


@dataclass(frozen=True)
class Section:
    name: str
    type: int
    flags: int
    address: int
    size: int
    offset: int
    link: int
    entry_size: int


@dataclass(frozen=True)
class ElfInfo:
    sections: list[Section]
    symbols: dict[str, int]

    def sizes(self) -> dict[str, int]:
        """Bytes of allocated sections by kind: text (code), rodata (constants, vectors), data
        (initialised RAM: its image is in flash too), bss (zeroed RAM)."""
        sizes = {"text": 0, "rodata": 0, "data": 0, "bss": 0}
        for section in self.sections:
            if not section.flags & SHF_ALLOC or section.size == 0 or section.name.startswith(NOT_MEMORY):
                continue
            if section.flags & SHF_WRITE:
                sizes["bss" if section.type == SHT_NOBITS else "data"] += section.size
            elif section.flags & SHF_EXECINSTR:
                sizes["text"] += section.size
            else:
                sizes["rodata"] += section.size
        return sizes


def read_elf(path: Path) -> ElfInfo:
    """Sections and symbols of the ELF file at ``path``; ValueError if it is not a little-endian ELF."""
    blob = Path(path).read_bytes()
    if blob[:4] != b"\x7fELF" or blob[5] != 1:
        raise ValueError(f"{path} is not a little-endian ELF file")
    is64 = blob[4] == 2
    if is64:
        shoff, = struct.unpack_from("<Q", blob, 0x28)
        shentsize, shnum, shstrndx = struct.unpack_from("<HHH", blob, 0x3A)
        layout, symbol_layout = "<IIQQQQIIQQ", "<IBBHQQ"
    else:
        shoff, = struct.unpack_from("<I", blob, 0x20)
        shentsize, shnum, shstrndx = struct.unpack_from("<HHH", blob, 0x2E)
        layout, symbol_layout = "<IIIIIIIIII", "<IIIBBH"
    raw = []
    for index in range(shnum):
        fields = struct.unpack_from(layout, blob, shoff + index * shentsize)
        name, kind, flags, address, offset, size, link, _info, _align, entry_size = fields
        raw.append((name, kind, flags, address, offset, size, link, entry_size))
    names = raw[shstrndx]

    def string(table_offset: int, at: int) -> str:
        end = blob.index(b"\0", table_offset + at)
        return blob[table_offset + at:end].decode("ascii", "replace")

    sections = [Section(string(names[4], r[0]), r[1], r[2], r[3], r[5], r[4], r[6], r[7]) for r in raw]
    symbols: dict[str, int] = {}
    for section in sections:
        if section.type != SHT_SYMTAB or section.entry_size == 0:
            continue
        strings = sections[section.link].offset
        for at in range(section.offset, section.offset + section.size, section.entry_size):
            fields = struct.unpack_from(symbol_layout, blob, at)
            name_at, value = fields[0], (fields[4] if is64 else fields[1])
            if name_at:
                symbols.setdefault(string(strings, name_at), value)
    return ElfInfo(sections, symbols)
