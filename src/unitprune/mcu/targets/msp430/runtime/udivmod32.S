/* SPDX-License-Identifier: MIT */
/* unit__udivmod32: unsigned 32-bit restoring division, the core of __mspabi_divli/divul/remli/remul.
 *     uint32_t unit__udivmod32(uint32_t n, uint32_t d, uint32_t *remainder);
 * C convention: n in R13:R12, d in R15:R14, the remainder pointer on the stack; quotient in
 * R13:R12. As unit__udivmod16, with the partial remainder in R11:R10 and the step count in R9
 * (R8-R10 are callee-saved: pushed). d == 0 gives quotient 0xFFFFFFFF and remainder n. */
    .text
    .global unit__udivmod32
    .type   unit__udivmod32, @function
unit__udivmod32:
    push    r10
    push    r9
    push    r8
    clr     r10
    clr     r11
    mov     #32, r9
1:  rla     r12
    rlc     r13
    rlc     r10
    rlc     r11
    jc      2f                      /* remainder >= 2**32 > d */
    cmp     r15, r11
    jlo     3f                      /* high word below d's: remainder < d */
    jne     2f
    cmp     r14, r10
    jlo     3f
2:  sub     r14, r10
    subc    r15, r11
    bis     #1, r12
3:  dec     r9
    jnz     1b
    mov     8(r1), r8               /* the stack argument: above r8, r9, r10 and the return address */
    mov     r10, 0(r8)
    mov     r11, 2(r8)
    pop     r8
    pop     r9
    pop     r10
    ret
