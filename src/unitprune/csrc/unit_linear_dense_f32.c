/* SPDX-License-Identifier: MIT */
/* unit_linear_dense_f32.c -- plain dense linear layer, the benchmark baseline (see unit_kernels.h).
 *
 * y[r] = b + sum_i x[r][i] * W[:, i], input-major over the transposed weight so the inner loop
 * runs along contiguous memory (and vectorises). Every MAC is executed, zeros included. */
#include "unit_internal.h"

int32_t unit_linear_dense_f32(const float *x, int32_t rows, int32_t in_features, int32_t out_features,
                              const float *weight_t, const float *bias, float *y) {
    int32_t r, i, j;
    if (rows < 0 || in_features < 1 || out_features < 1) {
        return UNIT_ERR_ARGUMENT;
    }
    for (r = 0; r < rows; r++) {
        const float *x_row = x + (int32_t)(r * in_features);
        float *y_row = y + (int32_t)(r * out_features);
        for (j = 0; j < out_features; j++) {
            y_row[j] = 0.0f;
        }
        for (i = 0; i < in_features; i++) {
            unit__axpy(y_row, weight_t + (int32_t)(i * out_features), x_row[i], out_features);
        }
        if (bias != 0) {
            for (j = 0; j < out_features; j++) {
                y_row[j] += bias[j];
            }
        }
    }
    return UNIT_OK;
}
