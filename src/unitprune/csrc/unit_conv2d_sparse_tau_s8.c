/* SPDX-License-Identifier: MIT */
/* unit_conv2d_sparse_tau_s8.c -- UnIT on static-sparse weights: the int8 convolution over the
 * nonzero weights only (as unit_conv2d_sparse_s8), each record carrying its weight's UnIT threshold,
 * an export-time constant: records {int16 offset, uint16 tau + 1, int16 weight}; a product is
 * accumulated only where |x| > tau (|x| >= tau + 1). Outputs and counters by cause equal the
 * per-position UnIT kernel's (unit_conv2d_unit_s8: compares = output positions x stored weights).
 *
 * Output-stationary: per output channel and row, the outputs whose receptive field lies inside the
 * input are one run (unit_internal_sparse_s8.h's walk of the channel's records, with the test), the
 * outputs whose field the padding clips take the masked loop over the records' taps. On MSP430 the
 * run is assembly (mcu/targets/msp430/runtime/unit_conv2d_sparse_tau_s8_msp430[_hwmult].S: one
 * unsigned compare per record) when no input of the call is negative (a scan per call, as after a
 * ReLU), and the interiors of the rows whose kernel rows all lie inside the input are one loop per
 * channel with the run's arguments and the output stage set up once (as unit_conv2d_sparse_s8's:
 * the per-row set-up in C costs hundreds of cycles per row there); otherwise, and on other targets,
 * the portable C run. */
#include "unit_internal_sparse_conv_s8.h"

#define UNIT__TAU_RECORD 3 /* int16 fields per record */

#if UNIT__DOT_ASM && defined(__MSP430__)
#define UNIT__TAU_ASM 1
/* out[0..count) = the sum over the records of the kept products, x >= 0 (run: nnz, count, stride). */
void __unit_sparse_tau_run_s8(int32_t *out, const int8_t *x, const int16_t *records,
                              const unit__sparse_msp430_run_s8 *run);
#else
#define UNIT__TAU_ASM 0
#endif

/* Portable run: out[i] = sum over the records of w * x[i*stride + offset] where |x| > tau. */
static void unit__sparse_tau_run_c(int32_t *out, const int8_t *x, const UNIT_TABLE int16_t *records, int32_t nnz,
                                   int32_t count, ptrdiff_t stride) {
    int32_t i, k;
    for (i = 0; i < count; i++, x += stride) {
        const UNIT_TABLE int16_t *r = records;
        int32_t acc = 0;
        for (k = 0; k < nnz; k++, r += UNIT__TAU_RECORD) {
            const int8_t xv = x[(uint16_t)UNIT_READ_S16(r)];
            if ((int16_t)unit__abs_s8(xv) >= UNIT_READ_S16(r + 1)) {
                acc += (int16_t)(xv * UNIT_READ_S16(r + 2));
            }
        }
        out[i] = acc;
    }
}

#if UNIT_S8_COUNTS
typedef struct {
    int64_t zero_activation, executed;
} unit__sparse_tau_tally;

/* One stored product's cause: zero activation, threshold, or kept. */
static void unit__sparse_tau_count(unit__sparse_tau_tally *tally, int8_t xv, int16_t tau1) {
    if (xv == 0) {
        tally->zero_activation++;
    } else if ((int16_t)unit__abs_s8(xv) >= tau1) {
        tally->executed++;
    }
}
#endif

int32_t unit_conv2d_sparse_tau_s8(const unit_conv2d_params *params, const int8_t *x, const unit_sparse_s8 *sparse,
                                  const unit_requant_s8 *requant, int8_t *y, int32_t *scratch, unit_counts *counts) {
    const unit_conv2d_params *p = params;
    unit__conv_s8 g;
    unit__sparse_out_s8 q;
    int32_t n, o, oy, ox, nnz_total = 0, inner_first, inner_end, inner_origin, group_plane, row_step, last_row;
    int asm_run = 0;
#if UNIT_S8_COUNTS
    unit__sparse_tau_tally tally = {0, 0};
#endif
    int32_t status = unit__conv2d_s8_begin(params, x, (const UNIT_TABLE int8_t *)sparse, requant, y, scratch, &g);
    if (status != UNIT_OK) {
        return status;
    }
    status = unit__sparse_check_records_s8(p, &g, sparse, UNIT__TAU_RECORD, &nnz_total);
    if (status != UNIT_OK) {
        return status;
    }
    group_plane = g.group_in * g.plane;
    q.act_min = (int8_t)requant->act_min;
    q.act_max = (int8_t)requant->act_max;
    /* the values of unit__sparse_span_init_s8 and unit__sparse_full_rows_s8 (unit_conv2d_sparse_s8's)
     * written out: through those helpers avr-gcc 5.4 compiles this kernel to more cycles on a padded
     * layer (3 on two_conv's conv3 of benchmarks/sparse_tau_layers_mcu.py --targets avr) */
    inner_first = unit__inner_first(p);
    inner_end = unit__inner_end(p, g.out_width, inner_first);
    inner_origin = inner_first * p->stride_x - p->pad_left;
    row_step = p->stride_y * p->in_width;
    last_row = (p->kernel_height - 1) * p->dilation_y;
#if UNIT__TAU_ASM
    unit__sparse_msp430_run_s8 interior;
    int32_t full_first = 0, full_end = 0;
    int interior_runs = 0, whole_rows = 0;
    { /* the assembly run's unsigned test holds for inputs >= 0 only (a pointer walk: 16-bit on MSP430) */
        const int8_t *at = x, *const end = x + (ptrdiff_t)p->batch * p->in_channels * g.plane;
        while (at != end && *at >= 0) {
            at++;
        }
        asm_run = at == end && p->stride_x <= 0x7FFF;
    }
    /* the rows whose kernel rows all lie inside the input, [full_first, full_end) */
    full_first = unit__ceil_div(p->pad_top, p->stride_y);
    full_end = unit__floor_div(p->in_height - 1 + p->pad_top - last_row, p->stride_y) + 1;
    full_end = full_end > g.out_height ? g.out_height : full_end;
    full_end = full_end < full_first ? full_first : full_end;
    interior.count = (int16_t)(inner_end - inner_first);
    interior.stride = (int16_t)p->stride_x;
    interior_runs = asm_run && inner_end > inner_first && inner_end - inner_first <= 255 && full_end > full_first;
    whole_rows = inner_first == 0 && inner_end == g.out_width; /* no clipped columns */
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
            int32_t row_y = -p->pad_top * p->in_width;
            int interior_done = 0; /* the interiors of rows [full_first, full_end) are stored */
            unit__sparse_out_channel_s8(&q, requant, o);
#if UNIT__DOT_ASM
            q.ready = 0;
#endif
#if UNIT__TAU_ASM
            interior_done = interior_runs && nnz > 0;
            if (interior_done) { /* per row the assembly run and the output stage, nothing else */
                const int8_t *xr = x_group + (row_y + full_first * row_step + inner_origin);
                int8_t *yr = y_row + (full_first * g.out_width + inner_first);
                int32_t rows;
                unit__requant_run_init_s8(&q.run, q.multiplier, q.shift, q.act_min, q.act_max);
                q.ready = 1;
                q.run.base = q.bias;
                interior.nnz = (int16_t)nnz;
                for (rows = full_end - full_first; rows > 0; rows--, xr += row_step, yr += g.out_width) {
                    __unit_sparse_tau_run_s8(scratch, xr, records, &interior);
                    UNIT__REQUANTIZE_RUN(yr, scratch, interior.count, &q.run);
                }
            }
#endif
            for (oy = 0; oy < g.out_height; oy++, first_y += p->stride_y, row_y += row_step, y_row += g.out_width) {
                const int rows_inside = first_y >= 0 && first_y + last_row < p->in_height;
                uint8_t ky0 = 0, ky1 = 0;
#if UNIT__TAU_ASM && !UNIT_S8_COUNTS
                if (rows_inside && interior_done && whole_rows) {
                    continue; /* done by the interior loop */
                }
#endif
                if (taps != 0) {
                    unit__sparse_inside_s8(first_y, p->kernel_height, p->in_height, p->dilation_y, &ky0, &ky1);
                }
                for (ox = 0; ox < g.out_width;) {
                    if (rows_inside && ox == inner_first && inner_end > inner_first) { /* a run of whole fields */
                        const int32_t origin = row_y + inner_origin, count = inner_end - ox;
#if UNIT_S8_COUNTS
                        int32_t i, k;
                        for (i = 0; i < count; i++) {
                            for (k = 0; k < nnz; k++) {
                                const UNIT_TABLE int16_t *r = records + UNIT__TAU_RECORD * k;
                                unit__sparse_tau_count(&tally, x_group[origin + i * p->stride_x +
                                                                       (int32_t)(uint16_t)UNIT_READ_S16(r)],
                                                       UNIT_READ_S16(r + 1));
                            }
                        }
#endif
                        if (interior_done) {
                            ox += count; /* stored by the interior loop */
                            continue;
                        }
                        if (nnz == 0) {
                            unit__fill_s32(scratch, count, 0);
                        } else if (asm_run) {
#if UNIT__TAU_ASM
                            unit__sparse_msp430_run_s8 run;
                            run.nnz = (int16_t)nnz;
                            run.count = (int16_t)count;
                            run.stride = (int16_t)p->stride_x;
                            __unit_sparse_tau_run_s8(scratch, x_group + origin, records, &run);
#endif
                        } else {
                            unit__sparse_tau_run_c(scratch, x_group + origin, records, nnz, count,
                                                   (ptrdiff_t)p->stride_x);
                        }
                        unit__sparse_store_s8(y_row + ox, scratch, count, q.bias, 0, &q);
                        ox += count;
                    } else { /* a field clipped by the padding: only the taps inside the input */
                        const int32_t first_x = ox * p->stride_x - p->pad_left, origin = row_y + first_x;
                        int32_t k, acc = 0;
                        uint8_t kx0, kx1;
                        unit__sparse_inside_s8(first_x, p->kernel_width, p->in_width, p->dilation_x, &kx0, &kx1);
                        for (k = 0; k < nnz; k++) {
                            const uint8_t ky = UNIT_READ_U8(taps + 2 * k), kx = UNIT_READ_U8(taps + 2 * k + 1);
                            const UNIT_TABLE int16_t *r = records + UNIT__TAU_RECORD * k;
                            int8_t xv = 0; /* a padding zero */
                            if (ky >= ky0 && ky < ky1 && kx >= kx0 && kx < kx1) {
                                xv = x_group[origin + (int32_t)(uint16_t)UNIT_READ_S16(r)];
                                if ((int16_t)unit__abs_s8(xv) >= UNIT_READ_S16(r + 1)) {
                                    acc += (int16_t)(xv * UNIT_READ_S16(r + 2));
                                }
                            }
#if UNIT_S8_COUNTS
                            unit__sparse_tau_count(&tally, xv, UNIT_READ_S16(r + 1));
#endif
                        }
                        unit__sparse_store_s8(y_row + ox, &acc, 1, q.bias, 0, &q);
                        ox++;
                    }
                }
            }
            records += UNIT__TAU_RECORD * nnz;
            if (taps != 0) {
                taps += 2 * nnz;
            }
            if (++in_group == g.group_out) {
                in_group = 0;
                x_group += group_plane;
            }
        }
    }
#if UNIT_S8_COUNTS
    if (counts != 0) {
        const int64_t dense = (int64_t)p->batch * p->out_channels * g.positions * g.group_in * g.taps;
        const int64_t stored = (int64_t)p->batch * g.positions * nnz_total;
        unit__counts_set(counts, dense, dense - stored, tally.zero_activation, tally.executed, stored, 0);
    }
#else
    (void)counts;
    (void)asm_run;
#endif
    return UNIT_OK;
}
