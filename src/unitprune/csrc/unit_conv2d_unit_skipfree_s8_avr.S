/* SPDX-License-Identifier: MIT */
/* unit_conv2d_unit_skipfree_s8_avr.S -- the AVR tap loop of the skip-free UnIT convolution
 * (unit_internal_skipfree_s8.h, called by unit_conv2d_unit_skipfree_s8.c for layers of stride 1):
 *
 *   void unit__skipfree_tap_s8_avr(int32_t *acc, const uint8_t *entry, uint16_t n, int8_t w,
 *                                  uint8_t row_off, uint8_t col_off, uint8_t out_h, uint8_t out_w)
 *
 * For the n >= 1 entries (iy, ix, value) from `entry`: oy = (uint8)(iy - row_off),
 * ox = (uint8)(ix - col_off); when oy < out_h and ox < out_w, acc[oy*out_w + ox] += value * w.
 * (The caller guarantees that the byte arithmetic cannot wrap into the window.) Per kept entry
 * 53 cycles (two window compares, MUL for the position, MULS, a 32-bit read-modify-write); an
 * entry rejected by its row 12, by its column 17. Built only for AVR (an empty object elsewhere). */
#if defined(__AVR__)

/* arguments: r24:r25 acc, r22:r23 entry, r20:r21 n, r18 w, r16 row_off, r14 col_off, r12 out_h,
 * r10 out_w (r10..r16 only read). registers: Z entries, X accumulator address, r19 oy, r23 ox,
 * r22 value, r2 zero, r3..r6 accumulator, r7 sign of the product, r0:r1 products */

    .section .text.unit__skipfree_tap_s8_avr, "ax", @progbits
    .global unit__skipfree_tap_s8_avr
    .type unit__skipfree_tap_s8_avr, @function
unit__skipfree_tap_s8_avr:
    push    r2
    push    r3
    push    r4
    push    r5
    push    r6
    push    r7
    clr     r2
    movw    r30, r22
.Lloop:
    ld      r19, Z+
    sub     r19, r16
    cp      r19, r12
    brsh    .Lrow
    ld      r23, Z+
    sub     r23, r14
    cp      r23, r10
    brsh    .Lcol
    ld      r22, Z+
    mul     r19, r10
    add     r0, r23
    adc     r1, r2
    lsl     r0
    rol     r1
    lsl     r0
    rol     r1
    movw    r26, r24
    add     r26, r0
    adc     r27, r1
    muls    r22, r18
    ld      r3, X+
    ld      r4, X+
    ld      r5, X+
    ld      r6, X
    mov     r7, r1
    lsl     r7
    sbc     r7, r7
    add     r3, r0
    adc     r4, r1
    adc     r5, r7
    adc     r6, r7
    st      X, r6
    st      -X, r5
    st      -X, r4
    st      -X, r3
    subi    r20, 1
    sbci    r21, 0
    brne    .Lloop
    rjmp    .Ldone
.Lrow:
    adiw    r30, 2
    subi    r20, 1
    sbci    r21, 0
    brne    .Lloop
    rjmp    .Ldone
.Lcol:
    adiw    r30, 1
    subi    r20, 1
    sbci    r21, 0
    brne    .Lloop
.Ldone:
    clr     r1
    pop     r7
    pop     r6
    pop     r5
    pop     r4
    pop     r3
    pop     r2
    ret
    .size unit__skipfree_tap_s8_avr, .-unit__skipfree_tap_s8_avr

#endif
#if defined(__ELF__) && !defined(__AVR__) && !defined(__MSP430__) && !defined(__arm__)
    .section .note.GNU-stack,"",@progbits /* an empty object on ELF hosts: no executable stack */
#endif
