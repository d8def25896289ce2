/* SPDX-License-Identifier: MIT */
/* unit_linear_accumulate_unit_sorted_table_s8.c -- acc += the kept products of a slice of an
 * early-exit UnIT linear layer's inputs (columns sorted by |w|), t_i = quotients[|x_i|] as
 * unit_linear_unit_sorted_table_s8 (see unit_kernels_stream_s8.h). */
#include "unit_internal_sorted_stream_s8.h"

int32_t unit_linear_accumulate_unit_sorted_table_s8(const int8_t *x, int32_t n, int32_t out_features,
                                                    const UNIT_TABLE int8_t *weight_sorted,
                                                    const UNIT_TABLE uint16_t *index,
                                                    const UNIT_TABLE uint8_t *quotients, int32_t *acc,
                                                    unit_counts *counts) {
    unit__quotient_method_s8 q;
    if (quotients == 0) {
        return UNIT_ERR_ARGUMENT;
    }
    q.method = UNIT__QUOTIENT_TABLE;
    q.threshold_shifted = 0;
    q.shift_start = 0;
    q.tree = 0;
    q.table = quotients;
    return unit__accumulate_unit_sorted_s8(x, n, out_features, weight_sorted, index, &q, acc, counts);
}
