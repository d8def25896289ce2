/* SPDX-License-Identifier: MIT */
/* unit_conv2d_sparse_tau_s8_msp430.S -- the MSP430 run of unit_conv2d_sparse_tau_s8 (UnIT on
 * static-sparse weights) without a hardware multiplier (the msp430 target):
 *
 *   void __unit_sparse_tau_run_s8(int32_t *out, const int8_t *x, const int16_t *records,
 *                                 const unit__sparse_msp430_run_s8 *run)
 *   (EABI: r12 = out, r13 = x, r14 = records, r15 = run: nnz, count, stride at offsets 0, 2, 4)
 *
 * For inputs x >= 0 (the kernel checks): out[i] = the sum over the records {offset, tau + 1,
 * weight} of x * weight where x > tau, with x = x[i*stride + offset]. Per record the activation
 * byte (zero-extended) is compared with tau + 1; a kept product is the quarter-square multiply of
 * unit_conv2d_sparse_s8_msp430.S (the table __unit_qsq_mid). Per stored product, measured
 * (benchmarks/sparse_tau_mcu.py): 28 cycles kept, 15 skipped, against the plain run's 25.
 * Registers: r4/r5/r11 operands, r6:r7 accumulator, the rest as unit_sparse_run_s8_msp430.h's. */
#if !UNIT_MSP430_HWMULT

#include "unit_sparse_run_s8_msp430.h"

    SPARSE_TAU_RUN r4

#endif /* !UNIT_MSP430_HWMULT */
