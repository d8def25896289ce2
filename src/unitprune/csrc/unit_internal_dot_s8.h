/* SPDX-License-Identifier: MIT */
/*
 * unit_internal_dot_s8.h -- the output-stationary inner loop of the dense int8 convolution
 * (private): one *run* of `count` outputs of one output channel along an output row, each the dot
 * product of the channel's weights with one receptive field, its accumulator in registers from the
 * first MAC to the last (no accumulator memory traffic per MAC, docs/kernels.md "Dense int8
 * kernels at the floor").
 *
 * A receptive field is `channels` input channels x `rows` kernel rows x `len` contiguous kernel
 * columns (dilation_x == 1; other dilations take the portable loop of unit_conv2d_dense_s8.c). The
 * input pointer walks the field row by row (x_row_skip after a row, x_channel_skip after a
 * channel, x_next to the next output's field) and the weight pointer the kernel the same way
 * (w_row_skip, w_channel_skip: nonzero only where padding clips the field).
 *
 * Implementations, all storing out[i] as defined by unit__dot_value_s8 below:
 *   portable C99 (unit__dot_run_s8_c), the host build and the reference;
 *   AVR (csrc/unit_conv2d_dense_s8_avr.S, weights read from flash by LPM);
 *   MSP430, software multiply by quarter squares and the 16-bit hardware multiplier
 *     (mcu/targets/msp430/runtime/unit_conv2d_dense_s8_msp430[_hwmult].S: the same object code of
 *     the kernel links either, as for every runtime helper).
 */
#ifndef UNIT_INTERNAL_DOT_S8_H
#define UNIT_INTERNAL_DOT_S8_H

#include "unit_internal_s8.h"

/* Loop shapes of the assembly routines: bit 0 set = 32-bit accumulator (else 24-bit on AVR, proven
 * exact from the field size alone, see unit__dot_mode_s8), bits 1.. the row loop. */
#define UNIT__DOT_WIDE 1
#define UNIT__DOT_GENERAL 0 /* any len, weight skips */
#define UNIT__DOT_ROW3 2    /* len == 3, no weight skips, rows unrolled */
#define UNIT__DOT_ROW5 4    /* len == 5, no weight skips, rows unrolled */
#define UNIT__DOT_DW3 6     /* one channel, 3 rows of 3, no weight skips (24-bit on AVR): weights in registers */
/* Bit 3 (MSP430 only): every activation of the call lies in [0, 127] (__unit_dot_nonneg_s8 checked
 * the input once per call); the whole 3x3 and 5x5 fields (ROW3/ROW5 with 3/5 rows) then skip the
 * activation's sign extension: 13 cycles per MAC instead of 14 with the hardware multiplier, 18
 * instead of 19 without. */
#define UNIT__DOT_NONNEG 8

#if defined(__AVR__) && !defined(UNIT_NO_FLASH) && !(defined(UNIT_FAR_TABLES) && UNIT_FAR_TABLES) && \
    !(defined(UNIT_PORTABLE_KERNELS) && UNIT_PORTABLE_KERNELS)
/* AVR: out[i] = -(sum of (x*w + 32768)) modulo 2**32: the product's sign bit is flipped (one EOR,
 * no sign extension) and the biased products are subtracted (SUB/SBC/SBCI, no zero register). */
#define UNIT__DOT_ASM 1
#define UNIT__DOT_BIAS 1 /* 2**15 per MAC */
#define UNIT__DOT_RUN(out, x, w, run) unit__dot_run_s8_avr(out, x, w, run)
#elif defined(__MSP430__) && !(defined(UNIT_PORTABLE_KERNELS) && UNIT_PORTABLE_KERNELS)
/* MSP430: out[i] = the dot product. */
#define UNIT__DOT_ASM 1
#define UNIT__DOT_BIAS 0
#define UNIT__DOT_RUN(out, x, w, run) __unit_dot_run_s8(out, x, w, run)
#else
#define UNIT__DOT_ASM 0
#define UNIT__DOT_BIAS 0
#endif

/* The run descriptor. With the assembly runs every field is an int16_t, read at fixed offsets
 * (0, 2, ..., 18); pointers are 16-bit there, so the skips are exact modulo 2**16 whatever the
 * plane size. The C run (hosts) takes int32_t fields. */
#if UNIT__DOT_ASM
typedef int16_t unit__dot_field;
#else
typedef int32_t unit__dot_field;
#endif
typedef struct {
    unit__dot_field count;          /* outputs of the run, 1..255 */
    unit__dot_field channels;       /* input channels of the field, 1..255 */
    unit__dot_field rows;           /* kernel rows inside the input, 1..255 */
    unit__dot_field len;            /* kernel columns inside the input, 1..255 */
    unit__dot_field x_row_skip;     /* dilation_y*W - len */
    unit__dot_field x_channel_skip; /* H*W - rows*dilation_y*W */
    unit__dot_field x_next;         /* stride_x - channels*H*W: from the end of one field to the next field */
    unit__dot_field w_row_skip;     /* kernel_width - len, 0..255 */
    unit__dot_field w_channel_skip; /* (kernel_height - rows)*kernel_width, 0..255 */
    unit__dot_field mode;           /* UNIT__DOT_* (assembly only: which unrolled loop) */
} unit__dot_run_s8;

#if UNIT__DOT_ASM && defined(__AVR__)
void unit__dot_run_s8_avr(int32_t *out, const int8_t *x, const int8_t *w, const unit__dot_run_s8 *run);
#elif UNIT__DOT_ASM
void __unit_dot_run_s8(int32_t *out, const int8_t *x, const int8_t *w, const unit__dot_run_s8 *run);
int16_t __unit_dot_nonneg_s8(const int8_t *x, uint16_t n);
#endif

/* The accumulator bias + dot of an output from what a run stored for it: base + stored (C runs,
 * MSP430) or base - stored (AVR), with base = unit__dot_base_s8(bias, n) for a field of n MACs
 * (computed once per run). */
static inline int32_t unit__dot_base_s8(int32_t bias, int32_t n) {
#if UNIT__DOT_BIAS != 0
    return (int32_t)((uint32_t)bias - ((uint32_t)n << 15));
#else
    (void)n;
    return bias;
#endif
}

static inline int32_t unit__dot_value_s8(int32_t base, int32_t stored) {
#if UNIT__DOT_BIAS != 0
    return (int32_t)((uint32_t)base - (uint32_t)stored);
#else
    return (int32_t)((uint32_t)base + (uint32_t)stored);
#endif
}

/* The loop shape for a run: 24-bit accumulation where it is exact whatever the data (AVR: every
 * biased product x*w + 32768 lies in [16512, 49152], so a field of n <= 341 MACs sums below 2**24),
 * else 32-bit; an unrolled row loop for 3 or 5 columns without weight skips; a whole 3x3 field of
 * one channel (depthwise 3x3) with its weights in registers (AVR all 9, MSP430 without a multiplier 4,
 * MSP430+hwmult 8 and one on the stack, two outputs per pass). */
static inline int16_t unit__dot_mode_s8(const unit__dot_run_s8 *r) {
    /* n = channels * rows * len <= 341, in 16-bit products (channels, rows, len <= 255) */
    const uint16_t field_rows = (uint16_t)((uint16_t)r->channels * (uint16_t)r->rows);
    int16_t mode = field_rows <= 341U && (uint16_t)(field_rows * (uint16_t)r->len) <= 341U ? 0 : UNIT__DOT_WIDE;
    if (r->w_row_skip != 0 || r->w_channel_skip != 0) {
        return mode; /* padding clips the field: the general loop adds the weight skips */
    }
    if (r->len == 3) {
        if (mode == 0 && r->channels == 1 && r->rows == 3) {
            return UNIT__DOT_DW3;
        }
        mode |= UNIT__DOT_ROW3;
    } else if (r->len == 5) {
        mode |= UNIT__DOT_ROW5;
    }
    return mode;
}

/* Portable run: out[i] = the dot product of output i's field (exact int32: every partial sum of
 * the field is bounded by the exporter's accumulator bound, docs/fixed_point.md). Kernel columns
 * are column_step (dilation_x) apart; x_row_skip is then dilation_y*W - len*dilation_x. */
static inline void unit__dot_run_s8_c(int32_t *out, const int8_t *x, const UNIT_TABLE int8_t *w_start,
                                      const unit__dot_run_s8 *r, ptrdiff_t column_step) {
    int32_t i, c, ky, kx;
    for (i = 0; i < r->count; i++) {
        const UNIT_TABLE int8_t *w = w_start;
        int32_t acc = 0;
        for (c = 0; c < r->channels; c++) {
            for (ky = 0; ky < r->rows; ky++) {
                for (kx = 0; kx < r->len; kx++) {
                    acc += (int16_t)(*x * UNIT_READ_S8(w));
                    x += column_step;
                    w++;
                }
                x += r->x_row_skip;
                w += r->w_row_skip;
            }
            x += r->x_channel_skip;
            w += r->w_channel_skip;
        }
        out[i] = acc;
        x += r->x_next;
    }
}

#endif /* UNIT_INTERNAL_DOT_S8_H */
