#include "el_lstm.h"

/* TFLite Micro's int16 sigmoid and tanh (reference_integer_ops::Logistic/Tanh): the input is
 * scaled into the table's domain, then sigmoid_table is interpolated linearly. */
static inline int32_t el_lut_scale(int32_t x, int32_t mult, int32_t shift) {
    if (mult == 0) return x * (3 << shift);  /* power-of-two input scale: 3 << shift, no rounding */
    const int32_t half = shift > 0 ? (1 << (shift - 1)) : 0;
    return (x * mult + half) >> shift;
}

static inline int16_t el_lut_logistic(int32_t x) {
    const int32_t v = x * 3;  /* Q3.12 input, multiplier 3, no shift */
    const uint32_t a = (uint32_t)(v < 0 ? -v : v);
    const uint32_t uh = a >> 9;
    uint32_t r;
    if (uh >= 255) {
        r = 0x7FFFu << 10;
    } else {
        const uint32_t ua = el_sigmoid_table[uh];
        r = (ua << 9) + (a & 0x1FFu) * (el_sigmoid_table[uh + 1] - ua);
    }
    r = v >= 0 ? r + (1u << 9) : (1u << 25) - r + (1u << 9) - 1u;
    return (int16_t)(r >> 10);
}

static inline int16_t el_lut_tanh(int32_t v) {
    const uint32_t a = (uint32_t)(v < 0 ? -v : v);
    const uint32_t uh = a >> 8;
    int32_t r;
    if (uh >= 255) {
        r = 0xFFFF << 8;
    } else {
        const int32_t ua = el_sigmoid_table[uh];
        r = (ua << 8) + (int32_t)(a & 0xFFu) * ((int32_t)el_sigmoid_table[uh + 1] - ua);
    }
    r = v >= 0 ? r - (1 << 23) + (1 << 7) : -r + (1 << 23) + (1 << 7) - 1;
    return (int16_t)(r >> 8);
}

/* One gate's fully-connected part for every cell: out[r] = sat16(mbqm(bias[r] + w[r] . v)), or,
 * with add, out[r] = sat16(out[r] + that): TFLM saturates each of the two fully-connected outputs
 * to int16, then their sum again. Not inlined, so that its loops get the registers; on DSP cores
 * two rows share every load of v. */
__attribute__((noinline)) static void el_gate_fc(const int8_t *w, const int8_t *v, int32_t rows, int32_t n,
                                                 const int32_t *bias, int32_t mult, int32_t shift, int16_t *out,
                                                 int add) {
    const el_qm q = el_qm_of(mult, shift);
    int32_t r = 0;
#ifdef EL_DSP
    for (; r + 2 <= rows; r += 2) {
        const int8_t *wa = w + r * n, *wb = wa + n;
        int32_t a = bias[r], b = bias[r + 1], k = 0;
        for (; k + 4 <= n; k += 4) {
            uint32_t vq, qa, qb;
            memcpy(&vq, v + k, 4);
            memcpy(&qa, wa + k, 4);
            memcpy(&qb, wb + k, 4);
            const int16x2_t v02 = __sxtb16(vq), v13 = el_sxtb16_ror8(vq);
            a = __smlad(__sxtb16(qa), v02, a);
            a = __smlad(el_sxtb16_ror8(qa), v13, a);
            b = __smlad(__sxtb16(qb), v02, b);
            b = __smlad(el_sxtb16_ror8(qb), v13, b);
        }
        uint32_t ua = (uint32_t)a, ub = (uint32_t)b;
        for (; k < n; k++) {
            ua += (uint32_t)(wa[k] * v[k]);
            ub += (uint32_t)(wb[k] * v[k]);
        }
        const int32_t za = el_sat16(el_qm_apply(&q, (int32_t)ua));
        const int32_t zb = el_sat16(el_qm_apply(&q, (int32_t)ub));
        out[r] = (int16_t)(add ? el_sat16(out[r] + za) : za);
        out[r + 1] = (int16_t)(add ? el_sat16(out[r + 1] + zb) : zb);
    }
#endif
    for (; r < rows; r++) {
        const int32_t z = el_sat16(el_qm_apply(&q, el_dot_s8(w + r * n, v, n, bias[r])));
        out[r] = (int16_t)(add ? el_sat16(out[r] + z) : z);
    }
}

/* The same with int16 weights (a nonzero weight zero point folded in; never from the converter). */
__attribute__((noinline)) static void el_gate_fc16(const int16_t *w, const int8_t *v, int32_t rows, int32_t n,
                                                   const int32_t *bias, int32_t mult, int32_t shift, int16_t *out,
                                                   int add) {
    for (int32_t r = 0; r < rows; r++) {
        const int32_t z = el_sat16(el_mbqm(el_dot_s16(w + r * n, v, n, bias[r]), mult, shift));
        out[r] = (int16_t)(add ? el_sat16(out[r] + z) : z);
    }
}

static void el_lstm_gates(const el_lstm_params *p, const int8_t *x, const int8_t *h, int16_t *gates) {
    const int32_t n = p->n_cell, n_in = p->n_in;
    for (int32_t g = 0; g < 4; g++) {
        const int32_t r0 = g * n;
        if (p->wide_weights) {
            el_gate_fc16((const int16_t *)p->wx + r0 * n_in, x, n, n_in, p->bx + r0, p->mx[g], p->sx[g], gates + r0, 0);
            el_gate_fc16((const int16_t *)p->wh + r0 * n, h, n, n, p->bh + r0, p->mh[g], p->sh[g], gates + r0, 1);
        } else {
            el_gate_fc((const int8_t *)p->wx + r0 * n_in, x, n, n_in, p->bx + r0, p->mx[g], p->sx[g], gates + r0, 0);
            el_gate_fc((const int8_t *)p->wh + r0 * n, h, n, n, p->bh + r0, p->mh[g], p->sh[g], gates + r0, 1);
        }
    }
}

/* The cell and hidden updates of one step, all cells (gates in Q0.15 after the activations). */
__attribute__((noinline)) static void el_lstm_cell_hidden(const el_lstm_params *p, const int16_t *gates, int8_t *h,
                                                          int16_t *c) {
    const int32_t n = p->n_cell, clipping = p->cell_clipping, clip = p->cell_clip, hid_zp = p->hid_zp;
    const int32_t tc_mult = p->tanh_c_mult, tc_shift = p->tanh_c_shift;
    const el_qm fc_q = el_qm_of(p->fc_m, p->fc_s), ig_q = el_qm_of(p->ig_m, p->ig_s), hid_q = el_qm_of(p->hid_m, p->hid_s);
    for (int32_t j = 0; j < n; j++) {
        const int32_t i_g = el_lut_logistic(gates[j]);
        const int32_t f_g = el_lut_logistic(gates[n + j]);
        const int32_t c_g = el_lut_tanh(gates[2 * n + j] * 3);
        const int32_t o_g = el_lut_logistic(gates[3 * n + j]);
        const int32_t fc = el_sat16(el_qm_apply(&fc_q, f_g * c[j]));
        const int32_t ig = el_sat16(el_qm_apply(&ig_q, i_g * c_g));
        int32_t v = el_sat16(fc + ig);
        if (clipping) v = v > clip ? clip : (v < -clip ? -clip : v);
        c[j] = (int16_t)v;
        const int32_t t = el_lut_tanh(el_lut_scale(v, tc_mult, tc_shift));
        h[j] = (int8_t)el_sat8(el_qm_apply(&hid_q, t * o_g) + hid_zp);
    }
}

void el_lstm(const el_lstm_params *p, const int8_t *x, int8_t *h, int16_t *c, int8_t *out, int16_t *gates) {
    const int32_t nb = p->n_batch, nt = p->n_steps, n = p->n_cell;
    for (int32_t b = 0; b < nb; b++) {
        int8_t *hb = h + b * n;
        int16_t *cb = c + b * n;
        for (int32_t t = 0; t < nt; t++) {
            const int32_t row = p->time_major ? t * nb + b : b * nt + t;
            /* all four gates from the old h before any of it is overwritten */
            el_lstm_gates(p, x + row * p->n_in, hb, gates);
            el_lstm_cell_hidden(p, gates, hb, cb);
            memcpy(out + row * n, hb, (size_t)n);
        }
    }
}
