/* QUANTIZE int8 -> int8 (a rescale between two int8 quantizations). */
#ifndef EL_REQUANT_H
#define EL_REQUANT_H
#include "el_common.h"

typedef struct {
    int32_t n, zp_in, mult, shift, zp_out;
} el_requant_params;

void el_requant(const el_requant_params *p, const int8_t *x, int8_t *y);

#endif
