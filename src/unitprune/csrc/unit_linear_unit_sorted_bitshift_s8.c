/* SPDX-License-Identifier: MIT */
/* unit_linear_unit_sorted_bitshift_s8.c -- int8 UnIT linear layer with sorted columns (early exit),
 * t_i by the paper's bitshift loop (see unit_kernels_s8.h; unit_internal_sorted_s8.h). */
#include "unit_internal_sorted_s8.h"

int32_t unit_linear_unit_sorted_bitshift_s8(const int8_t *x, int32_t batch, int32_t in_features,
                                            int32_t out_features, const UNIT_TABLE int8_t *weight_sorted,
                                            const UNIT_TABLE uint16_t *index, int32_t threshold_q,
                                            int32_t shift_start, const unit_requant_s8 *requant, int8_t *y,
                                            int32_t *scratch, unit_counts *counts) {
    unit__quotient_method_s8 q;
    int32_t status;
    if (threshold_q < 0 || shift_start < 0 || shift_start > 31 || index == 0) {
        return UNIT_ERR_ARGUMENT;
    }
    status = unit__linear_s8_begin(x, batch, in_features, out_features, weight_sorted, requant, y, scratch);
    if (status != UNIT_OK) {
        return status;
    }
    q.method = UNIT__QUOTIENT_BITSHIFT;
    q.threshold_shifted = (uint32_t)threshold_q >> shift_start;
    q.shift_start = (uint8_t)shift_start;
    q.tree = 0;
    q.table = 0;
    return unit__linear_unit_sorted_s8(x, batch, in_features, out_features, weight_sorted, index, &q, requant, y,
                                       scratch, counts);
}
