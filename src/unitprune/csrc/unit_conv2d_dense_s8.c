/* SPDX-License-Identifier: MIT */
/* unit_conv2d_dense_s8.c -- int8 convolution, dense variant (see unit_kernels_s8.h), output-stationary:
 * per output channel and output row, the row's outputs are computed in runs (unit_internal_dot_s8.h),
 * each output's accumulator in registers over its whole receptive field, then requantized. The
 * outputs whose field the left/right padding clips are runs of one output with the clipped field;
 * the top/bottom padding clips the kernel rows of a whole output row. On AVR and MSP430 the runs are
 * assembly routines (UNIT_PORTABLE_KERNELS=1 keeps the C loop everywhere). The set-up of rows and
 * runs avoids multiplications and divisions (library calls on AVR and MSP430): what a row of the
 * plane's interior needs is computed once per call, pointers advance by additions. */
#include "unit_internal_dense_row_s8.h"

/* The output stage of a run: y[i] = clamp(requantize(base -/+ stored[i])) (unit__dot_value_s8 for
 * an assembly run, base + stored[i] for the C run); on AVR and MSP430 one assembly loop
 * (UNIT__REQUANTIZE_RUN, unit_internal_requant_s8.h). Inlined, as the run below: as separate
 * functions each saved and restored most registers once per run. */
static inline void unit__dense_store_s8(int8_t *y, const int32_t *stored, int32_t count, int32_t base,
                                                   int assembly, unit__dense_row_s8 *row) {
    const int32_t multiplier = row->multiplier, shift = row->shift;
    const int8_t act_min = row->act_min, act_max = row->act_max;
    int8_t *end = y + count;
#if UNIT__DOT_ASM
    if (assembly) { /* count <= 255 */
        row->store.base = base;
        UNIT__REQUANTIZE_RUN(y, stored, count, &row->store);
        return;
    }
#endif
    while (y != end) {
        const int32_t acc = assembly ? unit__dot_value_s8(base, *stored++) : base + *stored++;
        *y++ = unit__requantize_clamp_s8(acc, multiplier, shift, act_min, act_max);
    }
}

/* Outputs [ox, ox + count) of one output row (input offset ox_offset = ox * stride_x), their fields
 * clipped to kernel columns [kx0, kx1). */
static inline void unit__dense_run_s8(const unit_conv2d_params *p, unit__dense_row_s8 *row,
                                                 int32_t ox_offset, int32_t count, int32_t kx0, int32_t kx1,
                                                 int8_t *y, int32_t *scratch, int fast) {
    const int32_t n = unit__dense_accumulate_s8(p, row, ox_offset, count, kx0, kx1, scratch, fast);
    unit__dense_store_s8(y, scratch, count, unit__dot_base_s8(row->bias, n), n != 0, row);
}

#if UNIT__DOT_ASM
/* The interiors of `rows` consecutive output rows (input `x_step` apart, outputs `y_step` apart)
 * whose kernel rows all lie inside the input: per row one assembly run with the descriptor `run`
 * and its output stage. A loop of its own, with the descriptor computed once per call: the
 * per-run set-up of unit__dense_run_s8 (32-bit arithmetic) costs hundreds of cycles per row on
 * AVR and MSP430. */
static void unit__dense_interior_s8(const int8_t *x, ptrdiff_t x_step, const UNIT_TABLE int8_t *w,
                                    const unit__dot_run_s8 *run, unit__requant_run_s8 *store, int8_t *y,
                                    ptrdiff_t y_step, unit__dot_field rows, int32_t *scratch) {
    while (rows-- > 0) {
        UNIT__DOT_RUN(scratch, x, w, run);
        UNIT__REQUANTIZE_RUN(y, scratch, run->count, store);
        x += x_step;
        y += y_step;
    }
}
#endif

int32_t unit_conv2d_dense_s8(const unit_conv2d_params *params, const int8_t *x, const UNIT_TABLE int8_t *weight,
                             const unit_requant_s8 *requant, int8_t *y, int32_t *scratch, unit_counts *counts) {
    const unit_conv2d_params *p = params;
    unit__conv_s8 g;
    unit__dense_row_s8 row;
    int32_t n, o, oy, ox, inner_first, inner_end, weights_per_output, row_step, group_plane;
    int32_t full_channel_skip, full_field_rows, full_field_macs, full_last_row;
    int fast;
#if UNIT__DOT_ASM
    unit__dot_run_s8 inner; /* the interior run of an output row whose kernel rows are all inside */
    int32_t inner_x = 0, full_first = 0, full_end = 0;
    int inner_direct, whole_rows = 0;
#endif
    int32_t status = unit__conv2d_s8_begin(params, x, weight, requant, y, scratch, &g);
    if (status != UNIT_OK) {
        return status;
    }
    weights_per_output = g.group_in * g.taps;
    row.kernel_rows_span = p->dilation_y * p->in_width; /* input distance of two kernel rows */
    row_step = p->stride_y * p->in_width;               /* input distance of two output rows */
    group_plane = g.group_in * g.plane;
    full_channel_skip = g.plane - p->kernel_height * row.kernel_rows_span;
    full_field_rows = g.group_in * p->kernel_height;
    full_field_macs = full_field_rows * p->kernel_width;
    full_last_row = (p->kernel_height - 1) * p->dilation_y; /* input row of the last kernel row, from the first */
    row.run.channels = (unit__dot_field)g.group_in;
    row.run.x_next = (unit__dot_field)(p->stride_x - group_plane);
    row.act_min = (int8_t)requant->act_min;
    row.act_max = (int8_t)requant->act_max;
    /* the assembly runs take 8-bit counts and weight skips, contiguous kernel columns */
    fast = p->dilation_x == 1 && g.group_in <= 255 && p->kernel_height <= 255 && p->kernel_width <= 255 &&
           (p->kernel_height - 1) * p->kernel_width <= 255;
    /* output columns whose whole kernel row lies inside the input: [inner_first, inner_end) */
    inner_first = unit__inner_first(p);
    inner_end = unit__inner_end(p, g.out_width, inner_first);
#if UNIT__DOT_ASM
    /* A row whose kernel rows are all inside runs its interior [inner_first, inner_end) with this
     * descriptor, computed once per call (what unit__dense_run_s8 computes per run; on AVR and
     * MSP430 the 32-bit set-up of a run costs hundreds of cycles). */
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
        /* the output rows whose kernel rows all lie inside: [full_first, full_end) */
        full_first = unit__ceil_div(p->pad_top, p->stride_y);
        full_end = unit__floor_div(p->in_height - 1 + p->pad_top - full_last_row, p->stride_y) + 1;
        if (full_end > g.out_height) {
            full_end = g.out_height;
        }
        if (full_end < full_first) {
            full_end = full_first;
        }
        inner_direct = full_end - full_first <= 32767;
        whole_rows = inner_first == 0 && inner_end == g.out_width; /* no clipped columns */
    }
#endif
    for (n = 0; n < p->batch; n++) {
        const int8_t *x_group = x + (ptrdiff_t)n * p->in_channels * g.plane;
        const UNIT_TABLE int8_t *w_out = weight;
        int8_t *y_row = y + (ptrdiff_t)n * p->out_channels * g.positions;
        int32_t in_group = 0;
        for (o = 0; o < p->out_channels; o++, w_out += weights_per_output) {
            int32_t first_y = -p->pad_top; /* input row of kernel row 0 */
            const int8_t *x_full = x_group - (ptrdiff_t)p->pad_top * p->in_width - p->pad_left;
            row.bias = unit__bias_s8(requant, o);
            row.multiplier = UNIT_READ_S32(requant->multiplier + o);
            row.shift = UNIT_READ_S8(requant->shift + o);
#if UNIT__DOT_ASM
            unit__requant_run_init_s8(&row.store, row.multiplier, row.shift, row.act_min, row.act_max);
#if defined(__MSP430__)
            if (requant->thresholds != 0) { /* the channel's threshold table (unit_internal_requant_s8.h) */
                row.store.thresholds = requant->thresholds + (ptrdiff_t)o * 128;
            }
#endif
            if (inner_direct && full_end > full_first) {
                row.store.base = unit__dot_base_s8(row.bias, full_field_macs);
                unit__dense_interior_s8(x_full + (ptrdiff_t)(full_first * row_step + inner_x), (ptrdiff_t)row_step, w_out,
                                        &inner, &row.store, y_row + (ptrdiff_t)(full_first * g.out_width + inner_first),
                                        (ptrdiff_t)g.out_width, (unit__dot_field)(full_end - full_first), scratch);
            }
#endif
            for (oy = 0; oy < g.out_height; oy++, first_y += p->stride_y, x_full += row_step, y_row += g.out_width) {
                const int full = first_y >= 0 && first_y + full_last_row < p->in_height; /* every kernel row inside */
#if UNIT__DOT_ASM
                if (full && inner_direct && whole_rows) {
                    continue; /* done by unit__dense_interior_s8 */
                }
#endif
                unit__dense_row_field_s8(p, &row, full, first_y, x_full, w_out, &g, full_channel_skip,
                                         full_field_rows, full_field_macs);
                for (ox = 0; ox < g.out_width;) {
#if UNIT__DOT_ASM
                    if (full && inner_direct && ox == inner_first) {
                        ox = inner_end; /* done by unit__dense_interior_s8 */
                        continue;
                    }
#endif
                    const int32_t ox_offset = p->stride_x == 1 ? ox : ox * p->stride_x;
                    int32_t count = 1, kx0 = 0, kx1 = p->kernel_width;
                    if (ox >= inner_first && ox < inner_end) {
                        count = inner_end - ox < 255 ? inner_end - ox : 255;
                    } else {
                        unit__field_range_s8(ox_offset - p->pad_left, p->kernel_width, p->in_width, p->dilation_x,
                                             &kx0, &kx1);
                    }
                    unit__dense_run_s8(p, &row, ox_offset, count, kx0, kx1, y_row + ox, scratch, fast);
                    ox += count;
                }
            }
            if (++in_group == g.group_out) { /* the next output channel reads the next group's channels */
                in_group = 0;
                x_group += group_plane;
            }
        }
    }
#if UNIT_S8_COUNTS
    if (counts != 0) {
        int64_t dense = (int64_t)p->batch * p->out_channels * g.positions * weights_per_output;
        unit__counts_set(counts, dense, 0, 0, dense, 0, 0);
    }
#else
    (void)counts;
#endif
    return UNIT_OK;
}
