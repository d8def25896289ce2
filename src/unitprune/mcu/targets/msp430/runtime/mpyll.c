/* SPDX-License-Identifier: MIT */
/* unit__mspabi_mpyll: 64-bit multiply, low 64 bits, with the C calling convention; the EABI
 * entry __mspabi_mpyll (mpyll.S) forwards to it (in software only the operands it does not handle
 * itself). Operands that are int32 values widened to 64
 * bits (int8 requantization: (int64_t)acc * multiplier) take one 32x32 product of magnitudes;
 * others a_lo * b_lo + ((a_lo * b_hi + a_hi * b_lo) << 32). */
#include "unit_mspabi.h"

uint64_t unit__mspabi_mpyll(uint64_t a, uint64_t b);

uint64_t unit__mspabi_mpyll(uint64_t a, uint64_t b) {
    uint32_t a_lo = (uint32_t)a, a_hi = (uint32_t)(a >> 32), b_lo = (uint32_t)b, b_hi = (uint32_t)(b >> 32);
    if (unit__fits32(a) && unit__fits32(b)) {
        uint64_t product = unit__umul32x32(unit__abs32((int32_t)a_lo), unit__abs32((int32_t)b_lo));
        return ((a_hi != 0) != (b_hi != 0)) ? 0u - product : product;
    }
    return unit__umul32x32(a_lo, b_lo) + ((uint64_t)(unit__mul32lo(a_lo, b_hi) + unit__mul32lo(a_hi, b_lo)) << 32);
}
