/* SPDX-License-Identifier: MIT */
/* memset for MSP430 firmware (no libc): clang emits calls to it for zero-initialised aggregates
 * even with -ffreestanding. */
#include <stddef.h>
#include <stdint.h>

void *memset(void *destination, int value, size_t bytes);

void *memset(void *destination, int value, size_t bytes) {
    uint8_t *d = (uint8_t *)destination;
    while (bytes--) {
        *d++ = (uint8_t)value;
    }
    return destination;
}
