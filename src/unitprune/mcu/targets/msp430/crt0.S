/* SPDX-License-Identifier: MIT */
/* crt0.S -- reset code of unitprune's MSP430 firmware (memory map in link.ld), and the marker
 * stubs of unit_mcu.h.
 *
 * Reset: stop the watchdog, set SP, copy .data from FRAM, zero .bss, paint the free SRAM between
 * the end of .bss and the stack top with 0xA5A5 (for the stack high-water measurement), call main.
 *
 * Markers: __unit_mcu_start, __unit_mcu_stop, __unit_mcu_label (R12: the label) and
 * __unit_mcu_emit (R12: the bytes, R13: how many) are bare RETs at known symbols; the host
 * (unitprune.mcu.targets.msp430) puts breakpoints on them, reads the MCLK cycle count, R12/R13
 * and memory at each stop, and resumes. __unit_mcu_done (unit_mcu_done()) falls into
 * __unit_mcu_halt, which finds the lowest word that is no longer paint and loops at
 * __unit_mcu_end with the stack bytes used in R12. A main that returns reaches __unit_mcu_halt
 * without passing __unit_mcu_done, which the host reports. */
    .section .crt0,"ax",@progbits
    .global __unit_reset
__unit_reset:
    mov     #0x5a80, &0x015c        /* WDTCTL = WDTPW | WDTHOLD (MSP430FR5994 address) */
    mov     #__stack_top, r1
    mov     #__data_load, r12       /* .data: FRAM image -> SRAM */
    mov     #__data_start, r13
1:  cmp     #__data_end, r13
    jhs     2f
    mov     @r12+, r14
    mov     r14, 0(r13)
    incd    r13
    jmp     1b
2:  mov     #__bss_start, r13       /* .bss: zero */
3:  cmp     #__bss_end, r13
    jhs     4f
    clr     0(r13)
    incd    r13
    jmp     3b
4:  mov     #__stack_paint_start, r13
5:  cmp     #__stack_top, r13
    jhs     6f
    mov     #0xa5a5, 0(r13)
    incd    r13
    jmp     5b
6:  call    #main
    jmp     __unit_mcu_halt         /* main returned without unit_mcu_done(): reported by the host */

    .global __unit_mcu_start
__unit_mcu_start:
    ret
    .global __unit_mcu_stop
__unit_mcu_stop:
    ret
    .global __unit_mcu_label
__unit_mcu_label:
    ret
    .global __unit_mcu_emit
__unit_mcu_emit:
    ret

    .global __unit_mcu_done
__unit_mcu_done:
    nop
    .global __unit_mcu_halt
__unit_mcu_halt:
    mov     #__stack_paint_start, r13
7:  cmp     #__stack_top, r13
    jhs     8f
    cmp     #0xa5a5, 0(r13)
    jne     8f
    incd    r13
    jmp     7b
8:  mov     #__stack_top, r12
    sub     r13, r12                /* bytes between the lowest touched word and the top */
    .global __unit_mcu_end
__unit_mcu_end:
    jmp     __unit_mcu_end

    .section .resetvec,"a",@progbits
    .word   __unit_reset
