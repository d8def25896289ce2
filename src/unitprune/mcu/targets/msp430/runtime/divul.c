/* SPDX-License-Identifier: MIT */
/* __mspabi_divul: unsigned 32-bit quotient (EABI: R13:R12 / R15:R14 -> R13:R12). */
#include "unit_mspabi.h"

uint32_t __mspabi_divul(uint32_t n, uint32_t d);

uint32_t __mspabi_divul(uint32_t n, uint32_t d) {
    uint32_t remainder;
    uint32_t quotient = unit__udivmod32(n, d, &remainder);
    return quotient;
}
