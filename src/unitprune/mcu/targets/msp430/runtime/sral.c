/* SPDX-License-Identifier: MIT */
/* __mspabi_sral: 32-bit arithmetic shift right
 * (R13:R12 >> R14 -> R13:R12).
 * Whole 16-bit words first, then single bits (clang-14 compiles constant shifts inline).
 * Counts above 31 are undefined in C; a count <= 0 returns x. */
#include "unit_mspabi.h"

int32_t __mspabi_sral(int32_t x, int16_t n);

int32_t __mspabi_sral(int32_t x, int16_t n) {
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
