/* SPDX-License-Identifier: MIT */
/* __mspabi_mpyll: 64-bit multiply, low 64 bits (EABI helper convention, as clang-14 calls it:
 * first operand in R11:R10:R9:R8, second in R15:R14:R13:R12, product in R15:R14:R13:R12; R4-R10
 * preserved).
 *
 * Operands that are int32 values widened to 64 bits (int8 requantization: (int64_t)acc *
 * multiplier) take a signed 32x32 -> 64 product of the magnitudes: in software (msp430 target) a
 * shift and add over the bits of the smaller magnitude (an accumulator of b bits: b steps), on
 * the 16-bit hardware multiplier (msp430-hwmult) four 16x16 products. Any other pair goes to the
 * C function unit__mspabi_mpyll (mpyll.c, C convention): the second
 * operand stays in R12-R15 (the C convention's first 64-bit argument), the first is pushed as its
 * stack argument (low word at the lowest address). */
    .text
    .global __mspabi_mpyll
    .type   __mspabi_mpyll, @function
__mspabi_mpyll:
    push    r7
    mov     r9, r7                  /* r7 = sign word of a's low 32 bits */
    swpb    r7
    sxt     r7
    swpb    r7
    sxt     r7
    cmp     r7, r10
    jne     9f
    cmp     r7, r11
    jne     9f                      /* a is not a widened int32 */
    mov     r13, r7
    swpb    r7
    sxt     r7
    swpb    r7
    sxt     r7
    cmp     r7, r14
    jne     9f
    cmp     r7, r15
    jne     9f                      /* b is not a widened int32 */
    push    r4
    push    r5
    push    r6
    push    r8
    push    r9
    push    r10
    mov     r9, r7
    xor     r13, r7                 /* bit 15 of r7: the sign of the product */
    tst     r9
    jge     1f
    inv     r8
    inv     r9
    inc     r8
    adc     r9                      /* |a| in r9:r8 */
1:  tst     r13
    jge     2f
    inv     r12
    inv     r13
    inc     r12
    adc     r13                     /* |b| in r13:r12 */
2:
#if UNIT_MSP430_HWMULT
    /* product r15:r14:r11:r10 = a0*b0 + ((a0*b1 + a1*b0) << 16) + (a1*b1 << 32), 16-bit limbs;
     * MPY 0x0130 (unsigned operand 1), OP2 0x0138 (starts the product), RESLO/RESHI 0x013A/C */
    clr     r14
    clr     r15
    mov     r8, &0x0130
    mov     r12, &0x0138
    mov     &0x013a, r10
    mov     &0x013c, r11
    mov     r8, &0x0130
    mov     r13, &0x0138
    add     &0x013a, r11
    addc    &0x013c, r14
    adc     r15
    mov     r9, &0x0130
    mov     r12, &0x0138
    add     &0x013a, r11
    addc    &0x013c, r14
    adc     r15
    mov     r9, &0x0130
    mov     r13, &0x0138
    add     &0x013a, r14
    addc    &0x013c, r15
#else
    cmp     r13, r9                 /* multiplier r9:r8 = the smaller magnitude */
    jlo     4f
    jne     3f
    cmp     r12, r8
    jlo     4f
3:  mov     r8, r6
    mov     r12, r8
    mov     r6, r12
    mov     r9, r6
    mov     r13, r9
    mov     r6, r13
4:  clr     r4                      /* addend r5:r4:r13:r12 */
    clr     r5
    clr     r10                     /* product r15:r14:r11:r10 */
    clr     r11
    clr     r14
    clr     r15
5:  clrc
    rrc     r9
    rrc     r8                      /* C = next bit of the multiplier */
    jnc     6f
    add     r12, r10
    addc    r13, r11
    addc    r4, r14
    addc    r5, r15
6:  rla     r12
    rlc     r13
    rlc     r4
    rlc     r5
    tst     r8
    jnz     5b
    tst     r9
    jnz     5b
#endif
    tst     r7
    jge     7f
    inv     r10                     /* negate the 64-bit product */
    inv     r11
    inv     r14
    inv     r15
    inc     r10
    adc     r11
    adc     r14
    adc     r15
7:  mov     r10, r12
    mov     r11, r13
    pop     r10
    pop     r9
    pop     r8
    pop     r6
    pop     r5
    pop     r4
    pop     r7
    ret
9:  pop     r7
    push    r11
    push    r10
    push    r9
    push    r8
    call    #unit__mspabi_mpyll
    add     #8, r1
    ret
