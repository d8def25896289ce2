/* SPDX-License-Identifier: MIT */
/* __mspabi_divli: signed 32-bit quotient, truncated toward zero as C does (EABI: R13:R12 / R15:R14 -> R13:R12). */
#include "unit_mspabi.h"

int32_t __mspabi_divli(int32_t n, int32_t d);

int32_t __mspabi_divli(int32_t n, int32_t d) {
    uint32_t remainder;
    uint32_t quotient = unit__udivmod32(unit__abs32(n), unit__abs32(d), &remainder);
    return (int32_t)(((n < 0) != (d < 0)) ? (uint32_t)(0u - quotient) : quotient);
}
