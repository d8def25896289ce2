/* SPDX-License-Identifier: MIT */
/* unit_linear_accumulate_dense_s8.c -- acc += the dense products of a slice of a linear layer's
 * inputs (see unit_kernels_stream_s8.h). */
#include "unit_internal_linear_stream_s8.h"

int32_t unit_linear_accumulate_dense_s8(const int8_t *x, int32_t n, int32_t out_features,
                                        const UNIT_TABLE int8_t *weight_t, int32_t *acc, unit_counts *counts) {
    const UNIT_TABLE int8_t *column = weight_t;
    int32_t i;
    if (!unit__accumulate_s8_args_ok(x, n, out_features, weight_t, acc)) {
        return UNIT_ERR_ARGUMENT;
    }
    for (i = 0; i < n; i++, column += out_features) {
        unit__column_dense_s8(acc, column, x[i], out_features);
    }
#if UNIT_S8_COUNTS
    if (counts != 0) {
        int64_t dense = (int64_t)n * out_features;
        unit__counts_set(counts, dense, 0, 0, dense, 0, 0);
    }
#else
    (void)counts;
#endif
    return UNIT_OK;
}
