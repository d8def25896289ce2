/* SPDX-License-Identifier: MIT */
/* unit_conv2d_f32_scratch_size.c -- bytes of scratch unit_conv2d_f32 needs (see unit_kernels.h). */
#include "unit_internal.h"

int32_t unit_conv2d_f32_scratch_size(const unit_conv2d_params *params) {
    int32_t out_height, out_width;
    unit__conv2d_scratch layout;
    int32_t status = unit__conv2d_geometry(params, &out_height, &out_width);
    if (status != UNIT_OK) {
        return status;
    }
    unit__conv2d_scratch_layout(params, out_height, out_width, &layout);
    if (layout.total > (int64_t)INT32_MAX) {
        return UNIT_ERR_ARGUMENT;
    }
    return (int32_t)layout.total;
}
