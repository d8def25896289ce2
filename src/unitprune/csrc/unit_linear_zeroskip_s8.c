/* SPDX-License-Identifier: MIT */
/* unit_linear_zeroskip_s8.c -- int8 linear layer skipping zero activations (one test per input:
 * the whole column) and zero weights (one test per weight), as a TTP or FATReLU runtime would
 * (see unit_kernels_s8.h). */
#include "unit_internal_s8.h"

int32_t unit_linear_zeroskip_s8(const int8_t *x, int32_t batch, int32_t in_features, int32_t out_features,
                                const UNIT_TABLE int8_t *weight_t, const unit_requant_s8 *requant, int8_t *y,
                                int32_t *scratch, unit_counts *counts) {
    int32_t n, i;
#if UNIT_S8_COUNTS
    int64_t zero_weight = 0, zero_activation = 0;
#endif
    int32_t status = unit__linear_s8_begin(x, batch, in_features, out_features, weight_t, requant, y, scratch);
    if (status != UNIT_OK) {
        return status;
    }
    for (n = 0; n < batch; n++) {
        const int8_t *x_row = x + (ptrdiff_t)n * in_features;
        const UNIT_TABLE int8_t *column = weight_t;
        unit__linear_init_s8(scratch, out_features, requant);
        for (i = 0; i < in_features; i++, column += out_features) {
            const int8_t xv = x_row[i];
#if UNIT_S8_COUNTS
            int32_t zeros = unit__column_zeros_s8(column, out_features);
            zero_weight += zeros;
            if (xv == 0) {
                zero_activation += out_features - zeros;
            }
#endif
            if (xv == 0) {
                continue;
            }
            unit__column_zeroskip_s8(scratch, column, xv, out_features);
        }
        unit__linear_store_s8(scratch, out_features, requant, y + (ptrdiff_t)n * out_features);
    }
#if UNIT_S8_COUNTS
    if (counts != 0) {
        int64_t dense = (int64_t)batch * in_features * out_features;
        unit__counts_set(counts, dense, zero_weight, zero_activation, dense - zero_weight - zero_activation, 0, 0);
    }
#else
    (void)counts;
#endif
    return UNIT_OK;
}
