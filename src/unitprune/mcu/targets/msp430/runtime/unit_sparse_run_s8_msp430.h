/* SPDX-License-Identifier: MIT */
/* unit_sparse_run_s8_msp430.h -- assembler macros shared by the MSP430 runs of the static-sparse int8
 * convolutions, plain (unit_conv2d_sparse_s8_msp430[_hwmult].S) and with UnIT's test
 * (unit_conv2d_sparse_tau_s8_msp430[_hwmult].S). Every run has the arguments
 *
 *   (r12 = out, r13 = x, r14 = records, r15 = run: nnz, count, stride at offsets 0, 2, 4)
 *
 * and the registers r8 records start, r9 records end, r10 outputs left, r15 stride; its product sum
 * is r7:r6 without the hardware multiplier, RESHI:RESLO with it (the including file defines RESLO and
 * RESHI before it includes this header). */
#ifndef UNIT_SPARSE_RUN_S8_MSP430_H
#define UNIT_SPARSE_RUN_S8_MSP430_H

#include "unit_dot_s8_msp430.h"

#if UNIT_MSP430_HWMULT
#define UNIT__SPARSE_SUM_LO &RESLO
#define UNIT__SPARSE_SUM_HI &RESHI
#else
#define UNIT__SPARSE_SUM_LO r6
#define UNIT__SPARSE_SUM_HI r7
#endif

/* Saves the registers the run uses (r4, r5, r8-r10; r6:r7 too without the multiplier); r8 = the
 * records, r9 = their end (nnz records of `words` (2 or 3) int16 each). */
.macro SPARSE_RUN_ENTER words
    push    r4
    push    r5
#if !UNIT_MSP430_HWMULT
    push    r6
    push    r7
#endif
    push    r8
    push    r9
    push    r10
    mov     r14, r8
    mov     @r15, r9
  .if \words == 3
    mov     r9, r10
    add     r9, r9
    add     r10, r9
    add     r9, r9
  .else
    add     r9, r9
    add     r9, r9
  .endif
    add     r14, r9                 /* the records' end */
.endm

/* r10 = the outputs, r15 = their stride in inputs (the run's fields last: r15 is the run until here). */
.macro SPARSE_RUN_COUNTS
    mov     2(r15), r10
    mov     4(r15), r15
.endm

/* An output's start: its sum 0, r14 = the first record. */
.macro SPARSE_RUN_START
#if UNIT_MSP430_HWMULT
    mov     #0, &RESLO
    mov     #0, &RESHI
#else
    clr     r6
    clr     r7
#endif
    mov     r8, r14
.endm

/* Stores the output's sum, steps to the next output (out and x) and loops to `start` while outputs are left. */
.macro SPARSE_RUN_NEXT start
    mov     UNIT__SPARSE_SUM_LO, 0(r12)
    mov     UNIT__SPARSE_SUM_HI, 2(r12)
    add     #4, r12
    add     r15, r13
    dec     r10
    jnz     \start
.endm

/* Restores what SPARSE_RUN_ENTER saved and returns. */
.macro SPARSE_RUN_LEAVE
    pop     r10
    pop     r9
    pop     r8
#if !UNIT_MSP430_HWMULT
    pop     r7
    pop     r6
#endif
    pop     r5
    pop     r4
    ret
.endm

#if UNIT_MSP430_HWMULT
/* RESHI:RESLO += r5 * (the record's weight, @r14+), r5 the activation extended to 16 bits (MACS, OP2:
 * defined by the including file); uses r11. */
.macro SPARSE_RUN_MAC
    mov     r5, &MACS
    mov     @r14+, r11
    mov     r11, &OP2
.endm
#else
/* r7:r6 += r4 * (the record's weight, @r14+), r4 the activation extended to 16 bits (QSQ_MAC); uses r5 and r11. */
.macro SPARSE_RUN_MAC
    add     r4, r4
    mov     @r14+, r5
    add     r5, r5
    QSQ_MAC r5
.endm
#endif

/* __unit_sparse_tau_run_s8 (unit_conv2d_sparse_tau_s8.c), for inputs x >= 0: records {offset, tau + 1,
 * weight}; per record the activation byte, zero-extended, into the register `x` (r4 without the
 * multiplier, r5 with it: SPARSE_RUN_MAC's) and compared with tau + 1; where x > tau SPARSE_RUN_MAC,
 * else the weight is skipped. */
.macro SPARSE_TAU_RUN x
    .section .text.__unit_sparse_tau_run_s8,"ax",@progbits
    .global __unit_sparse_tau_run_s8
    .type   __unit_sparse_tau_run_s8, @function
__unit_sparse_tau_run_s8:
    SPARSE_RUN_ENTER 3              /* records of 6 bytes */
    SPARSE_RUN_COUNTS
1:  SPARSE_RUN_START
2:  mov     @r14+, r4
    add     r13, r4
    mov.b   @r4, \x
    cmp     @r14+, \x               /* x - (tau + 1): no borrow where x > tau */
    jnc     3f
    SPARSE_RUN_MAC
    cmp     r14, r9
    jne     2b
    jmp     4f
3:  incd    r14
    cmp     r14, r9
    jne     2b
4:  SPARSE_RUN_NEXT 1b
    SPARSE_RUN_LEAVE
    .size   __unit_sparse_tau_run_s8, .-__unit_sparse_tau_run_s8
.endm

#endif /* UNIT_SPARSE_RUN_S8_MSP430_H */
