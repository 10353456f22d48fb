#include "el_pool.h"

static inline int32_t el_min(int32_t a, int32_t b) { return a < b ? a : b; }
static inline int32_t el_max(int32_t a, int32_t b) { return a > b ? a : b; }

void el_pool(const el_pool_params *p, const int8_t *x, int8_t *y) {
    for (int32_t b = 0; b < p->n_batch; b++) {
        for (int32_t oy = 0; oy < p->out_h; oy++) {
            const int32_t y0 = oy * p->stride_h - p->pad_h;
            const int32_t fy0 = el_max(0, -y0), fy1 = el_min(p->filter_h, p->in_h - y0);
            for (int32_t ox = 0; ox < p->out_w; ox++) {
                const int32_t x0 = ox * p->stride_w - p->pad_w;
                const int32_t fx0 = el_max(0, -x0), fx1 = el_min(p->filter_w, p->in_w - x0);
                const int32_t count = (fy1 - fy0) * (fx1 - fx0);
                for (int32_t c = 0; c < p->depth; c++) {
                    int32_t acc = p->is_max ? -128 : 0;
                    for (int32_t fy = fy0; fy < fy1; fy++) {
                        for (int32_t fx = fx0; fx < fx1; fx++) {
                            const int32_t v = x[((b * p->in_h + y0 + fy) * p->in_w + x0 + fx) * p->depth + c];
                            if (p->is_max) acc = v > acc ? v : acc;
                            else acc += v;
                        }
                    }
                    if (!p->is_max) {
                        /* rounds half away from zero, with C's truncating division */
                        const int32_t half = count / 2;
                        acc = acc > 0 ? (acc + half) / count : -((half - acc) / count);
                    }
                    y[((b * p->out_h + oy) * p->out_w + ox) * p->depth + c] = (int8_t)el_clamp(acc, p->act_min, p->act_max);
                }
            }
        }
    }
}
