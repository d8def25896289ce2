/* SPDX-License-Identifier: MIT */
/* unit_linear_accumulate_dense_s8.c -- acc += the dense products of a slice of a linear layer's
 * inputs (see unit_kernels_stream_s8.h). Output-stationary as unit_linear_dense_s8: per output, the
 * dot product of the slice with its weight column (stride out_features) in registers, on top of the
 * output's running sum (unit_internal_linear_dot_s8.h: assembly on AVR and MSP430). */
#include "unit_internal_linear_dot_s8.h"
#include "unit_internal_linear_stream_s8.h"

int32_t unit_linear_accumulate_dense_s8(const int8_t *x, int32_t n, int32_t out_features,
                                        const UNIT_TABLE int8_t *weight_t, int32_t *acc, unit_counts *counts) {
    int32_t j;
    if (!unit__accumulate_s8_args_ok(x, n, out_features, weight_t, acc)) {
        return UNIT_ERR_ARGUMENT;
    }
    for (j = 0; j < out_features; j++) {
        acc[j] = unit__linear_dot_s8(x, weight_t + j, n, out_features, acc[j]);
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
