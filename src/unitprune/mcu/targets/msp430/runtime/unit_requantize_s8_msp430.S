/* SPDX-License-Identifier: MIT */
/* unit_requantize_s8_msp430.S -- TFLite MultiplyByQuantizedMultiplier for the int8 kernels' output
 * stage on MSP430 (unit__requantize_clamp_s8 in csrc/unit_internal_s8.h; the kernels check that
 * the multiplier is in [0, 2**31 - 1] and the shift in [-31, 30]):
 *
 *   int32_t __unit_requantize_s8(int32_t acc, int32_t multiplier, int16_t shift)
 *   (EABI: r13:r12 = acc, r15:r14 = multiplier, shift on the stack)
 *
 * The magnitude form of unit__requantize_s8: a = acc << max(shift, 0), A = |a|, P = A * m (64-bit),
 * h = floor((P + 2**30 - s) / 2**31) (s = a < 0; the -s matters only when P mod 2**31 == 2**30),
 * y = floor((h + 2**(e-1)) / 2**e) for e = -shift > 0, the sign of a restored. For e > 0 a result of
 * 2**15 or more in magnitude is returned as +-2**15 (the kernels clamp to int8).
 * msp430-hwmult: P from the 16-bit multiplier's four partial products (MPY, then MAC into
 * RESHI:RESLO with the carry in SUMEXT). msp430: P by shift and add over the bits of A (the loop
 * ends when the remaining bits of A are zero, so small accumulators are cheap).
 * Registers: r6..r9 P (then h in r9:r8), r10 sign, r5 the tie correction, r11 shift. */

#define MPY 0x0130
#define MAC 0x0134
#define OP2 0x0138
#define RESLO 0x013A
#define RESHI 0x013C
#define SUMEXT 0x013E

/* a = acc << shift for shift > 0 (r11; \counter counts the bits, r11 itself or a copy), then
 * A = |a| in r13:r12 and the sign in r10 (1: negative). */
.macro SHIFT_ABS counter
    tst     r11
    jl      2f
    jz      2f
  .ifnc \counter, r11
    mov     r11, \counter
  .endif
1:  rla     r12                     /* a = acc << shift */
    rlc     r13
    dec     \counter
    jnz     1b
2:  clr     r10
    tst     r13
    jge     3f
    inv     r12                     /* A = |a| */
    inv     r13
    inc     r12
    adc     r13
    mov     #1, r10
3:
.endm

#if UNIT_MSP430_HWMULT
/* msp430-hwmult: one callee-saved register (r10, the sign); the product's words go to r11 (P0,
 * read only for the tie; the shift is then read again), r13 (P1), r15 (P2), r12 (P3) as soon as
 * their partial products are in. |a| < 2**16 takes two partial products instead of four. The
 * rounding shift right by k = e - 1 is a multiplication by 2**(16 - k) (table below): its high words. */
    .section .rodata.__unit_requantize_s8_scale,"a",@progbits
    .balign 2
.Lscale:                            /* 2**(16 - k) for k = 1..15 (k = 0 unused) */
    .word   0, 32768, 16384, 8192, 4096, 2048, 1024, 512, 256, 128, 64, 32, 16, 8, 4, 2

    .section .text.__unit_requantize_s8,"ax",@progbits
    .global __unit_requantize_s8
    .type   __unit_requantize_s8, @function
__unit_requantize_s8:
    push    r10
    mov     4(r1), r11              /* shift (return address and r10 above it) */
    SHIFT_ABS r11
    mov     r12, &MPY               /* Al * Ml */
    mov     r14, &OP2
    mov     &RESLO, r11             /* P0 */
    mov     &RESHI, &RESLO
    mov     #0, &RESHI
    tst     r13
    jnz     4f
    mov     r12, &MAC               /* |a| < 2**16: + Al * Mh; P < 2**47 */
    mov     r15, &OP2
    mov     &RESLO, r13             /* P1 */
    mov     &RESHI, r15             /* P2 */
    clr     r12                     /* P3 */
    jmp     5f
4:  mov     r12, &MAC               /* + Al * Mh (no carry: < 2**31 + 2**16) */
    mov     r15, &OP2
    mov     r13, &MAC               /* + Ah * Ml (carry in SUMEXT) */
    mov     r14, &OP2
    mov     &RESLO, r12             /* P1 */
    mov     &SUMEXT, r14
    mov     &RESHI, &RESLO
    mov     r14, &RESHI
    mov     r13, &MAC               /* + Ah * Mh */
    mov     r15, &OP2
    mov     r12, r13                /* P1 */
    mov     &RESLO, r15             /* P2 */
    mov     &RESHI, r12             /* P3 */
5:  tst     r10                     /* the tie of the negative nudge, P mod 2**31 == 2**30: */
    jz      6f
    tst     r11
    jnz     6f
    mov     r13, r11
    and     #0x7FFF, r11
    cmp     #0x4000, r11
    jne     6f
    add     #0x3FFF, r13            /* h = (P + 2**30 - 1) >> 31 (P0 = 0 borrows from P1) */
    jmp     7f
6:  add     #0x4000, r13            /* h = (P + 2**30) >> 31 */
7:  adc     r15
    adc     r12
    rla     r13
    rlc     r15
    rlc     r12                     /* h in r12:r15 */
    mov     4(r1), r11              /* shift */
    tst     r11
    jge     .Lhw_whole              /* e = 0: y = h */
    inv     r11                     /* k = e - 1 */
    cmp     #16, r11
    jlo     8f
    mov     r12, r15                /* k >= 16: h >> 16 */
    clr     r12
    sub     #16, r11
8:  tst     r11
    jz      9f
    rla     r11                     /* t = h >> k: the high words of h * 2**(16 - k) */
    mov     .Lscale(r11), &MPY
    mov     r15, &OP2
    mov     &RESHI, r15
    mov     r12, &OP2
    add     &RESLO, r15
    mov     &RESHI, r12
9:  tst     r12
    jz      10f
    mov     #0x8000, r12            /* t >= 2**16: |y| >= 2**15, the clamp saturates */
    clr     r13
    jmp     .Lhw_sign
10: clrc                            /* y = (t >> 1) + (t & 1) */
    rrc     r15
    adc     r15
    mov     r15, r12
    clr     r13
    jmp     .Lhw_sign
.Lhw_whole:
    mov     r12, r13                /* y = h */
    mov     r15, r12
.Lhw_sign:
    tst     r10
    jz      11f
    inv     r12
    inv     r13
    inc     r12
    adc     r13
11: pop     r10
    ret
    .size   __unit_requantize_s8, .-__unit_requantize_s8

#else /* software multiply */
    .section .text.__unit_requantize_s8,"ax",@progbits
    .global __unit_requantize_s8
    .type   __unit_requantize_s8, @function
__unit_requantize_s8:
    push    r10
    push    r9
    push    r8
    push    r7
    push    r6
    push    r5
    push    r4
    mov     16(r1), r11             /* shift (return address and 7 saved registers above it) */
    SHIFT_ABS r10
    clr     r6
    clr     r7
    clr     r8
    clr     r9
    clr     r4
    clr     r5
4:  clrc                            /* P += m << i for every set bit i of A */
    rrc     r13
    rrc     r12
    jnc     5f
    add     r14, r6
    addc    r15, r7
    addc    r4, r8
    addc    r5, r9
5:  rla     r14
    rlc     r15
    rlc     r4
    rlc     r5
    tst     r12
    jnz     4b
    tst     r13
    jnz     4b
    clr     r5                      /* the tie of the negative nudge: h one less */
    tst     r10
    jz      6f
    tst     r6
    jnz     6f
    mov     r7, r6
    and     #0x7FFF, r6
    cmp     #0x4000, r6
    jne     6f
    mov     #1, r5
6:  add     #0x4000, r7             /* h = (P + 2**30) >> 31 */
    adc     r8
    adc     r9
    rla     r7
    rlc     r8
    rlc     r9
    sub     r5, r8
    sbc     r9
    tst     r11
    jge     .Lsign                  /* e = 0: y = h */
    inv     r11                     /* k = e - 1 */
    cmp     #16, r11
    jlo     7f
    mov     r9, r8
    clr     r9
    sub     #16, r11
7:  cmp     #8, r11
    jlo     8f
    swpb    r8                      /* >> 8 */
    swpb    r9
    mov.b   r8, r8
    mov     r9, r6
    and     #0xFF00, r6
    bis     r6, r8
    mov.b   r9, r9
    sub     #8, r11
8:  tst     r11
    jz      10f
9:  clrc
    rrc     r9
    rrc     r8
    dec     r11
    jnz     9b
10: tst     r9
    jz      11f
    mov     #0x8000, r8             /* t >= 2**16: |y| >= 2**15, the clamp saturates */
    clr     r9
    jmp     .Lsign
11: clrc                            /* y = (t >> 1) + (t & 1) */
    rrc     r8
    adc     r8
.Lsign:
    mov     r8, r12
    mov     r9, r13
    tst     r10
    jz      12f
    inv     r12
    inv     r13
    inc     r12
    adc     r13
12: pop     r4
    pop     r5
    pop     r6
    pop     r7
    pop     r8
    pop     r9
    pop     r10
    ret
    .size   __unit_requantize_s8, .-__unit_requantize_s8
#endif /* UNIT_MSP430_HWMULT */

/* The output stage of an MSP430 run of the dense convolution (csrc/unit_conv2d_dense_s8.c):
 *
 *   void __unit_requantize_run_s8(int8_t *y, const int32_t *stored, int16_t count, const unit__store_s8 *s)
 *   (EABI: r12 = y, r13 = stored, r14 = count >= 1, r15 = s)
 *
 * y[i] = clamp(requantize(s->base + stored[i], s->multiplier, s->shift), s->act_min, s->act_max):
 * unit__dot_value_s8 and unit__requantize_clamp_s8 of csrc/unit_internal_s8.h in one loop, without
 * a C loop around a call per output. An accumulator <= 0 with act_min >= 0 (ReLU) gives act_min
 * without the multiply. s: base (int32), multiplier (int32), shift, act_min, act_max (int8) at
 * offsets 0, 4, 8, 9, 10. The shift is pushed once as __unit_requantize_s8's stack argument.
 * Registers kept across the calls: r4 y, r5 stored, r6 count, r7 s, r8 act_min, r9 act_max. */
    .section .text.__unit_requantize_run_s8,"ax",@progbits
    .global __unit_requantize_run_s8
    .type   __unit_requantize_run_s8, @function
__unit_requantize_run_s8:
    push    r4
    push    r5
    push    r6
    push    r7
    push    r8
    push    r9
    mov     r12, r4
    mov     r13, r5
    mov     r14, r6
    mov     r15, r7
    mov.b   9(r7), r8
    sxt     r8
    mov.b   10(r7), r9
    sxt     r9
    mov.b   8(r7), r12
    sxt     r12
    push    r12                     /* the shift: __unit_requantize_s8's stack argument */
1:  mov     0(r7), r12              /* acc = base + stored */
    mov     2(r7), r13
    add     @r5+, r12
    addc    @r5+, r13
    tst     r8
    jl      2f                      /* act_min < 0: no shortcut */
    tst     r13
    jl      .Lrun_min               /* acc < 0 */
    jnz     2f
    tst     r12
    jz      .Lrun_min               /* acc == 0 */
2:  mov     4(r7), r14
    mov     6(r7), r15
    call    #__unit_requantize_s8
    tst     r13                     /* the 32-bit result as a saturated 16-bit value */
    jz      3f
    cmp     #-1, r13
    jne     .Lrun_big
    tst     r12
    jl      4f
    jmp     .Lrun_min               /* below -32768 */
3:  tst     r12
    jl      .Lrun_max               /* 32768 or more */
4:  cmp     r8, r12
    jl      .Lrun_min               /* below act_min */
    cmp     r12, r9
    jl      .Lrun_max               /* above act_max */
    jmp     .Lrun_store
.Lrun_big:
    tst     r13
    jl      .Lrun_min
.Lrun_max:
    mov     r9, r12
    jmp     .Lrun_store
.Lrun_min:
    mov     r8, r12
.Lrun_store:
    mov.b   r12, 0(r4)
    inc     r4
    dec     r6
    jnz     1b
    add     #2, r1                  /* the pushed shift */
    pop     r9
    pop     r8
    pop     r7
    pop     r6
    pop     r5
    pop     r4
    ret
    .size   __unit_requantize_run_s8, .-__unit_requantize_run_s8

/* The fast output stage (csrc/unit_internal_requant_s8.h: one output channel's constants computed
 * once by unit__requant_run_init_s8):
 *
 *   void __unit_requantize_run_fast_s8(int8_t *y, const int32_t *stored, int16_t count,
 *                                      const unit__requant_run_s8 *s)
 *   (EABI: r12 = y, r13 = stored, r14 = count >= 1, r15 = s)
 *
 * s->thresholds != NULL: __unit_requantize_run_table_s8 (unit_requantize_run_table_s8_msp430.S, any
 * multiplier and shift, no multiply); else s->fast == 0: __unit_requantize_run_s8 (the general
 * routine per output; the first 11 bytes of s are its struct). */
#if UNIT_MSP430_HWMULT
/* msp430-hwmult, per output: acc = base + stored; acc < 0 with act_min >= 0 gives act_min (ReLU);
 * A = |acc| with (A >> 16) & s->high != 0 (A >= 2**(e+8)) saturates; else X = A*mm + K with
 * A*mm = (A << (t - 1)) * (2*m), t = 17 - e: A is shifted by a jump (s->jump) into a byte swap
 * (e = 8) or 7 unrolled 32-bit shifts by one (e - 9 of them skipped), A' = A << (t - 1) < 2**24
 * (two words a0, a1), 2*m (two words m0, m1) in r10, r11. On the multiplier: word 0 = a0*m0
 * (MPY), the window RESHI:RESLO moved to words 1..2 with K's word 2 in RESHI (K's words 0 and 1
 * are 0), a0*m1 and a1*m0 accumulated (MAC; each carry, SUMEXT, into word 3), the window moved to
 * words 2..3, a1*m1 accumulated: |y| = word 3 (X < 2**57). For acc < 0 the sum is X - 1 (RES
 * preset to 2**32 - 1 before a0*m0 is accumulated, word 2 = K's minus 1 plus its carry).
 * Then the sign and the clamp (|y| <= 256, compared as a 16-bit signed value).
 * Registers: r4 y, r5 stored, r6 count, r7 s, r8 act_min, r9 act_max, r10 m0, r11 m1, r12:r13 A,
 * r14 the carries into word 3, r15 scratch and |y|. */
.macro HW_PRODUCT negative
    add     26(r7), r0              /* A <<= t - 1 */
    swpb    r12                     /* e = 8 (A < 2**16): a byte swap */
    mov.b   r12, r13
    and     #0xFF00, r12
    jmp     1f
    .rept 7
    rla     r12
    rlc     r13
    .endr
1:
  .if \negative
    mov     #-1, &RESLO             /* X - 1: words 0..1 preset to 2**32 - 1 */
    mov     #-1, &RESHI
    mov     r12, &MAC               /* + a0*m0 */
    mov     r10, &OP2
    mov     &SUMEXT, r14
    add     32(r7), r14             /* word 2 = K's - 1 + the carry */
    mov     &RESHI, &RESLO          /* the window = words 1..2 */
    mov     r14, &RESHI
  .else
    mov     r12, &MPY               /* word 0: a0*m0 */
    mov     r10, &OP2
    mov     &RESHI, &RESLO          /* the window = words 1..2, word 2 = K's */
    mov     22(r7), &RESHI
  .endif
    mov     r12, &MAC               /* + a0*m1 */
    mov     r11, &OP2
    mov     &SUMEXT, r14
    mov     r13, &MAC               /* + a1*m0 */
    mov     r10, &OP2
    add     &SUMEXT, r14
    mov     &RESHI, &RESLO          /* the window = words 2..3 */
    mov     r14, &RESHI
    mov     r13, &MAC               /* + a1*m1 */
    mov     r11, &OP2
    mov     &RESHI, r15
.endm

    .section .text.__unit_requantize_run_fast_s8,"ax",@progbits
    .global __unit_requantize_run_fast_s8
    .type   __unit_requantize_run_fast_s8, @function
__unit_requantize_run_fast_s8:
    tst     34(r15)
    jz      0f
    br      #__unit_requantize_run_table_s8 /* the channel has a threshold table */
0:  tst.b   11(r15)
    jnz     1f
    br      #__unit_requantize_run_s8
1:  push    r4
    push    r5
    push    r6
    push    r7
    push    r8
    push    r9
    push    r10
    mov     r12, r4
    mov     r13, r5
    mov     r14, r6
    mov     r15, r7
    mov.b   9(r7), r8
    sxt     r8
    mov.b   10(r7), r9
    sxt     r9
    mov     28(r7), r10
    mov     30(r7), r11
    jmp     .Lh_loop
.Lh_head_min:
    mov     r8, r15
    jmp     .Lh_store
.Lh_head_max:
    mov     r9, r15
    jmp     .Lh_store
.Lh_loop:
    mov     0(r7), r12              /* acc = base + stored */
    mov     2(r7), r13
    add     @r5+, r12
    addc    @r5+, r13
    jn      .Lh_negative
    bit     24(r7), r13
    jnz     .Lh_head_max            /* A >= 2**(e+8) */
    HW_PRODUCT 0
    cmp     r15, r9                 /* y = |y| against [act_min, act_max] */
    jl      .Lh_head_max
    cmp     r8, r15
    jl      .Lh_head_min
.Lh_store:
    mov.b   r15, 0(r4)
    inc     r4
    dec     r6
    jnz     .Lh_loop
.Lh_done:
    pop     r10
    pop     r9
    pop     r8
    pop     r7
    pop     r6
    pop     r5
    pop     r4
    ret
.Lh_negative:
    tst     r8
    jge     .Lh_head_min            /* act_min >= 0: the ReLU shortcut */
    inv     r12                     /* A = |acc| */
    inv     r13
    inc     r12
    adc     r13
    bit     24(r7), r13
    jnz     .Lh_neg_min             /* A >= 2**(e+8) (INT32_MIN too) */
    HW_PRODUCT 1
    inv     r15                     /* y = -|y| against [act_min, act_max] */
    inc     r15
    cmp     r8, r15
    jl      .Lh_neg_min
    cmp     r15, r9
    jl      .Lh_neg_max
.Lh_neg_store:
    mov.b   r15, 0(r4)
    inc     r4
    dec     r6
    jnz     .Lh_loop
    jmp     .Lh_done
.Lh_neg_min:
    mov     r8, r15
    jmp     .Lh_neg_store
.Lh_neg_max:
    mov     r9, r15
    jmp     .Lh_neg_store
    .size   __unit_requantize_run_fast_s8, .-__unit_requantize_run_fast_s8

#else /* software multiply: the threshold table, else the general routine */
    .section .text.__unit_requantize_run_fast_s8,"ax",@progbits
    .global __unit_requantize_run_fast_s8
    .type   __unit_requantize_run_fast_s8, @function
__unit_requantize_run_fast_s8:
    tst     34(r15)
    jz      1f
    br      #__unit_requantize_run_table_s8
1:  br      #__unit_requantize_run_s8
    .size   __unit_requantize_run_fast_s8, .-__unit_requantize_run_fast_s8
#endif /* UNIT_MSP430_HWMULT */
