/* SPDX-License-Identifier: MIT */
/*
 * unit_internal_sorted_s8.h -- the early-exit UnIT linear kernels (unit_linear_unit_sorted_*_s8),
 * private. Each input's weight column is sorted by |w| at export, largest first, and ends with a
 * zero (the sentinel): weight_sorted [in][out + 1] int8, index [in][out] uint16 (the output of each
 * sorted weight). Per nonzero input x_i the quotient t_i is computed as in the other UnIT linear
 * kernels (bitshift, bintree, table), then the column is walked while |w| > t_i: the kept weights
 * are exactly the first ones, so the walk stops at the first |w| <= t_i (a zero weight, the
 * sentinel at the latest) and no rejected weight after it is read.
 */
#ifndef UNIT_INTERNAL_SORTED_S8_H
#define UNIT_INTERNAL_SORTED_S8_H

#include "unit_internal_s8.h"

#define UNIT__READ_U16(p) ((uint16_t)UNIT_READ_S16(p))

/* acc[index[k]] += x * w[k] for the leading w[k] with |w[k]| > t (t in [0, 127]); returns their
 * count (the walk always stops: the column ends with a zero). */
UNIT__COLUMN_FN int32_t unit__column_sorted_s8(int32_t *acc, const UNIT_TABLE int8_t *w,
                                               const UNIT_TABLE uint16_t *index, int8_t x, uint8_t t) {
    const uint8_t t2 = (uint8_t)(t + t);
    const UNIT_TABLE int8_t *start = w;
    int8_t wv = UNIT_READ_S8(w);
    while (unit__keep_s8(wv, t, t2)) {
        unit__mac_s8(acc + UNIT__READ_U16(index), x, wv);
        index++;
        wv = UNIT_READ_S8(++w);
    }
    return (int32_t)(w - start);
}

/* The columns are sorted with a zero sentinel and every index names an output (the public
 * unit_linear_sorted_s8_check: a pass over the tables, as long as a dense layer, so the kernels do
 * not repeat it per call; the exporter's tables pass it by construction, and the bindings call it). */
static inline int32_t unit__sorted_columns_check(const UNIT_TABLE int8_t *w, const UNIT_TABLE uint16_t *index,
                                                 int32_t in, int32_t out) {
    int32_t i, k;
    if (w == 0 || index == 0) {
        return UNIT_ERR_ARGUMENT;
    }
    for (i = 0; i < in; i++, w += out + 1, index += out) {
        uint8_t previous = 255;
        if (UNIT_READ_S8(w + out) != 0) {
            return UNIT_ERR_ARGUMENT;
        }
        for (k = 0; k < out; k++) {
            const uint8_t a = unit__abs_s8(UNIT_READ_S8(w + k));
            if (a > previous || UNIT__READ_U16(index + k) >= (uint16_t)out) {
                return UNIT_ERR_ARGUMENT;
            }
            previous = a;
        }
    }
    return UNIT_OK;
}

/* The counters of the input loop (UNIT_S8_COUNTS builds). */
typedef struct {
    int64_t zero_weight, zero_activation, executed, nonzero_inputs, compares;
} unit__sorted_tally_s8;

/* acc[j] += the kept products of the inputs x[0..n) (their columns weight_sorted [n][out + 1] and
 * index [n][out]); the counters added to *tally in counted builds. The early exit is per input
 * column, so a layer's inputs may come in slices (unit_internal_sorted_stream_s8.h). */
static inline void unit__sorted_inputs_s8(const int8_t *x, int32_t n, int32_t out, const UNIT_TABLE int8_t *column,
                                          const UNIT_TABLE uint16_t *column_index, const unit__quotient_method_s8 *q,
                                          int32_t *acc, unit__sorted_tally_s8 *tally) {
    int32_t i;
    for (i = 0; i < n; i++, column += out + 1, column_index += out) {
        const int8_t xv = x[i];
        uint8_t t;
        int32_t kept = 0;
#if UNIT_S8_COUNTS
        const int32_t zeros = unit__column_zeros_s8(column, out);
        tally->compares++;
#endif
        if (xv == 0) {
#if UNIT_S8_COUNTS
            tally->zero_weight += zeros;
            tally->zero_activation += out - zeros;
#endif
            continue;
        }
        t = unit__quotient_s8(q, unit__abs_s8(xv));
        if (t < 128U) {
            kept = unit__column_sorted_s8(acc, column, column_index, xv, t);
#if UNIT_S8_COUNTS
            tally->compares += kept + 1; /* the kept weights and the one that stops the walk */
#endif
        }
#if UNIT_S8_COUNTS
        tally->zero_weight += zeros;
        tally->executed += kept;
        tally->nonzero_inputs++;
#else
        (void)kept;
#endif
    }
#if !UNIT_S8_COUNTS
    (void)tally;
#endif
}

/* The kernel for one quotient method (inlined with a constant method into each public kernel). */
static inline int32_t unit__linear_unit_sorted_s8(const int8_t *x, int32_t batch, int32_t in, int32_t out,
                                                  const UNIT_TABLE int8_t *weight_sorted,
                                                  const UNIT_TABLE uint16_t *index,
                                                  const unit__quotient_method_s8 *q, const unit_requant_s8 *requant,
                                                  int8_t *y, int32_t *scratch, unit_counts *counts) {
    int32_t n;
    unit__sorted_tally_s8 tally = {0, 0, 0, 0, 0};
    if (out > 0xFFFFL) {
        return UNIT_ERR_ARGUMENT;
    }
    for (n = 0; n < batch; n++) {
        unit__linear_init_s8(scratch, out, requant);
        unit__sorted_inputs_s8(x + (ptrdiff_t)n * in, in, out, weight_sorted, index, q, scratch, &tally);
        unit__linear_store_s8(scratch, out, requant, y + (ptrdiff_t)n * out);
    }
#if UNIT_S8_COUNTS
    if (counts != 0) {
        unit__counts_set(counts, (int64_t)batch * in * out, tally.zero_weight, tally.zero_activation, tally.executed,
                         tally.compares, tally.nonzero_inputs);
    }
#else
    (void)counts;
    (void)tally;
#endif
    return UNIT_OK;
}

#endif /* UNIT_INTERNAL_SORTED_S8_H */
