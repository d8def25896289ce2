/* SPDX-License-Identifier: MIT */
/* unit_kernels_s8.h: the int8 (fixed-point) UnIT kernels. The contract they implement, bit for bit,
 * is docs/fixed_point.md; the Python integer reference (unitprune.mcu.reference) is their oracle.
 *
 * Rules (as for the float kernels): C99, no malloc, no libm, no float, fixed-width types, one
 * public function per file, int32_t sizes. Counters are compiled in only with UNIT_S8_COUNTS
 * defined to 1 (they cost cycles on an MCU); without it the `counts` argument is ignored.
 * Constant tables (weights, bias, requantization, tau, trees, quotient tables) are read through
 * the UNIT_READ_* macros, so on AVR they may live in flash (PROGMEM). Activations are int8 in RAM,
 * channel-major [C][H][W], `batch` samples one after the other.
 * Every function returns UNIT_OK, or UNIT_ERR_ARGUMENT / UNIT_ERR_SCRATCH. */
#ifndef UNIT_KERNELS_S8_H
#define UNIT_KERNELS_S8_H

#include "unit_types.h"

/* Requantization of a conv/linear output (docs/fixed_point.md, "Layers"): per output o,
 * y = clamp(unit_requantize_s8(acc, multiplier[o], shift[o]), act_min, act_max).
 * Ranges: multiplier in [0, 2**31 - 1] (Q31), shift in [-31, 30], -128 <= act_min <= act_max <= 127. */
typedef struct {
    const int32_t *bias;       /* [out] int32 at scale s_in * s_w[o] (may be NULL: no bias) */
    const int32_t *multiplier; /* [out] */
    const int8_t *shift;       /* [out] */
    int32_t act_min;           /* -128, or 0 with a fused ReLU */
    int32_t act_max;           /* 127 */
} unit_requant_s8;

/* A search tree over the bit length n in [1, 8] of |x_q|, leaves holding the quotient
 * min(T_q >> max(n, shift_start), 255). Node 0 is the root; an internal node i asks
 * |x_q| < (1 << (split[i] - 1)): yes -> left[i], no -> right[i]; a leaf has left[i] == -1 and its
 * quotient in quotient[i]. Built by unitprune.approx.BinTree (flat arrays). */
typedef struct {
    int32_t nodes;
    const int8_t *split;
    const int8_t *left;
    const int8_t *right;
    const uint8_t *quotient;
} unit_quotient_tree_s8;

/* TFLite MultiplyByQuantizedMultiplier(acc, multiplier, shift), no clamp. */
int32_t unit_requantize_s8(int32_t acc, int32_t multiplier, int32_t shift);

/* Convolution (Conv1d: in_height = kernel_height = 1). `params` as for the float kernels
 * (unit_types.h). weight [O][C/groups][KH][KW] int8; tau the same layout, uint8.
 * scratch: unit_conv2d_s8_scratch_size(params) bytes (int32 accumulators). */
int32_t unit_conv2d_s8_scratch_size(const unit_conv2d_params *params);
int32_t unit_conv2d_dense_s8(const unit_conv2d_params *params, const int8_t *x, const int8_t *weight,
                             const unit_requant_s8 *requant, int8_t *y, int32_t *scratch, unit_counts *counts);
int32_t unit_conv2d_zeroskip_s8(const unit_conv2d_params *params, const int8_t *x, const int8_t *weight,
                                const unit_requant_s8 *requant, int8_t *y, int32_t *scratch, unit_counts *counts);
int32_t unit_conv2d_unit_s8(const unit_conv2d_params *params, const int8_t *x, const int8_t *weight,
                            const uint8_t *tau, const unit_requant_s8 *requant, int8_t *y, int32_t *scratch,
                            unit_counts *counts);

/* Linear: x [batch][in], weight_t [in][out] (TRANSPOSED), y [batch][out].
 * scratch: unit_linear_s8_scratch_size(out_features) bytes (int32 accumulators). */
int32_t unit_linear_s8_scratch_size(int32_t out_features);
int32_t unit_linear_dense_s8(const int8_t *x, int32_t batch, int32_t in_features, int32_t out_features,
                             const int8_t *weight_t, const unit_requant_s8 *requant, int8_t *y, int32_t *scratch,
                             unit_counts *counts);
int32_t unit_linear_zeroskip_s8(const int8_t *x, int32_t batch, int32_t in_features, int32_t out_features,
                                const int8_t *weight_t, const unit_requant_s8 *requant, int8_t *y, int32_t *scratch,
                                unit_counts *counts);
/* t_i = min(T_q >> max(bit_length(|x_i|), shift_start), 255); threshold_q = T_q >= 0, shift_start in [0, 31]. */
int32_t unit_linear_unit_bitshift_s8(const int8_t *x, int32_t batch, int32_t in_features, int32_t out_features,
                                     const int8_t *weight_t, int32_t threshold_q, int32_t shift_start,
                                     const unit_requant_s8 *requant, int8_t *y, int32_t *scratch, unit_counts *counts);
int32_t unit_linear_unit_bintree_s8(const int8_t *x, int32_t batch, int32_t in_features, int32_t out_features,
                                    const int8_t *weight_t, const unit_quotient_tree_s8 *tree,
                                    const unit_requant_s8 *requant, int8_t *y, int32_t *scratch, unit_counts *counts);
/* quotient_table[129]: t for |x| = 0..128 (entry 0 unused). */
int32_t unit_linear_unit_table_s8(const int8_t *x, int32_t batch, int32_t in_features, int32_t out_features,
                                  const int8_t *weight_t, const uint8_t *quotient_table,
                                  const unit_requant_s8 *requant, int8_t *y, int32_t *scratch, unit_counts *counts);

/* In-place ReLU on n int8 values. */
int32_t unit_relu_s8(int8_t *x, int32_t n);

/* Max-pool, no padding, dilation 1, floor mode: x [batch][C][H][W] -> y [batch][C][OH][OW],
 * OH = (H - kernel_height) / stride_y + 1 (and the same for W). */
int32_t unit_maxpool2d_s8(const int8_t *x, int32_t batch, int32_t channels, int32_t in_height, int32_t in_width,
                          int32_t kernel_height, int32_t kernel_width, int32_t stride_y, int32_t stride_x, int8_t *y);

#endif /* UNIT_KERNELS_S8_H */
