/* SPDX-License-Identifier: MIT */
/* unit_requantize_run_table_s8_msp430.S -- the kernels' output stage on MSP430 by a threshold table,
 * without a multiply (docs/fixed_point.md, "Threshold tables"):
 *
 *   void __unit_requantize_run_table_s8(int8_t *y, const int32_t *stored, int16_t count,
 *                                       const unit__requant_run_s8 *s)
 *   (EABI: r12 = y, r13 = stored, r14 = count >= 1, r15 = s; s->thresholds != NULL)
 *
 * y[i] = clamp(requantize(s->base + stored[i], multiplier, shift), act_min, act_max) for any
 * multiplier and shift, from the channel's table E (s->thresholds, unit_requant_s8.thresholds):
 * E[q - 1] = T+(q) + T-(q) for q = 1..128, T+(q) / T-(q) the smallest A >= 1 with |y(+A)| >= q /
 * |y(-A)| >= q. |y| is monotone in A = |acc| and T-(q) - T+(q) is 0 or 1 (the tie of the negative
 * nudge), so with the key 2A + 1 (acc >= 0) or 2A (acc < 0): |y| >= q iff key >= E[q - 1].
 * The table holds only channels with T-(128) <= 2**30: A >= 2**30 saturates (|y| >= 128), and
 * the key stays below 2**32. A binary search of 7 unsigned 32-bit compares finds
 * c = #{q <= 127: key >= E[q - 1]}, which is min(|y|, 127): for acc >= 0 the clamp (act_max <= 127)
 * needs no more; for acc < 0 a compare against E[127] first sends |y| >= 128 to act_min (>= -128).
 * acc < 0 with act_min >= 0 gives act_min without a search (ReLU).
 * Registers: r4 y, r5 stored, r6 count, r7 s, r8 act_min, r9 act_max, r10 the table, r11:r14 base,
 * r12:r13 the accumulator, then the key; r15 the search pointer E + 4c, then c and y. */

/* One step of the search: E[c + step - 1] is at \off(r15) = 4 * (step - 1)(r15); c += step
 * (r15 += 4 * step) when key >= that entry. */
.macro STEP off
    cmp     \off+2(r15), r13
    jne     1f
    cmp     \off(r15), r12
1:  jlo     2f
    add     #\off+4, r15
2:
.endm

.macro SEARCH
    mov     r10, r15
    STEP    252
    STEP    124
    STEP    60
    STEP    28
    STEP    12
    STEP    4
    STEP    0
    sub     r10, r15                /* c = (r15 - E) / 4 */
    rra     r15
    rra     r15
.endm

    .section .text.__unit_requantize_run_table_s8,"ax",@progbits
    .global __unit_requantize_run_table_s8
    .type   __unit_requantize_run_table_s8, @function
__unit_requantize_run_table_s8:
    push    r4
    push    r5
    push    r6
    push    r7
    push    r8
    push    r9
    push    r10
    mov     r12, r4
    mov     r13, r5
    mov     r14, r6
    mov     r15, r7
    mov.b   9(r7), r8
    sxt     r8
    mov.b   10(r7), r9
    sxt     r9
    mov     34(r7), r10
    mov     0(r7), r11
    mov     2(r7), r14
.Lt_loop:
    mov     r11, r12                /* acc = base + stored */
    mov     r14, r13
    add     @r5+, r12
    addc    @r5+, r13
    jn      .Lt_negative
    cmp     #0x4000, r13
    jhs     .Lt_max                 /* A >= 2**30: |y| >= 128 */
    setc                            /* key = 2A + 1 */
    rlc     r12
    rlc     r13
    SEARCH
    cmp     r15, r9                 /* y = c (c = 127 also stands for 128: act_max <= 127) */
    jl      .Lt_max
    cmp     r8, r15
    jl      .Lt_min
.Lt_store:
    mov.b   r15, 0(r4)
    inc     r4
    dec     r6
    jnz     .Lt_loop
.Lt_done:
    pop     r10
    pop     r9
    pop     r8
    pop     r7
    pop     r6
    pop     r5
    pop     r4
    ret
.Lt_max:
    mov     r9, r15
    jmp     .Lt_store
.Lt_min:
    mov     r8, r15
    jmp     .Lt_store
.Lt_negative:
    tst     r8
    jge     .Lt_min                 /* act_min >= 0: the ReLU shortcut */
    inv     r12                     /* A = |acc| */
    inv     r13
    inc     r12
    adc     r13
    rla     r12                     /* key = 2A */
    rlc     r13
    jc      .Lt_min                 /* A = 2**31 (INT32_MIN) */
    cmp     510(r10), r13           /* key >= E[127]: y <= -128 (A in [2**30, 2**31) too, E[127] <= 2**31) */
    jne     3f
    cmp     508(r10), r12
3:  jhs     .Lt_min
    SEARCH
    inv     r15                     /* y = -c */
    inc     r15
    cmp     r8, r15
    jl      .Lt_min
    cmp     r15, r9
    jl      .Lt_max
    mov.b   r15, 0(r4)              /* the store of .Lt_store, without the jump */
    inc     r4
    dec     r6
    jnz     .Lt_loop
    jmp     .Lt_done
    .size   __unit_requantize_run_table_s8, .-__unit_requantize_run_table_s8
