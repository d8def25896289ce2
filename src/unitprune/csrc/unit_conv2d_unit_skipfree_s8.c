/* SPDX-License-Identifier: MIT */
/* unit_conv2d_unit_skipfree_s8.c -- int8 UnIT convolution without a test per skipped connection
 * (see unit_kernels_s8.h; the sorted lists and the tap loops in unit_internal_skipfree_s8.h). */
#include "unit_internal_skipfree_s8.h"

int32_t unit_conv2d_unit_skipfree_s8(const unit_conv2d_params *params, const int8_t *x,
                                     const UNIT_TABLE int8_t *weight, const UNIT_TABLE uint8_t *tau,
                                     const unit_requant_s8 *requant, int8_t *y, int32_t *scratch, unit_counts *counts) {
    unit__conv_s8 g;
    unit__skipfree_parts_s8 l;
    unit__skipfree_call_s8 s;
    unit__skipfree_tally_s8 tally = {0, 0, 0, 0};
    int32_t status, n, o, c;
    uint8_t *bytes = (uint8_t *)scratch;
    uint16_t *first;
    int16_t *row_map, *col_map;
    uint8_t *entries;
    if (tau == 0) {
        return UNIT_ERR_ARGUMENT;
    }
    status = unit__conv2d_s8_begin(params, x, weight, requant, y, scratch, &g);
    if (status != UNIT_OK) {
        return status;
    }
    unit__skipfree_layout_s8(params, g.out_height, g.out_width, &l);
    if (l.total < 0) {
        return UNIT_ERR_ARGUMENT;
    }
    first = (uint16_t *)(void *)(bytes + l.first);
    row_map = (int16_t *)(void *)(bytes + l.row_map);
    col_map = (int16_t *)(void *)(bytes + l.col_map);
    entries = bytes + l.entries;
    unit__skipfree_map_s8(row_map, params->kernel_height, params->in_height, g.out_height, params->stride_y,
                          params->dilation_y, params->pad_top, g.out_width);
    unit__skipfree_map_s8(col_map, params->kernel_width, params->in_width, g.out_width, params->stride_x,
                          params->dilation_x, params->pad_left, 1);
    s.acc = scratch;
    s.row_map = row_map;
    s.col_map = col_map;
    s.in_height = (int16_t)params->in_height;
    s.in_width = (int16_t)params->in_width;
    s.kernel_height = (int16_t)params->kernel_height;
    s.kernel_width = (int16_t)params->kernel_width;
    s.positions = (uint16_t)g.positions;
    s.fast = 0;
#if UNIT__SKIPFREE_AVR
    s.fast = (uint8_t)unit__skipfree_avr_fits(params, g.out_height, g.out_width);
#endif
    /* the 8-bit fields only matter where s.fast (then they hold their values exactly) */
    s.dilation_y = (uint8_t)params->dilation_y;
    s.dilation_x = (uint8_t)params->dilation_x;
    s.pad_top = (uint8_t)params->pad_top;
    s.pad_left = (uint8_t)params->pad_left;
    s.out_height = (uint8_t)g.out_height;
    s.out_width = (uint8_t)g.out_width;
    for (n = 0; n < params->batch; n++) {
        const int8_t *x_sample = x + (ptrdiff_t)n * params->in_channels * g.plane;
        int8_t *y_sample = y + (ptrdiff_t)n * params->out_channels * g.positions;
        for (c = 0; c < params->in_channels; c++) {
            (void)unit__skipfree_sort_s8(x_sample + (ptrdiff_t)c * g.plane, params->in_height, params->in_width,
                                         first + 128 * c, entries + 3 * c * g.plane);
        }
        for (o = 0; o < params->out_channels; o++) {
            const int32_t c0 = (o / g.group_out) * g.group_in;
            const UNIT_TABLE int8_t *w = weight + (ptrdiff_t)o * g.group_in * g.taps;
            const UNIT_TABLE uint8_t *t = tau + (ptrdiff_t)o * g.group_in * g.taps;
            unit__fill_s32(scratch, g.positions, unit__bias_s8(requant, o));
            for (c = c0; c < c0 + g.group_in; c++, w += g.taps, t += g.taps) {
                unit__skipfree_channel_s8(&s, w, t, first + 128 * c, entries + 3 * c * g.plane, &tally);
            }
            unit__store_channel_s8(scratch, g.positions, requant, o, y_sample + (ptrdiff_t)o * g.positions);
        }
    }
#if UNIT_S8_COUNTS
    if (counts != 0) {
        unit__counts_set(counts, (int64_t)params->batch * params->out_channels * g.positions * g.group_in * g.taps,
                         tally.zero_weight, tally.zero_activation, tally.executed, tally.visits, 0);
    }
#else
    (void)counts;
    (void)tally;
#endif
    return UNIT_OK;
}
