"""Cycles of ARMv6-M Thumb instructions on the Cortex-M0+: the Cortex-M0+ Technical Reference
Manual (ARM DDI 0484C), Table 3.1 "Cortex-M0+ instruction summary", zero wait states.

Each executed instruction is decoded to its class; the table gives:

============================================  ======================================
class                                         cycles
============================================  ======================================
data processing, MOV/ADD/CMP (not to PC),     1
shifts, extend, reverse, ADR, ADD/SUB SP,
CPS, NOP and hints
MULS                                          1, or 32 with the small multiplier
MOV PC, Rm / ADD PC, PC, Rm                   2
LDR*/STR* (any addressing mode)               2
LDM/STM                                       1 + N
PUSH                                          1 + N (N: registers in the list, LR included)
POP                                           1 + N; with PC 3 + N (N: registers in the list, PC included)
B<cond>                                       1 not taken, 2 taken
B                                             2
BL                                            3
BX, BLX                                       2
DMB, DSB, ISB, MRS, MSR                       3
============================================  ======================================

A load "2 or 1": 1 only for the single-cycle I/O port, which the firmware never reads. N is
read as the number of registers in the list ("N is the number of elements in the list").

:func:`decode` gives (bytes, cycles, kind) of the instruction at a halfword; ``kind`` is
``"cond"`` for a conditional branch (its taken cycle is added by the emulator when the next block
starts elsewhere than after it). Instructions outside ARMv6-M decode as ``"undefined"`` (the
strict QEMU check, not this table, is the instruction-set judge).
"""

from __future__ import annotations

import struct

TRM = "ARM DDI 0484C (Cortex-M0+ Technical Reference Manual), Table 3.1, zero wait states"


def decode(first: int, second: int, mul_cycles: int) -> tuple[int, int, str]:
    """(size in bytes, cycles, kind) of the Thumb instruction whose halfwords are ``first`` and
    (for 32-bit encodings) ``second``; kind: "cond", "branch", "other" or "undefined"."""
    top5 = first >> 11
    if top5 in (0b11101, 0b11110, 0b11111):  # 32-bit encodings: BL, MSR, MRS, DMB, DSB, ISB
        if top5 == 0b11110 and second >> 14 == 0b11 and second & 0x1000:
            return 4, 3, "branch"  # BL
        if first & 0xFFE0 == 0xF380 and second & 0xD000 == 0x8000:
            return 4, 3, "other"  # MSR
        if first == 0xF3EF and second & 0xF000 == 0x8000:
            return 4, 3, "other"  # MRS
        if first == 0xF3BF and second & 0xFF00 == 0x8F00:
            return 4, 3, "other"  # DSB, DMB, ISB
        return 4, 1, "undefined"
    if first >> 10 == 0b010000:  # data processing
        if (first >> 6) & 0xF == 0b1101:
            return 2, mul_cycles, "other"  # MULS
        return 2, 1, "other"
    if first >> 10 == 0b010001:  # special data processing and branch/exchange
        op = (first >> 8) & 3
        if op == 3:
            return 2, 2, "branch"  # BX / BLX
        rd = (first & 7) | ((first >> 4) & 8)
        if op in (0, 2) and rd == 15:
            return 2, 2, "branch"  # ADD PC, Rm / MOV PC, Rm
        return 2, 1, "other"
    if first >> 11 == 0b01001 or first >> 12 == 0b0101 or first >> 13 == 0b011 or first >> 12 in (0b1000, 0b1001):
        return 2, 2, "other"  # loads and stores: literal, register offset, immediate, halfword, SP-relative
    if first >> 12 == 0b1100:  # STM / LDM
        return 2, 1 + bin(first & 0xFF).count("1"), "other"
    if first >> 12 == 0b1011:  # miscellaneous
        if first & 0xFE00 == 0xB400:  # PUSH
            return 2, 1 + bin(first & 0x1FF).count("1"), "other"
        if first & 0xFE00 == 0xBC00:  # POP
            n = bin(first & 0x1FF).count("1")
            return (2, 3 + n, "branch") if first & 0x100 else (2, 1 + n, "other")
        if first & 0xFF00 == 0xBE00:
            return 2, 1, "undefined"  # BKPT: not timed (semihosting traps live in the uncounted io stubs)
        return 2, 1, "other"  # ADD/SUB SP, extend, reverse, CPS, hints
    if first >> 12 == 0b1101:
        cond = (first >> 8) & 0xF
        if cond >= 0b1110:
            return 2, 1, "undefined"  # UDF, SVC
        return 2, 1, "cond"
    if top5 == 0b11100:
        return 2, 2, "branch"  # B
    return 2, 1, "other"  # shifts, add/sub, MOVS/CMP/ADDS/SUBS immediate, ADR, ADD SP


def cond_target(address: int, first: int) -> int:
    """Branch target of the conditional branch B<cond> at ``address``."""
    offset = first & 0xFF
    if offset & 0x80:
        offset -= 0x100
    return address + 4 + 2 * offset


def block_timing(code: bytes, address: int, mul_cycles: int) -> list[tuple[int, int, str]]:
    """Per instruction of a basic block of ``code`` at ``address``: (address, cycles, kind)."""
    out, at = [], 0
    while at + 2 <= len(code):
        first = struct.unpack_from("<H", code, at)[0]
        second = struct.unpack_from("<H", code, at + 2)[0] if at + 4 <= len(code) else 0
        size, cycles, kind = decode(first, second, mul_cycles)
        out.append((address + at, cycles, kind))
        at += size
    return out
