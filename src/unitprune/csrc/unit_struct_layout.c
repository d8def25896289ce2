/* SPDX-License-Identifier: MIT */
/* unit_struct_layout.c -- sizeof and field offsets of every public struct (see unit_types.h), so
 * that bindings (unitprune's ctypes mirrors) can check their layouts against the compiler's. */
#include <stddef.h>

#include "unit_kernels.h"

#define UNIT__FIELD(type, name) ((int32_t)offsetof(type, name))

int32_t unit_struct_layout(int32_t which, int32_t field) {
    int32_t size;
    int32_t count;
    int32_t offsets[19];
    switch (which) {
    case UNIT_STRUCT_COUNTS:
        size = (int32_t)sizeof(unit_counts);
        count = 7;
        offsets[0] = UNIT__FIELD(unit_counts, dense);
        offsets[1] = UNIT__FIELD(unit_counts, zero_weight);
        offsets[2] = UNIT__FIELD(unit_counts, zero_activation);
        offsets[3] = UNIT__FIELD(unit_counts, threshold);
        offsets[4] = UNIT__FIELD(unit_counts, executed);
        offsets[5] = UNIT__FIELD(unit_counts, compares);
        offsets[6] = UNIT__FIELD(unit_counts, divisions);
        break;
    case UNIT_STRUCT_CONV2D_PARAMS:
        size = (int32_t)sizeof(unit_conv2d_params);
        count = 17;
        offsets[0] = UNIT__FIELD(unit_conv2d_params, batch);
        offsets[1] = UNIT__FIELD(unit_conv2d_params, in_channels);
        offsets[2] = UNIT__FIELD(unit_conv2d_params, in_height);
        offsets[3] = UNIT__FIELD(unit_conv2d_params, in_width);
        offsets[4] = UNIT__FIELD(unit_conv2d_params, out_channels);
        offsets[5] = UNIT__FIELD(unit_conv2d_params, kernel_height);
        offsets[6] = UNIT__FIELD(unit_conv2d_params, kernel_width);
        offsets[7] = UNIT__FIELD(unit_conv2d_params, stride_y);
        offsets[8] = UNIT__FIELD(unit_conv2d_params, stride_x);
        offsets[9] = UNIT__FIELD(unit_conv2d_params, dilation_y);
        offsets[10] = UNIT__FIELD(unit_conv2d_params, dilation_x);
        offsets[11] = UNIT__FIELD(unit_conv2d_params, pad_top);
        offsets[12] = UNIT__FIELD(unit_conv2d_params, pad_bottom);
        offsets[13] = UNIT__FIELD(unit_conv2d_params, pad_left);
        offsets[14] = UNIT__FIELD(unit_conv2d_params, pad_right);
        offsets[15] = UNIT__FIELD(unit_conv2d_params, groups);
        offsets[16] = UNIT__FIELD(unit_conv2d_params, block_rows);
        break;
    case UNIT_STRUCT_LINEAR_PLAN_F32:
        size = (int32_t)sizeof(unit_linear_plan_f32);
        count = 19;
        offsets[0] = UNIT__FIELD(unit_linear_plan_f32, in_features);
        offsets[1] = UNIT__FIELD(unit_linear_plan_f32, out_features);
        offsets[2] = UNIT__FIELD(unit_linear_plan_f32, group_size);
        offsets[3] = UNIT__FIELD(unit_linear_plan_f32, num_groups);
        offsets[4] = UNIT__FIELD(unit_linear_plan_f32, scatter_cost);
        offsets[5] = UNIT__FIELD(unit_linear_plan_f32, lanes);
        offsets[6] = UNIT__FIELD(unit_linear_plan_f32, method);
        offsets[7] = UNIT__FIELD(unit_linear_plan_f32, shift_start);
        offsets[8] = UNIT__FIELD(unit_linear_plan_f32, thresholds);
        offsets[9] = UNIT__FIELD(unit_linear_plan_f32, lane_weight);
        offsets[10] = UNIT__FIELD(unit_linear_plan_f32, lane_cutoff);
        offsets[11] = UNIT__FIELD(unit_linear_plan_f32, sorted_weight);
        offsets[12] = UNIT__FIELD(unit_linear_plan_f32, sorted_output);
        offsets[13] = UNIT__FIELD(unit_linear_plan_f32, sorted_cutoff);
        offsets[14] = UNIT__FIELD(unit_linear_plan_f32, segment_start);
        offsets[15] = UNIT__FIELD(unit_linear_plan_f32, segment_stats);
        offsets[16] = UNIT__FIELD(unit_linear_plan_f32, column_cutoff);
        offsets[17] = UNIT__FIELD(unit_linear_plan_f32, column_nonzero);
        offsets[18] = UNIT__FIELD(unit_linear_plan_f32, nonzero_weights);
        break;
    case UNIT_STRUCT_CONV2D_PLAN_F32:
        size = (int32_t)sizeof(unit_conv2d_plan_f32);
        count = 6;
        offsets[0] = UNIT__FIELD(unit_conv2d_plan_f32, row_lanes);
        offsets[1] = UNIT__FIELD(unit_conv2d_plan_f32, lane_weight);
        offsets[2] = UNIT__FIELD(unit_conv2d_plan_f32, lane_tau);
        offsets[3] = UNIT__FIELD(unit_conv2d_plan_f32, tap_stats);
        offsets[4] = UNIT__FIELD(unit_conv2d_plan_f32, row_stats);
        offsets[5] = UNIT__FIELD(unit_conv2d_plan_f32, channel_stats);
        break;
    case UNIT_STRUCT_REQUANT_S8:
        size = (int32_t)sizeof(unit_requant_s8);
        count = 5;
        offsets[0] = UNIT__FIELD(unit_requant_s8, bias);
        offsets[1] = UNIT__FIELD(unit_requant_s8, multiplier);
        offsets[2] = UNIT__FIELD(unit_requant_s8, shift);
        offsets[3] = UNIT__FIELD(unit_requant_s8, act_min);
        offsets[4] = UNIT__FIELD(unit_requant_s8, act_max);
        break;
    case UNIT_STRUCT_QUOTIENT_TREE_S8:
        size = (int32_t)sizeof(unit_quotient_tree_s8);
        count = 5;
        offsets[0] = UNIT__FIELD(unit_quotient_tree_s8, nodes);
        offsets[1] = UNIT__FIELD(unit_quotient_tree_s8, split);
        offsets[2] = UNIT__FIELD(unit_quotient_tree_s8, left);
        offsets[3] = UNIT__FIELD(unit_quotient_tree_s8, right);
        offsets[4] = UNIT__FIELD(unit_quotient_tree_s8, quotient);
        break;
    default:
        return -1;
    }
    if (field == -1) {
        return size;
    }
    return field >= 0 && field < count ? offsets[field] : -1;
}
