/* SPDX-License-Identifier: MIT */
/* unit_conv2d_dense_s8_msp430_hwmult.S -- the MSP430 run of the output-stationary dense int8
 * convolution with the 16-bit hardware multiplier (the msp430-hwmult target; the MPY block at
 * 0x130, which the FR5994's MPY32 also provides; csrc/unit_internal_dot_s8.h):
 *
 *   void __unit_dot_run_s8(int32_t *out, const int8_t *x, const int8_t *w, const unit__dot_run_s8 *run)
 *   (EABI: r12 = out, r13 = x, r14 = w, r15 = run)
 *
 * out[i] = the dot product of output i's receptive field, accumulated by the multiplier itself:
 * per MAC the sign-extended activation is written to MACS and the sign-extended weight to OP2,
 * which adds the signed product to RESHI:RESLO (14 cycles). RESLO/RESHI are cleared before each
 * output and read after it. Rows of 3 or 5 columns are unrolled (run->mode); a whole 3x3 or 5x5
 * field per channel (every kernel row inside the input) is unrolled with the row and channel skips
 * in registers (r8, r11): 14 cycles per MAC and 1 per kernel row; its first MAC writes MPYS (no
 * clearing of RESHI:RESLO). A depthwise 3x3 field (UNIT__DOT_DW3) keeps its 9 weights in
 * registers and on the stack and computes two outputs per pass (11 cycles per MAC, 12 for the
 * stacked weight). With UNIT__DOT_NONNEG (activations in [0, 127]) the whole fields skip the
 * activation's SXT (one cycle per MAC less). run->mode (0..15) selects the loop through a jump
 * table. Cycles are those of mspdebug's table (there DEC and INC, #1 from the constant generator,
 * cost 3; DECD, #2, #4, #8 cost 2). Registers: r4 operand, r5 channels (square loop), r6 channel counter,
 * r7 row counter (x next in the square loop), r8 column counter (x row skip in the square loop),
 * r9 outputs left, r10 weight start, r11 x channel skip (square loop). */
#if UNIT_MSP430_HWMULT

#define MACS 0x0136
#define OP2 0x0138
#define RESLO 0x013A
#define RESHI 0x013C

#define OFF_COUNT 0
#define OFF_CHANNELS 2
#define OFF_ROWS 4
#define OFF_LEN 6
#define OFF_XROW 8
#define OFF_XCHAN 10
#define OFF_XNEXT 12
#define OFF_WROW 14
#define OFF_WCHAN 16
#define OFF_MODE 18

#define MPYS 0x0132

.macro MAC op=MACS, sx=1
    mov.b   @r13+, r4
  .if \sx
    sxt     r4
  .endif
    mov     r4, &\op
    mov.b   @r14+, r4
    sxt     r4
    mov     r4, &OP2
.endm

.macro RUN row
1:  mov     #0, &RESLO
    mov     #0, &RESHI
    mov     r10, r14
    mov     OFF_CHANNELS(r15), r6
2:  mov     OFF_ROWS(r15), r7
3:
  .if \row == 0
    mov     OFF_LEN(r15), r8
4:  MAC
    dec     r8
    jnz     4b
    add     OFF_WROW(r15), r14
  .else
    .rept \row
    MAC
    .endr
  .endif
    add     OFF_XROW(r15), r13
    dec     r7
    jnz     3b
    add     OFF_XCHAN(r15), r13
  .if \row == 0
    add     OFF_WCHAN(r15), r14
  .endif
    dec     r6
    jnz     2b
    mov     &RESLO, 0(r12)
    mov     &RESHI, 2(r12)
    add     #4, r12
    add     OFF_XNEXT(r15), r13
    dec     r9
    jnz     1b
    br      #.Ldone
.endm

/* A MAC with the sign-extended weight in register \w. */
.macro RMAC w, op=MACS, sx=1
    mov.b   @r13+, r4
  .if \sx
    sxt     r4
  .endif
    mov     r4, &\op
    mov     \w, &OP2
.endm

.macro WEIGHT reg
    mov.b   @r14+, \reg
    sxt     \reg
.endm

/* One output of a depthwise 3x3 field (UNIT__DOT_DW3): the weights sign-extended in r5, r6, r7,
 * r9, r10, r11, r14, r15 and (the 9th) on the top of the stack, read by `mov @r1, &OP2` (one
 * cycle more than a register); r8 the x row skip, 2(r1) the skip from the end of the third row to
 * the next field; RESLO/RESHI stored at \at(r12). */
.macro DW3OUT sx, at
    RMAC    r5, MPYS, \sx
    RMAC    r6, MACS, \sx
    RMAC    r7, MACS, \sx
    add     r8, r13
    RMAC    r9, MACS, \sx
    RMAC    r10, MACS, \sx
    RMAC    r11, MACS, \sx
    add     r8, r13
    RMAC    r14, MACS, \sx
    RMAC    r15, MACS, \sx
    RMAC    @r1, MACS, \sx
    add     2(r1), r13
    mov     &RESLO, \at(r12)
    mov     &RESHI, \at+2(r12)
.endm

/* A run of depthwise 3x3 fields, two outputs per pass (an odd count enters at the second with
 * out moved back by one): per output 9 MACs of 11 cycles (10 without the activation's SXT; 12 / 11
 * for the stacked weight), the two row skips (1 each), the next-field skip (3) and the store (12);
 * per pass out's step and the end test (7). Stack during the loop: 0(r1) the 9th weight, 2(r1) the
 * next-field skip, 4(r1) the end of out. */
.macro DW3 sx
    mov     OFF_XROW(r15), r8
    mov     OFF_XCHAN(r15), r4
    add     r8, r4
    add     OFF_XNEXT(r15), r4
    add     r9, r9
    add     r9, r9
    add     r12, r9
    push    r9                      /* the end of out */
    push    r4                      /* the next-field skip */
    WEIGHT  r5
    WEIGHT  r6
    WEIGHT  r7
    WEIGHT  r9
    WEIGHT  r10
    WEIGHT  r11
    WEIGHT  r4                      /* kernel row 2: r4 (to r14 below), r15, the stack */
    WEIGHT  r15
    mov.b   @r14, r14
    sxt     r14
    push    r14
    mov     4(r1), r14
    sub     r12, r14                /* 4 * count */
    bit     #4, r14
    mov     r4, r14                 /* MOV keeps the flags */
    jz      1f
    sub     #4, r12                 /* an odd count: the first output is the pass's second */
    jmp     2f
1:  DW3OUT  \sx, 0
2:  DW3OUT  \sx, 4
    add     #8, r12
    cmp     4(r1), r12
    jne     1b
    add     #6, r1
    br      #.Ldone
.endm

/* One channel's n x n field; the first MAC writes \first (MPYS: the product replaces RESHI:RESLO);
 * sx = 0: the activations are in [0, 127] and MOV.B's zero extension is their sign extension. */
.macro FIELD n, first, sx
    MAC     \first, \sx
  .rept \n - 1
    MAC     MACS, \sx
  .endr
  .rept \n - 1
    add     r8, r13
    .rept \n
    MAC     MACS, \sx
    .endr
  .endr
    add     r11, r13
.endm

/* A whole n x n field per channel: rows == len == n, no weight skips. The first channel's first
 * MAC writes MPYS, so RESHI:RESLO need no clearing; channels (r5) and x_next (r7) in registers. */
.macro SQUARE n, sx=1
    mov     OFF_XROW(r15), r8
    mov     OFF_XCHAN(r15), r11
    add     r8, r11                 /* the last row's skip and the channel skip in one */
    mov     OFF_CHANNELS(r15), r5
    mov     OFF_XNEXT(r15), r7
1:  mov     r10, r14
    mov     r5, r6
    FIELD   \n, MPYS, \sx
    dec     r6
    jz      3f
2:  FIELD   \n, MACS, \sx
    dec     r6
    jnz     2b
3:  mov     &RESLO, 0(r12)
    mov     &RESHI, 2(r12)
    add     #4, r12
    add     r7, r13
    dec     r9
    jnz     1b
    br      #.Ldone
.endm

    .section .text.__unit_dot_run_s8,"ax",@progbits
    .global __unit_dot_run_s8
    .type   __unit_dot_run_s8, @function
__unit_dot_run_s8:
    push    r4
    push    r5
    push    r6
    push    r7
    push    r8
    push    r9
    push    r10
    mov     r14, r10
    mov     @r15, r9
    mov     OFF_MODE(r15), r11
    add     r11, r11
    mov     .Lmodes(r11), r0        /* the loop shape of run->mode (0..15), 4 cycles with the ADD */
.Lmodes:                            /* by mode: bit 0 (WIDE) is for AVR, bit 3 is UNIT__DOT_NONNEG */
    .word   .Lgeneral, .Lgeneral, .Lrow3, .Lrow3, .Lrow5, .Lrow5, .Ldw3, .Ldw3
    .word   .Lgeneral, .Lgeneral, .Lnrow3, .Lnrow3, .Lnrow5, .Lnrow5, .Lndw3, .Lndw3
.Lnrow3:                            /* activations in [0, 127]: a whole 3x3 field without the SXT */
    cmp     #3, OFF_ROWS(r15)
    jne     .Lrow3
    br      #.Lnsquare3
.Lnrow5:
    cmp     #5, OFF_ROWS(r15)
    jne     .Lrow5
    br      #.Lnsquare5
.Lgeneral:
    RUN     0
.Lrow3:
    cmp     #3, OFF_ROWS(r15)
    jeq     .Lsquare3
    RUN     3
.Lrow5:
    cmp     #5, OFF_ROWS(r15)
    jeq     .Lsquare5
    RUN     5
.Lsquare3:
    SQUARE  3
.Lsquare5:
    SQUARE  5
/* Activations in [0, 127]: the whole 3x3 and 5x5 fields without their sign extension (13 cycles
 * per MAC). */
.Lnsquare3:
    SQUARE  3, 0
.Lnsquare5:
    SQUARE  5, 0
/* UNIT__DOT_DW3: one channel's whole 3x3 field, all 9 weights sign-extended once per run (8 in
 * registers, 1 on the stack), two outputs per pass (DW3 above). */
.Ldw3:
    DW3     1
.Lndw3:
    DW3     0
.Ldone:
    pop     r10
    pop     r9
    pop     r8
    pop     r7
    pop     r6
    pop     r5
    pop     r4
    ret
    .size   __unit_dot_run_s8, .-__unit_dot_run_s8

#endif /* UNIT_MSP430_HWMULT */
