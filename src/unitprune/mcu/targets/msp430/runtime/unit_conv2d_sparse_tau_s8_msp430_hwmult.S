/* SPDX-License-Identifier: MIT */
/* unit_conv2d_sparse_tau_s8_msp430_hwmult.S -- the MSP430 run of unit_conv2d_sparse_tau_s8 with the
 * 16-bit hardware multiplier (the msp430-hwmult target): the arguments and result of
 * unit_conv2d_sparse_tau_s8_msp430.S (x >= 0; records {offset, tau + 1, weight}); a kept product
 * goes through MACS/OP2 into RESHI:RESLO. Per stored product, measured
 * (benchmarks/sparse_tau_mcu.py): 23 cycles kept, 15 skipped, against the plain run's 19.
 * Registers: r4 address, r5 activation, r11 weight, r8 records start, r9 records end, r10 outputs
 * left, r15 stride. */
#if UNIT_MSP430_HWMULT

#define MACS 0x0136
#define OP2 0x0138
#define RESLO 0x013A
#define RESHI 0x013C

    .section .text.__unit_sparse_tau_run_s8,"ax",@progbits
    .global __unit_sparse_tau_run_s8
    .type   __unit_sparse_tau_run_s8, @function
__unit_sparse_tau_run_s8:
    push    r4
    push    r5
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
1:  mov     #0, &RESLO
    mov     #0, &RESHI
    mov     r8, r14
2:  mov     @r14+, r4
    add     r13, r4
    mov.b   @r4, r5
    cmp     @r14+, r5               /* x - (tau + 1): no borrow where x > tau */
    jnc     3f
    mov     r5, &MACS
    mov     @r14+, r11
    mov     r11, &OP2
    cmp     r14, r9
    jne     2b
    jmp     4f
3:  incd    r14
    cmp     r14, r9
    jne     2b
4:  mov     &RESLO, 0(r12)
    mov     &RESHI, 2(r12)
    add     #4, r12
    add     r15, r13
    dec     r10
    jnz     1b
    pop     r10
    pop     r9
    pop     r8
    pop     r5
    pop     r4
    ret
    .size   __unit_sparse_tau_run_s8, .-__unit_sparse_tau_run_s8

#endif /* UNIT_MSP430_HWMULT */
