/* The timing-table check of tests/test_mcu_cores.py: an empty region and one call of the
 * hand-counted assembly listing (listing_arm.S / listing_riscv.S) per region. */
#include "unit_mcu.h"

void listing(void);

int main(void) {
    unit_mcu_label("empty");
    UNIT_MCU_START();
    UNIT_MCU_STOP();
    unit_mcu_label("listing");
    UNIT_MCU_START();
    listing();
    UNIT_MCU_STOP();
    unit_mcu_done();
}
