/* SPDX-License-Identifier: MIT */
/* unit_approx_f32_array.c -- approx(T[i], c[i]) elementwise (see unit_kernels.h). */
#include "unit_internal.h"

void unit_approx_f32_array(int32_t method, const float *threshold, const float *control, int32_t shift_start,
                           float *out, int32_t n) {
    int32_t i;
    for (i = 0; i < n; i++) {
        out[i] = unit__bits_f32(unit__approx_bits(method, threshold[i], unit__f32_bits(control[i]), shift_start));
    }
}
