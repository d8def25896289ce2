/* SPDX-License-Identifier: MIT */
/* division_bench.c -- throughput of the UnIT quotient T / |C|: true division against the
 * approximations, float32 and integer, as the kernels compute them.
 *
 * Built and run by benchmarks/division.py:  gcc <flags> -I src/unitprune/csrc division_bench.c
 * Prints one JSON object: nanoseconds per quotient (median of repeats) for each variant.
 *
 * Every variant is a loop over N independent (T, c) pairs writing N results, in its own
 * noinline/noipa function, called `passes` times with the threshold array rotated by the pass
 * number. The compiler can neither hoist the work out of the pass loop nor drop a pass (each
 * call's stores are visible to the caller, which folds every result into a checksum that is
 * printed). Float variants use the library's own code (unit__approx_bits from unit_internal.h).
 */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "unit_internal.h"

#define N 4096
#define REPEATS 9
#define NOINLINE __attribute__((noinline, noipa))

static float t_f32[2 * N], c_f32[N], out_f32[N];
static int32_t t_i32[2 * N], c_i32[N], out_i32[N];

/* A balanced binary search tree over the exponents 1..15 (as unitprune.approx.BinTree.balanced
 * builds it), stored as flat tables like generated firmware would hold it. */
static int32_t tree_split[32], tree_left[32], tree_right[32], tree_leaf[32];
static int32_t tree_nodes = 0;

static int32_t tree_build(int32_t lo, int32_t hi) {
    int32_t node = tree_nodes++;
    int32_t mid;
    tree_split[node] = 0;
    if (lo == hi) {
        tree_leaf[node] = lo;
        return node;
    }
    mid = (lo + hi + 1) / 2; /* left: exponents < mid */
    tree_split[node] = mid;
    tree_left[node] = tree_build(lo, mid - 1);
    tree_right[node] = tree_build(mid, hi);
    return node;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* ---- float32 ---------------------------------------------------------------------------- */

NOINLINE static void f32_true_division(const float *t, const float *c, float *out) {
    int32_t i;
    for (i = 0; i < N; i++) {
        out[i] = t[i] / c[i];
    }
}

NOINLINE static void f32_exact(const float *t, const float *c, float *out) {
    int32_t i;
    for (i = 0; i < N; i++) {
        out[i] = unit__bits_f32(unit__approx_bits(UNIT_APPROX_EXACT, t[i], unit__f32_bits(c[i]), UNIT_SHIFT_START_NONE));
    }
}

NOINLINE static void f32_bitmask(const float *t, const float *c, float *out) {
    int32_t i;
    for (i = 0; i < N; i++) {
        out[i] = unit__bits_f32(unit__approx_bits(UNIT_APPROX_BITMASK, t[i], unit__f32_bits(c[i]), UNIT_SHIFT_START_NONE));
    }
}

/* The bitmask fast path alone, as masks instead of branches (so it vectorises): valid only when
 * T, c and the result are normal floats, as in this benchmark's data; main() checks that it agrees
 * with the library on every input. It shows what bitmask costs where the edge cases (zero,
 * subnormal, overflow) are excluded by construction, e.g. for a quantised model's known ranges. */
NOINLINE static void f32_bitmask_normal_only(const float *t, const float *c, float *out) {
    int32_t i;
    for (i = 0; i < N; i++) {
        int32_t biased = (int32_t)(unit__f32_bits(t[i]) >> 23) - (int32_t)(unit__f32_bits(c[i]) >> 23) + 127;
        out[i] = unit__bits_f32((uint32_t)biased << 23);
    }
}

NOINLINE static void f32_bitshift(const float *t, const float *c, float *out) {
    int32_t i;
    for (i = 0; i < N; i++) {
        out[i] = unit__bits_f32(unit__approx_bits(UNIT_APPROX_BITSHIFT, t[i], unit__f32_bits(c[i]), UNIT_SHIFT_START_NONE));
    }
}

/* ---- integer (fixed point) -------------------------------------------------------------- */

NOINLINE static void i32_true_division(const int32_t *t, const int32_t *c, int32_t *out) {
    int32_t i;
    for (i = 0; i < N; i++) {
        out[i] = t[i] / c[i];
    }
}

/* The paper's bit-shifting loop: n = number of right shifts that take c to zero. */
NOINLINE static void i32_bitshift_loop(const int32_t *t, const int32_t *c, int32_t *out) {
    int32_t i;
    for (i = 0; i < N; i++) {
        int32_t v = c[i], n = 0;
        while (v != 0) {
            v >>= 1;
            n++;
        }
        out[i] = t[i] >> n;
    }
}

/* Binary tree search: walk the flat tree tables, one comparison per level. */
NOINLINE static void i32_bintree_table(const int32_t *t, const int32_t *c, int32_t *out) {
    int32_t i;
    for (i = 0; i < N; i++) {
        int32_t v = c[i], node = 0;
        while (tree_split[node] != 0) {
            node = v < ((int32_t)1 << (tree_split[node] - 1)) ? tree_left[node] : tree_right[node];
        }
        out[i] = t[i] >> tree_leaf[node];
    }
}

/* The same balanced tree unrolled into branch-free steps (bit length of a 16-bit value). */
NOINLINE static void i32_bintree_unrolled(const int32_t *t, const int32_t *c, int32_t *out) {
    int32_t i;
    for (i = 0; i < N; i++) {
        int32_t v = c[i], n = 0, step;
        step = (v >= (1 << 8)) << 3;
        v >>= step;
        n += step;
        step = (v >= (1 << 4)) << 2;
        v >>= step;
        n += step;
        step = (v >= (1 << 2)) << 1;
        v >>= step;
        n += step;
        step = v >= (1 << 1);
        v >>= step;
        n += step;
        n += v; /* v is 0 or 1 here */
        out[i] = t[i] >> n;
    }
}

typedef void (*f32_kernel)(const float *, const float *, float *);
typedef void (*i32_kernel)(const int32_t *, const int32_t *, int32_t *);

static int compare_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double checksum = 0.0;

static double time_f32(f32_kernel kernel, int32_t passes) {
    double samples[REPEATS];
    int32_t r, p;
    for (r = 0; r < REPEATS; r++) {
        double start = now();
        for (p = 0; p < passes; p++) {
            kernel(t_f32 + (p & (N - 1)), c_f32, out_f32);
            checksum += (double)out_f32[p & (N - 1)];
        }
        samples[r] = (now() - start) / ((double)passes * N);
    }
    qsort(samples, REPEATS, sizeof samples[0], compare_double);
    return samples[REPEATS / 2];
}

static double time_i32(i32_kernel kernel, int32_t passes) {
    double samples[REPEATS];
    int32_t r, p;
    for (r = 0; r < REPEATS; r++) {
        double start = now();
        for (p = 0; p < passes; p++) {
            kernel(t_i32 + (p & (N - 1)), c_i32, out_i32);
            checksum += (double)out_i32[p & (N - 1)];
        }
        samples[r] = (now() - start) / ((double)passes * N);
    }
    qsort(samples, REPEATS, sizeof samples[0], compare_double);
    return samples[REPEATS / 2];
}

int main(int argc, char **argv) {
    int32_t passes = argc > 1 ? atoi(argv[1]) : 2000;
    int32_t i;
    uint32_t state = 12345u;
    for (i = 0; i < 2 * N; i++) { /* thresholds: positive floats over 2**-20 .. 2**0 */
        state = state * 1664525u + 1013904223u;
        t_f32[i] = unit__bits_f32(((uint32_t)(107 + (state >> 27) % 20) << 23) | (state & 0x7FFFFFu));
        t_i32[i] = (int32_t)(state >> 8) & 0xFFFFFF; /* 24-bit integer thresholds */
    }
    for (i = 0; i < N; i++) { /* controls: |activations| over 2**-10 .. 2**10; int16 magnitudes */
        state = state * 1664525u + 1013904223u;
        c_f32[i] = unit__bits_f32(((uint32_t)(117 + (state >> 27) % 20) << 23) | (state & 0x7FFFFFu));
        c_i32[i] = (int32_t)(((state >> 8) & 0x7FFF) >> ((state >> 24) % 15)) | 1; /* bit lengths 1..15 */
    }
    tree_build(1, 15);
    { /* the normal-only bitmask must agree with the library on this data */
        static float reference[N];
        int32_t mismatches = 0;
        f32_bitmask(t_f32, c_f32, reference);
        f32_bitmask_normal_only(t_f32, c_f32, out_f32);
        for (i = 0; i < N; i++) {
            mismatches += unit__f32_bits(reference[i]) != unit__f32_bits(out_f32[i]);
        }
        if (mismatches != 0) {
            fprintf(stderr, "f32_bitmask_normal_only disagrees with the library on %d inputs\n", (int)mismatches);
            return 1;
        }
    }
    printf("{\"n\": %d, \"passes\": %d, \"ns_per_quotient\": {", N, (int)passes);
    printf("\"f32_true_division\": %.6f, ", 1e9 * time_f32(f32_true_division, passes));
    printf("\"f32_exact\": %.6f, ", 1e9 * time_f32(f32_exact, passes));
    printf("\"f32_bitmask\": %.6f, ", 1e9 * time_f32(f32_bitmask, passes));
    printf("\"f32_bitmask_normal_only\": %.6f, ", 1e9 * time_f32(f32_bitmask_normal_only, passes));
    printf("\"f32_bitshift\": %.6f, ", 1e9 * time_f32(f32_bitshift, passes));
    printf("\"i32_true_division\": %.6f, ", 1e9 * time_i32(i32_true_division, passes));
    printf("\"i32_bitshift_loop\": %.6f, ", 1e9 * time_i32(i32_bitshift_loop, passes));
    printf("\"i32_bintree_table\": %.6f, ", 1e9 * time_i32(i32_bintree_table, passes));
    printf("\"i32_bintree_unrolled\": %.6f", 1e9 * time_i32(i32_bintree_unrolled, passes));
    printf("}, \"checksum\": %.6e}\n", checksum);
    return 0;
}
