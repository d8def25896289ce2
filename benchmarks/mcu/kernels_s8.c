/* SPDX-License-Identifier: MIT */
/* kernels_s8.c -- MCU firmware of benchmarks/kernels_s8_mcu.py (AVR and MSP430): runs every int8
 * kernel variant of one convolution and one linear layer (constants in flash, from the generated
 * kernels_s8_data.h) between the markers of unit_mcu.h and streams each output back, so the driver
 * can check it bit for bit against the host library and report exact cycles. Built by
 * unitprune.mcu.targets.build with the library's int8 sources (the csrc files with _s8 in their name). */
#include "kernels_s8_data.h"
#include "unit_mcu.h"
#include "unit_kernels_s8.h"

static int8_t conv_y[CONV_N * CONV_O * CONV_OH * CONV_OW];
static int8_t linear_y[LIN_OUT];
static int32_t scratch[SCRATCH_WORDS];
static int32_t requantized[REQ_N];

static void report(int32_t status, const int8_t *y, uint16_t bytes) {
    int8_t code = (int8_t)status;
    unit_mcu_emit(&code, 1); /* first byte: the status (0 = UNIT_OK) */
    unit_mcu_emit(y, bytes);
}

int main(void) {
    const unit_conv2d_params params = {CONV_N, CONV_C, CONV_H, CONV_W, CONV_O, CONV_K, CONV_K, 1, 1, 1, 1,
                                       CONV_PAD, CONV_PAD, CONV_PAD, CONV_PAD, 1, 0};
    const unit_requant_s8 conv_requant = {conv_bias, conv_multiplier, conv_shift, 0, 127};
    const unit_requant_s8 linear_requant = {lin_bias, lin_multiplier, lin_shift, -128, 127};
    const unit_quotient_tree_s8 tree = {LIN_TREE_NODES, lin_tree_split, lin_tree_left, lin_tree_right,
                                        lin_tree_quotient};
    int32_t status;

    unit_mcu_label("conv_dense");
    UNIT_MCU_START();
    status = unit_conv2d_dense_s8(&params, conv_x, conv_w, &conv_requant, conv_y, scratch, 0);
    UNIT_MCU_STOP();
    report(status, conv_y, sizeof conv_y);

    unit_mcu_label("conv_zeroskip");
    UNIT_MCU_START();
    status = unit_conv2d_zeroskip_s8(&params, conv_x, conv_w, &conv_requant, conv_y, scratch, 0);
    UNIT_MCU_STOP();
    report(status, conv_y, sizeof conv_y);

    unit_mcu_label("conv_unit");
    UNIT_MCU_START();
    status = unit_conv2d_unit_s8(&params, conv_x, conv_w, conv_tau, &conv_requant, conv_y, scratch, 0);
    UNIT_MCU_STOP();
    report(status, conv_y, sizeof conv_y);

    unit_mcu_label("linear_dense");
    UNIT_MCU_START();
    status = unit_linear_dense_s8(lin_x, 1, LIN_IN, LIN_OUT, lin_wt, &linear_requant, linear_y, scratch, 0);
    UNIT_MCU_STOP();
    report(status, linear_y, sizeof linear_y);

    unit_mcu_label("linear_zeroskip");
    UNIT_MCU_START();
    status = unit_linear_zeroskip_s8(lin_x, 1, LIN_IN, LIN_OUT, lin_wt, &linear_requant, linear_y, scratch, 0);
    UNIT_MCU_STOP();
    report(status, linear_y, sizeof linear_y);

    unit_mcu_label("linear_bitshift");
    UNIT_MCU_START();
    status = unit_linear_unit_bitshift_s8(lin_x, 1, LIN_IN, LIN_OUT, lin_wt, LIN_TQ, LIN_SHIFT_START, &linear_requant,
                                          linear_y, scratch, 0);
    UNIT_MCU_STOP();
    report(status, linear_y, sizeof linear_y);

    unit_mcu_label("linear_bintree");
    UNIT_MCU_START();
    status = unit_linear_unit_bintree_s8(lin_x, 1, LIN_IN, LIN_OUT, lin_wt, &tree, &linear_requant, linear_y, scratch,
                                         0);
    UNIT_MCU_STOP();
    report(status, linear_y, sizeof linear_y);

    unit_mcu_label("linear_table");
    UNIT_MCU_START();
    status = unit_linear_unit_table_s8(lin_x, 1, LIN_IN, LIN_OUT, lin_wt, lin_table, &linear_requant, linear_y,
                                       scratch, 0);
    UNIT_MCU_STOP();
    report(status, linear_y, sizeof linear_y);

    unit_mcu_label("requantize");
    UNIT_MCU_START();
    for (status = 0; status < REQ_N; status++) {
        requantized[status] = unit_requantize_s8(req_acc[status], req_multiplier[status], req_shift[status]);
    }
    UNIT_MCU_STOP();
    unit_mcu_emit(requantized, sizeof requantized);

    unit_mcu_done();
    return 0;
}
