"""Instruction classes of RV32 (I/E, M, C) for the emulator: exact instruction counts, and a
cycle MODEL.

No per-instruction timing is published for the RV32EC cores this target stands for (WCH's
QingKe V2A in the CH32V003) or the ESP32-C3's core, so the "cycles" of the RISC-V targets are a
model, and every report labels them so: 1 cycle per instruction, +1 for a load (the load-use
slot of a two-stage in-order pipeline), +1 for a taken branch or a jump (the refetch). The exact
figure is the instruction count.

:func:`block_timing` gives (address, model cycles, kind) per instruction; ``kind`` is "cond"
for a conditional branch (the emulator adds the taken cycle when the next block starts elsewhere
than after it).
"""

from __future__ import annotations

import struct

MODEL = "1 per instruction, +1 per load, +1 per taken branch or jump (a model, not a datasheet figure)"


def decode(word: int) -> tuple[int, int, str]:
    """(size in bytes, model cycles, kind) of the instruction whose low bits are ``word``."""
    if word & 3 != 3:  # compressed (C extension)
        quadrant, funct3 = word & 3, (word >> 13) & 7
        if quadrant == 0:
            return 2, 2 if funct3 == 0b010 else 1, "other"  # C.LW: load
        if quadrant == 1:
            if funct3 in (0b001, 0b101):
                return 2, 2, "branch"  # C.JAL, C.J
            if funct3 in (0b110, 0b111):
                return 2, 1, "cond"  # C.BEQZ, C.BNEZ
            return 2, 1, "other"
        if funct3 == 0b010:
            return 2, 2, "other"  # C.LWSP
        if funct3 == 0b100 and (word >> 2) & 0x1F == 0 and (word >> 7) & 0x1F:
            return 2, 2, "branch"  # C.JR, C.JALR
        return 2, 1, "other"
    opcode = word & 0x7F
    if opcode == 0x03:
        return 4, 2, "other"  # loads
    if opcode in (0x6F, 0x67):
        return 4, 2, "branch"  # JAL, JALR
    if opcode == 0x63:
        return 4, 1, "cond"  # branches
    return 4, 1, "other"


def block_timing(code: bytes, address: int) -> list[tuple[int, int, str]]:
    """Per instruction of a basic block of ``code`` at ``address``: (address, cycles, kind)."""
    out, at = [], 0
    while at + 2 <= len(code):
        low = struct.unpack_from("<H", code, at)[0]
        word = low | (struct.unpack_from("<H", code, at + 2)[0] << 16 if low & 3 == 3 and at + 4 <= len(code) else 0)
        size, cycles, kind = decode(word)
        out.append((address + at, cycles, kind))
        at += size
    return out
