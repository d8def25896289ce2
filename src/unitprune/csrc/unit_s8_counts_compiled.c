/* SPDX-License-Identifier: MIT */
/* unit_s8_counts_compiled.c -- whether this build counts MACs in the int8 kernels (UNIT_S8_COUNTS,
 * see unit_kernels_s8.h): 1 or 0. Lets a host binding tell "not counted" from "counted zero". */
#include "unit_internal_s8.h"

int32_t unit_s8_counts_compiled(void) {
    return UNIT_S8_COUNTS ? 1 : 0;
}
