#include "el_fc.h"

void el_fc(const el_fc_params *p, const int8_t *x, int8_t *y) {
    for (int32_t b = 0; b < p->rows; b++) {
        const int8_t *xb = x + b * p->depth;
        for (int32_t u = 0; u < p->units; u++) {
            const int32_t acc = p->wide_weights
                ? el_dot_s16((const int16_t *)p->w + u * p->depth, xb, p->depth, p->bias[u])
                : el_dot_s8((const int8_t *)p->w + u * p->depth, xb, p->depth, p->bias[u]);
            const int32_t v = el_wrap_add(el_mbqm(acc, p->mult[u], p->shift[u]), p->out_zp);
            y[b * p->units + u] = (int8_t)el_clamp(v, p->act_min, p->act_max);
        }
    }
}
