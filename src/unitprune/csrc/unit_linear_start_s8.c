/* SPDX-License-Identifier: MIT */
/* unit_linear_start_s8.c -- acc[j] = bias[j]: the start of a streamed linear layer (see
 * unit_kernels_stream_s8.h). */
#include "unit_internal_linear_stream_s8.h"

int32_t unit_linear_start_s8(int32_t out_features, const unit_requant_s8 *requant, int32_t *acc) {
    int32_t status;
    if (out_features < 1 || out_features > 0x1FFFFFFFL || acc == 0) {
        return UNIT_ERR_ARGUMENT;
    }
    status = unit__requant_s8_check(requant, out_features);
    if (status != UNIT_OK) {
        return status;
    }
    unit__linear_init_s8(acc, out_features, requant);
    return UNIT_OK;
}
