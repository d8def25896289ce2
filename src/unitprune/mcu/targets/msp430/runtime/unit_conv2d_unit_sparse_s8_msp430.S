/* SPDX-License-Identifier: MIT */
/* unit_conv2d_unit_sparse_s8_msp430.S -- the MSP430 loop of the UnIT convolution over the
 * static-sparse layout (csrc/unit_internal_rowlists_s8.h; every geometry): one weight over the rows
 * of one block,
 *
 *   void __unit_rowlists_tap_s8(const unit__rowlists_tap_s8 *t)      (EABI: r12 = t)
 *
 * per row: n = *visits; for the n entries (ix, value) of `list`: ox = cols[ix], when ox < out_w
 * (unsigned) acc_row[ox] += value * w (the int16 product into the int32 accumulator by add and
 * addc); then list += list_step, visits += visits_step, acc_row += acc_step bytes. The product as
 * in unit_conv2d_unit_skipfree_s8_msp430.S: without the multiplier (msp430) by quarter squares
 * from the dense kernel's table __unit_qsq_mid, with it (msp430-hwmult) w written to MPY once and
 * each value to OP2 (RESLO is the signed int16 product of sign-extended operands). t: acc_row,
 * list, visits, list_step, visits_step, acc_step (words at 0..10), rows, w, col_off, out_w (bytes
 * 12..15), cols (word at 16). Registers: r4 acc_row, r5 list, r6 cols, r7 out_w, r8 end of the
 * row's entries, r9 2w (soft), r10 ox, r11/r12 operands and product, r13 entry pointer, r14
 * visits, r15 rows left; the three steps on the stack (0, 2, 4 from SP: acc, visits, list). */

#define MPY 0x0130
#define OP2 0x0138
#define RESLO 0x013A

    .section .text.__unit_rowlists_tap_s8,"ax",@progbits
    .global __unit_rowlists_tap_s8
    .type   __unit_rowlists_tap_s8, @function
__unit_rowlists_tap_s8:
    push    r4
    push    r5
    push    r6
    push    r7
    push    r8
    push    r9
    push    r10
    mov     6(r12), r10
    push    r10                     /* list_step: 4(SP) */
    mov     8(r12), r10
    push    r10                     /* visits_step: 2(SP) */
    mov     10(r12), r10
    push    r10                     /* acc_step: 0(SP) */
    mov     @r12, r4
    mov     2(r12), r5
    mov     4(r12), r14
    mov.b   12(r12), r15
    mov.b   13(r12), r11
    sxt     r11
    mov.b   15(r12), r7
    mov     16(r12), r6
#if UNIT_MSP430_HWMULT
    mov     r11, &MPY               /* operand 1 stays for every OP2 write */
#else
    mov     r11, r9
    add     r9, r9                  /* 2w: the table is indexed by 2n */
#endif
.Lrow:
    mov.b   @r14, r8                /* n */
    tst     r8
    jz      .Lnext
    mov     r5, r13
    add     r8, r8
    add     r13, r8                 /* end = list + 2n */
.Lloop:
    mov.b   @r13+, r10              /* ix */
    rla     r10
    add     r6, r10
    mov     @r10, r10               /* ox = cols[ix] */
    cmp     r7, r10
    jhs     .Lreject                /* ox >= out_w (unsigned): outside the output */
    mov.b   @r13+, r11              /* value */
    sxt     r11
#if UNIT_MSP430_HWMULT
    mov     r11, &OP2
    mov     &RESLO, r12             /* value * w */
#else
    rla     r11                     /* 2 value */
    mov     r11, r12
    add     r9, r12                 /* 2 (value + w) */
    sub     r9, r11                 /* 2 (value - w) */
    mov     __unit_qsq_mid(r12), r12
    sub     __unit_qsq_mid(r11), r12 /* value * w */
#endif
    rla     r10
    rla     r10
    add     r4, r10                 /* &acc_row[ox] */
    tst     r12
    jn      .Lnegative
    add     r12, 0(r10)
    addc    #0, 2(r10)
    cmp     r8, r13
    jne     .Lloop
    jmp     .Lnext
.Lnegative:
    add     r12, 0(r10)
    addc    #-1, 2(r10)
    cmp     r8, r13
    jne     .Lloop
    jmp     .Lnext
.Lreject:
    inc     r13                     /* over the value */
    cmp     r8, r13
    jne     .Lloop
.Lnext:
    add     4(r1), r5
    add     2(r1), r14
    add     0(r1), r4
    dec     r15
    jnz     .Lrow
    add     #6, r1
    pop     r10
    pop     r9
    pop     r8
    pop     r7
    pop     r6
    pop     r5
    pop     r4
    ret
    .size   __unit_rowlists_tap_s8, .-__unit_rowlists_tap_s8
