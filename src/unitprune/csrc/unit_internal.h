/*
 * unit_internal.h -- private helpers shared by the unit_*.c files (not part of the public API).
 *
 * Everything here is `static inline` and prefixed `unit__`. Float values are handled through
 * their IEEE-754 bit patterns (memcpy, no type-punning through pointers), so no libm is needed.
 */
#ifndef UNIT_INTERNAL_H
#define UNIT_INTERNAL_H

#include <stdint.h>
#include <string.h>

#include "unit_kernels.h"

#define UNIT__ABS_MASK 0x7FFFFFFFUL
#define UNIT__INF_BITS ((uint32_t)UNIT_F32_INF_BITS)

/* Cost model of the convolution paths, in "lanes of a long vectorised multiply-add loop", fitted
 * on x86-64 with SSE2 to the Table-1 MNIST/KWS convolutions (each path forced, see docs/kernels.md;
 * the choice is right for all 16 measured cases, and for a range of values around these):
 * - activation-stationary: each lane run costs UNIT__RUN_OVERHEAD lanes on top of its own lanes;
 * - dense output rows cost UNIT__ROW_OVERHEAD lanes on top of their own lanes;
 * - weight-stationary: every weight that can keep anything costs, per output row, its masked
 *   lanes at UNIT__MASKED_NUM / UNIT__MASKED_DEN plain lanes each plus UNIT__BLOCK_OVERHEAD.
 * On MCUs (UNIT_SKIP_BRANCH) there is no SIMD: every kept connection costs about the same
 * whatever the loop, and skipping a zero always beats multiplying it. */
#if defined(UNIT_SKIP_BRANCH) && UNIT_SKIP_BRANCH
#define UNIT__RUN_OVERHEAD 0
#define UNIT__ROW_OVERHEAD 0
#define UNIT__MASKED_NUM 1
#define UNIT__MASKED_DEN 1
#define UNIT__BLOCK_OVERHEAD 0
#else /* overridable with -D for tuning (benchmarks) */
#ifndef UNIT__RUN_OVERHEAD
#define UNIT__RUN_OVERHEAD 75
#endif
#ifndef UNIT__ROW_OVERHEAD
#define UNIT__ROW_OVERHEAD 30
#endif
#ifndef UNIT__MASKED_NUM
#define UNIT__MASKED_NUM 3
#endif
#ifndef UNIT__MASKED_DEN
#define UNIT__MASKED_DEN 2
#endif
#ifndef UNIT__BLOCK_OVERHEAD
#define UNIT__BLOCK_OVERHEAD 25
#endif
#endif

/* UNIT__BYTE_FIELDS: read and write float exponent fields with byte-sized shifts (8-bit MCUs,
 * where avr-gcc compiles a 32-bit shift by 23 into a 23-step loop of ~160 cycles) instead of
 * one 32-bit shift (hosts, where that is one instruction and the byte form measured 2x slower).
 * On by default for AVR and for the MCU build (UNIT_SKIP_BRANCH); both forms give identical bits. */
#ifndef UNIT__BYTE_FIELDS
#if defined(__AVR__) || (defined(UNIT_SKIP_BRANCH) && UNIT_SKIP_BRANCH)
#define UNIT__BYTE_FIELDS 1
#else
#define UNIT__BYTE_FIELDS 0
#endif
#endif

/* UNIT__RARE marks the rarely taken cases of the approximations. On MCUs (UNIT__BYTE_FIELDS) they
 * are kept out of line: inlined into a loop they cost the fast path register spills. On hosts
 * they stay inline so that loops over the approximations can still become vector selects. */
#if UNIT__BYTE_FIELDS && defined(__GNUC__)
#define UNIT__RARE static __attribute__((noinline, unused)) /* unused: no warning where not called */
#else
#define UNIT__RARE static inline
#endif

static inline uint32_t unit__f32_bits(float value) {
    uint32_t bits;
    memcpy(&bits, &value, sizeof bits);
    return bits;
}

static inline float unit__bits_f32(uint32_t bits) {
    float value;
    memcpy(&value, &bits, sizeof value);
    return value;
}

/* e(v) of a positive finite float given by its bits: 2**(e-1) <= v < 2**e (frexp's exponent).
 * Written without loops or branches so that loops over it vectorise: a subnormal
 * v = m * 2**-149 has e(v) = e(m) - 149, and m < 2**23 converts to float exactly. */
static inline int32_t unit__exponent(uint32_t bits) {
    int32_t field = (int32_t)((bits >> 23) & 0xFFUL);
    float mantissa = (float)(int32_t)(bits & 0x7FFFFFUL);
    int32_t subnormal = (int32_t)((unit__f32_bits(mantissa) >> 23) & 0xFFUL) - 126 - 149;
    return field != 0 ? field - 126 : subnormal;
}

/* Bits of the float32 2**p: +inf above 2**127, 0 below 2**-149, subnormal in between
 * (branch-free: both candidate encodings are computed with in-range shifts, then selected). */
static inline uint32_t unit__pow2_bits(int32_t p) {
    uint32_t normal = (uint32_t)((p + 127) & 0xFF) << 23;
    int32_t shift = p + 149;
    uint32_t subnormal = (uint32_t)1 << (shift < 0 ? 0 : (shift > 22 ? 22 : shift));
    uint32_t result = p >= -126 ? normal : subnormal;
    result = p > 127 ? UNIT__INF_BITS : result;
    return p < -149 ? 0 : result;
}

/* Bits of v * 2**k for a finite v >= 0 given by its bits, rounded once to nearest-even
 * (overflow gives +inf, underflow gives a subnormal or 0): the exact float32 ldexp. */
static inline uint32_t unit__scale_pow2_bits(uint32_t bits, int32_t k) {
    int32_t field = (int32_t)((bits >> 23) & 0xFFUL);
    uint32_t mantissa = bits & 0x7FFFFFUL;
    int32_t exponent; /* value = mantissa * 2**exponent, mantissa in [2**23, 2**24) */
    int32_t new_field;
    int32_t shift;
    uint32_t quotient, remainder, half;
    if (bits == 0) {
        return 0;
    }
    if (k > 400) {
        k = 400; /* saturates anyway: the value is at least 2**-149 */
    } else if (k < -400) {
        k = -400; /* rounds to 0 anyway: the value is below 2**128 */
    }
    if (field == 0) {
        exponent = -149;
        while (mantissa < 0x800000UL) {
            mantissa <<= 1;
            exponent--;
        }
    } else {
        mantissa |= 0x800000UL;
        exponent = field - 150;
    }
    new_field = exponent + k + 150;
    if (new_field >= 255) {
        return UNIT__INF_BITS;
    }
    if (new_field >= 1) {
        return ((uint32_t)new_field << 23) | (mantissa & 0x7FFFFFUL);
    }
    shift = 1 - new_field; /* subnormal result: mantissa * 2**-shift units of 2**-149 */
    if (shift > 25) {
        return 0;
    }
    quotient = mantissa >> shift;
    remainder = mantissa & (((uint32_t)1 << shift) - 1);
    half = (uint32_t)1 << (shift - 1);
    if (remainder > half || (remainder == half && (quotient & 1))) {
        quotient++;
    }
    return quotient;
}

/* EXACT and BITMASK quotients from the bits of T >= 0 and c >= 0 (finite), written as selects
 * without branches so that loops over them vectorise. c == 0 gives +inf, T == 0 gives 0. */
static inline uint32_t unit__exact_bits(uint32_t threshold_bits, uint32_t control_bits) {
    uint32_t result = unit__f32_bits(unit__bits_f32(threshold_bits) / unit__bits_f32(control_bits));
    result = threshold_bits == 0 ? 0 : result;
    return control_bits == 0 ? UNIT__INF_BITS : result;
}

/* The exponent field (bits 23..30) of a float's bits (sign ignored), and the bits with that
 * field replaced (0 <= field <= 255; the sign bit of the result is 0). See UNIT__BYTE_FIELDS. */
static inline int16_t unit__exponent_field(uint32_t bits) {
#if UNIT__BYTE_FIELDS
    uint8_t high = (uint8_t)((uint8_t)(bits >> 24) & 0x7FU); /* shifts by whole bytes: moves */
    uint8_t next = (uint8_t)(bits >> 16);
    return (int16_t)(((uint16_t)high << 1) | (uint16_t)(next >> 7));
#else
    return (int16_t)((bits >> 23) & 0xFFUL);
#endif
}

static inline uint32_t unit__with_exponent_field(uint32_t bits, int16_t field) {
#if UNIT__BYTE_FIELDS
    uint8_t byte = (uint8_t)field; /* 8-bit shifts below: single instructions on AVR */
    uint8_t high = (uint8_t)(byte >> 1);
    uint8_t next = (uint8_t)((uint8_t)(byte << 7) | ((uint8_t)(bits >> 16) & 0x7FU));
    return ((uint32_t)high << 24) | ((uint32_t)next << 16) | (bits & 0xFFFFUL);
#else
    return ((uint32_t)(uint16_t)field << 23) | (bits & 0x7FFFFFUL);
#endif
}

/* The rare cases of the approximations (a zero or subnormal operand, a result that is not a
 * normal float), kept out of line: inlined into a loop, they cost the fast path register spills
 * on 8-bit MCUs. */
UNIT__RARE uint32_t unit__bitmask_rare_bits(uint32_t threshold_bits, uint32_t control_bits) {
    uint32_t result = unit__pow2_bits(unit__exponent(threshold_bits) - unit__exponent(control_bits));
    result = threshold_bits == 0 ? 0 : result;
    return control_bits == 0 ? UNIT__INF_BITS : result;
}

UNIT__RARE uint32_t unit__bitshift_rare_bits(uint32_t threshold_bits, uint32_t control_bits,
                                                         int32_t shift_start) {
    int32_t n;
    if (control_bits == 0) {
        return UNIT__INF_BITS;
    }
    n = unit__exponent(control_bits);
    n = n < shift_start ? shift_start : n;
    return unit__scale_pow2_bits(threshold_bits, -n);
}

static inline uint32_t unit__bitmask_bits(uint32_t threshold_bits, uint32_t control_bits) {
    /* Fast path, both operands normal and the result normal: 2**(E(T) - E(c)) is just the
     * difference of the exponent fields, re-biased (mantissa 0). Fields fit in 16 bits. */
    int16_t field_t = unit__exponent_field(threshold_bits), field_c = unit__exponent_field(control_bits);
    int16_t biased = (int16_t)(field_t - field_c + 127);
    if (field_t != 0 && field_c != 0 && biased >= 1 && biased <= 254) {
        return unit__with_exponent_field(0, biased);
    }
    return unit__bitmask_rare_bits(threshold_bits, control_bits);
}

/* BITSHIFT (and BINTREE) quotient: T * 2**-max(e(c), shift_start), rounded once. */
static inline uint32_t unit__bitshift_bits(uint32_t threshold_bits, uint32_t control_bits, int32_t shift_start) {
    /* Fast path, both operands normal, e(c) >= shift_start and the result normal: the result
     * keeps T's mantissa and only the exponent field changes (e(c) = field - 126 for a normal c). */
    int16_t field_t = unit__exponent_field(threshold_bits), field_c = unit__exponent_field(control_bits);
    int16_t n = (int16_t)(field_c - 126);
    int16_t field = (int16_t)(field_t - n);
    if (field_t != 0 && field_c != 0 && n >= shift_start && field >= 1 && field <= 254) {
        return unit__with_exponent_field(threshold_bits, field);
    }
    return unit__bitshift_rare_bits(threshold_bits, control_bits, shift_start);
}

/* Bits of approx(T, c) (docs/semantics.md) for T >= 0 finite and control bits of c >= 0 finite
 * (sign bits are ignored). An unknown method gives +inf. */
static inline uint32_t unit__approx_bits(int32_t method, float threshold, uint32_t control_bits,
                                         int32_t shift_start) {
    uint32_t threshold_bits = unit__f32_bits(threshold) & UNIT__ABS_MASK;
    control_bits &= UNIT__ABS_MASK;
    switch (method) {
    case UNIT_APPROX_EXACT:
        return unit__exact_bits(threshold_bits, control_bits);
    case UNIT_APPROX_BITSHIFT:
    case UNIT_APPROX_BINTREE:
        return unit__bitshift_bits(threshold_bits, control_bits, shift_start);
    case UNIT_APPROX_BITMASK:
        return unit__bitmask_bits(threshold_bits, control_bits);
    default:
        return UNIT__INF_BITS;
    }
}

static inline int32_t unit__method_valid(int32_t method) {
    return method >= UNIT_APPROX_EXACT && method <= UNIT_APPROX_BITMASK;
}

/* floor(a / b) and ceil(a / b) for b > 0 and any sign of a. */
static inline int32_t unit__floor_div(int32_t a, int32_t b) {
    int32_t q = a / b;
    if (a % b != 0 && a < 0) {
        q--;
    }
    return q;
}

static inline int32_t unit__ceil_div(int32_t a, int32_t b) {
    return -unit__floor_div(-a, b);
}

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

/* ---------------------------------------------------------------------------------------- */
/* Convolution geometry                                                                       */
/* ---------------------------------------------------------------------------------------- */

/* Checks every field of params against its documented range and computes the output size. */
static inline int32_t unit__conv2d_geometry(const unit_conv2d_params *p, int32_t *out_height,
                                            int32_t *out_width) {
    int32_t span_y, span_x;
    if (p == 0 || p->batch < 0 || p->in_channels < 1 || p->in_height < 1 || p->in_width < 1 ||
        p->out_channels < 1 || p->kernel_height < 1 || p->kernel_width < 1 || p->stride_y < 1 ||
        p->stride_x < 1 || p->dilation_y < 1 || p->dilation_x < 1 || p->pad_top < 0 || p->pad_bottom < 0 ||
        p->pad_left < 0 || p->pad_right < 0 || p->groups < 1 || p->in_channels % p->groups != 0 ||
        p->out_channels % p->groups != 0) {
        return UNIT_ERR_ARGUMENT;
    }
    span_y = p->in_height + p->pad_top + p->pad_bottom - p->dilation_y * (p->kernel_height - 1) - 1;
    span_x = p->in_width + p->pad_left + p->pad_right - p->dilation_x * (p->kernel_width - 1) - 1;
    if (span_y < 0 || span_x < 0) {
        return UNIT_ERR_ARGUMENT;
    }
    *out_height = span_y / p->stride_y + 1;
    *out_width = span_x / p->stride_x + 1;
    return UNIT_OK;
}

/* Valid output range [lo, hi] along one axis for kernel index k: the outputs whose input
 * position o*stride + k*dilation - pad lies inside [0, size). lo > hi when there is none. */
static inline void unit__tap_range(int32_t k, int32_t size, int32_t out_size, int32_t stride, int32_t dilation,
                                   int32_t pad, int32_t *lo, int32_t *hi) {
    int32_t first, last;
    if (stride == 1) { /* the common case, without integer divisions */
        first = pad - k * dilation;
        last = size - 1 + pad - k * dilation;
    } else {
        first = unit__ceil_div(pad - k * dilation, stride);
        last = unit__floor_div(size - 1 + pad - k * dilation, stride);
    }
    *lo = first > 0 ? first : 0;
    *hi = last < out_size - 1 ? last : out_size - 1;
}

/* One (sample, input channel) of a dense convolution: for each of the group's `group_out`
 * outputs and each kernel tap, y_plane[o][oy][ox] += w * x at the tap's valid positions.
 * x_channel is [H][W], weight points at weight[o0][c_local][0][0] (OIHW, stride between outputs
 * `weight_step`), y_planes at y[n][o0][0][0]. Zero weights are multiplied like the others (testing
 * them here costs more than it saves on a SIMD host). Defined once (unit_conv2d_dense_channel.c)
 * so that the baseline and UnIT's dense sub-path run the very same machine code. */
void unit__conv2d_dense_channel(const unit_conv2d_params *p, int32_t out_height, int32_t out_width,
                                const float *x_channel, const float *weight, int32_t weight_step, int32_t group_out,
                                float *y_planes);

/* Byte offsets of the parts of unit_conv2d_f32's scratch (each part 16-byte aligned relative
 * to the start of scratch); `total` is the size unit_conv2d_f32_scratch_size reports. */
typedef struct {
    int64_t accumulator;   /* float [OH*OW][Og]: HWC accumulator of one (sample, group) */
    int64_t values;        /* float [H*W]: nonzero activations of one channel, row-major order */
    int64_t columns;       /* int32 [H*W]: their column ix */
    int64_t row_start;     /* int32 [H+1]: first entry of each input row in values/columns */
    int64_t lattice;       /* int32 [H*W]: strided prefix counts of nonzero activations */
    int64_t row_taps;      /* int32 [H]: number of valid kernel rows of each input row */
    int64_t row_ky;        /* int32 [H][KH]: valid kernel rows ky, ascending */
    int64_t row_oy;        /* int32 [H][KH]: their output row oy */
    int64_t col_taps;      /* int32 [W]: number of valid kernel columns of each input column */
    int64_t col_kx;        /* int32 [W][KW]: valid kernel columns kx, ascending */
    int64_t col_ox;        /* int32 [W][KW]: their output column ox */
    int64_t tap_under;     /* int32 [KH][KW]: nonzero activations under each tap (one channel) */
    int64_t total;
} unit__conv2d_scratch;

static inline int64_t unit__align16(int64_t bytes) {
    return (bytes + 15) / 16 * 16;
}

static inline void unit__conv2d_scratch_layout(const unit_conv2d_params *p, int32_t out_height, int32_t out_width,
                                               unit__conv2d_scratch *s) {
    int64_t h = p->in_height, w = p->in_width, kh = p->kernel_height, kw = p->kernel_width;
    int64_t pixels = h * w;
    int64_t offset = 0;
    s->accumulator = offset;
    /* + 4 lanes: a padded lane run may add zeros just past the last output position */
    offset += unit__align16(4 * ((int64_t)out_height * out_width * (p->out_channels / p->groups) + 4));
    s->values = offset;
    offset += unit__align16(4 * pixels);
    s->columns = offset;
    offset += unit__align16(4 * pixels);
    s->row_start = offset;
    offset += unit__align16(4 * (h + 1));
    s->lattice = offset;
    offset += unit__align16(4 * pixels);
    s->row_taps = offset;
    offset += unit__align16(4 * h);
    s->row_ky = offset;
    offset += unit__align16(4 * h * kh);
    s->row_oy = offset;
    offset += unit__align16(4 * h * kh);
    s->col_taps = offset;
    offset += unit__align16(4 * w);
    s->col_kx = offset;
    offset += unit__align16(4 * w * kw);
    s->col_ox = offset;
    offset += unit__align16(4 * w * kw);
    s->tap_under = offset;
    offset += unit__align16(4 * kh * kw);
    s->total = offset;
}

#endif /* UNIT_INTERNAL_H */
