/* SPDX-License-Identifier: MIT */
/* unit_conv2d_sparse_zeroact_s8.c -- the static-sparse int8 convolution (unit_conv2d_sparse_s8.c)
 * that also skips zero activations where whole kernel rows of a field read zeros only (see
 * unit_kernels_s8.h, unit_conv2d_sparse_zeroact_s8).
 *
 * Once per sample, the nonzero column span [lo, hi] of every input row. Then per output row and
 * group, shared by the group's output channels: each kernel row (flattened j = c*KH + ky over the
 * group's input channels) whose input row is not zero makes the interval of output columns whose
 * field meets its span; the union of the intervals splits the row into *pieces* (connected live
 * columns), each with the first and last kernel row of the intervals in it. Per output channel:
 *   - a column in no piece reads zeros only: its output is the channel's requantized bias (computed
 *     once per call), no MAC and no requantization;
 *   - a piece's columns read the channel's records of kernel rows [first, last] only (row_starts
 *     gives their range; the records of the other rows meet zeros only), through the same
 *     output-stationary runs as unit_conv2d_sparse_s8 (assembly on AVR and MSP430; a piece is one
 *     long run, several outputs per pass over the records) for whole fields, the masked loop over
 *     the taps for fields the padding clips.
 * The per-row work is O(G + OW) (a difference array over the columns), not per output and kernel row.
 * Outputs and counters equal unit_conv2d_sparse_s8's: a skipped product is one of a stored weight
 * with x == 0 (counted zero_activation, as that kernel counts the zero products it multiplies). */
#include "unit_internal_sparse_conv_s8.h"

#define UNIT__ZEROACT_NONE 0xFF /* a piece no kernel row has reached yet */

/* The per-row helpers are separate functions on MCUs: inlined into the loop nest, avr-gcc spills
 * most of their values to the stack (measured: several times the cycles). */
#if defined(__GNUC__) && (defined(__AVR__) || defined(__MSP430__))
#define UNIT__ZEROACT_FN static __attribute__((noinline))
#else
#define UNIT__ZEROACT_FN static
#endif

/* One piece of an output row: the live columns [start, stop), reading kernel rows [kf, ke). */
typedef struct {
    int16_t start, stop;
    uint8_t kf, ke;
    int16_t pad;
} unit__zeroact_piece_s8;

/* What the row helpers need, in 16 bits (the kernel's size limits). */
typedef struct {
    int16_t height, width, kernel_height, dy, sx, pad_left, reach, out_width, group_in, kernel_rows;
    int16_t run_first, run_end; /* the current row's run columns (none when the padding clips its rows) */
    int16_t *span;              /* [C][H][2] */
    int16_t *interval;          /* [G][2]: each kernel row's live columns (u > v: none) */
    int16_t *column;            /* [OW]: each live column's piece */
    uint8_t *cover;             /* [OW + 1] */
    unit__zeroact_piece_s8 *piece; /* [OW] */
} unit__zeroact_row_s8;

/* The scratch layout (unit_conv2d_sparse_zeroact_s8_scratch_size): int32 run values [OW], pieces
 * [OW] (8 bytes each), int16 spans [C][H][2], int16 intervals [G][2], int16 piece of each column
 * [OW], uint8 cover differences [OW + 1], int8 constants [O]. */

/* Every input row's nonzero column span: span[2r] = lo, span[2r+1] = hi (hi < 0: the row is zero). */
UNIT__ZEROACT_FN void unit__zeroact_spans_s8(const int8_t *x, int16_t rows, int16_t width, int16_t *span) {
    int16_t r;
    for (r = 0; r < rows; r++, x += width, span += 2) {
        const int8_t *at = x, *end = x + width;
        while (at < end && *at == 0) {
            at++;
        }
        if (at == end) {
            span[0] = width;
            span[1] = -1;
            continue;
        }
        span[0] = (int16_t)(at - x);
        at = end - 1;
        while (*at == 0) {
            at--;
        }
        span[1] = (int16_t)(at - x);
    }
}

/* The pieces of one output row for the group whose spans start at span (first_row = oy*sy -
 * pad_top, the input row of kernel row 0); returns their number. Kernel row j's interval: the
 * output columns whose field meets its input row's span; their union (a difference array, counts
 * modulo 256: at most 254 kernel rows, zero only where no interval) splits the row into pieces. */
UNIT__ZEROACT_FN int16_t unit__zeroact_pieces_s8(const unit__zeroact_row_s8 *w, const int16_t *span, int16_t first_row) {
    const int16_t height = w->height, out_width = w->out_width, sx = w->sx;
    int16_t *interval = w->interval, *column = w->column;
    uint8_t *cover = w->cover;
    unit__zeroact_piece_s8 *piece = w->piece;
    int16_t c, ky, ox, count = 0;
    uint8_t j, sum = 0;
    for (ox = 0; ox <= out_width; ox++) {
        cover[ox] = 0;
    }
    for (c = 0; c < w->group_in; c++, span += 2 * height) { /* the intervals, as differences */
        int16_t r = first_row;
        for (ky = 0; ky < w->kernel_height; ky++, r += w->dy, interval += 2) {
            int16_t u = 0, v = -1;
            if ((uint16_t)r < (uint16_t)height && span[2 * r + 1] >= 0) {
                if (sx == 1) {
                    u = (int16_t)(span[2 * r] + w->reach);
                    v = (int16_t)(span[2 * r + 1] + w->pad_left);
                } else {
                    u = (int16_t)unit__ceil_div(span[2 * r] + w->reach, sx);
                    v = (int16_t)unit__floor_div(span[2 * r + 1] + w->pad_left, sx);
                }
                u = u < 0 ? 0 : u;
                v = v >= out_width ? (int16_t)(out_width - 1) : v;
                if (u <= v) {
                    cover[u]++;
                    cover[v + 1]--;
                }
            }
            interval[0] = u;
            interval[1] = v;
        }
    }
    for (ox = 0; ox < out_width; ox++) { /* their union: the pieces */
        const uint8_t before = sum;
        sum = (uint8_t)(sum + cover[ox]);
        if (sum != 0) {
            if (before == 0) {
                piece[count].start = ox;
                piece[count].kf = UNIT__ZEROACT_NONE;
                count++;
            }
            column[ox] = (int16_t)(count - 1);
        } else if (before != 0) {
            piece[count - 1].stop = ox;
        }
    }
    if (sum != 0) {
        piece[count - 1].stop = out_width;
    }
    for (j = 0, interval = w->interval; j < w->kernel_rows; j++, interval += 2) { /* each piece's kernel rows */
        if (interval[0] <= interval[1]) {
            unit__zeroact_piece_s8 *in = piece + column[interval[0]];
            if (in->kf == UNIT__ZEROACT_NONE) {
                in->kf = j;
            }
            in->ke = (uint8_t)(j + 1);
        }
    }
    return count;
}

/* One output channel's row: fields of zeros get the constant, the pieces their records. */
typedef struct {
    const unit_conv2d_params *p;
    const unit_sparse_s8 *sparse;
    const int8_t *x_group;  /* the group's input */
    const int8_t *x_runs;   /* the input field origin of column 0 of this row's runs */
    int32_t row_y;          /* input index of the field row's column 0 */
    uint8_t ky0, ky1;       /* the kernel rows inside the input (clipped fields) */
} unit__zeroact_call_s8;

UNIT__ZEROACT_FN void unit__zeroact_channel_row_s8(const unit__zeroact_call_s8 *call, const unit__zeroact_row_s8 *w,
                                                   int16_t count, const UNIT_TABLE int16_t *starts,
                                                   unit__sparse_out_s8 *q, int8_t constant, int8_t *y_row,
                                                   int32_t *scratch) {
    const unit_conv2d_params *p = call->p;
    const unit__zeroact_piece_s8 *piece = w->piece;
    const int16_t run_first = w->run_first, run_end = w->run_end;
    int16_t ox = 0, i;
    for (i = 0; i < count; i++, piece++) {
        const int32_t s0 = (int32_t)(uint16_t)UNIT_READ_S16(starts + piece->kf);
        const int32_t s1 = (int32_t)(uint16_t)UNIT_READ_S16(starts + piece->ke);
        for (; ox < piece->start; ox++) { /* fields of zeros */
            y_row[ox] = constant;
        }
        while (ox < piece->stop) {
            if (ox >= run_first && ox < run_end) { /* a run of whole fields */
                const int16_t stop = piece->stop < run_end ? piece->stop : run_end;
                if (s1 > s0) {
                    const int assembly = unit__sparse_run_s8(scratch, call->x_runs + (ptrdiff_t)ox * w->sx,
                                                             call->sparse->records + 2 * s0, s1 - s0, stop - ox,
                                                             (ptrdiff_t)w->sx);
                    unit__sparse_store_s8(y_row + ox, scratch, stop - ox,
                                          assembly ? unit__dot_base_s8(q->bias, s1 - s0) : q->bias, assembly, q);
                    ox = stop;
                } else {
                    for (; ox < stop; ox++) { /* live rows, but no stored weight in them */
                        y_row[ox] = constant;
                    }
                }
            } else { /* a field clipped by the padding: only the taps inside the input */
                const int32_t first_x = (int32_t)ox * p->stride_x - p->pad_left, origin = call->row_y + first_x;
                const UNIT_TABLE int16_t *records = call->sparse->records;
                const UNIT_TABLE uint8_t *taps = call->sparse->taps;
                int32_t k, acc = 0;
                uint8_t kx0, kx1;
                unit__sparse_inside_s8(first_x, p->kernel_width, p->in_width, p->dilation_x, &kx0, &kx1);
                for (k = s0; k < s1; k++) {
                    const uint8_t ky = UNIT_READ_U8(taps + 2 * k), kx = UNIT_READ_U8(taps + 2 * k + 1);
                    if (ky >= call->ky0 && ky < call->ky1 && kx >= kx0 && kx < kx1) {
                        acc += (int16_t)(call->x_group[origin + (int32_t)(uint16_t)UNIT_READ_S16(records + 2 * k)] *
                                         UNIT_READ_S16(records + 2 * k + 1));
                    }
                }
                unit__sparse_store_s8(y_row + ox, &acc, 1, q->bias, 0, q);
                ox++;
            }
        }
    }
    for (; ox < w->out_width; ox++) {
        y_row[ox] = constant;
    }
}

/* The tables: row_starts[O*G + 1] ascending from 0, each channel's starts at its first record,
 * the last = the records stored (hosts check every entry, MCU builds trust the exporter). */
static int32_t unit__zeroact_check_s8(const unit_conv2d_params *p, const unit__conv_s8 *g, const unit_sparse_s8 *s,
                                      const UNIT_TABLE uint16_t *row_starts, int32_t total) {
    const int32_t rows = g->group_in * p->kernel_height;
    if (row_starts == 0 || rows > 254 || p->in_width > 0x7FFF || p->in_height > 0x7FFF || g->out_width > 0x7FFF ||
        (int64_t)p->in_channels * p->in_height > 0x1FFFFFFFL) {
        return UNIT_ERR_ARGUMENT; /* keys are uint8 (254 kernel rows at most), spans int16 */
    }
#if !defined(__AVR__) && !defined(__MSP430__)
    {
        int32_t o, j, at = 0;
        for (o = 0; o < p->out_channels; o++) {
            if ((int32_t)UNIT_READ_S16((const UNIT_TABLE int16_t *)row_starts + o * rows) != (int32_t)(int16_t)at) {
                return UNIT_ERR_ARGUMENT;
            }
            at += (int32_t)(uint16_t)UNIT_READ_S16((const UNIT_TABLE int16_t *)s->nonzeros + o);
            for (j = 1; j <= rows; j++) {
                const int32_t here = (uint16_t)UNIT_READ_S16((const UNIT_TABLE int16_t *)row_starts + o * rows + j);
                const int32_t before = (uint16_t)UNIT_READ_S16((const UNIT_TABLE int16_t *)row_starts + o * rows + j - 1);
                if (here < before || (j == rows && here != at)) {
                    return UNIT_ERR_ARGUMENT;
                }
            }
        }
        if (at != total) {
            return UNIT_ERR_ARGUMENT;
        }
    }
#else
    (void)s;
    (void)total;
#endif
    return UNIT_OK;
}

#if UNIT_S8_COUNTS
/* Products of a stored weight with a zero activation or a padding position, over every output:
 * the count unit_conv2d_sparse_s8 reports (its records walked in full). */
static int64_t unit__zeroact_count_s8(const unit_conv2d_params *p, const unit__conv_s8 *g, const int8_t *x,
                                      const unit_sparse_s8 *s) {
    int64_t zeros = 0;
    int32_t n, o, oy, ox, k;
    for (n = 0; n < p->batch; n++) {
        const UNIT_TABLE int16_t *records = s->records;
        const UNIT_TABLE uint8_t *taps = s->taps;
        for (o = 0; o < p->out_channels; o++) {
            const int32_t nnz = (int32_t)(uint16_t)UNIT_READ_S16((const UNIT_TABLE int16_t *)s->nonzeros + o);
            const int8_t *x_group = x + ((ptrdiff_t)n * p->in_channels + (o / g->group_out) * g->group_in) * g->plane;
            for (oy = 0; oy < g->out_height; oy++) {
                for (ox = 0; ox < g->out_width; ox++) {
                    for (k = 0; k < nnz; k++) {
                        const int32_t offset = (int32_t)(uint16_t)UNIT_READ_S16(records + 2 * k);
                        int32_t ky = 0, kx = 0, c, iy, ix;
                        if (taps != 0) {
                            ky = UNIT_READ_U8(taps + 2 * k);
                            kx = UNIT_READ_U8(taps + 2 * k + 1);
                            c = (offset - ky * p->dilation_y * p->in_width - kx * p->dilation_x) / g->plane;
                        } else { /* no padding: the offset alone places the product inside the input */
                            c = 0;
                        }
                        iy = oy * p->stride_y - p->pad_top + ky * p->dilation_y;
                        ix = ox * p->stride_x - p->pad_left + kx * p->dilation_x;
                        if (taps != 0 && (iy < 0 || iy >= p->in_height || ix < 0 || ix >= p->in_width)) {
                            zeros++;
                        } else if (taps != 0) {
                            zeros += x_group[c * g->plane + iy * p->in_width + ix] == 0;
                        } else {
                            zeros += x_group[(oy * p->stride_y) * p->in_width + ox * p->stride_x + offset] == 0;
                        }
                    }
                }
            }
            records += 2 * nnz;
            if (taps != 0) {
                taps += 2 * nnz;
            }
        }
    }
    return zeros;
}
#endif

int32_t unit_conv2d_sparse_zeroact_s8(const unit_conv2d_params *params, const int8_t *x, const unit_sparse_s8 *sparse,
                                      const UNIT_TABLE uint16_t *row_starts, const unit_requant_s8 *requant,
                                      int8_t *y, int32_t *scratch, unit_counts *counts) {
    const unit_conv2d_params *p = params;
    unit__conv_s8 g;
    unit__sparse_out_s8 q;
    unit__zeroact_row_s8 w;
    unit__zeroact_call_s8 call;
    int32_t n, o, oy, nnz_total = 0, inner_origin, group_plane, last_row, rows;
    int16_t inner_first, inner_end;
    int8_t *constants;
    int32_t status = unit__conv2d_s8_begin(params, x, (const UNIT_TABLE int8_t *)sparse, requant, y, scratch, &g);
    if (status != UNIT_OK) {
        return status;
    }
    status = unit__sparse_check_s8(p, &g, sparse, &nnz_total);
    if (status == UNIT_OK) {
        status = unit__zeroact_check_s8(p, &g, sparse, row_starts, nnz_total);
    }
    if (status != UNIT_OK) {
        return status;
    }
    rows = g.group_in * p->kernel_height;
    w.height = (int16_t)p->in_height;
    w.width = (int16_t)p->in_width;
    w.kernel_height = (int16_t)p->kernel_height;
    w.dy = (int16_t)p->dilation_y;
    w.sx = (int16_t)p->stride_x;
    w.pad_left = (int16_t)p->pad_left;
    w.reach = (int16_t)(p->pad_left - (p->kernel_width - 1) * p->dilation_x);
    w.out_width = (int16_t)g.out_width;
    w.group_in = (int16_t)g.group_in;
    w.kernel_rows = (int16_t)rows;
    w.piece = (unit__zeroact_piece_s8 *)(void *)(scratch + g.out_width);
    w.span = (int16_t *)(void *)(w.piece + g.out_width);
    w.interval = w.span + 2 * p->in_channels * p->in_height;
    w.column = w.interval + 2 * rows;
    w.cover = (uint8_t *)(void *)(w.column + g.out_width);
    constants = (int8_t *)(w.cover + g.out_width + 1);
    group_plane = g.group_in * g.plane;
    q.act_min = (int8_t)requant->act_min;
    q.act_max = (int8_t)requant->act_max;
    for (o = 0; o < p->out_channels; o++) { /* a field of zeros: the requantized bias */
        constants[o] = unit__requantize_clamp_s8(unit__bias_s8(requant, o), UNIT_READ_S32(requant->multiplier + o),
                                                 UNIT_READ_S8(requant->shift + o), q.act_min, q.act_max);
    }
    /* output columns whose whole kernel row lies inside the input: [inner_first, inner_end) */
    {
        int32_t first = unit__ceil_div(p->pad_left, p->stride_x);
        int32_t stop = unit__floor_div(p->in_width - 1 + p->pad_left - (p->kernel_width - 1) * p->dilation_x,
                                       p->stride_x) + 1;
        first = first > g.out_width ? g.out_width : first;
        stop = stop > g.out_width ? g.out_width : stop;
        stop = stop < first ? first : stop;
        inner_first = (int16_t)first;
        inner_end = (int16_t)stop;
        inner_origin = first * p->stride_x - p->pad_left;
    }
    last_row = (p->kernel_height - 1) * p->dilation_y;
    call.p = p;
    call.sparse = sparse;
    for (n = 0; n < p->batch; n++) {
        const int8_t *x_sample = x + (ptrdiff_t)n * p->in_channels * g.plane;
        int8_t *y_sample = y + (ptrdiff_t)n * p->out_channels * g.positions;
        {
            int32_t c;
            for (c = 0; c < p->in_channels; c++) {
                unit__zeroact_spans_s8(x_sample + (ptrdiff_t)c * g.plane, w.height, w.width,
                                       w.span + 2 * c * p->in_height);
            }
        }
        for (oy = 0; oy < g.out_height; oy++) {
            const int32_t first_y = oy * p->stride_y - p->pad_top;
            const int rows_inside = first_y >= 0 && first_y + last_row < p->in_height;
            int32_t group;
            call.row_y = first_y * p->in_width;
            call.ky0 = call.ky1 = 0;
            if (sparse->taps != 0) {
                unit__sparse_inside_s8(first_y, p->kernel_height, p->in_height, p->dilation_y, &call.ky0, &call.ky1);
            }
            w.run_first = rows_inside ? inner_first : w.out_width;
            w.run_end = rows_inside ? inner_end : w.out_width;
            for (group = 0; group < p->groups; group++) {
                const UNIT_TABLE int16_t *starts = (const UNIT_TABLE int16_t *)row_starts +
                                                    (ptrdiff_t)group * g.group_out * rows;
                int8_t *y_row = y_sample + (ptrdiff_t)group * g.group_out * g.positions + (ptrdiff_t)oy * g.out_width;
                const int16_t count = unit__zeroact_pieces_s8(&w, w.span + 2 * group * g.group_in * p->in_height,
                                                              (int16_t)first_y);
                call.x_group = x_sample + (ptrdiff_t)group * group_plane;
                call.x_runs = call.x_group + call.row_y + inner_origin - (ptrdiff_t)inner_first * p->stride_x;
                for (o = group * g.group_out; o < (group + 1) * g.group_out;
                     o++, starts += rows, y_row += g.positions) {
                    q.bias = unit__bias_s8(requant, o);
                    q.multiplier = UNIT_READ_S32(requant->multiplier + o);
                    q.shift = UNIT_READ_S8(requant->shift + o);
#if UNIT__DOT_ASM
                    q.ready = 0; /* the output stage's constants, computed by the row's first store */
#endif
                    unit__zeroact_channel_row_s8(&call, &w, count, starts, &q, constants[o], y_row, scratch);
                }
            }
        }
    }
#if UNIT_S8_COUNTS
    if (counts != 0) {
        unit__sparse_counts_s8(counts, p, &g, nnz_total, unit__zeroact_count_s8(p, &g, x, sparse));
    }
#else
    (void)counts;
#endif
    return UNIT_OK;
}
