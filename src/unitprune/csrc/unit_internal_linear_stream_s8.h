/* SPDX-License-Identifier: MIT */
/* unit_internal_linear_stream_s8.h -- the loops of the accumulate kernels of
 * unit_kernels_stream_s8.h (private): the input loops of unit_linear_<variant>_s8 without the
 * bias and the output stage. */
#ifndef UNIT_INTERNAL_LINEAR_STREAM_S8_H
#define UNIT_INTERNAL_LINEAR_STREAM_S8_H

#include "unit_internal_s8.h"
#include "unit_kernels_stream_s8.h"

static inline int32_t unit__accumulate_s8_args_ok(const int8_t *x, int32_t n, int32_t out,
                                                  const UNIT_TABLE int8_t *weight_t, const int32_t *acc) {
    return x != 0 && n >= 1 && out >= 1 && out <= 0x1FFFFFFFL && weight_t != 0 && acc != 0;
}

/* UnIT: the loop of unit__linear_unit_s8 over x[0..n), any quotient method. */
static inline int32_t unit__accumulate_unit_s8(const int8_t *x, int32_t n, int32_t out,
                                               const UNIT_TABLE int8_t *weight_t, const unit__quotient_method_s8 *q,
                                               int32_t *acc, unit_counts *counts) {
    const UNIT_TABLE int8_t *column = weight_t;
    int32_t i;
#if UNIT_S8_COUNTS
    int64_t zero_weight = 0, zero_activation = 0, executed = 0, nonzero_inputs = 0;
#endif
    for (i = 0; i < n; i++, column += out) {
        const int8_t xv = x[i];
        uint8_t t;
        int32_t kept;
        if (xv == 0) {
#if UNIT_S8_COUNTS
            int32_t zeros = unit__column_zeros_s8(column, out);
            zero_weight += zeros;
            zero_activation += out - zeros;
#endif
            continue;
        }
        t = unit__quotient_s8(q, unit__abs_s8(xv));
        kept = t < 128U ? unit__column_unit_s8(acc, column, xv, t, out) : 0;
#if UNIT_S8_COUNTS
        zero_weight += unit__column_zeros_s8(column, out);
        executed += kept;
        nonzero_inputs++;
#else
        (void)kept;
#endif
    }
#if UNIT_S8_COUNTS
    if (counts != 0) {
        unit__counts_set(counts, (int64_t)n * out, zero_weight, zero_activation, executed,
                         (int64_t)n + nonzero_inputs * out, nonzero_inputs);
    }
#else
    (void)counts;
#endif
    return UNIT_OK;
}

#endif /* UNIT_INTERNAL_LINEAR_STREAM_S8_H */
