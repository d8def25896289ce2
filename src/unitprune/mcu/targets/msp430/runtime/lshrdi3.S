/* SPDX-License-Identifier: MIT */
/* __lshrdi3: 64-bit logical shift right, the libgcc name clang-14 calls for msp430 (C convention: x in
 * R15:R14:R13:R12, the 16-bit count on the stack; result in R15:R14:R13:R12). Whole words while
 * the count is >= 16, then one bit per step. Counts above 63 are undefined in C; a count <= 0
 * returns x. Assembly: clang-14's code for the same C took about 3x the cycles (477 against 146 per 64-bit shift, benchmarks/mcu_runtime.py). */
    .text
    .global __lshrdi3
    .type   __lshrdi3, @function
__lshrdi3:
    mov     2(r1), r11
1:  cmp     #16, r11
    jl      2f
    mov     r13, r12
    mov     r14, r13
    mov     r15, r14
    clr     r15
    sub     #16, r11
    jmp     1b
2:  tst     r11
    jz      4f
    jn      4f
3:
    clrc
    rrc     r15
    rrc     r14
    rrc     r13
    rrc     r12
    dec     r11
    jnz     3b
4:  ret
