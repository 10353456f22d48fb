"""Elementwise int8 activations: LOGISTIC, TANH, RELU, RELU6, RELU_N1_TO_1, RELU_0_TO_1, LEAKY_RELU.

Each of these maps one int8 to one int8 under fixed quantization parameters, so prepare() works the
op out once for all 256 possible inputs and run() is a table lookup. The tables are built exactly
as LiteRT's BUILTIN_REF kernels compute (tflite/kernels/activations.cc):

* LOGISTIC and TANH (kReference) fill a 256-entry table in Prepare from *float32* arithmetic
  and the C library's `expf` / `tanhf` (LUTPopulate<int8_t> in kernels/internal/common.h). We
  repeat every float32 step and call the same libm functions through ctypes, since numpy's own
  SIMD exp/tanh are not guaranteed to round like glibc's.
* The RELU family (the reference resolver registers the plain Register_RELU* kernels) is
  ReluX: requantize with MultiplyByQuantizedMultiplier, then clamp to a range derived from the
  float bounds.
* LEAKY_RELU (Register_LEAKY_RELU_REF) is QuantizeLeakyRelu: one multiplier for x >= 0, another
  for alpha * x, with the sign of a negative alpha applied after the requantization.

TFLite Micro (flavor="tflm") differs on three of them: LOGISTIC and TANH are integer code (gemmlowp's
int32 logistic/tanh on a Q4.27 input, `_gemmlowp_sigmoid_table`) that assumes the output
quantization instead of reading it, and RELU6 clamps in the input's quantization without
requantizing. RELU and LEAKY_RELU are the same code; RELU_N1_TO_1 and RELU_0_TO_1 have no TFLM kernel.
"""
from __future__ import annotations

from abc import abstractmethod

import ctypes
import ctypes.util
import math
from typing import Callable, ClassVar, Optional

import numpy as np
from numba import njit

from ..fixedpoint import (logistic32, mbqm, quantize_multiplier, rdbp, round_half_away, tanh32, wrap32,
                          x86_double_to_int32)
from ..tflite_reader import Tensor
from .base import OpKernel, quantize_bound, register, signatures_agree
from .flavor import TFLM

_f32 = np.float32
_INT8_VALUES = np.arange(-128, 128, dtype=np.int64)


# -- the C library's float32 functions ---------------------------------------------------------
def _load_libm() -> Optional[ctypes.CDLL]:
    for name in (ctypes.util.find_library("m"), "libm.so.6", None):
        try:
            lib = ctypes.CDLL(name)
            lib.expf, lib.tanhf  # noqa: B018 - both must resolve
            return lib
        except (OSError, AttributeError):
            continue
    return None


_LIBM = _load_libm()


_FloatFn = Callable[[np.ndarray], np.ndarray]


def _c_float_fn(name: str, fallback: _FloatFn) -> _FloatFn:
    """Vectorised float32 -> float32 through libm's `name` (LiteRT calls the same symbol)."""
    if _LIBM is None:  # pragma: no cover - no C math library reachable; numpy may differ by an ulp
        return lambda x: fallback(x.astype(np.float32)).astype(np.float32)
    fn = getattr(_LIBM, name)
    fn.restype = ctypes.c_float
    fn.argtypes = [ctypes.c_float]
    return lambda x: np.array([fn(float(v)) for v in x], dtype=np.float32)


#: libm's expf on each value of a float32 vector (the softmax of flavour tflite-runtime uses it too)
expf = _c_float_fn("expf", np.exp)
_tanhf = _c_float_fn("tanhf", np.tanh)


def _roundf(x: np.ndarray) -> np.ndarray:
    """C roundf on each value of a float32 vector: halves away from zero (numpy's np.round goes to
    even). The result of rounding a float32 is itself a float32, so the float64 detour is exact."""
    return np.array([round_half_away(float(v)) for v in x], dtype=np.float32)


def _f32_to_i32_clamped(x) -> np.ndarray:
    """static_cast<int32_t>(float) where the C++ clamps the result to int8 right away (LUTPopulate).
    The compiler folds cast-then-clamp into a saturating conversion, so an overflowing entry
    saturates (measured: a positive overflow gives +127)."""
    d = np.nan_to_num(np.atleast_1d(np.asarray(x, dtype=np.float64)), nan=0.0)
    return np.trunc(np.clip(d, -2147483648.0, 2147483647.0)).astype(np.int64)


def _to_c_order(table: np.ndarray) -> np.ndarray:
    """Reorder a table indexed by value + 128 into LiteRT's order (indexed by the byte itself), so
    that run() can index with `x.view(uint8)`."""
    t = np.asarray(table, dtype=np.int8)
    out = np.empty(256, dtype=np.int8)
    out[_INT8_VALUES.astype(np.uint8)] = t
    out.setflags(write=False)
    return out


def float_lut(input_scale: float, input_zp: int, output_scale: float, output_zp: int,
              transform: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """LUTPopulate<int8_t>: the 256 outputs (indexed by value + 128) of a float32 transform."""
    inverse_scale = _f32(1.0) / _f32(output_scale)
    dequantized = _f32(input_scale) * (_INT8_VALUES - input_zp).astype(np.float32)
    transformed = transform(dequantized).astype(np.float32)
    rescaled = _roundf(transformed * inverse_scale)
    quantized = _f32_to_i32_clamped(rescaled + _f32(output_zp))
    return np.clip(quantized, -128, 127)


def _logistic_f32(x: np.ndarray) -> np.ndarray:
    # 1.0f / (1.0f + expf(-x)), every step in float32
    return _f32(1.0) / (_f32(1.0) + expf(-x))


# -- integer tables --------------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def _relu_x_table(out, input_zp, output_zp, multiplier, shift, act_min, act_max):
    """ReluX for every int8 input (out[v + 128]); the final int8 store truncates like the C cast."""
    for i in range(256):
        c = wrap32(output_zp + mbqm(i - 128 - input_zp, multiplier, shift))
        c = max(act_min, c)
        c = min(act_max, c)
        out[i] = ((c + 128) & 0xFF) - 128


@njit(cache=True, nogil=True)
def _leaky_relu_table(out, input_zp, output_zp, m_identity, s_identity, m_alpha, s_alpha, alpha_negative):
    """QuantizeLeakyRelu for every int8 input (out[v + 128])."""
    for i in range(256):
        x = i - 128 - input_zp
        if x >= 0:
            c = wrap32(output_zp + mbqm(x, m_identity, s_identity))
        else:
            scaled = mbqm(x, m_alpha, s_alpha)
            c = wrap32(output_zp + (wrap32(-scaled) if alpha_negative else scaled))
        out[i] = min(max(c, -128), 127)


@njit(cache=True, nogil=True)
def _gemmlowp_sigmoid_table(out, input_zp, radius, multiplier, shift, is_tanh):
    """TFLite Micro's integer LOGISTIC / TANH for every int8 input (out[v + 128]): inputs beyond
    the radius saturate; the rest become Q4.27 via MultiplyByQuantizedMultiplier, go through
    gemmlowp's int32 logistic or tanh, and are rounded to the implied output scale, 1/256 with zero
    point -128 (LOGISTIC) or 1/128 with zero point 0 (TANH); the output tensor's own parameters
    are never read."""
    for i in range(256):
        x = i - 128 - input_zp
        if x <= -radius:
            out[i] = -128
        elif x >= radius:
            out[i] = 127
        elif is_tanh:
            out[i] = min(max(rdbp(tanh32(mbqm(x, multiplier, shift), 4), 24), -128), 127)
        else:
            out[i] = min(max(rdbp(logistic32(mbqm(x, multiplier, shift), 4), 23) - 128, -128), 127)


def tflm_sigmoid_table(kernel: OpKernel, in_s: float, in_zp: int, is_tanh: bool) -> np.ndarray:
    """The 256 outputs of TFLite Micro's int8 LOGISTIC or TANH, input order."""
    # Prepare: frexp of in_s * 2^27 (Q4.27 input), multiplier round(q * 2^31), radius
    # floor(15 * 2^27 / 2^shift) (CalculateInputRadius with 4 integer bits)
    q, shift = math.frexp(float(in_s) * float(1 << 27))
    if shift < 0:
        raise kernel.fail(f"input scale {in_s!r} is too small for TFLite Micro's int8 {kernel.op.opcode}")
    multiplier = int(round_half_away(q * 2147483648.0))
    radius = math.floor(15.0 * (1 << 27) / (1 << shift))
    table = np.empty(256, dtype=np.int64)
    _gemmlowp_sigmoid_table(table, in_zp, radius, multiplier, shift, is_tanh)
    return table


# -- kernels ---------------------------------------------------------------------------------------
class Int8TableKernel(OpKernel):
    """An int8 -> int8 elementwise op evaluated through a 256-entry table built in prepare().

    Parameters (read by the eval and the firmware generator): `table`, y = table[uint8 byte of x]."""

    table: np.ndarray  # int8[256], indexed by the input byte (LiteRT's LUT order)

    def prepare(self) -> None:
        self.expect_counts(1, 1)
        inp, out = self.input(0), self.output(0)
        self.expect_dtype(inp, np.int8)
        self.expect_dtype(out, np.int8)
        if not signatures_agree(inp.shape_signature, out.shape_signature):
            raise self.fail(f"output shape {list(out.shape_signature)} differs from input shape "
                            f"{list(inp.shape_signature)}")
        in_s, in_zp = self.per_tensor_quant(inp)
        out_s, out_zp = self.per_tensor_quant(out)
        self.table = _to_c_order(self.build_table(inp, out, in_s, in_zp, out_s, out_zp))

    @abstractmethod
    def build_table(self, inp: Tensor, out: Tensor, in_s: float, in_zp: int, out_s: float,
                    out_zp: int) -> np.ndarray:
        """The op's output for each of the 256 int8 inputs, in input order."""

    def run(self, inputs: list[Optional[np.ndarray]]) -> list[np.ndarray]:
        x = inputs[0]
        if not isinstance(x, np.ndarray) or x.dtype != np.int8:
            raise self.fail(f"expects an int8 input array, got {getattr(x, 'dtype', type(x).__name__)}")
        return [np.asarray(self.table[x.view(np.uint8)]).reshape(x.shape)]

    def _multiplier(self, real: float, what: str) -> tuple[int, int]:
        if not math.isfinite(real):
            raise self.fail(f"{what} multiplier {real} is too large (input/output scale ratio)")
        m, shift = quantize_multiplier(real)
        if shift > 30:  # the C kernel would shift a 1 into (or past) the int32 sign bit
            raise self.fail(f"{what} multiplier {real:g} is too large (input/output scale ratio)")
        return int(m), int(shift)


@register("LOGISTIC")
class Logistic(Int8TableKernel):
    def build_table(self, inp, out, in_s, in_zp, out_s, out_zp):
        # The reference kernel insists on exactly 1/256 (a float compared with the double 1./256).
        if out_s != 1.0 / 256:
            raise self.fail(f"int8 LOGISTIC needs output scale 1/256, {out.describe()} has {out_s!r}")
        return float_lut(in_s, in_zp, out_s, out_zp, _logistic_f32)


@register("LOGISTIC", flavor=TFLM)
class TFLMLogistic(Int8TableKernel):
    def build_table(self, inp, out, in_s, in_zp, out_s, out_zp):
        # TFLM checks only the zero point and writes q = 256 p - 128 whatever the scale says
        if out_zp != -128:
            raise self.fail(f"TFLite Micro's int8 LOGISTIC needs output zero point -128, {out.describe()} "
                            f"has {out_zp}")
        return tflm_sigmoid_table(self, in_s, in_zp, is_tanh=False)


@register("TANH")
class Tanh(Int8TableKernel):
    def build_table(self, inp, out, in_s, in_zp, out_s, out_zp):
        return float_lut(in_s, in_zp, out_s, out_zp, _tanhf)


@register("TANH", flavor=TFLM)
class TFLMTanh(Int8TableKernel):
    def build_table(self, inp, out, in_s, in_zp, out_s, out_zp):
        # writes q = 128 t, ignoring the output's scale and zero point
        return tflm_sigmoid_table(self, in_s, in_zp, is_tanh=True)


class _ReluX(Int8TableKernel):
    """Requantize, then clamp to [act_min, act_max] (real units, float32) mapped onto the output."""

    bounds: ClassVar[tuple[float, float]]

    def build_table(self, inp, out, in_s, in_zp, out_s, out_zp):
        # float / float in float32, widened to double only afterwards (as ReluPrepare does)
        m, shift = self._multiplier(float(_f32(in_s) / _f32(out_s)), "requantization")
        lo, hi = self.bounds
        # zp + static_cast<int32_t>(roundf(bound / scale)), unchecked (the cast is x86's: NaN or
        # anything outside int32 gives INT32_MIN, measured) and added before clamping
        act_min = max(-128, quantize_bound(lo, out_s, out_zp)[1])
        act_max = 127 if math.isinf(hi) else min(127, quantize_bound(hi, out_s, out_zp)[1])
        table = np.empty(256, dtype=np.int64)
        _relu_x_table(table, in_zp, out_zp, m, shift, act_min, act_max)
        return table


@register("RELU")
class Relu(_ReluX):
    bounds = (0.0, math.inf)


@register("RELU6")
class Relu6(_ReluX):
    bounds = (0.0, 6.0)


@register("RELU6", flavor=TFLM)
class TFLMRelu6(Int8TableKernel):
    def build_table(self, inp, out, in_s, in_zp, out_s, out_zp):
        # TFLite Micro clamps the raw input to [zp, q(6)] in the *input's* quantization and never
        # requantizes: the output tensor's parameters are ignored. q(6) = round(6 / s) + zp,
        # computed in float (FloatToQuantizedType), then clamped to int8.
        six = x86_double_to_int32(round_half_away(float(_f32(6.0) / _f32(in_s))) + in_zp)
        six = min(max(six, -128), 127)
        x = _INT8_VALUES
        return np.where(x > six, six, np.where(x < in_zp, in_zp, x))


@register("RELU_N1_TO_1")
class ReluN1To1(_ReluX):
    bounds = (-1.0, 1.0)


@register("RELU_0_TO_1")
class Relu0To1(_ReluX):
    bounds = (0.0, 1.0)


@register("LEAKY_RELU")
class LeakyRelu(Int8TableKernel):
    def build_table(self, inp, out, in_s, in_zp, out_s, out_zp):
        alpha = self.op.options.get("alpha")
        if alpha is None:
            raise self.fail("has no LeakyReluOptions (alpha)")
        alpha = _f32(alpha)
        if not np.isfinite(alpha):
            raise self.fail(f"alpha must be finite, is {float(alpha)}")
        # LeakyReluPrepare: both products and quotients in float32, then widened to double
        m_id, s_id = self._multiplier(float(_f32(in_s) / _f32(out_s)), "identity")
        alpha_real = float(_f32(in_s) * alpha / _f32(out_s))
        if not math.isfinite(alpha_real):
            raise self.fail(f"alpha multiplier {alpha_real} is too large (alpha * input/output scale ratio)")
        negative = alpha_real < 0
        q, _ = math.frexp(abs(alpha_real))
        if negative and math.floor(q * 2147483648.0 + 0.5) == 2147483648:
            # LiteRT would quantize this alpha to -2^31 and then overflow negating it
            raise self.fail(f"alpha multiplier {alpha_real!r} hits an int32 overflow in LiteRT's kernel")
        # QuantizeLeakyRelu negates a negative alpha multiplier before use; quantizing |x| is the same
        m_a, s_a = self._multiplier(abs(alpha_real), "alpha")
        table = np.empty(256, dtype=np.int64)
        _leaky_relu_table(table, in_zp, out_zp, m_id, s_id, m_a, s_a, negative)
        return table
