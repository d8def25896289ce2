/* unit_linear_f32.c -- UnIT linear layer (see unit_kernels.h; design in docs/kernels.md).
 *
 * Per row and nonzero input x[i], per threshold group g: t = approx(T[g], |x[i]|). The kept
 * weights of column i in group g are a prefix of the column's segment sorted by |w| descending;
 * one binary search finds its length k. Then, with no per-connection test on the hot path:
 *   k == segment length  ->  plain axpy over the group's outputs (zero weights add 0),
 *   k small              ->  scatter-add the k kept weights (value, output index),
 *   otherwise            ->  branch-free masked axpy (|w| > t as an integer compare of bits).
 * Contributions to y[j] arrive in increasing i whatever the path, so results do not depend on
 * which path ran. Counters are arithmetic (docs/semantics.md). */
#include "unit_internal.h"

/* Number of leading entries of sorted[0..n) (|w| descending, n >= 1) with |w| bits > t_bits. */
static int32_t unit__count_above(const float *sorted, int32_t n, int32_t t_bits) {
    int32_t base = 0;
    if ((int32_t)(unit__f32_bits(sorted[0]) & UNIT__ABS_MASK) <= t_bits) {
        return 0;
    }
    if ((int32_t)(unit__f32_bits(sorted[n - 1]) & UNIT__ABS_MASK) > t_bits) {
        return n;
    }
    while (n > 1) { /* branch-free lower bound: entries before `base` are kept */
        int32_t half = n / 2;
        int32_t keep = (int32_t)(unit__f32_bits(sorted[base + half]) & UNIT__ABS_MASK) > t_bits;
        base += keep ? half : 0;
        n -= half;
    }
    return base + ((int32_t)(unit__f32_bits(sorted[base]) & UNIT__ABS_MASK) > t_bits);
}

int32_t unit_linear_f32(const unit_linear_plan *plan, const float *x, int32_t rows, const float *bias,
                        const float *thresholds, int32_t method, int32_t shift_start, float *y,
                        unit_counts *counts) {
    int32_t in, out, group_size, num_groups, r, i, g, j;
    int64_t nonzero_inputs = 0, zero_activation = 0, executed = 0, dense;
    if (plan == 0 || rows < 0 || !unit__method_valid(method) || counts == 0) {
        return UNIT_ERR_ARGUMENT;
    }
    in = plan->in_features;
    out = plan->out_features;
    group_size = plan->group_size;
    num_groups = plan->num_groups;
    if (in < 1 || out < 1 || group_size < 1 || group_size > out ||
        num_groups != (out + group_size - 1) / group_size) {
        return UNIT_ERR_ARGUMENT;
    }
    for (r = 0; r < rows; r++) {
        const float *x_row = x + (int32_t)(r * in);
        float *y_row = y + (int32_t)(r * out);
        for (j = 0; j < out; j++) {
            y_row[j] = 0.0f;
        }
        for (i = 0; i < in; i++) {
            float xv = x_row[i];
            uint32_t abs_bits = unit__f32_bits(xv) & UNIT__ABS_MASK;
            const float *column = plan->weight_t + (int32_t)(i * out);
            if (abs_bits == 0) {
                zero_activation += plan->column_nonzero[i];
                continue;
            }
            nonzero_inputs++;
            for (g = 0; g < num_groups; g++) {
                int32_t segment = i * num_groups + g;
                int32_t begin = plan->segment_start[segment];
                int32_t length = plan->segment_start[segment + 1] - begin;
                int32_t first = g * group_size;
                int32_t width = out - first < group_size ? out - first : group_size;
                int32_t t_bits, kept, k;
                if (length == 0) {
                    continue;
                }
                t_bits = (int32_t)unit__approx_bits(method, thresholds[g], abs_bits, shift_start);
                kept = unit__count_above(plan->sorted_weight + begin, length, t_bits);
                executed += kept;
                if (kept == 0) {
                    continue;
                }
                if (kept == length) {
                    unit__axpy(y_row + first, column + first, xv, width);
                } else if (kept * UNIT__SCATTER_COST < width) {
                    const float *values = plan->sorted_weight + begin;
                    const int32_t *outputs = plan->sorted_output + begin;
                    for (k = 0; k < kept; k++) {
                        y_row[outputs[k]] += values[k] * xv;
                    }
                } else {
                    unit__axpy_keep_weight_above(y_row + first, column + first, xv, t_bits, width);
                }
            }
        }
        if (bias != 0) {
            for (j = 0; j < out; j++) {
                y_row[j] += bias[j];
            }
        }
    }
    dense = (int64_t)rows * in * out;
    counts->dense = dense;
    counts->zero_weight = (int64_t)rows * ((int64_t)in * out - plan->nonzero_weights);
    counts->zero_activation = zero_activation;
    counts->executed = executed;
    counts->threshold = dense - counts->zero_weight - zero_activation - executed;
    counts->compares = (int64_t)rows * in + nonzero_inputs * out;
    counts->divisions = nonzero_inputs * num_groups;
    return UNIT_OK;
}
