/* SPDX-License-Identifier: MIT */
/* unit_conv2d_dense_f32.c -- plain dense direct convolution, the benchmark baseline (see unit_kernels.h).
 *
 * For every output channel, input channel and kernel tap, a multiply-add along the output row
 * (contiguous when stride_x == 1, so it vectorises); padding is handled by clipping each tap to
 * its valid output range, so no padded copy of the input is made. Every MAC is executed. */
#include "unit_internal.h"

int32_t unit_conv2d_dense_f32(const unit_conv2d_params *params, const float *x, const float *weight,
                              const float *bias, float *y) {
    int32_t out_height, out_width, positions, group_in, group_out, n, g, cl, o, i;
    const unit_conv2d_params *p = params;
    if (unit__conv2d_geometry(p, &out_height, &out_width) != UNIT_OK) {
        return UNIT_ERR_ARGUMENT;
    }
    positions = out_height * out_width;
    group_in = p->in_channels / p->groups;
    group_out = p->out_channels / p->groups;
    for (n = 0; n < p->batch; n++) {
        for (g = 0; g < p->groups; g++) {
            float *y_group = y + (n * p->out_channels + g * group_out) * positions;
            for (i = 0; i < group_out * positions; i++) {
                y_group[i] = 0.0f;
            }
            for (cl = 0; cl < group_in; cl++) {
                const float *x_channel = x + (n * p->in_channels + g * group_in + cl) * p->in_height * p->in_width;
                const float *w = weight + ((g * group_out) * group_in + cl) * p->kernel_height * p->kernel_width;
                unit__conv2d_dense_channel(p, out_height, out_width, x_channel, w,
                                           group_in * p->kernel_height * p->kernel_width, group_out, y_group);
            }
            if (bias != 0) {
                for (o = 0; o < group_out; o++) {
                    float b = bias[g * group_out + o];
                    float *plane = y_group + o * positions;
                    for (i = 0; i < positions; i++) {
                        plane[i] += b;
                    }
                }
            }
        }
    }
    return UNIT_OK;
}
