/* SPDX-License-Identifier: MIT */
/*
 * unit_internal_f32_bits.h -- float32 bit tricks (private): IEEE-754 fields, exact power-of-two scaling and the
 * division approximations on bit patterns (memcpy, no type-punning through pointers, no libm).
 */
#ifndef UNIT_INTERNAL_F32_BITS_H
#define UNIT_INTERNAL_F32_BITS_H

#include <stdint.h>

/* The bit casts copy 4 bytes; GCC and clang inline __builtin_memcpy (no <string.h> needed, so
 * freestanding MSP430 builds without a libc compile too), others use the library memcpy. */
#if defined(__GNUC__)
#define UNIT__MEMCPY __builtin_memcpy
#else
#include <string.h>
#define UNIT__MEMCPY memcpy
#endif

#include "unit_internal_config.h"
#include "unit_kernels_f32.h"

#define UNIT__ABS_MASK 0x7FFFFFFFUL
#define UNIT__INF_BITS ((uint32_t)UNIT_F32_INF_BITS)

static inline uint32_t unit__f32_bits(float value) {
    uint32_t bits;
    UNIT__MEMCPY(&bits, &value, sizeof bits);
    return bits;
}

static inline float unit__bits_f32(uint32_t bits) {
    float value;
    UNIT__MEMCPY(&value, &bits, sizeof value);
    return value;
}

/* e(v) of a positive finite float given by its bits: 2**(e-1) <= v < 2**e (frexp's exponent).
 * Written without loops or branches so that loops over it vectorise: a subnormal
 * v = m * 2**-149 has e(v) = e(m) - 149, and m < 2**23 converts to float exactly. */
static inline int32_t unit__exponent(uint32_t bits) {
    int32_t field = (int32_t)((bits >> 23) & 0xFFUL);
    float mantissa = (float)(int32_t)(bits & 0x7FFFFFUL);
    int32_t subnormal = (int32_t)((unit__f32_bits(mantissa) >> 23) & 0xFFUL) - 126 - 149;
    return field != 0 ? field - 126 : subnormal;
}

/* Bits of the float32 2**p: +inf above 2**127, 0 below 2**-149, subnormal in between
 * (branch-free: both candidate encodings are computed with in-range shifts, then selected). */
static inline uint32_t unit__pow2_bits(int32_t p) {
    uint32_t normal = (uint32_t)((p + 127) & 0xFF) << 23;
    int32_t shift = p + 149;
    uint32_t subnormal = (uint32_t)1 << (shift < 0 ? 0 : (shift > 22 ? 22 : shift));
    uint32_t result = p >= -126 ? normal : subnormal;
    result = p > 127 ? UNIT__INF_BITS : result;
    return p < -149 ? 0 : result;
}

/* Bits of v * 2**k for a finite v >= 0 given by its bits, rounded once to nearest-even
 * (overflow gives +inf, underflow gives a subnormal or 0): the exact float32 ldexp. */
static inline uint32_t unit__scale_pow2_bits(uint32_t bits, int32_t k) {
    int32_t field = (int32_t)((bits >> 23) & 0xFFUL);
    uint32_t mantissa = bits & 0x7FFFFFUL;
    int32_t exponent; /* value = mantissa * 2**exponent, mantissa in [2**23, 2**24) */
    int32_t new_field;
    int32_t shift;
    uint32_t quotient, remainder, half;
    if (bits == 0) {
        return 0;
    }
    if (k > 400) {
        k = 400; /* saturates anyway: the value is at least 2**-149 */
    } else if (k < -400) {
        k = -400; /* rounds to 0 anyway: the value is below 2**128 */
    }
    if (field == 0) {
        exponent = -149;
        while (mantissa < 0x800000UL) {
            mantissa <<= 1;
            exponent--;
        }
    } else {
        mantissa |= 0x800000UL;
        exponent = field - 150;
    }
    new_field = exponent + k + 150;
    if (new_field >= 255) {
        return UNIT__INF_BITS;
    }
    if (new_field >= 1) {
        return ((uint32_t)new_field << 23) | (mantissa & 0x7FFFFFUL);
    }
    shift = 1 - new_field; /* subnormal result: mantissa * 2**-shift units of 2**-149 */
    if (shift > 25) {
        return 0;
    }
    quotient = mantissa >> shift;
    remainder = mantissa & (((uint32_t)1 << shift) - 1);
    half = (uint32_t)1 << (shift - 1);
    if (remainder > half || (remainder == half && (quotient & 1))) {
        quotient++;
    }
    return quotient;
}

/* EXACT and BITMASK quotients from the bits of T >= 0 and c >= 0 (finite), written as selects
 * without branches so that loops over them vectorise. c == 0 gives +inf, T == 0 gives 0. */
static inline uint32_t unit__exact_bits(uint32_t threshold_bits, uint32_t control_bits) {
    uint32_t result = unit__f32_bits(unit__bits_f32(threshold_bits) / unit__bits_f32(control_bits));
    result = threshold_bits == 0 ? 0 : result;
    return control_bits == 0 ? UNIT__INF_BITS : result;
}

/* The exponent field (bits 23..30) of a float's bits (sign ignored), and the bits with that
 * field replaced (0 <= field <= 255; the sign bit of the result is 0). See UNIT__BYTE_FIELDS. */
static inline int16_t unit__exponent_field(uint32_t bits) {
#if UNIT__BYTE_FIELDS
    uint8_t high = (uint8_t)((uint8_t)(bits >> 24) & 0x7FU); /* shifts by whole bytes: moves */
    uint8_t next = (uint8_t)(bits >> 16);
    return (int16_t)(((uint16_t)high << 1) | (uint16_t)(next >> 7));
#else
    return (int16_t)((bits >> 23) & 0xFFUL);
#endif
}

static inline uint32_t unit__with_exponent_field(uint32_t bits, int16_t field) {
#if UNIT__BYTE_FIELDS
    uint8_t byte = (uint8_t)field; /* 8-bit shifts below: single instructions on AVR */
    uint8_t high = (uint8_t)(byte >> 1);
    uint8_t next = (uint8_t)((uint8_t)(byte << 7) | ((uint8_t)(bits >> 16) & 0x7FU));
    return ((uint32_t)high << 24) | ((uint32_t)next << 16) | (bits & 0xFFFFUL);
#else
    return ((uint32_t)(uint16_t)field << 23) | (bits & 0x7FFFFFUL);
#endif
}

/* The rare cases of the approximations (a zero or subnormal operand, a result that is not a
 * normal float), kept out of line: inlined into a loop, they cost the fast path register spills
 * on 8-bit MCUs. */
UNIT__RARE uint32_t unit__bitmask_rare_bits(uint32_t threshold_bits, uint32_t control_bits) {
    uint32_t result = unit__pow2_bits(unit__exponent(threshold_bits) - unit__exponent(control_bits));
    result = threshold_bits == 0 ? 0 : result;
    return control_bits == 0 ? UNIT__INF_BITS : result;
}

UNIT__RARE uint32_t unit__bitshift_rare_bits(uint32_t threshold_bits, uint32_t control_bits,
                                                         int32_t shift_start) {
    int32_t n;
    if (control_bits == 0) {
        return UNIT__INF_BITS;
    }
    n = unit__exponent(control_bits);
    n = n < shift_start ? shift_start : n;
    return unit__scale_pow2_bits(threshold_bits, -n);
}

static inline uint32_t unit__bitmask_bits(uint32_t threshold_bits, uint32_t control_bits) {
    /* Fast path, both operands normal and the result normal: 2**(E(T) - E(c)) is just the
     * difference of the exponent fields, re-biased (mantissa 0). Fields fit in 16 bits. */
    int16_t field_t = unit__exponent_field(threshold_bits), field_c = unit__exponent_field(control_bits);
    int16_t biased = (int16_t)(field_t - field_c + 127);
    if (field_t != 0 && field_c != 0 && biased >= 1 && biased <= 254) {
        return unit__with_exponent_field(0, biased);
    }
    return unit__bitmask_rare_bits(threshold_bits, control_bits);
}

/* BITSHIFT (and BINTREE) quotient: T * 2**-max(e(c), shift_start), rounded once. */
static inline uint32_t unit__bitshift_bits(uint32_t threshold_bits, uint32_t control_bits, int32_t shift_start) {
    /* Fast path, both operands normal, e(c) >= shift_start and the result normal: the result
     * keeps T's mantissa and only the exponent field changes (e(c) = field - 126 for a normal c). */
    int16_t field_t = unit__exponent_field(threshold_bits), field_c = unit__exponent_field(control_bits);
    int16_t n = (int16_t)(field_c - 126);
    int16_t field = (int16_t)(field_t - n);
    if (field_t != 0 && field_c != 0 && n >= shift_start && field >= 1 && field <= 254) {
        return unit__with_exponent_field(threshold_bits, field);
    }
    return unit__bitshift_rare_bits(threshold_bits, control_bits, shift_start);
}

/* Bits of approx(T, c) (docs/semantics.md) for T >= 0 finite and control bits of c >= 0 finite
 * (sign bits are ignored). An unknown method gives +inf. */
static inline uint32_t unit__approx_bits(int32_t method, float threshold, uint32_t control_bits,
                                         int32_t shift_start) {
    uint32_t threshold_bits = unit__f32_bits(threshold) & UNIT__ABS_MASK;
    control_bits &= UNIT__ABS_MASK;
    switch (method) {
    case UNIT_APPROX_EXACT:
        return unit__exact_bits(threshold_bits, control_bits);
    case UNIT_APPROX_BITSHIFT:
    case UNIT_APPROX_BINTREE:
        return unit__bitshift_bits(threshold_bits, control_bits, shift_start);
    case UNIT_APPROX_BITMASK:
        return unit__bitmask_bits(threshold_bits, control_bits);
    default:
        return UNIT__INF_BITS;
    }
}

static inline int32_t unit__method_valid(int32_t method) {
    return method >= UNIT_APPROX_EXACT && method <= UNIT_APPROX_BITMASK;
}

#endif /* UNIT_INTERNAL_F32_BITS_H */
