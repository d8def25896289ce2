/* SPDX-License-Identifier: MIT */
/*
 * unit_internal_conv_s8.h -- the int8 convolution loop nest shared by unit_conv2d_dense_s8,
 * unit_conv2d_zeroskip_s8 and unit_conv2d_unit_s8 (private). Weight-stationary, as SONIC and the
 * paper: per sample and output channel o, per block of block_rows output rows (the whole plane by
 * default), int32 accumulators for the block's block_rows*OW positions (scratch); per kernel tap
 * the valid output range clipped to the block (no bounds tests inside); per input channel of o's
 * group the tap's weight (and tau) loaded once, then the tight loop over the valid positions.
 * Every sum is exact int32, so any block size gives the same outputs and counters.
 * unit__conv2d_s8_run is inlined into each kernel with a constant `variant`, so each kernel
 * contains only its own inner loop.
 */
#ifndef UNIT_INTERNAL_CONV_S8_H
#define UNIT_INTERNAL_CONV_S8_H

#include "unit_internal_s8.h"

#define UNIT__CONV_DENSE 0    /* no test */
#define UNIT__CONV_ZEROSKIP 1 /* w == 0 skips the tap, x == 0 the multiply */
#define UNIT__CONV_UNIT 2     /* w == 0 or tau >= 128 skips the tap, |x| > tau keeps the multiply */

/* Tallies of the counted build, per call. */
typedef struct {
    int64_t zero_weight, zero_activation, executed, compares;
} unit__conv_tally_s8;

/* The loops over one output row of a tap, acc[l] for l in [0, end - acc) and x[l*sx]
 * (UNIT__ROW_FN: separate functions on MCUs with -Os, see unit_internal_s8.h). Stride 1, the common case,
 * has its own loop (post-increment loads). */
/* dense: acc[l] += w * x[l*sx], no test. */
UNIT__ROW_FN void unit__row_dense_s8(int32_t *acc, const int32_t *end, const int8_t *x, ptrdiff_t sx, int8_t w) {
    if (sx == 1) {
        while (acc != end) {
            unit__mac_s8(acc++, *x++, w);
        }
        return;
    }
    while (acc != end) {
        unit__mac_s8(acc++, *x, w);
        x += sx;
    }
}

/* zeroskip: a zero activation skips its multiply; returns the multiplies done (counted build;
 * 0 otherwise). */
UNIT__ROW_FN int32_t unit__row_zeroskip_s8(int32_t *acc, const int32_t *end, const int8_t *x, ptrdiff_t sx,
                                           int8_t w) {
    int32_t executed = 0;
    for (; acc != end; acc++, x += sx) {
        const int8_t xv = *x;
        if (xv != 0) {
            unit__mac_s8(acc, xv, w);
#if UNIT_S8_COUNTS
            executed++;
#endif
        }
    }
    return executed;
}

/* unit: keep iff |x| > tau (tau in [0, 127], tau2 = 2*tau) by one 8-bit add and compare
 * (unit__keep_s8; a zero x is never kept). Returns the kept multiplies and adds the zero
 * activations seen to *zeros (counted build; 0 and nothing otherwise). */
UNIT__ROW_FN int32_t unit__row_unit_s8(int32_t *acc, const int32_t *end, const int8_t *x, ptrdiff_t sx, int8_t w,
                                       uint8_t tau, uint8_t tau2, int32_t *zeros) {
    int32_t kept = 0;
#if UNIT_S8_COUNTS
    int32_t zero = 0;
#endif
    if (sx == 1) {
        while (acc != end) {
            const int8_t xv = *x++;
            if (unit__keep_s8(xv, tau, tau2)) {
                unit__mac_s8(acc, xv, w);
#if UNIT_S8_COUNTS
                kept++;
            } else if (xv == 0) {
                zero++;
#endif
            }
            acc++;
        }
    } else {
        for (; acc != end; acc++, x += sx) {
            const int8_t xv = *x;
            if (unit__keep_s8(xv, tau, tau2)) {
                unit__mac_s8(acc, xv, w);
#if UNIT_S8_COUNTS
                kept++;
            } else if (xv == 0) {
                zero++;
#endif
            }
        }
    }
#if UNIT_S8_COUNTS
    *zeros += zero;
#else
    (void)zeros;
#endif
    return kept;
}

/* dense over a tap's rows (every valid position). */
static inline void unit__tap_dense_s8(int32_t *acc, const int8_t *x, const unit__tap_s8 *t, ptrdiff_t sx,
                                      int32_t out_width, int8_t w) {
    int32_t r;
    for (r = 0; r < t->rows; r++, acc += out_width, x += t->x_row_step) {
        unit__row_dense_s8(acc, acc + t->cols, x, sx, w);
    }
}

/* zeroskip over a tap's rows; returns the multiplies done (counted build). */
static inline int32_t unit__tap_zeroskip_s8(int32_t *acc, const int8_t *x, const unit__tap_s8 *t, ptrdiff_t sx,
                                            int32_t out_width, int8_t w) {
    int32_t r, executed = 0;
    for (r = 0; r < t->rows; r++, acc += out_width, x += t->x_row_step) {
        executed += unit__row_zeroskip_s8(acc, acc + t->cols, x, sx, w);
    }
    return executed;
}

/* unit over a tap's rows; returns the kept multiplies and the zero activations via zeros
 * (counted build). */
static inline int32_t unit__tap_unit_s8(int32_t *acc, const int8_t *x, const unit__tap_s8 *t, ptrdiff_t sx,
                                        int32_t out_width, int8_t w, uint8_t tau, int32_t *zeros) {
    const uint8_t tau2 = (uint8_t)(tau + tau);
    int32_t r, kept = 0;
    *zeros = 0;
    for (r = 0; r < t->rows; r++, acc += out_width, x += t->x_row_step) {
        kept += unit__row_unit_s8(acc, acc + t->cols, x, sx, w, tau, tau2, zeros);
    }
    return kept;
}

/* One tap (ky, kx) of output channel o, clipped to a block of `positions` output positions, for
 * every input channel c of its group: w_tap and tau_tap point at [o][0][ky][kx] (tau_tap only read
 * by UNIT__CONV_UNIT). */
static inline void unit__conv2d_s8_tap(const unit_conv2d_params *p, const unit__conv_s8 *g, int32_t variant,
                                       const int8_t *x_group, const UNIT_TABLE int8_t *w_tap,
                                       const UNIT_TABLE uint8_t *tau_tap,
                                       const unit__tap_s8 *t, int32_t positions, int32_t *acc,
                                       unit__conv_tally_s8 *tally) {
    const ptrdiff_t sx = (ptrdiff_t)p->stride_x;
    const int8_t *x_channel = x_group + t->x_offset;
    int32_t c, k;
#if UNIT_S8_COUNTS
    const int32_t valid = t->rows * t->cols;
#else
    (void)tally;
    (void)positions;
#endif
    for (c = 0, k = 0; c < g->group_in; c++, k += g->taps, x_channel += g->plane) {
        const int8_t w = UNIT_READ_S8(w_tap + k);
        if (variant == UNIT__CONV_DENSE) { /* the honest baseline: no test */
            if (t->rows != 0) {
                unit__tap_dense_s8(acc, x_channel, t, sx, g->out_width, w);
            }
            continue;
        }
        if (w == 0) { /* zeroskip and unit: a zero weight skips the whole tap */
#if UNIT_S8_COUNTS
            tally->zero_weight += positions;
#endif
            continue;
        }
#if UNIT_S8_COUNTS
        tally->zero_activation += positions - valid; /* padding positions */
        if (variant == UNIT__CONV_UNIT) {
            tally->compares += positions;
        }
#endif
        if (t->rows == 0) {
            continue;
        }
        if (variant == UNIT__CONV_ZEROSKIP) {
            int32_t executed = unit__tap_zeroskip_s8(acc, x_channel, t, sx, g->out_width, w);
#if UNIT_S8_COUNTS
            tally->executed += executed;
            tally->zero_activation += valid - executed;
#else
            (void)executed;
#endif
        } else {
            const uint8_t tau = UNIT_READ_U8(tau_tap + k);
            int32_t zeros = 0, kept = 0;
            if (tau < 128U) {
                kept = unit__tap_unit_s8(acc, x_channel, t, sx, g->out_width, w, tau, &zeros);
            } else { /* no |x| <= 128 exceeds tau: the whole tap is skipped */
#if UNIT_S8_COUNTS
                zeros = (int32_t)unit__tap_zeros_s8(x_channel, t, p->stride_x);
#endif
            }
#if UNIT_S8_COUNTS
            tally->executed += kept;
            tally->zero_activation += zeros;
#else
            (void)kept;
            (void)zeros;
#endif
        }
    }
}

/* The whole convolution (arguments checked by the caller, unit__conv2d_s8_begin). */
static inline void unit__conv2d_s8_run(const unit_conv2d_params *p, const unit__conv_s8 *g, int32_t variant,
                                       const int8_t *x, const UNIT_TABLE int8_t *weight,
                                       const UNIT_TABLE uint8_t *tau,
                                       const unit_requant_s8 *requant, int8_t *y, int32_t *scratch,
                                       unit_counts *counts) {
    unit__conv_tally_s8 tally = {0, 0, 0, 0};
    const int32_t weights_per_output = g->group_in * g->taps;
    int32_t n, o, first, ky, kx;
    for (n = 0; n < p->batch; n++) {
        const int8_t *x_sample = x + (ptrdiff_t)n * p->in_channels * g->plane;
        int8_t *y_sample = y + (ptrdiff_t)n * p->out_channels * g->positions;
        for (o = 0; o < p->out_channels; o++) {
            /* no division for one group (a library call on AVR and MSP430, per channel and call) */
            const int32_t group = p->groups == 1 ? 0 : o / g->group_out;
            const int8_t *x_group = x_sample + (ptrdiff_t)group * g->group_in * g->plane;
            const int32_t w_out = o * weights_per_output;
            int8_t *y_channel = y_sample + (ptrdiff_t)o * g->positions;
            for (first = 0; first < g->out_height; first += g->block_rows) {
                const int32_t end = first + g->block_rows < g->out_height ? first + g->block_rows : g->out_height;
                const int32_t positions = (end - first) * g->out_width;
                int32_t kyd = 0, k_row = w_out; /* ky*dy and the kernel row's weights, by additions */
                unit__fill_s32(scratch, positions, unit__bias_s8(requant, o));
                for (ky = 0; ky < p->kernel_height; ky++, kyd += p->dilation_y, k_row += p->kernel_width) {
                    unit__tap_s8 r;
                    int32_t kxd = 0;
                    unit__conv_tap_rows_s8(p, g, kyd, first, end, &r);
                    for (kx = 0; kx < p->kernel_width; kx++, kxd += p->dilation_x) {
                        unit__tap_s8 t;
                        unit__conv_tap_s8(p, g, kxd, &r, &t);
                        unit__conv2d_s8_tap(p, g, variant, x_group, weight + k_row + kx,
                                            tau != 0 ? tau + k_row + kx : tau, &t, positions, scratch + t.acc_offset,
                                            &tally);
                    }
                }
                unit__store_channel_s8(scratch, positions, requant, o, y_channel + (ptrdiff_t)first * g->out_width);
            }
        }
    }
#if UNIT_S8_COUNTS
    if (counts != 0) {
        int64_t dense = (int64_t)p->batch * p->out_channels * g->positions * weights_per_output;
        if (variant == UNIT__CONV_DENSE) {
            unit__counts_set(counts, dense, 0, 0, dense, 0, 0);
        } else {
            unit__counts_set(counts, dense, tally.zero_weight, tally.zero_activation, tally.executed, tally.compares,
                             0);
        }
    }
#else
    (void)counts;
    (void)tally;
#endif
}

#endif /* UNIT_INTERNAL_CONV_S8_H */
