/* SPDX-License-Identifier: MIT */
/* __lshrdi3: 64-bit logical shift right, the libgcc name clang-14 calls for msp430
 * (R15:R14:R13:R12 and the count on the stack -> R15:R14:R13:R12).
 * Whole 16-bit words first, then single bits (clang-14 compiles constant shifts inline).
 * Counts above 63 are undefined in C; a count <= 0 returns x. */
#include "unit_mspabi.h"

uint64_t __lshrdi3(uint64_t x, int16_t n);

uint64_t __lshrdi3(uint64_t x, int16_t n) {
    while (n >= 16) {
        x = x >> 16;
        n = (int16_t)(n - 16);
    }
    while (n > 0) {
        x = x >> 1;
        n--;
    }
    return x;
}
