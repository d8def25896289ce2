/* SPDX-License-Identifier: MIT */
/* unit_internal_linear_dot_s8.h -- the output-stationary dot product of the dense int8 linear
 * layer (private): bias + sum over i < n of x[i] * w[i * stride], the accumulator in registers.
 * unit_linear_dense_s8 calls it per output; unit_linear_accumulate_dense_s8 per output and input
 * slice (the running sum as the bias). Assembly on AVR (csrc/unit_linear_dense_s8_avr.S) and MSP430
 * (mcu/targets/msp430/runtime/unit_linear_dense_s8_msp430.S): a kernel that includes this header is
 * linked with unit_linear_dense_s8 (whose AVR assembly variant holds the routine). */
#ifndef UNIT_INTERNAL_LINEAR_DOT_S8_H
#define UNIT_INTERNAL_LINEAR_DOT_S8_H

#include <stddef.h>

#include "unit_internal_dot_s8.h"

#if UNIT__DOT_ASM && defined(__AVR__)
/* -(sum of ceil(n/2) biased pair sums): unit__dot_value_s8 with that many terms */
int32_t unit__linear_dot_s8_avr(const int8_t *x, const UNIT_TABLE int8_t *w, uint16_t n, uint16_t stride);
#elif UNIT__DOT_ASM && defined(__MSP430__)
int32_t __unit_linear_dot_s8(const int8_t *x, const int8_t *w, int16_t n, int16_t stride);
#endif

/* bias + sum over i < n of x[i] * w[i * stride] (n >= 1; on the MCUs n and stride fit 16 bits: x and
 * the weights lie in their memory) */
static inline int32_t unit__linear_dot_s8(const int8_t *x, const UNIT_TABLE int8_t *w, int32_t n, int32_t stride,
                                   int32_t bias) {
#if UNIT__DOT_ASM && defined(__AVR__)
    return unit__dot_value_s8(unit__dot_base_s8(bias, (n + 1) / 2),
                              unit__linear_dot_s8_avr(x, w, (uint16_t)n, (uint16_t)stride));
#elif UNIT__DOT_ASM && defined(__MSP430__)
    return (int32_t)((uint32_t)bias + (uint32_t)__unit_linear_dot_s8(x, w, (int16_t)n, (int16_t)stride));
#else
    int32_t acc = bias;
    ptrdiff_t i;
    for (i = (ptrdiff_t)n; i != 0; i--, w += stride) {
        unit__mac_s8(&acc, *x++, UNIT_READ_S8(w));
    }
    return acc;
#endif
}

#endif /* UNIT_INTERNAL_LINEAR_DOT_S8_H */
