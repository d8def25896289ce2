/* SPDX-License-Identifier: MIT */
/* unit_conv2d_sparse_pool_s8.c -- int8 convolution over the nonzero weights only (static sparsity,
 * unit_conv2d_sparse_s8) followed by a max-pool whose window equals its stride (see unit_kernels_s8.h):
 * y = maxpool(the static-sparse convolution's y), computed as the output stage of each window's
 * largest accumulator, one output stage per pooled output (exact: the output stage is non-decreasing
 * in the accumulator for a multiplier >= 0, docs/kernels.md "Max-pool before the output stage").
 *
 * Per output channel and pooled row, the window's convolution rows are accumulated into the scratch
 * as unit_conv2d_sparse_s8 computes them (the interior fields by the runs of unit_internal_sparse_s8.h,
 * assembly on AVR and MSP430; the fields the padding clips by the masked C loop over the records'
 * taps), kept in the domain of unit_internal_pool_s8.h (on AVR the assembly runs' words, the plain
 * sums rewritten into it), then each window's best is requantized. The rows and columns a floor-mode
 * pool drops are not computed (the counted build counts their zero activations, so the counters are
 * unit_conv2d_sparse_s8's). */
#include "unit_internal_pool_s8.h"
#include "unit_internal_sparse_conv_s8.h"

/* acc = the dot product of the records with the field at origin (column first_x) clipped to the
 * kernel rows [ky0, ky1) inside the input; *zeros += the zero activations and padding positions. */
static int32_t unit__sparse_clipped_s8(const unit_conv2d_params *p, const int8_t *x_group, int32_t origin,
                                       int32_t first_x, uint8_t ky0, uint8_t ky1, const UNIT_TABLE int16_t *records,
                                       const UNIT_TABLE uint8_t *taps, int32_t nnz, int64_t *zeros) {
    int32_t k, acc = 0;
    uint8_t kx0, kx1;
    unit__sparse_inside_s8(first_x, p->kernel_width, p->in_width, p->dilation_x, &kx0, &kx1);
    for (k = 0; k < nnz; k++) {
        const uint8_t ky = taps != 0 ? UNIT_READ_U8(taps + 2 * k) : ky0;
        const uint8_t kx = taps != 0 ? UNIT_READ_U8(taps + 2 * k + 1) : kx0;
        if (ky >= ky0 && ky < ky1 && kx >= kx0 && kx < kx1) {
            const int8_t xv = x_group[origin + (int32_t)(uint16_t)UNIT_READ_S16(records + 2 * k)];
            acc += (int16_t)(xv * UNIT_READ_S16(records + 2 * k + 1));
            *zeros += xv == 0;
        } else {
            ++*zeros; /* a padding zero */
        }
    }
    return acc;
}

int32_t unit_conv2d_sparse_pool_s8(const unit_conv2d_params *params, int32_t pool_height, int32_t pool_width,
                                   const int8_t *x, const unit_sparse_s8 *sparse, const unit_requant_s8 *requant,
                                   int8_t *y, int32_t *scratch, unit_counts *counts) {
    const unit_conv2d_params *p = params;
    unit__conv_s8 g;
    unit__sparse_out_s8 q;
    int32_t n, o, py, dy, oy, ox, nnz_total = 0, inner_first, inner_end, inner_origin, group_plane, row_step,
        last_row, pooled_height, pooled_width, used_width, used_height, window_rows, window_step, direct_first = 0,
        direct_end = 0;
    int64_t zero_activation = 0;
    (void)unit__sparse_store_s8; /* the header's per-output store: the pooled rows take their own */
    /* weights: a non-null stand-in for the shared argument check (the records are checked below) */
    int32_t status = unit__conv2d_s8_begin(params, x, (const UNIT_TABLE int8_t *)sparse, requant, y, scratch, &g);
    if (status != UNIT_OK) {
        return status;
    }
    status = unit__sparse_check_s8(p, &g, sparse, &nnz_total);
    if (status != UNIT_OK) {
        return status;
    }
    status = unit__pool_args_s8(p, &g, pool_height, pool_width, &pooled_height, &pooled_width);
    if (status != UNIT_OK) {
        return status; /* the scratch (unit_conv2d_s8_scratch_size) holds pool_height rows */
    }
    used_width = pooled_width * pool_width;
    used_height = pooled_height * pool_height;
    group_plane = g.group_in * g.plane;
    q.act_min = (int8_t)requant->act_min;
    q.act_max = (int8_t)requant->act_max;
    inner_first = unit__ceil_div(p->pad_left, p->stride_x);
    inner_end = unit__floor_div(p->in_width - 1 + p->pad_left - (p->kernel_width - 1) * p->dilation_x, p->stride_x) + 1;
    inner_end = inner_end > used_width ? used_width : inner_end;
    inner_first = inner_first > used_width ? used_width : inner_first;
    inner_end = inner_end < inner_first ? inner_first : inner_end;
    inner_origin = inner_first * p->stride_x - p->pad_left;
    row_step = p->stride_y * p->in_width;
    window_rows = pool_height * p->stride_y; /* input rows from one pooled row to the next */
    window_step = window_rows * p->in_width;
    last_row = (p->kernel_height - 1) * p->dilation_y;
    if (inner_first == 0 && inner_end == used_width && used_width > 0) {
        /* the pooled rows whose convolution rows all lie inside the input, every column a whole
         * field: [direct_first, direct_end), the runs alone (no per-column set-up) */
        const int32_t full_first = unit__ceil_div(p->pad_top, p->stride_y);
        const int32_t full_end = unit__floor_div(p->in_height - 1 + p->pad_top - last_row, p->stride_y) + 1;
        direct_first = unit__ceil_div(full_first, pool_height);
        direct_end = unit__floor_div(full_end, pool_height);
        direct_end = direct_end > pooled_height ? pooled_height : direct_end;
    }
    for (n = 0; n < p->batch; n++) {
        const int8_t *x_group = x + (ptrdiff_t)n * p->in_channels * g.plane;
        const UNIT_TABLE int16_t *records = sparse->records;
        const UNIT_TABLE uint8_t *taps = sparse->taps;
        int8_t *y_row = y + (ptrdiff_t)n * p->out_channels * pooled_height * pooled_width;
        int32_t in_group = 0;
        for (o = 0; o < p->out_channels; o++) {
            const int32_t nnz = (int32_t)(uint16_t)UNIT_READ_S16((const UNIT_TABLE int16_t *)sparse->nonzeros + o);
            int32_t first_y = -p->pad_top, row_y = -p->pad_top * p->in_width, base = 0;
            q.bias = unit__bias_s8(requant, o);
            q.multiplier = UNIT_READ_S32(requant->multiplier + o);
            q.shift = UNIT_READ_S8(requant->shift + o);
#if UNIT__DOT_ASM
            unit__requant_run_init_s8(&q.run, q.multiplier, q.shift, q.act_min, q.act_max);
            q.ready = 1;
            /* the channel's domain: the interior runs' words (AVR: assembly runs of at most
             * UNIT__SPARSE_AVR_MAX records; else the plain sums, value = bias - word) */
#if defined(__AVR__)
            base = nnz > 0 && nnz <= UNIT__SPARSE_AVR_MAX ? unit__dot_base_s8(q.bias, nnz) : q.bias;
#else
            base = q.bias;
#endif
            q.run.base = base;
#endif
            (void)base;
            for (py = 0; py < pooled_height; py++, y_row += pooled_width) {
                int32_t *acc = scratch;
#if UNIT__DOT_ASM && !UNIT_S8_COUNTS
#if defined(__AVR__)
                const int direct = nnz > 0 && nnz <= UNIT__SPARSE_AVR_MAX && py >= direct_first && py < direct_end;
#else
                const int direct = nnz > 0 && p->stride_x <= 0x7FFF && py >= direct_first && py < direct_end;
#endif
                if (direct) { /* whole fields only: the assembly runs, their words in the channel's domain */
                    const int8_t *x_run = x_group + row_y + inner_origin;
                    for (dy = 0; dy < pool_height; dy++, x_run += row_step, acc += used_width) {
                        (void)unit__sparse_run_s8(acc, x_run, records, nnz, used_width, (ptrdiff_t)p->stride_x);
                    }
                    first_y += window_rows;
                    row_y += window_step;
                }
#else
                const int direct = 0;
                (void)direct_first;
                (void)direct_end;
                (void)window_step;
                (void)window_rows;
#endif
                for (dy = direct ? pool_height : 0; dy < pool_height;
                     dy++, first_y += p->stride_y, row_y += row_step, acc += used_width) {
                    const int rows_inside = first_y >= 0 && first_y + last_row < p->in_height;
                    uint8_t ky0 = 0, ky1 = (uint8_t)p->kernel_height;
                    if (!rows_inside) { /* the kernel rows inside the input, for the clipped fields */
                        unit__sparse_inside_s8(first_y, p->kernel_height, p->in_height, p->dilation_y, &ky0, &ky1);
                    }
                    for (ox = 0; ox < used_width;) {
                        if (rows_inside && ox == inner_first && inner_end > inner_first) { /* whole fields */
                            const int32_t count = inner_end - ox;
                            int assembly = 0;
#if UNIT_S8_COUNTS
                            int32_t i, k;
                            for (i = 0; i < count; i++) {
                                for (k = 0; k < nnz; k++) {
                                    zero_activation += x_group[row_y + inner_origin + i * p->stride_x +
                                                               (int32_t)(uint16_t)UNIT_READ_S16(records + 2 * k)] == 0;
                                }
                            }
#endif
                            if (nnz > 0) {
                                assembly = unit__sparse_run_s8(acc + ox, x_group + row_y + inner_origin, records, nnz,
                                                               count, (ptrdiff_t)p->stride_x);
                            } else {
                                unit__fill_s32(acc + ox, count, 0);
                            }
#if UNIT__DOT_ASM && UNIT__DOT_BIAS != 0
                            if (!assembly) { /* plain sums (the C run) */
                                unit__pool_rewrite_s8(acc + ox, count, q.bias, assembly ? nnz : 0, base);
                            }
#else
                            (void)assembly;
#endif
                            ox += count;
                        } else { /* a field clipped by the padding (or a row outside): the taps inside */
                            const int32_t first_x = ox * p->stride_x - p->pad_left;
                            acc[ox] = unit__sparse_clipped_s8(p, x_group, row_y + first_x, first_x, ky0, ky1, records,
                                                              taps, nnz, &zero_activation);
#if UNIT__DOT_ASM && UNIT__DOT_BIAS != 0
                            unit__pool_rewrite_s8(acc + ox, 1, q.bias, 0, base);
#endif
                            ox++;
                        }
                    }
                }
                unit__pool_best_s8(scratch, (ptrdiff_t)pooled_width, (ptrdiff_t)pool_height, (ptrdiff_t)pool_width,
                                   (ptrdiff_t)used_width);
#if UNIT__DOT_ASM
                for (ox = 0; ox < pooled_width; ox += 255) {
                    UNIT__REQUANTIZE_RUN(y_row + ox, scratch + ox, pooled_width - ox < 255 ? pooled_width - ox : 255,
                                         &q.run);
                }
#else
                for (ox = 0; ox < pooled_width; ox++) {
                    y_row[ox] = unit__requantize_clamp_s8((int32_t)((uint32_t)q.bias + (uint32_t)scratch[ox]),
                                                          q.multiplier, q.shift, q.act_min, q.act_max);
                }
#endif
            }
#if UNIT_S8_COUNTS
            /* the zero activations of the positions the pool drops (not computed) */
            for (oy = 0; oy < g.out_height; oy++) {
                const int32_t fy = oy * p->stride_y - p->pad_top;
                uint8_t ky0, ky1;
                unit__sparse_inside_s8(fy, p->kernel_height, p->in_height, p->dilation_y, &ky0, &ky1);
                for (ox = oy < used_height ? used_width : 0; ox < g.out_width; ox++) {
                    const int32_t fx = ox * p->stride_x - p->pad_left;
                    (void)unit__sparse_clipped_s8(p, x_group, fy * p->in_width + fx, fx, ky0, ky1, records, taps, nnz,
                                                  &zero_activation);
                }
            }
#else
            (void)oy;
            (void)used_height;
#endif
            unit__sparse_next_channel_s8(&records, &taps, nnz, &in_group, g.group_out, &x_group, group_plane);
        }
    }
#if UNIT_S8_COUNTS
    unit__sparse_counts_s8(counts, p, &g, nnz_total, zero_activation);
#else
    (void)counts;
    (void)zero_activation;
#endif
    return UNIT_OK;
}
