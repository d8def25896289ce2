/* SPDX-License-Identifier: MIT */
/* unit_internal_sorted_stream_s8.h -- the early-exit accumulate kernels
 * (unit_linear_accumulate_unit_sorted_*_s8, private): the input loop of unit__linear_unit_sorted_s8
 * (unit__sorted_inputs_s8, unit_internal_sorted_s8.h) over a slice x[0..n) of the inputs, without
 * the bias and the output stage. The early exit is per input column, so the slices' sums and
 * counters (compares included) add up to the whole layer's. */
#ifndef UNIT_INTERNAL_SORTED_STREAM_S8_H
#define UNIT_INTERNAL_SORTED_STREAM_S8_H

#include "unit_internal_linear_stream_s8.h"
#include "unit_internal_sorted_s8.h"

static inline int32_t unit__accumulate_unit_sorted_s8(const int8_t *x, int32_t n, int32_t out,
                                                      const UNIT_TABLE int8_t *weight_sorted,
                                                      const UNIT_TABLE uint16_t *index,
                                                      const unit__quotient_method_s8 *q, int32_t *acc,
                                                      unit_counts *counts) {
    unit__sorted_tally_s8 tally = {0, 0, 0, 0, 0};
    if (index == 0 || out > 0xFFFFL || !unit__accumulate_s8_args_ok(x, n, out, weight_sorted, acc)) {
        return UNIT_ERR_ARGUMENT;
    }
    unit__sorted_inputs_s8(x, n, out, weight_sorted, index, q, acc, &tally);
#if UNIT_S8_COUNTS
    if (counts != 0) {
        unit__counts_set(counts, (int64_t)n * out, tally.zero_weight, tally.zero_activation, tally.executed,
                         tally.compares, tally.nonzero_inputs);
    }
#else
    (void)counts;
#endif
    return UNIT_OK;
}

#endif /* UNIT_INTERNAL_SORTED_STREAM_S8_H */
