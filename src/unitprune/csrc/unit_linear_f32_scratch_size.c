/* unit_linear_f32_scratch_size.c -- bytes of scratch unit_linear_f32 needs (see unit_kernels.h). */
#include "unit_internal.h"

int32_t unit_linear_f32_scratch_size(const unit_linear_plan *plan) {
    if (plan == 0 || plan->in_features < 1 || plan->in_features > (INT32_MAX - 15) / 4) {
        return UNIT_ERR_ARGUMENT;
    }
    return (int32_t)unit__align16(4 * (int64_t)plan->in_features);
}
