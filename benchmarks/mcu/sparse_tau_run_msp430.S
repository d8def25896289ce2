/* SPDX-License-Identifier: MIT */
/* sparse_tau_run_msp430.S -- a measurement prototype (benchmarks/sparse_tau_mcu.py), not a library
 * kernel: the MSP430 runs of the static-sparse int8 convolution
 * (mcu/targets/msp430/runtime/unit_conv2d_sparse_s8_msp430[_hwmult].S) with UnIT's test per
 * record, for inputs x >= 0:
 *
 *   void proto_sparse_tau_run_msp430(int32_t *out, const int8_t *x, const int16_t *records,
 *                                    const int16_t *run)        (run: nnz, count, stride)
 *
 * records {int16 offset, uint16 tau + 1, int16 weight (doubled without the multiplier: the
 * quarter-square table's word offset)}: the activation byte (zero-extended) is compared with
 * tau + 1 and the product is accumulated only where x > tau; out[i] = the sum of the kept
 * products (the plain run's convention). One output per pass, as the plain runs. */
#if !UNIT_MSP430_HWMULT

    .section .text.proto_sparse_tau_run_msp430,"ax",@progbits
    .global proto_sparse_tau_run_msp430
    .type   proto_sparse_tau_run_msp430, @function
proto_sparse_tau_run_msp430:
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
    .size   proto_sparse_tau_run_msp430, .-proto_sparse_tau_run_msp430

#else /* UNIT_MSP430_HWMULT: records {offset, tau + 1, weight} */

#define MACS 0x0136
#define OP2 0x0138
#define RESLO 0x013A
#define RESHI 0x013C

    .section .text.proto_sparse_tau_run_msp430,"ax",@progbits
    .global proto_sparse_tau_run_msp430
    .type   proto_sparse_tau_run_msp430, @function
proto_sparse_tau_run_msp430:
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
    .size   proto_sparse_tau_run_msp430, .-proto_sparse_tau_run_msp430

#endif
