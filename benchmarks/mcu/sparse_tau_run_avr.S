/* SPDX-License-Identifier: MIT */
/* sparse_tau_run_avr.S -- a measurement prototype (benchmarks/sparse_tau_mcu.py), not a library
 * kernel: the library's AVR run of the static-sparse int8 convolution (csrc/unit_conv2d_sparse_s8_avr.S,
 * included whole: its runs unit__sparse_run_s8_avr and unit__sparse_run_s2_s8_avr, and the macro
 * SPARSE that builds them) with UnIT's test per record, for inputs x >= 0 and stride 1:
 *
 *   void proto_sparse_tau_run_avr(int32_t *out, const int8_t *x, const int16_t *records,
 *                                 uint16_t nnz, uint8_t count)
 *
 * records {int16 offset, int8 weight, uint8 tau} in flash below 64 KB (tau in the byte the plain
 * run skips: RECORDS loads it into r25 for ACCT); a product is added only where x > tau (x <= tau:
 * UnIT skips it, x == 0 included). The output keeps the plain run's convention, out[i] = -(sum over
 * ALL records of (p + 32768)) modulo 2**32 with p = x*w where kept, else 0: a skipped record still
 * subtracts its 32768 bias (SUB/SBCI on the upper bytes), so unit__dot_value_s8 reads it back
 * unchanged. Per kept product 12 cycles against the plain run's 8 (the compare, the branch, the
 * jump over the bias), per skipped one 7. */
#include "unit_conv2d_sparse_s8_avr.S"

#if defined(__AVR__)

/* ACC of unit_conv2d_sparse_s8_avr.S behind the test x > tau (r25 = tau, r21 = x) */
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

    SPARSE  proto_sparse_tau_run_avr, 1, ACCT

#endif
