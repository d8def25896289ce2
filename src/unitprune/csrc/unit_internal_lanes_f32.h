/* SPDX-License-Identifier: MIT */
/*
 * unit_internal_lanes_f32.h -- the float lane loops (private): the inner multiply-add loops of the float kernels,
 * branch-free selects on hosts, branches with UNIT_SKIP_BRANCH.
 */
#ifndef UNIT_INTERNAL_LANES_F32_H
#define UNIT_INTERNAL_LANES_F32_H

#include "unit_internal_f32_bits.h"

/* ---------------------------------------------------------------------------------------- */
/* Lane loops: the inner loops of every kernel                                              */
/* ---------------------------------------------------------------------------------------- */

/* acc[l] += w[l] * x for l in [0, n): every lane kept. */
static inline void unit__axpy(float *restrict acc, const float *restrict w, float x, int32_t n) {
    int32_t l;
    for (l = 0; l < n; l++) {
        acc[l] += w[l] * x;
    }
}

/* acc[l] += w[l] * x for l in [0, n), n a multiple of 4: fixed-size blocks vectorise without a
 * remainder loop, which matters for the short lane runs of the convolution. */
static inline void unit__axpy_blocks4(float *restrict acc, const float *restrict w, float x, int32_t n) {
    int32_t l;
    for (l = 0; l < n; l += 4) {
        acc[l] += w[l] * x;
        acc[l + 1] += w[l + 1] * x;
        acc[l + 2] += w[l + 2] * x;
        acc[l + 3] += w[l + 3] * x;
    }
}

/* acc[l] += w[l*stride] * x for l in [0, n) (strided operand, the dense convolution's row). */
static inline void unit__axpy_strided(float *restrict acc, const float *restrict w, int32_t stride, float x,
                                      int32_t n) {
    int32_t l;
    if (stride == 1) {
        unit__axpy(acc, w, x, n);
        return;
    }
    for (l = 0; l < n; l++) {
        acc[l] += w[l * stride] * x;
    }
}

/* Convolution lanes: keep lane l iff |x| > tau[l] (abs_x_bits and tau are float bit patterns
 * of non-negative floats); returns the number of kept lanes. */
static inline int32_t unit__axpy_keep_above_tau(float *restrict acc, const float *restrict w,
                                                const int32_t *restrict tau, float x, int32_t abs_x_bits,
                                                int32_t n) {
    int32_t kept = 0;
    int32_t l;
#if defined(UNIT_SKIP_BRANCH) && UNIT_SKIP_BRANCH
    for (l = 0; l < n; l++) {
        if (abs_x_bits > tau[l]) {
            acc[l] += w[l] * x;
            kept++;
        }
    }
#else
    for (l = 0; l < n; l++) {
        float product = w[l] * x;
        int32_t keep = abs_x_bits > tau[l];
        uint32_t bits = unit__f32_bits(product) & (uint32_t)(-keep);
        acc[l] += unit__bits_f32(bits);
        kept += keep;
    }
#endif
    return kept;
}

/* Weight-stationary lanes: acc[l] += w * x[l*stride], kept iff |x[l*stride]| > tau (tau_bits:
 * bits of the non-negative quotient of w); returns the number of kept lanes. */
static inline int32_t unit__axpy_strided_keep_above(float *restrict acc, const float *restrict x, int32_t stride,
                                                    float w, int32_t tau_bits, int32_t n) {
    int32_t kept = 0;
    int32_t l;
#if defined(UNIT_SKIP_BRANCH) && UNIT_SKIP_BRANCH
    for (l = 0; l < n; l++) {
        if ((int32_t)(unit__f32_bits(x[l * stride]) & UNIT__ABS_MASK) > tau_bits) {
            acc[l] += w * x[l * stride];
            kept++;
        }
    }
#else
    for (l = 0; l < n; l++) {
        float xv = x[l * stride];
        float product = w * xv;
        int32_t keep = (int32_t)(unit__f32_bits(xv) & UNIT__ABS_MASK) > tau_bits;
        uint32_t bits = unit__f32_bits(product) & (uint32_t)(-keep);
        acc[l] += unit__bits_f32(bits);
        kept += keep;
    }
#endif
    return kept;
}

/* Weight-stationary lanes of several weights that read the same activations (one kernel tap,
 * several output channels): acc_k[l] += w[k] * x[l*stride], kept iff |x[l*stride]| > tau[k]
 * (tau: bits of non-negative quotients), for k in [0, 4) resp. [0, 2). Returns the kept lanes of
 * all weights. One activation load and abs serve every weight: a masked lane then costs
 * ~1.0x (short output rows) to ~1.3x (long rows) a lane of the dense loop, instead of ~1.5-2x
 * for one weight at a time (the loop is bound by instructions, not by the accumulator
 * store, and the per-lane count is most of what remains). The activation is masked before the
 * multiply (w * (x & mask) rather than (w * x) & mask: SSE2's two-operand instructions then need
 * no register copy of x per weight, measured ~5 % faster) and the kept count sums the masks
 * (-1 per kept lane). Callers pass stride 1 as a literal for the common case so that the
 * inlined loop is contiguous and vectorises. */
static inline int32_t unit__axpy4_keep_above(float *restrict acc0, float *restrict acc1, float *restrict acc2,
                                             float *restrict acc3, const float *restrict x, int32_t stride,
                                             const float *w, const int32_t *tau, int32_t n) {
    const float w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3];
    const int32_t t0 = tau[0], t1 = tau[1], t2 = tau[2], t3 = tau[3];
    int32_t kept = 0;
    int32_t l;
#if defined(UNIT_SKIP_BRANCH) && UNIT_SKIP_BRANCH
    for (l = 0; l < n; l++) {
        const float xv = x[l * stride];
        const int32_t a = (int32_t)(unit__f32_bits(xv) & UNIT__ABS_MASK);
        if (a > t0) {
            acc0[l] += w0 * xv;
            kept++;
        }
        if (a > t1) {
            acc1[l] += w1 * xv;
            kept++;
        }
        if (a > t2) {
            acc2[l] += w2 * xv;
            kept++;
        }
        if (a > t3) {
            acc3[l] += w3 * xv;
            kept++;
        }
    }
#else
    for (l = 0; l < n; l++) {
        const float xv = x[l * stride];
        const int32_t a = (int32_t)(unit__f32_bits(xv) & UNIT__ABS_MASK);
        const uint32_t xb = unit__f32_bits(xv);
        const int32_t m0 = -(a > t0), m1 = -(a > t1), m2 = -(a > t2), m3 = -(a > t3);
        acc0[l] += w0 * unit__bits_f32(xb & (uint32_t)m0);
        acc1[l] += w1 * unit__bits_f32(xb & (uint32_t)m1);
        acc2[l] += w2 * unit__bits_f32(xb & (uint32_t)m2);
        acc3[l] += w3 * unit__bits_f32(xb & (uint32_t)m3);
        kept -= (m0 + m1) + (m2 + m3);
    }
#endif
    return kept;
}

static inline int32_t unit__axpy2_keep_above(float *restrict acc0, float *restrict acc1, const float *restrict x,
                                             int32_t stride, const float *w, const int32_t *tau, int32_t n) {
    const float w0 = w[0], w1 = w[1];
    const int32_t t0 = tau[0], t1 = tau[1];
    int32_t kept = 0;
    int32_t l;
#if defined(UNIT_SKIP_BRANCH) && UNIT_SKIP_BRANCH
    for (l = 0; l < n; l++) {
        const float xv = x[l * stride];
        const int32_t a = (int32_t)(unit__f32_bits(xv) & UNIT__ABS_MASK);
        if (a > t0) {
            acc0[l] += w0 * xv;
            kept++;
        }
        if (a > t1) {
            acc1[l] += w1 * xv;
            kept++;
        }
    }
#else
    for (l = 0; l < n; l++) {
        const float xv = x[l * stride];
        const int32_t a = (int32_t)(unit__f32_bits(xv) & UNIT__ABS_MASK);
        const uint32_t xb = unit__f32_bits(xv);
        const int32_t m0 = -(a > t0), m1 = -(a > t1);
        acc0[l] += w0 * unit__bits_f32(xb & (uint32_t)m0);
        acc1[l] += w1 * unit__bits_f32(xb & (uint32_t)m1);
        kept -= m0 + m1;
    }
#endif
    return kept;
}

/* Linear lanes: keep lane l iff |w[l]| > t (t_bits: bits of the non-negative quotient); returns
 * the number of kept lanes. */
static inline int32_t unit__axpy_keep_weight_above(float *restrict acc, const float *restrict w, float x,
                                                   int32_t t_bits, int32_t n) {
    int32_t kept = 0;
    int32_t l;
#if defined(UNIT_SKIP_BRANCH) && UNIT_SKIP_BRANCH
    for (l = 0; l < n; l++) {
        if ((int32_t)(unit__f32_bits(w[l]) & UNIT__ABS_MASK) > t_bits) {
            acc[l] += w[l] * x;
            kept++;
        }
    }
#else
    for (l = 0; l < n; l++) {
        float product = w[l] * x;
        int32_t keep = (int32_t)(unit__f32_bits(w[l]) & UNIT__ABS_MASK) > t_bits;
        uint32_t bits = unit__f32_bits(product) & (uint32_t)(-keep);
        acc[l] += unit__bits_f32(bits);
        kept += keep;
    }
#endif
    return kept;
}

#endif /* UNIT_INTERNAL_LANES_F32_H */
