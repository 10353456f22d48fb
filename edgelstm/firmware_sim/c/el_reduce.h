/* MEAN, SUM and REDUCE_MAX over constant axes of an int8 tensor. */
#ifndef EL_REDUCE_H
#define EL_REDUCE_H
#include "el_common.h"

typedef struct {
    int32_t is_max;
    el_walk outer;     /* the kept dimensions, with the input's strides, in output order */
    el_walk inner;     /* the reduced dimensions */
    int32_t n_reduced;
    int32_t zp_in, mult, shift, zp_out;   /* MEAN: 1/n already folded into mult and shift */
} el_reduce_params;

void el_reduce(const el_reduce_params *p, const int8_t *x, int8_t *y);

#endif
