/* SPDX-License-Identifier: MIT */
/* simavr_cycles.c -- run an AVR firmware in simavr and report exact cycle counts of the regions
 * the firmware marks (protocol in unit_mcu.h), one JSON object per region on stdout:
 *
 *   {"label": "f32_bitmask", "cycles": 12345, "data": "00ff..."}
 *   {"done": true, "total_cycles": 987654, "stack_bytes": 87}
 *
 * Usage: simavr_cycles FIRMWARE.elf [MCU [MAX_CYCLES [PAINT_START]]]   (MCU default atmega2560)
 * With PAINT_START (the data-space address of the end of .bss/.noinit, avr-libc's _end), the
 * SRAM from there to RAMEND is painted with 0xA5 before the run, and stack_bytes is RAMEND + 1
 * minus the lowest address that is no longer paint (a pushed 0xA5 at the very bottom would be
 * missed: the figure can be low by the few bytes of such a run). Without it stack_bytes is null.
 * Exit status 0 only when the firmware reported done (no crash, no cycle limit, no sleep with
 * interrupts off before the done marker).
 *
 * Built on demand by unitprune.mcu.targets (cached):
 *     gcc -O2 simavr_cycles.c $(pkg-config --cflags --libs simavr) -lelf
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim_avr.h"
#include "sim_elf.h"
#include "sim_io.h"

/* Data-space addresses of GPIOR0/1/2, identical on the megaAVR parts used here (ATmega328P,
 * ATmega1284P, ATmega2560). They are plain registers no simavr peripheral claims, so a write
 * costs the firmware one OUT instruction (1 cycle) and nothing else. */
#define MARK_ADDR 0x3E  /* GPIOR0: 1 start, 2 stop, 3 done */
#define DATA_ADDR 0x4A  /* GPIOR1: one result byte */
#define LABEL_ADDR 0x4B /* GPIOR2: one character of the next region's label */

#define MAX_LABEL 128 /* a longer label is an error (exit status 2), not a silent truncation */
#define MAX_DATA (1L << 22)
#define PAINT 0xA5

typedef struct {
    char label[MAX_LABEL];
    int label_length;
    avr_cycle_count_t start;
    long long cycles; /* -1 until the stop marker */
    int started, stopped, done;
    unsigned char *data;
    long data_length;
} recorder;

static void json_string(const char *text) {
    putchar('"');
    for (; *text; text++) {
        if (*text == '"' || *text == '\\') {
            putchar('\\');
        }
        if ((unsigned char)*text >= 0x20) {
            putchar(*text);
        }
    }
    putchar('"');
}

/* Prints the current region (if anything was recorded) and starts an empty one. */
static void flush(recorder *r) {
    long i;
    if (r->label_length > 0 || r->started || r->data_length > 0) {
        printf("{\"label\": ");
        json_string(r->label);
        printf(", \"cycles\": %lld, \"data\": \"", r->stopped ? r->cycles : -1LL);
        for (i = 0; i < r->data_length; i++) {
            printf("%02x", r->data[i]);
        }
        printf("\"}\n");
    }
    r->label[0] = '\0';
    r->label_length = 0;
    r->started = r->stopped = 0;
    r->cycles = -1;
    r->data_length = 0;
}

static void on_mark(avr_t *avr, avr_io_addr_t addr, uint8_t value, void *param) {
    recorder *r = param;
    (void)addr;
    /* avr->cycle is the cycle at which this OUT instruction starts, for start and stop alike,
     * so a region counts its start OUT and everything up to (excluding) its stop OUT. */
    if (value == 1) {
        r->start = avr->cycle;
        r->started = 1;
    } else if (value == 2) {
        r->cycles = r->started ? (long long)(avr->cycle - r->start) : -1;
        r->stopped = 1;
    } else if (value == 3) {
        r->done = 1;
        avr->state = cpu_Done;
    }
}

static void on_label(avr_t *avr, avr_io_addr_t addr, uint8_t value, void *param) {
    recorder *r = param;
    (void)avr, (void)addr;
    if (r->stopped) { /* a new label after a finished region begins the next record */
        flush(r);
    }
    if (r->label_length >= MAX_LABEL - 1) {
        fprintf(stderr, "simavr_cycles: label longer than %d characters: %s...\n", MAX_LABEL - 1, r->label);
        exit(2);
    }
    r->label[r->label_length++] = (char)value;
    r->label[r->label_length] = '\0';
}

static void on_data(avr_t *avr, avr_io_addr_t addr, uint8_t value, void *param) {
    recorder *r = param;
    (void)avr, (void)addr;
    if (r->data_length < MAX_DATA) {
        r->data[r->data_length++] = value;
    }
}

/* simavr's messages ("Loaded 5482 .text ...") go to stdout by default; keep stdout pure JSON. */
static void quiet_logger(avr_t *avr, const int level, const char *format, va_list ap) {
    (void)avr;
    if (level <= LOG_WARNING) {
        vfprintf(stderr, format, ap);
    }
}

int main(int argc, char **argv) {
    const char *mcu = argc > 2 ? argv[2] : "atmega2560";
    unsigned long long max_cycles = argc > 3 ? strtoull(argv[3], NULL, 10) : 2000000000ULL;
    long paint_start = argc > 4 ? strtol(argv[4], NULL, 0) : -1;
    long stack_bytes = -1;
    long address;
    elf_firmware_t firmware;
    static recorder r;
    avr_t *avr;
    int state;
    if (argc < 2) {
        fprintf(stderr, "usage: %s FIRMWARE.elf [MCU [MAX_CYCLES [PAINT_START]]]\n", argv[0]);
        return 2;
    }
    avr_global_logger_set(quiet_logger);
    memset(&firmware, 0, sizeof firmware);
    if (elf_read_firmware(argv[1], &firmware) != 0) {
        fprintf(stderr, "simavr_cycles: cannot read ELF firmware %s\n", argv[1]);
        return 2;
    }
    avr = avr_make_mcu_by_name(mcu);
    if (avr == NULL) {
        fprintf(stderr, "simavr_cycles: simavr does not know the MCU %s\n", mcu);
        return 2;
    }
    avr_init(avr);
    avr->log = LOG_ERROR;
    firmware.frequency = firmware.frequency ? firmware.frequency : 16000000; /* only for timers */
    avr_load_firmware(avr, &firmware);
    r.data = malloc(MAX_DATA);
    r.cycles = -1;
    if (paint_start >= 0) {
        if (paint_start > (long)avr->ramend) {
            fprintf(stderr, "simavr_cycles: paint start 0x%lx is above RAMEND 0x%x\n", paint_start, avr->ramend);
            return 2;
        }
        for (address = paint_start; address <= (long)avr->ramend; address++) {
            avr->data[address] = PAINT;
        }
    }
    avr_register_io_write(avr, MARK_ADDR, on_mark, &r);
    avr_register_io_write(avr, DATA_ADDR, on_data, &r);
    avr_register_io_write(avr, LABEL_ADDR, on_label, &r);
    do {
        state = avr_run(avr);
    } while (state != cpu_Done && state != cpu_Crashed && avr->cycle < max_cycles);
    flush(&r);
    if (paint_start >= 0) {
        for (address = paint_start; address <= (long)avr->ramend && avr->data[address] == PAINT; address++) {
        }
        stack_bytes = (long)avr->ramend + 1 - address;
    }
    printf("{\"done\": %s, \"total_cycles\": %llu, \"stack_bytes\": ", r.done ? "true" : "false",
           (unsigned long long)avr->cycle);
    if (stack_bytes >= 0) {
        printf("%ld}\n", stack_bytes);
    } else {
        printf("null}\n");
    }
    if (!r.done) {
        fprintf(stderr, "simavr_cycles: firmware did not report done (%s after %llu cycles)\n",
                state == cpu_Crashed ? "crashed" : (state == cpu_Done ? "stopped" : "cycle limit"),
                (unsigned long long)avr->cycle);
    }
    avr_terminate(avr);
    return r.done ? 0 : 1;
}
