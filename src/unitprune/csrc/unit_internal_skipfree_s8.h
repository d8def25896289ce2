/* SPDX-License-Identifier: MIT */
/*
 * unit_internal_skipfree_s8.h -- the skip-free UnIT convolution (unit_conv2d_unit_skipfree_s8) and
 * the early-exit UnIT linear kernels (unit_linear_unit_sorted_*_s8): private helpers.
 *
 * Skip-free convolution. Per sample, every input channel's nonzero activations are
 * counting-sorted by |x|, largest first, once (shared by every output channel and tap): per entry
 * its row, column and value (three bytes, one stream), and per channel `first[c][tau]` = #{|x| > tau}
 * for tau in [0, 127] (the counting sort's bucket starts). A tap's weight w with threshold tau then
 * visits exactly the first first[c][tau] entries of its channel, with no compare per entry: each
 * entry's output position is row_map[ky][iy] + col_map[kx][ix] (tables of the call: oy*OW and ox,
 * or UNIT__SKIPFREE_OUT where the tap does not reach an output from that row / column, for
 * padding, stride and dilation), and one unsigned compare against OH*OW rejects the positions
 * outside the output (the window test).
 *
 * Scratch layout (bytes, unit_conv2d_unit_skipfree_s8_scratch_size):
 *   int32 acc[OH*OW] | uint16 first[C][128] | int16 row_map[KH][H] | int16 col_map[KW][W] |
 *   entries[C*H*W][3] (iy, ix, value as uint8, uint8, int8; channel c's at c*H*W)
 * Limits (UNIT_ERR_ARGUMENT otherwise): H, W <= 256, OH*OW <= 16384, C*H*W <= 65535.
 */
#ifndef UNIT_INTERNAL_SKIPFREE_S8_H
#define UNIT_INTERNAL_SKIPFREE_S8_H

#include "unit_internal_s8.h"

/* The map value of a row or column the tap does not reach: any sum with it is >= 16384 >= OH*OW,
 * and two of them sum to 32768, which still fits the uint16 index. */
#define UNIT__SKIPFREE_OUT 0x4000
#define UNIT__SKIPFREE_MAX_POSITIONS 0x4000L
#define UNIT__SKIPFREE_MAX_SIDE 256L
#define UNIT__SKIPFREE_MAX_INPUTS 0xFFFFL

/* Byte offsets of the scratch parts (see the layout above). */
typedef struct {
    int32_t first, row_map, col_map, entries, total;
} unit__skipfree_parts_s8;

/* The layout of a checked geometry; total = -1 when the layer exceeds the kernel's limits. */
static inline void unit__skipfree_layout_s8(const unit_conv2d_params *p, int32_t out_height, int32_t out_width,
                                            unit__skipfree_parts_s8 *l) {
    const int32_t inputs = p->in_channels * p->in_height * p->in_width;
    if ((int64_t)out_height * out_width > UNIT__SKIPFREE_MAX_POSITIONS || p->in_height > UNIT__SKIPFREE_MAX_SIDE ||
        p->in_width > UNIT__SKIPFREE_MAX_SIDE || (int64_t)p->in_channels * p->in_height * p->in_width >
        UNIT__SKIPFREE_MAX_INPUTS) {
        l->total = -1;
        return;
    }
    l->first = 4 * out_height * out_width;
    l->row_map = l->first + 2 * 128 * p->in_channels;
    l->col_map = l->row_map + 2 * p->kernel_height * p->in_height;
    l->entries = l->col_map + 2 * p->kernel_width * p->in_width;
    l->total = l->entries + 3 * inputs;
}

/* map[k][i] for the taps k of one axis: the output index o (times `scale`) that input i reaches
 * through tap k, when i = o*stride - pad + k*dilation for an o in [0, out), else UNIT__SKIPFREE_OUT
 * (filled by stepping over o: no division). */
static inline void unit__skipfree_map_s8(int16_t *map, int32_t taps, int32_t size, int32_t out, int32_t stride,
                                         int32_t dilation, int32_t pad, int32_t scale) {
    int32_t k, i, o;
    for (k = 0; k < taps; k++, map += size) {
        for (i = 0; i < size; i++) {
            map[i] = UNIT__SKIPFREE_OUT;
        }
        for (o = 0, i = k * dilation - pad; o < out; o++, i += stride) {
            if (i >= 0 && i < size) {
                map[i] = (int16_t)(o * scale);
            }
        }
    }
}

/* The counting sort of one channel's plane (H*W values): first[tau] = #{|x| > tau} for tau in
 * [0, 127]; the nonzero entries (iy, ix, value), largest |x| first. `bucket` is 129 uint16 of
 * stack. Returns the channel's nonzero count. */
static inline uint16_t unit__skipfree_sort_s8(const int8_t *x, int32_t height, int32_t width, uint16_t *first,
                                              uint8_t *entries) {
    uint16_t bucket[129];
    uint16_t total = 0;
    int32_t m, r, col;
    const int8_t *xp = x;
    for (m = 0; m <= 128; m++) {
        bucket[m] = 0;
    }
    for (r = 0; r < height * width; r++) {
        bucket[unit__abs_s8(x[r])]++;
    }
    /* bucket[m] becomes the start of magnitude m (m = 128 first); first[t] = start of t (entries > t) */
    for (m = 128; m >= 1; m--) {
        const uint16_t count = bucket[m];
        bucket[m] = total;
        total = (uint16_t)(total + count);
        first[m - 1] = total;
    }
    for (r = 0; r < height; r++) {
        for (col = 0; col < width; col++) {
            const int8_t v = *xp++;
            if (v != 0) {
                uint8_t *entry = entries + 3 * bucket[unit__abs_s8(v)]++;
                entry[0] = (uint8_t)r;
                entry[1] = (uint8_t)col;
                entry[2] = (uint8_t)v;
            }
        }
    }
    return total;
}

/* The tap loop is a separate function on MCUs (its values stay in registers; inlined into the
 * loop nest, avr-gcc spills them), inlined on hosts. */
#if defined(__GNUC__) && (defined(__AVR__) || defined(__MSP430__))
#define UNIT__SKIPFREE_TAP_FN static __attribute__((noinline, unused))
#else
#define UNIT__SKIPFREE_TAP_FN static inline
#endif

/* The visits of one tap: acc[row_map[iy] + col_map[ix]] += value * w over the first n entries,
 * rejecting by one unsigned compare the entries outside the output. Returns the kept count in the
 * counted build (0 otherwise). */
UNIT__SKIPFREE_TAP_FN int16_t unit__skipfree_tap_s8(int32_t *acc, uint16_t positions, const int16_t *row_map,
                                                    const int16_t *col_map, const uint8_t *entry, uint16_t n,
                                                    int8_t w) {
    int16_t kept = 0;
    const uint8_t *end = entry + 3 * n;
    while (entry != end) {
        const uint16_t at = (uint16_t)(row_map[entry[0]] + col_map[entry[1]]);
        const int8_t v = (int8_t)entry[2];
        entry += 3;
        if (at < positions) {
            unit__mac_s8(acc + at, v, w);
#if UNIT_S8_COUNTS
            kept++;
#endif
        }
    }
    return kept;
}

/* The AVR tap loop (unit_conv2d_unit_skipfree_s8_avr.S) for layers of stride 1 whose byte
 * arithmetic cannot wrap into the window (unit__skipfree_avr_fits); the C loop otherwise, with
 * UNIT_PORTABLE_KERNELS=1, and in the counted build. */
#if defined(__AVR__) && !(defined(UNIT_PORTABLE_KERNELS) && UNIT_PORTABLE_KERNELS) && !UNIT_S8_COUNTS
#define UNIT__SKIPFREE_AVR 1
void unit__skipfree_tap_s8_avr(int32_t *acc, const uint8_t *entry, uint16_t n, int8_t w, uint8_t row_off,
                               uint8_t col_off, uint8_t out_h, uint8_t out_w);
#else
#define UNIT__SKIPFREE_AVR 0
#endif

/* The MSP430 tap loop (mcu/targets/msp430/runtime/unit_conv2d_unit_skipfree_s8_msp430.S, linked
 * with the MSP430 runtime): unit__skipfree_tap_s8 in assembly for every geometry; the C loop with
 * UNIT_PORTABLE_KERNELS=1 and in the counted build. */
#if defined(__MSP430__) && !(defined(UNIT_PORTABLE_KERNELS) && UNIT_PORTABLE_KERNELS) && !UNIT_S8_COUNTS
#define UNIT__SKIPFREE_MSP430 1
typedef struct {
    int32_t *acc;
    const int16_t *row_map, *col_map;
    uint16_t positions;
} unit__skipfree_tap_args_s8;
void __unit_skipfree_tap_s8(const unit__skipfree_tap_args_s8 *a, const uint8_t *entry, uint16_t n, int16_t w);
#else
#define UNIT__SKIPFREE_MSP430 0
#endif

/* Stride 1 on both axes, and for every tap the shifted row iy + pad_top - ky*dy lies in
 * (out_h - 256, 256) (so its low byte is below out_h exactly when it is in [0, out_h)), the same
 * for columns. */
static inline int unit__skipfree_avr_fits(const unit_conv2d_params *p, int32_t out_height, int32_t out_width) {
    return p->stride_y == 1 && p->stride_x == 1 && out_height <= 255 && out_width <= 255 &&
           p->in_height - 1 + p->pad_top <= 255 && p->in_width - 1 + p->pad_left <= 255 &&
           (p->kernel_height - 1) * p->dilation_y + out_height <= 256 &&
           (p->kernel_width - 1) * p->dilation_x + out_width <= 256;
}

/* What every tap of a call shares (the 8-bit fields are used by the AVR loop only, where
 * unit__skipfree_avr_fits holds). */
typedef struct {
    int32_t *acc;
    const int16_t *row_map, *col_map;
    int16_t in_height, in_width, kernel_height, kernel_width;
    uint16_t positions;
    uint8_t dilation_y, dilation_x, pad_top, pad_left, out_height, out_width, fast;
} unit__skipfree_call_s8;

/* Tallies of the counted build. */
typedef struct {
    int64_t zero_weight, zero_activation, executed, visits;
} unit__skipfree_tally_s8;

/* Every tap of one (output channel, input channel) pair: w and t at [o][c][0][0], first_c and list
 * the channel's bucket starts and entries. A separate function on MCUs (few live values). */
UNIT__SKIPFREE_TAP_FN void unit__skipfree_channel_s8(const unit__skipfree_call_s8 *s, const UNIT_TABLE int8_t *w,
                                                     const UNIT_TABLE uint8_t *t, const uint16_t *first_c,
                                                     const uint8_t *list, unit__skipfree_tally_s8 *tally) {
    const int16_t *rows = s->row_map;
    uint8_t row_off = (uint8_t)(0U - s->pad_top);
    int16_t ky, kx;
#if UNIT__SKIPFREE_MSP430
    unit__skipfree_tap_args_s8 args;
    args.acc = s->acc;
    args.positions = s->positions;
#endif
    for (ky = 0; ky < s->kernel_height; ky++, rows += s->in_height, row_off = (uint8_t)(row_off + s->dilation_y)) {
        const int16_t *cols = s->col_map;
        uint8_t col_off = (uint8_t)(0U - s->pad_left);
        for (kx = 0; kx < s->kernel_width;
             kx++, w++, t++, cols += s->in_width, col_off = (uint8_t)(col_off + s->dilation_x)) {
            const int8_t wv = UNIT_READ_S8(w);
            const uint8_t tv = UNIT_READ_U8(t);
            uint16_t n;
            if (wv == 0) {
#if UNIT_S8_COUNTS
                tally->zero_weight += s->positions;
#endif
                continue;
            }
#if UNIT_S8_COUNTS
            { /* the tap's nonzero in-window activations (counted build only) */
                int32_t e, nonzero = 0;
                for (e = 0; e < first_c[0]; e++) {
                    nonzero += (uint16_t)(rows[list[3 * e]] + cols[list[3 * e + 1]]) < s->positions;
                }
                tally->zero_activation += s->positions - nonzero;
            }
#endif
            if (tv >= 128U) {
                continue; /* no |x| <= 128 exceeds tau */
            }
            n = first_c[tv];
            if (n == 0) {
                continue;
            }
#if UNIT__SKIPFREE_AVR
            if (s->fast) {
                unit__skipfree_tap_s8_avr(s->acc, list, n, wv, row_off, col_off, s->out_height, s->out_width);
                continue;
            }
#else
            (void)row_off;
            (void)col_off;
#endif
#if UNIT__SKIPFREE_MSP430
            args.row_map = rows;
            args.col_map = cols;
            __unit_skipfree_tap_s8(&args, list, n, wv);
            continue;
#endif
#if UNIT_S8_COUNTS
            tally->executed += unit__skipfree_tap_s8(s->acc, s->positions, rows, cols, list, n, wv);
            tally->visits += n;
#else
            (void)unit__skipfree_tap_s8(s->acc, s->positions, rows, cols, list, n, wv);
            (void)tally;
#endif
        }
    }
}

#endif /* UNIT_INTERNAL_SKIPFREE_S8_H */
