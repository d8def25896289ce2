/* SPDX-License-Identifier: MIT */
/* unit_dot_nonneg_s8_msp430.S -- whether a dense convolution's input is nonnegative (both MSP430
 * runtimes; csrc/unit_internal_dot_s8.h):
 *
 *   int16_t __unit_dot_nonneg_s8(const int8_t *x, uint16_t n)   (EABI: r12 = x, r13 = n)
 *
 * 1 if the n bytes at x all lie in [0, 127] (the OR of their words has both sign bits clear), else
 * 0; 2.5 cycles per byte. unit_conv2d_dense_s8 sets UNIT__DOT_NONNEG from it once per call: the
 * runs then load the activations without sign extension (MOV.B's zero extension is the same). */
    .section .text.__unit_dot_nonneg_s8,"ax",@progbits
    .global __unit_dot_nonneg_s8
    .type   __unit_dot_nonneg_s8, @function
__unit_dot_nonneg_s8:
    clr     r14                     /* the OR of every byte */
    tst     r13
    jz      3f
    bit     #1, r12                 /* an odd address: one byte first */
    jz      1f
    mov.b   @r12+, r14
    dec     r13
1:  mov     r13, r15
    clrc
    rrc     r15                     /* words */
    jz      2f
4:  bis     @r12+, r14
    dec     r15
    jnz     4b
2:  bit     #1, r13                 /* an odd count: the last byte */
    jz      3f
    mov.b   @r12+, r15          /* (a byte operation into r14 would clear its high byte) */
    bis     r15, r14
3:  clr     r12
    bit     #0x8080, r14
    jnz     5f
    mov     #1, r12
5:  ret
    .size   __unit_dot_nonneg_s8, .-__unit_dot_nonneg_s8
