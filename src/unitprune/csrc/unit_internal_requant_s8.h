/* SPDX-License-Identifier: MIT */
/*
 * unit_internal_requant_s8.h -- the constants of the kernels' assembly output stage (private):
 * a run of accumulators requantized and clamped by
 *   AVR:    unit__requantize_run_fast_s8_avr (csrc/unit_requantize_s8_avr.S),
 *   MSP430: __unit_requantize_run_fast_s8 (mcu/targets/msp430/runtime/unit_requantize_s8_msp430.S),
 * computed once per output channel by unit__requant_run_init_s8 (docs/fixed_point.md, "The output
 * stage's single rounding").
 *
 * The fast form. For a shift -e with e in [8, 15] and a multiplier m in [2**30, 2**31) (what
 * QuantizeMultiplier gives for a real multiplier in [2**-15, 2**-7)), TFLite's two roundings of
 * MultiplyByQuantizedMultiplier are one: with A = |acc| and s = (acc < 0),
 *   h = floor((A*m + 2**30 - s) / 2**31),   |y| = floor((h + 2**(e-1)) / 2**e)
 *   => |y| = floor((A*m + 2**30 + 2**(30+e) - s) / 2**(31+e))
 * (floor((floor(X/a) + b)/c) = floor((X + a*b)/(a*c)) for integers a, c > 0). Scaled by 2**(17-e)
 * so that the result is the 4th 16-bit word of a 64-bit sum:
 *   |y| = floor((A*mm + K - s*2**(17-e)) / 2**48),  mm = m * 2**(17-e) < 2**40,  K = 2**47 + 2**(47-e).
 * A*mm and K are multiples of 2**(17-e), so for s = 1 the subtraction changes the quotient only when
 * A*mm + K is a multiple of 2**48 (the tie of the negative nudge), and subtracting 1 instead of
 * 2**(17-e) gives the same quotient: AVR computes X = A*mm + K and takes one off |y| when the low 48
 * bits of X are zero and acc < 0; MSP430 forms X - 1 directly. A >= 2**(e+8) gives
 * |y| >= 2**(e+8) * 2**30 / 2**(31+e) = 128, which the int8 clamp saturates (act_min >= -128), so
 * the product is at most 24 x 40 bits and X < 2**56 + 2**48 (|y| <= 256). Other multipliers and
 * shifts (fast == 0) take the general routine (unit__requantize_s8_avr / __unit_requantize_s8) per
 * output.
 */
#ifndef UNIT_INTERNAL_REQUANT_S8_H
#define UNIT_INTERNAL_REQUANT_S8_H

#include <stddef.h>

#include "unit_internal_dot_s8.h"

/* One output channel's output stage: y[i] = clamp(requantize(value i)), value i = base - stored[i]
 * on AVR, base + stored[i] on MSP430 (unit__dot_value_s8). The first 11 bytes are the layout of the
 * general routines' struct; the assembly reads the fields at their offsets:
 *   0 base, 4 multiplier, 8 shift, 9 act_min, 10 act_max, 11 fast (1: the fields below are set),
 *   12 mm: m * 2**(17-e) (three little-endian 16-bit words, the top one < 2**8; AVR),
 *   18 k: K's low 48 bits (three words; the low two are 0 for e <= 15),
 *   24 high: a 16-bit mask, A >= 2**(e+8) iff (A >> 16) & high != 0 (AVR: its low byte against A's
 *      third byte, after the fourth byte is tested for zero),
 *   26 jump (MSP430): the bytes of the unrolled shifts that A skips to be shifted by t - 1 = 16 - e
 *      (0 for e = 8: a byte swap; else 10 + 4 * (e - 9) of 7 single shifts of 4 bytes), since
 *      A*mm = (A << (t - 1)) * (2*m) with 2*m < 2**32,
 *   28 twice: 2*m (two words; MSP430),
 *   32 kneg: K's third word minus 1 (MSP430: for acc < 0 the sum X - 1 = A*mm + K - 1 is formed,
 *      |y| = floor((X - 1) / 2**48), the same as the tie correction above),
 *   34 thresholds (MSP430 builds only): the channel's threshold table (unit_requant_s8.thresholds, 128 entries;
 *      NULL: none), set by the kernel after the init; when set, any multiplier and shift take
 *      __unit_requantize_run_table_s8 (unit_requantize_run_table_s8_msp430.S): no multiply. */
typedef struct {
    int32_t base, multiplier;
    int8_t shift, act_min, act_max;
    uint8_t fast;
    uint16_t mm[3];
    uint16_t k[3];
    uint16_t high;
    uint16_t jump;
    uint16_t twice[2];
    uint16_t kneg;
#if defined(__MSP430__)
    const uint32_t *thresholds;
#endif
} unit__requant_run_s8;

/* The offsets the assembly reads (a negative array size stops the build if the layout moves). */
typedef char unit__requant_run_s8_layout[(offsetof(unit__requant_run_s8, fast) == 11 &&
                                          offsetof(unit__requant_run_s8, mm) == 12 &&
                                          offsetof(unit__requant_run_s8, k) == 18 &&
                                          offsetof(unit__requant_run_s8, high) == 24 &&
                                          offsetof(unit__requant_run_s8, jump) == 26 &&
                                          offsetof(unit__requant_run_s8, twice) == 28 &&
                                          offsetof(unit__requant_run_s8, kneg) == 32)
                                             ? 1
                                             : -1];
#if defined(__MSP430__)
typedef char unit__requant_run_s8_table_layout[offsetof(unit__requant_run_s8, thresholds) == 34 ? 1 : -1];
#endif

/* Fills s (base 0) for one output channel; multiplier and shift in the kernels' checked ranges. */
static inline void unit__requant_run_init_s8(unit__requant_run_s8 *s, int32_t multiplier, int32_t shift,
                                             int8_t act_min, int8_t act_max) {
    s->base = 0;
    s->multiplier = multiplier;
    s->shift = (int8_t)shift;
    s->act_min = act_min;
    s->act_max = act_max;
    s->fast = 0;
    s->mm[0] = s->mm[1] = s->mm[2] = 0;
    s->k[0] = s->k[1] = s->k[2] = 0;
    s->high = 0;
    s->jump = 0;
    s->twice[0] = s->twice[1] = 0;
    s->kneg = 0;
#if defined(__MSP430__)
    s->thresholds = 0;
#endif
    if (shift >= -15 && shift <= -8 && multiplier >= 0x40000000L) {
        const uint8_t t = (uint8_t)(17 + shift);     /* 17 - e in [2, 9] */
        const uint8_t above = (uint8_t)(-8 - shift); /* e - 8 in [0, 7] */
        const uint32_t m = (uint32_t)multiplier, low = m << t;
        s->mm[0] = (uint16_t)(low & 0xFFFFU);
        s->mm[1] = (uint16_t)(low >> 16);
        s->mm[2] = (uint16_t)(m >> (32 - t));
        s->k[2] = (uint16_t)(0x8000U | (1U << (7 - above))); /* 2**47 + 2**(47-e) */
        s->kneg = (uint16_t)(s->k[2] - 1U);
        s->high = (uint16_t)(0xFF00U | ((0xFFU << above) & 0xFFU));
        s->jump = (uint16_t)(above == 0 ? 0U : 10U + 4U * (above - 1U));
        s->twice[0] = (uint16_t)((m << 1) & 0xFFFFU);
        s->twice[1] = (uint16_t)(m >> 15);
        s->fast = 1;
    }
}

#if UNIT__DOT_ASM
/* y[i] = clamp(requantize(unit__dot_value_s8(s->base, stored[i]))) for i < count (1..255). */
#if defined(__AVR__)
void unit__requantize_run_fast_s8_avr(int8_t *y, const int32_t *stored, uint8_t count, const unit__requant_run_s8 *s);
#define UNIT__REQUANTIZE_RUN(y, stored, count, s) unit__requantize_run_fast_s8_avr(y, stored, (uint8_t)(count), s)
#else
void __unit_requantize_run_fast_s8(int8_t *y, const int32_t *stored, int16_t count, const unit__requant_run_s8 *s);
#define UNIT__REQUANTIZE_RUN(y, stored, count, s) __unit_requantize_run_fast_s8(y, stored, (int16_t)(count), s)
#endif
#endif

#endif /* UNIT_INTERNAL_REQUANT_S8_H */
