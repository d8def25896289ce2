/* SPDX-License-Identifier: MIT */
/* __mspabi_remli: signed 32-bit remainder, with the sign of the dividend as C does (EABI: R13:R12 % R15:R14 -> R13:R12). */
#include "unit_mspabi.h"

int32_t __mspabi_remli(int32_t n, int32_t d);

int32_t __mspabi_remli(int32_t n, int32_t d) {
    uint32_t remainder;
    uint32_t quotient = unit__udivmod32(unit__abs32(n), unit__abs32(d), &remainder);
    (void)quotient;
    return (int32_t)((n < 0) ? (uint32_t)(0u - remainder) : remainder);
}
