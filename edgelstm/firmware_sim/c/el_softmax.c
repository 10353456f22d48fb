#include "el_softmax.h"

/* gemmlowp one_over_one_plus_x_for_x_in_0_1 on int32: three Newton-Raphson steps in Q2.29. */
static int32_t el_one_over_one_plus_x(int32_t a) {
    int64_t s = (int64_t)a + INT32_MAX;
    s += s >= 0 ? 1 : -1;
    const int32_t half_denominator = (int32_t)(s / 2);  /* RoundingHalfSum(a, 1.0) */
    int32_t x = el_wrap_add(1515870810, el_srdhm(half_denominator, -1010580540));  /* 48/17 - 32/17 d */
    for (int i = 0; i < 3; i++) {
        const int32_t hdx = el_srdhm(half_denominator, x);
        const int32_t one_minus = el_wrap_add(1 << 29, -hdx);
        x = el_wrap_add(x, el_sat_shift_left32(el_srdhm(x, one_minus), 2));
    }
    return el_sat_shift_left32(x, 1);
}

void el_softmax(const el_softmax_params *p, const int8_t *x, int8_t *y) {
    for (int32_t i = 0; i < p->rows; i++) {
        const int8_t *xr = x + i * p->depth;
        int8_t *yr = y + i * p->depth;
        int32_t row_max = -128;
        for (int32_t c = 0; c < p->depth; c++) row_max = xr[c] > row_max ? xr[c] : row_max;
        int32_t total = 0;  /* Q12.19; the generator refuses depths where it could reach 2^28 */
        for (int32_t c = 0; c < p->depth; c++) total += el_rdbp(p->exp_table[row_max - xr[c]], 12);
        int headroom_plus_one = 0;
        while (headroom_plus_one < 31 && ((int64_t)total << headroom_plus_one) < ((int64_t)1 << 31)) headroom_plus_one++;
        const int32_t reciprocal = el_one_over_one_plus_x((int32_t)(((int64_t)total << headroom_plus_one) - ((int64_t)1 << 31)));
        const int exponent = 12 - headroom_plus_one + 31 - 8;
        for (int32_t c = 0; c < p->depth; c++) {
            const int32_t v = el_rdbp(el_srdhm(reciprocal, p->exp_table[row_max - xr[c]]), exponent) - 128;
            yr[c] = (int8_t)el_sat8(v);
        }
    }
}
