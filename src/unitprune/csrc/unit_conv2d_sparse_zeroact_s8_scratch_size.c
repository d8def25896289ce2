/* SPDX-License-Identifier: MIT */
/* unit_conv2d_sparse_zeroact_s8_scratch_size.c -- scratch bytes of unit_conv2d_sparse_zeroact_s8
 * (see unit_kernels_s8.h): 4*OW (a run's int32 values) + 8*OW (an output row's pieces) + 4*C*H (each input row's nonzero span, two
 * int16) + 4*G (each kernel row's live columns, G = C/groups*KH, two
 * int16) + 2*OW (each output column's piece, int16) + OW + 1 (the row's cover differences) + O (each
 * channel's output for a field of zeros), rounded up to a multiple of 4. */
#include "unit_internal_s8.h"

int32_t unit_conv2d_sparse_zeroact_s8_scratch_size(const unit_conv2d_params *params) {
    int32_t out_height, out_width;
    int64_t bytes;
    int32_t status = unit__conv2d_geometry(params, &out_height, &out_width);
    if (status != UNIT_OK) {
        return status;
    }
    bytes = 15 * (int64_t)out_width + 1 + 4 * (int64_t)params->in_channels * params->in_height +
            4 * (int64_t)(params->in_channels / params->groups) * params->kernel_height + params->out_channels;
    bytes = (bytes + 3) / 4 * 4;
    if (bytes > 0x7FFFFFFFL) {
        return UNIT_ERR_ARGUMENT;
    }
    return (int32_t)bytes;
}
