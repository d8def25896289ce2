/* SPDX-License-Identifier: MIT */
/* sparse_tau_run_avr.S -- a measurement prototype (benchmarks/sparse_tau_mcu.py), not a library
 * kernel: the AVR run of the static-sparse int8 convolution (csrc/unit_conv2d_sparse_s8_avr.S,
 * stride 1) with UnIT's test per record, for inputs x >= 0:
 *
 *   void proto_sparse_tau_run_avr(int32_t *out, const int8_t *x, const int16_t *records,
 *                                 uint16_t nnz, uint8_t count)
 *
 * records {int16 offset, int8 weight, uint8 tau} in flash below 64 KB (tau in the byte the plain
 * run skips); a product is added only where x > tau (x <= tau: UnIT skips it, x == 0 included).
 * The output keeps the plain run's convention, out[i] = -(sum over ALL records of (p + 32768))
 * modulo 2**32 with p = x*w where kept, else 0: a skipped record still subtracts its 32768 bias
 * (SUB/SBCI on the upper bytes), so unit__dot_value_s8 reads it back unchanged. Four outputs per
 * pass, then one by one, as the plain run. Per kept product 12 cycles against the plain run's 8
 * (the compare, the branch, the jump over the bias), per skipped one 7. */
#if defined(__AVR__)

.macro ACCT lo, mid, hi, disp
    ldd     r21, Y+\disp
    cp      r25, r21
    brsh    7f
    muls    r21, r20
    eor     r1, r10
    sub     \lo, r0
    sbc     \mid, r1
    sbci    \hi, 0
    rjmp    8f
7:  sub     \mid, r10
    sbci    \hi, 0
8:
.endm

.macro STORE lo, mid, hi
    st      X+, \lo
    st      X+, \mid
    st      X+, \hi
    st      X+, r24
.endm

.macro RECORDS outputs
    movw    r30, r22
1:  lpm     r24, Z+
    lpm     r25, Z+
    lpm     r20, Z+
    movw    r28, r12
    add     r28, r24
    adc     r29, r25
    lpm     r25, Z+
    ACCT    r2, r3, r16, 0
  .if \outputs == 4
    ACCT    r4, r5, r17, 1
    ACCT    r6, r7, r18, 2
    ACCT    r8, r9, r19, 3
  .endif
    cp      r30, r14
    cpc     r31, r15
    brne    1b
    clr     r1
    ldi     r24, 0xFF
.endm

    .section .text.proto_sparse_tau_run_avr,"ax",@progbits
    .global proto_sparse_tau_run_avr
    .type   proto_sparse_tau_run_avr, @function
proto_sparse_tau_run_avr:
    push    r2
    push    r3
    push    r4
    push    r5
    push    r6
    push    r7
    push    r8
    push    r9
    push    r10
    push    r11
    push    r12
    push    r13
    push    r14
    push    r15
    push    r16
    push    r17
    push    r28
    push    r29
    movw    r26, r24
    mov     r11, r16
    movw    r12, r22
    movw    r22, r20
    movw    r14, r18
    lsl     r14
    rol     r15
    lsl     r14
    rol     r15
    add     r14, r20
    adc     r15, r21
    ldi     r24, 0x80
    mov     r10, r24
2:  mov     r24, r11
    cpi     r24, 4
    brsh    5f
    rjmp    3f
5:  clr     r2
    clr     r3
    clr     r16
    clr     r4
    clr     r5
    clr     r17
    clr     r6
    clr     r7
    clr     r18
    clr     r8
    clr     r9
    clr     r19
    RECORDS 4
    STORE   r2, r3, r16
    STORE   r4, r5, r17
    STORE   r6, r7, r18
    STORE   r8, r9, r19
    ldi     r24, 4
    add     r12, r24
    adc     r13, r1
    mov     r24, r11
    subi    r24, 4
    mov     r11, r24
    rjmp    2b
3:  tst     r11
    breq    4f
    clr     r2
    clr     r3
    clr     r16
    RECORDS 1
    STORE   r2, r3, r16
    ldi     r24, 1
    add     r12, r24
    adc     r13, r1
    dec     r11
    rjmp    3b
4:  pop     r29
    pop     r28
    pop     r17
    pop     r16
    pop     r15
    pop     r14
    pop     r13
    pop     r12
    pop     r11
    pop     r10
    pop     r9
    pop     r8
    pop     r7
    pop     r6
    pop     r5
    pop     r4
    pop     r3
    pop     r2
    ret
    .size   proto_sparse_tau_run_avr, .-proto_sparse_tau_run_avr

#endif
