/* SPDX-License-Identifier: MIT */
/* unit_conv2d_dense_s8.c -- int8 convolution, dense variant (see unit_kernels_s8.h; loop nest in
 * unit_internal_conv_s8.h). */
#include "unit_internal_conv_s8.h"

int32_t unit_conv2d_dense_s8(const unit_conv2d_params *params, const int8_t *x, const UNIT_TABLE int8_t *weight,
                             const unit_requant_s8 *requant, int8_t *y, int32_t *scratch, unit_counts *counts) {
    unit__conv_s8 g;
    int32_t status = unit__conv2d_s8_begin(params, x, weight, requant, y, scratch, &g);
    if (status != UNIT_OK) {
        return status;
    }
    unit__conv2d_s8_run(params, &g, UNIT__CONV_DENSE, x, weight, 0, requant, y, scratch, counts);
    return UNIT_OK;
}
