/* SPDX-License-Identifier: MIT */
/* unit_avgpool2d_accumulate_s8.c -- one input row ([channels][in_width]) of an average pool whose
 * window spans the whole input height, added to its int32 window sums acc[channels][out_width]
 * (see unit_kernels_stream_s8.h). */
#include "unit_internal_linear_stream_s8.h"

int32_t unit_avgpool2d_accumulate_s8(const int8_t *x, int32_t channels, int32_t in_width, int32_t kernel_width,
                                     int32_t stride_x, int32_t *acc) {
    int32_t out_width, c, ox, kx;
    if (x == 0 || acc == 0 || channels < 1 || in_width < 1 || kernel_width < 1 || stride_x < 1 ||
        kernel_width > in_width) {
        return UNIT_ERR_ARGUMENT;
    }
    out_width = (in_width - kernel_width) / stride_x + 1;
    for (c = 0; c < channels; c++, x += in_width) {
        for (ox = 0; ox < out_width; ox++) {
            const int8_t *window = x + ox * stride_x;
            int32_t sum = 0;
            for (kx = 0; kx < kernel_width; kx++) {
                sum += window[kx];
            }
            *acc++ += sum;
        }
    }
    return UNIT_OK;
}
