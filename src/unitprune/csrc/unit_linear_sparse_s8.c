/* SPDX-License-Identifier: MIT */
/* unit_linear_sparse_s8.c -- int8 linear layer over the nonzero weights only (static sparsity, see
 * unit_kernels_s8.h, unit_sparse_s8: a record's offset is its input index), output-stationary: each
 * output is one run of one output (unit_internal_sparse_s8.h), its accumulator in registers. A zero
 * weight costs nothing; a zero activation is multiplied (its product is 0). */
#include "unit_internal_sparse_s8.h"

int32_t unit_linear_sparse_s8(const int8_t *x, int32_t batch, int32_t in_features, int32_t out_features,
                              const unit_sparse_s8 *sparse, const unit_requant_s8 *requant, int8_t *y,
                              int32_t *scratch, unit_counts *counts) {
    int32_t n, j, k, nnz_total = 0;
    int64_t zero_activation = 0;
    int32_t status = unit__linear_s8_begin(x, batch, in_features, out_features, (const UNIT_TABLE int8_t *)sparse,
                                           requant, y, scratch);
    if (status != UNIT_OK) {
        return status;
    }
    if (sparse->nonzeros == 0 || in_features > 0xFFFF) {
        return UNIT_ERR_ARGUMENT;
    }
    for (j = 0; j < out_features; j++) {
        nnz_total += (int32_t)(uint16_t)UNIT_READ_S16((const UNIT_TABLE int16_t *)sparse->nonzeros + j);
    }
    if (nnz_total > 0 && sparse->records == 0) {
        return UNIT_ERR_ARGUMENT;
    }
#if !defined(__AVR__) && !defined(__MSP430__)
    for (k = 0; k < nnz_total; k++) { /* hosts check every record's input index */
        if ((int32_t)(uint16_t)UNIT_READ_S16(sparse->records + 2 * k) >= in_features) {
            return UNIT_ERR_ARGUMENT;
        }
    }
#endif
    for (n = 0; n < batch; n++) {
        const int8_t *x_row = x + (ptrdiff_t)n * in_features;
        const UNIT_TABLE int16_t *records = sparse->records;
        for (j = 0; j < out_features; j++) {
            const int32_t nnz = (int32_t)(uint16_t)UNIT_READ_S16((const UNIT_TABLE int16_t *)sparse->nonzeros + j);
            const int32_t bias = unit__bias_s8(requant, j);
            int32_t acc = bias;
            if (nnz > 0) {
                int32_t stored;
                const int assembly = unit__sparse_run_s8(&stored, x_row, records, nnz, 1, 1);
                acc = assembly ? unit__dot_value_s8(unit__dot_base_s8(bias, nnz), stored) : bias + stored;
            }
#if UNIT_S8_COUNTS
            for (k = 0; k < nnz; k++) {
                zero_activation += x_row[(uint16_t)UNIT_READ_S16(records + 2 * k)] == 0;
            }
#endif
            y[(ptrdiff_t)n * out_features + j] = unit__requantize_clamp_s8(
                acc, UNIT_READ_S32(requant->multiplier + j), UNIT_READ_S8(requant->shift + j), requant->act_min,
                requant->act_max);
            records += 2 * nnz;
        }
    }
#if UNIT_S8_COUNTS
    if (counts != 0) {
        const int64_t dense = (int64_t)batch * in_features * out_features;
        const int64_t zero_weight = (int64_t)batch * ((int64_t)in_features * out_features - nnz_total);
        unit__counts_set(counts, dense, zero_weight, zero_activation, dense - zero_weight - zero_activation, 0, 0);
    }
#else
    (void)counts;
    (void)zero_activation;
    (void)k;
#endif
    return UNIT_OK;
}
