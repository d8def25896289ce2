/* SPDX-License-Identifier: MIT */
/*
 * unit_internal_dense_row_s8.h -- what the output-stationary dense int8 convolutions share (private):
 * the kernel range of a clipped field, the state of one output row's runs and the accumulators of a
 * run (unit_conv2d_dense_s8.c requantizes them; unit_conv2d_dense_pool_s8.c max-pools them first).
 */
#ifndef UNIT_INTERNAL_DENSE_ROW_S8_H
#define UNIT_INTERNAL_DENSE_ROW_S8_H

#include "unit_internal_dot_s8.h"
#include "unit_internal_requant_s8.h"

/* The kernel indices [*k0, *k1) along one axis whose input first + k*dilation lies in [0, size). */
static void unit__field_range_s8(int32_t first, int32_t kernel, int32_t size, int32_t dilation, int32_t *k0,
                                 int32_t *k1) {
    int32_t lo, hi;
    if (dilation == 1) { /* the common case, without a division */
        lo = first >= 0 ? 0 : -first;
        hi = size - first;
    } else {
        lo = first >= 0 ? 0 : unit__ceil_div(-first, dilation);
        hi = size - 1 - first < 0 ? 0 : (size - 1 - first) / dilation + 1;
    }
    *k0 = lo;
    *k1 = hi < kernel ? hi : kernel;
}

/* What the runs of one output row share. */
typedef struct {
    unit__dot_run_s8 run;       /* channels, rows, x_channel_skip, x_next, w_channel_skip set per row */
    const int8_t *x;            /* input of the row's first kernel row at column -pad_left (may point before x) */
    const UNIT_TABLE int8_t *w; /* weights of the output channel from the row's first kernel row */
    int32_t rows;               /* kernel rows inside the input (0: none) */
    int32_t field_rows;         /* channels * rows */
    int32_t field_macs;         /* channels * rows * kernel_width */
    int32_t kernel_rows_span;   /* dilation_y * W */
    int32_t bias, multiplier, shift;
    int8_t act_min, act_max;
#if UNIT__DOT_ASM
    unit__requant_run_s8 store; /* the output channel's output stage (its base set per run) */
#endif
} unit__dense_row_s8;

/* Points row at one output row's field: every kernel row when full (the first kernel row's input row
 * first_y and the last are inside the input), else the kernel rows inside it (possibly none). x_full is
 * the input of kernel row 0 at column -pad_left, w_out the output channel's weights, g the call's
 * geometry; the full_* values are the whole field's (channel skip, channels * kernel rows, MACs). The
 * geometry is read through g, not passed as values: so avr-gcc 5.4 -O2 compiles both kernels to the
 * code they had with this written out in each (cycle tables unchanged). */
static inline void unit__dense_row_field_s8(const unit_conv2d_params *p, unit__dense_row_s8 *row, int full,
                                            int32_t first_y, const int8_t *x_full, const UNIT_TABLE int8_t *w_out,
                                            const unit__conv_s8 *g, int32_t full_channel_skip,
                                            int32_t full_field_rows, int32_t full_field_macs) {
    if (full) {
        row->rows = p->kernel_height;
        row->x = x_full;
        row->w = w_out;
        row->run.x_channel_skip = (unit__dot_field)full_channel_skip;
        row->run.w_channel_skip = 0;
        row->field_rows = full_field_rows;
        row->field_macs = full_field_macs;
    } else {
        int32_t ky0, ky1;
        unit__field_range_s8(first_y, p->kernel_height, p->in_height, p->dilation_y, &ky0, &ky1);
        row->rows = ky1 > ky0 ? ky1 - ky0 : 0;
        row->w = w_out + ky0 * p->kernel_width;
        row->x = x_full + (ptrdiff_t)ky0 * row->kernel_rows_span;
        row->run.x_channel_skip = (unit__dot_field)(g->plane - row->rows * row->kernel_rows_span);
        row->run.w_channel_skip = (unit__dot_field)((p->kernel_height - row->rows) * p->kernel_width);
        row->field_rows = g->group_in * row->rows;
        row->field_macs = row->field_rows * p->kernel_width;
    }
    row->run.rows = (unit__dot_field)row->rows;
}

/* The accumulators of outputs [ox, ox + count) of one output row (input offset ox_offset = ox *
 * stride_x), their fields clipped to kernel columns [kx0, kx1), stored into scratch[0..count) as a
 * run stores them. Returns n, the MACs of each field when an assembly run stored them (the value is
 * then unit__dot_value_s8(unit__dot_base_s8(bias, n), stored)), else 0 (C run, or a field wholly in
 * the padding: the value is bias + stored). */
static inline int32_t unit__dense_accumulate_s8(const unit_conv2d_params *p, unit__dense_row_s8 *row,
                                                int32_t ox_offset, int32_t count, int32_t kx0, int32_t kx1,
                                                int32_t *scratch, int fast) {
    const int32_t len = kx1 - kx0;
    int32_t n = 0;
    if (row->rows > 0 && len > 0) {
        const int32_t column = p->dilation_x == 1 ? kx0 : kx0 * p->dilation_x;
        const int8_t *x = row->x + ox_offset + column;
        unit__dot_run_s8 *r = &row->run;
        r->count = (unit__dot_field)count;
        r->len = (unit__dot_field)len;
        r->x_row_skip = (unit__dot_field)(row->kernel_rows_span - (p->dilation_x == 1 ? len : len * p->dilation_x));
        r->w_row_skip = (unit__dot_field)(p->kernel_width - len);
#if UNIT__DOT_ASM
        if (fast) {
            r->mode = unit__dot_mode_s8(r);
            UNIT__DOT_RUN(scratch, x, row->w + kx0, r);
            n = len == p->kernel_width ? row->field_macs : row->field_rows * len;
        } else
#endif
        {
            (void)fast;
            r->mode = 0;
            unit__dot_run_s8_c(scratch, x, row->w + kx0, r, (ptrdiff_t)p->dilation_x);
        }
    } else {
        unit__fill_s32(scratch, count, 0); /* the field lies in the padding: the bias alone */
    }
    return n;
}

#endif /* UNIT_INTERNAL_DENSE_ROW_S8_H */
