/* SPDX-License-Identifier: MIT */
/* unit_conv2d_f32.c -- UnIT 2-D convolution (see unit_kernels.h; design in docs/kernels.md).
 *
 * Per sample and input channel c, threshold-independent bookkeeping first:
 *   1. count the nonzero activations and their min/max |x|;
 *   2. count, with a strided prefix-sum table, the nonzero activations under every kernel tap:
 *      this gives zero_activation (and the connections with both operands nonzero) exactly.
 * Then one of four paths, chosen per channel by the cost model of unit_internal.h:
 *   - every activation <= the smallest tau of the channel: everything is skipped, nothing to do;
 *   - every nonzero activation > the largest tau: nothing is skipped by the threshold, the dense
 *     direct loop is exact (zeros add nothing) and, with few zeros, the fastest;
 *   - activation-stationary: each listed activation x is broadcast over the "row" of lanes
 *     (kernel column, output channel) it feeds. A row is skipped whole when |x| <= its smallest
 *     tau, added without tests when |x| > its largest tau, and otherwise added through a
 *     branch-free mask |x| > tau[lane] (integer compare of float bits) that also counts. Lanes
 *     are contiguous in the HWC accumulator when stride_x == dilation_x == 1; otherwise every
 *     kernel tap is its own run of out_channels/groups lanes;
 *   - weight-stationary: per weight, skipped whole, added without tests, or a masked
 *     multiply-add along each output row (see unit__conv2d_channel_direct). */
#include "unit_internal.h"

/* Nonzero activations on the lattice rows {a, a+sy, .., b} x columns {c, c+sx, .., d}. */
static int64_t unit__lattice_sum(const int32_t *lattice, int32_t width, int32_t sy, int32_t sx, int32_t a,
                                 int32_t b, int32_t c, int32_t d) {
    int64_t sum = lattice[b * width + d];
    if (a - sy >= 0) {
        sum -= lattice[(a - sy) * width + d];
    }
    if (c - sx >= 0) {
        sum -= lattice[b * width + c - sx];
    }
    if (a - sy >= 0 && c - sx >= 0) {
        sum += lattice[(a - sy) * width + c - sx];
    }
    return sum;
}

/* Valid (kernel index, output index) pairs of every input position along one axis. */
static void unit__axis_taps(int32_t size, int32_t out_size, int32_t kernel, int32_t stride, int32_t dilation,
                            int32_t pad, int32_t *taps, int32_t *k_list, int32_t *o_list) {
    int32_t i, k;
    for (i = 0; i < size; i++) {
        int32_t n = 0;
        for (k = 0; k < kernel; k++) {
            int32_t a = i + pad - k * dilation;
            if (a >= 0 && a % stride == 0 && a / stride < out_size) {
                k_list[i * kernel + n] = k;
                o_list[i * kernel + n] = a / stride;
                n++;
            }
        }
        taps[i] = n;
    }
}

/* Scratch arrays of one call. */
typedef struct {
    float *accumulator;
    float *values;
    int32_t *columns;
    int32_t *row_start;
    int32_t *lattice;
    int32_t *row_taps, *row_ky, *row_oy;
    int32_t *col_taps, *col_kx, *col_ox;
    int32_t *tap_under;
} unit__conv2d_work;

/* Number of nonzero activations of a channel, the min (over nonzero) / max of their |x| bits, and
 * in *above the number with |x| bits > min_tau_bits (those the activation-stationary path lists). */
static int32_t unit__channel_stats(const float *x_channel, int32_t pixels, int32_t min_tau_bits, int32_t *min_bits,
                                   int32_t *max_bits, int32_t *above) {
    int32_t count = 0, listed = 0, low = (int32_t)UNIT__INF_BITS, high = 0, i;
    for (i = 0; i < pixels; i++) {
        int32_t bits = (int32_t)(unit__f32_bits(x_channel[i]) & UNIT__ABS_MASK);
        int32_t candidate = bits != 0 ? bits : (int32_t)UNIT__INF_BITS;
        count += bits != 0;
        listed += bits > min_tau_bits;
        low = candidate < low ? candidate : low;
        high = bits > high ? bits : high;
    }
    *min_bits = low;
    *max_bits = high;
    *above = listed;
    return count;
}

/* Activations of a channel with |x| bits > min_tau_bits (the others keep no connection; zeros
 * included) as (value, column) lists per input row, without branches. Within a row, columns are
 * visited in kernel_width interleaved passes (ix = r, r+KW, ...), so that consecutive
 * activations of the sparse path update disjoint accumulator ranges. */
static void unit__compact_channel(const unit_conv2d_params *p, const float *x_channel, int32_t min_tau_bits,
                                  const unit__conv2d_work *work) {
    int32_t count = 0, iy, ix, phase;
    for (iy = 0; iy < p->in_height; iy++) {
        const float *x_row = x_channel + iy * p->in_width;
        work->row_start[iy] = count;
        for (phase = 0; phase < p->kernel_width && phase < p->in_width; phase++) {
            for (ix = phase; ix < p->in_width; ix += p->kernel_width) {
                float xv = x_row[ix];
                work->values[count] = xv;
                work->columns[count] = ix;
                count += (int32_t)(unit__f32_bits(xv) & UNIT__ABS_MASK) > min_tau_bits;
            }
        }
    }
    work->row_start[p->in_height] = count;
}

/* For input channel c holding `count` nonzero activations: adds to *zero_activation the
 * connections (nonzero weight, zero or padded activation) and returns the connections with both
 * operands nonzero; writes the nonzero activations under each tap to tap_under[ky*KW + kx]. Counts
 * per kernel tap with a strided prefix-sum table (built in `lattice`) unless the channel is all
 * zero or all nonzero. */
static int64_t unit__count_channel(const unit_conv2d_params *p, int32_t out_height, int32_t out_width,
                                   const unit_conv2d_plan_f32 *plan, int32_t c, const float *x_channel, int32_t count,
                                   int32_t *lattice, int32_t *tap_under, int64_t *zero_activation) {
    const int32_t kh = p->kernel_height, kw = p->kernel_width, width = p->in_width;
    const int32_t positions = out_height * out_width;
    const int32_t full = count == p->in_height * width;
    int64_t both_nonzero = 0;
    int32_t iy, ix, ky, kx;
    if (count > 0 && !full) {
        for (iy = 0; iy < p->in_height; iy++) {
            int32_t *row = lattice + iy * width;
            const float *x_row = x_channel + iy * width;
            if (p->stride_x == 1) { /* running sum in a register */
                int32_t running = 0;
                for (ix = 0; ix < width; ix++) {
                    running += (unit__f32_bits(x_row[ix]) & UNIT__ABS_MASK) != 0;
                    row[ix] = running;
                }
            } else {
                for (ix = 0; ix < width; ix++) {
                    row[ix] = (unit__f32_bits(x_row[ix]) & UNIT__ABS_MASK) != 0;
                }
                for (ix = p->stride_x; ix < width; ix++) {
                    row[ix] += row[ix - p->stride_x];
                }
            }
            if (iy >= p->stride_y) {
                const int32_t *above = row - p->stride_y * width;
                for (ix = 0; ix < width; ix++) {
                    row[ix] += above[ix];
                }
            }
        }
    }
    for (ky = 0; ky < kh; ky++) {
        int32_t oy_lo, oy_hi;
        unit__tap_range(ky, p->in_height, out_height, p->stride_y, p->dilation_y, p->pad_top, &oy_lo, &oy_hi);
        for (kx = 0; kx < kw; kx++) {
            int32_t ox_lo, ox_hi;
            int64_t nonzero_w = plan->tap_stats[((c * kh + ky) * kw + kw - 1 - kx) * 3 + 2];
            int64_t under = 0; /* nonzero activations under the tap */
            tap_under[ky * kw + kx] = 0;
            if (nonzero_w == 0) {
                continue;
            }
            unit__tap_range(kx, width, out_width, p->stride_x, p->dilation_x, p->pad_left, &ox_lo, &ox_hi);
            if (count > 0 && oy_lo <= oy_hi && ox_lo <= ox_hi) {
                if (full) {
                    under = (int64_t)(oy_hi - oy_lo + 1) * (ox_hi - ox_lo + 1);
                } else {
                    under = unit__lattice_sum(lattice, width, p->stride_y, p->stride_x,
                                              oy_lo * p->stride_y + ky * p->dilation_y - p->pad_top,
                                              oy_hi * p->stride_y + ky * p->dilation_y - p->pad_top,
                                              ox_lo * p->stride_x + kx * p->dilation_x - p->pad_left,
                                              ox_hi * p->stride_x + kx * p->dilation_x - p->pad_left);
                }
            }
            tap_under[ky * kw + kx] = (int32_t)under;
            both_nonzero += nonzero_w * under;
            *zero_activation += nonzero_w * (positions - under);
        }
    }
    return both_nonzero;
}

/* Number of weights of input channel c the weight-stationary path runs: nonzero, with a quotient
 * below the channel's largest |x| (zero weights and padding lanes hold tau = +inf). */
static int32_t unit__active_weights(const unit_conv2d_plan_f32 *plan, int32_t c, int32_t kh, int32_t max_bits) {
    const int32_t *tau = plan->lane_tau + c * kh * plan->row_lanes;
    int32_t active = 0, i;
    for (i = 0; i < kh * plan->row_lanes; i++) {
        active += tau[i] < max_bits;
    }
    return active;
}

/* Weight-stationary path of input channel c (the paper's formulation, vectorised along output
 * rows). Per kernel tap, the weights of the group's output channels that can keep anything
 * (quotient below the channel's largest |x|; zero weights have tau = +inf) are taken in blocks
 * of up to 4: one pass along each output row loads every activation once and runs the masked
 * multiply-add |x| > tau for every weight of the block into its own output plane, counting the
 * kept lanes (see unit__axpy4_keep_above). Returns executed. */
static int64_t unit__conv2d_channel_direct(const unit_conv2d_params *p, int32_t out_height, int32_t out_width,
                                           int32_t c, int32_t group_out, const float *x_channel, const float *weight,
                                           int32_t weight_step, const unit_conv2d_plan_f32 *plan, int32_t max_bits,
                                           float *y_planes) {
    const int32_t kh = p->kernel_height, kw = p->kernel_width, sx = p->stride_x;
    const int32_t positions = out_height * out_width;
    int64_t executed = 0;
    int32_t ky, kx, oy, o, m, k;
    for (ky = 0; ky < kh; ky++) {
        int32_t oy_lo, oy_hi;
        unit__tap_range(ky, p->in_height, out_height, p->stride_y, p->dilation_y, p->pad_top, &oy_lo, &oy_hi);
        for (kx = 0; kx < kw; kx++) {
            const int32_t *tap_tau = plan->lane_tau + (c * kh + ky) * plan->row_lanes + (kw - 1 - kx) * group_out;
            int32_t ox_lo, ox_hi, lanes;
            unit__tap_range(kx, p->in_width, out_width, sx, p->dilation_x, p->pad_left, &ox_lo, &ox_hi);
            if (ox_lo > ox_hi || oy_lo > oy_hi) {
                continue;
            }
            lanes = ox_hi - ox_lo + 1;
            o = 0;
            while (o < group_out) {
                float w[4];
                int32_t tau[4];
                float *plane[4];
                for (m = 0; o < group_out && m < 4; o++) {
                    if (tap_tau[o] >= max_bits) {
                        continue; /* nothing kept */
                    }
                    w[m] = weight[o * weight_step + ky * kw + kx];
                    tau[m] = tap_tau[o];
                    plane[m] = y_planes + o * positions + ox_lo;
                    m++;
                }
                for (oy = oy_lo; oy <= oy_hi && m > 0; oy++) {
                    const int32_t iy = oy * p->stride_y + ky * p->dilation_y - p->pad_top;
                    const float *x_row = x_channel + iy * p->in_width + ox_lo * sx + kx * p->dilation_x - p->pad_left;
                    const int32_t row = oy * out_width;
                    k = 0;
                    if (m == 4) {
                        executed += sx == 1 ? unit__axpy4_keep_above(plane[0] + row, plane[1] + row, plane[2] + row,
                                                                      plane[3] + row, x_row, 1, w, tau, lanes)
                                            : unit__axpy4_keep_above(plane[0] + row, plane[1] + row, plane[2] + row,
                                                                      plane[3] + row, x_row, sx, w, tau, lanes);
                        k = 4;
                    } else if (m >= 2) {
                        executed += sx == 1 ? unit__axpy2_keep_above(plane[0] + row, plane[1] + row, x_row, 1, w, tau,
                                                                      lanes)
                                            : unit__axpy2_keep_above(plane[0] + row, plane[1] + row, x_row, sx, w, tau,
                                                                      lanes);
                        k = 2;
                    }
                    if (k < m) { /* the third of three, or a single weight */
                        executed += unit__axpy_strided_keep_above(plane[k] + row, x_row, sx, w[k], tau[k], lanes);
                    }
                }
            }
        }
    }
    return executed;
}

/* Activation-stationary path of input channel c into the HWC accumulator; returns executed. */
static int64_t unit__conv2d_channel_sparse(const unit_conv2d_params *p, int32_t out_width, int32_t group_out,
                                           int32_t c, const unit_conv2d_plan_f32 *plan, const unit__conv2d_work *work) {
    const int32_t kh = p->kernel_height, kw = p->kernel_width;
    const int32_t row_lanes = plan->row_lanes;
    const int32_t padded_rows = row_lanes % 4 == 0 && row_lanes - kw * group_out < 4;
    const int32_t contiguous = p->stride_x == 1 && p->dilation_x == 1;
    int64_t executed = 0;
    int32_t iy, e, j, q;
    for (iy = 0; iy < p->in_height; iy++) {
        const int32_t taps_y = work->row_taps[iy];
        const int32_t *ky_list = work->row_ky + iy * kh;
        const int32_t *oy_list = work->row_oy + iy * kh;
        if (taps_y == 0) {
            continue;
        }
        for (e = work->row_start[iy]; e < work->row_start[iy + 1]; e++) {
            const float xv = work->values[e];
            const int32_t ix = work->columns[e];
            const int32_t abs_bits = (int32_t)(unit__f32_bits(xv) & UNIT__ABS_MASK);
            const int32_t taps_x = work->col_taps[ix];
            const int32_t *kx_list = work->col_kx + ix * kw;
            const int32_t *ox_list = work->col_ox + ix * kw;
            if (taps_x == 0) {
                continue;
            }
            if (contiguous) {
                /* Lanes of kernel columns kx_lo..kx_hi are contiguous, in the accumulator too. */
                const int32_t kx_lo = kx_list[0], kx_hi = kx_list[taps_x - 1];
                const int32_t lane_lo = (kw - 1 - kx_hi) * group_out;
                const int32_t lanes = (kx_hi - kx_lo + 1) * group_out;
                const int32_t ox_first = ox_list[taps_x - 1]; /* output column of kx_hi */
                for (j = 0; j < taps_y; j++) {
                    const int32_t row = c * kh + ky_list[j];
                    const int32_t *stats = plan->row_stats + row * (kw + 3);
                    float *acc;
                    if (abs_bits <= stats[0]) {
                        continue;
                    }
                    acc = work->accumulator + (oy_list[j] * out_width + ox_first) * group_out;
                    if (abs_bits > stats[1]) {
                        if (padded_rows && taps_x == kw) { /* whole row incl. padding lanes (zeros) */
                            unit__axpy_blocks4(acc, plan->lane_weight + row * row_lanes, xv, row_lanes);
                        } else {
                            unit__axpy(acc, plan->lane_weight + row * row_lanes + lane_lo, xv, lanes);
                        }
                        executed += stats[2 + kw - kx_lo] - stats[2 + kw - 1 - kx_hi];
                    } else if (padded_rows && taps_x == kw) {
                        /* Whole row incl. its padding lanes (tau = +inf, never kept): a multiple of 4
                         * lanes runs without the remainder loop (measured 3-6% faster at 80 %). */
                        executed += unit__axpy_keep_above_tau(acc, plan->lane_weight + row * row_lanes,
                                                              plan->lane_tau + row * row_lanes, xv, abs_bits,
                                                              row_lanes);
                    } else {
                        executed += unit__axpy_keep_above_tau(acc, plan->lane_weight + row * row_lanes + lane_lo,
                                                              plan->lane_tau + row * row_lanes + lane_lo, xv,
                                                              abs_bits, lanes);
                    }
                }
            } else {
                for (j = 0; j < taps_y; j++) {
                    const int32_t row = c * kh + ky_list[j];
                    float *acc_row = work->accumulator + oy_list[j] * out_width * group_out;
                    if (abs_bits <= plan->row_stats[row * (kw + 3)]) {
                        continue;
                    }
                    for (q = 0; q < taps_x; q++) {
                        const int32_t tap = row * kw + kw - 1 - kx_list[q];
                        const int32_t lane = row * row_lanes + (kw - 1 - kx_list[q]) * group_out;
                        const int32_t *stats = plan->tap_stats + tap * 3;
                        float *acc = acc_row + ox_list[q] * group_out;
                        if (abs_bits <= stats[0]) {
                            continue;
                        }
                        if (abs_bits > stats[1]) {
                            unit__axpy(acc, plan->lane_weight + lane, xv, group_out);
                            executed += stats[2];
                        } else {
                            executed += unit__axpy_keep_above_tau(acc, plan->lane_weight + lane, plan->lane_tau + lane,
                                                                  xv, abs_bits, group_out);
                        }
                    }
                }
            }
        }
    }
    return executed;
}

int32_t unit_conv2d_f32(const unit_conv2d_params *params, const unit_conv2d_plan_f32 *plan, const float *x,
                        const float *weight, const float *bias, float *y, void *scratch, int32_t scratch_bytes,
                        unit_counts *counts) {
    const unit_conv2d_params *p = params;
    int32_t out_height, out_width, positions, pixels, group_in, group_out, kh, kw;
    int32_t n, g, cl, o, i;
    int64_t nonzero_weights = 0, zero_activation = 0, executed = 0, dense, weights_total;
    unit__conv2d_scratch layout;
    unit__conv2d_work work;
    char *base = (char *)scratch;
    if (unit__conv2d_geometry(p, &out_height, &out_width) != UNIT_OK || plan == 0 || counts == 0 ||
        plan->row_lanes < p->kernel_width * (p->out_channels / p->groups)) {
        return UNIT_ERR_ARGUMENT;
    }
    unit__conv2d_scratch_layout(p, out_height, out_width, &layout);
    if (scratch == 0 || (int64_t)scratch_bytes < layout.total) {
        return UNIT_ERR_SCRATCH;
    }
    work.accumulator = (float *)(void *)(base + layout.accumulator);
    work.values = (float *)(void *)(base + layout.values);
    work.columns = (int32_t *)(void *)(base + layout.columns);
    work.row_start = (int32_t *)(void *)(base + layout.row_start);
    work.lattice = (int32_t *)(void *)(base + layout.lattice);
    work.row_taps = (int32_t *)(void *)(base + layout.row_taps);
    work.row_ky = (int32_t *)(void *)(base + layout.row_ky);
    work.row_oy = (int32_t *)(void *)(base + layout.row_oy);
    work.col_taps = (int32_t *)(void *)(base + layout.col_taps);
    work.col_kx = (int32_t *)(void *)(base + layout.col_kx);
    work.col_ox = (int32_t *)(void *)(base + layout.col_ox);
    work.tap_under = (int32_t *)(void *)(base + layout.tap_under);

    kh = p->kernel_height;
    kw = p->kernel_width;
    positions = out_height * out_width;
    pixels = p->in_height * p->in_width;
    group_in = p->in_channels / p->groups;
    group_out = p->out_channels / p->groups;
    unit__axis_taps(p->in_height, out_height, kh, p->stride_y, p->dilation_y, p->pad_top, work.row_taps, work.row_ky,
                    work.row_oy);
    unit__axis_taps(p->in_width, out_width, kw, p->stride_x, p->dilation_x, p->pad_left, work.col_taps, work.col_kx,
                    work.col_ox);
    for (i = 0; i < p->in_channels * kh * kw; i++) {
        nonzero_weights += plan->tap_stats[i * 3 + 2];
    }

    for (n = 0; n < p->batch; n++) {
        for (g = 0; g < p->groups; g++) {
            float *y_group = y + (n * p->out_channels + g * group_out) * positions;
            int32_t accumulator_used = 0;
            for (i = 0; i < group_out * positions; i++) {
                y_group[i] = 0.0f;
            }
            for (cl = 0; cl < group_in; cl++) {
                const int32_t c = g * group_in + cl;
                const float *x_channel = x + (n * p->in_channels + c) * pixels;
                const int32_t *channel_stats = plan->channel_stats + 2 * c;
                const float *w_channel = weight + ((g * group_out) * group_in + cl) * kh * kw;
                int32_t min_bits, max_bits, listed;
                int32_t count = unit__channel_stats(x_channel, pixels, channel_stats[0], &min_bits, &max_bits, &listed);
                int64_t both_nonzero = unit__count_channel(p, out_height, out_width, plan, c, x_channel, count,
                                                           work.lattice, work.tap_under, &zero_activation);
                /* Costs of the three loops over this channel (cost model in unit_internal.h). */
                int64_t rows = (int64_t)group_out * kh * kw * out_height;
                int64_t dense_cost = rows * (out_width + UNIT__ROW_OVERHEAD);
                int64_t sparse_cost = (int64_t)listed * kh * (plan->row_lanes + UNIT__RUN_OVERHEAD);
                int64_t direct_cost = (int64_t)unit__active_weights(plan, c, kh, max_bits) * out_height *
                                      ((int64_t)out_width * UNIT__MASKED_NUM / UNIT__MASKED_DEN + UNIT__BLOCK_OVERHEAD);
                if (count == 0 || max_bits <= channel_stats[0]) {
                    continue; /* every connection is skipped: nothing to compute */
                }
                if (min_bits > channel_stats[1] && dense_cost <= sparse_cost) {
                    /* Nothing skipped by the threshold and too few zeros for the sparse path to pay:
                     * the dense loop multiplies the zeros too, which adds nothing to the sums. */
                    executed += both_nonzero;
                    unit__conv2d_dense_channel(p, out_height, out_width, x_channel, w_channel, group_in * kh * kw,
                                               group_out, y_group);
                    continue;
                }
                if (direct_cost < sparse_cost) {
                    executed += unit__conv2d_channel_direct(p, out_height, out_width, c, group_out, x_channel,
                                                            w_channel, group_in * kh * kw, plan, max_bits, y_group);
                    continue;
                }
                if (!accumulator_used) {
                    for (i = 0; i < positions * group_out + 4; i++) {
                        work.accumulator[i] = 0.0f;
                    }
                    accumulator_used = 1;
                }
                unit__compact_channel(p, x_channel, channel_stats[0], &work);
                executed += unit__conv2d_channel_sparse(p, out_width, group_out, c, plan, &work);
            }

            /* y (NCHW) += accumulator (HWC) + bias. */
            for (o = 0; o < group_out; o++) {
                float *plane = y_group + o * positions;
                float b = bias != 0 ? bias[g * group_out + o] : 0.0f;
                if (accumulator_used) {
                    for (i = 0; i < positions; i++) {
                        plane[i] += work.accumulator[i * group_out + o] + b;
                    }
                } else if (bias != 0) {
                    for (i = 0; i < positions; i++) {
                        plane[i] += b;
                    }
                }
            }
        }
    }

    weights_total = (int64_t)p->out_channels * group_in * kh * kw;
    dense = (int64_t)p->batch * positions * weights_total;
    unit__counts_set(counts, dense, (int64_t)p->batch * positions * (weights_total - nonzero_weights), zero_activation,
                     executed, (int64_t)p->batch * positions * nonzero_weights, 0);
    return UNIT_OK;
}
