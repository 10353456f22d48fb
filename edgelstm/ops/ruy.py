"""The requantization of ruy, the matrix library behind TFLite's optimized int8 FULLY_CONNECTED and
CONV_2D (the flavour "tflite-runtime").

Those kernels hand ruy the int32 accumulators with TFLite's per-channel fixed-point multipliers
(the same (M, shift) as `fixedpoint.quantize_multiplier` gives), and ruy applies them itself. Its x86
SIMD kernels (AVX, AVX2-FMA and AVX-512, in the ruy that TensorFlow 2.14 pins) round twice as
gemmlowp's MultiplyByQuantizedMultiplier does, round(x * M / 2^31) then a rounding right shift, but
that shift breaks ties toward +inf (add half, shift arithmetically) instead of away from zero. So
the result differs from `fixedpoint.mbqm` exactly where the intermediate value is negative and lies
halfway between two steps; on the zoo models that is 1 LSB on a few elements per thousand.

ruy's portable C++ path and its arm64 kernels round once instead (x * M plus half, one shift); that
is not what this module computes.
"""
from __future__ import annotations

from numba import njit

from ..fixedpoint import srdhm32, wrap32

_jit = njit(cache=True, nogil=True)


@_jit
def mbqm_ties_up(x, multiplier, shift):
    """MultiplyByQuantizedMultiplier as ruy's x86 kernels compute it: SRDHM(x * 2^max(shift,0), M)
    (left shift wrapping in int32), then x / 2^max(-shift,0) rounded to nearest, ties toward +inf.
    The sum in the shift cannot overflow here; where ruy's 32-bit sum would, it substitutes
    2^(31 - shift), which is what the wide sum gives."""
    left = shift if shift > 0 else 0
    right = -shift if shift < 0 else 0
    v = srdhm32(wrap32(x * (1 << left)), multiplier)
    if right == 0:
        return v
    return (v + (1 << (right - 1))) >> right
