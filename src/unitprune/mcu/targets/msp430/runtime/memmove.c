/* SPDX-License-Identifier: MIT */
/* memmove for MSP430 firmware (no libc): copies forwards or backwards so that overlapping
 * buffers are handled. */
#include <stddef.h>
#include <stdint.h>

void *memmove(void *destination, const void *source, size_t bytes);

void *memmove(void *destination, const void *source, size_t bytes) {
    uint8_t *d = (uint8_t *)destination;
    const uint8_t *s = (const uint8_t *)source;
    if (d < s) {
        while (bytes--) {
            *d++ = *s++;
        }
    } else {
        d += bytes;
        s += bytes;
        while (bytes--) {
            *--d = *--s;
        }
    }
    return destination;
}
