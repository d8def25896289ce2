/* SPDX-License-Identifier: MIT */
/* msp430_cycle_table.c -- pins down how mspdebug's simulator counts MSP430 cycles (for
 * tests/test_mcu_targets.py and docs/mcu.md): three loops of 1000 iterations whose silicon cost
 * the MSP430 family guide gives exactly. Constant-generator operands (#1, #2, ...) cost like
 * register operands on silicon; mspdebug 0.22 counts them as the addressing mode their encoding
 * reuses (#1: indexed, +2 cycles; #2/#4/#8 and #-1: indirect, +1 cycle). Every region also
 * counts its markers: the start stub's RET (3) and the stop marker's CALL #imm (5). */
#include "unit_mcu.h"

int main(void) {
    unit_mcu_label("empty");
    UNIT_MCU_START();
    UNIT_MCU_STOP();
    /* mov #1000,r12 (2) + 1000 x [dec r12 (= sub #1: 1 on silicon) + jnz (2)] */
    unit_mcu_label("dec_loop");
    UNIT_MCU_START();
    __asm__ __volatile__("mov #1000, r12\n1: dec r12\n jnz 1b" ::: "r12");
    UNIT_MCU_STOP();
    /* mov #1000,r12 (2) + mov #7,r13 (2) + 143 x [sub r13,r12 (1) + jc (2)]: no constant generator */
    unit_mcu_label("register_loop");
    UNIT_MCU_START();
    __asm__ __volatile__("mov #1000, r12\n mov #7, r13\n1: sub r13, r12\n jc 1b" ::: "r12", "r13");
    UNIT_MCU_STOP();
    /* incd r12 (= add #2: 1 on silicon) */
    unit_mcu_label("incd");
    UNIT_MCU_START();
    __asm__ __volatile__("incd r12" ::: "r12");
    UNIT_MCU_STOP();
    unit_mcu_done();
}
