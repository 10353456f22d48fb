/* FULLY_CONNECTED, int8, TFLite Micro's requantization (MultiplyByQuantizedMultiplier). */
#ifndef EL_FC_H
#define EL_FC_H
#include "el_common.h"

typedef struct {
    int32_t rows, units, depth;
    int32_t wide_weights;       /* 1: int16 weights (a nonzero weight zero point folded in) */
    const void *w;              /* [units][depth] */
    const int32_t *bias;        /* bias - zp_in * rowsum(w), int32 wrap-around */
    const int32_t *mult;        /* per output unit (repeated for per-tensor weights) */
    const int32_t *shift;
    int32_t out_zp, act_min, act_max;
} el_fc_params;

void el_fc(const el_fc_params *p, const int8_t *x, int8_t *y);

#endif
