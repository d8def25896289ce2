/* SPDX-License-Identifier: MIT */
/* unit_conv2d_sparse_s8.c -- int8 convolution over the nonzero weights only (static sparsity, see
 * unit_kernels_s8.h, unit_sparse_s8), output-stationary: per output channel and output row, the
 * outputs whose receptive field lies inside the input are runs (unit_internal_sparse_s8.h: the
 * channel's records walked with the accumulator in registers, assembly on AVR and MSP430); the
 * outputs whose field the padding clips take the masked C loop over the records' taps. A zero
 * weight is not stored, so it costs nothing; a zero activation is multiplied (its product is 0).
 *
 * On AVR and MSP430 every output goes through the dense kernels' output stage (UNIT__REQUANTIZE_RUN,
 * unit_internal_requant_s8.h), its constants computed once per output channel and call, and the
 * interiors of the output rows whose kernel rows all lie inside the input are one loop per channel
 * (unit__sparse_interior_s8) with the run's arguments computed once per call: the per-row set-up
 * in C (32-bit arithmetic) costs hundreds of cycles per row on these targets. */
#include "unit_internal_sparse_conv_s8.h"

#if UNIT_S8_COUNTS
/* The zero activations a run of `count` whole fields multiplies (the MAC counters by cause). */
static int64_t unit__sparse_run_zeros_s8(const int8_t *x, int32_t origin, int32_t count, int32_t stride,
                                         const UNIT_TABLE int16_t *records, int32_t nnz) {
    int64_t zeros = 0;
    int32_t i, k;
    for (i = 0; i < count; i++) {
        for (k = 0; k < nnz; k++) {
            zeros += x[origin + i * stride + (int32_t)(uint16_t)UNIT_READ_S16(records + 2 * k)] == 0;
        }
    }
    return zeros;
}
#endif

#if UNIT__DOT_ASM
/* The run of an interior: `count` (1..255) outputs `stride` inputs apart over `nnz` records. */
typedef struct {
    const UNIT_TABLE int16_t *records;
#if defined(__AVR__)
    void (*run)(int32_t *, const int8_t *, const int16_t *, uint16_t, uint8_t); /* stride 1 or 2 */
    uint16_t nnz;
    uint8_t count;
#else
    unit__sparse_msp430_run_s8 run;
#endif
} unit__sparse_interior_run_s8;

/* The interiors of `rows` consecutive output rows of one channel (inputs `x_step` apart, outputs
 * `y_step` apart): per row the assembly run and the output stage, nothing else. */
static void unit__sparse_interior_s8(const int8_t *x, ptrdiff_t x_step, const unit__sparse_interior_run_s8 *r,
                                     const unit__requant_run_s8 *store, int8_t *y, ptrdiff_t y_step, int16_t rows,
                                     int32_t *scratch) {
    for (; rows > 0; rows--, x += x_step, y += y_step) {
#if defined(__AVR__)
        r->run(scratch, x, r->records, r->nnz, r->count);
        UNIT__REQUANTIZE_RUN(y, scratch, r->count, store);
#else
        __unit_sparse_run_s8(scratch, x, r->records, &r->run);
        UNIT__REQUANTIZE_RUN(y, scratch, r->run.count, store);
#endif
    }
}
#endif

int32_t unit_conv2d_sparse_s8(const unit_conv2d_params *params, const int8_t *x, const unit_sparse_s8 *sparse,
                              const unit_requant_s8 *requant, int8_t *y, int32_t *scratch, unit_counts *counts) {
    const unit_conv2d_params *p = params;
    unit__conv_s8 g;
    unit__sparse_out_s8 q;
    unit__sparse_span_s8 span;
    int32_t n, o, oy, ox, nnz_total = 0, group_plane;
    int64_t zero_activation = 0;
#if UNIT__DOT_ASM
    unit__sparse_interior_run_s8 interior;
    int interior_runs = 0, whole_rows = 0;
#endif
    /* weights: a non-null stand-in for the shared argument check (the records are checked below) */
    int32_t status = unit__conv2d_s8_begin(params, x, (const UNIT_TABLE int8_t *)sparse, requant, y, scratch, &g);
    if (status != UNIT_OK) {
        return status;
    }
    status = unit__sparse_check_s8(p, &g, sparse, &nnz_total);
    if (status != UNIT_OK) {
        return status;
    }
    group_plane = g.group_in * g.plane;
    q.act_min = (int8_t)requant->act_min;
    q.act_max = (int8_t)requant->act_max;
    unit__sparse_span_init_s8(p, &g, &span);
#if UNIT__DOT_ASM
    /* the interiors of the rows [span.full_first, span.full_end) are one loop per channel
     * (unit__sparse_interior_s8) where the assembly run takes them whole */
    unit__sparse_full_rows_s8(p, &g, span.last_row, &span.full_first, &span.full_end);
#if defined(__AVR__)
    interior_runs = p->stride_x == 1 || p->stride_x == 2;
    interior.run = p->stride_x == 1 ? unit__sparse_run_s8_avr : unit__sparse_run_s2_s8_avr;
    interior.count = (uint8_t)(span.inner_end - span.inner_first);
#else
    interior_runs = p->stride_x <= 0x7FFF;
    interior.run.count = (int16_t)(span.inner_end - span.inner_first);
    interior.run.stride = (int16_t)p->stride_x;
#endif
    interior_runs = interior_runs && span.inner_end > span.inner_first && span.inner_end - span.inner_first <= 255 &&
                    span.full_end > span.full_first && span.full_end - span.full_first <= 32767;
    whole_rows = span.inner_first == 0 && span.inner_end == g.out_width; /* no clipped columns */
#if UNIT_S8_COUNTS
    (void)whole_rows; /* the counted build visits every row (its counters) */
#endif
#endif
    for (n = 0; n < p->batch; n++) {
        const int8_t *x_group = x + (ptrdiff_t)n * p->in_channels * g.plane;
        const UNIT_TABLE int16_t *records = sparse->records;
        const UNIT_TABLE uint8_t *taps = sparse->taps;
        int8_t *y_row = y + (ptrdiff_t)n * p->out_channels * g.positions;
        int32_t in_group = 0;
        for (o = 0; o < p->out_channels; o++) {
            const int32_t nnz = (int32_t)(uint16_t)UNIT_READ_S16((const UNIT_TABLE int16_t *)sparse->nonzeros + o);
            int32_t first_y = -p->pad_top;
            int interior_done = 0; /* the interiors of rows [span.full_first, span.full_end) are stored */
            unit__sparse_out_channel_s8(&q, requant, o);
            int32_t row_y = -p->pad_top * p->in_width; /* input index of the row's first kernel row, column 0 */
#if UNIT__DOT_ASM
            unit__requant_run_init_s8(&q.run, q.multiplier, q.shift, q.act_min, q.act_max);
            q.ready = 1;
#if defined(__AVR__)
            interior_done = interior_runs && nnz > 0 && nnz <= UNIT__SPARSE_AVR_MAX;
            interior.nnz = (uint16_t)nnz;
#else
            interior_done = interior_runs && nnz > 0;
            interior.run.nnz = (int16_t)nnz;
#endif
            if (interior_done) {
                interior.records = records;
                q.run.base = unit__dot_base_s8(q.bias, nnz);
                unit__sparse_interior_s8(x_group + (row_y + span.full_first * span.row_step + span.inner_origin),
                                         (ptrdiff_t)span.row_step, &interior, &q.run,
                                         y_row + (span.full_first * g.out_width + span.inner_first),
                                         (ptrdiff_t)g.out_width, (int16_t)(span.full_end - span.full_first), scratch);
            }
#endif
            for (oy = 0; oy < g.out_height;
                 oy++, first_y += p->stride_y, row_y += span.row_step, y_row += g.out_width) {
                const int rows_inside = first_y >= 0 && first_y + span.last_row < p->in_height;
                uint8_t ky0 = 0, ky1 = 0;
#if UNIT__DOT_ASM && !UNIT_S8_COUNTS
                if (rows_inside && interior_done && whole_rows) {
                    continue; /* done by unit__sparse_interior_s8 */
                }
#endif
                if (taps != 0) { /* the kernel rows inside the input, for the clipped fields */
                    unit__sparse_inside_s8(first_y, p->kernel_height, p->in_height, p->dilation_y, &ky0, &ky1);
                }
                for (ox = 0; ox < g.out_width;) {
                    if (rows_inside && ox == span.inner_first && span.inner_end > span.inner_first) {
                        /* a run of whole fields */
                        const int32_t origin = row_y + span.inner_origin, count = span.inner_end - ox;
#if UNIT_S8_COUNTS
                        zero_activation += unit__sparse_run_zeros_s8(x_group, origin, count, p->stride_x, records, nnz);
#endif
                        if (!interior_done) {
                            int assembly = 0;
                            if (nnz > 0) {
                                assembly = unit__sparse_run_s8(scratch, x_group + origin, records, nnz, count,
                                                               (ptrdiff_t)p->stride_x);
                            } else {
                                unit__fill_s32(scratch, count, 0);
                            }
                            unit__sparse_store_s8(y_row + ox, scratch, count,
                                                  assembly ? unit__dot_base_s8(q.bias, nnz) : q.bias, assembly, &q);
                        }
                        ox += count;
                    } else { /* a field clipped by the padding: only the taps inside the input */
                        const int32_t first_x = ox * p->stride_x - p->pad_left, origin = row_y + first_x;
                        int32_t k, acc = 0;
                        uint8_t kx0, kx1;
                        unit__sparse_inside_s8(first_x, p->kernel_width, p->in_width, p->dilation_x, &kx0, &kx1);
                        for (k = 0; k < nnz; k++) {
                            const uint8_t ky = UNIT_READ_U8(taps + 2 * k), kx = UNIT_READ_U8(taps + 2 * k + 1);
                            if (ky >= ky0 && ky < ky1 && kx >= kx0 && kx < kx1) {
                                const int8_t xv = x_group[origin + (int32_t)(uint16_t)UNIT_READ_S16(records + 2 * k)];
                                acc += (int16_t)(xv * UNIT_READ_S16(records + 2 * k + 1));
                                zero_activation += xv == 0;
                            } else {
                                zero_activation++; /* a padding zero */
                            }
                        }
                        unit__sparse_store_s8(y_row + ox, &acc, 1, q.bias, 0, &q);
                        ox++;
                    }
                }
            }
            unit__sparse_next_channel_s8(&records, &taps, nnz, &in_group, g.group_out, &x_group, group_plane);
        }
    }
#if UNIT_S8_COUNTS
    unit__sparse_counts_s8(counts, p, &g, nnz_total, zero_activation);
#else
    (void)counts;
    (void)zero_activation;
#endif
    return UNIT_OK;
}
