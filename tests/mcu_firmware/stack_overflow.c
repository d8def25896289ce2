/* SPDX-License-Identifier: MIT */
/* stack_overflow.c -- a firmware whose stack runs through all the SRAM above its static data
 * (tests/test_mcu_targets.py, tests/test_mcu_cores.py: every simulator reports it as a stack
 * overflow, not as results). The recursion stops once its frame lies in the middle of the
 * 2,000 B array of .bss, whatever the target's SRAM size and frame size: the stack ends inside
 * the static data, never below the start of SRAM. */
#include <stdint.h>

#include "unit_mcu.h"

#define NOINLINE __attribute__((noinline))

static volatile uint8_t sink;
static volatile uint8_t statics[2000]; /* 2,000 B of .bss: the stack runs into it, not below SRAM */

NOINLINE static uint8_t deep(uint16_t depth) {
    volatile uint8_t frame[64];
    uint8_t i;
    for (i = 0; i < sizeof frame; i++) {
        frame[i] = (uint8_t)(depth + i);
    }
    /* deeper while this frame is above the middle of statics (the stack grows down to it) */
    uint8_t below = (uintptr_t)frame > (uintptr_t)&statics[sizeof statics / 2] ? deep((uint16_t)(depth + 1)) : 0;
    return (uint8_t)(frame[depth % sizeof frame] + below);
}

int main(void) {
    statics[0] = 1;
    unit_mcu_label("deep");
    sink = deep(0);
    unit_mcu_emit((const void *)&sink, 1);
    unit_mcu_done();
    return 0;
}
