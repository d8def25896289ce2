/* SPDX-License-Identifier: MIT */
/* memcpy for MSP430 firmware (no libc): clang emits calls to it for aggregate copies even with
 * -ffreestanding. Byte loop; -ffreestanding keeps clang from turning it back into a memcpy call. */
#include <stddef.h>
#include <stdint.h>

void *memcpy(void *destination, const void *source, size_t bytes);

void *memcpy(void *destination, const void *source, size_t bytes) {
    uint8_t *d = (uint8_t *)destination;
    const uint8_t *s = (const uint8_t *)source;
    while (bytes--) {
        *d++ = *s++;
    }
    return destination;
}
