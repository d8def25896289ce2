/* SPDX-License-Identifier: MIT */
/* __mspabi_mpyll: 64-bit multiply (EABI helper convention, as clang-14 calls it: first operand
 * in R11:R10:R9:R8, second in R15:R14:R13:R12, product in R15:R14:R13:R12). Forwards to the C
 * function unit__mspabi_mpyll (mpyll.c): the second operand stays in R12-R15 (the C convention's
 * first 64-bit argument), the first is pushed as its stack argument (low word at the lowest
 * address). unit__mspabi_mpyll preserves R4-R10 as every C function does. */
    .text
    .global __mspabi_mpyll
    .type   __mspabi_mpyll, @function
__mspabi_mpyll:
    push    r11
    push    r10
    push    r9
    push    r8
    call    #unit__mspabi_mpyll
    add     #8, r1
    ret
