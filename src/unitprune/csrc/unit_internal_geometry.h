/* SPDX-License-Identifier: MIT */
/*
 * unit_internal_geometry.h -- convolution geometry shared by every number type (private): argument checks, output
 * size, the valid output range of a kernel tap (so inner loops need no bounds checks).
 */
#ifndef UNIT_INTERNAL_GEOMETRY_H
#define UNIT_INTERNAL_GEOMETRY_H

#include "unit_types.h"

/* floor(a / b) and ceil(a / b) for b > 0 and any sign of a (b == 1, the common stride, without the
 * division: a library call on AVR and MSP430, paid per kernel call). */
static inline int32_t unit__floor_div(int32_t a, int32_t b) {
    int32_t q;
    if (b == 1) {
        return a;
    }
    q = a / b;
    if (a % b != 0 && a < 0) {
        q--;
    }
    return q;
}

static inline int32_t unit__ceil_div(int32_t a, int32_t b) {
    return -unit__floor_div(-a, b);
}

/* Checks every field of params against its documented range and computes the output size. */
static inline int32_t unit__conv2d_geometry(const unit_conv2d_params *p, int32_t *out_height,
                                            int32_t *out_width) {
    int32_t span_y, span_x;
    if (p == 0 || p->batch < 0 || p->in_channels < 1 || p->in_height < 1 || p->in_width < 1 ||
        p->out_channels < 1 || p->kernel_height < 1 || p->kernel_width < 1 || p->stride_y < 1 ||
        p->stride_x < 1 || p->dilation_y < 1 || p->dilation_x < 1 || p->pad_top < 0 || p->pad_bottom < 0 ||
        p->pad_left < 0 || p->pad_right < 0 || p->groups < 1 ||
        (p->groups != 1 && (p->in_channels % p->groups != 0 || p->out_channels % p->groups != 0)) ||
        p->block_rows < 0) {
        return UNIT_ERR_ARGUMENT;
    }
    span_y = p->in_height + p->pad_top + p->pad_bottom - p->dilation_y * (p->kernel_height - 1) - 1;
    span_x = p->in_width + p->pad_left + p->pad_right - p->dilation_x * (p->kernel_width - 1) - 1;
    if (span_y < 0 || span_x < 0) {
        return UNIT_ERR_ARGUMENT;
    }
    *out_height = unit__floor_div(span_y, p->stride_y) + 1;
    *out_width = unit__floor_div(span_x, p->stride_x) + 1;
    return UNIT_OK;
}

/* Valid output range [lo, hi] along one axis for the kernel offset kd = k*dilation: the outputs
 * whose input position o*stride + kd - pad lies inside [0, size). lo > hi when there is none. The
 * int8 loop nest passes kd kept up to date by additions (no multiply per tap on cores without one). */
static inline void unit__tap_range_kd(int32_t kd, int32_t size, int32_t out_size, int32_t stride, int32_t pad,
                                      int32_t *lo, int32_t *hi) {
    int32_t first, last;
    if (stride == 1) { /* the common case, without integer divisions */
        first = pad - kd;
        last = size - 1 + pad - kd;
    } else {
        first = unit__ceil_div(pad - kd, stride);
        last = unit__floor_div(size - 1 + pad - kd, stride);
    }
    *lo = first > 0 ? first : 0;
    *hi = last < out_size - 1 ? last : out_size - 1;
}

/* The same for kernel index k. */
static inline void unit__tap_range(int32_t k, int32_t size, int32_t out_size, int32_t stride, int32_t dilation,
                                   int32_t pad, int32_t *lo, int32_t *hi) {
    unit__tap_range_kd(k * dilation, size, out_size, stride, pad, lo, hi);
}

/* The output columns whose whole kernel row lies inside the input (no padding tap) are
 * [unit__inner_first(p), unit__inner_end(p, out_width, first)): the end is at most out_width and at
 * least first (an empty range where there is none). */
static inline int32_t unit__inner_first(const unit_conv2d_params *p) {
    return unit__ceil_div(p->pad_left, p->stride_x);
}

static inline int32_t unit__inner_end(const unit_conv2d_params *p, int32_t out_width, int32_t first) {
    int32_t end =
        unit__floor_div(p->in_width - 1 + p->pad_left - (p->kernel_width - 1) * p->dilation_x, p->stride_x) + 1;
    end = end > out_width ? out_width : end;
    return end < first ? first : end;
}

static inline int64_t unit__align16(int64_t bytes) {
    return (bytes + 15) / 16 * 16;
}

#endif /* UNIT_INTERNAL_GEOMETRY_H */
