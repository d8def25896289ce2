/* SPDX-License-Identifier: MIT */
/* unit_conv2d_unit_sparse_s8_scratch_size.c -- bytes of scratch of unit_conv2d_unit_sparse_s8
 * (layout in unit_internal_rowlists_s8.h). */
#include "unit_internal_rowlists_s8.h"

int32_t unit_conv2d_unit_sparse_s8_scratch_size(const unit_conv2d_params *params, int32_t levels) {
    int32_t out_height, out_width;
    unit__rowlists_parts_s8 l;
    if (unit__conv2d_geometry(params, &out_height, &out_width) != UNIT_OK) {
        return UNIT_ERR_ARGUMENT;
    }
    unit__rowlists_layout_s8(params, out_height, out_width, levels, &l);
    return l.total < 0 ? UNIT_ERR_ARGUMENT : (l.total + 3) / 4 * 4;
}
