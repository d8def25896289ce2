/* SPDX-License-Identifier: MIT */
/* unit_conv2d_unit_s8.c -- int8 UnIT convolution: skip w*x iff w == 0 or |x| <= tau (see
 * unit_kernels_s8.h; loop nest in unit_internal_conv_s8.h). */
#include "unit_internal_conv_s8.h"

int32_t unit_conv2d_unit_s8(const unit_conv2d_params *params, const int8_t *x, const UNIT_TABLE int8_t *weight,
                            const UNIT_TABLE uint8_t *tau, const unit_requant_s8 *requant, int8_t *y, int32_t *scratch,
                            unit_counts *counts) {
    unit__conv_s8 g;
    int32_t status;
    if (tau == 0) {
        return UNIT_ERR_ARGUMENT;
    }
    status = unit__conv2d_s8_begin(params, x, weight, requant, y, scratch, &g);
    if (status != UNIT_OK) {
        return status;
    }
    unit__conv2d_s8_run(params, &g, UNIT__CONV_UNIT, x, weight, tau, requant, y, scratch, counts);
    return UNIT_OK;
}
