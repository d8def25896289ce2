/* SPDX-License-Identifier: MIT */
/* unit_mcu.h -- the measurement markers of unitprune firmware, one protocol for every target
 * (built and run by unitprune.mcu.targets):
 *
 *   unit_mcu_label("conv1");  UNIT_MCU_START();  ...timed code...  UNIT_MCU_STOP();
 *   unit_mcu_emit(output, sizeof output);      // result bytes back to the host, bit-exact checks
 *   ...
 *   unit_mcu_done();                           // end of the run, never returns
 *
 * A region counts the cycles from its START marker (included) to its STOP marker (excluded).
 * Labels are at most 127 characters (longer ones are reported as an error by the host).
 * Emitted bytes belong to the region labelled last. Labels and emitted data cost cycles: keep
 * them outside START/STOP. The cost of an empty region is exact and documented in docs/mcu.md:
 *
 *   AVR (__AVR__), simavr: GPIOR0/1/2 writes, one OUT instruction (1 cycle) each; an empty region
 *       measures 2 cycles (the start OUT and the LDI of the stop value).
 *   MSP430 (__MSP430__), mspdebug sim: calls of bare-RET stubs in crt0.S on which the host sets
 *       breakpoints (reading MCLK, the label or the emitted bytes at each stop); an empty region
 *       measures the stub's RET (3 cycles) and the stop marker's CALL #imm (5): 8 cycles. START
 *       and STOP are inline `CALL` instructions that clobber no register, so they do not change
 *       the code around them.
 *   Cortex-M0/M0+ and RV32 (bare-metal __arm__ / __riscv), unitprune's unicorn emulator: calls of
 *       bare-return stubs in crt0.S whose addresses the emulator hooks; an empty region measures
 *       the start stub's return and the stop marker's call: on Cortex-M0+ BX LR (2) + BL (3) =
 *       5 cycles, 2 instructions; on RV32 RET + JAL: 2 instructions. The label/emit stubs print
 *       through semihosting under QEMU (the instruction-set check).
 *   host (anything else): lines "@unit_mcu ..." on stdout; cycles are not measured.
 */
#ifndef UNIT_MCU_H
#define UNIT_MCU_H

#include <stddef.h>
#include <stdint.h>

/* The memory clobbers keep the compiler from moving loads/stores across the markers. */
#define UNIT_MCU__BARRIER() __asm__ __volatile__("" ::: "memory")

#if defined(__AVR__)

#include <avr/interrupt.h>
#include <avr/io.h>
#include <avr/sleep.h>

#define UNIT_MCU__CONTROL(value) (GPIOR0 = (value))
#define UNIT_MCU__DATA(byte) (GPIOR1 = (byte))
#define UNIT_MCU__LABEL(character) (GPIOR2 = (character))

#elif defined(__MSP430__)

/* crt0.S: bare RETs (breakpoints of the host), and the end of the run (stack scan, end loop) */
void __unit_mcu_label(const char *label);
void __unit_mcu_emit(const void *data, size_t bytes);
void __unit_mcu_done(void) __attribute__((noreturn));

#elif (defined(__arm__) || defined(__riscv)) && !defined(__linux__)

#define UNIT_MCU__STUBS 1
/* crt0.S / unit_mcu_io.c: bare returns (hooked by the emulator), semihosting under QEMU, the end of the run */
void __unit_mcu_label(const char *label);
void __unit_mcu_emit(const void *data, size_t bytes);
void __unit_mcu_done(void) __attribute__((noreturn));

#else /* host */

#include <stdio.h>
#include <stdlib.h>

#endif

#if defined(__AVR__)

#define UNIT_MCU_START() do { UNIT_MCU__BARRIER(); UNIT_MCU__CONTROL(1); UNIT_MCU__BARRIER(); } while (0)
#define UNIT_MCU_STOP() do { UNIT_MCU__BARRIER(); UNIT_MCU__CONTROL(2); UNIT_MCU__BARRIER(); } while (0)

static inline void unit_mcu_label(const char *label) {
    while (*label) {
        UNIT_MCU__LABEL((uint8_t)*label++);
    }
}

static inline void unit_mcu_emit(const void *data, size_t bytes) {
    const uint8_t *p = (const uint8_t *)data;
    while (bytes--) {
        UNIT_MCU__DATA(*p++);
    }
}

static inline void unit_mcu_done(void) __attribute__((noreturn));
static inline void unit_mcu_done(void) {
    UNIT_MCU__BARRIER();
    UNIT_MCU__CONTROL(3);
    cli(); /* sleep with interrupts off: the harness stops at the done marker anyway */
    sleep_enable();
    for (;;) {
        sleep_cpu();
    }
}

#elif defined(__MSP430__)

#define UNIT_MCU_START() __asm__ __volatile__("call #__unit_mcu_start" ::: "memory")
#define UNIT_MCU_STOP() __asm__ __volatile__("call #__unit_mcu_stop" ::: "memory")

static inline void unit_mcu_label(const char *label) {
    __unit_mcu_label(label);
}

static inline void unit_mcu_emit(const void *data, size_t bytes) {
    __unit_mcu_emit(data, bytes);
}

static inline void unit_mcu_done(void) __attribute__((noreturn));
static inline void unit_mcu_done(void) {
    UNIT_MCU__BARRIER();
    __unit_mcu_done();
}

#elif defined(UNIT_MCU__STUBS)

#if defined(__arm__)
#define UNIT_MCU_START() __asm__ __volatile__("bl __unit_mcu_start" ::: "lr", "memory")
#define UNIT_MCU_STOP() __asm__ __volatile__("bl __unit_mcu_stop" ::: "lr", "memory")
#else
#define UNIT_MCU_START() __asm__ __volatile__("jal ra, __unit_mcu_start" ::: "ra", "memory")
#define UNIT_MCU_STOP() __asm__ __volatile__("jal ra, __unit_mcu_stop" ::: "ra", "memory")
#endif

static inline void unit_mcu_label(const char *label) {
    __unit_mcu_label(label);
}

static inline void unit_mcu_emit(const void *data, size_t bytes) {
    __unit_mcu_emit(data, bytes);
}

static inline void unit_mcu_done(void) __attribute__((noreturn));
static inline void unit_mcu_done(void) {
    UNIT_MCU__BARRIER();
    __unit_mcu_done();
}

#else /* host: the same records as text */

#define UNIT_MCU_START() do { UNIT_MCU__BARRIER(); (void)fputs("@unit_mcu start\n", stdout); UNIT_MCU__BARRIER(); } while (0)
#define UNIT_MCU_STOP() do { UNIT_MCU__BARRIER(); (void)fputs("@unit_mcu stop\n", stdout); UNIT_MCU__BARRIER(); } while (0)

static inline void unit_mcu_label(const char *label) {
    (void)printf("@unit_mcu label %s\n", label);
}

static inline void unit_mcu_emit(const void *data, size_t bytes) {
    const uint8_t *p = (const uint8_t *)data;
    (void)fputs("@unit_mcu data ", stdout);
    while (bytes--) {
        (void)printf("%02x", (unsigned)*p++);
    }
    (void)fputs("\n", stdout);
}

static inline void unit_mcu_done(void) __attribute__((noreturn));
static inline void unit_mcu_done(void) {
    (void)fputs("@unit_mcu done\n", stdout);
    (void)fflush(stdout);
    exit(0);
}

#endif

#endif /* UNIT_MCU_H */
