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
 * through tap k, (i + pad - k*dilation) / stride when that divides and lies in [0, out), else
 * UNIT__SKIPFREE_OUT. */
static inline void unit__skipfree_map_s8(int16_t *map, int32_t taps, int32_t size, int32_t out, int32_t stride,
                                         int32_t dilation, int32_t pad, int32_t scale) {
    int32_t k, i;
    for (k = 0; k < taps; k++) {
        for (i = 0; i < size; i++) {
            const int32_t shifted = i + pad - k * dilation;
            int16_t value = UNIT__SKIPFREE_OUT;
            if (shifted >= 0 && shifted % stride == 0 && shifted / stride < out) {
                value = (int16_t)(shifted / stride * scale);
            }
            *map++ = value;
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
#define UNIT__SKIPFREE_TAP_FN static __attribute__((noinline))
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

#endif /* UNIT_INTERNAL_SKIPFREE_S8_H */
