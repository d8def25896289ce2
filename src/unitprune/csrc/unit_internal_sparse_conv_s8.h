/* SPDX-License-Identifier: MIT */
/*
 * unit_internal_sparse_conv_s8.h -- private pieces shared by the static-sparse int8 convolutions
 * (unit_conv2d_sparse_s8.c, unit_conv2d_sparse_tau_s8.c, unit_conv2d_sparse_zeroact_s8.c,
 * unit_conv2d_sparse_pool_s8.c): the requantizing store of a run's values (on AVR and MSP430 the
 * dense kernels' output stage), the call's rows and columns whose fields lie inside the input, the
 * kernel indices of a field clipped by the padding, and the tables' range check.
 */
#ifndef UNIT_INTERNAL_SPARSE_CONV_S8_H
#define UNIT_INTERNAL_SPARSE_CONV_S8_H

#include "unit_internal_requant_s8.h"
#include "unit_internal_sparse_s8.h"

/* The requantization of one output channel; on AVR and MSP430 also its assembly output stage
 * (unit_internal_requant_s8.h), set up by the first store after `ready` is cleared. */
typedef struct {
    int32_t bias, multiplier, shift;
    int8_t act_min, act_max;
#if UNIT__DOT_ASM
    uint8_t ready; /* run holds this channel's constants */
    unit__requant_run_s8 run;
#endif
} unit__sparse_out_s8;

/* q takes output channel o's requantization (its act_min/act_max are the call's, set once). */
static inline void unit__sparse_out_channel_s8(unit__sparse_out_s8 *q, const unit_requant_s8 *requant, int32_t o) {
    q->bias = unit__bias_s8(requant, o);
    q->multiplier = UNIT_READ_S32(requant->multiplier + o);
    q->shift = UNIT_READ_S8(requant->shift + o);
}

/* A call's rows and columns: output columns [inner_first, inner_end) have their whole kernel row
 * inside the input, the first one's field starting at input column inner_origin; row_step inputs lie
 * between two output rows, last_row input rows between a field's first and last kernel row; output
 * rows [full_first, full_end) have every kernel row inside the input (unit__sparse_full_rows_s8). */
typedef struct {
    int32_t inner_first, inner_end, inner_origin, row_step, last_row, full_first, full_end;
} unit__sparse_span_s8;

static inline void unit__sparse_span_init_s8(const unit_conv2d_params *p, const unit__conv_s8 *g,
                                             unit__sparse_span_s8 *s) {
    s->inner_first = unit__inner_first(p);
    s->inner_end = unit__inner_end(p, g->out_width, s->inner_first);
    s->inner_origin = s->inner_first * p->stride_x - p->pad_left;
    s->row_step = p->stride_y * p->in_width;
    s->last_row = (p->kernel_height - 1) * p->dilation_y;
}

/* The output rows whose kernel rows all lie inside the input, [*first, *end) (last_row as in
 * unit__sparse_span_s8), for the assembly runs' interiors. */
static inline void unit__sparse_full_rows_s8(const unit_conv2d_params *p, const unit__conv_s8 *g, int32_t last_row,
                                             int32_t *first, int32_t *end) {
    *first = unit__ceil_div(p->pad_top, p->stride_y);
    *end = unit__floor_div(p->in_height - 1 + p->pad_top - last_row, p->stride_y) + 1;
    *end = *end > g->out_height ? g->out_height : *end;
    *end = *end < *first ? *first : *end;
}

/* y[i] = clamp(requantize(value i)), value = unit__dot_value_s8(base, stored[i]) for an assembly run
 * (base = unit__dot_base_s8(bias, nnz)), base + stored[i] for plain sums (the C run, a clipped
 * field: base = bias). On AVR and MSP430 the dense kernels' output stage (UNIT__REQUANTIZE_RUN; on
 * AVR plain sums are negated in place, as it reads base - stored). */
static void unit__sparse_store_s8(int8_t *y, int32_t *stored, int32_t count, int32_t base, int assembly,
                                  unit__sparse_out_s8 *q) {
#if UNIT__DOT_ASM
    if (!q->ready) {
        unit__requant_run_init_s8(&q->run, q->multiplier, q->shift, q->act_min, q->act_max);
        q->ready = 1;
    }
#if UNIT__DOT_BIAS != 0
    if (!assembly) {
        int32_t i;
        for (i = 0; i < count; i++) {
            stored[i] = (int32_t)(0U - (uint32_t)stored[i]);
        }
    }
#else
    (void)assembly;
#endif
    q->run.base = base;
    while (count > 0) {
        const int32_t part = count < 255 ? count : 255;
        UNIT__REQUANTIZE_RUN(y, stored, part, &q->run);
        y += part;
        stored += part;
        count -= part;
    }
#else
    for (; count > 0; count--) {
        const int32_t acc = assembly ? unit__dot_value_s8(base, *stored++) : base + *stored++;
        *y++ = unit__requantize_clamp_s8(acc, q->multiplier, q->shift, q->act_min, q->act_max);
    }
#endif
}

/* The kernel indices [*lo, *hi) along one axis whose input first + k*dilation lies in [0, size)
 * (a clipped field: a few steps, no division). */
static void unit__sparse_inside_s8(int32_t first, int32_t kernel, int32_t size, int32_t dilation, uint8_t *lo,
                                   uint8_t *hi) {
    int32_t k = 0, at = first;
    for (; k < kernel && at < 0; k++) {
        at += dilation;
    }
    *lo = (uint8_t)k;
    for (; k < kernel && at < size; k++) {
        at += dilation;
    }
    *hi = (uint8_t)k;
}


/* The records are in range: offsets inside the receptive field's span, taps inside the kernel; records
 * of `fields` int16 (2: {offset, weight}; 3: {offset, tau + 1, weight}, tau + 1 in [0, 256] and the
 * weight an int8). *total = the stored weights. */
static inline int32_t unit__sparse_check_records_s8(const unit_conv2d_params *p, const unit__conv_s8 *g,
                                                   const unit_sparse_s8 *s, int32_t fields, int32_t *total) {
    int32_t o, k, nnz = 0;
    const int32_t span = (g->group_in - 1) * g->plane + (p->kernel_height - 1) * p->dilation_y * p->in_width +
                         (p->kernel_width - 1) * p->dilation_x + 1;
    const int32_t padded = p->pad_top | p->pad_bottom | p->pad_left | p->pad_right;
    if (s == 0 || s->nonzeros == 0) {
        return UNIT_ERR_ARGUMENT;
    }
    for (o = 0; o < p->out_channels; o++) {
        nnz += (int32_t)(uint16_t)UNIT_READ_S16((const UNIT_TABLE int16_t *)s->nonzeros + o);
    }
    if (nnz > 0 && (s->records == 0 || (padded && s->taps == 0))) {
        return UNIT_ERR_ARGUMENT; /* records, and their taps with padding, unless no weight is stored */
    }
#if !defined(__AVR__) && !defined(__MSP430__)
    /* hosts check every record (MCU builds trust the exporter's tables: a pass per call costs cycles) */
    for (k = 0; k < nnz; k++) {
        const UNIT_TABLE int16_t *r = s->records + fields * k;
        if ((int32_t)(uint16_t)UNIT_READ_S16(r) >= span) {
            return UNIT_ERR_ARGUMENT;
        }
        if (fields == 3 && (UNIT_READ_S16(r + 1) < 0 || UNIT_READ_S16(r + 1) > 256 || UNIT_READ_S16(r + 2) < -128 ||
                            UNIT_READ_S16(r + 2) > 127)) {
            return UNIT_ERR_ARGUMENT;
        }
        if (s->taps != 0 && (UNIT_READ_U8(s->taps + 2 * k) >= p->kernel_height ||
                             UNIT_READ_U8(s->taps + 2 * k + 1) >= p->kernel_width)) {
            return UNIT_ERR_ARGUMENT;
        }
    }
#else
    (void)k;
    (void)span;
    (void)fields;
#endif
    *total = nnz;
    return UNIT_OK;
}

/* The same for records {offset, weight}. */
static inline int32_t unit__sparse_check_s8(const unit_conv2d_params *p, const unit__conv_s8 *g,
                                            const unit_sparse_s8 *s, int32_t *total) {
    return unit__sparse_check_records_s8(p, g, s, 2, total);
}

/* After output channel o's records: the next channel's records and taps, and its group's input
 * channels once the group's output channels are done. */
static inline void unit__sparse_next_channel_s8(const UNIT_TABLE int16_t **records, const UNIT_TABLE uint8_t **taps,
                                                int32_t nnz, int32_t *in_group, int32_t group_out,
                                                const int8_t **x_group, int32_t group_plane) {
    *records += 2 * nnz;
    if (*taps != 0) {
        *taps += 2 * nnz;
    }
    if (++*in_group == group_out) { /* the next output channel reads the next group's channels */
        *in_group = 0;
        *x_group += group_plane;
    }
}

#if UNIT_S8_COUNTS
/* The counters of a static-sparse convolution (the stored weights at every position, the zero
 * activations among them as counted by the kernel). */
static inline void unit__sparse_counts_s8(unit_counts *counts, const unit_conv2d_params *p, const unit__conv_s8 *g,
                                          int32_t nnz_total, int64_t zero_activation) {
    if (counts != 0) {
        const int64_t dense = (int64_t)p->batch * p->out_channels * g->positions * g->group_in * g->taps;
        const int64_t zero_weight = (int64_t)p->batch * g->positions * ((int64_t)p->out_channels * g->group_in * g->taps -
                                                                          nnz_total);
        unit__counts_set(counts, dense, zero_weight, zero_activation, dense - zero_weight - zero_activation, 0, 0);
    }
}
#endif

#endif /* UNIT_INTERNAL_SPARSE_CONV_S8_H */
