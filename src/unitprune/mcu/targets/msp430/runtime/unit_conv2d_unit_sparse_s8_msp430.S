/* SPDX-License-Identifier: MIT */
/* unit_conv2d_unit_sparse_s8_msp430.S -- the MSP430 inner loop of the UnIT convolution over the
 * static-sparse layout (csrc/unit_internal_rowlists_s8.h, unit__rowlists_row_s8 in assembly; every
 * geometry):
 *
 *   void __unit_rowlists_row_s8(const unit__rowlists_args_s8 *a, const uint8_t *entry, uint16_t n,
 *                               int16_t w)
 *   (EABI: r12 = a = {int32_t *acc_row, const int16_t *cols, uint16_t out_width}, r13 = entry,
 *    r14 = n >= 1, r15 = w, a sign-extended int8)
 *
 * For the n entries (ix, value) from `entry`: ox = cols[ix]; when ox < out_width (unsigned),
 * acc_row[ox] += value * w (the int16 product into the int32 accumulator by add and addc). The
 * product as in unit_conv2d_unit_skipfree_s8_msp430.S: without the multiplier (msp430) by quarter
 * squares from the dense kernel's table __unit_qsq_mid, with it (msp430-hwmult) w written to MPY
 * once and each value to OP2 (RESLO is the signed int16 product of sign-extended operands).
 * Registers: r4 acc_row, r6 cols, r7 out_width, r8 end of the entries, r9 2*w (soft), r10 ox,
 * r11/r12 operands and product, r13 entry pointer. */

#define MPY 0x0130
#define OP2 0x0138
#define RESLO 0x013A

    .section .text.__unit_rowlists_row_s8,"ax",@progbits
    .global __unit_rowlists_row_s8
    .type   __unit_rowlists_row_s8, @function
__unit_rowlists_row_s8:
    push    r4
    push    r6
    push    r7
    push    r8
    push    r9
    push    r10
    mov     @r12+, r4
    mov     @r12+, r6
    mov     @r12, r7
    mov     r14, r8
    add     r14, r8
    add     r13, r8                 /* end = entry + 2n */
#if UNIT_MSP430_HWMULT
    mov     r15, &MPY               /* operand 1 stays for every OP2 write */
#else
    mov     r15, r9
    add     r9, r9                  /* 2w: the table is indexed by 2n */
#endif
.Lloop:
    mov.b   @r13+, r10              /* ix */
    rla     r10
    add     r6, r10
    mov     @r10, r10               /* ox = cols[ix] */
    cmp     r7, r10
    jhs     .Lreject                /* ox >= out_width (unsigned): outside the output */
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
    jmp     .Ldone
.Lnegative:
    add     r12, 0(r10)
    addc    #-1, 2(r10)
    cmp     r8, r13
    jne     .Lloop
    jmp     .Ldone
.Lreject:
    inc     r13                     /* over the value */
    cmp     r8, r13
    jne     .Lloop
.Ldone:
    pop     r10
    pop     r9
    pop     r8
    pop     r7
    pop     r6
    pop     r4
    ret
    .size   __unit_rowlists_row_s8, .-__unit_rowlists_row_s8
