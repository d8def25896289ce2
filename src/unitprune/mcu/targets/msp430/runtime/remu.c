/* SPDX-License-Identifier: MIT */
/* __mspabi_remu: unsigned 16-bit remainder (EABI: R12 % R13 -> R12). */
#include "unit_mspabi.h"

uint16_t __mspabi_remu(uint16_t n, uint16_t d);

uint16_t __mspabi_remu(uint16_t n, uint16_t d) {
    uint16_t remainder;
    uint16_t quotient = unit__udivmod16(n, d, &remainder);
    (void)quotient;
    return remainder;
}
