#include "el_binary.h"

static inline int32_t el_binary_one(const el_binary_params *p, int32_t a, int32_t b) {
    int32_t v;
    if (p->is_mul) {
        v = el_mbqm((a + p->off_a) * (b + p->off_b), p->my, p->sy);
    } else {
        const int32_t xa = (a + p->off_a) * (1 << p->left_shift);
        const int32_t xb = (b + p->off_b) * (1 << p->left_shift);
        const int32_t total = el_mbqm(xa, p->ma, p->sa) + el_mbqm(xb, p->mb, p->sb);
        v = el_mbqm(total, p->my, p->sy);
    }
    return el_clamp(v + p->zp_y, p->act_min, p->act_max);
}

void el_binary(const el_binary_params *p, const int8_t *a, const int8_t *b, int8_t *y) {
    const int32_t nd = p->ndim;
    int32_t idx[EL_MAX_DIMS] = {0};
    int32_t ia = 0, ib = 0, iy = 0;
    const int32_t inner = p->shape[nd - 1], sa = p->a_stride[nd - 1], sb = p->b_stride[nd - 1];
    for (;;) {
        for (int32_t k = 0; k < inner; k++) y[iy + k] = (int8_t)el_binary_one(p, a[ia + k * sa], b[ib + k * sb]);
        iy += inner;
        int32_t d = nd - 2;
        while (d >= 0) {
            idx[d]++;
            ia += p->a_stride[d];
            ib += p->b_stride[d];
            if (idx[d] < p->shape[d]) break;
            ia -= p->a_stride[d] * p->shape[d];
            ib -= p->b_stride[d] * p->shape[d];
            idx[d] = 0;
            d--;
        }
        if (d < 0) return;
    }
}
