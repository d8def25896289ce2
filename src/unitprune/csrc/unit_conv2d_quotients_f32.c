/* SPDX-License-Identifier: MIT */
/* unit_conv2d_quotients_f32.c -- per-weight quotients tau = approx(T[group(o)], |w|) (see unit_kernels.h). */
#include "unit_internal.h"

int32_t unit_conv2d_quotients_f32(const float *weight, int32_t count, int32_t out_channels, const float *thresholds,
                                  int32_t group_size, int32_t method, int32_t shift_start, float *tau) {
    int32_t per_output, o, i;
    if (count < 0 || out_channels < 1 || count % out_channels != 0 || group_size < 1 ||
        group_size > out_channels || !unit__method_valid(method)) {
        return UNIT_ERR_ARGUMENT;
    }
    per_output = count / out_channels;
    for (o = 0; o < out_channels; o++) {
        float threshold = thresholds[o / group_size];
        for (i = o * per_output; i < (o + 1) * per_output; i++) {
            tau[i] = unit__bits_f32(unit__approx_bits(method, threshold, unit__f32_bits(weight[i]), shift_start));
        }
    }
    return UNIT_OK;
}
