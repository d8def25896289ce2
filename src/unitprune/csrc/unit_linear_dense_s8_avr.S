/* SPDX-License-Identifier: MIT */
/* unit_linear_dense_s8_avr.S -- the AVR dot product of the output-stationary dense int8 linear
 * layer (unit_linear_dense_s8.c):
 *
 *   int32_t unit__linear_dot_s8_avr(const int8_t *x, const int8_t *w, uint16_t n, uint16_t stride)
 *   (r25:r24 = x, r23:r22 = w in flash below 64 KB, r21:r20 = n >= 1, r19:r18 = stride)
 *
 * Returns -(sum over the ceil(n/2) pairs of (x[2k]*w[2k*stride] + x[2k+1]*w[(2k+1)*stride] + 32768))
 * modulo 2**32 (a single last term for odd n), i.e. the stored value of unit__dot_value_s8 with
 * ceil(n/2) biased terms. Two products sum exactly in 16 bits (|x*w| <= 16256 for weights in
 * [-127, 127]), so per pair: LD, LPM and the stride added to Z twice, two MULS, one 16-bit add,
 * the sign bit flipped (EOR: no sign extension) and SUB/SBC/SBCI/SBCI from the 32-bit accumulator
 * r22..r25 (15 cycles per MAC with the loop). Built only for AVR (an empty object elsewhere).
 * Registers: r0:r1 product, r2 0x80, r3 odd n, r4:r5 the pair's first product, r16/r17 operands,
 * r20:r21 pairs left, X activations, Z weights. */
#if defined(__AVR__)

    .section .text.unit__linear_dot_s8_avr,"ax",@progbits
    .global unit__linear_dot_s8_avr
    .type   unit__linear_dot_s8_avr, @function
unit__linear_dot_s8_avr:
    push    r2
    push    r3
    push    r4
    push    r5
    push    r16
    push    r17
    movw    r26, r24                /* X = x */
    movw    r30, r22                /* Z = w */
    ldi     r16, 0x80
    mov     r2, r16
    mov     r17, r20
    andi    r17, 1
    mov     r3, r17                 /* n odd */
    clr     r22
    clr     r23
    clr     r24
    clr     r25
    lsr     r21                     /* pairs = n / 2 */
    ror     r20
    mov     r17, r20
    or      r17, r21
    breq    2f
1:  ld      r16, X+
    lpm     r17, Z
    add     r30, r18
    adc     r31, r19
    muls    r16, r17
    movw    r4, r0
    ld      r16, X+
    lpm     r17, Z
    add     r30, r18
    adc     r31, r19
    muls    r16, r17
    add     r0, r4                  /* the pair's sum, in [-32512, 32512] */
    adc     r1, r5
    eor     r1, r2                  /* + 32768: unsigned */
    sub     r22, r0
    sbc     r23, r1
    sbci    r24, 0
    sbci    r25, 0
    subi    r20, 1
    sbci    r21, 0
    brne    1b
2:  tst     r3
    breq    3f
    ld      r16, X                  /* the last input of an odd n */
    lpm     r17, Z
    muls    r16, r17
    eor     r1, r2
    sub     r22, r0
    sbc     r23, r1
    sbci    r24, 0
    sbci    r25, 0
3:  clr     r1
    pop     r17
    pop     r16
    pop     r5
    pop     r4
    pop     r3
    pop     r2
    ret
    .size   unit__linear_dot_s8_avr, .-unit__linear_dot_s8_avr

#endif /* __AVR__ */
#if defined(__ELF__) && !defined(__AVR__) && !defined(__MSP430__) && !defined(__arm__)
    .section .note.GNU-stack,"",@progbits /* an empty object on ELF hosts: no executable stack */
#endif
