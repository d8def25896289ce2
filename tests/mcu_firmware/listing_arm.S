/* Hand-counted ARMv6-M listing (cycles from the Cortex-M0+ TRM, ARM DDI 0484C Table 3.1):
 * see tests/test_mcu_cores.py for the count. */
    .syntax unified
    .thumb
    .text
    .thumb_func
    .global listing
listing:
    push    {r4, lr}            /* 1 + 2 */
    movs    r0, #5              /* 1 */
1:  subs    r0, #1              /* 1, five times */
    bne     1b                  /* taken 4 x 2, not taken 1 */
    ldr     r1, =value          /* 2 */
    ldrsb   r2, [r1, r0]        /* 2 */
    muls    r2, r2, r2          /* 1, or 32 with the small multiplier */
    str     r2, [r1, #4]        /* 2 */
    ldm     r1!, {r2, r3}       /* 1 + 2 */
    b       2f                  /* 2 */
    nop                         /* skipped */
2:  pop     {r4, pc}            /* 3 + 2 */
    .pool
    .data
    .balign 4
value:
    .word   -3, 0
