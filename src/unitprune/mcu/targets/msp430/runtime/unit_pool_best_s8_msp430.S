/* SPDX-License-Identifier: MIT */
/* unit_pool_best_s8_msp430.S -- the 2x2 windows of unit_conv2d_dense_pool_s8 on MSP430 (both
 * runtimes; csrc/unit_conv2d_dense_pool_s8.c):
 *
 *   void __unit_pool_best2x2_s8(int32_t *out, const int32_t *top, uint16_t count, uint16_t row_bytes)
 *   (EABI: r12 = out, r13 = top, r14 = count >= 1, r15 = row_bytes)
 *
 * out[i] = the largest (signed) of top[2i], top[2i+1] and the two words row_bytes further (the
 * kernel's accumulators less the bias: MSP430 runs store the dot product). out may be top (out[i] is
 * written after the words of windows 0..i are read, and out[i] lies at or before top[2i]). Per
 * window 8 word loads, three 32-bit compares, 2 word stores: about 50 cycles (the C loop took about
 * 155). Registers: r13 the top row, r15 the bottom row, r9:r8 the best so far, r11:r10 the next
 * word (r8..r10 saved). */

/* best = next when next > best (signed 32-bit: high words signed, then low words unsigned) */
.macro TAKE_LARGER
    cmp     r9, r11
    jl      2f                      /* next.hi < best.hi: keep */
    jne     1f                      /* next.hi > best.hi: take */
    cmp     r8, r10
    jlo     2f                      /* next.lo < best.lo (unsigned): keep */
1:  mov     r10, r8
    mov     r11, r9
2:
.endm

    .section .text.__unit_pool_best2x2_s8,"ax",@progbits
    .global __unit_pool_best2x2_s8
    .type   __unit_pool_best2x2_s8, @function
__unit_pool_best2x2_s8:
    push    r10
    push    r9
    push    r8
    add     r13, r15                /* r15 = the bottom row */
3:  mov     @r13+, r8
    mov     @r13+, r9
    mov     @r13+, r10
    mov     @r13+, r11
    TAKE_LARGER
    mov     @r15+, r10
    mov     @r15+, r11
    TAKE_LARGER
    mov     @r15+, r10
    mov     @r15+, r11
    TAKE_LARGER
    mov     r8, 0(r12)
    mov     r9, 2(r12)
    add     #4, r12
    dec     r14
    jnz     3b
    pop     r8
    pop     r9
    pop     r10
    ret
    .size   __unit_pool_best2x2_s8, .-__unit_pool_best2x2_s8
