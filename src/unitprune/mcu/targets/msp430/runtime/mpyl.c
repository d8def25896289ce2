/* SPDX-License-Identifier: MIT */
/* __mspabi_mpyl: 32-bit multiply, low 32 bits (EABI: R13:R12 * R15:R14 -> R13:R12). Operands
 * that are int16 values widened to 32 bits (what `(int32_t)a * b` of int16/int8 data compiles to)
 * take one signed 16x16 software product; others, and every hwmult call, the three 16-bit
 * products of the low 32 bits (on the multiplier the test costs more than the two products it
 * saves: measured 1595 against 1307 cycles for a 16-term int16 dot product). */
#include "unit_mspabi.h"

int32_t __mspabi_mpyl(int32_t a, int32_t b);

int32_t __mspabi_mpyl(int32_t a, int32_t b) {
#if !UNIT_MSP430_HWMULT
    if (unit__fits16((uint32_t)a) && unit__fits16((uint32_t)b)) {
        return (int32_t)unit__smul16x16((int16_t)a, (int16_t)b);
    }
#endif
    return (int32_t)unit__mul32lo((uint32_t)a, (uint32_t)b);
}
