/* SPDX-License-Identifier: MIT */
/* __mspabi_srai: 16-bit arithmetic shift right
 * (R12 >> R13 -> R12).
 * One bit per step (clang-14 itself inlines 16-bit variable shifts; for other callers).
 * Counts above 15 are undefined in C; a count <= 0 returns x. */
#include "unit_mspabi.h"

int16_t __mspabi_srai(int16_t x, int16_t n);

int16_t __mspabi_srai(int16_t x, int16_t n) {
    while (n > 0) {
        x = (int16_t)(x >> 1);
        n--;
    }
    return x;
}
