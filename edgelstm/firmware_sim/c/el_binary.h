/* ADD and MUL on int8 with broadcasting (TFLite Micro's reference integer kernels). */
#ifndef EL_BINARY_H
#define EL_BINARY_H
#include "el_common.h"

typedef struct {
    int32_t is_mul;
    int32_t ndim;
    int32_t shape[EL_MAX_DIMS];        /* output shape */
    int32_t a_stride[EL_MAX_DIMS];     /* 0 along a broadcast dimension */
    int32_t b_stride[EL_MAX_DIMS];
    int32_t off_a, off_b;              /* minus the input zero points */
    int32_t left_shift;                /* ADD: 20 */
    int32_t ma, sa, mb, sb;            /* ADD: input rescaling */
    int32_t my, sy;                    /* ADD: output rescaling; MUL: the product's */
    int32_t zp_y, act_min, act_max;
} el_binary_params;

void el_binary(const el_binary_params *p, const int8_t *a, const int8_t *b, int8_t *y);

#endif
