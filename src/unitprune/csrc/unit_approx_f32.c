/* SPDX-License-Identifier: MIT */
/* unit_approx_f32.c -- one UnIT quotient approx(T, c) as a float32 (see unit_kernels.h). */
#include "unit_internal.h"

float unit_approx_f32(int32_t method, float threshold, float control, int32_t shift_start) {
    return unit__bits_f32(unit__approx_bits(method, threshold, unit__f32_bits(control), shift_start));
}
