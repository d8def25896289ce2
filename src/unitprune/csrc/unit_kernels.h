/* SPDX-License-Identifier: MIT */
/*
 * unit_kernels.h -- the umbrella header of unitprune's C kernels (as CMSIS-NN's arm_nnfunctions.h):
 *   unit_types.h        status codes, version, counters, convolution geometry, flash macros;
 *   unit_kernels_f32.h  the float32 UnIT kernels (host library, float firmware);
 *   unit_kernels_s8.h   the int8 fixed-point kernels (docs/fixed_point.md), for MCUs.
 * Include this one, or only the header of the number type you use.
 */
#ifndef UNIT_KERNELS_H
#define UNIT_KERNELS_H

#include "unit_types.h"
#include "unit_kernels_f32.h"
#include "unit_kernels_s8.h"

#endif /* UNIT_KERNELS_H */
