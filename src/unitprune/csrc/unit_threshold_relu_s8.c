/* SPDX-License-Identifier: MIT */
/* unit_threshold_relu_s8.c -- in-place int8 thresholded ReLU (FATReLU, see unit_kernels_s8.h). */
#include "unit_internal_s8.h"

int32_t unit_threshold_relu_s8(int8_t *x, int32_t n, int32_t threshold_q) {
    int8_t *end;
    if (n < 0 || (n > 0 && x == 0) || threshold_q < 0 || threshold_q > 127) {
        return UNIT_ERR_ARGUMENT;
    }
    for (end = x + n; x != end; x++) {
        if ((int32_t)*x <= threshold_q) {
            *x = 0;
        }
    }
    return UNIT_OK;
}
