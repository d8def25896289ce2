/* unit_linear_f32.c -- UnIT linear layer (see unit_kernels.h; design in docs/kernels.md).
 *
 * Per row: the nonzero inputs are first listed without branches (zeros cost no decision, no
 * mispredicted branch). Then per nonzero input x[i] and threshold group g, t = approx(T[g], |x[i]|)
 * and the kept weights of column i in group g are a prefix of the column's segment sorted by |w|
 * descending. With T == 0 every nonzero weight is kept (plain axpy). Otherwise narrow groups
 * (<= UNIT__NARROW lanes) run one branch-free masked loop that also counts: deciding would cost
 * more than the lanes. Wider groups compare t with three
 * precomputed magnitudes of the segment (largest, smallest, at the scatter cut), without
 * touching the sorted column, and then run one loop with no per-connection test:
 *   t >= largest          ->  nothing kept,
 *   t <  smallest         ->  plain axpy over the group's outputs (zero weights add 0),
 *   t >= cut magnitude    ->  a short binary search gives the kept prefix, scatter-added,
 *   otherwise             ->  branch-free masked axpy that also counts (|w| > t compared as
 *                             integer bit patterns).
 * Contributions to y[j] arrive in increasing i whatever the path, so results do not depend on
 * which path ran. Counters are arithmetic where possible (docs/semantics.md). */
#include "unit_internal.h"

#if defined(UNIT_SKIP_BRANCH) && UNIT_SKIP_BRANCH
#define UNIT__NARROW 0 /* MCUs: always decide, a skipped multiply is worth a branch */
#else
#define UNIT__NARROW 16
#endif

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

/* Adds the kept connections of input column i (value xv, |xv| bits abs_bits) to y_row; returns
 * the number of kept connections. */
static int32_t unit__linear_column(const unit_linear_plan *plan, int32_t i, float xv, uint32_t abs_bits,
                                   const float *thresholds, int32_t method, int32_t shift_start, float *y_row) {
    const int32_t out = plan->out_features;
    const float *column = plan->weight_t + i * out;
    int32_t executed = 0;
    int32_t g;
    for (g = 0; g < plan->num_groups; g++) {
        const int32_t segment = i * plan->num_groups + g;
        const int32_t begin = plan->segment_start[segment];
        const int32_t length = plan->segment_start[segment + 1] - begin;
        const int32_t first = g * plan->group_size;
        const int32_t width = out - first < plan->group_size ? out - first : plan->group_size;
        const int32_t *stats = plan->segment_stats + 3 * segment;
        int32_t t_bits, kept, k;
        if (length == 0) {
            continue;
        }
        /* T == 0 gives t == 0 for every x (no quotient to compute): every nonzero weight is kept.
         * The branch goes the same way for a whole layer. */
        t_bits = thresholds[g] == 0.0f ? 0 : (int32_t)unit__approx_bits(method, thresholds[g], abs_bits, shift_start);
        if (t_bits == 0) {
            unit__axpy(y_row + first, column + first, xv, width);
            executed += length;
        } else if (width <= UNIT__NARROW) {
            executed += unit__axpy_keep_weight_above(y_row + first, column + first, xv, t_bits, width);
        } else if (t_bits >= stats[0]) {
            continue; /* nothing kept */
        } else if (t_bits < stats[1]) {
            unit__axpy(y_row + first, column + first, xv, width);
            executed += length;
        } else if (t_bits >= stats[2]) {
            const float *values = plan->sorted_weight + begin;
            const int32_t *outputs = plan->sorted_output + begin;
            const int32_t cut = width / plan->scatter_cost;
            kept = unit__count_above(values, cut < length ? cut + 1 : length, t_bits);
            for (k = 0; k < kept; k++) {
                y_row[outputs[k]] += values[k] * xv;
            }
            executed += kept;
        } else {
            executed += unit__axpy_keep_weight_above(y_row + first, column + first, xv, t_bits, width);
        }
    }
    return executed;
}

int32_t unit_linear_f32(const unit_linear_plan *plan, const float *x, int32_t rows, const float *bias,
                        const float *thresholds, int32_t method, int32_t shift_start, float *y, void *scratch,
                        int32_t scratch_bytes, unit_counts *counts) {
    int32_t in, out, r, i, j, e;
    int32_t *nonzero_index = (int32_t *)scratch; /* the row's nonzero inputs */
    int64_t nonzero_inputs = 0, zero_activation = 0, executed = 0, dense;
    if (plan == 0 || rows < 0 || !unit__method_valid(method) || counts == 0) {
        return UNIT_ERR_ARGUMENT;
    }
    in = plan->in_features;
    out = plan->out_features;
    if (in < 1 || out < 1 || plan->group_size < 1 || plan->group_size > out ||
        plan->num_groups != (out + plan->group_size - 1) / plan->group_size || plan->scatter_cost < 1) {
        return UNIT_ERR_ARGUMENT;
    }
    if (scratch == 0 || scratch_bytes < unit_linear_f32_scratch_size(plan)) {
        return UNIT_ERR_SCRATCH;
    }
    for (r = 0; r < rows; r++) {
        const float *x_row = x + r * in;
        float *y_row = y + r * out;
        int32_t count = 0;
        int64_t nonzero_connections = 0;
        for (i = 0; i < in; i++) { /* branch-free list of the nonzero inputs */
            int32_t nonzero = (unit__f32_bits(x_row[i]) & UNIT__ABS_MASK) != 0;
            nonzero_index[count] = i;
            count += nonzero;
            nonzero_connections += plan->column_nonzero[i] & -nonzero;
        }
        zero_activation += plan->nonzero_weights - nonzero_connections;
        nonzero_inputs += count;
        for (j = 0; j < out; j++) {
            y_row[j] = 0.0f;
        }
        for (e = 0; e < count; e++) {
            i = nonzero_index[e];
            executed += unit__linear_column(plan, i, x_row[i], unit__f32_bits(x_row[i]) & UNIT__ABS_MASK, thresholds,
                                            method, shift_start, y_row);
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
    counts->divisions = nonzero_inputs * plan->num_groups;
    return UNIT_OK;
}
