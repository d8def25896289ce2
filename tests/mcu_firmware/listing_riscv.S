/* Hand-counted RV32 listing (exact instruction count; model cycles of riscv_timing):
 * see tests/test_mcu_cores.py for the count. */
    .text
    .global listing
listing:
    li      a0, 5               /* 1 */
1:  addi    a0, a0, -1          /* 1, five times */
    bnez    a0, 1b              /* 1, +1 when taken (4 times) */
    la      a1, value           /* auipc + addi: 2 */
    lw      a2, 0(a1)           /* 1 + 1 (load) */
    sw      a2, 4(a1)           /* 1 */
    j       2f                  /* 1 + 1 (jump) */
    nop                         /* skipped */
2:  ret                         /* 1 + 1 (jump) */
    .data
    .balign 4
value:
    .word   -3, 0
