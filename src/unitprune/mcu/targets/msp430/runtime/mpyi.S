/* SPDX-License-Identifier: MIT */
/* __mspabi_mpyi, software multiply (the msp430 target; mpyi.c is the hwmult one): 16-bit
 * multiply, low 16 bits (EABI: R12 * R13 -> R12). The magnitudes are multiplied by shift and add
 * over the bits of the smaller one (int8 operands: at most 8 steps), then the sign applied.
 * Written in assembly: clang-14's code for the same C took 1.7x the cycles (189 against 110 per
 * loop iteration of benchmarks/mcu_runtime.py). */
#if !UNIT_MSP430_HWMULT
    .text
    .global __mspabi_mpyi
    .type   __mspabi_mpyi, @function
__mspabi_mpyi:
    mov     r12, r15
    xor     r13, r15                /* bit 15 of r15: the sign of the product */
    tst     r12
    jge     1f
    inv     r12
    inc     r12                     /* |a| */
1:  tst     r13
    jge     2f
    inv     r13
    inc     r13                     /* |b| */
2:  cmp     r12, r13
    jlo     3f                      /* loop over the smaller magnitude (r13) */
    mov     r12, r14
    mov     r13, r12
    mov     r14, r13
3:  clr     r14                     /* product */
4:  clrc
    rrc     r13                     /* C = next bit of the multiplier */
    jnc     5f
    add     r12, r14
5:  rla     r12
    tst     r13
    jnz     4b
    tst     r15
    jge     6f
    inv     r14
    inc     r14
6:  mov     r14, r12
    ret
#endif
