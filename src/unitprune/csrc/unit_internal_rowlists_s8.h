/* SPDX-License-Identifier: MIT */
/*
 * unit_internal_rowlists_s8.h -- the UnIT convolution over the static-sparse layout
 * (unit_conv2d_unit_sparse_s8; the table layout is documented with unit_unit_sparse_s8 in
 * unit_kernels_s8.h): private helpers.
 *
 * Only the stored (nonzero) weights are visited, and each only over the activations it keeps,
 * with no test per skipped connection. The layer's distinct thresholds tau < 128 are its K
 * *levels* u[0] < ... < u[K-1] (the bit-shift quotient T_q >> bit_length(|w|) takes at most 8
 * values per output channel); the level of an activation is L(x) = #{j : |x| > u[j]}, so a weight
 * whose tau is u[j] keeps x exactly when L(x) > j. Per sample, every input row of every channel is
 * counting-sorted by level (largest first, level 0 dropped: zeros and |x| <= u[0]) once, into
 * entries (column, value) and per (channel, row, j) the count of entries with level > j. A weight
 * at (c, ky, kx) then visits, for each output row oy of the block whose input row iy = oy*sy -
 * pad_top + ky*dy is inside the input, the first above[c][iy][j] entries of row iy: a row outside
 * the tap's window is never visited (no row rejections); the column goes through
 * col_map[kx][ix] (the output column, or UNIT__ROWLISTS_OUT where the tap does not reach one from
 * that column, for padding, stride and dilation) with one unsigned compare against OW.
 *
 * Scratch layout (bytes, unit_conv2d_unit_sparse_s8_scratch_size):
 *   int32 acc[B*OW] | int16 col_map[KW][W] | uint8 level_of[130] | uint8 above[C][H][K] |
 *   entries[C][H][W][2] (ix, value; row (c, iy) at (c*H + iy)*W)
 * B = params->block_rows (0: OH). Limits (UNIT_ERR_ARGUMENT otherwise): W <= 255, OW <= 0x3FFF,
 * C/groups <= 256.
 */
#ifndef UNIT_INTERNAL_ROWLISTS_S8_H
#define UNIT_INTERNAL_ROWLISTS_S8_H

#include "unit_internal_dot_s8.h"

/* The col_map value of a column the tap does not reach: >= OW for every allowed OW. */
#define UNIT__ROWLISTS_OUT 0x7FFF
#define UNIT__ROWLISTS_MAX_WIDTH 255L
#define UNIT__ROWLISTS_MAX_OUT_WIDTH 0x3FFFL
/* The level of a record whose tau >= 128 (it keeps nothing). */
#define UNIT__ROWLISTS_DEAD 255U
/* Bytes per record: c (within the group), ky, kx, weight (int8 bits), level. */
#define UNIT__ROWLISTS_RECORD 5

/* Byte offsets of the scratch parts. */
typedef struct {
    int32_t col_map, level_of, above, entries, total;
} unit__rowlists_parts_s8;

/* The layout of a checked geometry with K levels; total = -1 beyond the kernel's limits. */
static inline void unit__rowlists_layout_s8(const unit_conv2d_params *p, int32_t out_height, int32_t out_width,
                                            int32_t levels, unit__rowlists_parts_s8 *l) {
    const int32_t block = p->block_rows == 0 || p->block_rows > out_height ? out_height : p->block_rows;
    if (p->in_width > UNIT__ROWLISTS_MAX_WIDTH || out_width > UNIT__ROWLISTS_MAX_OUT_WIDTH || levels < 0 ||
        levels > 128 || p->groups <= 0 || p->in_channels / p->groups > 256 ||
        (int64_t)p->in_channels * p->in_height * p->in_width > 0x3FFFFFFFL) {
        l->total = -1;
        return;
    }
    l->col_map = 4 * block * out_width;
    l->level_of = l->col_map + 2 * p->kernel_width * p->in_width;
    l->above = l->level_of + 130;
    l->entries = l->above + p->in_channels * p->in_height * levels;
    l->total = l->entries + 2 * p->in_channels * p->in_height * p->in_width;
}

/* level_of[m] = #{j : m > u[j]} for m in [0, 128]. */
static inline void unit__rowlists_levels_s8(uint8_t *level_of, const UNIT_TABLE uint8_t *u, int32_t levels) {
    int32_t m, j = 0;
    for (m = 0; m <= 128; m++) {
        while (j < levels && m > (int32_t)UNIT_READ_U8(u + j)) {
            j++;
        }
        level_of[m] = (uint8_t)j;
    }
}

/* The counting sort of one input row of `width` values: entries (ix, value) by level, largest
 * first (level 0 dropped); above[j] = #{level > j} for j in [0, K). `start` is K + 1 bytes of the
 * caller's stack. */
static inline void unit__rowlists_sort_s8(const int8_t *x, int16_t width, const uint8_t *level_of, int16_t levels,
                                          uint8_t *above, uint8_t *start, uint8_t *entries) {
    int16_t ix, j;
    uint8_t total = 0;
    for (j = 0; j <= levels; j++) {
        start[j] = 0;
    }
    for (ix = 0; ix < width; ix++) {
        start[level_of[unit__abs_s8(x[ix])]]++;
    }
    /* start[L] becomes #{level > L} (the first entry of level L), above[j] the same for j < K */
    for (j = levels; j >= 1; j--) {
        const uint8_t count = start[j];
        start[j] = total;
        total = (uint8_t)(total + count);
        above[j - 1] = total;
    }
    if (total == 0) {
        return; /* no entry in this row */
    }
    for (ix = 0; ix < width; ix++) {
        const int8_t v = x[ix];
        const uint8_t level = level_of[unit__abs_s8(v)];
        if (level != 0) {
            uint8_t *entry = entries + 2 * start[level]++;
            entry[0] = (uint8_t)ix;
            entry[1] = (uint8_t)v;
        }
    }
}

/* The accumulators hold -sum on AVR with the assembly output stage (unit__dot_value_s8: base -
 * stored), +sum elsewhere; they start at 0, the bias is the output stage's base. */
#if UNIT__DOT_ASM && defined(__AVR__)
#define UNIT__ROWLISTS_NEGATED 1
#else
#define UNIT__ROWLISTS_NEGATED 0
#endif

/* The inner loop in C: acc_row[col_map[ix]] (+/-)= value * w over n >= 1 entries, rejecting by one
 * unsigned compare the columns outside the output. Returns the kept count in the counted build. */
static inline int32_t unit__rowlists_row_s8(int32_t *acc_row, const int16_t *cols, uint16_t out_width,
                                            const uint8_t *entry, uint8_t n, int8_t w) {
    int32_t kept = 0;
    const uint8_t *end = entry + 2 * n;
    while (entry != end) {
        const uint16_t ox = (uint16_t)cols[entry[0]];
        const int8_t v = (int8_t)entry[1];
        entry += 2;
        if (ox < out_width) {
#if UNIT__ROWLISTS_NEGATED
            acc_row[ox] -= (int16_t)(v * w);
#else
            unit__mac_s8(acc_row + ox, v, w);
#endif
#if UNIT_S8_COUNTS
            kept++;
#endif
        }
    }
    return kept;
}

/* One weight over the rows of one block (the assembly loops' argument; 16-bit pointers on AVR and
 * MSP430, fields at offsets 0, 2, 4, 6, 8, 10, 12, 13, 14, 15, 16): per row, n = *visits entries of
 * `list` (none when 0), then list += list_step, visits += visits_step, acc_row += acc_step bytes. */
typedef struct {
    int32_t *acc_row;
    const uint8_t *list;
    const uint8_t *visits;
    int16_t list_step, visits_step, acc_step;
    uint8_t rows;    /* >= 1 */
    int8_t w;        /* nonzero */
    uint8_t col_off; /* AVR: (uint8)(kx*dx - pad_left) */
    uint8_t out_w;   /* AVR: OW <= 255 */
    const int16_t *cols; /* MSP430: col_map[kx] */
} unit__rowlists_tap_s8;

/* The assembly loops over one weight's rows (not in the counted build, nor with
 * UNIT_PORTABLE_KERNELS=1): AVR (csrc/unit_conv2d_unit_sparse_s8_avr.S) for layers of stride_x 1
 * whose column byte arithmetic cannot wrap into the output (unit__rowlists_avr_fits): per entry
 * ox = (uint8)(ix - col_off), kept when ox < out_w, acc_row[ox] -= value * w; MSP430 with and
 * without the multiplier (mcu/targets/msp430/runtime/unit_conv2d_unit_sparse_s8_msp430.S), every
 * geometry: ox = cols[ix], kept when ox < OW (unsigned), acc_row[ox] += value * w. Blocks of at
 * most 255 rows. */
#if UNIT__DOT_ASM && defined(__AVR__) && !UNIT_S8_COUNTS
#define UNIT__ROWLISTS_AVR 1
void unit__rowlists_tap_s8_avr(const unit__rowlists_tap_s8 *t);
#else
#define UNIT__ROWLISTS_AVR 0
#endif
#if UNIT__DOT_ASM && defined(__MSP430__) && !UNIT_S8_COUNTS
#define UNIT__ROWLISTS_MSP430 1
void __unit_rowlists_tap_s8(const unit__rowlists_tap_s8 *t);
#else
#define UNIT__ROWLISTS_MSP430 0
#endif

/* Stride 1 along x, OW <= 255, and for every tap the shifted column ix + pad_left - kx*dx lies in
 * (OW - 256, 256), so its low byte is below OW exactly when it is in [0, OW). */
static inline int unit__rowlists_avr_fits(const unit_conv2d_params *p, int32_t out_width) {
    return p->stride_x == 1 && out_width <= 255 && p->in_width - 1 + p->pad_left <= 255 &&
           (p->kernel_width - 1) * p->dilation_x + out_width <= 256;
}

/* The output stage of `count` accumulators: y[i] = clamp(requantize(bias -/+ acc[i])). */
#if UNIT__DOT_ASM
typedef struct {
    int32_t base, multiplier;
    int8_t shift, act_min, act_max;
} unit__rowlists_out_s8;
#if defined(__AVR__)
void unit__requantize_run_s8_avr(int8_t *y, const int32_t *stored, uint8_t count, const unit__rowlists_out_s8 *s);
#else
void __unit_requantize_run_s8(int8_t *y, const int32_t *stored, int16_t count, const unit__rowlists_out_s8 *s);
#endif
#endif
static inline void unit__rowlists_store_s8(int8_t *y, const int32_t *acc, int32_t count, int32_t bias,
                                           const unit_requant_s8 *r, int32_t o) {
    const int32_t multiplier = UNIT_READ_S32(r->multiplier + o);
    const int32_t shift = UNIT_READ_S8(r->shift + o);
#if UNIT__DOT_ASM
    const unit__rowlists_out_s8 s = {bias, multiplier, (int8_t)shift, (int8_t)r->act_min, (int8_t)r->act_max};
    while (count > 0) {
        const int32_t part = count < 255 ? count : 255;
#if defined(__AVR__)
        unit__requantize_run_s8_avr(y, acc, (uint8_t)part, &s);
#else
        __unit_requantize_run_s8(y, acc, (int16_t)part, &s);
#endif
        y += part;
        acc += part;
        count -= part;
    }
#else
    for (; count > 0; count--) {
        *y++ = unit__requantize_clamp_s8(bias + *acc++, multiplier, shift, r->act_min, r->act_max);
    }
#endif
}

#endif /* UNIT_INTERNAL_ROWLISTS_S8_H */
