/* SPDX-License-Identifier: MIT */
/*
 * unit_internal_s8.h -- private helpers of the int8 kernels: the counters option, requantization,
 * argument checks, the accumulator set-up and output stage, and the geometry of one convolution
 * tap (type-independent parts are in unit_internal_geometry.h / unit_internal_counts.h).
 * No float anywhere; everything per MAC is 8/16-bit except the int32 accumulate.
 */
#ifndef UNIT_INTERNAL_S8_H
#define UNIT_INTERNAL_S8_H

#include <stddef.h>

#include "unit_internal_counts.h"
#include "unit_internal_geometry.h"
#include "unit_kernels_s8.h"

/* UNIT_S8_COUNTS=1 compiles the MAC counters in (host library, tests); the MCU default 0 has no
 * counting code at all. */
#ifndef UNIT_S8_COUNTS
#define UNIT_S8_COUNTS 0
#endif

/* How the innermost loops are compiled on MCUs (measured on AVR, benchmarks/kernels_s8_mcu.py,
 * docs/kernels.md): as separate functions, called once per conv row or linear column, every value
 * of the loop stays in registers but each call saves and restores ~9 registers; inlined into the
 * loop nest, avr-gcc spills some of them. UNIT__ROW_FN (conv rows, dense and zeroskip columns):
 * separate functions with -Os, where they measured faster (avr-gcc 5.4: dense conv 4.52 M instead
 * of 4.91 M cycles), inlined otherwise (-O2: 2.27 M instead of 2.47 M). UNIT__COLUMN_FN (the UnIT
 * linear column, whose caller also computes the quotient): a separate function on MCUs at every
 * level (-O2: 94 k instead of 108 k cycles). Hosts inline everything. Both are overridable with -D. */
#if defined(__GNUC__) && (defined(__AVR__) || defined(__MSP430__))
#define UNIT__SEPARATE_FN static __attribute__((noinline, unused)) /* unused: no warning where not called */
#ifndef UNIT__ROW_FN
#if defined(__OPTIMIZE_SIZE__)
#define UNIT__ROW_FN UNIT__SEPARATE_FN
#else
#define UNIT__ROW_FN static inline
#endif
#endif
#ifndef UNIT__COLUMN_FN
#define UNIT__COLUMN_FN UNIT__SEPARATE_FN
#endif
#else
#ifndef UNIT__ROW_FN
#define UNIT__ROW_FN static inline
#endif
#ifndef UNIT__COLUMN_FN
#define UNIT__COLUMN_FN static inline
#endif
#endif

#define UNIT__INT32_MIN (-2147483647L - 1L)
#define UNIT__INT32_MAX 2147483647L

/* TFLite RoundingDivideByPOT(x, e) for e in [0, 31]: x / 2**e rounded to nearest, ties away from
 * zero. One variable shift in the usual case: (x + 2**(e-1) - (x < 0)) >> e, exact unless the sum
 * overflows (x within 2**(e-1) of INT32_MAX), which takes the two-shift form. (Used by the 32-bit
 * cores' requantization, unit_conv2d_dense_s8_mcu32.c.) */
static inline int32_t unit__divide_by_pot_s8(int32_t x, int32_t e) {
    int32_t half, remainder, limit;
    uint32_t mask;
    if (e == 0) {
        return x;
    }
    half = (int32_t)((uint32_t)1 << (e - 1)) - (x < 0 ? 1 : 0);
    if (x <= (int32_t)UNIT__INT32_MAX - half) {
        return (x + half) >> e;
    }
    mask = ((uint32_t)1 << e) - 1U;
    remainder = (int32_t)((uint32_t)x & mask);
    limit = (int32_t)(mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> e) + (remainder > limit ? 1 : 0);
}

/* v >> k for k in [0, 31]: whole bytes first (register moves on 8/16-bit MCUs), then at most 7
 * single-bit steps, instead of a loop of k steps. */
static inline uint32_t unit__shift_right_u32(uint32_t v, int32_t k) {
    if (k >= 16) {
        v >>= 16;
        k -= 16;
    }
    if (k >= 8) {
        v >>= 8;
        k -= 8;
    }
    return v >> k;
}

/* TFLite MultiplyByQuantizedMultiplier (docs/fixed_point.md): a = acc * 2**max(shift, 0), then
 * RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(a, multiplier), max(-shift, 0)).
 * Computed on magnitudes, without a 64-bit type: with s = (a * multiplier < 0) and
 * P = |a| * |multiplier| (at most 2**62),
 *   |SRDHM| = h = floor((P + 2**30 - s) / 2**31)        (the nudge, truncation toward zero)
 *   |RDBPOT(., e)| = floor((h + 2**(e-1)) / 2**e)        (ties away from zero, e >= 1)
 * and the sign restored at the end; h = 2**31 only for INT32_MIN * INT32_MIN, which saturates.
 * P comes from four 16x16->32-bit partial products (the two with the high half of |a| are skipped
 * when |a| < 2**16): avr-gcc calls __umulhisi3, the MSP430 runtime its 16-bit multiply helper
 * (hardware multiplier or software), no libgcc 64-bit routine. */
static inline int32_t unit__requantize_s8(int32_t acc, int32_t multiplier, int32_t shift) {
    uint32_t m = (uint32_t)multiplier, a, low, high, mid, part, h;
    uint16_t al, ah, ml, mh;
    int negative;
    shift = shift < -31 ? -31 : (shift > 30 ? 30 : shift);
    a = shift > 0 ? (uint32_t)acc << shift : (uint32_t)acc;
    negative = (int)((a ^ m) >> 31);
    if ((a & 0x80000000UL) != 0) {
        a = 0U - a; /* |a|, 2**31 for INT32_MIN */
    }
    if ((m & 0x80000000UL) != 0) {
        m = 0U - m;
    }
    ml = (uint16_t)(m & 0xFFFFU);
    mh = (uint16_t)(m >> 16);
    al = (uint16_t)(a & 0xFFFFU);
    ah = (uint16_t)(a >> 16);
    low = (uint32_t)al * ml;
    mid = (uint32_t)al * mh;
    high = 0;
    if (ah != 0) {
        part = (uint32_t)ah * ml;
        mid += part;
        if (mid < part) {
            high = 0x10000UL; /* the carry of the middle sum */
        }
        high += (uint32_t)ah * mh;
    }
    part = mid << 16;
    low += part;
    high += (mid >> 16) + (low < part ? 1U : 0U);
    part = 0x40000000UL - (uint32_t)negative; /* the nudge */
    low += part;
    high += low < part ? 1U : 0U;
    h = (high << 1) | (low >> 31);
    if (h == 0x80000000UL && !negative) {
        return (int32_t)UNIT__INT32_MAX; /* INT32_MIN * INT32_MIN */
    }
    if (shift < 0) {
        h = unit__shift_right_u32(h, -shift - 1);
        h = (h >> 1) + (h & 1U); /* floor((h + 2**(e-1)) / 2**e) without overflow */
    }
    return negative ? (int32_t)(0U - h) : (int32_t)h;
}

/* The kernels' output stage on AVR: unit_requantize_s8_avr.S (the same result for a multiplier in
 * [0, 2**31 - 1] and a shift in [-31, 30], which the kernels check; results of 2**15 or more in
 * magnitude come back as +-2**15, which the clamp maps to the same int8). UNIT_PORTABLE_KERNELS=1
 * keeps the C. */
#if defined(__AVR__) && !(defined(UNIT_PORTABLE_KERNELS) && UNIT_PORTABLE_KERNELS)
int32_t unit__requantize_s8_avr(int32_t acc, int32_t multiplier, int8_t shift);
#define UNIT__REQUANTIZE_OUTPUT(acc, multiplier, shift) unit__requantize_s8_avr(acc, multiplier, (int8_t)(shift))
#elif defined(__MSP430__) && !(defined(UNIT_PORTABLE_KERNELS) && UNIT_PORTABLE_KERNELS)
/* MSP430: the runtime's __unit_requantize_s8 (mcu/targets/msp430/runtime/unit_requantize_s8_msp430.S:
 * the hardware multiplier's partial products, or shift and add without it) */
int32_t __unit_requantize_s8(int32_t acc, int32_t multiplier, int16_t shift);
#define UNIT__REQUANTIZE_OUTPUT(acc, multiplier, shift) __unit_requantize_s8(acc, multiplier, (int16_t)(shift))
#else
#define UNIT__REQUANTIZE_OUTPUT(acc, multiplier, shift) unit__requantize_s8(acc, multiplier, shift)
#endif

/* requantize, then clamp to [act_min, act_max] (both in [-128, 127]) as int8 (the kernels' output
 * stage: multiplier and shift in their checked ranges). */
static inline int8_t unit__requantize_clamp_s8(int32_t acc, int32_t multiplier, int32_t shift, int32_t act_min,
                                               int32_t act_max) {
    int32_t v;
    if (acc <= 0 && act_min >= 0) {
        return (int8_t)act_min; /* a multiplier >= 0 keeps the sign: the result is <= 0, clamped (ReLU) */
    }
    v = UNIT__REQUANTIZE_OUTPUT(acc, multiplier, shift);
    v = v < act_min ? act_min : (v > act_max ? act_max : v);
    return (int8_t)v;
}

/* The requantization constants of `out` outputs are all in range (checked before anything is
 * written: the kernels then never fail half-way). */
static inline int32_t unit__requant_s8_check(const unit_requant_s8 *r, int32_t out) {
    int32_t o;
    if (r == 0 || r->multiplier == 0 || r->shift == 0 || r->act_min < -128 || r->act_max > 127 ||
        r->act_min > r->act_max) {
        return UNIT_ERR_ARGUMENT;
    }
    for (o = 0; o < out; o++) {
        int32_t shift = UNIT_READ_S8(r->shift + o);
        if (UNIT_READ_S32(r->multiplier + o) < 0 || shift < -31 || shift > 30) {
            return UNIT_ERR_ARGUMENT;
        }
    }
    return UNIT_OK;
}

/* acc[0..n) = bias (0 without a bias). */
/* The argument checks shared by the int8 pools (unit_maxpool2d_s8, unit_avgpool2d_s8): sizes >= 1
 * (batch >= 0), the window inside the input (no padding), buffers given, the input's element
 * count below 2**31. Returns 1 when the arguments are valid. */
static inline int unit__pool2d_s8_args_ok(const int8_t *x, int32_t batch, int32_t channels, int32_t in_height,
                                          int32_t in_width, int32_t kernel_height, int32_t kernel_width,
                                          int32_t stride_y, int32_t stride_x, const int8_t *y) {
    if (batch < 0 || channels < 1 || in_height < 1 || in_width < 1 || kernel_height < 1 || kernel_width < 1 ||
        stride_y < 1 || stride_x < 1 || kernel_height > in_height || kernel_width > in_width || x == 0 || y == 0) {
        return 0;
    }
    if (batch <= 215 && channels <= 215 && in_height <= 215 && in_width <= 215) {
        return 1; /* 215**4 < 2**31: no 64-bit product (a library call on AVR and MSP430) */
    }
    return (int64_t)batch * channels * in_height * in_width <= 0x7FFFFFFFL;
}

static inline void unit__fill_s32(int32_t *acc, int32_t n, int32_t value) {
    int32_t *end = acc + n;
    while (acc != end) {
        *acc++ = value;
    }
}

/* The multiply-accumulate of every int8 kernel: *acc += x * w (the product is int16). On MSP430
 * it is the runtime's __unit_mac_s8 (src/unitprune/mcu/targets/msp430/runtime/mac_s8.S: an 8x8
 * shift-and-add multiply without the hardware multiplier, the int16 product added by add/addc),
 * measured faster than clang-14's code for the C (benchmarks/kernels_s8_mcu.py, docs/kernels.md);
 * -DUNIT_S8_C_MAC=1 selects the C everywhere. */
#if defined(__MSP430__) && !defined(UNIT_S8_C_MAC)
#define UNIT_S8_C_MAC 0
#endif
#ifndef UNIT_S8_C_MAC
#define UNIT_S8_C_MAC 1
#endif
#if UNIT_S8_C_MAC
static inline void unit__mac_s8(int32_t *acc, int8_t x, int8_t w) {
    *acc += (int16_t)(x * w);
}
#else
void __unit_mac_s8(int32_t *acc, int16_t x, int16_t w);
static inline void unit__mac_s8(int32_t *acc, int8_t x, int8_t w) {
    __unit_mac_s8(acc, x, w);
}
#endif

/* |v| of an int8 as uint8 (128 for -128). */
static inline uint8_t unit__abs_s8(int8_t v) {
    return (uint8_t)(v < 0 ? -(int16_t)v : (int16_t)v);
}

/* Keep test of the UnIT kernels, |v| > t for v in [-128, 127] and t in [0, 127], as one 8-bit add
 * and one unsigned compare: with s = v + t in [-128, 254], s >= 0 gives s > 2t iff v > t, and
 * s < 0 (v < -t, kept) wraps to 256 + s, which exceeds 2t because 256 + v > t always holds. The
 * caller passes t2 = 2t. */
static inline int unit__keep_s8(int8_t v, uint8_t t, uint8_t t2) {
    return (uint8_t)((uint8_t)v + t) > t2;
}

/* ---------------------------------------------------------------------------------------- */
/* Convolution                                                                                */
/* ---------------------------------------------------------------------------------------- */

/* Output rows accumulated at a time: params->block_rows, 0 or >= out_height meaning the whole
 * plane (params already checked by unit__conv2d_geometry). */
static inline int32_t unit__conv_block_rows(const unit_conv2d_params *p, int32_t out_height) {
    return p->block_rows == 0 || p->block_rows > out_height ? out_height : p->block_rows;
}

/* Sizes of one int8 convolution call. */
typedef struct {
    int32_t out_height, out_width, positions; /* positions = OH*OW */
    int32_t block_rows;                       /* output rows per accumulator block, in [1, OH] */
    int32_t group_in, group_out;              /* C/groups, O/groups */
    int32_t plane;                            /* H*W */
    int32_t taps;                             /* KH*KW */
} unit__conv_s8;

/* Checks the arguments shared by the three convolutions and fills g. */
static inline int32_t unit__conv2d_s8_begin(const unit_conv2d_params *p, const int8_t *x,
                                            const UNIT_TABLE int8_t *weight,
                                            const unit_requant_s8 *requant, const int8_t *y, const int32_t *scratch,
                                            unit__conv_s8 *g) {
    int32_t status = unit__conv2d_geometry(p, &g->out_height, &g->out_width);
    int64_t positions;
    if (status != UNIT_OK) {
        return status;
    }
    /* no 64-bit products (library calls on AVR and MSP430) for sides below 2**14 */
    positions = g->out_height < 0x4000 && g->out_width < 0x4000 ? (int64_t)(g->out_height * g->out_width)
                                                                  : (int64_t)g->out_height * g->out_width;
    if (positions > 0x1FFFFFFFL ||
        ((p->in_height >= 0x8000L || p->in_width >= 0x8000L) && (int64_t)p->in_height * p->in_width > 0x7FFFFFFFL)) {
        return UNIT_ERR_ARGUMENT; /* the scratch size 4*OH*OW must fit an int32 */
    }
    if (x == 0 || weight == 0 || y == 0) {
        return UNIT_ERR_ARGUMENT;
    }
    status = unit__requant_s8_check(requant, p->out_channels);
    if (status != UNIT_OK) {
        return status;
    }
    if (scratch == 0) {
        return UNIT_ERR_SCRATCH;
    }
    g->positions = (int32_t)positions;
    g->group_in = p->groups == 1 ? p->in_channels : p->in_channels / p->groups;
    g->group_out = p->groups == 1 ? p->out_channels : p->out_channels / p->groups;
    g->plane = p->in_height * p->in_width;
    g->taps = p->kernel_height * p->kernel_width;
    g->block_rows = unit__conv_block_rows(p, g->out_height);
    return UNIT_OK;
}

/* One kernel tap (ky, kx) inside a block of output rows: the valid outputs are `rows` rows x
 * `cols` columns of the block; the first one's accumulator is acc_offset in the block's scratch
 * and its input x_offset in the input plane, the next output row's input x_row_step further.
 * rows and cols are 0 when the tap only sees padding there. */
typedef struct {
    int32_t rows, cols;
    int32_t acc_offset; /* (lo - first)*OW + ox0, lo the first valid row in the block */
    int32_t x_offset;   /* (lo*sy + ky*dy - pad_top)*W + ox0*sx + kx*dx - pad_left */
    int32_t x_row_step; /* sy*W */
} unit__tap_s8;

/* The row part of the taps of kernel row ky in the block of output rows [first, end): r->rows
 * (0: none), r->acc_offset = (lo - first)*OW, r->x_offset = (lo*sy + kyd - pad_top)*W with kyd =
 * ky*dy (kept up to date by the caller's additions); computed once per kernel row and block, so a
 * tap (unit__conv_tap_s8) adds only its column part. */
static inline void unit__conv_tap_rows_s8(const unit_conv2d_params *p, const unit__conv_s8 *g, int32_t kyd,
                                          int32_t first, int32_t end, unit__tap_s8 *r) {
    int32_t oy0, oy1, lo, hi;
    unit__tap_range_kd(kyd, p->in_height, g->out_height, p->stride_y, p->pad_top, &oy0, &oy1);
    lo = oy0 > first ? oy0 : first;
    hi = oy1 + 1 < end ? oy1 + 1 : end;
    r->cols = 0;
    r->x_row_step = p->stride_y * p->in_width;
    if (hi <= lo) {
        r->rows = 0;
        r->acc_offset = 0;
        r->x_offset = 0;
        return;
    }
    r->rows = hi - lo;
    r->acc_offset = (lo - first) * g->out_width;
    r->x_offset = (lo * p->stride_y + kyd - p->pad_top) * p->in_width;
}

/* Tap (ky, kx): the row part r of kernel row ky (unit__conv_tap_rows_s8) and the columns of kx
 * (kxd = kx*dx, kept up to date by the caller). */
static inline void unit__conv_tap_s8(const unit_conv2d_params *p, const unit__conv_s8 *g, int32_t kxd,
                                     const unit__tap_s8 *r, unit__tap_s8 *t) {
    int32_t ox0, ox1;
    unit__tap_range_kd(kxd, p->in_width, g->out_width, p->stride_x, p->pad_left, &ox0, &ox1);
    t->x_row_step = r->x_row_step;
    if (r->rows == 0 || ox1 < ox0) {
        t->rows = 0;
        t->cols = 0;
        t->acc_offset = 0;
        t->x_offset = 0;
        return;
    }
    t->rows = r->rows;
    t->cols = ox1 - ox0 + 1;
    t->acc_offset = r->acc_offset + ox0;
    if (p->stride_x == 1) { /* ox0 + kxd - pad_left, written so that gcc does not make it ox0*stride_x */
        t->x_offset = r->x_offset + (kxd > p->pad_left ? kxd - p->pad_left : 0);
    } else {
        t->x_offset = r->x_offset + ox0 * p->stride_x + kxd - p->pad_left;
    }
}

/* Output stage of one output channel: y[p] = clamp(requantize(acc[p])) for p in [0, n). */
static inline void unit__store_channel_s8(const int32_t *acc, int32_t n, const unit_requant_s8 *r, int32_t o,
                                          int8_t *y) {
    const int32_t multiplier = UNIT_READ_S32(r->multiplier + o);
    const int32_t shift = UNIT_READ_S8(r->shift + o);
    const int32_t *end = acc + n;
    while (acc != end) {
        *y++ = unit__requantize_clamp_s8(*acc++, multiplier, shift, r->act_min, r->act_max);
    }
}

/* Bias of output o (0 without bias). */
static inline int32_t unit__bias_s8(const unit_requant_s8 *r, int32_t o) {
    return r->bias != 0 ? UNIT_READ_S32(r->bias + o) : 0;
}

#if UNIT_S8_COUNTS
/* Zero activations among a tap's valid positions (counted build only). */
static inline int64_t unit__tap_zeros_s8(const int8_t *x_tap, const unit__tap_s8 *t, int32_t stride_x) {
    int64_t zeros = 0;
    int32_t r, l;
    for (r = 0; r < t->rows; r++) {
        const int8_t *xp = x_tap + r * t->x_row_step;
        for (l = 0; l < t->cols; l++) {
            zeros += xp[l * stride_x] == 0;
        }
    }
    return zeros;
}
#endif

/* ---------------------------------------------------------------------------------------- */
/* Linear                                                                                     */
/* ---------------------------------------------------------------------------------------- */

/* Checks the arguments shared by the linear kernels. */
static inline int32_t unit__linear_s8_begin(const int8_t *x, int32_t batch, int32_t in_features,
                                            int32_t out_features, const UNIT_TABLE int8_t *weight_t,
                                            const unit_requant_s8 *requant, const int8_t *y,
                                            const int32_t *scratch) {
    int32_t status;
    if (batch < 0 || in_features < 1 || out_features < 1 || out_features > 0x1FFFFFFFL || x == 0 || weight_t == 0 ||
        y == 0) {
        return UNIT_ERR_ARGUMENT;
    }
    status = unit__requant_s8_check(requant, out_features);
    if (status != UNIT_OK) {
        return status;
    }
    return scratch == 0 ? UNIT_ERR_SCRATCH : UNIT_OK;
}

/* acc[j] = bias[j] (0 without bias) for the out outputs of one sample. */
static inline void unit__linear_init_s8(int32_t *acc, int32_t out, const unit_requant_s8 *r) {
    int32_t j;
    if (r->bias == 0) {
        unit__fill_s32(acc, out, 0);
        return;
    }
    for (j = 0; j < out; j++) {
        acc[j] = UNIT_READ_S32(r->bias + j);
    }
}

/* Output stage of one sample: y[j] = clamp(requantize(acc[j], multiplier[j], shift[j])). */
static inline void unit__linear_store_s8(const int32_t *acc, int32_t out, const unit_requant_s8 *r, int8_t *y) {
    int32_t j;
    for (j = 0; j < out; j++) {
        y[j] = unit__requantize_clamp_s8(acc[j], UNIT_READ_S32(r->multiplier + j), UNIT_READ_S8(r->shift + j),
                                         r->act_min, r->act_max);
    }
}

/* zeroskip column: acc[j] += x * w[j] for the nonzero w[j]. */
UNIT__ROW_FN void unit__column_zeroskip_s8(int32_t *acc, const UNIT_TABLE int8_t *w, int8_t x, int32_t out) {
    int32_t *end = acc + out;
    for (; acc != end; acc++, w++) {
        const int8_t wv = UNIT_READ_S8(w);
        if (wv != 0) {
            unit__mac_s8(acc, x, wv);
        }
    }
}

/* UnIT column: acc[j] += x * w[j] iff |w[j]| > t, for t in [0, 127]; returns the kept count in the
 * counted build (0 otherwise). */
UNIT__COLUMN_FN int32_t unit__column_unit_s8(int32_t *acc, const UNIT_TABLE int8_t *w, int8_t x, uint8_t t,
                                             int32_t out) {
    const uint8_t t2 = (uint8_t)(t + t);
    int32_t *end = acc + out;
    int32_t kept = 0;
    while (acc != end) {
        const int8_t wv = UNIT_READ_S8(w);
        if (unit__keep_s8(wv, t, t2)) {
            unit__mac_s8(acc, x, wv);
#if UNIT_S8_COUNTS
            kept++;
#endif
        }
        acc++;
        w++;
    }
    return kept;
}

#if UNIT_S8_COUNTS
/* Zero weights of one column (counted build only). */
static inline int32_t unit__column_zeros_s8(const UNIT_TABLE int8_t *w, int32_t out) {
    int32_t zeros = 0, j;
    for (j = 0; j < out; j++) {
        zeros += UNIT_READ_S8(w + j) == 0;
    }
    return zeros;
}
#endif

/* How the UnIT linear kernels compute t = approx(T_q, |x|) for a nonzero input (docs/fixed_point.md). */
#define UNIT__QUOTIENT_BITSHIFT 0
#define UNIT__QUOTIENT_BINTREE 1
#define UNIT__QUOTIENT_TABLE 2

typedef struct {
    int32_t method;              /* UNIT__QUOTIENT_* */
    uint32_t threshold_shifted;  /* bitshift: T_q >> shift_start */
    uint8_t shift_start;         /* bitshift: in [0, 31] */
    const unit_quotient_tree_s8 *tree; /* bintree (checked) */
    const UNIT_TABLE uint8_t *table; /* table: [129] */
} unit__quotient_method_s8;

/* t for a = |x| in [1, 128], saturated at 255. */
static inline uint8_t unit__quotient_s8(const unit__quotient_method_s8 *q, uint8_t a) {
    if (q->method == UNIT__QUOTIENT_BITSHIFT) {
        /* The paper's loop: shift T while |x| shifts to 0, from the coarse start on:
         * T >> max(bitlen(a), s) = (T >> s) >> bitlen(a >> s). */
        uint32_t t = q->threshold_shifted;
        uint8_t b = 0;
        if (q->shift_start < 8) {
            b = (uint8_t)(a >> q->shift_start);
        }
        while (b != 0) {
            b >>= 1;
            t >>= 1;
        }
        return t > 255U ? (uint8_t)255 : (uint8_t)t;
    }
    if (q->method == UNIT__QUOTIENT_BINTREE) {
        const unit_quotient_tree_s8 *tree = q->tree;
        int8_t node = 0;
        int8_t left = UNIT_READ_S8(tree->left);
        while (left >= 0) { /* |x| < 2**(split - 1): left, else right */
            int8_t split = UNIT_READ_S8(tree->split + node);
            node = (uint16_t)a < (uint16_t)(1U << (uint8_t)(split - 1)) ? left : UNIT_READ_S8(tree->right + node);
            left = UNIT_READ_S8(tree->left + node);
        }
        return UNIT_READ_U8(tree->quotient + node);
    }
    return UNIT_READ_U8(q->table + a);
}

/* A tree every walk of which ends inside it (see unit_quotient_tree_s8). */
static inline int32_t unit__tree_s8_check(const unit_quotient_tree_s8 *tree) {
    int32_t i;
    if (tree == 0 || tree->nodes < 1 || tree->nodes > 127 || tree->split == 0 || tree->left == 0 ||
        tree->right == 0 || tree->quotient == 0) {
        return UNIT_ERR_ARGUMENT;
    }
    for (i = 0; i < tree->nodes; i++) {
        int32_t left = UNIT_READ_S8(tree->left + i), right = UNIT_READ_S8(tree->right + i);
        int32_t split = UNIT_READ_S8(tree->split + i);
        if (left == -1) {
            continue; /* a leaf */
        }
        if (left <= i || left >= tree->nodes || right <= i || right >= tree->nodes || split < 1 || split > 9) {
            return UNIT_ERR_ARGUMENT;
        }
    }
    return UNIT_OK;
}

/* The UnIT linear kernel (input-stationary, see unit_kernels_s8.h), for any quotient method;
 * inlined into each public kernel with a constant method, so only that method's code remains. */
static inline int32_t unit__linear_unit_s8(const int8_t *x, int32_t batch, int32_t in, int32_t out,
                                           const UNIT_TABLE int8_t *weight_t, const unit__quotient_method_s8 *q,
                                           const unit_requant_s8 *requant, int8_t *y, int32_t *scratch,
                                           unit_counts *counts) {
    int32_t n, i;
#if UNIT_S8_COUNTS
    int64_t zero_weight = 0, zero_activation = 0, executed = 0, nonzero_inputs = 0;
#endif
    for (n = 0; n < batch; n++) {
        const int8_t *x_row = x + (ptrdiff_t)n * in;
        const UNIT_TABLE int8_t *column = weight_t;
        unit__linear_init_s8(scratch, out, requant);
        for (i = 0; i < in; i++, column += out) {
            const int8_t xv = x_row[i];
            uint8_t t;
            int32_t kept;
            if (xv == 0) { /* one zero test per input skips its whole column */
#if UNIT_S8_COUNTS
                int32_t zeros = unit__column_zeros_s8(column, out);
                zero_weight += zeros;
                zero_activation += out - zeros;
#endif
                continue;
            }
            t = unit__quotient_s8(q, unit__abs_s8(xv));
            kept = t < 128U ? unit__column_unit_s8(scratch, column, xv, t, out) : 0; /* t >= 128 keeps nothing */
#if UNIT_S8_COUNTS
            zero_weight += unit__column_zeros_s8(column, out);
            executed += kept;
            nonzero_inputs++;
#else
            (void)kept;
#endif
        }
        unit__linear_store_s8(scratch, out, requant, y + (ptrdiff_t)n * out);
    }
#if UNIT_S8_COUNTS
    if (counts != 0) {
        unit__counts_set(counts, (int64_t)batch * in * out, zero_weight, zero_activation, executed,
                         (int64_t)batch * in + nonzero_inputs * out, nonzero_inputs);
    }
#else
    (void)counts;
#endif
    return UNIT_OK;
}

#endif /* UNIT_INTERNAL_S8_H */
