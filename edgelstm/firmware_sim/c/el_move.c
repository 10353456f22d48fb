#include "el_move.h"

void el_copy(const el_copy_params *p, const int8_t *src, int8_t *dst) {
    const int32_t nd = p->ndim;
    const int32_t inner = p->shape[nd - 1];
    const int contiguous = p->src_stride[nd - 1] == 1 && p->dst_stride[nd - 1] == 1;
    int32_t idx[EL_MAX_DIMS] = {0};
    int32_t s = p->src_offset, d = p->dst_offset;
    for (;;) {
        if (contiguous) {
            memcpy(dst + d, src + s, (size_t)inner);
        } else {
            for (int32_t k = 0; k < inner; k++) dst[d + k * p->dst_stride[nd - 1]] = src[s + k * p->src_stride[nd - 1]];
        }
        /* odometer over the outer dimensions */
        int32_t a = nd - 2;
        while (a >= 0) {
            idx[a]++;
            s += p->src_stride[a];
            d += p->dst_stride[a];
            if (idx[a] < p->shape[a]) break;
            s -= p->src_stride[a] * p->shape[a];
            d -= p->dst_stride[a] * p->shape[a];
            idx[a] = 0;
            a--;
        }
        if (a < 0) return;
    }
}
