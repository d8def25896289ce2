/* SPDX-License-Identifier: MIT */
/* unit_linear_dense_s8_msp430.S -- the MSP430 dot product of the output-stationary dense int8
 * linear layer (csrc/unit_linear_dense_s8.c):
 *
 *   int32_t __unit_linear_dot_s8(const int8_t *x, const int8_t *w, int16_t n, int16_t stride)
 *   (EABI: r12 = x, r13 = w, r14 = n >= 1, r15 = stride; the result in r13:r12)
 *
 * sum over i < n of x[i] * w[i * stride]. msp430-hwmult: the sign-extended activation to MACS,
 * the weight to OP2, the sum in RESHI:RESLO (18 cycles per MAC with the loop). msp430: quarter
 * squares, x*w = q(x + w) - q(x - w), from the dense convolution's table __unit_qsq_mid
 * (unit_conv2d_dense_s8_msp430.S), into r8:r7 (23 cycles per MAC). */

#define MACS 0x0136
#define OP2 0x0138
#define RESLO 0x013A
#define RESHI 0x013C

    .section .text.__unit_linear_dot_s8,"ax",@progbits
    .global __unit_linear_dot_s8
    .type   __unit_linear_dot_s8, @function
__unit_linear_dot_s8:
#if UNIT_MSP430_HWMULT
    mov     #0, &RESLO
    mov     #0, &RESHI
1:  mov.b   @r12+, r11
    sxt     r11
    mov     r11, &MACS
    mov.b   @r13, r11
    sxt     r11
    mov     r11, &OP2
    add     r15, r13
    dec     r14
    jnz     1b
    mov     &RESLO, r12
    mov     &RESHI, r13
    ret
#else
    push    r10
    push    r9
    push    r8
    push    r7
    clr     r7
    clr     r8
1:  mov.b   @r12+, r9
    sxt     r9
    add     r9, r9
    mov.b   @r13, r10
    sxt     r10
    add     r10, r10
    mov     r9, r11
    add     r10, r11
    sub     r10, r9
    add     __unit_qsq_mid(r11), r7
    addc    #0, r8
    sub     __unit_qsq_mid(r9), r7
    subc    #0, r8
    add     r15, r13
    dec     r14
    jnz     1b
    mov     r7, r12
    mov     r8, r13
    pop     r7
    pop     r8
    pop     r9
    pop     r10
    ret
#endif
    .size   __unit_linear_dot_s8, .-__unit_linear_dot_s8
