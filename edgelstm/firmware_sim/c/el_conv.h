/* CONV_2D and DEPTHWISE_CONV_2D (NHWC, int8, per-channel multipliers). A depthwise convolution
 * arrives as the grouped convolution with one input channel per group. */
#ifndef EL_CONV_H
#define EL_CONV_H
#include "el_common.h"

typedef struct {
    int32_t n_batch, in_h, in_w, in_c;
    int32_t out_h, out_w, n_out;
    int32_t k_h, k_w, k_c, per_group;
    int32_t stride_h, stride_w, dil_h, dil_w, pad_h, pad_w;
    const int8_t *w;            /* [n_out][k_h][k_w][k_c] */
    const int32_t *bias, *mult, *shift;
    int32_t in_off, out_zp, act_min, act_max;
} el_conv_params;

void el_conv(const el_conv_params *p, const int8_t *x, int8_t *y);

#endif
