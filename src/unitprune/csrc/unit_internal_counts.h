/* SPDX-License-Identifier: MIT */
/*
 * unit_internal_counts.h -- MAC-counter helpers shared by every number type (private).
 */
#ifndef UNIT_INTERNAL_COUNTS_H
#define UNIT_INTERNAL_COUNTS_H

#include "unit_types.h"

/* The counters of one call: `threshold` is what remains of `dense` after the other causes
 * (every connection has exactly one cause, docs/semantics.md). */
static inline void unit__counts_set(unit_counts *counts, int64_t dense, int64_t zero_weight, int64_t zero_activation,
                                    int64_t executed, int64_t compares, int64_t divisions) {
    counts->dense = dense;
    counts->zero_weight = zero_weight;
    counts->zero_activation = zero_activation;
    counts->threshold = dense - zero_weight - zero_activation - executed;
    counts->executed = executed;
    counts->compares = compares;
    counts->divisions = divisions;
}

#endif /* UNIT_INTERNAL_COUNTS_H */
