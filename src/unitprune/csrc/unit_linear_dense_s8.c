/* SPDX-License-Identifier: MIT */
/* unit_linear_dense_s8.c -- int8 dense linear layer, the honest baseline: every weight multiplied,
 * no test (see unit_kernels_s8.h). Output-stationary: each output's accumulator stays in registers
 * over its inputs (the weights of output j are column j of weight_t, read at a stride of
 * out_features), then it is requantized. The dot product is assembly on AVR
 * (csrc/unit_linear_dense_s8_avr.S) and MSP430 (mcu/targets/msp430/runtime/unit_linear_dense_s8_msp430.S,
 * software multiply or the hardware multiplier); the C loop (hosts, UNIT_PORTABLE_KERNELS=1) counts in
 * ptrdiff_t. */
#include "unit_internal_linear_dot_s8.h"

int32_t unit_linear_dense_s8(const int8_t *x, int32_t batch, int32_t in_features, int32_t out_features,
                             const UNIT_TABLE int8_t *weight_t, const unit_requant_s8 *requant, int8_t *y,
                             int32_t *scratch, unit_counts *counts) {
    int32_t n, j;
    int32_t status = unit__linear_s8_begin(x, batch, in_features, out_features, weight_t, requant, y, scratch);
    if (status != UNIT_OK) {
        return status;
    }
    for (n = 0; n < batch; n++) {
        const int8_t *x_row = x + (ptrdiff_t)n * in_features;
        int8_t *y_row = y + (ptrdiff_t)n * out_features;
        /* every accumulator first (scratch), then the outputs: y may overlap x (in-place plans) */
        for (j = 0; j < out_features; j++) {
            scratch[j] = unit__linear_dot_s8(x_row, weight_t + j, in_features, out_features, unit__bias_s8(requant, j));
        }
        unit__linear_store_s8(scratch, out_features, requant, y_row);
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
