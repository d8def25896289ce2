/* SPDX-License-Identifier: MIT */
/*
 * unit_internal_pool_s8.h -- the max-pool on the int32 accumulators shared by the pooled convolutions
 * (private; unit_conv2d_dense_pool_s8.c, unit_conv2d_sparse_pool_s8.c): the domain of a channel's
 * pooled values, the rewrite of a run's stored words into it, and each window's best (2x2 windows
 * in assembly on AVR, unit_conv2d_dense_pool_s8_avr.S, and MSP430, the runtime's
 * unit_pool_best_s8_msp430.S).
 */
#ifndef UNIT_INTERNAL_POOL_S8_H
#define UNIT_INTERNAL_POOL_S8_H

#include "unit_internal_dot_s8.h"

/* The pooled values live in one domain per output channel, where the output stage reads
 * value = unit__dot_value_s8(base, v) for the channel's base: on AVR (a run stores base - value,
 * base = unit__dot_base_s8(bias, n) for fields of n MACs) base is the interior fields' base, so the
 * interior runs' stored words are already in it and only the clipped fields' (another n) are
 * rewritten; on MSP430 and hosts every run stores value - bias, whatever n: nothing to rewrite. In
 * the AVR domain v = base - value = -(value - bias + 32768 n) lies in [-49152 n, -16512 n] for the
 * interior's n (biased products in [16512, 49152]) and for the clipped fields' values (at most n
 * products of magnitude <= 16384; the static-sparse runs store the same with n = the channel's
 * nonzero weights), so it does not wrap for n <= UNIT__POOL_FIELD_MAX; a larger field
 * takes base 0 (v = -value) and every run is rewritten. A larger value is then a smaller v on AVR. */
#define UNIT__POOL_FIELD_MAX 43690L /* 49152 * 43690 < 2**31 */

#if UNIT__DOT_ASM && UNIT__DOT_BIAS != 0
#define UNIT__POOL_BETTER(a, b) ((a) < (b))
/* values[i] rewritten from a run that stored them for fields of n MACs (n == 0: value = bias + stored)
 * into the channel's domain (base). */
static inline void unit__pool_rewrite_s8(int32_t *values, int32_t count, int32_t bias, int32_t n, int32_t base) {
    int32_t *end = values + count;
    const uint32_t run_base = (uint32_t)unit__dot_base_s8(bias, n), b = (uint32_t)base;
    for (; values != end; values++) {
        const uint32_t value = n != 0 ? run_base - (uint32_t)*values : (uint32_t)bias + (uint32_t)*values;
        *values = (int32_t)(b - value);
    }
}
#else
#define UNIT__POOL_BETTER(a, b) ((a) > (b))
#endif

#if UNIT__DOT_ASM && defined(__AVR__)
/* 2x2 windows in assembly (unit_conv2d_dense_pool_s8_avr.S: the smallest word, count 1..255) */
void unit__pool_best2x2_s8_avr(int32_t *out, const int32_t *top, uint8_t count, uint16_t row_bytes);
#define UNIT__POOL_BEST2X2(out, top, count, row_bytes) \
    unit__pool_best2x2_s8_avr(out, top, (uint8_t)(count), (uint16_t)(row_bytes))
#elif UNIT__DOT_ASM
/* (mcu/targets/msp430/runtime/unit_pool_best_s8_msp430.S: the largest word) */
void __unit_pool_best2x2_s8(int32_t *out, const int32_t *top, uint16_t count, uint16_t row_bytes);
#define UNIT__POOL_BEST2X2(out, top, count, row_bytes) \
    __unit_pool_best2x2_s8(out, top, (uint16_t)(count), (uint16_t)(row_bytes))
#endif

/* scratch[px] = the best (largest value) of window px, rows `row_span` apart, windows `width` wide.
 * Window px's cells lie at or after px: writing scratch[px] never overwrites one still to be read. */
static inline void unit__pool_best_s8(int32_t *scratch, ptrdiff_t pooled, ptrdiff_t height, ptrdiff_t width,
                               ptrdiff_t row_span) {
    const int32_t *window = scratch;
    int32_t *out = scratch, *end = scratch + pooled;
#if UNIT__DOT_ASM
    if (height == 2 && width == 2) { /* in runs of at most 255 windows */
        ptrdiff_t done, count;
        for (done = 0; done < pooled; done += count) {
            count = pooled - done < 255 ? pooled - done : 255;
            UNIT__POOL_BEST2X2(scratch + done, scratch + 2 * done, count, row_span * (ptrdiff_t)sizeof(int32_t));
        }
        return;
    }
#endif
    if (height == 2 && width == 2) {
        for (; out != end; out++, window += 2) {
            const int32_t a = UNIT__POOL_BETTER(window[1], window[0]) ? window[1] : window[0];
            const int32_t b = UNIT__POOL_BETTER(window[row_span + 1], window[row_span]) ? window[row_span + 1]
                                                                                        : window[row_span];
            *out = UNIT__POOL_BETTER(b, a) ? b : a;
        }
        return;
    }
    for (; out != end; out++, window += width) {
        const int32_t *row = window;
        int32_t best = window[0];
        ptrdiff_t dy, dx;
        for (dy = 0; dy < height; dy++, row += row_span) {
            for (dx = 0; dx < width; dx++) {
                best = UNIT__POOL_BETTER(row[dx], best) ? row[dx] : best;
            }
        }
        *out = best;
    }
}

/* The pool arguments of a pooled convolution (g from unit__conv2d_s8_begin): windows of 1..OH x 1..OW
 * and a scratch of pool_height rows (params->block_rows 0 or >= pool_height); fills the pooled size. */
static inline int32_t unit__pool_args_s8(const unit_conv2d_params *p, const unit__conv_s8 *g, int32_t pool_height,
                                         int32_t pool_width, int32_t *pooled_height, int32_t *pooled_width) {
    if (pool_height < 1 || pool_width < 1 || pool_height > g->out_height || pool_width > g->out_width ||
        (p->block_rows != 0 && p->block_rows < pool_height)) {
        return UNIT_ERR_ARGUMENT;
    }
    *pooled_height = g->out_height / pool_height; /* once per call */
    *pooled_width = g->out_width / pool_width;
    return UNIT_OK;
}

#endif /* UNIT_INTERNAL_POOL_S8_H */
