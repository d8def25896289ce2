/* SPDX-License-Identifier: MIT */
/* unit_conv2d_sparse_tau_s8_msp430.S -- the MSP430 run of unit_conv2d_sparse_tau_s8 (UnIT on
 * static-sparse weights) without a hardware multiplier (the msp430 target):
 *
 *   void __unit_sparse_tau_run_s8(int32_t *out, const int8_t *x, const int16_t *records,
 *                                 const unit__sparse_msp430_run_s8 *run)
 *   (EABI: r12 = out, r13 = x, r14 = records, r15 = run: nnz, count, stride at offsets 0, 2, 4)
 *
 * For inputs x >= 0 (the kernel checks): out[i] = the sum over the records {offset, tau + 1,
 * weight} of x * weight where x > tau, with x = x[i*stride + offset]. Per record the activation
 * byte (zero-extended) is compared with tau + 1; a kept product is the quarter-square multiply of
 * unit_conv2d_sparse_s8_msp430.S (the table __unit_qsq_mid). Per stored product, measured
 * (benchmarks/sparse_tau_mcu.py): 28 cycles kept, 15 skipped, against the plain run's 25.
 * Registers: r4/r5/r11 operands, r6:r7 accumulator, r8 records start, r9 records end, r10
 * outputs left, r15 stride. */
#if !UNIT_MSP430_HWMULT

    .section .text.__unit_sparse_tau_run_s8,"ax",@progbits
    .global __unit_sparse_tau_run_s8
    .type   __unit_sparse_tau_run_s8, @function
__unit_sparse_tau_run_s8:
    push    r4
    push    r5
    push    r6
    push    r7
    push    r8
    push    r9
    push    r10
    mov     r14, r8
    mov     @r15, r9
    mov     r9, r10
    add     r9, r9
    add     r10, r9
    add     r9, r9
    add     r14, r9                 /* the records' end: 6 bytes each */
    mov     2(r15), r10
    mov     4(r15), r15
1:  clr     r6
    clr     r7
    mov     r8, r14
2:  mov     @r14+, r4
    add     r13, r4
    mov.b   @r4, r4
    cmp     @r14+, r4               /* x - (tau + 1): no borrow where x > tau */
    jnc     3f
    add     r4, r4
    mov     @r14+, r5
    add     r5, r5
    mov     r4, r11
    add     r5, r11
    sub     r5, r4
    add     __unit_qsq_mid(r11), r6
    addc    #0, r7
    sub     __unit_qsq_mid(r4), r6
    subc    #0, r7
    cmp     r14, r9
    jne     2b
    jmp     4f
3:  incd    r14
    cmp     r14, r9
    jne     2b
4:  mov     r6, 0(r12)
    mov     r7, 2(r12)
    add     #4, r12
    add     r15, r13
    dec     r10
    jnz     1b
    pop     r10
    pop     r9
    pop     r8
    pop     r7
    pop     r6
    pop     r5
    pop     r4
    ret
    .size   __unit_sparse_tau_run_s8, .-__unit_sparse_tau_run_s8

#endif /* !UNIT_MSP430_HWMULT */
