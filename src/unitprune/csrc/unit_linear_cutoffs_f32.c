/* SPDX-License-Identifier: MIT */
/* unit_linear_cutoffs_f32.c -- per-weight activation cutoffs of a UnIT linear layer (see
 * unit_kernels.h, "Activation cutoffs").
 *
 * q(a) = approx(T, float(a)) is non-increasing in the bit pattern a of a non-negative float, so
 * {a : q(a) >= |w|} is an interval [0, cutoff]: a binary search over [0, 0x7F7FFFFF] finds its
 * end with 31 quotients. Quotients and |w| are compared as bit patterns (+inf included). */
#include "unit_internal.h"

#define UNIT__F32_MAX_BITS 0x7F7FFFFFUL

static int32_t unit__cutoff(int32_t method, float threshold, uint32_t weight_bits, int32_t shift_start) {
    uint32_t low = 0, high = UNIT__F32_MAX_BITS; /* invariant: q(low) >= |w|, q(high) < |w| */
    if (weight_bits == 0) {
        return (int32_t)UNIT__INF_BITS; /* a zero weight is never kept */
    }
    if (unit__approx_bits(method, threshold, high, shift_start) >= weight_bits) {
        return (int32_t)high; /* even FLT_MAX keeps nothing */
    }
    while (high - low > 1) {
        uint32_t middle = low + (high - low) / 2;
        if (unit__approx_bits(method, threshold, middle, shift_start) >= weight_bits) {
            low = middle;
        } else {
            high = middle;
        }
    }
    return (int32_t)low;
}

int32_t unit_linear_cutoffs_f32(const float *weight, int32_t count, int32_t out_features, const float *thresholds,
                                int32_t group_size, int32_t method, int32_t shift_start, int32_t *cutoff) {
    int32_t k, j = 0;
    if (count < 0 || out_features < 1 || count % out_features != 0 || group_size < 1 || group_size > out_features ||
        !unit__method_valid(method)) {
        return UNIT_ERR_ARGUMENT;
    }
    for (k = 0; k < count; k++) {
        uint32_t weight_bits = unit__f32_bits(weight[k]) & UNIT__ABS_MASK;
        cutoff[k] = unit__cutoff(method, thresholds[j / group_size], weight_bits, shift_start);
        j = j + 1 == out_features ? 0 : j + 1;
    }
    return UNIT_OK;
}
