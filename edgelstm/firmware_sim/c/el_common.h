/* edgelstm firmware library: shared integer primitives.
 *
 * Every function here is one named operation of TFLite Micro's reference kernels, with C's
 * undefined behaviours removed: int32 wrap-around goes through uint32_t, and the right shifts of
 * negative values rely on GCC's arithmetic shift (the same floor the Python prepare step uses).
 * No floating point anywhere: all scales were turned into (multiplier, shift) pairs at
 * generation time.
 */
#ifndef EL_COMMON_H
#define EL_COMMON_H

#include <stdint.h>
#include <stddef.h>
#include <string.h>

#define EL_MAX_DIMS 6

static inline int32_t el_clamp(int32_t x, int32_t lo, int32_t hi) {
    /* max first, then min: for a degenerate lo > hi this is what TFLite computes */
    x = x < lo ? lo : x;
    return x > hi ? hi : x;
}

static inline int32_t el_sat16(int32_t x) { return el_clamp(x, -32768, 32767); }
static inline int32_t el_sat8(int32_t x) { return el_clamp(x, -128, 127); }

/* int32 addition with two's-complement wrap-around (a C int32 overflow is undefined). */
static inline int32_t el_wrap_add(int32_t a, int32_t b) { return (int32_t)((uint32_t)a + (uint32_t)b); }

/* SaturatingRoundingDoublingHighMul: round(a*b / 2^31), ties toward +infinity. */
static inline int32_t el_srdhm(int32_t a, int32_t b) {
    if (a == INT32_MIN && b == INT32_MIN) return INT32_MAX;
    int64_t ab = (int64_t)a * (int64_t)b;
    return (int32_t)((ab + ((int64_t)1 << 30)) >> 31);
}

/* RoundingDivideByPOT: x / 2^e rounded to nearest, ties away from zero (0 <= e <= 31). */
static inline int32_t el_rdbp(int32_t x, int e) {
    const int32_t mask = (int32_t)((((uint32_t)1) << e) - 1u);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> e) + (remainder > threshold ? 1 : 0);
}

/* MultiplyByQuantizedMultiplier, TFLite Micro's double-rounding form. */
static inline int32_t el_mbqm(int32_t x, int32_t multiplier, int32_t shift) {
    const int left = shift > 0 ? (int)shift : 0;
    const int right = shift > 0 ? 0 : (int)-shift;
    return el_rdbp(el_srdhm((int32_t)((uint32_t)x << left), multiplier), right);
}

/* MultiplyByQuantizedMultiplier with its shift split up front, for loops that requantize many
 * values with one multiplier. The multiplier comes from QuantizeMultiplier, so it lies in
 * [2^30, 2^31) (or is 0): the one saturating case of SRDHM (both operands INT32_MIN) cannot occur. */
typedef struct {
    int32_t mult, left, right, mask, threshold;
} el_qm;

static inline el_qm el_qm_of(int32_t multiplier, int32_t shift) {
    el_qm q;
    q.mult = multiplier;
    q.left = shift > 0 ? shift : 0;
    q.right = shift > 0 ? 0 : -shift;
    q.mask = (int32_t)((((uint32_t)1) << q.right) - 1u);
    q.threshold = q.mask >> 1;
    return q;
}

static inline int32_t el_qm_apply(const el_qm *q, int32_t x) {
    const int64_t ab = (int64_t)(int32_t)((uint32_t)x << q->left) * q->mult;
    const int32_t hi = (int32_t)((ab + ((int64_t)1 << 30)) >> 31);
    return (hi >> q->right) + ((hi & q->mask) > q->threshold + (hi < 0 ? 1 : 0) ? 1 : 0);
}

/* gemmlowp SaturatingRoundingMultiplyByPOT<+e> on int32: a saturating left shift. */
static inline int32_t el_sat_shift_left32(int32_t x, int e) {
    const int32_t threshold = (int32_t)((((uint32_t)1) << (31 - e)) - 1u);
    if (x > threshold) return INT32_MAX;
    if (x < -threshold) return INT32_MIN;
    return (int32_t)((uint32_t)x << e);
}

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#include <arm_acle.h>
#define EL_DSP 1
#endif

/* acc + sum_k w[k] * v[k] over int8 vectors, with int32 wrap-around. Integer addition modulo 2^32
 * does not depend on the order, so the DSP path (two 16-bit products per SMLAD, four bytes per
 * load; Cortex-M4/M7/M33) and the plain one give the same bits. */
#ifdef EL_DSP
/* bytes 1 and 3 of x, sign-extended to two halfwords (SXTB16 with its free rotation) */
static inline int16x2_t el_sxtb16_ror8(uint32_t x) {
    int16x2_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
}
#endif

/* Not inlined: a dot product gets all the registers to itself (inlined into the LSTM's loops it
 * spilled its accumulator and pointers to the stack). */
__attribute__((noinline)) static int32_t el_dot_s8(const int8_t *w, const int8_t *v, int32_t n, int32_t acc) {
    int32_t k = 0;
#ifdef EL_DSP
    for (; k + 8 <= n; k += 8) {
        uint32_t w0, w1, v0, v1;
        memcpy(&w0, w + k, 4);  /* single (unaligned) LDRs */
        memcpy(&v0, v + k, 4);
        memcpy(&w1, w + k + 4, 4);
        memcpy(&v1, v + k + 4, 4);
        acc = __smlad(__sxtb16(w0), __sxtb16(v0), acc);  /* bytes 0 and 2 */
        acc = __smlad(el_sxtb16_ror8(w0), el_sxtb16_ror8(v0), acc);  /* bytes 1 and 3 */
        acc = __smlad(__sxtb16(w1), __sxtb16(v1), acc);
        acc = __smlad(el_sxtb16_ror8(w1), el_sxtb16_ror8(v1), acc);
    }
#else
    uint32_t s4 = (uint32_t)acc;
    for (; k + 4 <= n; k += 4)
        s4 += (uint32_t)(w[k] * v[k]) + (uint32_t)(w[k + 1] * v[k + 1]) + (uint32_t)(w[k + 2] * v[k + 2]) +
              (uint32_t)(w[k + 3] * v[k + 3]);
    acc = (int32_t)s4;
#endif
    uint32_t s = (uint32_t)acc;
    for (; k < n; k++) s += (uint32_t)(w[k] * v[k]);
    return (int32_t)s;
}

/* The same with int16 weights (a nonzero weight zero point folded in, never from the converter). */
__attribute__((noinline)) static int32_t el_dot_s16(const int16_t *w, const int8_t *v, int32_t n, int32_t acc) {
    uint32_t s = (uint32_t)acc;
    for (int32_t k = 0; k < n; k++) s += (uint32_t)((int32_t)w[k] * v[k]);
    return (int32_t)s;
}

/* Strided walk over up to EL_MAX_DIMS dimensions, for the kernels that move or reduce data. */
typedef struct {
    int32_t ndim;
    int32_t shape[EL_MAX_DIMS];
    int32_t stride[EL_MAX_DIMS];
} el_walk;

/* sigmoid(i / 24) in Q0.16, written into the generated model.c from edgelstm's prepare step. */
extern const uint16_t el_sigmoid_table[256];

#endif
