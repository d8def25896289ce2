/* SPDX-License-Identifier: MIT */
/* __mspabi_divu: unsigned 16-bit quotient (EABI: R12 / R13 -> R12). */
#include "unit_mspabi.h"

uint16_t __mspabi_divu(uint16_t n, uint16_t d);

uint16_t __mspabi_divu(uint16_t n, uint16_t d) {
    uint16_t remainder;
    uint16_t quotient = unit__udivmod16(n, d, &remainder);
    return quotient;
}
