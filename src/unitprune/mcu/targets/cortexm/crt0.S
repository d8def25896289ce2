/* SPDX-License-Identifier: MIT */
/* crt0.S -- reset code of unitprune's Cortex-M0/M0+ firmware (memory map: link.ld + the memory.ld
 * the build writes from unitprune.mcu.targets.specs), and the marker stubs of unit_mcu.h.
 * ARMv6-M Thumb only (it also runs on the strict Cortex-M0 of qemu-system-arm -M microbit).
 *
 * Reset: set SP, copy .data from flash, zero .bss, paint the free SRAM between the end of .bss and
 * the stack top with 0xA5A5A5A5 (stack high-water measurement), call main.
 *
 * Markers: __unit_mcu_start and __unit_mcu_stop are bare BX LR at known symbols: the emulator
 * (unitprune.mcu.targets.emulator) hooks their addresses and reads its cycle counter there. The
 * label/emit stubs (include/unit_mcu_io.c, between __unit_mcu_io_begin and __unit_mcu_io_end) print through
 * semihosting under QEMU; the emulator reads r0/r1 at their entry instead and returns at once.
 * __unit_mcu_done falls into __unit_mcu_halt: the lowest word that is no longer paint gives the
 * stack bytes in r0 at __unit_mcu_end, which ends the run (semihosting SYS_EXIT under QEMU). */
    .syntax unified
    .thumb

    .section .vectors,"a",%progbits
    .global __unit_vectors
__unit_vectors:
    .word   __stack_top
    .word   __unit_reset
    .word   __unit_mcu_fault        /* NMI */
    .word   __unit_mcu_fault        /* HardFault */

    .section .crt0,"ax",%progbits
    .thumb_func
    .global __unit_reset
__unit_reset:
    ldr     r0, =__stack_top
    mov     sp, r0
    ldr     r0, =__data_load        /* .data: flash image -> SRAM */
    ldr     r1, =__data_start
    ldr     r2, =__data_end
1:  cmp     r1, r2
    bhs     2f
    ldr     r3, [r0]
    str     r3, [r1]
    adds    r0, #4
    adds    r1, #4
    b       1b
2:  ldr     r1, =__bss_end          /* .bss: zero */
    ldr     r0, =__bss_start
    movs    r3, #0
3:  cmp     r0, r1
    bhs     4f
    str     r3, [r0]
    adds    r0, #4
    b       3b
4:  ldr     r1, =__stack_top        /* paint the free SRAM (r0 = __bss_end) */
    ldr     r3, =0xa5a5a5a5
5:  cmp     r0, r1
    bhs     6f
    str     r3, [r0]
    adds    r0, #4
    b       5b
6:  bl      main
    b       __unit_mcu_halt         /* main returned without unit_mcu_done(): reported by the host */

    .thumb_func
    .global __unit_mcu_start
__unit_mcu_start:
    bx      lr
    .thumb_func
    .global __unit_mcu_stop
__unit_mcu_stop:
    bx      lr

    .thumb_func
    .global __unit_mcu_done
__unit_mcu_done:
    nop
    .thumb_func
    .global __unit_mcu_halt
__unit_mcu_halt:
    ldr     r1, =__bss_end
    ldr     r2, =__stack_top
    ldr     r3, =0xa5a5a5a5
7:  cmp     r1, r2
    bhs     8f
    ldr     r0, [r1]
    cmp     r0, r3
    bne     8f
    adds    r1, #4
    b       7b
8:  subs    r0, r2, r1              /* bytes between the lowest touched word and the top */
    .thumb_func
    .global __unit_mcu_end
__unit_mcu_end:
    bl      __unit_mcu_exit         /* unit_mcu_io.c: semihosting SYS_EXIT under QEMU; the emulator stops here */
    .thumb_func
    .global __unit_mcu_fault
__unit_mcu_fault:                   /* HardFault/NMI: the emulator stops here; QEMU exits */
    movs    r0, #0
    bl      __unit_mcu_exit
    .pool
