/* SPDX-License-Identifier: MIT */
/* crt0.S -- reset code of unitprune's RV32 firmware (rv32ec and rv32imc; memory map: link.ld +
 * the memory.ld the build writes from unitprune.mcu.targets.specs), and the marker stubs of
 * unit_mcu.h. Uses x0-x15 only (valid RV32E).
 *
 * Reset: set sp and gp, point mtvec at __unit_mcu_fault, copy .data from flash, zero .bss, paint the free SRAM between the end of
 * .bss and the stack top with 0xA5A5A5A5 (stack high-water measurement), call main.
 *
 * Markers: __unit_mcu_start and __unit_mcu_stop are bare RETs at known symbols: the emulator
 * (unitprune.mcu.targets.emulator) hooks their addresses and reads its counters there. The
 * label/emit stubs (include/unit_mcu_io.c, between __unit_mcu_io_begin and __unit_mcu_io_end) print through
 * semihosting under QEMU; the emulator reads a0/a1 at their entry instead and returns at once.
 * __unit_mcu_done falls into __unit_mcu_halt: the lowest word that is no longer paint gives the
 * stack bytes in a0 at __unit_mcu_end, which ends the run (semihosting SYS_EXIT under QEMU). */
    .section .crt0,"ax",@progbits
    .global __unit_reset
__unit_reset:
    .option push
    .option norelax
    la      gp, __global_pointer$
    .option pop
    la      sp, __stack_top
    .option push
    .option arch, +zicsr
    la      t0, __unit_mcu_fault    /* traps (an instruction the core lacks): end the run */
    csrw    mtvec, t0
    .option pop
    la      a0, __data_load         /* .data: flash image -> SRAM */
    la      a1, __data_start
    la      a2, __data_end
1:  bgeu    a1, a2, 2f
    lw      a3, 0(a0)
    sw      a3, 0(a1)
    addi    a0, a0, 4
    addi    a1, a1, 4
    j       1b
2:  la      a0, __bss_start         /* .bss: zero */
    la      a1, __bss_end
3:  bgeu    a0, a1, 4f
    sw      zero, 0(a0)
    addi    a0, a0, 4
    j       3b
4:  la      a1, __stack_top         /* paint the free SRAM (a0 = __bss_end) */
    li      a3, 0xa5a5a5a5
5:  bgeu    a0, a1, 6f
    sw      a3, 0(a0)
    addi    a0, a0, 4
    j       5b
6:  call    main
    j       __unit_mcu_halt         /* main returned without unit_mcu_done(): reported by the host */

    .global __unit_mcu_start
__unit_mcu_start:
    ret
    .global __unit_mcu_stop
__unit_mcu_stop:
    ret

    .global __unit_mcu_done
__unit_mcu_done:
    nop
    .global __unit_mcu_halt
__unit_mcu_halt:
    la      a1, __bss_end
    la      a2, __stack_top
    li      a3, 0xa5a5a5a5
7:  bgeu    a1, a2, 8f
    lw      a0, 0(a1)
    bne     a0, a3, 8f
    addi    a1, a1, 4
    j       7b
8:  sub     a0, a2, a1              /* bytes between the lowest touched word and the top */
    .global __unit_mcu_end
__unit_mcu_end:
    call    __unit_mcu_exit         /* unit_mcu_io.c: semihosting SYS_EXIT under QEMU; the emulator stops here */
    .balign 4
    .global __unit_mcu_fault
__unit_mcu_fault:                   /* mtvec: the emulator stops here; QEMU exits */
    li      a0, 0
    call    __unit_mcu_exit
