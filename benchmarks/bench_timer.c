/* SPDX-License-Identifier: MIT */
/* bench_timer.c -- call a unitprune kernel `repeats` times and return the elapsed seconds.
 *
 * Compiled by benchmarks/kernels.py together with src/unitprune/csrc/*.c (same flags as
 * setup.py) so that small layers are timed without the ~1-2 us of a ctypes call each. Call r
 * reads input copy r % copies (x + (r % copies) * x_stride floats): distinct inputs keep the
 * branch predictor from learning one input's zero pattern, which would flatter data-dependent
 * code. The kernels are external functions writing their outputs, so the compiler cannot drop
 * or hoist the calls. */
#define _POSIX_C_SOURCE 199309L
#include <time.h>

#include "unit_kernels.h"

static double bench_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

double bench_linear_f32(const unit_linear_plan_f32 *plan, const float *x, int32_t x_stride, int32_t copies,
                        int32_t rows, const float *bias, const float *thresholds, int32_t method, int32_t shift_start,
                        float *y, void *scratch, int32_t scratch_bytes, unit_counts *counts, int32_t repeats) {
    double start = bench_now();
    int32_t r;
    for (r = 0; r < repeats; r++) {
        unit_linear_f32(plan, x + (r % copies) * x_stride, rows, bias, thresholds, method, shift_start, y, scratch,
                        scratch_bytes, counts);
    }
    return bench_now() - start;
}

double bench_linear_dense_f32(const float *x, int32_t x_stride, int32_t copies, int32_t rows, int32_t in_features,
                              int32_t out_features, const float *weight_t, const float *bias, float *y,
                              int32_t repeats) {
    double start = bench_now();
    int32_t r;
    for (r = 0; r < repeats; r++) {
        unit_linear_dense_f32(x + (r % copies) * x_stride, rows, in_features, out_features, weight_t, bias, y);
    }
    return bench_now() - start;
}

double bench_conv2d_f32(const unit_conv2d_params *params, const unit_conv2d_plan_f32 *plan, const float *x,
                        int32_t x_stride, int32_t copies, const float *weight, const float *bias, float *y,
                        void *scratch, int32_t scratch_bytes, unit_counts *counts, int32_t repeats) {
    double start = bench_now();
    int32_t r;
    for (r = 0; r < repeats; r++) {
        unit_conv2d_f32(params, plan, x + (r % copies) * x_stride, weight, bias, y, scratch, scratch_bytes, counts);
    }
    return bench_now() - start;
}

double bench_conv2d_dense_f32(const unit_conv2d_params *params, const float *x, int32_t x_stride, int32_t copies,
                              const float *weight, const float *bias, float *y, int32_t repeats) {
    double start = bench_now();
    int32_t r;
    for (r = 0; r < repeats; r++) {
        unit_conv2d_dense_f32(params, x + (r % copies) * x_stride, weight, bias, y);
    }
    return bench_now() - start;
}
