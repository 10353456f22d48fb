/* UNIDIRECTIONAL_SEQUENCE_LSTM, 8x8_16, as TFLite Micro's reference kernel computes it. */
#ifndef EL_LSTM_H
#define EL_LSTM_H
#include "el_common.h"

typedef struct {
    int32_t n_batch, n_steps, n_in, n_cell;
    int32_t time_major;          /* input/output [T, B, n] instead of [B, T, n] */
    int32_t wide_weights;        /* 1: weights are int16 (a nonzero weight zero point was folded in) */
    const void *wx;              /* [4 * n_cell][n_in], gate rows i, f, c, o */
    const void *wh;              /* [4 * n_cell][n_cell] */
    const int32_t *bx;           /* bias - zp_in * rowsum(wx), int32 wrap-around */
    const int32_t *bh;           /* -zp_h * rowsum(wh) */
    int32_t mx[4], sx[4];        /* input fully-connected multiplier and shift per gate */
    int32_t mh[4], sh[4];        /* recurrent fully-connected multiplier and shift per gate */
    int32_t fc_m, fc_s;          /* f * c -> cell scale */
    int32_t ig_m, ig_s;          /* i * g -> cell scale */
    int32_t cell_clipping;       /* TFLM's float cell_clip > 0: clip to +-cell_clip, even a bound of 0 */
    int32_t cell_clip;           /* int16(cell_clip / cell scale), truncated */
    int32_t hid_m, hid_s, hid_zp;    /* o * tanh(c) -> hidden state */
    int32_t tanh_c_mult, tanh_c_shift;  /* cell state -> the table's Q3.12 input */
} el_lstm_params;

/* Runs p->n_steps timesteps for every batch row; h [B, n_cell] and c [B, n_cell] are the
 * persistent state, updated in place. gates: scratch of 4 * n_cell int16. */
void el_lstm(const el_lstm_params *p, const int8_t *x, int8_t *h, int16_t *c, int8_t *out, int16_t *gates);

#endif
