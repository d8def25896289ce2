/* SPDX-License-Identifier: MIT */
/* unit_all_finite_f32.c -- whether n floats are all finite (see unit_kernels.h). */
#include "unit_internal.h"

int32_t unit_all_finite_f32(const float *values, int32_t n) {
    uint32_t largest = 0;
    int32_t i;
    for (i = 0; i < n; i++) { /* exponent field all ones <=> Inf or NaN; no branch, vectorises */
        uint32_t bits = unit__f32_bits(values[i]) & UNIT__ABS_MASK;
        largest = bits > largest ? bits : largest;
    }
    return largest < UNIT__INF_BITS;
}
