/* SPDX-License-Identifier: MIT */
/* unit_kernels_version.c -- API/ABI version of the compiled library (see unit_kernels.h). */
#include "unit_kernels.h"

int32_t unit_kernels_version(void) {
    return (int32_t)UNIT_KERNELS_VERSION;
}
