/* SPDX-License-Identifier: MIT */
/* unit_conv2d_sparse_s8_msp430.S -- the MSP430 run of the static-sparse int8 kernels without a
 * hardware multiplier (the msp430 target; csrc/unit_internal_sparse_s8.h):
 *
 *   void __unit_sparse_run_s8(int32_t *out, const int8_t *x, const int16_t *records,
 *                             const unit__sparse_msp430_run_s8 *run)
 *   (EABI: r12 = out, r13 = x, r14 = records, r15 = run: nnz, count, stride at offsets 0, 2, 4)
 *
 * out[i] = sum over the records {offset, weight} of x[i*stride + offset] * weight, multiplied by
 * quarter squares as the dense run does (x*w = q(x + w) - q(x - w), the 511-entry word table
 * __unit_qsq_mid of unit_conv2d_dense_s8_msp430.S): per record the offset added to the output's
 * field origin, a byte load with sign extension, the sum and difference as word offsets, two
 * indexed table reads added/subtracted into the 32-bit accumulator r7:r6 (24 cycles with the
 * loop). Registers: r4/r5/r11 operands, r6:r7 accumulator, the rest as unit_sparse_run_s8_msp430.h's. */
#if !UNIT_MSP430_HWMULT

#include "unit_sparse_run_s8_msp430.h"

    .section .text.__unit_sparse_run_s8,"ax",@progbits
    .global __unit_sparse_run_s8
    .type   __unit_sparse_run_s8, @function
__unit_sparse_run_s8:
    SPARSE_RUN_ENTER 2
    SPARSE_RUN_COUNTS
1:  SPARSE_RUN_START
2:  mov     @r14+, r4
    add     r13, r4
    mov.b   @r4, r4
    sxt     r4
    SPARSE_RUN_MAC
    cmp     r14, r9
    jne     2b
    SPARSE_RUN_NEXT 1b
    SPARSE_RUN_LEAVE
    .size   __unit_sparse_run_s8, .-__unit_sparse_run_s8

#endif /* !UNIT_MSP430_HWMULT */
