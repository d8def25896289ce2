/* SPDX-License-Identifier: MIT */
/* unit_requantize_s8_avr.S -- TFLite MultiplyByQuantizedMultiplier on AVR for the kernels' output
 * stage (unit__requantize_clamp_s8 in unit_internal_s8.h; the multiplier is then in [0, 2**31 - 1]):
 *
 *   int32_t unit__requantize_s8_avr(int32_t acc, int32_t multiplier, int8_t shift)
 *   (r25:r22 = acc, r21:r18 = multiplier, r16 = shift in [-31, 30])
 *
 * The magnitude form of unit__requantize_s8: a = acc << max(shift, 0), A = |a|, P = A * m,
 * h = floor((P + 2**30 - s) / 2**31), y = floor((h + 2**(e-1)) / 2**e) (e = -shift > 0), sign of a
 * restored. P by product scanning: the 8x8 MULs of each byte column summed in a 3-byte column
 * accumulator, whose low byte then retires; the MULs of a zero byte of A are skipped (|acc| < 2**16
 * or 2**24: 8 or 12 MULs instead of 16). The low 3 bytes of P matter only through the tie of the
 * negative nudge (P mod 2**31 == 2**30), so they are only ORed together. For e > 0 a result of 2**15
 * or more is returned as 2**15 (its sign kept): every kernel clamps the result to int8.
 * Registers: r18..r21 multiplier, r22..r25 A, r26/r27/r30 the rotating column accumulator, r31 the
 * OR of the low bytes, r17 zero (saved), T the sign. */
#if defined(__AVR__)

.macro PROD a, m, c0, c1, c2
    mul     \a, \m
    add     \c0, r0
    adc     \c1, r1
    adc     \c2, r17
.endm

    .section .text.unit__requantize_s8_avr,"ax",@progbits
    .global unit__requantize_s8_avr
    .type   unit__requantize_s8_avr, @function
unit__requantize_s8_avr:
    push    r17
    clr     r17
    tst     r16
    breq    2f
    brmi    2f
    mov     r31, r16                /* a = acc << shift (shift > 0) */
1:  lsl     r22
    rol     r23
    rol     r24
    rol     r25
    dec     r31
    brne    1b
2:  bst     r25, 7                  /* T = sign of a; A = |a| */
    brtc    3f
    com     r25
    com     r24
    com     r23
    neg     r22
    sbci    r23, 0xFF
    sbci    r24, 0xFF
    sbci    r25, 0xFF
3:  clr     r26
    clr     r27
    clr     r30
    clr     r31
    /* column 0 */
    PROD    r22, r18, r26, r27, r30
    or      r31, r26
    clr     r26
    /* column 1 */
    PROD    r22, r19, r27, r30, r26
    PROD    r23, r18, r27, r30, r26
    or      r31, r27
    clr     r27
    /* column 2 */
    PROD    r22, r20, r30, r26, r27
    PROD    r23, r19, r30, r26, r27
    tst     r24
    breq    4f
    PROD    r24, r18, r30, r26, r27
4:  or      r31, r30
    clr     r30
    /* column 3 */
    PROD    r22, r21, r26, r27, r30
    PROD    r23, r20, r26, r27, r30
    tst     r24
    breq    5f
    PROD    r24, r19, r26, r27, r30
5:  tst     r25
    breq    6f
    PROD    r25, r18, r26, r27, r30
6:  mov     r22, r26                /* p3 */
    clr     r26
    /* column 4 */
    PROD    r23, r21, r27, r30, r26
    tst     r24
    breq    7f
    PROD    r24, r20, r27, r30, r26
7:  tst     r25
    breq    8f
    PROD    r25, r19, r27, r30, r26
8:  mov     r18, r27                /* p4 */
    clr     r27
    /* column 5 */
    tst     r24
    breq    9f
    PROD    r24, r21, r30, r26, r27
9:  tst     r25
    breq    10f
    PROD    r25, r20, r30, r26, r27
10: mov     r23, r30                /* p5 */
    /* column 6 (p6 = r26, p7 = r27) */
    tst     r25
    breq    11f
    PROD    r25, r21, r26, r27, r30
11: /* the tie of the negative nudge: P mod 2**31 == 2**30 -> h one less */
    brtc    12f
    tst     r31
    brne    12f
    mov     r31, r22
    andi    r31, 0x7F
    cpi     r31, 0x40
    brne    12f
    ldi     r31, 1
    rjmp    13f
12: clr     r31
13: subi    r22, 0xC0               /* P + 2**30: 0x40 into byte 3, carry up (inverted borrow) */
    sbci    r18, 0xFF
    sbci    r23, 0xFF
    sbci    r26, 0xFF
    sbci    r27, 0xFF
    lsl     r22                     /* h = (P + 2**30) >> 31 = bytes 4..7 << 1 | bit 31 */
    rol     r18
    rol     r23
    rol     r26
    rol     r27
    sub     r18, r31
    sbc     r23, r17
    sbc     r26, r17
    sbc     r27, r17
    mov     r22, r18                /* h in r25:r22 */
    movw    r24, r26
    tst     r16
    brmi    14f
    rjmp    .Lsign                  /* e = 0: y = h */
14: mov     r19, r16
    com     r19                     /* k = e - 1 */
    cpi     r19, 16
    brlo    15f
    movw    r22, r24
    clr     r24
    clr     r25
    subi    r19, 16
15: cpi     r19, 8
    brlo    16f
    mov     r22, r23
    mov     r23, r24
    mov     r24, r25
    clr     r25
    subi    r19, 8
16: or      r24, r25
    breq    17f
    clr     r22                     /* t >= 2**16: |y| >= 2**15, the clamp saturates */
    ldi     r23, 0x80
    clr     r24
    clr     r25
    rjmp    .Lsign
17: tst     r19
    breq    19f
18: lsr     r23
    ror     r22
    dec     r19
    brne    18b
19: lsr     r23                     /* y = (t >> 1) + (t & 1) */
    ror     r22
    adc     r22, r17
    adc     r23, r17
    clr     r24
    clr     r25
.Lsign:
    brtc    20f
    com     r25
    com     r24
    com     r23
    neg     r22
    sbci    r23, 0xFF
    sbci    r24, 0xFF
    sbci    r25, 0xFF
20: clr     r1
    pop     r17
    ret
    .size   unit__requantize_s8_avr, .-unit__requantize_s8_avr

/* The output stage of an AVR run of the dense convolution (unit_conv2d_dense_s8.c):
 *
 *   void unit__requantize_run_s8_avr(int8_t *y, const int32_t *stored, uint8_t count,
 *                                    const unit__store_s8 *s)
 *   (r25:r24 = y, r23:r22 = stored, r20 = count >= 1, r19:r18 = s)
 *
 * y[i] = clamp(requantize(s->base - stored[i], s->multiplier, s->shift), s->act_min, s->act_max):
 * unit__dot_value_s8 and unit__requantize_clamp_s8 of unit_internal_s8.h for the values the AVR run
 * stored, in one loop (no C loop around a call per output). An accumulator <= 0 with act_min >= 0
 * (ReLU) gives act_min without the multiply. s: base (int32), multiplier (int32), shift, act_min,
 * act_max (int8), at offsets 0, 4, 8, 9, 10. Registers kept across the outputs: r2..r5 base,
 * r6..r9 multiplier, r10 shift, r11 act_min, r12 act_max, r13 count, r14:r15 y, Y stored. */
    .section .text.unit__requantize_run_s8_avr,"ax",@progbits
    .global unit__requantize_run_s8_avr
    .type   unit__requantize_run_s8_avr, @function
unit__requantize_run_s8_avr:
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
    push    r28
    push    r29
    movw    r14, r24                /* y */
    movw    r28, r22                /* Y = stored */
    mov     r13, r20
    movw    r30, r18                /* Z = s */
    ld      r2, Z
    ldd     r3, Z+1
    ldd     r4, Z+2
    ldd     r5, Z+3
    ldd     r6, Z+4
    ldd     r7, Z+5
    ldd     r8, Z+6
    ldd     r9, Z+7
    ldd     r10, Z+8
    ldd     r11, Z+9
    ldd     r12, Z+10
1:  movw    r22, r2                 /* acc = base - stored */
    movw    r24, r4
    ld      r18, Y+
    ld      r19, Y+
    ld      r20, Y+
    ld      r21, Y+
    sub     r22, r18
    sbc     r23, r19
    sbc     r24, r20
    sbc     r25, r21
    sbrc    r11, 7                  /* act_min < 0: no shortcut */
    rjmp    2f
    brmi    3f                      /* acc < 0 (the N flag of the subtraction): y = act_min */
    cp      r22, r1
    cpc     r23, r1
    cpc     r24, r1
    cpc     r25, r1
    breq    3f                      /* acc == 0 */
2:  movw    r18, r6
    movw    r20, r8
    mov     r16, r10
    rcall   unit__requantize_s8_avr
    mov     r16, r11                /* clamp to [act_min, act_max] */
    lsl     r16
    sbc     r16, r16                /* sign extension of act_min */
    cp      r22, r11
    cpc     r23, r16
    cpc     r24, r16
    cpc     r25, r16
    brlt    3f
    mov     r16, r12                /* act_max against the result */
    lsl     r16
    sbc     r16, r16
    cp      r12, r22
    cpc     r16, r23
    cpc     r16, r24
    cpc     r16, r25
    brlt    4f
    mov     r18, r22
    rjmp    5f
3:  mov     r18, r11
    rjmp    5f
4:  mov     r18, r12
5:  movw    r30, r14
    st      Z+, r18
    movw    r14, r30
    dec     r13
    brne    1b
    pop     r29
    pop     r28
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
    .size   unit__requantize_run_s8_avr, .-unit__requantize_run_s8_avr


/* The fast output stage (unit_internal_requant_s8.h): the constants of one output channel computed
 * once by unit__requant_run_init_s8, the multiply inline:
 *
 *   void unit__requantize_run_fast_s8_avr(int8_t *y, const int32_t *stored, uint8_t count,
 *                                         const unit__requant_run_s8 *s)
 *   (r25:r24 = y, r23:r22 = stored, r20 = count >= 1, r19:r18 = s)
 *
 * s->fast == 0: unit__requantize_run_s8_avr (the general routine per output; the first 11 bytes of
 * s are its struct). Else, per output: acc = base - stored; acc < 0 with act_min >= 0 gives act_min
 * (ReLU); A = |acc| >= 2**(e+8) saturates (A >= 2**24, or a bit of s->high in A's third byte); else X = A*mm + K by product scanning (A: 2 or 3 bytes, mm:
 * 5 bytes, the 16-bit column sums in a rotating 3-byte window whose retiring register takes the
 * next byte of K), |y| = X >> 48 (bytes 6 and 7), one less for acc < 0 when the low 48 bits of X
 * are zero (their OR in r16), then the sign and the clamp. Registers kept across the outputs:
 * r2..r5 base, r6..r10 mm, r11 act_min, r12 act_max, r13 count, r14 s->high, r17 zero, X y, Y stored,
 * Z &s->k. */
.macro FAST_PRODUCT tie, full
    mul     r22, r6                 /* column 0: a0*m0; the window (r18, r19, r20) = bytes 0..2 */
    movw    r18, r0
    clr     r20
  .if \tie
    mov     r16, r18
  .endif
    ldd     r18, Z+3                /* byte 0 retires; byte 3 starts as K's */
    PROD    r22, r7, r19, r20, r18  /* column 1 */
    PROD    r23, r6, r19, r20, r18
  .if \tie
    or      r16, r19
  .endif
    ldd     r19, Z+4
    PROD    r22, r8, r20, r18, r19  /* column 2 */
    PROD    r23, r7, r20, r18, r19
  .if \full
    PROD    r24, r6, r20, r18, r19
  .endif
  .if \tie
    or      r16, r20
  .endif
    ldd     r20, Z+5
    PROD    r22, r9, r18, r19, r20  /* column 3 */
    PROD    r23, r8, r18, r19, r20
  .if \full
    PROD    r24, r7, r18, r19, r20
  .endif
  .if \tie
    or      r16, r18
  .endif
    clr     r18
    PROD    r22, r10, r19, r20, r18 /* column 4 */
    PROD    r23, r9, r19, r20, r18
  .if \full
    PROD    r24, r8, r19, r20, r18
  .endif
  .if \tie
    or      r16, r19
  .endif
    clr     r19
    PROD    r23, r10, r20, r18, r19 /* column 5 */
  .if \full
    PROD    r24, r9, r20, r18, r19
  .endif
  .if \tie
    or      r16, r20
  .endif
  .if \full
    mul     r24, r10                /* column 6; |y| = r19:r18 */
    add     r18, r0
    adc     r19, r1
  .endif
.endm

    .section .text.unit__requantize_run_fast_s8_avr,"ax",@progbits
    .global unit__requantize_run_fast_s8_avr
    .type   unit__requantize_run_fast_s8_avr, @function
unit__requantize_run_fast_s8_avr:
    movw    r30, r18
    ldd     r21, Z+11
    tst     r21
    brne    1f
    jmp     unit__requantize_run_s8_avr
1:  push    r2
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
    push    r16
    push    r17
    push    r28
    push    r29
    movw    r26, r24                /* X = y */
    movw    r28, r22                /* Y = stored */
    mov     r13, r20
    clr     r17
    ld      r2, Z
    ldd     r3, Z+1
    ldd     r4, Z+2
    ldd     r5, Z+3
    ldd     r11, Z+9
    ldd     r12, Z+10
    ldd     r6, Z+12
    ldd     r7, Z+13
    ldd     r8, Z+14
    ldd     r9, Z+15
    ldd     r10, Z+16
    ldd     r14, Z+24
    adiw    r30, 18                 /* Z = &s->k */
    rjmp    .Lf_loop
.Lf_head_max:                       /* within a branch's reach of the loop head */
    mov     r18, r12
    rjmp    .Lf_store
.Lf_head_min:
    mov     r18, r11
    rjmp    .Lf_store
.Lf_loop:
    movw    r22, r2                 /* acc = base - stored */
    movw    r24, r4
    ld      r18, Y+
    ld      r19, Y+
    ld      r20, Y+
    ld      r21, Y+
    sub     r22, r18
    sbc     r23, r19
    sbc     r24, r20
    sbc     r25, r21
    brpl    1f
    sbrs    r11, 7
    rjmp    .Lf_head_min            /* acc < 0, act_min >= 0: the ReLU shortcut */
    rjmp    .Lf_negative
1:  tst     r25
    brne    .Lf_head_max            /* A >= 2**24 */
    mov     r21, r24
    and     r21, r14
    brne    .Lf_head_max            /* A >= 2**(e+8) */
    tst     r24
    brne    2f
    FAST_PRODUCT 0, 0               /* A < 2**16 */
    rjmp    3f
2:  FAST_PRODUCT 0, 1
3:  tst     r19                     /* y = |y| >= 0 against [act_min, act_max] */
    brne    .Lf_max
    sbrc    r18, 7
    rjmp    .Lf_max
    cp      r12, r18
    brlt    .Lf_max
    cp      r18, r11
    brlt    .Lf_min
.Lf_store:
    st      X+, r18
    dec     r13
    breq    7f
    rjmp    .Lf_loop
7:  clr     r1
    pop     r29
    pop     r28
    pop     r17
    pop     r16
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
.Lf_min:
    mov     r18, r11
    rjmp    .Lf_store
.Lf_max:
    mov     r18, r12
    rjmp    .Lf_store
.Lf_negative:
    com     r25                     /* A = |acc| */
    com     r24
    com     r23
    neg     r22
    sbci    r23, 0xFF
    sbci    r24, 0xFF
    sbci    r25, 0xFF
    tst     r25
    brne    .Lf_min                 /* A >= 2**24 (INT32_MIN too) */
    mov     r21, r24
    and     r21, r14
    brne    .Lf_min                 /* A >= 2**(e+8) */
    tst     r24
    brne    4f
    FAST_PRODUCT 1, 0
    rjmp    5f
4:  FAST_PRODUCT 1, 1
5:  tst     r16                     /* the tie of the negative nudge: |y| one less */
    brne    6f
    subi    r18, 1
    sbc     r19, r17
6:  tst     r19                     /* y = -|y| against [act_min, act_max] */
    brne    .Lf_neg_min
    cpi     r18, 129
    brsh    .Lf_neg_min
    neg     r18
    cp      r18, r11
    brlt    .Lf_neg_min
    cp      r12, r18
    brlt    .Lf_neg_max
    rjmp    .Lf_store
.Lf_neg_min:
    mov     r18, r11
    rjmp    .Lf_store
.Lf_neg_max:
    mov     r18, r12
    rjmp    .Lf_store
    .size   unit__requantize_run_fast_s8_avr, .-unit__requantize_run_fast_s8_avr

#endif /* __AVR__ */
#if defined(__ELF__) && !defined(__AVR__) && !defined(__MSP430__) && !defined(__arm__)
    .section .note.GNU-stack,"",@progbits /* an empty object on ELF hosts: no executable stack */
#endif
