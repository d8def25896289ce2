/* SPDX-License-Identifier: MIT */
/* unit_table_offset_s8.c -- table + offset for a table in flash, correct for any int32 offset
 * (see unit_kernels_stream_s8.h). */
#include "unit_internal_linear_stream_s8.h"

/* avr-gcc adds an integer to a __memx (far table) pointer as a 16-bit signed value: an offset
 * beyond 32,767 would wrap and set the 24-bit pointer's RAM flag. The offset is added in steps
 * that fit; on every other target this is table + offset. */
const UNIT_TABLE int8_t *unit_table_offset_s8(const UNIT_TABLE int8_t *table, int32_t offset) {
    while (offset > 32767L) {
        table += 32767;
        offset -= 32767L;
    }
    return table + (int16_t)offset;
}
