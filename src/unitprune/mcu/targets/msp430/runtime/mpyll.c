/* SPDX-License-Identifier: MIT */
/* unit__mspabi_mpyll: 64-bit multiply, low 64 bits, with the C calling convention, for the operand
 * pairs the EABI entry __mspabi_mpyll (mpyll.S) does not handle itself (it does widened int32
 * values): a_lo * b_lo + ((a_lo * b_hi + a_hi * b_lo) << 32), from 16-bit limb products. */
#include "unit_mspabi.h"

uint64_t unit__mspabi_mpyll(uint64_t a, uint64_t b);

uint64_t unit__mspabi_mpyll(uint64_t a, uint64_t b) {
    uint32_t a_lo = (uint32_t)a, a_hi = (uint32_t)(a >> 32), b_lo = (uint32_t)b, b_hi = (uint32_t)(b >> 32);
    return unit__umul32x32(a_lo, b_lo) + ((uint64_t)(unit__mul32lo(a_lo, b_hi) + unit__mul32lo(a_hi, b_lo)) << 32);
}
