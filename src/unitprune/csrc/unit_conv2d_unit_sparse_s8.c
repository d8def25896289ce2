/* SPDX-License-Identifier: MIT */
/* unit_conv2d_unit_sparse_s8.c -- int8 UnIT convolution over the static-sparse layout (see
 * unit_kernels_s8.h, unit_unit_sparse_s8): only the stored weights, each only over the
 * activations it keeps (per-row level lists, unit_internal_rowlists_s8.h). */
#include "unit_internal_rowlists_s8.h"

#if UNIT_S8_COUNTS
/* The nonzero activations the tap (c, ky, kx) sees over the output rows [first, end). */
static int64_t unit__rowlists_nonzero_s8(const unit_conv2d_params *p, int32_t out_width, const int8_t *x_c,
                                         int32_t ky, int32_t kx, int32_t first, int32_t end) {
    int64_t nonzero = 0;
    int32_t oy, ox;
    for (oy = first; oy < end; oy++) {
        const int32_t iy = oy * p->stride_y - p->pad_top + ky * p->dilation_y;
        if (iy < 0 || iy >= p->in_height) {
            continue;
        }
        for (ox = 0; ox < out_width; ox++) {
            const int32_t ix = ox * p->stride_x - p->pad_left + kx * p->dilation_x;
            nonzero += ix >= 0 && ix < p->in_width && x_c[iy * p->in_width + ix] != 0;
        }
    }
    return nonzero;
}
#endif

int32_t unit_conv2d_unit_sparse_s8(const unit_conv2d_params *params, const int8_t *x,
                                   const unit_unit_sparse_s8 *sparse, const unit_requant_s8 *requant, int8_t *y,
                                   int32_t *scratch, unit_counts *counts) {
    const unit_conv2d_params *p = params;
    unit__conv_s8 g;
    unit__rowlists_parts_s8 l;
    int32_t status, n, o, k, total = 0, levels;
    uint8_t *bytes = (uint8_t *)scratch;
    int16_t *col_map;
    uint8_t *level_of, *above, *entries;
    uint8_t start[129];
    ptrdiff_t above_step, list_step;
    ptrdiff_t in_width, out_width, stride_y, dilation_y, pad_top;
#if UNIT__ROWLISTS_AVR || UNIT__ROWLISTS_MSP430
    int fast;
    unit__rowlists_tap_s8 tap;
#endif
#if UNIT_S8_COUNTS
    int64_t zero_activation = 0, executed = 0, visits = 0;
#endif
    if (sparse == 0 || sparse->counts == 0) {
        return UNIT_ERR_ARGUMENT;
    }
    /* the records: a non-null stand-in for the shared argument check (checked below) */
    status = unit__conv2d_s8_begin(params, x, (const UNIT_TABLE int8_t *)sparse->counts, requant, y, scratch, &g);
    if (status != UNIT_OK) {
        return status;
    }
    levels = sparse->level_count;
    unit__rowlists_layout_s8(params, g.out_height, g.out_width, levels, &l);
    if (l.total < 0 || (levels > 0 && sparse->levels == 0)) {
        return UNIT_ERR_ARGUMENT;
    }
    for (o = 0; o < p->out_channels; o++) {
        total += (int32_t)(uint16_t)UNIT_READ_S16((const UNIT_TABLE int16_t *)sparse->counts + o);
    }
    if (total > 0 && sparse->records == 0) {
        return UNIT_ERR_ARGUMENT;
    }
#if !defined(__AVR__) && !defined(__MSP430__)
    /* hosts check every record and the levels (MCU builds trust the exporter's tables) */
    for (k = 0; k < levels; k++) {
        if (UNIT_READ_U8(sparse->levels + k) > 127 || (k > 0 && UNIT_READ_U8(sparse->levels + k) <=
                                                                  UNIT_READ_U8(sparse->levels + k - 1))) {
            return UNIT_ERR_ARGUMENT;
        }
    }
    for (k = 0; k < total; k++) {
        const UNIT_TABLE uint8_t *r = sparse->records + UNIT__ROWLISTS_RECORD * k;
        const uint8_t level = UNIT_READ_U8(r + 4);
        if (UNIT_READ_U8(r) >= g.group_in || UNIT_READ_U8(r + 1) >= p->kernel_height ||
            UNIT_READ_U8(r + 2) >= p->kernel_width || UNIT_READ_U8(r + 3) == 0 ||
            (level != UNIT__ROWLISTS_DEAD && level >= levels)) {
            return UNIT_ERR_ARGUMENT;
        }
    }
#endif
    col_map = (int16_t *)(void *)(bytes + l.col_map);
    level_of = bytes + l.level_of;
    above = bytes + l.above;
    entries = bytes + l.entries;
    /* col_map[kx][ix]: the output column input column ix reaches through tap kx, else OUT */
    for (k = 0; k < p->kernel_width; k++) {
        int16_t *map = col_map + k * p->in_width;
        int32_t i, ox;
        for (i = 0; i < p->in_width; i++) {
            map[i] = UNIT__ROWLISTS_OUT;
        }
        for (ox = 0, i = k * p->dilation_x - p->pad_left; ox < g.out_width; ox++, i += p->stride_x) {
            if (i >= 0 && i < p->in_width) {
                map[i] = (int16_t)ox;
            }
        }
    }
    unit__rowlists_levels_s8(level_of, sparse->levels, levels);
    above_step = (ptrdiff_t)(p->stride_y * levels);
    list_step = (ptrdiff_t)(2 * p->stride_y * p->in_width);
    /* pointer-sized copies: 16-bit arithmetic on AVR and MSP430 (the scratch is below 64 KB there) */
    in_width = (ptrdiff_t)p->in_width;
    out_width = (ptrdiff_t)g.out_width;
    stride_y = (ptrdiff_t)p->stride_y;
    dilation_y = (ptrdiff_t)p->dilation_y;
    pad_top = (ptrdiff_t)p->pad_top;
#if UNIT__ROWLISTS_AVR || UNIT__ROWLISTS_MSP430
#if UNIT__ROWLISTS_AVR
    fast = unit__rowlists_avr_fits(p, g.out_width) && g.block_rows <= 255;
#else
    fast = g.block_rows <= 255;
#endif
    tap.list_step = (int16_t)list_step;
    tap.visits_step = (int16_t)above_step;
    tap.acc_step = (int16_t)(4 * g.out_width);
    tap.out_w = (uint8_t)g.out_width;
#endif
    for (n = 0; n < p->batch; n++) {
        const int8_t *x_sample = x + (ptrdiff_t)n * p->in_channels * g.plane;
        int8_t *y_sample = y + (ptrdiff_t)n * p->out_channels * g.positions;
        const UNIT_TABLE uint8_t *records = sparse->records;
        int32_t row;
        for (row = 0; row < p->in_channels * p->in_height; row++) {
            unit__rowlists_sort_s8(x_sample + (ptrdiff_t)row * p->in_width, (int16_t)p->in_width, level_of,
                                   (int16_t)levels, above + (ptrdiff_t)row * levels, start,
                                   entries + (ptrdiff_t)2 * row * p->in_width);
        }
        for (o = 0; o < p->out_channels; o++) {
            const int32_t count = (int32_t)(uint16_t)UNIT_READ_S16((const UNIT_TABLE int16_t *)sparse->counts + o);
            const int32_t c0 = (o / g.group_out) * g.group_in, bias = unit__bias_s8(requant, o);
            int32_t first;
            for (first = 0; first < g.out_height; first += g.block_rows) {
                const int32_t end = first + g.block_rows < g.out_height ? first + g.block_rows : g.out_height;
                const UNIT_TABLE uint8_t *r = records;
                unit__fill_s32(scratch, (end - first) * g.out_width, 0);
                for (k = 0; k < count; k++, r += UNIT__ROWLISTS_RECORD) {
                    const ptrdiff_t ky = UNIT_READ_U8(r + 1), kx = UNIT_READ_U8(r + 2);
                    const int8_t w = (int8_t)UNIT_READ_U8(r + 3);
                    const uint8_t level = UNIT_READ_U8(r + 4);
                    const ptrdiff_t plane_row = (ptrdiff_t)((c0 + UNIT_READ_U8(r)) * p->in_height);
                    const int16_t *cols = col_map + kx * p->in_width;
                    int32_t lo, hi, rows;
                    const uint8_t *visits_at, *list;
                    int32_t *acc_row;
#if UNIT_S8_COUNTS
                    {
                        const int64_t nonzero = unit__rowlists_nonzero_s8(
                            p, g.out_width, x_sample + plane_row * p->in_width, (int32_t)ky, (int32_t)kx, first, end);
                        zero_activation += (int64_t)(end - first) * g.out_width - nonzero;
                    }
#endif
                    if (level == UNIT__ROWLISTS_DEAD) {
                        continue; /* tau >= 128: no |x| <= 128 exceeds it */
                    }
                    /* the output rows of the block whose input row is inside the input: [lo, hi) */
                    unit__tap_range_kd((int32_t)(ky * dilation_y), p->in_height, g.out_height, p->stride_y,
                                       p->pad_top, &lo, &hi);
                    lo = lo > first ? lo : first;
                    hi = hi + 1 < end ? hi + 1 : end;
                    if (hi <= lo) {
                        continue;
                    }
                    {
                        const ptrdiff_t row = plane_row + ((ptrdiff_t)lo * stride_y - pad_top + ky * dilation_y);
                        visits_at = above + row * levels + level;
                        list = entries + 2 * row * in_width;
                    }
                    acc_row = scratch + (ptrdiff_t)(lo - first) * out_width;
#if UNIT__ROWLISTS_AVR || UNIT__ROWLISTS_MSP430
                    if (fast) {
                        tap.acc_row = acc_row;
                        tap.list = list;
                        tap.visits = visits_at;
                        tap.rows = (uint8_t)(hi - lo);
                        tap.w = w;
                        tap.col_off = (uint8_t)(kx * p->dilation_x - p->pad_left);
                        tap.cols = cols;
#if UNIT__ROWLISTS_AVR
                        unit__rowlists_tap_s8_avr(&tap);
#else
                        __unit_rowlists_tap_s8(&tap);
#endif
                        continue;
                    }
#endif
                    for (rows = hi - lo; rows > 0; rows--, visits_at += above_step, list += list_step,
                         acc_row += out_width) {
                        const uint8_t visit = *visits_at;
                        if (visit == 0) {
                            continue;
                        }
#if UNIT_S8_COUNTS
                        executed += unit__rowlists_row_s8(acc_row, cols, (uint16_t)g.out_width, list, visit, w);
                        visits += visit;
#else
                        (void)unit__rowlists_row_s8(acc_row, cols, (uint16_t)g.out_width, list, visit, w);
#endif
                    }
                }
                unit__rowlists_store_s8(y_sample + (ptrdiff_t)o * g.positions + first * g.out_width, scratch,
                                        (end - first) * g.out_width, bias, requant, o);
            }
            records += UNIT__ROWLISTS_RECORD * count;
        }
    }
#if UNIT_S8_COUNTS
    if (counts != 0) {
        const int64_t dense = (int64_t)p->batch * p->out_channels * g.positions * g.group_in * g.taps;
        const int64_t zero_weight = (int64_t)p->batch * g.positions *
                                    ((int64_t)p->out_channels * g.group_in * g.taps - total);
        unit__counts_set(counts, dense, zero_weight, zero_activation, executed, visits, 0);
    }
#else
    (void)counts;
#endif
    return UNIT_OK;
}
