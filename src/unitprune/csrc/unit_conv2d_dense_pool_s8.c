/* SPDX-License-Identifier: MIT */
/* unit_conv2d_dense_pool_s8.c -- int8 convolution, dense variant, followed by a max-pool whose window
 * equals its stride (see unit_kernels_s8.h): y = maxpool(clamp(requantize(acc))) computed as
 * clamp(requantize(max over the window of acc)), one output stage per pooled output. Exact because
 * the output stage is non-decreasing in the accumulator for a multiplier >= 0 (every multiplier the
 * kernels accept): MultiplyByQuantizedMultiplier rounds half away from zero twice (both monotone), the
 * zero point and the clamp keep the order (docs/kernels.md, "Max-pool before the output stage").
 *
 * Per output channel and pooled row, the pool_height convolution rows of the window are accumulated
 * into the scratch (pool_height rows of pooled_width * pool_width int32 accumulators) by the runs of
 * the dense kernel (unit_internal_dense_row_s8.h: assembly on AVR and MSP430, the portable C run
 * elsewhere), each run's stored values turned into accumulators; then each window's maximum is
 * requantized (UNIT__REQUANTIZE_RUN on AVR and MSP430). The rows and columns a floor-mode pool drops
 * are not computed. */
#include "unit_internal_dense_row_s8.h"
#include "unit_internal_pool_s8.h"

#if UNIT__DOT_ASM
/* `rows` pooled rows whose windows' convolution rows lie wholly inside the input, every column an
 * interior one (inputs `window_step` apart per pooled row, outputs `pooled_width` apart): per pooled
 * row the pool's assembly runs, the windows' best and the output stage, nothing else (the per-row
 * set-up of the general loop, 32-bit arithmetic, costs hundreds of cycles per row on AVR and MSP430;
 * unit__dense_interior_s8 of the dense kernel, per pooled row). */
static void unit__pool_interior_s8(const int8_t *x, ptrdiff_t row_step, const UNIT_TABLE int8_t *w,
                                   const unit__dot_run_s8 *run, const unit__requant_run_s8 *store, int8_t *y,
                                   ptrdiff_t pooled_width, ptrdiff_t pool_height, ptrdiff_t pool_width, int16_t rows,
                                   int32_t *scratch) {
    const ptrdiff_t used = (ptrdiff_t)run->count;
    for (; rows > 0; rows--, y += pooled_width) {
        int32_t *acc = scratch;
        ptrdiff_t dy;
        for (dy = pool_height; dy != 0; dy--, acc += used, x += row_step) {
            UNIT__DOT_RUN(acc, x, w, run);
        }
        unit__pool_best_s8(scratch, pooled_width, pool_height, pool_width, used);
        UNIT__REQUANTIZE_RUN(y, scratch, pooled_width, store);
    }
}
#endif

int32_t unit_conv2d_dense_pool_s8(const unit_conv2d_params *params, int32_t pool_height, int32_t pool_width,
                                  const int8_t *x, const UNIT_TABLE int8_t *weight, const unit_requant_s8 *requant,
                                  int8_t *y, int32_t *scratch, unit_counts *counts) {
    const unit_conv2d_params *p = params;
    unit__conv_s8 g;
    unit__dense_row_s8 row;
    int32_t n, o, py, dy, ox, inner_first, inner_end, weights_per_output, row_step, group_plane, pooled_height,
        pooled_width, used_width, window_step, window_rows, first_y;
    int32_t full_channel_skip, full_field_rows, full_field_macs, full_last_row;
    int fast;
#if UNIT__DOT_ASM
    unit__dot_run_s8 inner; /* the interior run of a convolution row whose kernel rows are all inside */
    int32_t inner_x = 0, base = 0, direct_first = 0, direct_end = 0;
    int inner_direct, pool_direct = 0;
#endif
    int same_domain;
    int32_t status = unit__conv2d_s8_begin(params, x, weight, requant, y, scratch, &g);
    if (status != UNIT_OK) {
        return status;
    }
    status = unit__pool_args_s8(p, &g, pool_height, pool_width, &pooled_height, &pooled_width);
    if (status != UNIT_OK) {
        return status; /* the scratch (unit_conv2d_s8_scratch_size) holds pool_height rows */
    }
    used_width = pooled_width * pool_width; /* the columns the windows cover */
    window_rows = pool_height * p->stride_y; /* input rows from one pooled row to the next */
    window_step = window_rows * p->in_width;
    weights_per_output = g.group_in * g.taps;
    row.kernel_rows_span = p->dilation_y * p->in_width;
    row_step = p->stride_y * p->in_width;
    group_plane = g.group_in * g.plane;
    full_channel_skip = g.plane - p->kernel_height * row.kernel_rows_span;
    full_field_rows = g.group_in * p->kernel_height;
    full_field_macs = full_field_rows * p->kernel_width;
    full_last_row = (p->kernel_height - 1) * p->dilation_y;
    row.run.channels = (unit__dot_field)g.group_in;
    row.run.x_next = (unit__dot_field)(p->stride_x - group_plane);
    row.act_min = (int8_t)requant->act_min;
    row.act_max = (int8_t)requant->act_max;
    fast = p->dilation_x == 1 && g.group_in <= 255 && p->kernel_height <= 255 && p->kernel_width <= 255 &&
           (p->kernel_height - 1) * p->kernel_width <= 255;
    /* AVR: the interior runs' words need no rewrite (elsewhere no run's words do) */
    same_domain = UNIT__DOT_BIAS == 0 || full_field_macs <= UNIT__POOL_FIELD_MAX;
    (void)same_domain;
    /* output columns whose whole kernel row lies inside the input, within the pooled columns */
    if (p->stride_x == 1) {
        inner_first = p->pad_left;
        inner_end = p->in_width + p->pad_left - (p->kernel_width - 1) * p->dilation_x;
    } else {
        inner_first = unit__ceil_div(p->pad_left, p->stride_x);
        inner_end =
            unit__floor_div(p->in_width - 1 + p->pad_left - (p->kernel_width - 1) * p->dilation_x, p->stride_x) + 1;
    }
    if (inner_end > used_width) {
        inner_end = used_width;
    }
    if (inner_first > used_width) {
        inner_first = used_width;
    }
    if (inner_end < inner_first) {
        inner_end = inner_first;
    }
#if UNIT__DOT_ASM
    inner_direct = fast && inner_end > inner_first && inner_end - inner_first <= 255 && full_field_macs > 0;
    if (inner_direct) {
        inner.count = (unit__dot_field)(inner_end - inner_first);
        inner.channels = row.run.channels;
        inner.rows = (unit__dot_field)p->kernel_height;
        inner.len = (unit__dot_field)p->kernel_width;
        inner.x_row_skip = (unit__dot_field)(row.kernel_rows_span - p->kernel_width);
        inner.x_channel_skip = (unit__dot_field)full_channel_skip;
        inner.x_next = row.run.x_next;
        inner.w_row_skip = 0;
        inner.w_channel_skip = 0;
        inner.mode = unit__dot_mode_s8(&inner);
#if defined(__MSP430__)
        if (__unit_dot_nonneg_s8(x, (uint16_t)(p->batch * p->in_channels * g.plane))) { /* the input fits 64 KB */
            inner.mode |= UNIT__DOT_NONNEG;
        }
#endif
        inner_x = p->stride_x == 1 ? inner_first : inner_first * p->stride_x;
        /* the pooled rows whose convolution rows all lie inside the input, every column interior:
         * [direct_first, direct_end), one loop per channel (unit__pool_interior_s8) */
        if (same_domain && inner_first == 0 && inner_end == used_width) {
            const int32_t full_first = unit__ceil_div(p->pad_top, p->stride_y);
            const int32_t full_end = unit__floor_div(p->in_height - 1 + p->pad_top - full_last_row, p->stride_y) + 1;
            direct_first = unit__ceil_div(full_first, pool_height);
            direct_end = unit__floor_div(full_end, pool_height);
            direct_end = direct_end > pooled_height ? pooled_height : direct_end;
            pool_direct = direct_end > direct_first && direct_end - direct_first <= 32767;
        }
    }
#endif
    for (n = 0; n < p->batch; n++) {
        const int8_t *x_group = x + (ptrdiff_t)n * p->in_channels * g.plane;
        const UNIT_TABLE int8_t *w_out = weight;
        int8_t *y_row = y + (ptrdiff_t)n * p->out_channels * pooled_height * pooled_width;
        int32_t in_group = 0;
        for (o = 0; o < p->out_channels; o++, w_out += weights_per_output) {
            const int8_t *x_window = x_group - (ptrdiff_t)p->pad_top * p->in_width - p->pad_left;
            row.bias = unit__bias_s8(requant, o);
            row.multiplier = UNIT_READ_S32(requant->multiplier + o);
            row.shift = UNIT_READ_S8(requant->shift + o);
#if UNIT__DOT_ASM
            unit__requant_run_init_s8(&row.store, row.multiplier, row.shift, row.act_min, row.act_max);
            base = same_domain ? unit__dot_base_s8(row.bias, full_field_macs) : 0;
            row.store.base = base;
#if defined(__MSP430__)
            if (requant->thresholds != 0) { /* the channel's threshold table (unit_internal_requant_s8.h) */
                row.store.thresholds = requant->thresholds + (ptrdiff_t)o * 128;
            }
#endif
#endif
#if UNIT__DOT_ASM
            if (pool_direct) {
                unit__pool_interior_s8(x_window + (ptrdiff_t)direct_first * window_step, (ptrdiff_t)row_step, w_out,
                                       &inner, &row.store, y_row + (ptrdiff_t)direct_first * pooled_width,
                                       (ptrdiff_t)pooled_width, (ptrdiff_t)pool_height, (ptrdiff_t)pool_width,
                                       (int16_t)(direct_end - direct_first), scratch);
            }
#endif
            first_y = -p->pad_top;
            for (py = 0; py < pooled_height; py++, x_window += window_step, y_row += pooled_width) {
                const int8_t *x_full = x_window;
                int32_t *acc = scratch;
#if UNIT__DOT_ASM
                if (pool_direct && py >= direct_first && py < direct_end) { /* done by unit__pool_interior_s8 */
                    first_y += window_rows;
                    continue;
                }
#endif
                for (dy = 0; dy < pool_height; dy++, first_y += p->stride_y, x_full += row_step, acc += used_width) {
                    const int full = first_y >= 0 && first_y + full_last_row < p->in_height;
                    unit__dense_row_field_s8(p, &row, full, first_y, x_full, w_out, &g, full_channel_skip,
                                             full_field_rows, full_field_macs);
                    for (ox = 0; ox < used_width;) {
                        int32_t ox_offset, count = 1, kx0 = 0, kx1 = p->kernel_width;
#if UNIT__DOT_ASM
                        if (full && inner_direct && ox == inner_first) { /* the interior: one run */
                            UNIT__DOT_RUN(acc + ox, x_full + inner_x, w_out, &inner);
#if UNIT__DOT_BIAS != 0
                            if (!same_domain) {
                                unit__pool_rewrite_s8(acc + ox, inner_end - ox, row.bias, full_field_macs, base);
                            }
#endif
                            ox = inner_end;
                            continue;
                        }
#endif
                        ox_offset = p->stride_x == 1 ? ox : ox * p->stride_x;
                        if (ox >= inner_first && ox < inner_end) {
                            count = inner_end - ox < 255 ? inner_end - ox : 255;
                        } else {
                            unit__field_range_s8(ox_offset - p->pad_left, p->kernel_width, p->in_width,
                                                 p->dilation_x, &kx0, &kx1);
                        }
                        {
                            const int32_t macs =
                                unit__dense_accumulate_s8(p, &row, ox_offset, count, kx0, kx1, acc + ox, fast);
#if UNIT__DOT_ASM && UNIT__DOT_BIAS != 0
                            if (!same_domain || macs != full_field_macs) {
                                unit__pool_rewrite_s8(acc + ox, count, row.bias, macs, base);
                            }
#else
                            (void)macs;
#endif
                        }
                        ox += count;
                    }
                }
                unit__pool_best_s8(scratch, (ptrdiff_t)pooled_width, (ptrdiff_t)pool_height, (ptrdiff_t)pool_width,
                                   (ptrdiff_t)used_width);
#if UNIT__DOT_ASM
                for (ox = 0; ox < pooled_width; ox += 255) { /* the output stage of the channel's domain */
                    UNIT__REQUANTIZE_RUN(y_row + ox, scratch + ox, pooled_width - ox < 255 ? pooled_width - ox : 255,
                                         &row.store);
                }
#else
                for (ox = 0; ox < pooled_width; ox++) {
                    y_row[ox] = unit__requantize_clamp_s8((int32_t)((uint32_t)row.bias + (uint32_t)scratch[ox]),
                                                          row.multiplier, row.shift, row.act_min, row.act_max);
                }
#endif
            }
            if (++in_group == g.group_out) { /* the next output channel reads the next group's channels */
                in_group = 0;
                x_group += group_plane;
            }
        }
    }
#if UNIT_S8_COUNTS
    if (counts != 0) { /* the layer's MACs, as the integer reference counts the convolution */
        int64_t dense = (int64_t)p->batch * p->out_channels * g.positions * weights_per_output;
        unit__counts_set(counts, dense, 0, 0, dense, 0, 0);
    }
#else
    (void)counts;
#endif
    return UNIT_OK;
}
