/* SPDX-License-Identifier: MIT */
/* unit_conv2d_dense_s8_msp430.S -- the MSP430 run of the output-stationary dense int8 convolution
 * without a hardware multiplier (the msp430 target; csrc/unit_internal_dot_s8.h, called by
 * unit_conv2d_dense_s8.c):
 *
 *   void __unit_dot_run_s8(int32_t *out, const int8_t *x, const int8_t *w, const unit__dot_run_s8 *run)
 *   (EABI: r12 = out, r13 = x, r14 = w, r15 = run)
 *
 * out[i] = the dot product of output i's receptive field, multiplied by quarter squares:
 * x*w = q(x + w) - q(x - w) with q(n) = floor(n*n / 4) from a 511-entry word table (1022 bytes of
 * flash, linked only with this routine). Per MAC: two byte loads with sign extension, doubled into
 * word offsets, the sum and difference, two indexed table reads added/subtracted into the 32-bit
 * accumulator r7:r6 (19 cycles). Rows of 3 or 5 columns are unrolled (run->mode, as on AVR); a
 * whole 3x3 or 5x5 field per channel (every kernel row inside the input) is unrolled with the x row
 * skip in r8 (1 cycle per kernel row). Registers: r4/r5/r11 operands, r6:r7 accumulator, r8 row
 * counter (x row skip in the square loop), r9 channel counter, r10 weight start, 0(sp) outputs
 * left, 2(sp) columns left (general rows; the x channel skip in the square loop). */
#if !UNIT_MSP430_HWMULT

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

#include "unit_dot_s8_msp430.h"

/* sx = 0: the activations are in [0, 127] (UNIT__DOT_NONNEG) and MOV.B's zero extension is their
 * sign extension (18 cycles). */
.macro MAC sx=1
    mov.b   @r13+, r4
  .if \sx
    sxt     r4
  .endif
    add     r4, r4
    mov.b   @r14+, r5
    sxt     r5
    add     r5, r5
    QSQ_MAC r5
.endm

.macro RUN row
1:  clr     r6
    clr     r7
    mov     r10, r14
    mov     OFF_CHANNELS(r15), r9
2:  mov     OFF_ROWS(r15), r8
3:
  .if \row == 0
    mov     OFF_LEN(r15), 2(r1)
4:  MAC
    dec     2(r1)
    jnz     4b
    add     OFF_WROW(r15), r14
  .else
    .rept \row
    MAC
    .endr
  .endif
    add     OFF_XROW(r15), r13
    dec     r8
    jnz     3b
    add     OFF_XCHAN(r15), r13
  .if \row == 0
    add     OFF_WCHAN(r15), r14
  .endif
    dec     r9
    jnz     2b
    mov     r6, 0(r12)
    mov     r7, 2(r12)
    add     #4, r12
    add     OFF_XNEXT(r15), r13
    dec     0(r1)
    jnz     1b
    br      #.Ldone
.endm

/* A whole n x n field per channel: rows == len == n, no weight skips. */
.macro SQUARE n, sx=1
    mov     OFF_XROW(r15), r8
    mov     OFF_XCHAN(r15), 2(r1)
    add     r8, 2(r1)               /* the last row's skip and the channel skip in one */
1:  clr     r6
    clr     r7
    mov     r10, r14
    mov     OFF_CHANNELS(r15), r9
2:
  .rept \n - 1
    .rept \n
    MAC     \sx
    .endr
    add     r8, r13
  .endr
  .rept \n
    MAC     \sx
  .endr
    add     2(r1), r13
    dec     r9
    jnz     2b
    mov     r6, 0(r12)
    mov     r7, 2(r12)
    add     #4, r12
    add     OFF_XNEXT(r15), r13
    dec     0(r1)
    jnz     1b
    br      #.Ldone
.endm

    .section .text.__unit_dot_run_s8,"ax",@progbits
    .global __unit_dot_run_s8
    .type   __unit_dot_run_s8, @function
__unit_dot_run_s8:
    push    r4
    push    r5
    push    r6
    push    r7
    push    r8
    push    r9
    push    r10
    sub     #4, r1
    mov     r14, r10
    mov     @r15, 0(r1)
    mov     OFF_MODE(r15), r11
    NONNEG_DISPATCH .Lnsquare3, .Lnsquare5, .Lsigned
.Lsigned:                           /* the other loop shapes (and UNIT__DOT_DW3) sign-extend */
    bic     #9, r11                 /* the 32-bit accumulator is the only one here */
    cmp     #2, r11
    jeq     .Lrow3
    cmp     #4, r11
    jeq     .Lrow5
    cmp     #6, r11
    jne     .Lgeneral
    br      #.Ldw3                  /* beyond a jump's reach */
.Lgeneral:
    RUN     0
.Lrow3:
    cmp     #3, OFF_ROWS(r15)
    jeq     .Lsquare3
    RUN     3
.Lrow5:
    cmp     #5, OFF_ROWS(r15)
    jeq     .Lsquare5
    RUN     5
.Lsquare3:
    SQUARE  3
.Lsquare5:
    SQUARE  5
.Lnsquare3:
    SQUARE  3, 0
.Lnsquare5:
    SQUARE  5, 0
/* UNIT__DOT_DW3: one channel's whole 3x3 field. The first 4 weights stay in registers, doubled
 * (r5, r9, r10, r15: 15 cycles per MAC), the other 5 are read through r14 (reset by 5 after each
 * output); 2(r1) holds the skip from the end of the third row to the next field. */
.macro RMAC w
    mov.b   @r13+, r4
    sxt     r4
    add     r4, r4
    QSQ_MAC \w
.endm

.macro MMAC
    mov.b   @r14+, r11
    sxt     r11
    add     r11, r11
    mov.b   @r13+, r4
    sxt     r4
    add     r4, r4
    add     r4, r11                 /* 2x + 2w */
    rla     r4
    sub     r11, r4                 /* 2x - 2w */
    add     __unit_qsq_mid(r11), r6
    addc    #0, r7
    sub     __unit_qsq_mid(r4), r6
    subc    #0, r7
.endm

.Ldw3:
    mov     OFF_XROW(r15), r8
    mov     r8, 2(r1)
    add     OFF_XCHAN(r15), 2(r1)
    add     OFF_XNEXT(r15), 2(r1)
    mov.b   @r14+, r5
    sxt     r5
    add     r5, r5
    mov.b   @r14+, r9
    sxt     r9
    add     r9, r9
    mov.b   @r14+, r10
    sxt     r10
    add     r10, r10
    mov.b   @r14+, r15
    sxt     r15
    add     r15, r15
1:  clr     r6
    clr     r7
    RMAC    r5
    RMAC    r9
    RMAC    r10
    add     r8, r13
    RMAC    r15
    MMAC
    MMAC
    add     r8, r13
    MMAC
    MMAC
    MMAC
    add     2(r1), r13
    sub     #5, r14
    mov     r6, 0(r12)
    mov     r7, 2(r12)
    add     #4, r12
    dec     0(r1)
    jnz     1b

.Ldone:
    add     #4, r1
    pop     r10
    pop     r9
    pop     r8
    pop     r7
    pop     r6
    pop     r5
    pop     r4
    ret
    .size   __unit_dot_run_s8, .-__unit_dot_run_s8

/* q(n) = floor(n*n / 4) for n in [-255, 255]; __unit_qsq_mid is q(0), indexed by 2n (global: the
 * skip-free UnIT tap loop, unit_conv2d_unit_skipfree_s8_msp430.S, uses it too). */
    .section .rodata.__unit_qsq,"a",@progbits
    .global __unit_qsq_mid
    .p2align 1
    .set    n, -255
    .rept   255
    .word   (n * n) / 4
    .set    n, n + 1
    .endr
    .global __unit_qsq_mid
__unit_qsq_mid:
    .rept   256
    .word   (n * n) / 4
    .set    n, n + 1
    .endr

#endif /* !UNIT_MSP430_HWMULT */
