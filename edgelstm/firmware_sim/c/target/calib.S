/* el_calib_loop(n): exactly two instructions per iteration (subs, bne), then a return; the
 * firmware runs it to check the emulator's instruction counter. Valid Thumb on ARMv6-M and up. */
    .syntax unified
    .thumb
    .text
    .global el_calib_loop
    .type el_calib_loop, %function
    .thumb_func
el_calib_loop:
1:  subs r0, r0, #1
    bne 1b
    bx lr
    .size el_calib_loop, . - el_calib_loop
