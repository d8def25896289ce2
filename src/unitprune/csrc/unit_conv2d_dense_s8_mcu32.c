/* SPDX-License-Identifier: MIT */
/* unit_conv2d_dense_s8_mcu32.c -- int8 convolution, dense, output-stationary: the variant of
 * unit_conv2d_dense_s8 (same arguments, same outputs and counters: every sum is exact int32) for
 * 32-bit cores without SIMD (Cortex-M0/M0+, RV32E/RV32IM). Two output
 * channels per pass share every activation load; their sums stay in registers over the whole
 * window (no accumulator loads and stores per MAC, as the weight-stationary loop needs); each
 * output row's sums go to the scratch and are requantized with the same rounding steps as
 * unit_conv2d_dense_s8, the 64-bit product formed from 16-bit halves (no 64-bit multiply call).
 *
 * Fast path: no padding, dilation 1, kernel width <= 8, and a scratch of at least 2 output rows;
 * otherwise it calls unit_conv2d_dense_s8. The row loop is Thumb-1 assembly on ARMv6-M
 * (unit__dot2_row_s8: 11 cycles per tap for two MACs on the Cortex-M0+, ARM DDI 0484C Table 3.1),
 * C elsewhere (on RV32E without M: products from a quarter-square table) or with -DUNIT_DOT2_C=1 (the host build checks the C form against the reference; the
 * simulators the asm).
 */
#include "unit_internal_conv_s8.h"

#if !(defined(__AVR__) || defined(__MSP430__))

/* One output row of a channel pair: for each of `count` positions (x advancing by x_step) the
 * window's `channels` input channels of `kh` rows of `kw` bytes (x advances by row_step per row,
 * by channel_step after a channel's kh rows); the weights are contiguous ([C/groups][KH][KW]), the
 * second channel's w1_offset bytes further. out[l] = bias0 + sum x*w0, out[l + out1_offset/4] =
 * bias1 + sum x*w1. */
typedef struct {
    int32_t kw, kh, channels, row_step, channel_step, w1_offset, count, x_step, bias0, bias1, out1_offset;
} unit__dot2_geometry;

#define UNIT__DOT2_MAX_KW 8

#if defined(__ARM_ARCH_6M__) && !(defined(UNIT_DOT2_C) && UNIT_DOT2_C)
/* AAPCS: r0 out, r1 x, r2 w0, r3 g; kw <= UNIT__DOT2_MAX_KW. A row jumps into the last kw of
 * eight unrolled taps (MOV PC: 2 cycles), 11 cycles per tap for its two MACs (ldrsb 2, ldrsb 2,
 * muls 1, adds 1, ldrsb 2, muls 1, adds 1, adds 1; ARM DDI 0484C Table 3.1), 8 more per row. */
void unit__dot2_row_s8(int32_t *out, const int8_t *x, const int8_t *w0, const unit__dot2_geometry *g);
__asm__(
    "    .text\n"
    "    .syntax unified\n"
    "    .thumb\n"
    "    .balign 2\n"
    "    .thumb_func\n"
    "    .type unit__dot2_row_s8, %function\n"
    "unit__dot2_row_s8:\n"
    "    push    {r4-r7, lr}\n"
    "    mov     r4, r8\n"
    "    mov     r5, r9\n"
    "    mov     r6, r10\n"
    "    mov     r7, r11\n"
    "    push    {r4-r7}\n"
    "    ldr     r4, [r3, #24]\n"     /* count */
    "    push    {r0-r4}\n"           /* [sp]: out, [sp+4]: x, [sp+8]: w0, [sp+12]: g, [sp+16]: count */
    "    ldr     r4, [r3, #0]\n"      /* kw: r10 */
    "    mov     r10, r4\n"
    "    ldr     r5, =4f\n"           /* r11: the entry into the unrolled taps, 4f - 16*kw */
    "    lsls    r4, r4, #4\n"
    "    subs    r5, r5, r4\n"
    "    mov     r11, r5\n"
    "    ldr     r4, [r3, #12]\n"     /* row step: r8 */
    "    mov     r8, r4\n"
    "    ldr     r4, [r3, #16]\n"     /* channel step: ip */
    "    mov     ip, r4\n"
    "3:  ldr     r6, [sp, #12]\n"     /* a position */
    "    ldr     r2, [sp, #4]\n"
    "    add     r2, r10\n"           /* r2: end of x's row */
    "    ldr     r3, [sp, #8]\n"
    "    add     r3, r10\n"           /* r3: end of w0's row */
    "    ldr     r5, [r6, #20]\n"
    "    adds    r4, r3, r5\n"        /* r4: end of w1's row */
    "    ldr     r0, [r6, #32]\n"     /* r0, r1: the sums, from the biases */
    "    ldr     r1, [r6, #36]\n"
    "    ldr     r5, [r6, #4]\n"      /* r9: rows left in the channel */
    "    mov     r9, r5\n"
    "    ldr     r5, [r6, #8]\n"      /* lr: channels left */
    "    mov     lr, r5\n"
    "1:  mov     r5, r10\n"           /* a row: index -kw .. -1, into the last kw taps */
    "    rsbs    r5, r5, #0\n"
    "    mov     pc, r11\n"
    "    ldrsb   r6, [r2, r5]\n"
    "    ldrsb   r7, [r3, r5]\n"
    "    muls    r7, r6, r7\n"
    "    adds    r0, r0, r7\n"
    "    ldrsb   r7, [r4, r5]\n"
    "    muls    r7, r6, r7\n"
    "    adds    r1, r1, r7\n"
    "    adds    r5, #1\n"
    "    ldrsb   r6, [r2, r5]\n"
    "    ldrsb   r7, [r3, r5]\n"
    "    muls    r7, r6, r7\n"
    "    adds    r0, r0, r7\n"
    "    ldrsb   r7, [r4, r5]\n"
    "    muls    r7, r6, r7\n"
    "    adds    r1, r1, r7\n"
    "    adds    r5, #1\n"
    "    ldrsb   r6, [r2, r5]\n"
    "    ldrsb   r7, [r3, r5]\n"
    "    muls    r7, r6, r7\n"
    "    adds    r0, r0, r7\n"
    "    ldrsb   r7, [r4, r5]\n"
    "    muls    r7, r6, r7\n"
    "    adds    r1, r1, r7\n"
    "    adds    r5, #1\n"
    "    ldrsb   r6, [r2, r5]\n"
    "    ldrsb   r7, [r3, r5]\n"
    "    muls    r7, r6, r7\n"
    "    adds    r0, r0, r7\n"
    "    ldrsb   r7, [r4, r5]\n"
    "    muls    r7, r6, r7\n"
    "    adds    r1, r1, r7\n"
    "    adds    r5, #1\n"
    "    ldrsb   r6, [r2, r5]\n"
    "    ldrsb   r7, [r3, r5]\n"
    "    muls    r7, r6, r7\n"
    "    adds    r0, r0, r7\n"
    "    ldrsb   r7, [r4, r5]\n"
    "    muls    r7, r6, r7\n"
    "    adds    r1, r1, r7\n"
    "    adds    r5, #1\n"
    "    ldrsb   r6, [r2, r5]\n"
    "    ldrsb   r7, [r3, r5]\n"
    "    muls    r7, r6, r7\n"
    "    adds    r0, r0, r7\n"
    "    ldrsb   r7, [r4, r5]\n"
    "    muls    r7, r6, r7\n"
    "    adds    r1, r1, r7\n"
    "    adds    r5, #1\n"
    "    ldrsb   r6, [r2, r5]\n"
    "    ldrsb   r7, [r3, r5]\n"
    "    muls    r7, r6, r7\n"
    "    adds    r0, r0, r7\n"
    "    ldrsb   r7, [r4, r5]\n"
    "    muls    r7, r6, r7\n"
    "    adds    r1, r1, r7\n"
    "    adds    r5, #1\n"
    "    ldrsb   r6, [r2, r5]\n"
    "    ldrsb   r7, [r3, r5]\n"
    "    muls    r7, r6, r7\n"
    "    adds    r0, r0, r7\n"
    "    ldrsb   r7, [r4, r5]\n"
    "    muls    r7, r6, r7\n"
    "    adds    r1, r1, r7\n"
    "    adds    r5, #1\n"
    "4:  add     r2, r8\n"            /* next row */
    "    add     r3, r10\n"
    "    add     r4, r10\n"
    "    mov     r5, r9\n"
    "    subs    r5, #1\n"
    "    mov     r9, r5\n"
    "    bne     1b\n"
    "    add     r2, ip\n"            /* next input channel */
    "    ldr     r6, [sp, #12]\n"
    "    ldr     r5, [r6, #4]\n"
    "    mov     r9, r5\n"
    "    mov     r5, lr\n"
    "    subs    r5, #1\n"
    "    mov     lr, r5\n"
    "    bne     1b\n"
    "    ldr     r6, [sp, #12]\n"     /* store the pair, next position */
    "    ldr     r2, [sp, #0]\n"
    "    ldr     r5, [r6, #40]\n"
    "    str     r1, [r2, r5]\n"
    "    stmia   r2!, {r0}\n"
    "    str     r2, [sp, #0]\n"
    "    ldr     r5, [r6, #28]\n"
    "    ldr     r2, [sp, #4]\n"
    "    adds    r2, r2, r5\n"
    "    str     r2, [sp, #4]\n"
    "    ldr     r5, [sp, #16]\n"
    "    subs    r5, #1\n"
    "    str     r5, [sp, #16]\n"
    "    bne     3b\n"
    "    add     sp, #20\n"
    "    pop     {r4-r7}\n"
    "    mov     r8, r4\n"
    "    mov     r9, r5\n"
    "    mov     r10, r6\n"
    "    mov     r11, r7\n"
    "    pop     {r4-r7, pc}\n"
    "    .pool\n"
    "    .size unit__dot2_row_s8, . - unit__dot2_row_s8\n");
#else
#if defined(__riscv) && !defined(__riscv_mul) && !(defined(UNIT_DOT2_C) && UNIT_DOT2_C)
/* No multiply instruction (RV32EC): a*b = floor((a+b)**2/4) - floor((a-b)**2/4), exact because
 * a+b and a-b have the same parity; unit__quarter_squares[n + 256] = floor(n*n/4), n in [-256, 255]
 * (1 KB of flash) instead of a call of libgcc's __mulsi3 per MAC. */
static const uint16_t unit__quarter_squares[512] = {
    16384, 16256, 16129, 16002, 15876, 15750, 15625, 15500, 15376, 15252, 15129, 15006, 14884, 14762, 14641, 14520,
    14400, 14280, 14161, 14042, 13924, 13806, 13689, 13572, 13456, 13340, 13225, 13110, 12996, 12882, 12769, 12656,
    12544, 12432, 12321, 12210, 12100, 11990, 11881, 11772, 11664, 11556, 11449, 11342, 11236, 11130, 11025, 10920,
    10816, 10712, 10609, 10506, 10404, 10302, 10201, 10100, 10000, 9900, 9801, 9702, 9604, 9506, 9409, 9312,
    9216, 9120, 9025, 8930, 8836, 8742, 8649, 8556, 8464, 8372, 8281, 8190, 8100, 8010, 7921, 7832,
    7744, 7656, 7569, 7482, 7396, 7310, 7225, 7140, 7056, 6972, 6889, 6806, 6724, 6642, 6561, 6480,
    6400, 6320, 6241, 6162, 6084, 6006, 5929, 5852, 5776, 5700, 5625, 5550, 5476, 5402, 5329, 5256,
    5184, 5112, 5041, 4970, 4900, 4830, 4761, 4692, 4624, 4556, 4489, 4422, 4356, 4290, 4225, 4160,
    4096, 4032, 3969, 3906, 3844, 3782, 3721, 3660, 3600, 3540, 3481, 3422, 3364, 3306, 3249, 3192,
    3136, 3080, 3025, 2970, 2916, 2862, 2809, 2756, 2704, 2652, 2601, 2550, 2500, 2450, 2401, 2352,
    2304, 2256, 2209, 2162, 2116, 2070, 2025, 1980, 1936, 1892, 1849, 1806, 1764, 1722, 1681, 1640,
    1600, 1560, 1521, 1482, 1444, 1406, 1369, 1332, 1296, 1260, 1225, 1190, 1156, 1122, 1089, 1056,
    1024, 992, 961, 930, 900, 870, 841, 812, 784, 756, 729, 702, 676, 650, 625, 600,
    576, 552, 529, 506, 484, 462, 441, 420, 400, 380, 361, 342, 324, 306, 289, 272,
    256, 240, 225, 210, 196, 182, 169, 156, 144, 132, 121, 110, 100, 90, 81, 72,
    64, 56, 49, 42, 36, 30, 25, 20, 16, 12, 9, 6, 4, 2, 1, 0,
    0, 0, 1, 2, 4, 6, 9, 12, 16, 20, 25, 30, 36, 42, 49, 56,
    64, 72, 81, 90, 100, 110, 121, 132, 144, 156, 169, 182, 196, 210, 225, 240,
    256, 272, 289, 306, 324, 342, 361, 380, 400, 420, 441, 462, 484, 506, 529, 552,
    576, 600, 625, 650, 676, 702, 729, 756, 784, 812, 841, 870, 900, 930, 961, 992,
    1024, 1056, 1089, 1122, 1156, 1190, 1225, 1260, 1296, 1332, 1369, 1406, 1444, 1482, 1521, 1560,
    1600, 1640, 1681, 1722, 1764, 1806, 1849, 1892, 1936, 1980, 2025, 2070, 2116, 2162, 2209, 2256,
    2304, 2352, 2401, 2450, 2500, 2550, 2601, 2652, 2704, 2756, 2809, 2862, 2916, 2970, 3025, 3080,
    3136, 3192, 3249, 3306, 3364, 3422, 3481, 3540, 3600, 3660, 3721, 3782, 3844, 3906, 3969, 4032,
    4096, 4160, 4225, 4290, 4356, 4422, 4489, 4556, 4624, 4692, 4761, 4830, 4900, 4970, 5041, 5112,
    5184, 5256, 5329, 5402, 5476, 5550, 5625, 5700, 5776, 5852, 5929, 6006, 6084, 6162, 6241, 6320,
    6400, 6480, 6561, 6642, 6724, 6806, 6889, 6972, 7056, 7140, 7225, 7310, 7396, 7482, 7569, 7656,
    7744, 7832, 7921, 8010, 8100, 8190, 8281, 8372, 8464, 8556, 8649, 8742, 8836, 8930, 9025, 9120,
    9216, 9312, 9409, 9506, 9604, 9702, 9801, 9900, 10000, 10100, 10201, 10302, 10404, 10506, 10609, 10712,
    10816, 10920, 11025, 11130, 11236, 11342, 11449, 11556, 11664, 11772, 11881, 11990, 12100, 12210, 12321, 12432,
    12544, 12656, 12769, 12882, 12996, 13110, 13225, 13340, 13456, 13572, 13689, 13806, 13924, 14042, 14161, 14280,
    14400, 14520, 14641, 14762, 14884, 15006, 15129, 15252, 15376, 15500, 15625, 15750, 15876, 16002, 16129, 16256
};
#define UNIT__MUL_S8(a, b) ((int32_t)unit__quarter_squares[(a) + (b) + 256] - \
                            (int32_t)unit__quarter_squares[(a) - (b) + 256])
#else
#define UNIT__MUL_S8(a, b) ((int32_t)(a) * (b))
#endif
static void unit__dot2_row_s8(int32_t *out, const int8_t *x, const int8_t *w0, const unit__dot2_geometry *g) {
    int32_t l, c, r, k;
    for (l = 0; l < g->count; l++, x += g->x_step) {
        const int8_t *xp = x, *a = w0, *b = w0 + g->w1_offset;
        int32_t s0 = g->bias0, s1 = g->bias1;
        for (c = 0; c < g->channels; c++, xp += g->channel_step) {
            for (r = 0; r < g->kh; r++, xp += g->row_step, a += g->kw, b += g->kw) {
                for (k = 0; k < g->kw; k++) {
                    const int32_t xv = xp[k];
                    s0 += UNIT__MUL_S8(xv, (int32_t)a[k]);
                    s1 += UNIT__MUL_S8(xv, (int32_t)b[k]);
                }
            }
        }
        out[l] = s0;
        out[l + g->out1_offset / 4] = s1;
    }
}
#endif

/* The 64-bit product a*m (m >= 0, as every requantization multiplier) in two words, from four
 * 16x16-bit products: no call of the 64-bit multiply helper (__aeabi_lmul / __muldi3, about 100
 * cycles on the Cortex-M0+). */
static inline void unit__mul_words_m0(int32_t a, int32_t m, uint32_t *low, uint32_t *high) {
    const uint32_t al = (uint32_t)a & 0xFFFFU, ml = (uint32_t)m & 0xFFFFU, mh = (uint32_t)m >> 16;
    const int32_t ah = a >> 16; /* arithmetic: a = ah * 2**16 + al */
    const uint32_t ll = al * ml;
    const int32_t hl = ah * (int32_t)ml;
    const uint32_t lh = al * mh;
    const int32_t hh = ah * (int32_t)mh;
    /* a*m = hh * 2**32 + (hl + lh) * 2**16 + ll; mid = hl + lh needs 33 bits */
    const uint32_t mid_low = (uint32_t)hl + lh;
    const int32_t mid_high = (hl >> 16) + (int32_t)(lh >> 16) + (int32_t)((((uint32_t)hl & 0xFFFFU) + (lh & 0xFFFFU)) >> 16);
    const uint32_t lo = ll + (mid_low << 16);
    *low = lo;
    *high = (uint32_t)hh + (uint32_t)mid_high + (lo < ll ? 1U : 0U);
}

/* unit__requantize_clamp_s8 with the product of unit__mul_words_m0 (the same rounding steps as
 * unit__high_mul_s8; multiplier >= 0, so the INT32_MIN * INT32_MIN saturation cannot occur). */
static inline int8_t unit__requantize_clamp_m0(int32_t acc, int32_t multiplier, int32_t shift, int32_t act_min,
                                               int32_t act_max) {
    uint32_t low, high, add, floor_bits;
    int negative;
    int32_t a, v;
    shift = shift < -31 ? -31 : (shift > 30 ? 30 : shift);
    a = shift > 0 ? (int32_t)((uint32_t)acc << shift) : acc;
    unit__mul_words_m0(a, multiplier, &low, &high);
    negative = (high & 0x80000000UL) != 0;
    add = negative ? (uint32_t)0xC0000001UL : (uint32_t)0x40000000UL;
    low += add;
    high += (uint32_t)(low < add ? 1U : 0U) + (negative ? (uint32_t)0xFFFFFFFFUL : (uint32_t)0U);
    floor_bits = (high << 1) | (low >> 31);
    if ((high & 0x80000000UL) != 0 && (low & 0x7FFFFFFFUL) != 0) {
        floor_bits += 1U;
    }
    v = shift < 0 ? unit__divide_by_pot_s8((int32_t)floor_bits, -shift) : (int32_t)floor_bits;
    v = v < act_min ? act_min : (v > act_max ? act_max : v);
    return (int8_t)v;
}

/* unit__requantize_clamp_m0 for acc > 0 (so a*m >= 0, below 2**62): the same steps without the
 * negative cases, from unsigned 16x16-bit products. */
static inline int8_t unit__requantize_positive_m0(int32_t acc, int32_t multiplier, int32_t shift, int32_t act_min,
                                                  int32_t act_max) {
    uint32_t a, al, ah, ml, mh, mid, low, high;
    int32_t v;
    shift = shift < -31 ? -31 : (shift > 30 ? 30 : shift);
    a = shift > 0 ? (uint32_t)acc << shift : (uint32_t)acc;
    al = a & 0xFFFFU;
    ah = a >> 16;
    ml = (uint32_t)multiplier & 0xFFFFU;
    mh = (uint32_t)multiplier >> 16;
    mid = ah * ml + al * mh; /* both below 2**31: no carry out */
    low = al * ml;
    high = ah * mh + (mid >> 16);
    low += mid << 16;
    high += low < (mid << 16) ? 1U : 0U;
    low += 0x40000000UL; /* the nudge of a non-negative product */
    high += low < 0x40000000UL ? 1U : 0U;
    v = (int32_t)((high << 1) | (low >> 31));
    if (shift < 0) {
        v = unit__divide_by_pot_s8(v, -shift);
    }
    v = v < act_min ? act_min : (v > act_max ? act_max : v);
    return (int8_t)v;
}

/* unit__store_channel_s8 with unit__requantize_clamp_m0, and the shortcuts of a fused ReLU and of
 * a positive sum. */
static void unit__store_row_m0(const int32_t *acc, int32_t n, const unit_requant_s8 *r, int32_t o, int8_t *y) {
    const int32_t multiplier = UNIT_READ_S32(r->multiplier + o);
    const int32_t shift = UNIT_READ_S8(r->shift + o);
    const int32_t *end = acc + n;
    while (acc != end) {
        const int32_t v = *acc++;
        /* a sum <= 0 requantizes to <= 0 (multiplier >= 0): with a fused ReLU (act_min >= 0) it is act_min */
        if (v > 0) {
            *y++ = unit__requantize_positive_m0(v, multiplier, shift, r->act_min, r->act_max);
        } else {
            *y++ = r->act_min >= 0 ? (int8_t)r->act_min
                                   : unit__requantize_clamp_m0(v, multiplier, shift, r->act_min, r->act_max);
        }
    }
}

#endif /* not AVR/MSP430 */

int32_t unit_conv2d_dense_s8_mcu32(const unit_conv2d_params *params, const int8_t *x,
                                    const UNIT_TABLE int8_t *weight, const unit_requant_s8 *requant, int8_t *y,
                                    int32_t *scratch, unit_counts *counts) {
#if defined(__AVR__) || defined(__MSP430__)
    /* 8/16-bit parts (far tables on AVR): the portable kernel */
    return unit_conv2d_dense_s8(params, x, weight, requant, y, scratch, counts);
#else
    const unit_conv2d_params *p = params;
    unit__conv_s8 g;
    unit__dot2_geometry d;
    int32_t n, o, oy, status;
    status = unit__conv2d_s8_begin(params, x, weight, requant, y, scratch, &g);
    if (status != UNIT_OK) {
        return status;
    }
    if (p->pad_top != 0 || p->pad_bottom != 0 || p->pad_left != 0 || p->pad_right != 0 || p->dilation_x != 1 ||
        p->dilation_y != 1 || g.block_rows < 2 || p->kernel_width > UNIT__DOT2_MAX_KW) {
        return unit_conv2d_dense_s8(params, x, weight, requant, y, scratch, counts);
    }
    d.kw = p->kernel_width;
    d.kh = p->kernel_height;
    d.channels = g.group_in;
    d.row_step = p->in_width;
    d.channel_step = g.plane - p->kernel_height * p->in_width;
    d.count = g.out_width;
    d.x_step = p->stride_x;
    d.out1_offset = 4 * g.out_width;
    for (n = 0; n < p->batch; n++) {
        const int8_t *x_sample = x + (ptrdiff_t)n * p->in_channels * g.plane;
        int8_t *y_sample = y + (ptrdiff_t)n * p->out_channels * g.positions;
        for (o = 0; o < p->out_channels; o += 2) {
            /* a pair shares the activations only inside one group; a lone channel pairs with itself */
            const int32_t both = o + 1 < p->out_channels && o / g.group_out == (o + 1) / g.group_out;
            const int8_t *x_group = x_sample + (ptrdiff_t)(o / g.group_out) * g.group_in * g.plane;
            const int8_t *w0 = (const int8_t *)weight + (ptrdiff_t)o * g.group_in * g.taps;
            d.bias0 = unit__bias_s8(requant, o);
            d.bias1 = both ? unit__bias_s8(requant, o + 1) : 0;
            d.w1_offset = both ? g.group_in * g.taps : 0;
            for (oy = 0; oy < g.out_height; oy++) {
                const int8_t *x_row = x_group + (ptrdiff_t)oy * p->stride_y * p->in_width;
                unit__dot2_row_s8(scratch, x_row, w0, &d);
                unit__store_row_m0(scratch, g.out_width, requant, o,
                                       y_sample + (ptrdiff_t)o * g.positions + (ptrdiff_t)oy * g.out_width);
                if (both) {
                    unit__store_row_m0(scratch + g.out_width, g.out_width, requant, o + 1,
                                           y_sample + (ptrdiff_t)(o + 1) * g.positions + (ptrdiff_t)oy * g.out_width);
                }
            }
        }
    }
#if UNIT_S8_COUNTS
    if (counts != 0) {
        int64_t dense = (int64_t)p->batch * p->out_channels * g.positions * g.group_in * g.taps;
        unit__counts_set(counts, dense, 0, 0, dense, 0, 0);
    }
#else
    (void)counts;
#endif
    return UNIT_OK;
#endif
}
