/* SPDX-License-Identifier: MIT */
/* unit_conv2d_output_size.c -- output height/width of a convolution (see unit_kernels.h). */
#include "unit_internal.h"

int32_t unit_conv2d_output_size(const unit_conv2d_params *params, int32_t *out_height, int32_t *out_width) {
    return unit__conv2d_geometry(params, out_height, out_width);
}
