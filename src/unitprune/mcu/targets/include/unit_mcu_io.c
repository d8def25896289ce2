/* SPDX-License-Identifier: MIT */
/* unit_mcu_io.c -- the label/emit/exit stubs of unit_mcu.h on Cortex-M (Arm semihosting: BKPT
 * 0xAB) and RV32 (RISC-V semihosting: the slli/ebreak/srai sequence). Under QEMU with
 * -semihosting they print "L<label>\n" and "D<hex bytes>\n" and end
 * the run; unitprune's emulator instead reads their arguments at their entry and returns at once,
 * and counts no instruction of them (both count only the code outside __unit_mcu_io_begin/end). */
#include <stddef.h>
#include <stdint.h>

#define IO __attribute__((section(".text.unit_mcu_io"), noinline, used))

enum { SYS_WRITEC = 0x03, SYS_EXIT = 0x18, ADP_STOPPED_APPLICATION_EXIT = 0x20026 };

IO static void semihost(uintptr_t op, uintptr_t argument) {
#if defined(__arm__)
    register uintptr_t r0 __asm__("r0") = op;
    register uintptr_t r1 __asm__("r1") = argument;
    __asm__ __volatile__("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
#else
    register uintptr_t a0 __asm__("a0") = op;
    register uintptr_t a1 __asm__("a1") = argument;
    /* the three instructions must be uncompressed and in one page (the RISC-V semihosting spec) */
    __asm__ __volatile__(".option push\n.option norvc\n.balign 16\nslli zero, zero, 0x1f\nebreak\n"
                         "srai zero, zero, 7\n.option pop" : "+r"(a0) : "r"(a1) : "memory");
#endif
}

IO static void put(char c) {
    semihost(SYS_WRITEC, (uintptr_t)&c);
}

IO static void put_hex(uint8_t byte) {
    static const char digits[] = "0123456789abcdef";
    put(digits[byte >> 4]);
    put(digits[byte & 15]);
}

IO void __unit_mcu_label(const char *label) {
    put('L');
    while (*label) {
        put(*label++);
    }
    put('\n');
}

IO void __unit_mcu_emit(const void *data, size_t bytes) {
    const uint8_t *p = (const uint8_t *)data;
    put('D');
    while (bytes--) {
        put_hex(*p++);
    }
    put('\n');
}

/* the stack bytes (crt0's __unit_mcu_end: r0 / a0) */
IO void __unit_mcu_exit(uint32_t stack_bytes) {
    uint32_t shift;
    put('S');
    for (shift = 32; shift; shift -= 8) {
        put_hex((uint8_t)(stack_bytes >> (shift - 8)));
    }
    put('\n');
    for (;;) {
        semihost(SYS_EXIT, ADP_STOPPED_APPLICATION_EXIT);
    }
}
