/* SPDX-License-Identifier: MIT */
/* stack_overflow.c -- a firmware whose stack runs through all the SRAM above its static data
 * (tests/test_mcu_targets.py: the AVR run reports it as a stack overflow, not as results). */
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
    return (uint8_t)(frame[depth % sizeof frame] + (depth > 0 ? deep((uint16_t)(depth - 1)) : 0));
}

int main(void) {
    statics[0] = 1;
    unit_mcu_label("deep");
    sink = deep(96); /* ~97 frames of ~70 bytes: ~6.8 KB, more than the ~6.1 KB above .bss */
    unit_mcu_emit((const void *)&sink, 1);
    unit_mcu_done();
    return 0;
}
