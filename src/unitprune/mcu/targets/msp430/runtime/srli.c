/* SPDX-License-Identifier: MIT */
/* __mspabi_srli: 16-bit logical shift right
 * (R12 >> R13 -> R12).
 * One bit per step (clang-14 itself inlines 16-bit variable shifts; for other callers).
 * Counts above 15 are undefined in C; a count <= 0 returns x. */
#include "unit_mspabi.h"

uint16_t __mspabi_srli(uint16_t x, int16_t n);

uint16_t __mspabi_srli(uint16_t x, int16_t n) {
    while (n > 0) {
        x = (uint16_t)(x >> 1);
        n--;
    }
    return x;
}
