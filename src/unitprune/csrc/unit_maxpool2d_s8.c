/* SPDX-License-Identifier: MIT */
/* unit_maxpool2d_s8.c -- int8 max-pool, no padding, dilation 1, floor mode (see unit_kernels_s8.h).
 * The loops count in ptrdiff_t (16-bit on AVR and MSP430, where int32_t counters cost a word pair per
 * test; every count is bounded by the input's element count, which lies in memory) and pointers
 * advance by additions: no multiplication per output (a library call on AVR and MSP430), no
 * division per call (a fused plan calls it once per output row). A 2x2 window, the common case, is
 * unrolled. */
#include <stddef.h>

#include "unit_internal_s8.h"

static inline int8_t unit__max_s8(int8_t a, int8_t b) {
    return a > b ? a : b;
}

/* The window positions along one axis, (size - kernel) / stride + 1 (kernel <= size), counted by
 * subtractions: no division (a library call on AVR and MSP430, where a fused plan calls the kernel
 * once per output row); one subtraction per position, less than the position's outputs cost. */
static ptrdiff_t unit__pool_positions_s8(int32_t size, int32_t kernel, int32_t stride) {
    ptrdiff_t left = (ptrdiff_t)(size - kernel), step = (ptrdiff_t)stride, positions = 1;
    for (; left >= step; left -= step) {
        positions++;
    }
    return positions;
}

int32_t unit_maxpool2d_s8(const int8_t *x, int32_t batch, int32_t channels, int32_t in_height, int32_t in_width,
                          int32_t kernel_height, int32_t kernel_width, int32_t stride_y, int32_t stride_x, int8_t *y) {
    ptrdiff_t out_height, out_width, width, plane, planes, row_step, sx, kh, kw, p, oy, ox, ky, kx;
    if (!unit__pool2d_s8_args_ok(x, batch, channels, in_height, in_width, kernel_height, kernel_width, stride_y,
                                 stride_x, y)) {
        return UNIT_ERR_ARGUMENT;
    }
    out_height = unit__pool_positions_s8(in_height, kernel_height, stride_y);
    out_width = unit__pool_positions_s8(in_width, kernel_width, stride_x);
    width = (ptrdiff_t)in_width;
    plane = (ptrdiff_t)in_height * width;
    planes = (ptrdiff_t)batch * (ptrdiff_t)channels;
    row_step = (ptrdiff_t)stride_y * width;
    sx = (ptrdiff_t)stride_x;
    kh = (ptrdiff_t)kernel_height;
    kw = (ptrdiff_t)kernel_width;
    for (p = 0; p < planes; p++) {
        const int8_t *x_row = x + p * plane;
        for (oy = 0; oy < out_height; oy++, x_row += row_step) {
            const int8_t *window = x_row;
            if (kh == 2 && kw == 2) {
                for (ox = out_width; ox != 0; ox--, window += sx) {
                    *y++ = unit__max_s8(unit__max_s8(window[0], window[1]),
                                        unit__max_s8(window[width], window[width + 1]));
                }
                continue;
            }
            for (ox = out_width; ox != 0; ox--, window += sx) {
                const int8_t *row = window;
                int8_t best = window[0];
                for (ky = kh; ky != 0; ky--, row += width) {
                    for (kx = 0; kx < kw; kx++) {
                        best = unit__max_s8(row[kx], best);
                    }
                }
                *y++ = best;
            }
        }
    }
    return UNIT_OK;
}
