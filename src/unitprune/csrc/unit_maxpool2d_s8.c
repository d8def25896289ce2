/* SPDX-License-Identifier: MIT */
/* unit_maxpool2d_s8.c -- int8 max-pool, no padding, dilation 1, floor mode (see unit_kernels_s8.h). */
#include "unit_internal_s8.h"

int32_t unit_maxpool2d_s8(const int8_t *x, int32_t batch, int32_t channels, int32_t in_height, int32_t in_width,
                          int32_t kernel_height, int32_t kernel_width, int32_t stride_y, int32_t stride_x, int8_t *y) {
    int32_t out_height, out_width, plane, planes, row_step, p, oy, ox, ky, kx;
    if (!unit__pool2d_s8_args_ok(x, batch, channels, in_height, in_width, kernel_height, kernel_width, stride_y,
                                 stride_x, y)) {
        return UNIT_ERR_ARGUMENT;
    }
    out_height = (in_height - kernel_height) / stride_y + 1;
    out_width = (in_width - kernel_width) / stride_x + 1;
    plane = in_height * in_width;
    planes = batch * channels;
    row_step = stride_y * in_width;
    /* pointers advance by additions: no multiplication per output (a library call on AVR and MSP430) */
    for (p = 0; p < planes; p++) {
        const int8_t *x_row = x + (ptrdiff_t)p * plane;
        for (oy = 0; oy < out_height; oy++, x_row += row_step) {
            const int8_t *window = x_row;
            for (ox = 0; ox < out_width; ox++, window += stride_x) {
                const int8_t *row = window;
                int8_t best = window[0];
                for (ky = 0; ky < kernel_height; ky++, row += in_width) {
                    for (kx = 0; kx < kernel_width; kx++) {
                        best = row[kx] > best ? row[kx] : best;
                    }
                }
                *y++ = best;
            }
        }
    }
    return UNIT_OK;
}
