/* SPDX-License-Identifier: MIT */
/* string.h -- the part of the C library unitprune firmware uses on MSP430, where clang-14 has
 * no libc: the declarations of the memory functions in msp430/runtime/ (memcpy.c, memset.c,
 * memmove.c). On the include path of every msp430 build (-isystem). */
#ifndef UNIT_MSP430_STRING_H
#define UNIT_MSP430_STRING_H

#include <stddef.h>

void *memcpy(void *destination, const void *source, size_t bytes);
void *memmove(void *destination, const void *source, size_t bytes);
void *memset(void *destination, int value, size_t bytes);

#endif /* UNIT_MSP430_STRING_H */
