/* SPDX-License-Identifier: MIT */
/* floor_m0plus.c -- the floor loops of an int8 dot product on the Cortex-M0+ (benchmarks/cores_mcu.py):
 * hand-written Thumb-1, each timed over FLOOR_N MACs, each result emitted for a bit-exact check.
 *
 *   dot1   the plain loop: ldrsb, ldrsb, muls, adds, index, bne: 9 cycles per MAC (Table 3.1)
 *   dot4   four MACs per iteration, x and w read through base pairs (p, p+1) so one index step
 *          serves two MACs: 28 cycles per 4 MACs = 7
 *   pair   two output channels per activation (the kernel's loop): ldrsb x, then per channel
 *          ldrsb w, muls, adds, and one index step: 11 cycles per 2 MACs = 5.5 (unrolled x2 here)
 */
#include <stdint.h>

#include "unit_mcu.h"

#define FLOOR_N 1024

static int8_t x[FLOOR_N], w0[FLOOR_N], w1[FLOOR_N];
static int32_t out[2];

int32_t floor_dot1(const int8_t *x_end, const int8_t *w_end, int32_t n);
int32_t floor_dot4(const int8_t *x_end, const int8_t *w_end, int32_t n);
void floor_pair(const int8_t *x_end, const int8_t *w0_end, const int8_t *w1_end, int32_t *out_n);

__asm__(
    "    .text\n    .syntax unified\n    .thumb\n"
    /* r0 x end, r1 w end, r2 n -> r0 sum */
    "    .thumb_func\n    .global floor_dot1\nfloor_dot1:\n"
    "    push    {r4, r5, lr}\n"
    "    rsbs    r2, r2, #0\n"
    "    movs    r3, #0\n"
    "1:  ldrsb   r4, [r0, r2]\n"
    "    ldrsb   r5, [r1, r2]\n"
    "    muls    r4, r5, r4\n"
    "    adds    r3, r3, r4\n"
    "    adds    r2, #1\n"
    "    bne     1b\n"
    "    movs    r0, r3\n"
    "    pop     {r4, r5, pc}\n"
    /* n a multiple of 4 */
    "    .thumb_func\n    .global floor_dot4\nfloor_dot4:\n"
    "    push    {r4-r7, lr}\n"
    "    rsbs    r2, r2, #0\n"
    "    adds    r6, r0, #1\n"
    "    adds    r7, r1, #1\n"
    "    movs    r3, #0\n"
    "2:  ldrsb   r4, [r0, r2]\n"
    "    ldrsb   r5, [r1, r2]\n"
    "    muls    r4, r5, r4\n"
    "    adds    r3, r3, r4\n"
    "    ldrsb   r4, [r6, r2]\n"
    "    ldrsb   r5, [r7, r2]\n"
    "    muls    r4, r5, r4\n"
    "    adds    r3, r3, r4\n"
    "    adds    r2, #2\n"
    "    ldrsb   r4, [r0, r2]\n"
    "    ldrsb   r5, [r1, r2]\n"
    "    muls    r4, r5, r4\n"
    "    adds    r3, r3, r4\n"
    "    ldrsb   r4, [r6, r2]\n"
    "    ldrsb   r5, [r7, r2]\n"
    "    muls    r4, r5, r4\n"
    "    adds    r3, r3, r4\n"
    "    adds    r2, #2\n"
    "    bne     2b\n"
    "    movs    r0, r3\n"
    "    pop     {r4-r7, pc}\n"
    /* r0 x end, r1 w0 end, r2 w1 end, r3 -> {n in, sums out}; n even */
    "    .thumb_func\n    .global floor_pair\nfloor_pair:\n"
    "    push    {r4-r7, lr}\n"
    "    push    {r3}\n"
    "    ldr     r5, [r3]\n"
    "    rsbs    r5, r5, #0\n"
    "    movs    r3, #0\n"
    "    movs    r4, #0\n"
    "3:  ldrsb   r6, [r0, r5]\n"
    "    ldrsb   r7, [r1, r5]\n"
    "    muls    r7, r6, r7\n"
    "    adds    r3, r3, r7\n"
    "    ldrsb   r7, [r2, r5]\n"
    "    muls    r7, r6, r7\n"
    "    adds    r4, r4, r7\n"
    "    adds    r5, #1\n"
    "    ldrsb   r6, [r0, r5]\n"
    "    ldrsb   r7, [r1, r5]\n"
    "    muls    r7, r6, r7\n"
    "    adds    r3, r3, r7\n"
    "    ldrsb   r7, [r2, r5]\n"
    "    muls    r7, r6, r7\n"
    "    adds    r4, r4, r7\n"
    "    adds    r5, #1\n"
    "    bne     3b\n"
    "    pop     {r0}\n"
    "    str     r3, [r0]\n"
    "    str     r4, [r0, #4]\n"
    "    pop     {r4-r7, pc}\n");

int main(void) {
    int32_t i, r;
    for (i = 0; i < FLOOR_N; i++) { /* deterministic data, all signs */
        x[i] = (int8_t)((i * 37 + 11) & 0xFF);
        w0[i] = (int8_t)((i * 91 + 5) & 0xFF);
        w1[i] = (int8_t)((i * 53 + 77) & 0xFF);
    }
    unit_mcu_label("empty");
    UNIT_MCU_START();
    UNIT_MCU_STOP();
    unit_mcu_label("dot1");
    UNIT_MCU_START();
    r = floor_dot1(x + FLOOR_N, w0 + FLOOR_N, FLOOR_N);
    UNIT_MCU_STOP();
    unit_mcu_emit(&r, sizeof r);
    unit_mcu_label("dot4");
    UNIT_MCU_START();
    r = floor_dot4(x + FLOOR_N, w0 + FLOOR_N, FLOOR_N);
    UNIT_MCU_STOP();
    unit_mcu_emit(&r, sizeof r);
    out[0] = FLOOR_N;
    unit_mcu_label("pair");
    UNIT_MCU_START();
    floor_pair(x + FLOOR_N, w0 + FLOOR_N, w1 + FLOOR_N, out);
    UNIT_MCU_STOP();
    unit_mcu_emit(out, sizeof out);
    unit_mcu_done();
}
