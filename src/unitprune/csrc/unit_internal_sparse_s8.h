/* SPDX-License-Identifier: MIT */
/*
 * unit_internal_sparse_s8.h -- the output-stationary inner loop of the static-sparse int8 kernels
 * (private; unit_conv2d_sparse_s8.c, unit_linear_sparse_s8.c; the table layout is documented with
 * unit_sparse_s8 in unit_kernels_s8.h).
 *
 * A *run* is `count` outputs of one output channel whose receptive fields lie wholly inside the
 * input, `stride` input elements apart (an output row's interior, or one Linear output). Every
 * output of the run is the dot product of the channel's nonzero weights with the activations at
 * their offsets from the output's field origin; zero weights are not stored, so they cost nothing.
 * The accumulator is in registers from the first nonzero to the last.
 *
 * Implementations, all storing out[i] as unit__dot_value_s8 (unit_internal_dot_s8.h) reads it back
 * with base = unit__dot_base_s8(bias, nnz):
 *   portable C99 (unit__sparse_run_s8_c), the host build and the reference;
 *   AVR (csrc/unit_conv2d_sparse_s8_avr.S): a run of up to 255 outputs 1 or 2 inputs apart in one
 *     call, four outputs per pass over the records, then one by one (other strides: one output
 *     per call); out[i] = -(sum of (x*w + 32768)) modulo 2**32, 24-bit accumulators, exact for
 *     nnz <= 341 (UNIT__SPARSE_AVR_MAX; longer channels take the C run);
 *   MSP430 with and without the hardware multiplier
 *     (mcu/targets/msp430/runtime/unit_conv2d_sparse_s8_msp430[_hwmult].S): one output per pass,
 *     32-bit accumulation, out[i] = the dot product.
 */
#ifndef UNIT_INTERNAL_SPARSE_S8_H
#define UNIT_INTERNAL_SPARSE_S8_H

#include "unit_internal_dot_s8.h"

/* Channels of more nonzeros take the C run on AVR (24-bit accumulators: 341 * 49152 < 2**24). */
#define UNIT__SPARSE_AVR_MAX 341

#if UNIT__DOT_ASM && defined(__AVR__)
/* out[0..count) for outputs 1 (2) input(s) apart; nnz >= 1, count >= 1. */
void unit__sparse_run_s8_avr(int32_t *out, const int8_t *x, const int16_t *records, uint16_t nnz, uint8_t count);
void unit__sparse_run_s2_s8_avr(int32_t *out, const int8_t *x, const int16_t *records, uint16_t nnz, uint8_t count);
#elif UNIT__DOT_ASM
/* The MSP430 run descriptor: int16 fields at offsets 0, 2, 4. */
typedef struct {
    int16_t nnz;    /* records, >= 1 */
    int16_t count;  /* outputs, >= 1 */
    int16_t stride; /* input distance of two outputs */
} unit__sparse_msp430_run_s8;
void __unit_sparse_run_s8(int32_t *out, const int8_t *x, const int16_t *records, const unit__sparse_msp430_run_s8 *run);
#endif

/* Portable run: out[i] = sum over the records of w * x[i*stride + offset] (exact int32). */
static inline void unit__sparse_run_s8_c(int32_t *out, const int8_t *x, const UNIT_TABLE int16_t *records,
                                         int32_t nnz, int32_t count, ptrdiff_t stride) {
    int32_t i, k;
    for (i = 0; i < count; i++, x += stride) {
        const UNIT_TABLE int16_t *r = records;
        int32_t acc = 0;
        for (k = 0; k < nnz; k++, r += 2) {
            acc += (int16_t)(x[(uint16_t)UNIT_READ_S16(r)] * UNIT_READ_S16(r + 1));
        }
        out[i] = acc;
    }
}

/* A run on this target: returns 1 if out[] holds the assembly convention (base - stored on AVR),
 * 0 if it holds plain sums (the C run). nnz >= 1. */
static inline int unit__sparse_run_s8(int32_t *out, const int8_t *x, const UNIT_TABLE int16_t *records,
                                      int32_t nnz, int32_t count, ptrdiff_t stride) {
#if UNIT__DOT_ASM && defined(__AVR__)
    if (nnz <= UNIT__SPARSE_AVR_MAX) {
        const uint16_t n = (uint16_t)nnz;
        if (stride == 1 || stride == 2) {
            while (count > 0) {
                const uint8_t part = (uint8_t)(count < 255 ? count : 255);
                if (stride == 1) {
                    unit__sparse_run_s8_avr(out, x, records, n, part);
                } else {
                    unit__sparse_run_s2_s8_avr(out, x, records, n, part);
                }
                count -= part;
                out += part;
                x += part * stride;
            }
        } else {
            for (; count > 0; count--, out++, x += stride) {
                unit__sparse_run_s8_avr(out, x, records, n, 1);
            }
        }
        return 1;
    }
#elif UNIT__DOT_ASM
    if (stride <= 0x7FFF) {
        unit__sparse_msp430_run_s8 run;
        run.nnz = (int16_t)nnz;
        run.count = (int16_t)count;
        run.stride = (int16_t)stride;
        __unit_sparse_run_s8(out, x, records, &run);
        return 1;
    }
#endif
    unit__sparse_run_s8_c(out, x, records, nnz, count, stride);
    return 0;
}

#endif /* UNIT_INTERNAL_SPARSE_S8_H */
