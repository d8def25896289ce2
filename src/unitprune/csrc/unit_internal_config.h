/* SPDX-License-Identifier: MIT */
/*
 * unit_internal_config.h -- build options of the kernels (private): the cost model of the float convolution paths and the
 * MCU switches UNIT__BYTE_FIELDS / UNIT__RARE. Everything is a macro, overridable with -D.
 */
#ifndef UNIT_INTERNAL_CONFIG_H
#define UNIT_INTERNAL_CONFIG_H

#include <stdint.h>

/* Cost model of the convolution paths, in "lanes of a long vectorised multiply-add loop", fitted
 * on x86-64 with SSE2 to the Table-1 MNIST/KWS convolutions (each path forced, see docs/kernels.md;
 * the choice is right for all 16 measured cases, and for a range of values around these):
 * - activation-stationary: each lane run costs UNIT__RUN_OVERHEAD lanes on top of its own lanes;
 * - dense output rows cost UNIT__ROW_OVERHEAD lanes on top of their own lanes;
 * - weight-stationary: every weight that can keep anything costs, per output row, its masked
 *   lanes at UNIT__MASKED_NUM / UNIT__MASKED_DEN plain lanes each plus UNIT__BLOCK_OVERHEAD.
 * On MCUs (UNIT_SKIP_BRANCH) there is no SIMD: every kept connection costs about the same
 * whatever the loop, and skipping a zero always beats multiplying it. */
#if defined(UNIT_SKIP_BRANCH) && UNIT_SKIP_BRANCH
#define UNIT__RUN_OVERHEAD 0
#define UNIT__ROW_OVERHEAD 0
#define UNIT__MASKED_NUM 1
#define UNIT__MASKED_DEN 1
#define UNIT__BLOCK_OVERHEAD 0
#else /* overridable with -D for tuning (benchmarks) */
#ifndef UNIT__RUN_OVERHEAD
#define UNIT__RUN_OVERHEAD 75
#endif
#ifndef UNIT__ROW_OVERHEAD
#define UNIT__ROW_OVERHEAD 30
#endif
#ifndef UNIT__MASKED_NUM
#define UNIT__MASKED_NUM 3
#endif
#ifndef UNIT__MASKED_DEN
#define UNIT__MASKED_DEN 2
#endif
#ifndef UNIT__BLOCK_OVERHEAD
#define UNIT__BLOCK_OVERHEAD 25
#endif
#endif

/* UNIT__BYTE_FIELDS: read and write float exponent fields with byte-sized shifts (8-bit MCUs,
 * where avr-gcc compiles a 32-bit shift by 23 into a 23-step loop of ~160 cycles) instead of
 * one 32-bit shift (hosts, where that is one instruction and the byte form measured 2x slower).
 * On by default for AVR and for the MCU build (UNIT_SKIP_BRANCH); both forms give identical bits. */
#ifndef UNIT__BYTE_FIELDS
#if defined(__AVR__) || (defined(UNIT_SKIP_BRANCH) && UNIT_SKIP_BRANCH)
#define UNIT__BYTE_FIELDS 1
#else
#define UNIT__BYTE_FIELDS 0
#endif
#endif

/* UNIT__RARE marks the rarely taken cases of the approximations. On MCUs (UNIT__BYTE_FIELDS) they
 * are kept out of line: inlined into a loop they cost the fast path register spills. On hosts
 * they stay inline so that loops over the approximations can still become vector selects. */
#if UNIT__BYTE_FIELDS && defined(__GNUC__)
#define UNIT__RARE static __attribute__((noinline, unused)) /* unused: no warning where not called */
#else
#define UNIT__RARE static inline
#endif

#endif /* UNIT_INTERNAL_CONFIG_H */
