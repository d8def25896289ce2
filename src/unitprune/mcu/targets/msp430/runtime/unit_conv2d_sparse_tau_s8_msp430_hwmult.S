/* SPDX-License-Identifier: MIT */
/* unit_conv2d_sparse_tau_s8_msp430_hwmult.S -- the MSP430 run of unit_conv2d_sparse_tau_s8 with the
 * 16-bit hardware multiplier (the msp430-hwmult target): the arguments and result of
 * unit_conv2d_sparse_tau_s8_msp430.S (x >= 0; records {offset, tau + 1, weight}); a kept product
 * goes through MACS/OP2 into RESHI:RESLO. Per stored product, measured
 * (benchmarks/sparse_tau_mcu.py): 23 cycles kept, 15 skipped, against the plain run's 19.
 * Registers: r4 address, r5 activation, r11 weight, the rest as unit_sparse_run_s8_msp430.h's. */
#if UNIT_MSP430_HWMULT

#define MACS 0x0136
#define OP2 0x0138
#define RESLO 0x013A
#define RESHI 0x013C

#include "unit_sparse_run_s8_msp430.h"

    SPARSE_TAU_RUN r5

#endif /* UNIT_MSP430_HWMULT */
