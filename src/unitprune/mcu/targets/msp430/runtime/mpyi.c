/* SPDX-License-Identifier: MIT */
/* __mspabi_mpyi on the 16-bit hardware multiplier (the msp430-hwmult target; the software one is
 * mpyi.S): 16-bit multiply, low 16 bits (EABI: R12 * R13 -> R12). */
#include "unit_mspabi.h"

#if UNIT_MSP430_HWMULT
int16_t __mspabi_mpyi(int16_t a, int16_t b);

int16_t __mspabi_mpyi(int16_t a, int16_t b) {
    return (int16_t)unit__mul16lo((uint16_t)a, (uint16_t)b);
}
#endif
