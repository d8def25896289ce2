/* SPDX-License-Identifier: MIT */
/* unit_model_internal.h: the fixed part of an exported model.c, copied by unitprune's exporter
 * (unitprune/mcu/export/c_templates). Included by model.c only, after it defines:
 *   UNIT_MODEL_FAR_TABLES  1 when the tables reach beyond the first 64 KB of AVR flash, else 0;
 *   UNIT_MODEL_NEEDS_COPY  1 when unit_model_run copies a buffer (unit_model_copy), else 0.
 * model.h defines UNIT_MODEL_LAYERS and UNIT_S8_COUNTS. */
#ifndef UNIT_MODEL_INTERNAL_H
#define UNIT_MODEL_INTERNAL_H

#include "model.h"

#if UNIT_MODEL_FAR_TABLES
/* The tables reach beyond the first 64 KB of flash: every file must be built with far table
 * pointers (unit_types.h), as the Makefile does. */
#if defined(__AVR__) && !(defined(UNIT_FAR_TABLES) && UNIT_FAR_TABLES)
#error "this model needs far tables: build every file with -std=gnu99 -DUNIT_FAR_TABLES=1"
#endif
#endif

/* Per-layer regions for MCU measurements: build with -DUNIT_MODEL_MARKERS=1 (needs unit_mcu.h). */
#if defined(UNIT_MODEL_MARKERS) && UNIT_MODEL_MARKERS
#include "unit_mcu.h"
#define UNIT_MODEL_LAYER_START(label) do { unit_mcu_label(label); UNIT_MCU_START(); } while (0)
#define UNIT_MODEL_LAYER_STOP() UNIT_MCU_STOP()
#else
#define UNIT_MODEL_LAYER_START(label) do { } while (0)
#define UNIT_MODEL_LAYER_STOP() do { } while (0)
#endif

/* MAC counters (-DUNIT_S8_COUNTS=1): each conv/linear call counts into unit_model_call, which is
 * then added to its layer's row of unit_model_counts (summed over every unit_model_run call). */
#if UNIT_MODEL_LAYERS > 0
#if UNIT_S8_COUNTS
unit_counts unit_model_counts[UNIT_MODEL_LAYERS];
static unit_counts unit_model_call;
static void unit_model_add_counts(unit_counts *sum) {
    sum->dense += unit_model_call.dense;
    unit_model_call.dense = 0;
    sum->zero_weight += unit_model_call.zero_weight;
    unit_model_call.zero_weight = 0;
    sum->zero_activation += unit_model_call.zero_activation;
    unit_model_call.zero_activation = 0;
    sum->threshold += unit_model_call.threshold;
    unit_model_call.threshold = 0;
    sum->executed += unit_model_call.executed;
    unit_model_call.executed = 0;
    sum->compares += unit_model_call.compares;
    unit_model_call.compares = 0;
    sum->divisions += unit_model_call.divisions;
    unit_model_call.divisions = 0;
}
#define UNIT_MODEL_CALL_COUNTS (&unit_model_call)
#define UNIT_MODEL_ADD_COUNTS(layer) unit_model_add_counts(&unit_model_counts[layer])
#else
#define UNIT_MODEL_CALL_COUNTS ((unit_counts *)0)
#define UNIT_MODEL_ADD_COUNTS(layer) do { } while (0)
#endif
#endif

#if UNIT_MODEL_NEEDS_COPY
/* n int8 values from source to target (they do not overlap); no <string.h>: freestanding MCU
 * builds (MSP430 -nostdlib) have no C library headers */
static void unit_model_copy(int8_t *target, const int8_t *source, int32_t n) {
    int32_t i;
    for (i = 0; i < n; i++) {
        target[i] = source[i];
    }
}
#endif

#endif /* UNIT_MODEL_INTERNAL_H */
