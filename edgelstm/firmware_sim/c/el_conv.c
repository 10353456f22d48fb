#include "el_conv.h"

void el_conv(const el_conv_params *p, const int8_t *x, int8_t *y) {
    for (int32_t b = 0; b < p->n_batch; b++) {
        for (int32_t oy = 0; oy < p->out_h; oy++) {
            const int32_t y0 = oy * p->stride_h - p->pad_h;
            for (int32_t ox = 0; ox < p->out_w; ox++) {
                const int32_t x0 = ox * p->stride_w - p->pad_w;
                for (int32_t o = 0; o < p->n_out; o++) {
                    const int32_t c0 = (o / p->per_group) * p->k_c;
                    uint32_t acc = 0;
                    for (int32_t ky = 0; ky < p->k_h; ky++) {
                        const int32_t iy = y0 + p->dil_h * ky;
                        if (iy < 0 || iy >= p->in_h) continue;  /* padding taps are skipped */
                        for (int32_t kx = 0; kx < p->k_w; kx++) {
                            const int32_t ix = x0 + p->dil_w * kx;
                            if (ix < 0 || ix >= p->in_w) continue;
                            const int8_t *xp = x + ((b * p->in_h + iy) * p->in_w + ix) * p->in_c + c0;
                            const int8_t *wp = p->w + ((o * p->k_h + ky) * p->k_w + kx) * p->k_c;
                            for (int32_t c = 0; c < p->k_c; c++)
                                acc += (uint32_t)((int32_t)wp[c] * ((int32_t)xp[c] + p->in_off));
                        }
                    }
                    int32_t v = el_mbqm(el_wrap_add((int32_t)acc, p->bias[o]), p->mult[o], p->shift[o]);
                    v = el_wrap_add(v, p->out_zp);
                    y[((b * p->out_h + oy) * p->out_w + ox) * p->n_out + o] = (int8_t)el_clamp(v, p->act_min, p->act_max);
                }
            }
        }
    }
}
