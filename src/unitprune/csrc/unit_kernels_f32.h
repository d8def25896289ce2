/* SPDX-License-Identifier: MIT */
/*
 * unit_kernels_f32.h -- UnIT (unstructured inference-time pruning) kernels, float32, C99.
 *
 * Every function, parameter, range and memory layout of the float kernels is documented here;
 * the shared definitions (status codes, counters, convolution geometry) are in unit_types.h.
 * The semantics (what is skipped, what is counted) are those of docs/semantics.md; the design
 * (why the loops look the way they do) is in docs/kernels.md.
 *
 * Build option: define UNIT_SKIP_BRANCH=1 on targets without SIMD (MCUs) so that a skipped
 * connection is skipped with a branch around the multiply; by default (hosts) the partially kept
 * lane loops are branch-free selects that compilers vectorise. Both give identical results.
 * On SSE2 hosts unit_linear_f32 uses SSE2 intrinsics (<emmintrin.h>) for two loops; define
 * UNIT_NO_INTRINSICS to use the equivalent plain C loops instead (identical results).
 */
#ifndef UNIT_KERNELS_F32_H
#define UNIT_KERNELS_F32_H

#include "unit_types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Division approximations (docs/semantics.md, "Division approximations"). */
#define UNIT_APPROX_EXACT 0    /* T / c, one IEEE float32 division */
#define UNIT_APPROX_BITSHIFT 1 /* T * 2**-n, n = max(e(c), shift_start), rounded once */
#define UNIT_APPROX_BINTREE 2  /* same result as BITSHIFT (on the host the same code path) */
#define UNIT_APPROX_BITMASK 3  /* 2**(E(T) - E(c)) from the IEEE-754 exponent fields */

/* `shift_start` value meaning "no coarse start". Any value <= -148 behaves the same, because
 * e(c) >= -148 for every positive float32 c. */
#define UNIT_SHIFT_START_NONE (-32768L)

/* Bit pattern of float32 +infinity: a quotient that skips every connection. */
#define UNIT_F32_INF_BITS 0x7F800000L

/* unit_all_finite_f32: 1 if the n >= 0 floats at `values` are all finite (no NaN, no +-Inf),
 * else 0. The hosts' input check; reads every value once. */
int32_t unit_all_finite_f32(const float *values, int32_t n);
/* ---------------------------------------------------------------------------------------- */
/* Division approximations                                                                   */
/* ---------------------------------------------------------------------------------------- */

/* unit_approx_f32: the quotient approx(T, c) of docs/semantics.md, as a float32.
 *   method       UNIT_APPROX_* (an unknown method returns +inf).
 *   threshold    T, finite, >= 0.
 *   control      c = |C|, finite, >= 0. c == 0 gives +inf (a zero operand skips everything).
 *   shift_start  coarse start of BITSHIFT/BINTREE (n = max(e(c), shift_start)); pass
 *                UNIT_SHIFT_START_NONE for none. Ignored by EXACT and BITMASK.
 * T == 0 gives 0. Results beyond float32's range saturate to +inf, results below the smallest
 * subnormal round to 0 (round-to-nearest-even, bit-identical to unitprune.approx). */
float unit_approx_f32(int32_t method, float threshold, float control, int32_t shift_start);

/* unit_approx_f32_array: out[i] = unit_approx_f32(method, threshold[i], control[i], shift_start)
 * for i in [0, n). n >= 0. Used by the tests to compare with the Python approximations. */
void unit_approx_f32_array(int32_t method, const float *threshold, const float *control,
                           int32_t shift_start, float *out, int32_t n);

/* ---------------------------------------------------------------------------------------- */
/* Linear: y = W x + b, control term = activation x[i]                                       */
/* ---------------------------------------------------------------------------------------- */

/* Activation cutoffs. approx(T, c) is non-increasing in c for every method (IEEE division and
 * ldexp round monotonically, e(c) and E(c) are non-decreasing), and for non-negative floats
 * a <= b iff bits(a) <= bits(b). So for a weight w != 0 the activations whose connection with w
 * is kept, |w| > approx(T, |x|), are exactly those with bits(|x|) > cutoff(T, w), where
 *   cutoff(T, w) = the largest bit pattern a in [0, 0x7F7FFFFF] (0 .. FLT_MAX) such that
 *                  approx(T, float(a)) >= |w|
 * (a = 0 always qualifies: approx(T, 0) = +inf). cutoff = 0x7F7FFFFF: no finite x keeps w;
 * cutoff = 0: every nonzero x keeps w (T == 0 gives 0 for every w != 0). A zero weight gets
 * UNIT_F32_INF_BITS, above every finite |x|: never kept. The linear kernel compares bit patterns
 * with these cutoffs and computes no quotient at run time.
 *
 * unit_linear_cutoffs_f32: cutoff[k] = cutoff(T[(k % out_features) / group_size], weight[k]) for
 * k in [0, count), found by a binary search over the 2**31 non-negative bit patterns (31
 * quotients per weight; offline on an MCU).
 *   weight        [count] float, finite, any layout whose LAST index is the output j (e.g. the
 *                 transposed weight [in][out] of unit_linear_plan_f32).
 *   count         >= 0, a multiple of out_features.
 *   out_features  >= 1.
 *   thresholds    [ceil(out_features / group_size)] float, finite, >= 0.
 *   group_size    in [1, out_features].
 *   method, shift_start  as in unit_approx_f32.
 *   cutoff        [count] int32, written (bit patterns, all >= 0). */
int32_t unit_linear_cutoffs_f32(const float *weight, int32_t count, int32_t out_features, const float *thresholds,
                                int32_t group_size, int32_t method, int32_t shift_start, int32_t *cutoff);

/* Preprocessed form of a weight matrix W of shape [out][in] for given thresholds and division
 * approximation (the cutoffs above depend on them); built once per weight and threshold by the
 * host (unitprune.kernels.LinearPlan) or offline for firmware.
 *
 * Threshold groups: output j belongs to group j / group_size; num_groups = ceil(out / group_size)
 * (group_size = out_features for one threshold per layer). A "segment" s = i*num_groups + g is
 * the part of input column i that feeds the outputs of group g.
 *
 *   in_features, out_features  >= 1.
 *   group_size                 in [1, out_features].
 *   num_groups                 ceil(out_features / group_size).
 *   scatter_cost               >= 1, see segment_stats.
 *   lanes          row length of lane_weight/lane_cutoff, in [out_features, out_features + 3]:
 *                  out_features rounded up to a multiple of 4 lets hosts run whole SSE vectors
 *                  with no remainder loop; out_features saves memory (MCUs).
 *   method, shift_start  the approximation the cutoffs were computed with.
 *   thresholds     [num_groups] float: the thresholds the cutoffs were computed with.
 *                  unit_linear_f32 refuses (UNIT_ERR_ARGUMENT) a call whose thresholds (bit
 *                  patterns), method or shift_start differ: the plan would not match them.
 *   lane_weight    [in][lanes] float: lane_weight[i*lanes + j] = W[j][i], 0 in padding lanes.
 *   lane_cutoff    [in][lanes] int32: cutoff of each lane_weight entry (UNIT_F32_INF_BITS for
 *                  zero weights and padding lanes). Read only for narrow layers (lanes <= 16
 *                  and a multiple of 4, without UNIT_SKIP_BRANCH); wider groups compare |w|
 *                  with one quotient per input instead (it reads half the memory).
 *   sorted_weight  [in*out] float: for segment s, the NONZERO weights W[j][i] of the outputs j
 *                  of group g, sorted by |w| descending (stable), stored at
 *                  [segment_start[s], segment_start[s+1]). Their cutoffs are then ascending
 *                  (one group, one threshold: a larger |w| never has a larger cutoff), so an
 *                  input x keeps a prefix of the segment. Entries after the last segment are
 *                  unused.
 *   sorted_output  [in*out] int32: the output index j of each sorted_weight entry.
 *   sorted_cutoff  [in*out] int32: the cutoff of each sorted_weight entry (ascending per segment).
 *   segment_start  [in*num_groups + 1] int32, non-decreasing, segment_start[0] = 0.
 *   segment_stats  [in*num_groups][3] int32 per segment: the smallest cutoff (x keeps something
 *                  iff bits(|x|) > it; UNIT_F32_INF_BITS for an empty segment), the largest
 *                  cutoff (x keeps every nonzero weight iff bits(|x|) > it; -1 if empty), and the
 *                  cutoff at sorted index `cut` (UNIT_F32_INF_BITS if cut >= the segment's
 *                  length), where cut = width / scatter_cost and width is the number of outputs
 *                  of the group: x keeps at most `cut` weights iff bits(|x|) <= that value; those
 *                  few are scatter-added, more are added by a masked loop over the group's
 *                  lanes. scatter_cost = 4 suits SIMD hosts, 1 (always scatter) suits MCUs; any
 *                  value gives the same results.
 *   column_cutoff  [in] int32: the smallest cutoff of column i (UNIT_F32_INF_BITS if the column
 *                  is all zero): x[i] keeps at least one connection iff bits(|x[i]|) > it.
 *   column_nonzero [in] int32: number of nonzero weights in column i (all groups).
 *   nonzero_weights  number of nonzero weights in W.
 */
typedef struct {
    int32_t in_features;
    int32_t out_features;
    int32_t group_size;
    int32_t num_groups;
    int32_t scatter_cost;
    int32_t lanes;
    int32_t method;
    int32_t shift_start;
    const float *thresholds;
    const float *lane_weight;
    const int32_t *lane_cutoff;
    const float *sorted_weight;
    const int32_t *sorted_output;
    const int32_t *sorted_cutoff;
    const int32_t *segment_start;
    const int32_t *segment_stats;
    const int32_t *column_cutoff;
    const int32_t *column_nonzero;
    int64_t nonzero_weights;
} unit_linear_plan_f32;

/* unit_linear_f32_scratch_size: bytes of scratch unit_linear_f32 needs, or UNIT_ERR_ARGUMENT:
 * 4*in_features (the list of a row's inputs that keep something) + 4*lanes (the row's
 * accumulator), each rounded up to a multiple of 16. */
int32_t unit_linear_f32_scratch_size(const unit_linear_plan_f32 *plan);

/* unit_linear_f32: UnIT linear layer.
 *   plan        preprocessed weights and cutoffs (above).
 *   x           [rows][in] float, finite.
 *   rows        >= 0 (number of samples; every sample is one row).
 *   bias        [out] float, may be NULL.
 *   thresholds  [num_groups] float, finite, >= 0, equal to plan->thresholds.
 *   method, shift_start  the division approximation (see unit_approx_f32), equal to the plan's.
 *   y           [rows][out] float, written (must not alias x).
 *   scratch     scratch_bytes bytes, aligned to 4 bytes (16 recommended), not aliasing anything
 *               else; scratch_bytes >= unit_linear_f32_scratch_size(plan).
 *   counts      written with the counters of this call.
 * Connection W[j][i]*x[i] is kept iff |W[j][i]| > approx(T[group(j)], |x[i]|), decided as
 * bits(|x[i]|) > cutoff, or, where many lanes are partly kept, as bits(|W[j][i]|) > bits of
 * approx(T, |x[i]|). The counters are those of docs/semantics.md, which counts one quotient per
 * nonzero input and threshold group (`divisions`); the kernel computes quotients only in that
 * wide masked case, the others are folded into the plan's cutoffs. */
int32_t unit_linear_f32(const unit_linear_plan_f32 *plan, const float *x, int32_t rows, const float *bias,
                        const float *thresholds, int32_t method, int32_t shift_start, float *y, void *scratch,
                        int32_t scratch_bytes, unit_counts *counts);

/* unit_linear_dense_f32: plain dense linear layer (the benchmark baseline), every MAC executed.
 *   x [rows][in], weight_t [in][out] (W transposed), bias [out] or NULL,
 *   y [rows][out]. rows >= 0, in >= 1, out >= 1. */
int32_t unit_linear_dense_f32(const float *x, int32_t rows, int32_t in_features, int32_t out_features,
                              const float *weight_t, const float *bias, float *y);
/* ---------------------------------------------------------------------------------------- */
/* Conv2d (Conv1d is a Conv2d with height 1), control term = weight                          */
/* ---------------------------------------------------------------------------------------- */
/* Preprocessed (static) form of a convolution's weights and per-weight quotients
 * tau[o][c][ky][kx] = approx(T[group(o)], |w|) (+inf where w == 0); built once per weight and
 * threshold by the host (unitprune.kernels.ConvPlan) or offline for firmware.
 *
 * Notation: C = in_channels, KH/KW = kernel size, Og = out_channels / groups (outputs of one
 * group), kx' = KW-1-kx (kernel columns stored REVERSED), and for input channel c (group
 * g = c / (C/groups)) the "lanes" are the outputs o = g*Og + l, l in [0, Og).
 * A "row" is (c, ky): its KW*Og lanes are contiguous, kx' major, l minor, followed by padding
 * lanes (weight 0, tau +inf) up to `row_lanes`. A "tap" is (c, ky, kx).
 * Tau values are stored as their float32 bit patterns (int32, all >= 0): for non-negative
 * floats, a > b as floats iff bits(a) > bits(b) as integers.
 * min/max statistics are taken over the NONZERO weights only; with none, min = UNIT_F32_INF_BITS
 * and max = -1.
 *
 *   row_lanes      lanes per row, in [KW*Og, KW*Og + 3]; KW*Og rounded up to a multiple of 4
 *                  lets whole rows run in blocks of 4 lanes (hosts), KW*Og saves memory (MCUs).
 *   lane_weight    [C][KH][row_lanes] float: lane kx'*Og + l of row (c, ky) holds
 *                  weight[g*Og + l][c % (C/groups)][ky][KW-1-kx'], padding lanes hold 0.
 *   lane_tau       [C][KH][row_lanes] int32: bits of tau in the same layout; UNIT_F32_INF_BITS
 *                  where the weight is 0 and in padding lanes.
 *   tap_stats      [C][KH][KW'][3] int32: min tau bits, max tau bits, number of nonzero weights
 *                  of the tap's Og lanes.
 *   row_stats      [C][KH][2 + KW + 1] int32: min tau bits, max tau bits of the row, then the
 *                  prefix counts P[k] = nonzero weights among kx' < k, k in [0, KW].
 *   channel_stats  [C][2] int32: min tau bits, max tau bits over the channel's weights.
 */
typedef struct {
    int32_t row_lanes;
    const float *lane_weight;
    const int32_t *lane_tau;
    const int32_t *tap_stats;
    const int32_t *row_stats;
    const int32_t *channel_stats;
} unit_conv2d_plan_f32;
/* unit_conv2d_f32_scratch_size: bytes of scratch unit_conv2d_f32 needs for `params` (the batch
 * size does not matter), or a negative UNIT_ERR_* code. Formula, with OH/OW the output size,
 * H/W the input size and every part rounded up to a multiple of 16 bytes:
 *   4*(OH*OW*Og + 4) (accumulator) + 8*H*W (nonzero activations and their columns)
 *   + 4*(H+1) (row starts) + 4*H*W (lattice counts) + 4*(H*(2*KH+1) + W*(2*KW+1)) (tap tables)
 *   + 4*KH*KW (nonzero activations under each tap). */
int32_t unit_conv2d_f32_scratch_size(const unit_conv2d_params *params);

/* unit_conv2d_f32: UnIT convolution. Connection w*x is kept iff |x| > tau[w]; padding
 * positions are zero activations; the bias is added to every output.
 *   params         geometry (above).
 *   plan           preprocessed weights and quotients (above) for the same geometry.
 *   x              input, NCHW float, finite.
 *   weight         OIHW float (the same weights the plan was built from; used by the dense
 *                  sub-path of channels where nothing is skipped).
 *   bias           [out_channels] float, may be NULL.
 *   y              output, NCHW float, written (must not alias x).
 *   scratch        scratch_bytes bytes, aligned to 4 bytes (16 recommended), not aliasing
 *                  anything else; scratch_bytes >= unit_conv2d_f32_scratch_size(params).
 *   counts         written with the counters of this call.
 */
int32_t unit_conv2d_f32(const unit_conv2d_params *params, const unit_conv2d_plan_f32 *plan, const float *x,
                        const float *weight, const float *bias, float *y, void *scratch, int32_t scratch_bytes,
                        unit_counts *counts);

/* unit_conv2d_dense_f32: plain dense direct convolution (the benchmark baseline), every MAC
 * executed, same arguments and layouts as unit_conv2d_f32 (no plan, no scratch). */
int32_t unit_conv2d_dense_f32(const unit_conv2d_params *params, const float *x, const float *weight,
                              const float *bias, float *y);

/* unit_conv2d_quotients_f32: tau[o][c][ky][kx] = approx(T[o / group_size], |w|) for every
 * weight (+inf where w == 0), the per-weight quotients of a UnIT convolution (computed once
 * per threshold; offline on an MCU).
 *   weight      [count] float (any layout whose leading index is the output channel o),
 *               finite.
 *   count       number of weights, >= 0; per_output = count / out_channels weights per output.
 *   out_channels  >= 1 and divides count.
 *   thresholds  [ceil(out_channels / group_size)] float, finite, >= 0.
 *   group_size  in [1, out_channels].
 *   method, shift_start  as in unit_approx_f32.
 *   tau         [count] float, written. */
int32_t unit_conv2d_quotients_f32(const float *weight, int32_t count, int32_t out_channels,
                                  const float *thresholds, int32_t group_size, int32_t method,
                                  int32_t shift_start, float *tau);

#ifdef __cplusplus
}
#endif

#endif /* UNIT_KERNELS_F32_H */
