/* SPDX-License-Identifier: MIT */
/* unit_linear_s8_scratch_size.c -- scratch bytes of the int8 linear kernels (see unit_kernels_s8.h):
 * 4*out_features, the int32 accumulators of one sample. */
#include "unit_internal_s8.h"

int32_t unit_linear_s8_scratch_size(int32_t out_features) {
    if (out_features < 1 || out_features > 0x1FFFFFFFL) {
        return UNIT_ERR_ARGUMENT;
    }
    return 4 * out_features;
}
