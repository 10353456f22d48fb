"""QUANTIZE (float32 -> int8, int8 -> int8) and DEQUANTIZE (int8 -> float32), as LiteRT's reference.

Float arithmetic, exactly as the C++ does it:
- float32 -> int8 (AffineQuantize): the float32 scale divides the value in *float32*, the quotient is
  rounded half away from zero (std::round), converted to int32 and only then offset and clamped.
  The conversion is the x86 one LiteRT's build performs: a quotient outside int32 (or NaN) becomes
  INT32_MIN, so a huge positive input yields -128 rather than 127, and INT32_MIN + a negative zero
  point wraps around to a large positive value (127).
- int8 -> int8 (Requantize): multiplier from double(s_in) / double(s_out), one
  MultiplyByQuantizedMultiplier of (q - zp_in), plus zp_out, clamped.
- int8 -> float32 (Dequantize): double(scale) * (q - zp), rounded once to float32.

tflite-runtime 2.14's default interpreter (`TFLiteRuntimeQuantize`) runs the optimized float32 -> int8
kernel, which holds the scale as a double and so divides in double: a value whose float32 quotient
rounds to an exact half (e.g. -96.49999734 -> -96.5) lands one step apart (measured). Its other two
conversions are the reference ones.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
from numba import njit

from ..fixedpoint import mbqm, quantize_multiplier, round_half_away, wrap32, x86_double_to_int32
from .base import OpKernel, check_array, register, signatures_agree
from .flavor import TFLITE_RUNTIME


@njit(cache=True, nogil=True)
def _affine_quantize(x, scale, zero_point, out):
    for i in range(x.size):
        q = x[i] / scale  # float32 / float32 stays float32 in Numba, as in the C++ (float64 scale: double)
        # static_cast<int32_t>(std::round(q)), with x86's out-of-range (and NaN) result
        v = wrap32(x86_double_to_int32(round_half_away(np.float64(q))) + zero_point)
        out[i] = min(max(v, -128), 127)


@njit(cache=True, nogil=True)
def _requantize(x, zp_in, mult, shift, zp_out, out):
    for i in range(x.size):
        v = mbqm(np.int64(x[i]) - zp_in, mult, shift) + zp_out
        out[i] = min(max(v, -128), 127)


@njit(cache=True, nogil=True)
def _dequantize(x, scale, zero_point, out):
    for i in range(x.size):
        out[i] = np.float32(scale * np.float64(np.int64(x[i]) - zero_point))


class _UnaryKernel(OpKernel):
    """One input, one output of the same shape (dynamic dimensions allowed)."""

    def prepare_io(self) -> None:
        self.expect_counts(1, 1)
        self.x, self.y = self.input(0), self.output(0)
        if not signatures_agree(self.x.shape_signature, self.y.shape_signature):
            raise self.fail(f"{self.x.describe()} and {self.y.describe()} must have the same shape")

    def input_array(self, inputs: list[Optional[np.ndarray]]) -> np.ndarray:
        x = check_array(self, inputs[0], self.x)
        ys = self.y.shape_signature
        if any(s != -1 and s != d for s, d in zip(ys, x.shape)):
            raise self.fail(f"a {list(x.shape)} input does not fit {self.y.describe()}")
        return np.ascontiguousarray(x)


@register("QUANTIZE")
class Quantize(_UnaryKernel):
    """float32 -> int8 (`from_float`) or int8 -> int8 requantization.

    Parameters (read by the eval and the firmware generator): `zp_out`, the output zero point;
    from float, `scale_out` (float32; a float64 divides in double); from int8, `zp_in`, `mult` and `shift`:
    y = clamp(MBQM(x - zp_in, mult, shift) + zp_out, -128, 127)."""

    def prepare(self) -> None:
        self.prepare_io()
        self.expect_dtype(self.x, np.float32, np.int8)
        self.expect_dtype(self.y, np.int8)
        scale_out, self.zp_out = self.per_tensor_quant(self.y)
        self.from_float = self.x.dtype == np.float32
        if self.from_float:
            self.scale_out = np.float32(scale_out)
            return
        scale_in, self.zp_in = self.per_tensor_quant(self.x)
        real = scale_in / scale_out  # both float32 values, divided in double as LiteRT does
        self.mult, self.shift = (int(v) for v in quantize_multiplier(real))
        if self.shift > 30:
            raise self.fail(f"requantization ratio {real!r} is too large (shift {self.shift} > 30)")

    def run(self, inputs: list[Optional[np.ndarray]]) -> list[np.ndarray]:
        x = self.input_array(inputs)
        out = np.empty(x.shape, dtype=np.int8)
        if self.from_float:
            _affine_quantize(x.reshape(-1), self.scale_out, self.zp_out, out.reshape(-1))
        else:
            _requantize(x.reshape(-1), self.zp_in, self.mult, self.shift, self.zp_out, out.reshape(-1))
        return [out]


@register("QUANTIZE", flavor=TFLITE_RUNTIME)
class TFLiteRuntimeQuantize(Quantize):
    """tflite-runtime 2.14's optimized QUANTIZE: float32 -> int8 divides by the scale in double."""

    def prepare(self) -> None:
        super().prepare()
        if self.from_float:
            self.scale_out = np.float64(self.scale_out)


@register("DEQUANTIZE")
class Dequantize(_UnaryKernel):
    def prepare(self) -> None:
        self.prepare_io()
        self.expect_dtype(self.x, np.int8)
        self.expect_dtype(self.y, np.float32)
        self.scale, self.zp = self.per_tensor_quant(self.x)

    def run(self, inputs: list[Optional[np.ndarray]]) -> list[np.ndarray]:
        x = self.input_array(inputs)
        out = np.empty(x.shape, dtype=np.float32)
        _dequantize(x.reshape(-1), self.scale, self.zp, out.reshape(-1))
        return [out]
