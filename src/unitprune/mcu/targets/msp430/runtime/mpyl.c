/* SPDX-License-Identifier: MIT */
/* 32-bit multiply, low 32 bits (EABI: R13:R12 * R15:R14 -> R13:R12) from three 16-bit limb
 * products: a0*b0 + ((a0*b1 + a1*b0) << 16). On the hardware multiplier (msp430-hwmult) this is
 * __mspabi_mpyl itself (branch-free: a test for int16 operands costs more than the two products
 * it saves); in software it is unit__mspabi_mpyl_wide, the path of mpyl.S for operands that are
 * not widened int16 values. */
#include "unit_mspabi.h"

#if UNIT_MSP430_HWMULT
#define UNIT__MPYL_NAME __mspabi_mpyl
#else
#define UNIT__MPYL_NAME unit__mspabi_mpyl_wide
#endif

int32_t UNIT__MPYL_NAME(int32_t a, int32_t b);

int32_t UNIT__MPYL_NAME(int32_t a, int32_t b) {
    return (int32_t)unit__mul32lo((uint32_t)a, (uint32_t)b);
}
