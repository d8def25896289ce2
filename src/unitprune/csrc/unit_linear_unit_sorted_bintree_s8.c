/* SPDX-License-Identifier: MIT */
/* unit_linear_unit_sorted_bintree_s8.c -- int8 UnIT linear layer with sorted columns (early exit),
 * t_i by a walk of the quotient tree (see unit_kernels_s8.h; unit_internal_sorted_s8.h). */
#include "unit_internal_sorted_s8.h"

int32_t unit_linear_unit_sorted_bintree_s8(const int8_t *x, int32_t batch, int32_t in_features,
                                           int32_t out_features, const UNIT_TABLE int8_t *weight_sorted,
                                           const UNIT_TABLE uint16_t *index, const unit_quotient_tree_s8 *tree,
                                           const unit_requant_s8 *requant, int8_t *y, int32_t *scratch,
                                           unit_counts *counts) {
    unit__quotient_method_s8 q;
    int32_t status = unit__tree_s8_check(tree);
    if (status != UNIT_OK || index == 0) {
        return UNIT_ERR_ARGUMENT;
    }
    status = unit__linear_s8_begin(x, batch, in_features, out_features, weight_sorted, requant, y, scratch);
    if (status != UNIT_OK) {
        return status;
    }
    q.method = UNIT__QUOTIENT_BINTREE;
    q.threshold_shifted = 0;
    q.shift_start = 0;
    q.tree = tree;
    q.table = 0;
    return unit__linear_unit_sorted_s8(x, batch, in_features, out_features, weight_sorted, index, &q, requant, y,
                                       scratch, counts);
}
