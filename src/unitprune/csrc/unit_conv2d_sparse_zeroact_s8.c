/* SPDX-License-Identifier: MIT */
/* unit_conv2d_sparse_zeroact_s8.c -- the static-sparse int8 convolution (unit_conv2d_sparse_s8.c)
 * that also skips zero activations where whole kernel rows of a field read zeros only (see
 * unit_kernels_s8.h, unit_conv2d_sparse_zeroact_s8).
 *
 * Once per sample, the nonzero column span [lo, hi] of every input row. Then per output row and
 * group, shared by the group's output channels: for every output column the first and last kernel
 * row (flattened j = c*KH + ky over the group's input channels) whose input row has a nonzero inside
 * the field's columns, kept as a key {first, last + 1} per column. Per output channel the row is
 * walked by runs of equal keys:
 *   - no live kernel row: the field reads zeros only, the output is the channel's requantized bias
 *     (computed once per call), no MAC and no requantization;
 *   - otherwise the channel's records of kernel rows [first, last] only (row_starts gives their
 *     range; the records of the rows outside meet zeros only), through the same output-stationary
 *     runs as unit_conv2d_sparse_s8 (assembly on AVR and MSP430) for whole fields, the masked loop
 *     over the taps for fields the padding clips.
 * Outputs and counters equal unit_conv2d_sparse_s8's: a skipped product is one of a stored weight
 * with x == 0 (counted zero_activation, as that kernel counts the zero products it multiplies). */
#include "unit_internal_sparse_conv_s8.h"

#define UNIT__ZEROACT_NONE 0xFF /* key of a column no live kernel row reaches */

/* The scratch layout (unit_conv2d_sparse_zeroact_s8_scratch_size): int32 run values [OW], int16
 * spans [C][H][2], uint8 keys first [OW] and end [OW], int8 constants [O]. */
static int32_t unit__zeroact_span_bytes(const unit_conv2d_params *p) {
    return 4 * p->in_channels * p->in_height;
}

/* Every input row's nonzero column span: span[2r] = lo, span[2r+1] = hi (hi < 0: the row is zero). */
static void unit__zeroact_spans_s8(const int8_t *x, int16_t rows, int16_t width, int16_t *span) {
    int16_t r;
    for (r = 0; r < rows; r++, x += width, span += 2) {
        int16_t lo = 0, hi = (int16_t)(width - 1);
        while (lo < width && x[lo] == 0) {
            lo++;
        }
        if (lo == width) {
            span[0] = width;
            span[1] = -1;
            continue;
        }
        while (x[hi] == 0) {
            hi--;
        }
        span[0] = lo;
        span[1] = hi;
    }
}

/* The keys of output row oy for the group whose spans start at span: first[ox] = the first live
 * flattened kernel row, end[ox] = the last + 1 (first[ox] = UNIT__ZEROACT_NONE: none). */
static void unit__zeroact_keys_s8(const unit_conv2d_params *p, const unit__conv_s8 *g, const int16_t *span,
                                  int32_t oy, uint8_t *first, uint8_t *end) {
    const int16_t out_width = (int16_t)g->out_width, field = (int16_t)((p->kernel_width - 1) * p->dilation_x);
    const int16_t pad_left = (int16_t)p->pad_left, sx = (int16_t)p->stride_x;
    int16_t ox, c, ky;
    uint8_t j = 0;
    for (ox = 0; ox < out_width; ox++) {
        first[ox] = UNIT__ZEROACT_NONE;
    }
    for (c = 0; c < g->group_in; c++, span += 2 * p->in_height) {
        int32_t r = oy * p->stride_y - p->pad_top;
        for (ky = 0; ky < p->kernel_height; ky++, j++, r += p->dilation_y) {
            int16_t lo, hi, u, v;
            if (r < 0 || r >= p->in_height || span[2 * r + 1] < 0) {
                continue;
            }
            lo = span[2 * r];
            hi = span[2 * r + 1];
            /* live columns: the field [ox*sx - pad_left, ... + field] meets [lo, hi] */
            if (sx == 1) {
                u = (int16_t)(lo + pad_left - field);
                v = (int16_t)(hi + pad_left);
            } else {
                u = (int16_t)unit__ceil_div(lo + pad_left - field, sx);
                v = (int16_t)unit__floor_div(hi + pad_left, sx);
            }
            u = u < 0 ? 0 : u;
            v = v >= out_width ? (int16_t)(out_width - 1) : v;
            for (ox = u; ox <= v; ox++) {
                if (first[ox] == UNIT__ZEROACT_NONE) {
                    first[ox] = j;
                }
                end[ox] = (uint8_t)(j + 1);
            }
        }
    }
}

/* The tables: row_starts[O*G + 1] ascending from 0, each channel's starts at its first record,
 * the last = the records stored (hosts check every entry, MCU builds trust the exporter). */
static int32_t unit__zeroact_check_s8(const unit_conv2d_params *p, const unit__conv_s8 *g, const unit_sparse_s8 *s,
                                      const UNIT_TABLE uint16_t *row_starts, int32_t total) {
    const int32_t rows = g->group_in * p->kernel_height;
    if (row_starts == 0 || rows > 254 || p->in_width > 0x7FFF || p->in_height > 0x7FFF || g->out_width > 0x7FFF ||
        (int64_t)p->in_channels * p->in_height > 0x1FFFFFFFL) {
        return UNIT_ERR_ARGUMENT; /* keys are uint8 (254 kernel rows at most), spans int16 */
    }
#if !defined(__AVR__) && !defined(__MSP430__)
    {
        int32_t o, j, at = 0;
        for (o = 0; o < p->out_channels; o++) {
            if ((int32_t)UNIT_READ_S16((const UNIT_TABLE int16_t *)row_starts + o * rows) != (int32_t)(int16_t)at) {
                return UNIT_ERR_ARGUMENT;
            }
            at += (int32_t)(uint16_t)UNIT_READ_S16((const UNIT_TABLE int16_t *)s->nonzeros + o);
            for (j = 1; j <= rows; j++) {
                const int32_t here = (uint16_t)UNIT_READ_S16((const UNIT_TABLE int16_t *)row_starts + o * rows + j);
                const int32_t before = (uint16_t)UNIT_READ_S16((const UNIT_TABLE int16_t *)row_starts + o * rows + j - 1);
                if (here < before || (j == rows && here != at)) {
                    return UNIT_ERR_ARGUMENT;
                }
            }
        }
        if (at != total) {
            return UNIT_ERR_ARGUMENT;
        }
    }
#else
    (void)s;
    (void)total;
#endif
    return UNIT_OK;
}

#if UNIT_S8_COUNTS
/* Products of a stored weight with a zero activation or a padding position, over every output:
 * the count unit_conv2d_sparse_s8 reports (its records walked in full). */
static int64_t unit__zeroact_count_s8(const unit_conv2d_params *p, const unit__conv_s8 *g, const int8_t *x,
                                      const unit_sparse_s8 *s) {
    int64_t zeros = 0;
    int32_t n, o, oy, ox, k;
    for (n = 0; n < p->batch; n++) {
        const UNIT_TABLE int16_t *records = s->records;
        const UNIT_TABLE uint8_t *taps = s->taps;
        for (o = 0; o < p->out_channels; o++) {
            const int32_t nnz = (int32_t)(uint16_t)UNIT_READ_S16((const UNIT_TABLE int16_t *)s->nonzeros + o);
            const int8_t *x_group = x + ((ptrdiff_t)n * p->in_channels + (o / g->group_out) * g->group_in) * g->plane;
            for (oy = 0; oy < g->out_height; oy++) {
                for (ox = 0; ox < g->out_width; ox++) {
                    for (k = 0; k < nnz; k++) {
                        const int32_t offset = (int32_t)(uint16_t)UNIT_READ_S16(records + 2 * k);
                        int32_t ky = 0, kx = 0, c, iy, ix;
                        if (taps != 0) {
                            ky = UNIT_READ_U8(taps + 2 * k);
                            kx = UNIT_READ_U8(taps + 2 * k + 1);
                            c = (offset - ky * p->dilation_y * p->in_width - kx * p->dilation_x) / g->plane;
                        } else { /* no padding: the offset alone places the product inside the input */
                            c = 0;
                        }
                        iy = oy * p->stride_y - p->pad_top + ky * p->dilation_y;
                        ix = ox * p->stride_x - p->pad_left + kx * p->dilation_x;
                        if (taps != 0 && (iy < 0 || iy >= p->in_height || ix < 0 || ix >= p->in_width)) {
                            zeros++;
                        } else if (taps != 0) {
                            zeros += x_group[c * g->plane + iy * p->in_width + ix] == 0;
                        } else {
                            zeros += x_group[(oy * p->stride_y) * p->in_width + ox * p->stride_x + offset] == 0;
                        }
                    }
                }
            }
            records += 2 * nnz;
            if (taps != 0) {
                taps += 2 * nnz;
            }
        }
    }
    return zeros;
}
#endif

int32_t unit_conv2d_sparse_zeroact_s8(const unit_conv2d_params *params, const int8_t *x, const unit_sparse_s8 *sparse,
                                      const UNIT_TABLE uint16_t *row_starts, const unit_requant_s8 *requant,
                                      int8_t *y, int32_t *scratch, unit_counts *counts) {
    const unit_conv2d_params *p = params;
    unit__conv_s8 g;
    unit__sparse_out_s8 q;
    int32_t n, o, oy, nnz_total = 0, inner_first, inner_end, inner_origin, group_plane, last_row, rows;
    int16_t *spans;
    uint8_t *key_first, *key_end;
    int8_t *constants;
    int32_t status = unit__conv2d_s8_begin(params, x, (const UNIT_TABLE int8_t *)sparse, requant, y, scratch, &g);
    if (status != UNIT_OK) {
        return status;
    }
    status = unit__sparse_check_s8(p, &g, sparse, &nnz_total);
    if (status == UNIT_OK) {
        status = unit__zeroact_check_s8(p, &g, sparse, row_starts, nnz_total);
    }
    if (status != UNIT_OK) {
        return status;
    }
    rows = g.group_in * p->kernel_height;
    spans = (int16_t *)(void *)(scratch + g.out_width);
    key_first = (uint8_t *)(void *)((int8_t *)(void *)spans + unit__zeroact_span_bytes(p));
    key_end = key_first + g.out_width;
    constants = (int8_t *)(key_end + g.out_width);
    group_plane = g.group_in * g.plane;
    q.act_min = (int8_t)requant->act_min;
    q.act_max = (int8_t)requant->act_max;
    for (o = 0; o < p->out_channels; o++) { /* a field of zeros: the requantized bias */
        constants[o] = unit__requantize_clamp_s8(unit__bias_s8(requant, o), UNIT_READ_S32(requant->multiplier + o),
                                                 UNIT_READ_S8(requant->shift + o), q.act_min, q.act_max);
    }
    /* output columns whose whole kernel row lies inside the input: [inner_first, inner_end) */
    inner_first = unit__ceil_div(p->pad_left, p->stride_x);
    inner_end = unit__floor_div(p->in_width - 1 + p->pad_left - (p->kernel_width - 1) * p->dilation_x, p->stride_x) + 1;
    inner_end = inner_end > g.out_width ? g.out_width : inner_end;
    inner_end = inner_end < inner_first ? inner_first : inner_end;
    inner_origin = inner_first * p->stride_x - p->pad_left;
    last_row = (p->kernel_height - 1) * p->dilation_y;
    for (n = 0; n < p->batch; n++) {
        const int8_t *x_sample = x + (ptrdiff_t)n * p->in_channels * g.plane;
        int8_t *y_sample = y + (ptrdiff_t)n * p->out_channels * g.positions;
        {
            int32_t c;
            for (c = 0; c < p->in_channels; c++) {
                unit__zeroact_spans_s8(x_sample + (ptrdiff_t)c * g.plane, (int16_t)p->in_height, (int16_t)p->in_width,
                                       spans + 2 * c * p->in_height);
            }
        }
        for (oy = 0; oy < g.out_height; oy++) {
            const int32_t first_y = oy * p->stride_y - p->pad_top;
            const int32_t row_y = first_y * p->in_width; /* input index of the field row's column 0 */
            const int rows_inside = first_y >= 0 && first_y + last_row < p->in_height;
            uint8_t ky0 = 0, ky1 = 0;
            int32_t group;
            if (sparse->taps != 0) {
                unit__sparse_inside_s8(first_y, p->kernel_height, p->in_height, p->dilation_y, &ky0, &ky1);
            }
            for (group = 0; group < p->groups; group++) {
                const int8_t *x_group = x_sample + (ptrdiff_t)group * group_plane;
                unit__zeroact_keys_s8(p, &g, spans + 2 * group * g.group_in * p->in_height, oy, key_first, key_end);
                for (o = group * g.group_out; o < (group + 1) * g.group_out; o++) {
                    const UNIT_TABLE int16_t *starts = (const UNIT_TABLE int16_t *)row_starts + o * rows;
                    int8_t *y_row = y_sample + (ptrdiff_t)o * g.positions + (ptrdiff_t)oy * g.out_width;
                    int32_t ox = 0;
                    q.bias = unit__bias_s8(requant, o);
                    q.multiplier = UNIT_READ_S32(requant->multiplier + o);
                    q.shift = UNIT_READ_S8(requant->shift + o);
                    while (ox < g.out_width) {
                        const uint8_t kf = key_first[ox], ke = key_end[ox];
                        int32_t s0, s1;
                        if (kf == UNIT__ZEROACT_NONE) {
                            y_row[ox++] = constants[o];
                            continue;
                        }
                        s0 = (int32_t)(uint16_t)UNIT_READ_S16(starts + kf);
                        s1 = (int32_t)(uint16_t)UNIT_READ_S16(starts + ke);
                        if (rows_inside && ox >= inner_first && ox < inner_end) { /* a run of whole fields */
                            int32_t stop = ox + 1;
                            while (stop < inner_end && key_first[stop] == kf && key_end[stop] == ke) {
                                stop++;
                            }
                            if (s1 > s0) {
                                const int32_t count = stop - ox;
                                const int assembly = unit__sparse_run_s8(
                                    scratch, x_group + row_y + inner_origin + (ox - inner_first) * p->stride_x,
                                    sparse->records + 2 * s0, s1 - s0, count, (ptrdiff_t)p->stride_x);
                                unit__sparse_store_s8(y_row + ox, scratch, count,
                                                      assembly ? unit__dot_base_s8(q.bias, s1 - s0) : q.bias, assembly,
                                                      &q);
                            } else {
                                for (; ox < stop; ox++) { /* live rows, but no stored weight in them */
                                    y_row[ox] = constants[o];
                                }
                            }
                            ox = stop;
                        } else { /* a field clipped by the padding: only the taps inside the input */
                            const int32_t first_x = ox * p->stride_x - p->pad_left, origin = row_y + first_x;
                            int32_t k, acc = 0;
                            uint8_t kx0, kx1;
                            unit__sparse_inside_s8(first_x, p->kernel_width, p->in_width, p->dilation_x, &kx0, &kx1);
                            for (k = s0; k < s1; k++) {
                                const uint8_t ky = UNIT_READ_U8(sparse->taps + 2 * k);
                                const uint8_t kx = UNIT_READ_U8(sparse->taps + 2 * k + 1);
                                if (ky >= ky0 && ky < ky1 && kx >= kx0 && kx < kx1) {
                                    acc += (int16_t)(x_group[origin + (int32_t)(uint16_t)UNIT_READ_S16(sparse->records + 2 * k)] *
                                                     UNIT_READ_S16(sparse->records + 2 * k + 1));
                                }
                            }
                            unit__sparse_store_s8(y_row + ox, &acc, 1, q.bias, 0, &q);
                            ox++;
                        }
                    }
                }
            }
        }
    }
#if UNIT_S8_COUNTS
    if (counts != 0) {
        const int64_t dense = (int64_t)p->batch * p->out_channels * g.positions * g.group_in * g.taps;
        const int64_t zero_weight = (int64_t)p->batch * g.positions * ((int64_t)p->out_channels * g.group_in * g.taps -
                                                                         nnz_total);
        const int64_t zero_activation = unit__zeroact_count_s8(p, &g, x, sparse);
        unit__counts_set(counts, dense, zero_weight, zero_activation, dense - zero_weight - zero_activation, 0, 0);
    }
#else
    (void)counts;
#endif
    return UNIT_OK;
}
