/* SPDX-License-Identifier: MIT */
/* unit_linear_dense_s8.c -- int8 dense linear layer, the honest baseline: every weight of every
 * input's column multiplied, no test (see unit_kernels_s8.h). */
#include "unit_internal_s8.h"

int32_t unit_linear_dense_s8(const int8_t *x, int32_t batch, int32_t in_features, int32_t out_features,
                             const UNIT_TABLE int8_t *weight_t, const unit_requant_s8 *requant, int8_t *y,
                             int32_t *scratch, unit_counts *counts) {
    int32_t n, i;
    int32_t status = unit__linear_s8_begin(x, batch, in_features, out_features, weight_t, requant, y, scratch);
    if (status != UNIT_OK) {
        return status;
    }
    for (n = 0; n < batch; n++) {
        const int8_t *x_row = x + (ptrdiff_t)n * in_features;
        const UNIT_TABLE int8_t *column = weight_t;
        unit__linear_init_s8(scratch, out_features, requant);
        for (i = 0; i < in_features; i++, column += out_features) {
            unit__column_dense_s8(scratch, column, x_row[i], out_features);
        }
        unit__linear_store_s8(scratch, out_features, requant, y + (ptrdiff_t)n * out_features);
    }
#if UNIT_S8_COUNTS
    if (counts != 0) {
        int64_t dense = (int64_t)batch * in_features * out_features;
        unit__counts_set(counts, dense, 0, 0, dense, 0, 0);
    }
#else
    (void)counts;
#endif
    return UNIT_OK;
}
