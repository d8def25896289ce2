/* SPDX-License-Identifier: MIT */
/* unit_conv2d_dense_s8_avr.S -- the AVR run of the output-stationary dense int8 convolution
 * (unit_internal_dot_s8.h, called by unit_conv2d_dense_s8.c):
 *
 *   void unit__dot_run_s8_avr(int32_t *out, const int8_t *x, const int8_t *w, const unit__dot_run_s8 *run)
 *
 * out[i] = -(sum over output i's field of (x*w + 32768)) modulo 2**32. Per MAC: LD the activation
 * (X+), LPM the weight (Z+, flash below 64 KB), MULS, flip the product's sign bit (EOR: x*w + 32768
 * as an unsigned 16-bit value, so no sign extension), SUB/SBC/SBCI/SBCI from the accumulator held
 * in r22..r25 for the whole field: 12 cycles, 11 with the 24-bit accumulator (mode bit 0 clear:
 * exact for fields of at most 341 MACs, each biased product being at most 49152; the top byte is
 * then 0xFF because the negated sum is in (-2**24, 0)). Rows of 3 or 5 columns are unrolled. A
 * whole 3x3 field of one input channel (mode UNIT__DOT_DW3: depthwise 3x3 layers) keeps its 9
 * weights in registers for the whole run (8 cycles per MAC: no LPM) and moves from one field to the
 * next with a single addition.
 * Built only for AVR (an empty object elsewhere). */
#if defined(__AVR__)

#define OFF_COUNT 0
#define OFF_CHANNELS 2
#define OFF_ROWS 4
#define OFF_LEN 6
#define OFF_XROW 8
#define OFF_XCHAN 10
#define OFF_XNEXT 12
#define OFF_WROW 14
#define OFF_WCHAN 16
#define OFF_MODE 18

/* registers: r0:r1 product, r2 0x80, r3 w_row_skip, r4:r5 x_next, r6:r7 x_row_skip,
 * r8:r9 x_channel_skip, r10:r11 weight start, r12 count, r13 channels, r14 channel counter,
 * r15 rows, r16/r17 operands, r18 row counter, r19 len, r20 column counter, r21 w_channel_skip,
 * r22..r25 accumulator, X activations, Y out, Z weights */

.macro MAC wide
    ld      r16, X+
    lpm     r17, Z+
    muls    r16, r17
    eor     r1, r2
    sub     r22, r0
    sbc     r23, r1
    sbci    r24, 0
  .if \wide
    sbci    r25, 0
  .endif
.endm

/* one run: every output, channel and row; `row` 0 = general, 3 or 5 = unrolled */
.macro RUN wide, row
1:  clr     r22
    clr     r23
    clr     r24
    clr     r25
    movw    r30, r10
    mov     r14, r13
2:  mov     r18, r15
3:
  .if \row == 0
    mov     r20, r19
4:  MAC     \wide
    dec     r20
    brne    4b
    clr     r1
    add     r30, r3
    adc     r31, r1
  .else
    .rept \row
    MAC     \wide
    .endr
  .endif
    add     r26, r6
    adc     r27, r7
    dec     r18
    brne    3b
    add     r26, r8
    adc     r27, r9
  .if \row == 0
    clr     r1
    add     r30, r21
    adc     r31, r1
  .endif
    dec     r14
    brne    2b
  .if \wide == 0
    ldi     r25, 0xFF
  .endif
    st      Y+, r22
    st      Y+, r23
    st      Y+, r24
    st      Y+, r25
    add     r26, r4
    adc     r27, r5
    dec     r12
    brne    1b
    rjmp    .Ldone
.endm

    .section .text.unit__dot_run_s8_avr,"ax",@progbits
    .global unit__dot_run_s8_avr
    .type   unit__dot_run_s8_avr, @function
unit__dot_run_s8_avr:
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
    push    r17
    push    r28
    push    r29
    movw    r28, r24            /* Y = out */
    movw    r26, r22            /* X = x */
    movw    r10, r20            /* weight start */
    movw    r30, r18            /* Z = run */
    ld      r12, Z
    ldd     r13, Z+OFF_CHANNELS
    ldd     r15, Z+OFF_ROWS
    ldd     r19, Z+OFF_LEN
    ldd     r6, Z+OFF_XROW
    ldd     r7, Z+OFF_XROW+1
    ldd     r8, Z+OFF_XCHAN
    ldd     r9, Z+OFF_XCHAN+1
    ldd     r4, Z+OFF_XNEXT
    ldd     r5, Z+OFF_XNEXT+1
    ldd     r3, Z+OFF_WROW
    ldd     r21, Z+OFF_WCHAN
    ldd     r16, Z+OFF_MODE
    ldi     r17, 0x80
    mov     r2, r17
    cpi     r16, 0
    brne    .Lm1
    rjmp    .Lgeneral24
.Lm1:
    cpi     r16, 1
    brne    .Lm2
    rjmp    .Lgeneral32
.Lm2:
    cpi     r16, 2
    brne    .Lm3
    rjmp    .Lrow3_24
.Lm3:
    cpi     r16, 3
    brne    .Lm4
    rjmp    .Lrow3_32
.Lm4:
    cpi     r16, 4
    brne    .Lm5
    rjmp    .Lrow5_24
.Lm5:
    cpi     r16, 5
    brne    .Lm6
    rjmp    .Lrow5_32
.Lm6:
    rjmp    .Ldw3

.Lgeneral24:
    RUN     0, 0
.Lgeneral32:
    RUN     1, 0
.Lrow3_24:
    RUN     0, 3
.Lrow3_32:
    RUN     1, 3
.Lrow5_24:
    RUN     0, 5
.Lrow5_32:
    RUN     1, 5

/* mode 6 (UNIT__DOT_DW3): weights w0..w8 in r17..r25, the 24-bit accumulator in r13..r15
 * (subtracted with the zero register r3), r8:r9 the skip from the end of a field's third row to the
 * next field (x_row_skip + x_channel_skip + x_next) */
.macro DWMAC w
    ld      r16, X+
    muls    r16, \w
    eor     r1, r2
    sub     r13, r0
    sbc     r14, r1
    sbc     r15, r3
.endm

.Ldw3:
    add     r8, r6
    adc     r9, r7
    add     r8, r4
    adc     r9, r5
    clr     r3
    movw    r30, r10
    lpm     r17, Z+
    lpm     r18, Z+
    lpm     r19, Z+
    lpm     r20, Z+
    lpm     r21, Z+
    lpm     r22, Z+
    lpm     r23, Z+
    lpm     r24, Z+
    lpm     r25, Z+
1:  clr     r13
    clr     r14
    clr     r15
    DWMAC   r17
    DWMAC   r18
    DWMAC   r19
    add     r26, r6
    adc     r27, r7
    DWMAC   r20
    DWMAC   r21
    DWMAC   r22
    add     r26, r6
    adc     r27, r7
    DWMAC   r23
    DWMAC   r24
    DWMAC   r25
    add     r26, r8
    adc     r27, r9
    st      Y+, r13
    st      Y+, r14
    st      Y+, r15
    ldi     r16, 0xFF
    st      Y+, r16
    dec     r12
    breq    .Ldone
    rjmp    1b

.Ldone:
    clr     r1
    pop     r29
    pop     r28
    pop     r17
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
    .size   unit__dot_run_s8_avr, .-unit__dot_run_s8_avr

#endif /* __AVR__ */
#if defined(__ELF__) && !defined(__AVR__) && !defined(__MSP430__) && !defined(__arm__)
    .section .note.GNU-stack,"",@progbits /* an empty object on ELF hosts: no executable stack */
#endif
