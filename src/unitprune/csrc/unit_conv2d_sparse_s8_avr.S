/* SPDX-License-Identifier: MIT */
/* unit_conv2d_sparse_s8_avr.S -- the AVR runs of the static-sparse int8 kernels
 * (unit_internal_sparse_s8.h, called by unit_conv2d_sparse_s8.c and unit_linear_sparse_s8.c):
 *
 *   void unit__sparse_run_s8_avr(int32_t *out, const int8_t *x, const int16_t *records, uint16_t nnz,
 *                                uint8_t count)                 (outputs 1 input apart)
 *   void unit__sparse_run_s2_s8_avr(...)                        (outputs 2 inputs apart)
 *   (r25:r24 = out, r23:r22 = x, r21:r20 = records in flash below 64 KB, r19:r18 = nnz >= 1,
 *    r16 = count >= 1)
 *
 * out[i] = -(sum over the records {offset, weight} of (x[i*stride + offset]*weight + 32768))
 * modulo 2**32, as the dense run stores it (unit_internal_dot_s8.h). Outputs in blocks of four,
 * then one by one: per block and record LPM the offset and the weight (Z+, the weight's high byte
 * skipped), Y = x + offset; per output LDD the activation at Y + i*stride, MULS, flip the product's
 * sign bit (EOR: x*w + 32768 as an unsigned 16-bit value), SUB/SBC/SBCI from a 24-bit accumulator
 * (exact for nnz <= 341: each biased product is at most 49152; the stored top byte is then 0xFF).
 * Per record and block: 18 cycles of record and loop overhead plus 8 per output (12.5 cycles per
 * nonzero MAC); per block about 60 cycles of set-up and stores.
 * Registers: r0:r1 product, r2/r3/r16, r4/r5/r17, r6/r7/r18, r8/r9/r19 the four accumulators,
 * r10 0x80, r11 outputs left, r12:r13 x, r14:r15 the records' end, r20 weight, r21 activation,
 * r22:r23 the records' start, r24:r25 offset, X out, Y field, Z records. Built only for AVR (an
 * empty object elsewhere). */
#if defined(__AVR__)

.macro ACC lo, mid, hi, disp
    ldd     r21, Y+\disp
    muls    r21, r20
    eor     r1, r10
    sub     \lo, r0
    sbc     \mid, r1
    sbci    \hi, 0
.endm

.macro STORE lo, mid, hi
    st      X+, \lo
    st      X+, \mid
    st      X+, \hi
    st      X+, r24
.endm

/* the record loop of one pass: `outputs` 1 or 4 accumulators, each output's product added by the
 * macro `acc` (ACC; another one, such as the UnIT test's prototype of benchmarks/mcu/
 * sparse_tau_run_avr.S, is given the record's fourth byte, which ACC skips, in r25) */
.macro RECORDS outputs, stride, acc=ACC
    movw    r30, r22
1:  lpm     r24, Z+
    lpm     r25, Z+
    lpm     r20, Z+
  .ifc \acc, ACC
    adiw    r30, 1
  .endif
    movw    r28, r12
    add     r28, r24
    adc     r29, r25
  .ifnc \acc, ACC
    lpm     r25, Z+
  .endif
    \acc    r2, r3, r16, 0
  .if \outputs == 4
    \acc    r4, r5, r17, \stride
    \acc    r6, r7, r18, 2*\stride
    \acc    r8, r9, r19, 3*\stride
  .endif
    cp      r30, r14
    cpc     r31, r15
    brne    1b
    clr     r1
    ldi     r24, 0xFF
.endm

/* the run `name`: outputs `stride` inputs apart, each product added by `acc` (RECORDS) */
.macro SPARSE name, stride, acc=ACC
    .section .text.\name,"ax",@progbits
    .global \name
    .type   \name, @function
\name:
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
5:
    clr     r2
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
    RECORDS 4, \stride, \acc
    STORE   r2, r3, r16
    STORE   r4, r5, r17
    STORE   r6, r7, r18
    STORE   r8, r9, r19
    ldi     r24, 4*\stride
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
    RECORDS 1, \stride, \acc
    STORE   r2, r3, r16
    ldi     r24, \stride
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
    .size   \name, .-\name
.endm

    SPARSE  unit__sparse_run_s8_avr, 1
    SPARSE  unit__sparse_run_s2_s8_avr, 2

#endif /* __AVR__ */
#if defined(__ELF__) && !defined(__AVR__) && !defined(__MSP430__) && !defined(__arm__)
    .section .note.GNU-stack,"",@progbits /* an empty object on ELF hosts: no executable stack */
#endif
