/* SPDX-License-Identifier: MIT */
/* unit_linear_sorted_s8_check.c -- UNIT_OK if the sorted tables of unit_linear_unit_sorted_*_s8 are
 * well formed (each column sorted by |w|, largest first, ending with a zero; every index < out),
 * else UNIT_ERR_ARGUMENT (see unit_kernels_s8.h). */
#include "unit_internal_sorted_s8.h"

int32_t unit_linear_sorted_s8_check(const UNIT_TABLE int8_t *weight_sorted, const UNIT_TABLE uint16_t *index,
                                    int32_t in_features, int32_t out_features) {
    if (in_features < 1 || out_features < 1 || out_features > 0xFFFFL) {
        return UNIT_ERR_ARGUMENT;
    }
    return unit__sorted_columns_check(weight_sorted, index, in_features, out_features);
}
