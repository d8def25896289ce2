/* SPDX-License-Identifier: MIT */
/* main_mcu.c: the MCU runner of an exported model, copied by unitprune's exporter
 * (unitprune/mcu/export/c_templates) as main.c of an MCU export.
 *
 * Loops over the test samples embedded in flash (samples.h), copies each to RAM and runs one
 * inference between the measurement markers of unit_mcu.h (region "inference"; with
 * -DUNIT_MODEL_MARKERS=1 the regions are per layer instead, labelled with the layer names, from
 * model.c), then emits the outputs with unit_mcu_emit for the bit-exact check. With counters
 * compiled in (-DUNIT_S8_COUNTS=1), a last region "counts" carries unit_model_counts. A far-tables
 * export (AVR beyond 64 KB) declares the samples UNIT_TABLE, which is empty everywhere else; there
 * a sample beyond the first 32 KB is found through unit_table_offset_s8 (avr-gcc adds an integer
 * to a far pointer in 16 bits). */
#include <stdint.h>

#include "model.h"
#include "samples.h"
#include "unit_mcu.h"
#if defined(UNIT_FAR_TABLES) && UNIT_FAR_TABLES
#include "unit_kernels_stream_s8.h"
#endif

#ifndef UNIT_MODEL_MARKERS
#define UNIT_MODEL_MARKERS 0
#endif

static int8_t input[UNIT_MODEL_INPUT_SIZE];
static int8_t output[UNIT_MODEL_OUTPUT_SIZE];

static void report_error(int32_t status) {
    unit_mcu_label("error");
    UNIT_MCU_START();
    UNIT_MCU_STOP();
    unit_mcu_emit(&status, (uint16_t)sizeof(status));
    unit_mcu_done();
}

int main(void) {
    int32_t sample;
    int32_t i;
    int32_t status = unit_model_check();
    if (status != UNIT_OK) {
        report_error(status);
    }
    for (sample = 0; sample < UNIT_MODEL_SAMPLES; sample++) {
#if defined(UNIT_FAR_TABLES) && UNIT_FAR_TABLES
        const UNIT_TABLE int8_t *source = unit_table_offset_s8(unit_model_samples, sample * UNIT_MODEL_INPUT_SIZE);
#else
        const UNIT_TABLE int8_t *source = unit_model_samples + sample * UNIT_MODEL_INPUT_SIZE;
#endif
        for (i = 0; i < UNIT_MODEL_INPUT_SIZE; i++) {
            input[i] = UNIT_READ_S8(source + i);
        }
#if !UNIT_MODEL_MARKERS
        unit_mcu_label("inference");
        UNIT_MCU_START();
#endif
        status = unit_model_run(input, output);
#if !UNIT_MODEL_MARKERS
        UNIT_MCU_STOP();
#endif
        if (status != UNIT_OK) {
            report_error(status);
        }
        unit_mcu_emit(output, (uint16_t)UNIT_MODEL_OUTPUT_SIZE);
    }
#if UNIT_S8_COUNTS && UNIT_MODEL_LAYERS > 0
    unit_mcu_label("counts");
    UNIT_MCU_START();
    UNIT_MCU_STOP();
    unit_mcu_emit(unit_model_counts, (uint16_t)sizeof(unit_model_counts));
#endif
    unit_mcu_done();
    return 0;
}
