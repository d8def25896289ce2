/* SPDX-License-Identifier: MIT */
/* mcu_marker.h -- firmware side of benchmarks/mcu/simavr_cycles.c: mark timed regions, name them
 * and stream result bytes through three general-purpose I/O registers that the simulator harness
 * watches. Each write is one OUT instruction (1 cycle); nothing else touches these registers.
 *
 *   mcu_label("name");  MCU_START();  ...timed code...  MCU_STOP();  mcu_emit(buf, bytes);
 *   ...
 *   mcu_done();   // never returns
 *
 * A region's cycle count covers the start OUT and all code up to the stop OUT (exact, from the
 * simulator's cycle counter; an empty region measures 2 cycles: the start OUT and the LDI that
 * loads the stop value). Emitted bytes belong to the region labelled last. Labels and
 * emitted data cost cycles, so emit outside START/STOP.
 */
#ifndef MCU_MARKER_H
#define MCU_MARKER_H

#include <avr/interrupt.h>
#include <avr/io.h>
#include <avr/sleep.h>
#include <stdint.h>

/* The memory clobber keeps the compiler from moving loads/stores across the markers. */
#define MCU_START() do { __asm__ __volatile__("" ::: "memory"); GPIOR0 = 1; __asm__ __volatile__("" ::: "memory"); } while (0)
#define MCU_STOP() do { __asm__ __volatile__("" ::: "memory"); GPIOR0 = 2; __asm__ __volatile__("" ::: "memory"); } while (0)

static inline void mcu_label(const char *label) {
    while (*label) {
        GPIOR2 = (uint8_t)*label++;
    }
}

static inline void mcu_emit(const void *data, uint16_t bytes) {
    const uint8_t *p = (const uint8_t *)data;
    while (bytes--) {
        GPIOR1 = *p++;
    }
}

/* Done marker; then sleep with interrupts off, which also ends a plain simavr run. */
static inline void mcu_done(void) {
    GPIOR0 = 3;
    cli();
    sleep_enable();
    for (;;) {
        sleep_cpu();
    }
}

#endif /* MCU_MARKER_H */
