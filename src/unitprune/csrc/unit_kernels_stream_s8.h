/* SPDX-License-Identifier: MIT */
/* unit_kernels_stream_s8.h -- the int8 kernels of a row-streamed (fused) model: a linear layer
 * whose input arrives in slices (the rows of the tensor before it) and is accumulated slice by
 * slice into int32 sums, then requantized once.
 *
 *   unit_linear_start_s8(out, requant, acc);                 acc[j] = bias[j]
 *   unit_linear_accumulate_<variant>_s8(x, n, out, w, ..., acc, counts)   per slice
 *   unit_linear_finish_s8(acc, out, requant, y);             y[j] = clamp(requantize(acc[j]))
 *
 * The accumulate kernels do exactly what the whole-layer kernel (unit_linear_<variant>_s8) does
 * for the inputs x[0..n) whose transposed weight columns are weight_t[0..n*out): the same skips,
 * so the slices' sums and counters (set for the slice, not added) add up to the whole layer's.
 * acc is caller memory of out int32 values; it is not the shared conv scratch.
 *
 * An average pool whose window spans the whole input height (a global pool) streams the same way:
 *   acc[c][ox] = 0, then per input row unit_avgpool2d_accumulate_s8(row, ...) adds the row's
 *   window sums, then unit_avgpool2d_finish_s8 divides with unit_avgpool2d_s8's rounding. */
#ifndef UNIT_KERNELS_STREAM_S8_H
#define UNIT_KERNELS_STREAM_S8_H

#include "unit_kernels_s8.h"

int32_t unit_linear_start_s8(int32_t out_features, const unit_requant_s8 *requant, int32_t *acc);
int32_t unit_linear_finish_s8(const int32_t *acc, int32_t out_features, const unit_requant_s8 *requant, int8_t *y);
int32_t unit_linear_accumulate_dense_s8(const int8_t *x, int32_t n, int32_t out_features,
                                        const UNIT_TABLE int8_t *weight_t, int32_t *acc, unit_counts *counts);
int32_t unit_linear_accumulate_zeroskip_s8(const int8_t *x, int32_t n, int32_t out_features,
                                           const UNIT_TABLE int8_t *weight_t, int32_t *acc, unit_counts *counts);
int32_t unit_linear_accumulate_unit_bitshift_s8(const int8_t *x, int32_t n, int32_t out_features,
                                                const UNIT_TABLE int8_t *weight_t, int32_t threshold_q,
                                                int32_t shift_start, int32_t *acc, unit_counts *counts);
int32_t unit_linear_accumulate_unit_bintree_s8(const int8_t *x, int32_t n, int32_t out_features,
                                               const UNIT_TABLE int8_t *weight_t, const unit_quotient_tree_s8 *tree,
                                               int32_t *acc, unit_counts *counts);
int32_t unit_linear_accumulate_unit_table_s8(const int8_t *x, int32_t n, int32_t out_features,
                                             const UNIT_TABLE int8_t *weight_t, const UNIT_TABLE uint8_t *quotients,
                                             int32_t *acc, unit_counts *counts);
/* The early-exit form (columns sorted by |w|, unit_linear_unit_sorted_*_s8): weight_sorted
 * [n][out + 1] and index [n][out] of the slice's inputs, the layout of unit_kernels_s8.h; the early
 * exit is per input column, so the slices' sums and counters (compares included) add up exactly. */
int32_t unit_linear_accumulate_unit_sorted_bitshift_s8(const int8_t *x, int32_t n, int32_t out_features,
                                                       const UNIT_TABLE int8_t *weight_sorted,
                                                       const UNIT_TABLE uint16_t *index, int32_t threshold_q,
                                                       int32_t shift_start, int32_t *acc, unit_counts *counts);
int32_t unit_linear_accumulate_unit_sorted_bintree_s8(const int8_t *x, int32_t n, int32_t out_features,
                                                      const UNIT_TABLE int8_t *weight_sorted,
                                                      const UNIT_TABLE uint16_t *index,
                                                      const unit_quotient_tree_s8 *tree, int32_t *acc,
                                                      unit_counts *counts);
int32_t unit_linear_accumulate_unit_sorted_table_s8(const int8_t *x, int32_t n, int32_t out_features,
                                                    const UNIT_TABLE int8_t *weight_sorted,
                                                    const UNIT_TABLE uint16_t *index,
                                                    const UNIT_TABLE uint8_t *quotients, int32_t *acc,
                                                    unit_counts *counts);

int32_t unit_avgpool2d_accumulate_s8(const int8_t *x, int32_t channels, int32_t in_width, int32_t kernel_width,
                                     int32_t stride_x, int32_t *acc);
int32_t unit_avgpool2d_finish_s8(const int32_t *acc, int32_t n, int32_t count, int8_t *y);

/* unit_table_offset_s8: table + offset (offset >= 0) for a table in flash, also beyond 32 KB on
 * an AVR far table (where avr-gcc adds integers to a __memx pointer in 16 bits). */
const UNIT_TABLE int8_t *unit_table_offset_s8(const UNIT_TABLE int8_t *table, int32_t offset);

#endif /* UNIT_KERNELS_STREAM_S8_H */
