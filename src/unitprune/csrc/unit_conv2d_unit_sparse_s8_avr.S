/* SPDX-License-Identifier: MIT */
/* unit_conv2d_unit_sparse_s8_avr.S -- the AVR inner loop of the UnIT convolution over the
 * static-sparse layout (unit_internal_rowlists_s8.h, called by unit_conv2d_unit_sparse_s8.c for
 * layers of stride_x 1 whose column byte arithmetic cannot wrap into the output):
 *
 *   void unit__rowlists_row_s8_avr(int32_t *acc_row, const uint8_t *entry, uint8_t n, int8_t w,
 *                                  uint8_t col_off, uint8_t out_w)
 *   (r25:r24 = acc_row, r23:r22 = entry, r20 = n >= 1, r18 = w, r16 = col_off, r14 = out_w)
 *
 * For the n entries (ix, value) from `entry`: ox = (uint8)(ix - col_off); when ox < out_w,
 * acc_row[ox] -= value * w (the accumulators hold minus the sum: the output stage computes
 * base - stored, unit__dot_value_s8). Per kept entry 39 cycles (one compare, MUL for the address,
 * MULS, the product's sign, a byte-by-byte 32-bit read-modify-write), per entry rejected by its
 * column 10. Registers: Z entries, X accumulator, r19 = 4, r21 ox / byte, r22 value, r23 sign,
 * r0:r1 products (r1 cleared on return). Built only for AVR (an empty object elsewhere). */
#if defined(__AVR__)

    .section .text.unit__rowlists_row_s8_avr, "ax", @progbits
    .global unit__rowlists_row_s8_avr
    .type unit__rowlists_row_s8_avr, @function
unit__rowlists_row_s8_avr:
    movw    r30, r22
    ldi     r19, 4
.Lloop:
    ld      r21, Z+
    sub     r21, r16
    cp      r21, r14
    brsh    .Lskip
    ld      r22, Z+
    mul     r21, r19
    movw    r26, r24
    add     r26, r0
    adc     r27, r1
    muls    r22, r18
    mov     r23, r1
    lsl     r23
    sbc     r23, r23
    ld      r21, X
    sub     r21, r0
    st      X+, r21
    ld      r21, X
    sbc     r21, r1
    st      X+, r21
    ld      r21, X
    sbc     r21, r23
    st      X+, r21
    ld      r21, X
    sbc     r21, r23
    st      X, r21
    dec     r20
    brne    .Lloop
    clr     r1
    ret
.Lskip:
    adiw    r30, 1
    dec     r20
    brne    .Lloop
    clr     r1
    ret
    .size unit__rowlists_row_s8_avr, .-unit__rowlists_row_s8_avr

#endif
#if defined(__ELF__) && !defined(__AVR__) && !defined(__MSP430__) && !defined(__arm__)
    .section .note.GNU-stack,"",@progbits /* an empty object on ELF hosts: no executable stack */
#endif
