/* SPDX-License-Identifier: MIT */
/* unit_linear_accumulate_unit_sorted_bintree_s8.c -- acc += the kept products of a slice of an
 * early-exit UnIT linear layer's inputs (columns sorted by |w|), t_i by the binary tree as
 * unit_linear_unit_sorted_bintree_s8 (see unit_kernels_stream_s8.h). */
#include "unit_internal_sorted_stream_s8.h"

int32_t unit_linear_accumulate_unit_sorted_bintree_s8(const int8_t *x, int32_t n, int32_t out_features,
                                                      const UNIT_TABLE int8_t *weight_sorted,
                                                      const UNIT_TABLE uint16_t *index,
                                                      const unit_quotient_tree_s8 *tree, int32_t *acc,
                                                      unit_counts *counts) {
    unit__quotient_method_s8 q;
    int32_t status = unit__tree_s8_check(tree);
    if (status != UNIT_OK) {
        return status;
    }
    q.method = UNIT__QUOTIENT_BINTREE;
    q.threshold_shifted = 0;
    q.shift_start = 0;
    q.tree = tree;
    q.table = 0;
    return unit__accumulate_unit_sorted_s8(x, n, out_features, weight_sorted, index, &q, acc, counts);
}
