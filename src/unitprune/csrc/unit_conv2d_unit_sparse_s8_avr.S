/* SPDX-License-Identifier: MIT */
/* unit_conv2d_unit_sparse_s8_avr.S -- the AVR loop of the UnIT convolution over the static-sparse
 * layout (unit_internal_rowlists_s8.h, called by unit_conv2d_unit_sparse_s8.c for layers of
 * stride_x 1 whose column byte arithmetic cannot wrap into the output): one weight over the rows
 * of one block,
 *
 *   void unit__rowlists_tap_s8_avr(const unit__rowlists_tap_s8 *t)      (r25:r24 = t)
 *
 * per row: n = *visits; for the n entries (ix, value) of `list`: ox = (uint8)(ix - col_off), when
 * ox < out_w acc_row[ox] -= value * w (the accumulators hold minus the sum: the output stage
 * computes base - stored, unit__dot_value_s8); then list += list_step, visits += visits_step,
 * acc_row += acc_step. Per kept entry 31 cycles (one compare, MUL for the address, MULS, a
 * byte-by-byte read-modify-write of the accumulator's low half with the product's 16 bits; the
 * high half changes only when the borrow differs from the product's sign, about |p| / 65536 of
 * the entries: +12), per entry rejected by its column 10, per row 17 (13 without entries). t: acc_row, list, visits, list_step, visits_step, acc_step
 * (16-bit, offsets 0..11), rows, w, col_off, out_w (bytes 12..15).
 * Registers: r2:r3 list, r4:r5 visits, r6:r7 acc_row, r8:r9 list_step, r10:r11 visits_step,
 * r12:r13 acc_step, r14 out_w, r15 rows left, r16 col_off, r18 w, r19 = 4, r20 entries left, r21
 * ox / a byte, r22 value, Z entries, X accumulator, r0:r1 products (r1
 * cleared on return). Built only for AVR (an empty object elsewhere). */
#if defined(__AVR__)

    .section .text.unit__rowlists_tap_s8_avr, "ax", @progbits
    .global unit__rowlists_tap_s8_avr
    .type unit__rowlists_tap_s8_avr, @function
unit__rowlists_tap_s8_avr:
    push    r2
    push    r3
    push    r4
    push    r5
    push    r6
    push    r7
    push    r8
    push    r9
    push    r10
    push    r11
    push    r12
    push    r13
    push    r14
    push    r15
    push    r16
    movw    r30, r24
    ld      r6, Z
    ldd     r7, Z+1
    ldd     r2, Z+2
    ldd     r3, Z+3
    ldd     r4, Z+4
    ldd     r5, Z+5
    ldd     r8, Z+6
    ldd     r9, Z+7
    ldd     r10, Z+8
    ldd     r11, Z+9
    ldd     r12, Z+10
    ldd     r13, Z+11
    ldd     r15, Z+12
    ldd     r18, Z+13
    ldd     r16, Z+14
    ldd     r14, Z+15
    ldi     r19, 4
.Lrow:
    movw    r30, r4
    ld      r20, Z
    tst     r20
    breq    .Lnext
    movw    r30, r2
.Lloop:
    ld      r21, Z+
    sub     r21, r16
    cp      r21, r14
    brsh    .Lskip
    ld      r22, Z+
    mul     r21, r19
    movw    r26, r6
    add     r26, r0
    adc     r27, r1
    muls    r22, r18
    ld      r21, X
    sub     r21, r0
    st      X+, r21
    ld      r21, X
    sbc     r21, r1
    st      X+, r21
    sbrc    r1, 7
    rjmp    .Lnegative
    brcs    .Lborrow                /* p >= 0: the high half drops by the borrow */
.Lkept:
    dec     r20
    brne    .Lloop
    rjmp    .Lnext
.Lnegative:
    brcs    .Lkept                  /* p < 0: the high half gains 1 - borrow */
    ld      r21, X
    subi    r21, 0xFF
    st      X+, r21
    ld      r21, X
    sbci    r21, 0xFF
    st      X, r21
    rjmp    .Lkept
.Lborrow:
    ld      r21, X
    subi    r21, 1
    st      X+, r21
    ld      r21, X
    sbci    r21, 0
    st      X, r21
    rjmp    .Lkept
.Lskip:
    adiw    r30, 1
    dec     r20
    brne    .Lloop
.Lnext:
    add     r2, r8
    adc     r3, r9
    add     r4, r10
    adc     r5, r11
    add     r6, r12
    adc     r7, r13
    dec     r15
    brne    .Lrow
    clr     r1
    pop     r16
    pop     r15
    pop     r14
    pop     r13
    pop     r12
    pop     r11
    pop     r10
    pop     r9
    pop     r8
    pop     r7
    pop     r6
    pop     r5
    pop     r4
    pop     r3
    pop     r2
    ret
    .size unit__rowlists_tap_s8_avr, .-unit__rowlists_tap_s8_avr

#endif
#if defined(__ELF__) && !defined(__AVR__) && !defined(__MSP430__) && !defined(__arm__)
    .section .note.GNU-stack,"",@progbits /* an empty object on ELF hosts: no executable stack */
#endif
