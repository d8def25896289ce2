/* The Cortex-M0+ dense convolution against the portable one (tests/test_mcu_cores.py): for each
 * case of conv_cases.h (written by the test) both kernels run on the same data; each output goes
 * back in its own region ("ref<i>": unit_conv2d_dense_s8, "m0<i>": unit_conv2d_dense_s8_mcu32,
 * both timed). */
#include "conv_cases.h"
#include "unit_kernels_s8.h"
#include "unit_mcu.h"

static int8_t y[CONV_MAX_Y];
static int32_t scratch[CONV_MAX_SCRATCH];

static void run(int32_t index, const unit_conv2d_params *p, const int8_t *x, const int8_t *w, const unit_requant_s8 *r,
                int32_t y_size, int m0) {
    char label[8] = {m0 ? 'm' : 'r', m0 ? '0' : 'e', m0 ? (char)('a' + index) : 'f', m0 ? 0 : (char)('a' + index), 0};
    int32_t status;
    unit_mcu_label(label);
    UNIT_MCU_START();
    status = m0 ? unit_conv2d_dense_s8_mcu32(p, x, w, r, y, scratch, 0) : unit_conv2d_dense_s8(p, x, w, r, y, scratch, 0);
    UNIT_MCU_STOP();
    if (status != UNIT_OK) {
        y[0] = 0x55;
        y_size = 1;
    }
    unit_mcu_emit(y, (size_t)y_size);
}

int main(void) {
    int32_t i;
    for (i = 0; i < CONV_CASES; i++) {
        run(i, &conv_params[i], conv_x[i], conv_w[i], &conv_requant[i], conv_y_size[i], 0);
        run(i, &conv_params[i], conv_x[i], conv_w[i], &conv_requant[i], conv_y_size[i], 1);
    }
    unit_mcu_done();
}
