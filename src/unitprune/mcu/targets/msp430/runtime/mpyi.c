/* SPDX-License-Identifier: MIT */
/* __mspabi_mpyi: 16-bit multiply, low 16 bits (EABI: R12 * R13 -> R12). Software: the
 * magnitudes are multiplied (shift and add over the smaller one: int8 operands take <= 8 steps)
 * and the sign applied; hwmult: one product on the multiplier. */
#include "unit_mspabi.h"

int16_t __mspabi_mpyi(int16_t a, int16_t b);

int16_t __mspabi_mpyi(int16_t a, int16_t b) {
#if UNIT_MSP430_HWMULT
    return (int16_t)unit__mul16lo((uint16_t)a, (uint16_t)b);
#else
    uint16_t product = unit__mul16lo(unit__abs16(a), unit__abs16(b));
    return (int16_t)(((a < 0) != (b < 0)) ? (uint16_t)(0u - product) : product);
#endif
}
