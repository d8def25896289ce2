/* SPDX-License-Identifier: MIT */
/* unit_dot_s8_msp430.h -- assembler macros shared by the two MSP430 runs of the dense int8
 * convolution (unit_conv2d_dense_s8_msp430[_hwmult].S; included after their OFF_* offsets), QSQ_MAC
 * also by the static-sparse runs (unit_sparse_run_s8_msp430.h). */
#ifndef UNIT_DOT_S8_MSP430_H
#define UNIT_DOT_S8_MSP430_H

/* With r11 = run->mode and r15 = the run: when UNIT__DOT_NONNEG (8) is set, a whole 3x3 or 5x5
 * field (ROW3 / ROW5 with 3 / 5 rows) branches to square3 / square5 (UNIT__DOT_DW3 to dw3 when
 * given), the loops without the activations' sign extension; every other run continues at
 * signed. Uses r4 (saved by the caller's prologue). */
.macro NONNEG_DISPATCH square3, square5, signed, dw3
    bit     #8, r11
    jz      \signed
    mov     r11, r4
    bic     #9, r4
  .ifnb \dw3
    cmp     #6, r4
    jne     1f
    br      #\dw3
1:
  .endif
    cmp     #2, r4
    jne     2f
    cmp     #3, OFF_ROWS(r15)
    jne     \signed
    br      #\square3
2:  cmp     #4, r4
    jne     \signed
    cmp     #5, OFF_ROWS(r15)
    jne     \signed
    br      #\square5
.endm

/* r7:r6 += x * w by quarter squares, x*w = q(x + w) - q(x - w) (the word table __unit_qsq_mid of
 * unit_conv2d_dense_s8_msp430.S, indexed by 2n), with r4 = 2x and the register `w` = 2w (extended to
 * 16 bits, then doubled); uses r11, changes r4. */
.macro QSQ_MAC w
    mov     r4, r11
    add     \w, r11
    sub     \w, r4
    add     __unit_qsq_mid(r11), r6
    addc    #0, r7
    sub     __unit_qsq_mid(r4), r6
    subc    #0, r7
.endm

#endif /* UNIT_DOT_S8_MSP430_H */
