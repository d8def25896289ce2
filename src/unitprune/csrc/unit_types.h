/* SPDX-License-Identifier: MIT */
/*
 * unit_types.h -- the definitions shared by every number type of unitprune's C kernels:
 * status codes, API version, MAC counters, convolution geometry, struct-layout introspection and
 * the flash-access macros for constant tables. Kernels of one number type are declared in
 * unit_kernels_f32.h (float32) and unit_kernels_s8.h (int8 fixed point); unit_kernels.h includes
 * them all.
 *
 * Portability rules followed by every .c file of this directory:
 *   - C99, no malloc: memory a kernel needs beyond its inputs/outputs is passed in by the
 *     caller as `scratch` (size from the matching *_scratch_size function);
 *   - fixed-width integer types: sizes and indices are int32_t (16-bit `int` MCUs such as AVR
 *     and MSP430 are fine), counters are int64_t;
 *   - no libm; the int8 kernels use no float at all;
 *   - every public symbol starts with `unit_`, private helpers with `unit__` (unit_internal*.h);
 *   - one public function per .c file, named after it.
 *
 * Memory layouts are row-major (C order) and match PyTorch's contiguous tensors unless stated.
 * Every array passed to a kernel must hold fewer than 2**31 elements (indices are int32_t).
 * Pointers marked "may be NULL" are optional; all other pointers must be valid.
 * Status codes: UNIT_OK (0) on success, a negative UNIT_ERR_* code otherwise; on error nothing
 * is written to the outputs.
 */
#ifndef UNIT_TYPES_H
#define UNIT_TYPES_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define UNIT_OK 0
#define UNIT_ERR_ARGUMENT (-1) /* a size/geometry/method argument is out of its documented range */
#define UNIT_ERR_SCRATCH (-2)  /* scratch is NULL or smaller than the *_scratch_size result */

/* Version of the API/ABI of these headers (struct layouts, signatures); unit_kernels_version()
 * returns the value the library was compiled with, so a host can detect a stale build. */
#define UNIT_KERNELS_VERSION 8L

/* MAC counters of one kernel call, summed over all rows/samples (docs/semantics.md,
 * "MAC accounting"). dense == zero_weight + zero_activation + threshold + executed. */
typedef struct {
    int64_t dense;           /* connections of the dense layer */
    int64_t zero_weight;     /* weight == 0 */
    int64_t zero_activation; /* activation == 0 (padding included), weight != 0 */
    int64_t threshold;       /* both nonzero, skipped by the UnIT test */
    int64_t executed;        /* kept and multiplied */
    int64_t compares;        /* skip tests performed (semantics.md definition) */
    int64_t divisions;       /* quotients computed at inference time */
} unit_counts;

/* Geometry of a 2-D convolution, NCHW input x[batch][in_channels][in_height][in_width] and
 * OIHW weight[out_channels][in_channels/groups][kernel_height][kernel_width].
 * Output y[batch][out_channels][out_height][out_width] with
 *   out_height = (in_height + pad_top + pad_bottom - dilation_y*(kernel_height-1) - 1) / stride_y + 1
 *   out_width  = (in_width + pad_left + pad_right - dilation_x*(kernel_width-1) - 1) / stride_x + 1
 * Ranges: batch >= 0; channels, sizes, kernel sizes, strides, dilations, groups >= 1;
 * paddings >= 0; groups divides in_channels and out_channels; out_height, out_width >= 1;
 * block_rows >= 0.
 * block_rows (int8 convolutions only; the float kernels ignore it): the output rows whose int32
 * accumulators are held at a time (the scratch is 4*block_rows*out_width bytes, see
 * unit_kernels_s8.h); 0, or any value >= out_height, means the whole output plane. A zero-filled
 * initializer therefore gives the whole-plane loop. */
typedef struct {
    int32_t batch;
    int32_t in_channels;
    int32_t in_height;
    int32_t in_width;
    int32_t out_channels;
    int32_t kernel_height;
    int32_t kernel_width;
    int32_t stride_y;
    int32_t stride_x;
    int32_t dilation_y;
    int32_t dilation_x;
    int32_t pad_top;
    int32_t pad_bottom;
    int32_t pad_left;
    int32_t pad_right;
    int32_t groups;
    int32_t block_rows;
} unit_conv2d_params;

/* unit_kernels_version: UNIT_KERNELS_VERSION of the compiled library. */
int32_t unit_kernels_version(void);

/* unit_conv2d_output_size: writes out_height and out_width of `params`; returns UNIT_OK or
 * UNIT_ERR_ARGUMENT if a parameter is out of range or the output would be empty. */
int32_t unit_conv2d_output_size(const unit_conv2d_params *params, int32_t *out_height, int32_t *out_width);

/* Struct-layout introspection (for bindings such as unitprune's ctypes mirrors, which test
 * against it). unit_struct_layout(which, field): field == -1 gives sizeof the struct, field k in
 * [0, number of fields) the offsetof its k-th field in declaration order; anything else (an
 * unknown struct or a field past the last) gives -1. */
#define UNIT_STRUCT_COUNTS 0              /* unit_counts */
#define UNIT_STRUCT_CONV2D_PARAMS 1       /* unit_conv2d_params */
#define UNIT_STRUCT_LINEAR_PLAN_F32 2     /* unit_linear_plan_f32 */
#define UNIT_STRUCT_CONV2D_PLAN_F32 3     /* unit_conv2d_plan_f32 */
#define UNIT_STRUCT_REQUANT_S8 4          /* unit_requant_s8 */
#define UNIT_STRUCT_QUOTIENT_TREE_S8 5    /* unit_quotient_tree_s8 */
int32_t unit_struct_layout(int32_t which, int32_t field);

/* ---------------------------------------------------------------------------------------- */
/* Constant tables in flash                                                                   */
/* ---------------------------------------------------------------------------------------- */

/* Weights, biases, requantization constants, tau tables, trees and quotient tables are
 * constants. Firmware declares them `static const T name[] UNIT_FLASH = {...};` and the kernels
 * read every element of such a table through UNIT_READ_<type>(pointer):
 *   - AVR (avr-gcc, __AVR__): UNIT_FLASH is PROGMEM (the table stays in flash instead of being
 *     copied to the small SRAM at start-up) and the reads are pgm_read_byte/word/dword (LPM).
 *     Pointers are 16 bits, so the tables must lie in the first 64 KB of flash (avr-gcc places
 *     PROGMEM data right after the vector table, before the code); define UNIT_NO_FLASH to keep
 *     the tables in RAM instead (plain reads, e.g. for a RAM-only test on the same chip);
 *   - everywhere else (MSP430 with FRAM/flash mapped into the data space, hosts): UNIT_FLASH is
 *     empty and the reads are plain `const` loads.
 * UNIT_FLASH_ASM is 1 where a table may instead be defined as assembler data in the progmem
 * section (AVR: avr-gcc refuses any C object above 32,767 bytes, its 16-bit ptrdiff_t, while LPM
 * reads reach 64 KB): such a table is declared `extern const T name[] UNIT_FLASH;` and read
 * exactly as a C one (the kernels' offsets are int32_t; the 16-bit pointer sum wraps correctly
 * for any table that ends below 64 KB). unitprune.mcu.codegen.flash_array writes both forms.
 * Far tables (AVR, build every file with -std=gnu99 -DUNIT_FAR_TABLES=1): tables beyond the first
 * 64 KB of flash (the ATmega2560 has 256 KB). Every pointer to a table, in the kernels' signatures
 * and in unit_requant_s8 / unit_quotient_tree_s8, is qualified with UNIT_TABLE, which is then
 * avr-gcc's named address space __memx (24-bit pointers; reads through ELPM, a GNU C extension,
 * hence gnu99); the tables are declared `static const UNIT_TABLE T name[] UNIT_FLASH` (UNIT_FLASH
 * is then empty: __memx objects go to .progmemx.data, which the linker script places with the
 * other progmem data) and read by UNIT_READ_* as plain dereferences. A generic (RAM or PROGMEM)
 * pointer converted to UNIT_TABLE addresses RAM, so in such a build every table, the embedded
 * samples included, must be declared UNIT_TABLE. Everywhere else UNIT_TABLE is empty, so the
 * near build is the same code as before. unitprune.export_c chooses far tables only when the
 * tables do not fit the first 64 KB.
 * The structs that point at the tables (unit_requant_s8, unit_quotient_tree_s8) are read
 * normally: they live in RAM (a few bytes); only the arrays they point at may be in flash.
 * Activations and scratch are always in RAM. */
#if defined(__AVR__) && !defined(UNIT_NO_FLASH) && defined(UNIT_FAR_TABLES) && UNIT_FAR_TABLES
#define UNIT_TABLE __memx
#define UNIT_FLASH
#define UNIT_READ_S8(p) ((int8_t)*(p))
#define UNIT_READ_U8(p) ((uint8_t)*(p))
#define UNIT_READ_S16(p) ((int16_t)*(p))
#define UNIT_READ_S32(p) ((int32_t)*(p))
#define UNIT_FLASH_ASM 1
#elif defined(__AVR__) && !defined(UNIT_NO_FLASH)
#include <avr/pgmspace.h>
#define UNIT_TABLE
#define UNIT_FLASH PROGMEM
#define UNIT_READ_S8(p) ((int8_t)pgm_read_byte(p))
#define UNIT_READ_U8(p) ((uint8_t)pgm_read_byte(p))
#define UNIT_READ_S16(p) ((int16_t)pgm_read_word(p))
#define UNIT_READ_S32(p) ((int32_t)pgm_read_dword(p))
#define UNIT_FLASH_ASM 1
#else
#define UNIT_TABLE
#define UNIT_FLASH
#define UNIT_FLASH_ASM 0
#define UNIT_READ_S8(p) (*(const int8_t *)(p))
#define UNIT_READ_U8(p) (*(const uint8_t *)(p))
#define UNIT_READ_S16(p) (*(const int16_t *)(p))
#define UNIT_READ_S32(p) (*(const int32_t *)(p))
#endif

#ifdef __cplusplus
}
#endif

#endif /* UNIT_TYPES_H */
