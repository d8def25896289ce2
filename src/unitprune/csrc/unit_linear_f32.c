/* SPDX-License-Identifier: MIT */
/* unit_linear_f32.c -- UnIT linear layer (see unit_kernels.h; design in docs/kernels.md).
 *
 * The plan holds, per weight, the activation cutoff of unit_kernels.h ("Activation cutoffs"),
 * so "keep W[j][i]*x[i]" is the integer compare bits(|x[i]|) > cutoff. Per row:
 *  1-2. one branch-free pass lists the inputs that keep at least one connection (bits(|x[i]|) >
 *     the column's smallest cutoff; zeros drop out too, their bits are 0) and sums the
 *     counters' per-column terms (nonzero inputs, connections of nonzero inputs);
 *  3. the listed inputs are added to an accumulator of `lanes` floats:
 *     - narrow layers (lanes <= 16, a multiple of 4; e.g. the 10/12-class output layers, any
 *       number of groups): one branch-free masked multiply-add per input over whole SSE
 *       vectors against the lane cutoffs (lanes fixed at compile time, so the accumulator and
 *       the kept counts stay in registers); any per-input decision would cost more than its
 *       few lanes;
 *     - otherwise per threshold group (segment) with the segment's three precomputed cutoffs:
 *         bits(|x|) <= smallest   ->  nothing kept,
 *         bits(|x|) >  largest    ->  plain axpy over the group's lanes (zero weights add 0),
 *         bits(|x|) <= cut value  ->  a short binary search gives the kept prefix of the
 *                                      sorted segment, scatter-added,
 *         otherwise               ->  branch-free masked axpy comparing |w| with the quotient
 *                                      approx(T, |x|) (the only quotient computed here), which
 *                                      also counts;
 *  4. the accumulator plus bias is written to y.
 * Contributions to y[j] arrive in increasing i on every wide path, so results do not depend on
 * which of them ran; the SSE2 narrow loop sums even and odd listed inputs separately (a
 * different, equally exact summation order; a narrow layer always takes that loop). Counters are arithmetic (docs/semantics.md) except `executed`, which comes
 * from the kept-prefix lengths and the masked loops' lane counts. */
#include "unit_internal.h"

#if defined(UNIT_SKIP_BRANCH) && UNIT_SKIP_BRANCH
#define UNIT__NARROW 0 /* MCUs: always decide per segment, a skipped multiply is worth a branch */
#else
#define UNIT__NARROW 16
#endif

/* SSE2 hosts run the narrow loop written with intrinsics (define UNIT_NO_INTRINSICS for the
 * plain C loop, which gives the same results): the auto-vectoriser spills its lane accumulators
 * and scalarises its kept counts (measured 2.4x slower). */
#if defined(__SSE2__) && !defined(UNIT_NO_INTRINSICS) && !(defined(UNIT_SKIP_BRANCH) && UNIT_SKIP_BRANCH)
#define UNIT__SSE2 1
#include <emmintrin.h>
#else
#define UNIT__SSE2 0
#endif

#if UNIT__SSE2
/* For each 4-bit mask: the positions of its set bits, packed to the front (then 0s), and as a
 * fifth entry their number. Used to append 4 listed inputs with one vector store. */
static const int32_t unit__packed_positions[16][5] = {
    {0, 0, 0, 0, 0}, {0, 0, 0, 0, 1}, {1, 0, 0, 0, 1}, {0, 1, 0, 0, 2}, {2, 0, 0, 0, 1}, {0, 2, 0, 0, 2},
    {1, 2, 0, 0, 2}, {0, 1, 2, 0, 3}, {3, 0, 0, 0, 1}, {0, 3, 0, 0, 2}, {1, 3, 0, 0, 2}, {0, 1, 3, 0, 3},
    {2, 3, 0, 0, 2}, {0, 2, 3, 0, 3}, {1, 2, 3, 0, 3}, {0, 1, 2, 3, 4}};
#endif

/* Number of leading entries of cutoff[0..n) (ascending, n >= 1) below abs_bits. */
static int32_t unit__count_below(const int32_t *cutoff, int32_t n, int32_t abs_bits) {
    int32_t base = 0;
    if (cutoff[n - 1] < abs_bits) {
        return n;
    }
    while (n > 1) { /* branch-free lower bound: entries before `base` are kept */
        int32_t half = n / 2;
        base += cutoff[base + half] < abs_bits ? half : 0;
        n -= half;
    }
    return base + (cutoff[base] < abs_bits);
}

/* Adds the kept connections of input column i (value xv, |xv| bits abs_bits) to acc, segment by
 * segment; returns the number of kept connections. */
static int32_t unit__linear_column(const unit_linear_plan_f32 *plan, int32_t i, float xv, int32_t abs_bits,
                                   float *acc) {
    const int32_t lanes = plan->lanes;
    const float *column = plan->lane_weight + i * lanes;
    int32_t executed = 0;
    int32_t g;
    for (g = 0; g < plan->num_groups; g++) {
        const int32_t segment = i * plan->num_groups + g;
        const int32_t begin = plan->segment_start[segment];
        const int32_t length = plan->segment_start[segment + 1] - begin;
        const int32_t first = g * plan->group_size;
        /* the last group also covers the padding lanes (weight 0, cutoff +inf) */
        const int32_t width = g == plan->num_groups - 1 ? lanes - first : plan->group_size;
        const int32_t *stats = plan->segment_stats + 3 * segment;
        if (abs_bits <= stats[0]) {
            continue; /* nothing kept (also for an empty segment: its smallest cutoff is +inf) */
        }
        if (abs_bits > stats[1]) { /* every nonzero weight kept */
            unit__axpy(acc + first, column + first, xv, width);
            executed += length;
        } else if (abs_bits <= stats[2]) { /* at most `cut` kept: scatter them */
            const int32_t outputs_in_group = plan->out_features - first < plan->group_size
                                                 ? plan->out_features - first
                                                 : plan->group_size;
            const int32_t cut = outputs_in_group / plan->scatter_cost;
            const float *values = plan->sorted_weight + begin;
            const int32_t *outputs = plan->sorted_output + begin;
            const int32_t kept = unit__count_below(plan->sorted_cutoff + begin, cut < length ? cut + 1 : length,
                                                   abs_bits);
            int32_t k;
            for (k = 0; k < kept; k++) {
                acc[outputs[k]] += values[k] * xv;
            }
            executed += kept;
        } else {
            /* Many lanes, partly kept. Comparing |w| with the quotient reads only the weights,
             * the cutoffs would double the memory traffic (measured on 1024x1024, every input
             * partly kept: 1.72x the dense time with the quotient, 1.84x with the cutoffs); one
             * quotient is cheap next to a column of more than 16 lanes. */
            const int32_t t_bits = (int32_t)unit__approx_bits(plan->method, plan->thresholds[g], (uint32_t)abs_bits,
                                                              plan->shift_start);
            executed += unit__axpy_keep_weight_above(acc + first, column + first, xv, t_bits, width);
        }
    }
    return executed;
}

#if UNIT__NARROW > 0 && UNIT__SSE2
/* SSE2 version of the loop below, with two sets of accumulators (even / odd listed inputs,
 * added at the end): one set makes every input wait for the previous input's additions (the
 * addition latency, not the lanes, was the limit). */
static inline void unit__narrow_input(const unit_linear_plan_f32 *plan, const float *x_row, int32_t i, __m128 *sum,
                                      __m128i *kept, const int32_t lanes) {
    const __m128 xv = _mm_set1_ps(x_row[i]);
    const __m128i abs_bits = _mm_set1_epi32((int32_t)(unit__f32_bits(x_row[i]) & UNIT__ABS_MASK));
    const float *w = plan->lane_weight + i * lanes;
    const int32_t *cutoff = plan->lane_cutoff + i * lanes;
    int32_t b;
    for (b = 0; b < lanes / 4; b++) {
        __m128i keep = _mm_cmpgt_epi32(abs_bits, _mm_loadu_si128((const __m128i *)(const void *)(cutoff + 4 * b)));
        __m128 product = _mm_mul_ps(_mm_loadu_ps(w + 4 * b), xv);
        sum[b] = _mm_add_ps(sum[b], _mm_and_ps(product, _mm_castsi128_ps(keep)));
        kept[b] = _mm_sub_epi32(kept[b], keep);
    }
}

static inline int32_t unit__linear_narrow(const unit_linear_plan_f32 *plan, const float *x_row, const int32_t *listed,
                                          int32_t count, float *acc, const int32_t lanes) {
    __m128 even[UNIT__NARROW / 4], odd[UNIT__NARROW / 4];
    __m128i kept[UNIT__NARROW / 4];
    int32_t counts[4];
    int32_t e, b, total = 0;
    for (b = 0; b < lanes / 4; b++) {
        even[b] = _mm_setzero_ps();
        odd[b] = _mm_setzero_ps();
        kept[b] = _mm_setzero_si128();
    }
    for (e = 0; e + 1 < count; e += 2) {
        unit__narrow_input(plan, x_row, listed[e], even, kept, lanes);
        unit__narrow_input(plan, x_row, listed[e + 1], odd, kept, lanes);
    }
    if (e < count) {
        unit__narrow_input(plan, x_row, listed[e], even, kept, lanes);
    }
    for (b = 0; b < lanes / 4; b++) {
        _mm_storeu_ps(acc + 4 * b, _mm_add_ps(even[b], odd[b]));
        _mm_storeu_si128((__m128i *)(void *)counts, kept[b]);
        total += counts[0] + counts[1] + counts[2] + counts[3];
    }
    return total;
}
#elif UNIT__NARROW > 0
/* Narrow layers: acc[l] = sum of W[l][i] * x[i] over the listed inputs i and lanes l with
 * bits(|x[i]|) > cutoff[i][l], branch-free; returns the number of kept connections. `lanes` is
 * a multiple of 4 in [4, UNIT__NARROW] and a compile-time constant at every call site (the
 * function is inlined), so sum/kept can live in registers for the whole row. */
static inline int32_t unit__linear_narrow(const unit_linear_plan_f32 *plan, const float *x_row, const int32_t *listed,
                                          int32_t count, float *acc, const int32_t lanes) {
    float sum[UNIT__NARROW];
    int32_t kept[UNIT__NARROW];
    int32_t e, l, total = 0;
    for (l = 0; l < lanes; l++) {
        sum[l] = 0.0f;
        kept[l] = 0;
    }
    for (e = 0; e < count; e++) {
        const int32_t i = listed[e];
        const float xv = x_row[i];
        const int32_t abs_bits = (int32_t)(unit__f32_bits(xv) & UNIT__ABS_MASK);
        const float *w = plan->lane_weight + i * lanes;
        const int32_t *cutoff = plan->lane_cutoff + i * lanes;
        for (l = 0; l < lanes; l++) {
            int32_t keep = abs_bits > cutoff[l];
            uint32_t bits = unit__f32_bits(w[l] * xv) & (uint32_t)(-keep);
            sum[l] += unit__bits_f32(bits);
            kept[l] += keep;
        }
    }
    for (l = 0; l < lanes; l++) {
        acc[l] = sum[l];
        total += kept[l];
    }
    return total;
}
#endif

int32_t unit_linear_f32(const unit_linear_plan_f32 *plan, const float *x, int32_t rows, const float *bias,
                        const float *thresholds, int32_t method, int32_t shift_start, float *y, void *scratch,
                        int32_t scratch_bytes, unit_counts *counts) {
    int32_t in, out, lanes, r, i, j, e, g;
    int32_t *listed;
    float *acc;
    int64_t nonzero_inputs = 0, zero_activation = 0, executed = 0, dense;
    if (plan == 0 || rows < 0 || !unit__method_valid(method) || counts == 0) {
        return UNIT_ERR_ARGUMENT;
    }
    in = plan->in_features;
    out = plan->out_features;
    lanes = plan->lanes;
    if (in < 1 || out < 1 || plan->group_size < 1 || plan->group_size > out ||
        plan->num_groups != (out + plan->group_size - 1) / plan->group_size || plan->scatter_cost < 1 ||
        lanes < out || lanes > out + 3 || method != plan->method || shift_start != plan->shift_start) {
        return UNIT_ERR_ARGUMENT;
    }
    for (g = 0; g < plan->num_groups; g++) { /* the cutoffs encode these thresholds */
        if (unit__f32_bits(thresholds[g]) != unit__f32_bits(plan->thresholds[g])) {
            return UNIT_ERR_ARGUMENT;
        }
    }
    if (scratch == 0 || scratch_bytes < unit_linear_f32_scratch_size(plan)) {
        return UNIT_ERR_SCRATCH;
    }
    listed = (int32_t *)scratch;
    acc = (float *)((unsigned char *)scratch + unit__align16(4 * (int64_t)in));
    for (r = 0; r < rows; r++) {
        const float *x_row = x + r * in;
        float *y_row = y + r * out;
        int32_t count = 0, nonzero = 0, nonzero_connections = 0;
        i = 0;
#if UNIT__SSE2
        { /* 16 inputs at a time, compared 4 per instruction; a block with nothing to list costs
           * one branch (predictable when most blocks are empty, or most are not). Each group of
           * 4 is appended with one vector store of i + the packed positions of its mask (it
           * may write up to 3 entries past the list's end, which stay below i + 4 <= in). */
            const __m128i abs_mask = _mm_set1_epi32((int32_t)UNIT__ABS_MASK);
            __m128i zeros = _mm_setzero_si128(), connections = _mm_setzero_si128();
            int32_t sums[4];
            for (; i + 16 <= in; i += 16) {
                int32_t mask = 0, k;
                for (k = 0; k < 16; k += 4) {
                    __m128i bits = _mm_and_si128(_mm_loadu_si128((const __m128i *)(const void *)(x_row + i + k)),
                                                 abs_mask);
                    __m128i cut = _mm_loadu_si128((const __m128i *)(const void *)(plan->column_cutoff + i + k));
                    __m128i is_zero = _mm_cmpeq_epi32(bits, _mm_setzero_si128());
                    __m128i column = _mm_loadu_si128((const __m128i *)(const void *)(plan->column_nonzero + i + k));
                    zeros = _mm_sub_epi32(zeros, is_zero);
                    connections = _mm_add_epi32(connections, _mm_andnot_si128(is_zero, column));
                    mask |= _mm_movemask_ps(_mm_castsi128_ps(_mm_cmpgt_epi32(bits, cut))) << k;
                }
                if (mask != 0) {
                    for (k = 0; k < 16; k += 4) {
                        const int32_t nibble = (mask >> k) & 15;
                        __m128i positions = _mm_loadu_si128((const __m128i *)(const void *)unit__packed_positions[nibble]);
                        _mm_storeu_si128((__m128i *)(void *)(listed + count),
                                         _mm_add_epi32(positions, _mm_set1_epi32(i + k)));
                        count += unit__packed_positions[nibble][4];
                    }
                }
            }
            _mm_storeu_si128((__m128i *)(void *)sums, zeros);
            nonzero = i - (sums[0] + sums[1] + sums[2] + sums[3]);
            _mm_storeu_si128((__m128i *)(void *)sums, connections);
            nonzero_connections = sums[0] + sums[1] + sums[2] + sums[3];
        }
#endif
        for (; i < in; i++) { /* branch-free list of the inputs that keep something, and the counter terms */
            int32_t abs_bits = (int32_t)(unit__f32_bits(x_row[i]) & UNIT__ABS_MASK);
            int32_t is_nonzero = abs_bits != 0;
            listed[count] = i;
            count += abs_bits > plan->column_cutoff[i];
            nonzero += is_nonzero;
            nonzero_connections += plan->column_nonzero[i] & -is_nonzero;
        }
        zero_activation += plan->nonzero_weights - nonzero_connections;
        nonzero_inputs += nonzero;
#if UNIT__NARROW > 0
        if (lanes <= UNIT__NARROW && (lanes & 3) == 0) {
            switch (lanes) { /* constant lane counts: each call is specialised */
            case 4:
                executed += unit__linear_narrow(plan, x_row, listed, count, acc, 4);
                break;
            case 8:
                executed += unit__linear_narrow(plan, x_row, listed, count, acc, 8);
                break;
            case 12:
                executed += unit__linear_narrow(plan, x_row, listed, count, acc, 12);
                break;
            default:
                executed += unit__linear_narrow(plan, x_row, listed, count, acc, 16);
                break;
            }
        } else
#endif
        {
            for (j = 0; j < lanes; j++) {
                acc[j] = 0.0f;
            }
            for (e = 0; e < count; e++) {
                i = listed[e];
                executed += unit__linear_column(plan, i, x_row[i],
                                                (int32_t)(unit__f32_bits(x_row[i]) & UNIT__ABS_MASK), acc);
            }
        }
        for (j = 0; j < out; j++) {
            y_row[j] = bias != 0 ? acc[j] + bias[j] : acc[j];
        }
    }
    dense = (int64_t)rows * in * out;
    unit__counts_set(counts, dense, (int64_t)rows * ((int64_t)in * out - plan->nonzero_weights), zero_activation,
                     executed, (int64_t)rows * in + nonzero_inputs * out, nonzero_inputs * plan->num_groups);
    return UNIT_OK;
}
