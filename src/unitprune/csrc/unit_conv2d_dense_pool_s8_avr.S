/* SPDX-License-Identifier: MIT */
/* unit_conv2d_dense_pool_s8_avr.S -- the 2x2 windows of unit_conv2d_dense_pool_s8 on AVR:
 *
 *   void unit__pool_best2x2_s8_avr(int32_t *out, const int32_t *top, uint8_t count, uint16_t row_bytes)
 *   (r25:r24 = out, r23:r22 = top, r20 = count in [1, 255], r19:r18 = row_bytes)
 *
 * out[i] = the smallest (signed) of top[2i], top[2i+1] and the two words row_bytes further: the best
 * of a window in the AVR domain of the kernel's accumulators (a run stores base - value, so the
 * largest value is the smallest word). out may be top (out[i] is written after the words of windows
 * 0..i are read, and out[i] lies at or before top[2i]). Per window 16 loads, three 32-bit compares,
 * 4 stores: about 64 cycles (the C loop took about 167). Registers: X the top row, Z the bottom row,
 * Y out (saved), r18..r21 the best so far, r22..r25 the next word, r0 the count. */
#if defined(__AVR__)

.macro TAKE_SMALLER
    cp      r22, r18
    cpc     r23, r19
    cpc     r24, r20
    cpc     r25, r21
    brge    2f                      /* next >= best: keep the best */
    movw    r18, r22
    movw    r20, r24
2:
.endm

.macro LOAD_NEXT ptr
    ld      r22, \ptr+
    ld      r23, \ptr+
    ld      r24, \ptr+
    ld      r25, \ptr+
.endm

    .section .text.unit__pool_best2x2_s8_avr,"ax",@progbits
    .global unit__pool_best2x2_s8_avr
    .type   unit__pool_best2x2_s8_avr, @function
unit__pool_best2x2_s8_avr:
    push    r28
    push    r29
    movw    r28, r24                /* Y = out */
    movw    r26, r22                /* X = top */
    movw    r30, r22
    add     r30, r18
    adc     r31, r19                /* Z = bottom */
    mov     r0, r20
1:  ld      r18, X+
    ld      r19, X+
    ld      r20, X+
    ld      r21, X+
    LOAD_NEXT X
    TAKE_SMALLER
    LOAD_NEXT Z
    TAKE_SMALLER
    LOAD_NEXT Z
    TAKE_SMALLER
    st      Y+, r18
    st      Y+, r19
    st      Y+, r20
    st      Y+, r21
    dec     r0
    brne    1b
    pop     r29
    pop     r28
    ret
    .size   unit__pool_best2x2_s8_avr, .-unit__pool_best2x2_s8_avr

#endif
