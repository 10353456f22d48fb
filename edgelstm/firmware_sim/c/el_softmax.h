/* SOFTMAX int8 -> int8 (output 1/256, -128): gemmlowp's fixed-point softmax. The exp of every
 * possible input difference (0..255) was tabulated at generation time. */
#ifndef EL_SOFTMAX_H
#define EL_SOFTMAX_H
#include "el_common.h"

typedef struct {
    int32_t rows, depth;
    const int32_t *exp_table;   /* [256], Q0.31; 0 where the difference is beyond diff_min */
} el_softmax_params;

void el_softmax(const el_softmax_params *p, const int8_t *x, int8_t *y);

#endif
