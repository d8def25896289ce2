/* SPDX-License-Identifier: MIT */
/* unit__mspabi_mpyl_wide: 32-bit multiply, low 32 bits, for the operand pairs __mspabi_mpyl
 * (mpyl.S) does not handle itself (it does widened int16 values): a0*b0 + ((a0*b1 + a1*b0) << 16)
 * from 16-bit limb products, in software or on the hardware multiplier. */
#include "unit_mspabi.h"

int32_t unit__mspabi_mpyl_wide(int32_t a, int32_t b);

int32_t unit__mspabi_mpyl_wide(int32_t a, int32_t b) {
    return (int32_t)unit__mul32lo((uint32_t)a, (uint32_t)b);
}
