/* SPDX-License-Identifier: MIT */
/* unit_relu_s8.c -- in-place int8 ReLU (see unit_kernels_s8.h). */
#include "unit_internal_s8.h"

int32_t unit_relu_s8(int8_t *x, int32_t n) {
    int8_t *end;
    if (n < 0 || (n > 0 && x == 0)) {
        return UNIT_ERR_ARGUMENT;
    }
    for (end = x + n; x != end; x++) {
        if (*x < 0) {
            *x = 0;
        }
    }
    return UNIT_OK;
}
