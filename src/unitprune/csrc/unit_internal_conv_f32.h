/* SPDX-License-Identifier: MIT */
/*
 * unit_internal_conv_f32.h -- private parts of the float convolution: the shared dense channel loop and the scratch
 * layout of unit_conv2d_f32.
 */
#ifndef UNIT_INTERNAL_CONV_F32_H
#define UNIT_INTERNAL_CONV_F32_H

#include "unit_internal_geometry.h"
#include "unit_kernels_f32.h"

/* One (sample, input channel) of a dense convolution: for each of the group's `group_out`
 * outputs and each kernel tap, y_plane[o][oy][ox] += w * x at the tap's valid positions.
 * x_channel is [H][W], weight points at weight[o0][c_local][0][0] (OIHW, stride between outputs
 * `weight_step`), y_planes at y[n][o0][0][0]. Zero weights are multiplied like the others (testing
 * them here costs more than it saves on a SIMD host). Defined once (unit_conv2d_dense_channel.c)
 * so that the baseline and UnIT's dense sub-path run the very same machine code. */
void unit__conv2d_dense_channel(const unit_conv2d_params *p, int32_t out_height, int32_t out_width,
                                const float *x_channel, const float *weight, int32_t weight_step, int32_t group_out,
                                float *y_planes);

/* Byte offsets of the parts of unit_conv2d_f32's scratch (each part 16-byte aligned relative
 * to the start of scratch); `total` is the size unit_conv2d_f32_scratch_size reports. */
typedef struct {
    int64_t accumulator;   /* float [OH*OW][Og]: HWC accumulator of one (sample, group) */
    int64_t values;        /* float [H*W]: nonzero activations of one channel, row-major order */
    int64_t columns;       /* int32 [H*W]: their column ix */
    int64_t row_start;     /* int32 [H+1]: first entry of each input row in values/columns */
    int64_t lattice;       /* int32 [H*W]: strided prefix counts of nonzero activations */
    int64_t row_taps;      /* int32 [H]: number of valid kernel rows of each input row */
    int64_t row_ky;        /* int32 [H][KH]: valid kernel rows ky, ascending */
    int64_t row_oy;        /* int32 [H][KH]: their output row oy */
    int64_t col_taps;      /* int32 [W]: number of valid kernel columns of each input column */
    int64_t col_kx;        /* int32 [W][KW]: valid kernel columns kx, ascending */
    int64_t col_ox;        /* int32 [W][KW]: their output column ox */
    int64_t tap_under;     /* int32 [KH][KW]: nonzero activations under each tap (one channel) */
    int64_t total;
} unit__conv2d_scratch;


static inline void unit__conv2d_scratch_layout(const unit_conv2d_params *p, int32_t out_height, int32_t out_width,
                                               unit__conv2d_scratch *s) {
    int64_t h = p->in_height, w = p->in_width, kh = p->kernel_height, kw = p->kernel_width;
    int64_t pixels = h * w;
    int64_t offset = 0;
    s->accumulator = offset;
    /* + 4 lanes: a padded lane run may add zeros just past the last output position */
    offset += unit__align16(4 * ((int64_t)out_height * out_width * (p->out_channels / p->groups) + 4));
    s->values = offset;
    offset += unit__align16(4 * pixels);
    s->columns = offset;
    offset += unit__align16(4 * pixels);
    s->row_start = offset;
    offset += unit__align16(4 * (h + 1));
    s->lattice = offset;
    offset += unit__align16(4 * pixels);
    s->row_taps = offset;
    offset += unit__align16(4 * h);
    s->row_ky = offset;
    offset += unit__align16(4 * h * kh);
    s->row_oy = offset;
    offset += unit__align16(4 * h * kh);
    s->col_taps = offset;
    offset += unit__align16(4 * w);
    s->col_kx = offset;
    offset += unit__align16(4 * w * kw);
    s->col_ox = offset;
    offset += unit__align16(4 * w * kw);
    s->tap_under = offset;
    offset += unit__align16(4 * kh * kw);
    s->total = offset;
}

#endif /* UNIT_INTERNAL_CONV_F32_H */
