/* SPDX-License-Identifier: MIT */
/* unit_requantize_s8.c -- TFLite MultiplyByQuantizedMultiplier (see unit_kernels_s8.h). */
#include "unit_internal_s8.h"

int32_t unit_requantize_s8(int32_t acc, int32_t multiplier, int32_t shift) {
    return unit__requantize_s8(acc, multiplier, shift);
}
