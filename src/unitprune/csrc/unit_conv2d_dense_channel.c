/* SPDX-License-Identifier: MIT */
/* unit_conv2d_dense_channel.c -- the dense direct loop of one input channel (internal, see
 * unit_internal.h), shared by unit_conv2d_dense_f32 and the dense sub-path of unit_conv2d_f32. */
#include "unit_internal.h"

void unit__conv2d_dense_channel(const unit_conv2d_params *p, int32_t out_height, int32_t out_width,
                                const float *x_channel, const float *weight, int32_t weight_step, int32_t group_out,
                                float *y_planes) {
    int32_t o, ky, kx, oy;
    int32_t planes = out_height * out_width;
    for (o = 0; o < group_out; o++) {
        const float *w_o = weight + o * weight_step;
        float *y_plane = y_planes + o * planes;
        for (ky = 0; ky < p->kernel_height; ky++) {
            int32_t oy_lo, oy_hi;
            unit__tap_range(ky, p->in_height, out_height, p->stride_y, p->dilation_y, p->pad_top, &oy_lo, &oy_hi);
            for (kx = 0; kx < p->kernel_width; kx++) {
                int32_t ox_lo, ox_hi;
                float w = w_o[ky * p->kernel_width + kx];
                unit__tap_range(kx, p->in_width, out_width, p->stride_x, p->dilation_x, p->pad_left, &ox_lo, &ox_hi);
                if (ox_lo > ox_hi) {
                    continue;
                }
                for (oy = oy_lo; oy <= oy_hi; oy++) {
                    int32_t iy = oy * p->stride_y + ky * p->dilation_y - p->pad_top;
                    int32_t ix = ox_lo * p->stride_x + kx * p->dilation_x - p->pad_left;
                    unit__axpy_strided(y_plane + oy * out_width + ox_lo, x_channel + iy * p->in_width + ix,
                                       p->stride_x, w, ox_hi - ox_lo + 1);
                }
            }
        }
    }
}
