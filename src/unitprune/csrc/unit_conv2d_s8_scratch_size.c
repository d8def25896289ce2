/* SPDX-License-Identifier: MIT */
/* unit_conv2d_s8_scratch_size.c -- scratch bytes of the int8 convolutions (see unit_kernels_s8.h):
 * 4*B*OW, the int32 accumulators of one block of B output rows of one output channel
 * (B = params->block_rows, or OH when it is 0 or larger). */
#include "unit_internal_s8.h"

int32_t unit_conv2d_s8_scratch_size(const unit_conv2d_params *params) {
    int32_t out_height, out_width;
    int32_t status = unit__conv2d_geometry(params, &out_height, &out_width);
    if (status != UNIT_OK) {
        return status;
    }
    if ((int64_t)out_height * out_width > 0x1FFFFFFFL) {
        return UNIT_ERR_ARGUMENT;
    }
    return 4 * unit__conv_block_rows(params, out_height) * out_width;
}
