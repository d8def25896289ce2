/* SPDX-License-Identifier: MIT */
/* unit_internal_sorted_stream_s8.h -- the loop of the early-exit accumulate kernels
 * (unit_linear_accumulate_unit_sorted_*_s8, private): the input loop of unit__linear_unit_sorted_s8
 * (unit_internal_sorted_s8.h) over a slice x[0..n) of the inputs, without the bias and the output
 * stage. The early exit is per input column, so the slices' sums and counters (compares included)
 * add up to the whole layer's. */
#ifndef UNIT_INTERNAL_SORTED_STREAM_S8_H
#define UNIT_INTERNAL_SORTED_STREAM_S8_H

#include "unit_internal_linear_stream_s8.h"
#include "unit_internal_sorted_s8.h"

static inline int32_t unit__accumulate_unit_sorted_s8(const int8_t *x, int32_t n, int32_t out,
                                                      const UNIT_TABLE int8_t *weight_sorted,
                                                      const UNIT_TABLE uint16_t *index,
                                                      const unit__quotient_method_s8 *q, int32_t *acc,
                                                      unit_counts *counts) {
    const UNIT_TABLE int8_t *column = weight_sorted;
    const UNIT_TABLE uint16_t *column_index = index;
    int32_t i;
#if UNIT_S8_COUNTS
    int64_t zero_weight = 0, zero_activation = 0, executed = 0, nonzero_inputs = 0, compares = 0;
#endif
    if (index == 0 || out > 0xFFFFL || !unit__accumulate_s8_args_ok(x, n, out, weight_sorted, acc)) {
        return UNIT_ERR_ARGUMENT;
    }
    for (i = 0; i < n; i++, column += out + 1, column_index += out) {
        const int8_t xv = x[i];
        uint8_t t;
        int32_t kept = 0;
#if UNIT_S8_COUNTS
        const int32_t zeros = unit__column_zeros_s8(column, out);
        compares++;
#endif
        if (xv == 0) {
#if UNIT_S8_COUNTS
            zero_weight += zeros;
            zero_activation += out - zeros;
#endif
            continue;
        }
        t = unit__quotient_s8(q, unit__abs_s8(xv));
        if (t < 128U) {
            kept = unit__column_sorted_s8(acc, column, column_index, xv, t);
#if UNIT_S8_COUNTS
            compares += kept + 1; /* the kept weights and the one that stops the walk */
#endif
        }
#if UNIT_S8_COUNTS
        zero_weight += zeros;
        executed += kept;
        nonzero_inputs++;
#else
        (void)kept;
#endif
    }
#if UNIT_S8_COUNTS
    if (counts != 0) {
        unit__counts_set(counts, (int64_t)n * out, zero_weight, zero_activation, executed, compares, nonzero_inputs);
    }
#else
    (void)counts;
#endif
    return UNIT_OK;
}

#endif /* UNIT_INTERNAL_SORTED_STREAM_S8_H */
