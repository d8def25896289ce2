/* SPDX-License-Identifier: MIT */
/* __unit_mac_s8(int32_t *acc, int16_t x, int16_t w): *acc += x * w for int8 x and w (passed
 * sign-extended; EABI: r12 = acc, r13 = x, r14 = w). The multiply-accumulate of every int8 kernel
 * on MSP430 (unit__mac_s8 in csrc/unit_internal_s8.h), for dense, zero-skipping and UnIT alike.
 * The int16 product goes into the int32 accumulator by add/addc (sub/subc for a negative product):
 * clang-14 sign-extends an int16 with a swpb, sxt and seven rra and adds without addc.
 * Software multiply (the msp430 target): shift and add over the bits of the smaller magnitude
 * (at most 8 steps of 8 cycles). Hardware multiply (msp430-hwmult): the low word of the unsigned
 * 16x16 product of the sign-extended operands is the int16 product. */
    .section .text.__unit_mac_s8,"ax",@progbits
    .global __unit_mac_s8
    .type   __unit_mac_s8, @function
__unit_mac_s8:
#if UNIT_MSP430_HWMULT
    mov     r13, &0x0130            /* MPY */
    mov     r14, &0x0138            /* OP2: starts the multiply */
    mov     &0x013A, r15            /* RESLO: the int16 product */
    tst     r15
    jl      1f
    add     r15, 0(r12)
    addc    #0, 2(r12)
    ret
1:  add     r15, 0(r12)
    addc    #-1, 2(r12)
    ret
#else
    mov     r13, r15
    xor     r14, r15                /* bit 15 of r15: the sign of the product */
    tst     r13
    jge     1f
    inv     r13
    inc     r13                     /* |x| */
1:  tst     r14
    jge     2f
    inv     r14
    inc     r14                     /* |w| */
2:  cmp     r13, r14
    jlo     3f                      /* loop over the smaller magnitude (r14) */
    mov     r13, r11
    mov     r14, r13
    mov     r11, r14
3:  clr     r11                     /* |product| */
4:  rra     r14                     /* C = next bit of the multiplier (r14 >= 0) */
    jnc     5f
    add     r13, r11
5:  rla     r13
    tst     r14
    jnz     4b
    tst     r15
    jl      6f
    add     r11, 0(r12)
    addc    #0, 2(r12)
    ret
6:  sub     r11, 0(r12)
    subc    #0, 2(r12)
    ret
#endif
    .size   __unit_mac_s8, .-__unit_mac_s8
