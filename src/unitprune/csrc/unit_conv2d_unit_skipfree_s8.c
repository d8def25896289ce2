/* SPDX-License-Identifier: MIT */
/* unit_conv2d_unit_skipfree_s8.c -- int8 UnIT convolution without a test per skipped connection
 * (see unit_kernels_s8.h; the sorted lists and the tap loop in unit_internal_skipfree_s8.h). */
#include "unit_internal_skipfree_s8.h"

int32_t unit_conv2d_unit_skipfree_s8(const unit_conv2d_params *params, const int8_t *x,
                                     const UNIT_TABLE int8_t *weight, const UNIT_TABLE uint8_t *tau,
                                     const unit_requant_s8 *requant, int8_t *y, int32_t *scratch, unit_counts *counts) {
    unit__conv_s8 g;
    unit__skipfree_parts_s8 l;
    int32_t status, n, o, c, ky, kx;
    uint8_t *bytes = (uint8_t *)scratch;
    int32_t *acc;
    uint16_t *first;
    int16_t *row_map, *col_map;
    uint8_t *entries;
#if UNIT_S8_COUNTS
    int64_t zero_weight = 0, zero_activation = 0, executed = 0, visits = 0;
#endif
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
    acc = scratch;
    first = (uint16_t *)(void *)(bytes + l.first);
    row_map = (int16_t *)(void *)(bytes + l.row_map);
    col_map = (int16_t *)(void *)(bytes + l.col_map);
    entries = bytes + l.entries;
    unit__skipfree_map_s8(row_map, params->kernel_height, params->in_height, g.out_height, params->stride_y,
                          params->dilation_y, params->pad_top, g.out_width);
    unit__skipfree_map_s8(col_map, params->kernel_width, params->in_width, g.out_width, params->stride_x,
                          params->dilation_x, params->pad_left, 1);
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
            unit__fill_s32(acc, g.positions, unit__bias_s8(requant, o));
            for (c = c0; c < c0 + g.group_in; c++) {
                const uint8_t *list = entries + 3 * c * g.plane;
                const uint16_t *first_c = first + 128 * c;
                for (ky = 0; ky < params->kernel_height; ky++) {
                    const int16_t *rows = row_map + ky * params->in_height;
                    for (kx = 0; kx < params->kernel_width; kx++, w++, t++) {
                        const int8_t wv = UNIT_READ_S8(w);
                        const uint8_t tv = UNIT_READ_U8(t);
                        int32_t kept;
                        if (wv == 0) {
#if UNIT_S8_COUNTS
                            zero_weight += g.positions;
#endif
                            continue;
                        }
#if UNIT_S8_COUNTS
                        { /* the tap's nonzero in-window activations (counted build only) */
                            const int16_t *cols = col_map + kx * params->in_width;
                            int32_t e, nonzero = 0;
                            for (e = 0; e < first_c[0]; e++) {
                                nonzero += (uint16_t)(rows[list[3 * e]] + cols[list[3 * e + 1]]) <
                                           (uint16_t)g.positions;
                            }
                            zero_activation += g.positions - nonzero;
                        }
#endif
                        if (tv >= 128U) {
                            continue; /* no |x| <= 128 exceeds tau */
                        }
                        kept = unit__skipfree_tap_s8(acc, (uint16_t)g.positions, rows,
                                                     col_map + kx * params->in_width, list, first_c[tv], wv);
#if UNIT_S8_COUNTS
                        executed += kept;
                        visits += first_c[tv];
#else
                        (void)kept;
#endif
                    }
                }
            }
            unit__store_channel_s8(acc, g.positions, requant, o, y_sample + (ptrdiff_t)o * g.positions);
        }
    }
#if UNIT_S8_COUNTS
    if (counts != 0) {
        unit__counts_set(counts, (int64_t)params->batch * params->out_channels * g.positions * g.group_in * g.taps,
                         zero_weight, zero_activation,
                         executed, visits, 0);
    }
#else
    (void)counts;
#endif
    return UNIT_OK;
}
