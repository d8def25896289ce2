/* SPDX-License-Identifier: MIT */
/*
 * unit_internal.h -- private helpers shared by the unit_*.c files (not part of the public API),
 * split by concern; this header includes them all:
 *   unit_internal_config.h     build options and the float convolutions' cost model;
 *   unit_internal_f32_bits.h   float32 bit tricks and the division approximations;
 *   unit_internal_lanes_f32.h  the float lane loops;
 *   unit_internal_geometry.h   type-independent convolution geometry (f32 and s8);
 *   unit_internal_counts.h     MAC-counter helpers (f32 and s8);
 *   unit_internal_conv_f32.h   the float convolution's shared channel loop and scratch layout.
 * Everything is `static inline` (or a private function) and prefixed `unit__`.
 */
#ifndef UNIT_INTERNAL_H
#define UNIT_INTERNAL_H

#include "unit_kernels.h"
#include "unit_internal_config.h"
#include "unit_internal_f32_bits.h"
#include "unit_internal_lanes_f32.h"
#include "unit_internal_geometry.h"
#include "unit_internal_counts.h"
#include "unit_internal_conv_f32.h"

#endif /* UNIT_INTERNAL_H */
