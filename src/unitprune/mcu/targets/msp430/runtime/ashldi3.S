/* SPDX-License-Identifier: MIT */
/* __ashldi3: 64-bit shift left, the libgcc name clang-14 calls for msp430 (C convention: x in
 * R15:R14:R13:R12, the 16-bit count on the stack; result in R15:R14:R13:R12). Whole words while
 * the count is >= 16, then one bit per step. Counts above 63 are undefined in C; a count <= 0
 * returns x. Assembly: clang-14's code for the same C took about 3x the cycles (477 against 146 per 64-bit shift, benchmarks/mcu_runtime.py). */
    .text
    .global __ashldi3
    .type   __ashldi3, @function
__ashldi3:
    mov     2(r1), r11
1:  cmp     #16, r11
    jl      2f
    mov     r14, r15
    mov     r13, r14
    mov     r12, r13
    clr     r12
    sub     #16, r11
    jmp     1b
2:  tst     r11
    jz      4f
    jn      4f
3:
    rla     r12
    rlc     r13
    rlc     r14
    rlc     r15
    dec     r11
    jnz     3b
4:  ret
