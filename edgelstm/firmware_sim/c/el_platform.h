/* What the generated test program needs from where it runs: text output, an exit code, the
 * markers around each measured call, and the stack high-water mark. Implemented once for the
 * host (target/host.c) and once for bare-metal Cortex-M under semihosting (target/cortexm.c). */
#ifndef EL_PLATFORM_H
#define EL_PLATFORM_H
#include <stdint.h>

void el_print(const char *s);
void el_exit(int code);
/* The emulator's instruction counter snapshots at the first instruction of each marker. */
void el_mark_begin(void);
void el_mark_end(void);
/* A loop of exactly two instructions per iteration, to check the counter. */
void el_calib_loop(uint32_t n);
/* Bytes of stack ever used (0 where not measured). */
uint32_t el_stack_used(void);

#endif
