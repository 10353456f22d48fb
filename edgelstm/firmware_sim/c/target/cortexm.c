/* Bare-metal Cortex-M start-up and platform for the emulator: a vector table, a reset handler
 * that paints the stack, copies .data and zeroes .bss, and Arm semihosting for output and the
 * exit code. Works on ARMv6-M (Cortex-M0/M0+) and ARMv7-M/ARMv8-M mainline alike. */
#include <stdint.h>
#include <string.h>
#include "el_platform.h"

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _stack_bottom, _stack_top;
int main(void);

#define EL_STACK_PAINT 0xC5C5C5C5u

static int32_t el_semihost(int32_t op, const void *arg) {
    register int32_t r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

void el_print(const char *s) { el_semihost(0x04, s); }  /* SYS_WRITE0 */

void el_exit(int code) {
    /* SYS_EXIT with ADP_Stopped_ApplicationExit; the subcode becomes QEMU's exit status. On
     * ARMv7-M and later the two words are passed by reference (SYS_EXIT_EXTENDED semantics). */
    static uint32_t block[2];
    block[0] = 0x20026;
    block[1] = (uint32_t)code;
    el_semihost(0x20, block);  /* SYS_EXIT_EXTENDED */
    el_semihost(0x18, (const void *)0x20026);  /* fallback: SYS_EXIT, status 0 only */
    for (;;) {}
}

__attribute__((noinline)) void el_mark_begin(void) { __asm__ volatile("" ::: "memory"); }
__attribute__((noinline)) void el_mark_end(void) { __asm__ volatile("" ::: "memory"); }

/* el_calib_loop is in calib.S */

uint32_t el_stack_used(void) {
    const uint32_t *p = &_stack_bottom;
    while (p < &_stack_top && *p == EL_STACK_PAINT) p++;
    return (uint32_t)((uintptr_t)&_stack_top - (uintptr_t)p);
}

__attribute__((noreturn)) void Reset_Handler(void) {
    /* paint the whole stack below the current frame, so that the high-water mark can be scanned */
    uint32_t *sp;
    __asm__ volatile("mov %0, sp" : "=r"(sp));
    for (uint32_t *p = &_stack_bottom; p < sp - 16; p++) *p = EL_STACK_PAINT;
    for (uint32_t *s = &_sidata, *d = &_sdata; d < &_edata;) *d++ = *s++;
    for (uint32_t *d = &_sbss; d < &_ebss;) *d++ = 0;
    el_exit(main());
    for (;;) {}
}

static void Fault_Handler(void) {
    el_print("EL-FAULT\n");
    el_exit(70);
}

__attribute__((section(".isr_vector"), used)) static const void *const el_vectors[16] = {
    &_stack_top, (const void *)Reset_Handler, (const void *)Fault_Handler, (const void *)Fault_Handler,
    (const void *)Fault_Handler, (const void *)Fault_Handler, (const void *)Fault_Handler, 0, 0, 0, 0,
    (const void *)Fault_Handler, (const void *)Fault_Handler, 0, (const void *)Fault_Handler,
    (const void *)Fault_Handler,
};
