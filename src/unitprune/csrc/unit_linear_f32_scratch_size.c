/* SPDX-License-Identifier: MIT */
/* unit_linear_f32_scratch_size.c -- bytes of scratch unit_linear_f32 needs (see unit_kernels.h). */
#include "unit_internal.h"

int32_t unit_linear_f32_scratch_size(const unit_linear_plan_f32 *plan) {
    int64_t bytes;
    if (plan == 0 || plan->in_features < 1 || plan->lanes < 1) {
        return UNIT_ERR_ARGUMENT;
    }
    /* the list of a row's inputs, then the row's accumulator */
    bytes = unit__align16(4 * (int64_t)plan->in_features) + unit__align16(4 * (int64_t)plan->lanes);
    if (bytes > INT32_MAX) {
        return UNIT_ERR_ARGUMENT;
    }
    return (int32_t)bytes;
}
