/* SPDX-License-Identifier: MIT */
/* __mspabi_mpyl: 32-bit multiply, low 32 bits (EABI: R13:R12 * R15:R14 -> R13:R12). Operands
 * that are int16 values widened to 32 bits (what `(int32_t)a * b` of int8/int16 data compiles
 * to) take one signed 16x16 -> 32 product: on the hardware multiplier (msp430-hwmult) MPYS, in
 * software (msp430) a shift and add over the smaller magnitude. Any other pair goes to the C
 * function unit__mspabi_mpyl_wide (mpyl.c: three 16-bit limb products). Assembly: clang-14's
 * code for the same C took 2.6x the cycles (438 against 171 per int16 x int16 -> int32 loop
 * iteration of benchmarks/mcu_runtime.py; its sign tests are 7-shift sequences). */
    .text
    .global __mspabi_mpyl
    .type   __mspabi_mpyl, @function
__mspabi_mpyl:
    mov     r12, r11                /* r11 = sign word of a's low half: 0 or 0xFFFF */
    swpb    r11
    sxt     r11
    swpb    r11
    sxt     r11
    cmp     r11, r13
    jne     9f                      /* a is not a widened int16 */
    mov     r14, r11
    swpb    r11
    sxt     r11
    swpb    r11
    sxt     r11
    cmp     r11, r15
    jne     9f                      /* b is not a widened int16 */
#if UNIT_MSP430_HWMULT
    mov     r12, &0x0132            /* MPYS: signed operand 1 */
    mov     r14, &0x0138            /* OP2: starts the product */
    mov     &0x013a, r12            /* RESLO */
    mov     &0x013c, r13            /* RESHI */
    ret
#else
    push    r10
    mov     r12, r10
    xor     r14, r10                /* bit 15 of r10: the sign of the product */
    tst     r12
    jge     1f
    inv     r12
    inc     r12                     /* |a| */
1:  tst     r14
    jge     2f
    inv     r14
    inc     r14                     /* |b| */
2:  cmp     r12, r14
    jlo     3f                      /* loop over the smaller magnitude (r14) */
    mov     r12, r13
    mov     r14, r12
    mov     r13, r14
3:  clr     r13                     /* addend r13:r12 = |a| << step */
    clr     r11                     /* product r15:r11 */
    clr     r15
4:  clrc
    rrc     r14                     /* C = next bit of the multiplier */
    jnc     5f
    add     r12, r11
    addc    r13, r15
5:  rla     r12
    rlc     r13
    tst     r14
    jnz     4b
    tst     r10
    jge     6f
    inv     r11                     /* negate the 32-bit product */
    inv     r15
    inc     r11
    adc     r15
6:  mov     r11, r12
    mov     r15, r13
    pop     r10
    ret
#endif
9:  br      #unit__mspabi_mpyl_wide /* same registers: the C convention's two 32-bit arguments */
