/* MAX_POOL_2D and AVERAGE_POOL_2D on int8 NHWC (no requantization). */
#ifndef EL_POOL_H
#define EL_POOL_H
#include "el_common.h"

typedef struct {
    int32_t is_max;
    int32_t n_batch, in_h, in_w, depth, out_h, out_w;
    int32_t stride_h, stride_w, filter_h, filter_w, pad_h, pad_w;
    int32_t act_min, act_max;
} el_pool_params;

void el_pool(const el_pool_params *p, const int8_t *x, int8_t *y);

#endif
