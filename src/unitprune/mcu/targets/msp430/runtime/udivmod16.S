/* SPDX-License-Identifier: MIT */
/* unit__udivmod16: unsigned 16-bit restoring division, the core of __mspabi_divi/divu/remi/remu.
 *     uint16_t unit__udivmod16(uint16_t n, uint16_t d, uint16_t *remainder);
 * C convention: n in R12, d in R13, remainder pointer in R14; quotient in R12. One quotient bit
 * per step: n shifts left into the partial remainder (R15) and its freed low bit takes the
 * quotient bit. A carry out of the remainder means it exceeds 16 bits, hence d: subtract.
 * d == 0 gives quotient 0xFFFF and remainder n (C leaves it undefined). */
    .text
    .global unit__udivmod16
    .type   unit__udivmod16, @function
unit__udivmod16:
    clr     r15
    mov     #16, r11
1:  rla     r12
    rlc     r15
    jc      2f
    cmp     r13, r15
    jlo     3f
2:  sub     r13, r15
    bis     #1, r12
3:  dec     r11
    jnz     1b
    mov     r15, 0(r14)
    ret
