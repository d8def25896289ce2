/* SPDX-License-Identifier: MIT */
/* unit_avgpool2d_s8.c -- int8 average pool, no padding, floor mode, TFLite rounding (see unit_kernels_s8.h). */
#include "unit_internal_s8.h"

int32_t unit_avgpool2d_s8(const int8_t *x, int32_t batch, int32_t channels, int32_t in_height, int32_t in_width,
                          int32_t kernel_height, int32_t kernel_width, int32_t stride_y, int32_t stride_x, int8_t *y) {
    int32_t out_height, out_width, plane, planes, count, half, p, oy, ox, ky, kx, acc, mean;
    if (!unit__pool2d_s8_args_ok(x, batch, channels, in_height, in_width, kernel_height, kernel_width, stride_y,
                                 stride_x, y)) {
        return UNIT_ERR_ARGUMENT;
    }
    out_height = (in_height - kernel_height) / stride_y + 1;
    out_width = (in_width - kernel_width) / stride_x + 1;
    plane = in_height * in_width;
    planes = batch * channels;
    count = kernel_height * kernel_width; /* <= plane < 2**31; |acc| <= 128 * count < 2**31 for count < 2**24 */
    if (count > 0xFFFFFFL) {
        return UNIT_ERR_ARGUMENT;
    }
    half = count / 2;
    for (p = 0; p < planes; p++) {
        const int8_t *x_plane = x + (ptrdiff_t)p * plane;
        for (oy = 0; oy < out_height; oy++) {
            for (ox = 0; ox < out_width; ox++) {
                const int8_t *window = x_plane + (ptrdiff_t)(oy * stride_y) * in_width + ox * stride_x;
                acc = 0;
                for (ky = 0; ky < kernel_height; ky++) {
                    const int8_t *row = window + (ptrdiff_t)ky * in_width;
                    for (kx = 0; kx < kernel_width; kx++) {
                        acc += row[kx];
                    }
                }
                /* TFLite's reference: round half away from zero, C division truncates toward zero */
                mean = acc > 0 ? (acc + half) / count : (acc - half) / count;
                mean = mean > 127 ? 127 : (mean < -128 ? -128 : mean);
                *y++ = (int8_t)mean;
            }
        }
    }
    return UNIT_OK;
}
