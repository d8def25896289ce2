/* SPDX-License-Identifier: MIT */
/* __mspabi_divi: signed 16-bit quotient, truncated toward zero as C does (EABI: R12 / R13 -> R12). */
#include "unit_mspabi.h"

int16_t __mspabi_divi(int16_t n, int16_t d);

int16_t __mspabi_divi(int16_t n, int16_t d) {
    uint16_t remainder;
    uint16_t quotient = unit__udivmod16(unit__abs16(n), unit__abs16(d), &remainder);
    return (int16_t)(((n < 0) != (d < 0)) ? (uint16_t)(0u - quotient) : quotient);
}
