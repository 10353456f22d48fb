#include "el_requant.h"

void el_requant(const el_requant_params *p, const int8_t *x, int8_t *y) {
    for (int32_t i = 0; i < p->n; i++) y[i] = (int8_t)el_sat8(el_mbqm(x[i] - p->zp_in, p->mult, p->shift) + p->zp_out);
}
