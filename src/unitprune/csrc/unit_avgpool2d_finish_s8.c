/* SPDX-License-Identifier: MIT */
/* unit_avgpool2d_finish_s8.c -- y[i] = the mean of the count values summed in acc[i], rounded as
 * unit_avgpool2d_s8 (half away from zero) and clamped (see unit_kernels_stream_s8.h). */
#include "unit_internal_linear_stream_s8.h"

int32_t unit_avgpool2d_finish_s8(const int32_t *acc, int32_t n, int32_t count, int8_t *y) {
    int32_t i, half, mean;
    if (acc == 0 || y == 0 || n < 0 || count < 1 || count > 0xFFFFFFL) {
        return UNIT_ERR_ARGUMENT;
    }
    half = count / 2;
    for (i = 0; i < n; i++) {
        /* TFLite's reference: round half away from zero, C division truncates toward zero */
        mean = acc[i] > 0 ? (acc[i] + half) / count : (acc[i] - half) / count;
        mean = mean > 127 ? 127 : (mean < -128 ? -128 : mean);
        y[i] = (int8_t)mean;
    }
    return UNIT_OK;
}
