/* SPDX-License-Identifier: MIT */
/* unit_kernels_s8.h: the int8 (fixed-point) UnIT kernels. The contract they implement, bit for bit,
 * is docs/fixed_point.md; the Python integer reference (unitprune.mcu.reference) is their oracle.
 * Design and loops: docs/kernels.md, "The int8 kernels". Sources: the csrc files with `_s8` in their
 * name (they need no other source; headers: unit_types.h, unit_kernels_s8.h, private unit_internal_*.h).
 *
 * Rules (as for the float kernels): C99, no malloc, no libm, no float, fixed-width types, one
 * public function per file, int32_t sizes. Counters are compiled in only with UNIT_S8_COUNTS
 * defined to 1 (they cost cycles on an MCU); without it the `counts` argument is ignored (and may
 * be NULL). With it, `counts` may be NULL too (then nothing is counted into it); when given it is
 * overwritten with this call's counters, exactly docs/semantics.md "MAC accounting" and the table
 * of docs/fixed_point.md ("MAC counters").
 * Constant tables (weights, bias, requantization, tau, trees, quotient tables) are read through
 * the UNIT_READ_* macros of unit_types.h, so on AVR they must live in flash (PROGMEM, first 64 KB;
 * define UNIT_NO_FLASH to pass RAM tables instead). Activations are int8 in RAM, channel-major
 * [C][H][W], `batch` samples one after the other.
 * Every function returns UNIT_OK, or UNIT_ERR_ARGUMENT (an argument out of its documented range,
 * a NULL pointer that may not be NULL) / UNIT_ERR_SCRATCH (scratch is NULL; its size cannot be
 * checked: the caller passes at least *_scratch_size bytes). On error nothing is written.
 *
 * Variants (docs/fixed_point.md): `dense` executes every connection (the honest baseline, no test
 * at all); `zeroskip` skips zero weights and zero activations; `unit` also skips the connections
 * the integer UnIT test rejects. All three give y = requantize(bias + sum of the kept x*w). */
#ifndef UNIT_KERNELS_S8_H
#define UNIT_KERNELS_S8_H

#include "unit_types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Requantization of a conv/linear output (docs/fixed_point.md, "Layers"): per output o,
 * y = clamp(unit_requantize_s8(acc, multiplier[o], shift[o]), act_min, act_max).
 * Ranges: multiplier in [0, 2**31 - 1] (Q31), shift in [-31, 30], -128 <= act_min <= act_max <= 127;
 * the kernels check these ranges (UNIT_ERR_ARGUMENT) before writing anything.
 * The arrays are constant tables (UNIT_READ_*); the struct itself is read normally. */
typedef struct {
    const UNIT_TABLE int32_t *bias;       /* [out] int32 at scale s_in * s_w[o] (may be NULL: no bias) */
    const UNIT_TABLE int32_t *multiplier; /* [out] */
    const UNIT_TABLE int8_t *shift;       /* [out] */
    int32_t act_min;           /* -128, or 0 with a fused ReLU */
    int32_t act_max;           /* 127 */
#if defined(__MSP430__)
    /* MSP430 builds only (the last field; an initializer without it leaves it NULL):
     * [out][128] (may be NULL): per output channel o, entry q - 1 = T+(q) + T-(q) for q = 1..128, where
     * T+(q) / T-(q) is the smallest A >= 1 with |requantize(+A)| >= q / |requantize(-A)| >= q
     * (docs/fixed_point.md, "Threshold tables"); only channels with T-(128) <= 2**30.
     * unit_conv2d_dense_s8's assembly runs then requantize by a binary search in it (no multiply);
     * the other kernels ignore it (the same outputs). Made by unitprune.mcu.requant_table. */
    const uint32_t *thresholds;
#endif
} unit_requant_s8;

/* The thresholds initializer of a unit_requant_s8 after act_max: `{..., act_max
 * UNIT_REQUANT_THRESHOLDS(table)}` (table: an array, or 0), nothing off MSP430. */
#if defined(__MSP430__)
#define UNIT_REQUANT_THRESHOLDS(table) , (table)
#else
#define UNIT_REQUANT_THRESHOLDS(table)
#endif

/* A search tree over the bit length n in [1, 8] of |x_q|, leaves holding the quotient
 * min(T_q >> max(n, shift_start), 255). Node 0 is the root; an internal node i asks
 * |x_q| < (1 << (split[i] - 1)): yes -> left[i], no -> right[i]; a leaf has left[i] == -1 and its
 * quotient in quotient[i]. Built by unitprune.approx.BinTree (flat arrays, preorder).
 * Ranges (checked, UNIT_ERR_ARGUMENT): nodes in [1, 127]; an internal node has split in [1, 9] and
 * children i < left[i], right[i] < nodes (so every walk ends, in at most nodes - 1 steps). */
typedef struct {
    int32_t nodes;
    const UNIT_TABLE int8_t *split;
    const UNIT_TABLE int8_t *left;
    const UNIT_TABLE int8_t *right;
    const UNIT_TABLE uint8_t *quotient;
} unit_quotient_tree_s8;

/* 1 if this build counts MACs in the int8 kernels (compiled with UNIT_S8_COUNTS=1), else 0. */
int32_t unit_s8_counts_compiled(void);

/* TFLite MultiplyByQuantizedMultiplier(acc, multiplier, shift), no clamp: exactly
 * RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(acc * 2**max(shift, 0), multiplier),
 * max(-shift, 0)) (docs/fixed_point.md). multiplier in [0, 2**31 - 1], shift in [-31, 30] (a
 * shift below -31 is treated as -31, above 30 as 30); acc * 2**max(shift, 0) must fit int32 (the
 * exporter checks it), else the product wraps. Computed on magnitudes from four 16x16->32-bit
 * partial products (no 64-bit type, no division; unit_internal_s8.h). */
int32_t unit_requantize_s8(int32_t acc, int32_t multiplier, int32_t shift);

/* Convolution (Conv1d: in_height = kernel_height = 1). `params` as for the float kernels
 * (unit_types.h). weight [O][C/groups][KH][KW] int8 in [-128, 127] (the quantizer uses
 * [-127, 127]); tau the same layout, uint8 (unit: keep x*w iff |x| > tau; 255 where w == 0).
 * x [batch][C][H][W], y [batch][O][OH][OW] int8 (must not alias x).
 * scratch: unit_conv2d_s8_scratch_size(params) bytes = 4*B*OW, the int32 accumulators of one
 * block of B output rows of one output channel, 4-byte aligned; B = params->block_rows (0, or
 * anything >= OH: B = OH, the whole plane). Outputs and counters do not depend on B (the sums are
 * exact); a smaller B needs less RAM and costs cycles (the tap ranges are recomputed per block).
 * dense is output-stationary: per output channel and output row, each output's whole receptive
 * field is summed with the accumulator in registers (unit_internal_dot_s8.h; assembly runs on AVR
 * and MSP430 unless UNIT_PORTABLE_KERNELS=1), the row's sums kept in the first OW words of scratch,
 * then requantized; it needs only those OW words (the exporter gives it block_rows = 1, so
 * unit_conv2d_s8_scratch_size sizes one row).
 * Loop of zeroskip and unit (weight-stationary, as SONIC and the paper): per sample, output channel o and block of B
 * output rows, the accumulators of the block's B*OW positions start at the bias; per kernel tap
 * (ky, kx) the valid output range inside the block is computed once (no bounds test in the inner
 * loop, padding contributes nothing); per
 * input channel c of o's group the tap's w (and tau) is loaded once, then a tight loop over the
 * valid positions multiplies int8*int8 as int16 and adds into the int32 accumulator. Finally each
 * accumulator of the block is requantized, clamped and stored.
 *   dense:    no test at all (zero weights are multiplied too); output-stationary, above.
 *   zeroskip: a zero w skips the whole tap; a zero x skips its multiply.
 *   unit:     a zero w, or tau >= 128 (no |x| <= 128 exceeds it), skips the whole tap; then per
 *             position one 8-bit add and compare, (uint8_t)(x + tau) > 2*tau, which is
 *             |x| > tau (x == 0 is never kept, so zeros need no test of their own).
 * Counters (UNIT_S8_COUNTS): dense: dense = executed = N*O*OH*OW*(C/groups)*KH*KW.
 * zeroskip/unit: zero_weight = N*OH*OW*(zero weights), zero_activation = the connections of
 * nonzero weights with x == 0 or at a padding position; unit also threshold and
 * compares = N*OH*OW*nnz(W); divisions = 0. */
int32_t unit_conv2d_s8_scratch_size(const unit_conv2d_params *params);
int32_t unit_conv2d_dense_s8(const unit_conv2d_params *params, const int8_t *x, const UNIT_TABLE int8_t *weight,
                             const unit_requant_s8 *requant, int8_t *y, int32_t *scratch, unit_counts *counts);
int32_t unit_conv2d_zeroskip_s8(const unit_conv2d_params *params, const int8_t *x, const UNIT_TABLE int8_t *weight,
                                const unit_requant_s8 *requant, int8_t *y, int32_t *scratch, unit_counts *counts);
/* The dense convolution followed by a max-pool of pool_height x pool_width windows with the same
 * stride (no padding, floor mode): y [N][O][OH/pool_height][OW/pool_width] (integer division) =
 * maxpool(the dense convolution's y), computed as the output stage of each window's largest
 * accumulator (exact: the output stage is non-decreasing in the accumulator for multipliers >= 0), so
 * one requantization per pooled output and no convolution plane in memory. 1 <= pool_height <= OH,
 * 1 <= pool_width <= OW; params->block_rows 0 or >= pool_height (the scratch,
 * unit_conv2d_s8_scratch_size bytes, holds pool_height rows of accumulators). Counters as
 * unit_conv2d_dense_s8's (the convolution's MACs, also those of the rows and columns the pool drops,
 * which are not computed). */
int32_t unit_conv2d_dense_pool_s8(const unit_conv2d_params *params, int32_t pool_height, int32_t pool_width,
                                  const int8_t *x, const UNIT_TABLE int8_t *weight, const unit_requant_s8 *requant,
                                  int8_t *y, int32_t *scratch, unit_counts *counts);
/* The dense convolution, output-stationary (two output channels per pass; Thumb-1 inner loop on
 * ARMv6-M, C elsewhere): same arguments, outputs and counters as unit_conv2d_dense_s8; the
 * exporter's Cortex-M0+ and RV32 targets call it (unit_conv2d_dense_s8_mcu32.c). */
int32_t unit_conv2d_dense_s8_mcu32(const unit_conv2d_params *params, const int8_t *x,
                                    const UNIT_TABLE int8_t *weight, const unit_requant_s8 *requant, int8_t *y,
                                    int32_t *scratch, unit_counts *counts);
int32_t unit_conv2d_unit_s8(const unit_conv2d_params *params, const int8_t *x, const UNIT_TABLE int8_t *weight,
                            const UNIT_TABLE uint8_t *tau, const unit_requant_s8 *requant, int8_t *y, int32_t *scratch,
                            unit_counts *counts);

/* Skip-free UnIT convolution: the same outputs and cause counters as unit_conv2d_unit_s8, without
 * a test per skipped connection. Per sample every input channel's nonzero activations are
 * counting-sorted by |x| (largest first) once; a tap's weight w with threshold tau visits only the
 * first #{|x| > tau} entries of its channel, each mapped to the tap's output position through a
 * row and a column table, with one unsigned compare rejecting the positions outside the output
 * (padding, stride, dilation). Loop and scratch layout: unit_internal_skipfree_s8.h.
 * scratch: unit_conv2d_unit_skipfree_s8_scratch_size(params) bytes (4-byte aligned; params->block_rows
 * is ignored); limits H, W <= 256, OH*OW <= 16384, C*H*W <= 65535 (UNIT_ERR_ARGUMENT otherwise, also
 * from the size function). Counters (UNIT_S8_COUNTS): dense, zero_weight, zero_activation,
 * threshold, executed as unit_conv2d_unit_s8; compares = the list entries visited (kept, and
 * rejected by the window test); divisions = 0. */
int32_t unit_conv2d_unit_skipfree_s8_scratch_size(const unit_conv2d_params *params);
int32_t unit_conv2d_unit_skipfree_s8(const unit_conv2d_params *params, const int8_t *x,
                                     const UNIT_TABLE int8_t *weight, const UNIT_TABLE uint8_t *tau,
                                     const unit_requant_s8 *requant, int8_t *y, int32_t *scratch, unit_counts *counts);

/* Linear: x [batch][in], weight_t [in][out] (TRANSPOSED), y [batch][out] (must not alias x).
 * batch >= 0, in_features >= 1, out_features >= 1. weight_t int8 in [-128, 127].
 * scratch: unit_linear_s8_scratch_size(out_features) = 4*out_features bytes (int32
 * accumulators), 4-byte aligned.
 * Loop (input-stationary): per sample the accumulators start at the bias; per input i, x_i is
 * loaded once and its column weight_t[i][0..out) is added: acc[j] += x_i * w (int8*int8 as
 * int16 into int32).
 *   dense:    every column, every weight, no test.
 *   zeroskip: x_i == 0 skips the column; a zero w skips its multiply.
 *   unit:     x_i == 0 skips the column; else t_i = approx(T_q, |x_i|) is computed once (bitshift
 *             loop, tree walk or table lookup; all three give the same t_i for the same
 *             quantized layer), t_i >= 128 skips the column (no |w| <= 128 exceeds it), else per
 *             weight one 8-bit add and compare, (uint8_t)(w + t_i) > 2*t_i, which is |w| > t_i.
 * Counters (UNIT_S8_COUNTS): dense: dense = executed = batch*in*out. zeroskip/unit: zero_weight =
 * batch*(zero weights), zero_activation = the nonzero weights of the columns of zero inputs;
 * unit also threshold, compares = batch*in + nnz(x)*out and divisions = nnz(x) (over the batch). */
int32_t unit_linear_s8_scratch_size(int32_t out_features);
int32_t unit_linear_dense_s8(const int8_t *x, int32_t batch, int32_t in_features, int32_t out_features,
                             const UNIT_TABLE int8_t *weight_t, const unit_requant_s8 *requant, int8_t *y,
                             int32_t *scratch, unit_counts *counts);
int32_t unit_linear_zeroskip_s8(const int8_t *x, int32_t batch, int32_t in_features, int32_t out_features,
                                const UNIT_TABLE int8_t *weight_t, const unit_requant_s8 *requant, int8_t *y,
                                int32_t *scratch, unit_counts *counts);
/* t_i = min(T_q >> max(bit_length(|x_i|), shift_start), 255); threshold_q = T_q >= 0, shift_start in [0, 31].
 * Computed as the paper's loop: t = T_q >> shift_start once per call, then per input
 * a = |x_i| >> shift_start and `while (a) { a >>= 1; t >>= 1; }` (at most 8 steps). */
int32_t unit_linear_unit_bitshift_s8(const int8_t *x, int32_t batch, int32_t in_features, int32_t out_features,
                                     const UNIT_TABLE int8_t *weight_t, int32_t threshold_q, int32_t shift_start,
                                     const unit_requant_s8 *requant, int8_t *y, int32_t *scratch, unit_counts *counts);
/* t_i = the quotient of the leaf the tree walk reaches for |x_i| (one compare per level). */
int32_t unit_linear_unit_bintree_s8(const int8_t *x, int32_t batch, int32_t in_features, int32_t out_features,
                                    const UNIT_TABLE int8_t *weight_t, const unit_quotient_tree_s8 *tree,
                                    const unit_requant_s8 *requant, int8_t *y, int32_t *scratch, unit_counts *counts);
/* quotient_table[129]: t for |x| = 0..128 (entry 0 unused). t_i = quotient_table[|x_i|]. */
int32_t unit_linear_unit_table_s8(const int8_t *x, int32_t batch, int32_t in_features, int32_t out_features,
                                  const UNIT_TABLE int8_t *weight_t, const UNIT_TABLE uint8_t *quotient_table,
                                  const unit_requant_s8 *requant, int8_t *y, int32_t *scratch, unit_counts *counts);

/* UnIT linear with an early exit: the outputs and cause counters of unit_linear_unit_*_s8 from
 * columns sorted at export: weight_sorted [in][out + 1] int8, each input's column sorted by |w|,
 * largest first, ending with a zero (the sentinel); index [in][out] uint16, the output of each
 * sorted weight (out <= 65535). Per nonzero x_i the walk stops at the first |w| <= t_i, so the
 * rejected weights after it are never read. unit_linear_sorted_s8_check validates the tables (the
 * kernels do not repeat that pass). scratch as unit_linear_s8_scratch_size. Counters
 * (UNIT_S8_COUNTS): dense, zero_weight, zero_activation, threshold, executed, divisions as the
 * unsorted kernels; compares = batch*in + per nonzero input with t_i < 128, kept + 1. */
int32_t unit_linear_sorted_s8_check(const UNIT_TABLE int8_t *weight_sorted, const UNIT_TABLE uint16_t *index,
                                    int32_t in_features, int32_t out_features);
int32_t unit_linear_unit_sorted_bitshift_s8(const int8_t *x, int32_t batch, int32_t in_features,
                                            int32_t out_features, const UNIT_TABLE int8_t *weight_sorted,
                                            const UNIT_TABLE uint16_t *index, int32_t threshold_q,
                                            int32_t shift_start, const unit_requant_s8 *requant, int8_t *y,
                                            int32_t *scratch, unit_counts *counts);
int32_t unit_linear_unit_sorted_bintree_s8(const int8_t *x, int32_t batch, int32_t in_features,
                                           int32_t out_features, const UNIT_TABLE int8_t *weight_sorted,
                                           const UNIT_TABLE uint16_t *index, const unit_quotient_tree_s8 *tree,
                                           const unit_requant_s8 *requant, int8_t *y, int32_t *scratch,
                                           unit_counts *counts);
int32_t unit_linear_unit_sorted_table_s8(const int8_t *x, int32_t batch, int32_t in_features, int32_t out_features,
                                         const UNIT_TABLE int8_t *weight_sorted, const UNIT_TABLE uint16_t *index,
                                         const UNIT_TABLE uint8_t *quotient_table, const unit_requant_s8 *requant,
                                         int8_t *y, int32_t *scratch, unit_counts *counts);

/* Static-sparse int8 kernels (TTP, train-time pruned weights): only the nonzero weights are
 * stored, as records in flash, so a zero weight costs nothing; output-stationary, each output's
 * accumulator in registers over its channel's records (unit_internal_sparse_s8.h: assembly runs on
 * AVR and MSP430 unless UNIT_PORTABLE_KERNELS=1). The layout (SONIC's nonzero values with offsets):
 *   nonzeros[O]   uint16: the nonzero weights of each output channel (0 allowed: the bias alone);
 *   records[2*N]  int16 pairs {offset, weight}, output channel by output channel, N = sum of
 *                 nonzeros; offset (read as uint16) = c*H*W + ky*dilation_y*W + kx*dilation_x, the
 *                 input element from the output's field origin (c within the channel's group;
 *                 Linear: the input index); weight in [-128, 127] (the quantizer: [-127, 127]);
 *                 ascending offsets within a channel (the exporter's order; any order is exact);
 *   taps[2*N]     uint8 pairs {ky, kx} of the records, for Conv layers with padding (the outputs
 *                 whose field the padding clips test them); 0 (NULL) without padding and for Linear.
 * records and taps may be 0 (NULL) when N = 0. offset <= (C/groups - 1)*H*W + (KH - 1)*dilation_y*W
 * + (KW - 1)*dilation_x, the field's span, <= 65535 (with padding, a record outside the input is
 * never read). On AVR a channel of more than 341 records takes the C run (the assembly run's
 * 24-bit accumulator holds 341 biased products). Counters (UNIT_S8_COUNTS) as the zeroskip kernels: zero_weight
 * for the weights not stored, zero_activation for the products of a stored weight with x == 0 or a
 * padding position (the kernel multiplies such an x: the product is 0), executed the rest.
 * Hosts check every record's range (UNIT_ERR_ARGUMENT); MCU builds trust the exporter's tables. */
typedef struct {
    const UNIT_TABLE uint16_t *nonzeros;
    const UNIT_TABLE int16_t *records;
    const UNIT_TABLE uint8_t *taps;
} unit_sparse_s8;

/* Convolution over the nonzero weights: params, x, requant, y, scratch (4*OW bytes of
 * unit_conv2d_s8_scratch_size suffice) as unit_conv2d_dense_s8. */
int32_t unit_conv2d_sparse_s8(const unit_conv2d_params *params, const int8_t *x, const unit_sparse_s8 *sparse,
                              const unit_requant_s8 *requant, int8_t *y, int32_t *scratch, unit_counts *counts);
/* The convolution over the nonzero weights followed by a max-pool of pool_height x pool_width windows
 * with the same stride, pooled on the accumulators as unit_conv2d_dense_pool_s8 (its y, pool and
 * scratch rules); outputs = unit_maxpool2d_s8 of unit_conv2d_sparse_s8's, counters = its counters. */
int32_t unit_conv2d_sparse_pool_s8(const unit_conv2d_params *params, int32_t pool_height, int32_t pool_width,
                                   const int8_t *x, const unit_sparse_s8 *sparse, const unit_requant_s8 *requant,
                                   int8_t *y, int32_t *scratch, unit_counts *counts);
/* UnIT on static-sparse weights: the convolution over the nonzero weights with each weight's UnIT
 * threshold in its record, sparse->records int16 {offset, tau + 1, weight} (tau + 1 in [0, 256],
 * offset as unit_conv2d_sparse_s8's), taps as there; a product is accumulated where |x| > tau.
 * Outputs and counters by cause equal unit_conv2d_unit_s8's with the same weights and tau
 * (compares = output positions x stored weights). params, requant, y, scratch as unit_conv2d_sparse_s8. */
int32_t unit_conv2d_sparse_tau_s8(const unit_conv2d_params *params, const int8_t *x, const unit_sparse_s8 *sparse,
                                  const unit_requant_s8 *requant, int8_t *y, int32_t *scratch, unit_counts *counts);
/* Convolution over the nonzero weights that also skips the kernel rows of a field whose input rows
 * are zero within the field's columns (zero activations: an MNIST digit's background, zero maps after
 * ReLU), and gives an output whose whole field is zero its requantized bias without a MAC. sparse as
 * unit_conv2d_sparse_s8; row_starts[O*G + 1] (G = C/groups * KH <= 254) uint16: the index of the
 * first record of output channel o's kernel row j = c*KH + ky (c within the group) at o*G + j, the
 * records stored at O*G (records are in (c, ky, kx) order within a channel, the exporter's order).
 * W, H, OW <= 32767. scratch: unit_conv2d_sparse_zeroact_s8_scratch_size bytes (4-byte aligned).
 * Outputs and counters equal unit_conv2d_sparse_s8's (a skipped product is counted zero_activation,
 * as that kernel counts the zero products it multiplies). Hosts check row_starts; MCUs trust it. */
int32_t unit_conv2d_sparse_zeroact_s8(const unit_conv2d_params *params, const int8_t *x, const unit_sparse_s8 *sparse,
                                      const UNIT_TABLE uint16_t *row_starts, const unit_requant_s8 *requant,
                                      int8_t *y, int32_t *scratch, unit_counts *counts);
/* Bytes of scratch unit_conv2d_sparse_zeroact_s8 needs: 15*OW + 1 + 4*C*H + 4*G + O, rounded up to 4
 * (or a negative status for a bad geometry). */
int32_t unit_conv2d_sparse_zeroact_s8_scratch_size(const unit_conv2d_params *params);
/* Linear over the nonzero weights: arguments as unit_linear_dense_s8 (scratch is checked non-null,
 * not used), in_features <= 65535. */
int32_t unit_linear_sparse_s8(const int8_t *x, int32_t batch, int32_t in_features, int32_t out_features,
                              const unit_sparse_s8 *sparse, const unit_requant_s8 *requant, int8_t *y,
                              int32_t *scratch, unit_counts *counts);

/* UnIT convolution over the static-sparse layout (TTP+UnIT, FATReLU+UnIT): the outputs and cause
 * counters of unit_conv2d_unit_s8 for the same weights and tau, visiting only the stored (nonzero)
 * weights, each only over the activations it keeps (|x| > tau), with no test per skipped
 * connection: per sample every input row is counting-sorted once by its activations' level (the
 * layer's distinct thresholds); a weight visits, per output row, the head of one row's list
 * (unit_internal_rowlists_s8.h). The tables (built at export, unitprune.kernels.unit_sparse_s8):
 *   counts[O]     uint16: the stored weights of each output channel (0 allowed: the bias alone);
 *   records[5*N]  uint8 {c (within the group), ky, kx, weight (int8 bits, nonzero), level},
 *                 output channel by output channel; level j in [0, K) means tau = levels[j],
 *                 255 means tau >= 128 (the weight keeps nothing; it is stored for the counters);
 *   levels[K]     uint8, strictly ascending, < 128 (K = level_count in [0, 128]).
 * scratch: unit_conv2d_unit_sparse_s8_scratch_size(params, K) bytes, 4-byte aligned; the
 * accumulators hold params->block_rows output rows (0: the whole plane; outputs and counters do
 * not depend on it). Limits: W <= 255, OW <= 16383, C/groups <= 256 (UNIT_ERR_ARGUMENT otherwise,
 * also from the size function). Counters (UNIT_S8_COUNTS): dense, zero_weight, zero_activation,
 * threshold, executed as unit_conv2d_unit_s8; compares = the list entries visited (kept, and
 * rejected by the column test); divisions = 0. Hosts check the tables (UNIT_ERR_ARGUMENT); MCU
 * builds trust the exporter's. */
typedef struct {
    const UNIT_TABLE uint16_t *counts;
    const UNIT_TABLE uint8_t *records;
    const UNIT_TABLE uint8_t *levels;
    int32_t level_count;
} unit_unit_sparse_s8;
int32_t unit_conv2d_unit_sparse_s8_scratch_size(const unit_conv2d_params *params, int32_t levels);
int32_t unit_conv2d_unit_sparse_s8(const unit_conv2d_params *params, const int8_t *x,
                                   const unit_unit_sparse_s8 *sparse, const unit_requant_s8 *requant, int8_t *y,
                                   int32_t *scratch, unit_counts *counts);

/* In-place ReLU on n >= 0 int8 values: x = max(x, 0). */
int32_t unit_relu_s8(int8_t *x, int32_t n);

/* In-place thresholded ReLU (FATReLU) on n >= 0 int8 values: x = x if x > threshold_q else 0.
 * threshold_q in [0, 127] (0: the same as unit_relu_s8; 127 zeroes everything). */
int32_t unit_threshold_relu_s8(int8_t *x, int32_t n, int32_t threshold_q);

/* Max-pool, no padding, dilation 1, floor mode: x [batch][C][H][W] -> y [batch][C][OH][OW],
 * OH = (H - kernel_height) / stride_y + 1 (and the same for W). batch >= 0; channels, sizes,
 * kernel sizes, strides >= 1; kernel_height <= in_height, kernel_width <= in_width. y must not
 * alias x. */
int32_t unit_maxpool2d_s8(const int8_t *x, int32_t batch, int32_t channels, int32_t in_height, int32_t in_width,
                          int32_t kernel_height, int32_t kernel_width, int32_t stride_y, int32_t stride_x, int8_t *y);

/* Average pool, no padding, floor mode, same scale in and out (zero point 0): x [batch][C][H][W] ->
 * y [batch][C][OH][OW] with OH, OW as for unit_maxpool2d_s8. Per window of n = kernel_height *
 * kernel_width values, acc = their int32 sum and y = clamp(acc > 0 ? (acc + n/2) / n : (acc - n/2) / n,
 * -128, 127) with C's truncating division (TFLite's reference rounding, docs/fixed_point.md).
 * Same argument rules as unit_maxpool2d_s8, and n < 2**24. y must not alias x. */
int32_t unit_avgpool2d_s8(const int8_t *x, int32_t batch, int32_t channels, int32_t in_height, int32_t in_width,
                          int32_t kernel_height, int32_t kernel_width, int32_t stride_y, int32_t stride_x, int8_t *y);

#ifdef __cplusplus
}
#endif

#endif /* UNIT_KERNELS_S8_H */
