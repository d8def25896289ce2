/* SPDX-License-Identifier: MIT */
/* unit_mspabi.h -- private primitives of unitprune's MSP430 runtime helpers (the __mspabi_*
 * functions clang-14 calls for multiplication, variable 32/64-bit shifts and division; Debian has
 * no libgcc or compiler-rt for msp430). Each helper is in its own file; they are compiled twice:
 * plain (software multiply: shift and add) and with -DUNIT_MSP430_HWMULT=1 (the 16x16 products
 * on the 16-bit hardware multiplier at 0x0130, which is what `simio add hwmult` simulates).
 * In assembly: the software __mspabi_mpyi (mpyi.S), the entries of __mspabi_mpyl and
 * __mspabi_mpyll (mpyl.S, mpyll.S: the widened-int16/int32 fast paths, C for the rest), the
 * 32/64-bit shifts and the division cores (udivmod16.S, udivmod32.S).
 *
 * Nothing here may use C's *, / or % nor a variable shift of a 32- or 64-bit value: clang would
 * compile them into calls of these very helpers. Interrupts are never enabled in unitprune
 * firmware, so the multiplier's registers need no saving.
 */
#ifndef UNIT_MSPABI_H
#define UNIT_MSPABI_H

#include <stdint.h>

#ifndef UNIT_MSP430_HWMULT
#define UNIT_MSP430_HWMULT 0
#endif

#if UNIT_MSP430_HWMULT
#define UNIT__MPY (*(volatile uint16_t *)0x0130u)   /* operand 1, unsigned multiply */
#define UNIT__OP2 (*(volatile uint16_t *)0x0138u)   /* operand 2: writing it starts the multiply */
#define UNIT__RESLO (*(volatile uint16_t *)0x013Au) /* product, low word */
#define UNIT__RESHI (*(volatile uint16_t *)0x013Cu) /* product, high word */
#endif

/* The full 32-bit product of two unsigned 16-bit operands. */
static inline uint32_t unit__umul16x16(uint16_t a, uint16_t b) {
#if UNIT_MSP430_HWMULT
    UNIT__MPY = a;
    UNIT__OP2 = b;
    return ((uint32_t)UNIT__RESHI << 16) | UNIT__RESLO;
#else
    uint32_t product = 0, addend;
    if (b > a) { /* loop over the bits of the smaller operand */
        uint16_t t = a;
        a = b;
        b = t;
    }
    addend = a;
    while (b != 0) {
        if (b & 1u) {
            product += addend;
        }
        addend <<= 1;
        b >>= 1;
    }
    return product;
#endif
}

/* The low 16 bits of a * b (the same bits for signed and unsigned operands). */
static inline uint16_t unit__mul16lo(uint16_t a, uint16_t b) {
#if UNIT_MSP430_HWMULT
    UNIT__MPY = a;
    UNIT__OP2 = b;
    return UNIT__RESLO;
#else
    uint16_t product = 0;
    if (b > a) {
        uint16_t t = a;
        a = b;
        b = t;
    }
    while (b != 0) {
        if (b & 1u) {
            product = (uint16_t)(product + a);
        }
        a = (uint16_t)(a << 1);
        b >>= 1;
    }
    return product;
#endif
}

/* |x| as unsigned (also for the most negative value). */
static inline uint16_t unit__abs16(int16_t x) {
    return x < 0 ? (uint16_t)(0u - (uint16_t)x) : (uint16_t)x;
}

static inline uint32_t unit__abs32(int32_t x) {
    return x < 0 ? 0u - (uint32_t)x : (uint32_t)x;
}

/* The low 32 bits of a * b: a0*b0 + ((a0*b1 + a1*b0) << 16), 16-bit limbs. */
static inline uint32_t unit__mul32lo(uint32_t a, uint32_t b) {
    uint16_t a0 = (uint16_t)a, a1 = (uint16_t)(a >> 16), b0 = (uint16_t)b, b1 = (uint16_t)(b >> 16);
    uint16_t cross = (uint16_t)(unit__mul16lo(a0, b1) + unit__mul16lo(a1, b0));
    return unit__umul16x16(a0, b0) + ((uint32_t)cross << 16);
}

/* The full 64-bit product of two unsigned 32-bit operands, from four 16x16 products. */
static inline uint64_t unit__umul32x32(uint32_t a, uint32_t b) {
    uint16_t a0 = (uint16_t)a, a1 = (uint16_t)(a >> 16), b0 = (uint16_t)b, b1 = (uint16_t)(b >> 16);
    uint32_t p00 = unit__umul16x16(a0, b0), p01 = unit__umul16x16(a0, b1);
    uint32_t p10 = unit__umul16x16(a1, b0), p11 = unit__umul16x16(a1, b1);
    uint32_t middle = (p00 >> 16) + (uint16_t)p01 + (uint16_t)p10; /* < 3 * 2**16: no overflow */
    uint32_t low = (middle << 16) | (uint16_t)p00;
    uint32_t high = p11 + (p01 >> 16) + (p10 >> 16) + (middle >> 16);
    return ((uint64_t)high << 32) | low;
}

/* Unsigned restoring division (udivmod16.S, udivmod32.S: assembly, one quotient bit in ~10 and
 * ~16 cycles per step). d == 0 gives quotient all ones and remainder n (C leaves it undefined). */
uint16_t unit__udivmod16(uint16_t n, uint16_t d, uint16_t *remainder);
uint32_t unit__udivmod32(uint32_t n, uint32_t d, uint32_t *remainder);

#endif /* UNIT_MSPABI_H */
