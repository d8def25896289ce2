/* SPDX-License-Identifier: MIT */
/* unit_conv2d_sparse_s8_msp430_hwmult.S -- the MSP430 run of the static-sparse int8 kernels with the
 * 16-bit hardware multiplier (the msp430-hwmult target; csrc/unit_internal_sparse_s8.h):
 *
 *   void __unit_sparse_run_s8(int32_t *out, const int8_t *x, const int16_t *records,
 *                             const unit__sparse_msp430_run_s8 *run)
 *   (EABI: r12 = out, r13 = x, r14 = records, r15 = run: nnz, count, stride at offsets 0, 2, 4)
 *
 * out[i] = sum over the records {offset, weight} of x[i*stride + offset] * weight, accumulated by
 * the multiplier itself: per record the offset is added to the output's field origin, the
 * sign-extended activation written to MACS and the record's int16 weight to OP2, which adds the
 * product to RESHI:RESLO. Records in pairs (an odd one first): 17.5 cycles per record.
 * Registers: r4 address, r5 activation, r11 weight, the rest as unit_sparse_run_s8_msp430.h's. */
#if UNIT_MSP430_HWMULT

#define MACS 0x0136
#define OP2 0x0138
#define RESLO 0x013A
#define RESHI 0x013C

#include "unit_sparse_run_s8_msp430.h"

.macro RECORD
    mov     @r14+, r4
    add     r13, r4
    mov.b   @r4, r5
    sxt     r5
    SPARSE_RUN_MAC
.endm

    .section .text.__unit_sparse_run_s8,"ax",@progbits
    .global __unit_sparse_run_s8
    .type   __unit_sparse_run_s8, @function
__unit_sparse_run_s8:
    SPARSE_RUN_ENTER 2
    bit     #1, 0(r15)              /* an odd count: one record before the pairs */
    SPARSE_RUN_COUNTS               /* (MOVs: the flags stay) */
    jz      .Leven
.Lodd:
    SPARSE_RUN_START
    RECORD
    cmp     r14, r9
    jeq     2f
1:  RECORD
    RECORD
    cmp     r14, r9
    jne     1b
2:  SPARSE_RUN_NEXT .Lodd
    jmp     .Ldone
.Leven:
    SPARSE_RUN_START
3:  RECORD
    RECORD
    cmp     r14, r9
    jne     3b
    SPARSE_RUN_NEXT .Leven
.Ldone:
    SPARSE_RUN_LEAVE
    .size   __unit_sparse_run_s8, .-__unit_sparse_run_s8

#endif /* UNIT_MSP430_HWMULT */
