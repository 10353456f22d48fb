/* The test program's platform on the build machine: stdio, exit, no measurements. */
#include <stdio.h>
#include <stdlib.h>
#include "el_platform.h"

void el_print(const char *s) { fputs(s, stdout); }
void el_exit(int code) { fflush(stdout); exit(code); }
void el_mark_begin(void) {}
void el_mark_end(void) {}
void el_calib_loop(uint32_t n) { for (volatile uint32_t i = 0; i < n; i++) {} }
uint32_t el_stack_used(void) { return 0; }
