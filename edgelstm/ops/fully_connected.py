"""FULLY_CONNECTED, full-integer path: int8 input, int8 weights (per tensor or per output channel),
optional int32 bias, int8 output, fused NONE/RELU/RELU6/RELU_N1_TO_1.

LiteRT's reference kernel (the one BUILTIN_REF registers) does *not* requantize with the usual
fixed-point multiplier: since 2025 it scales the int32 accumulator in double precision,
`round(double(acc) * (double(s_in) * double(s_w) / double(s_out)))`, rounding halves away from zero
(the optimized kernels still use the multiplier; the two differ by one on some elements). The
multipliers are still computed in LiteRT's Prepare, but only their error checks matter here.

Other LiteRT behaviours reproduced: per-channel weights ignore their zero point (the spec makes them
symmetric) while per-tensor weights subtract theirs; the accumulator is int32 and wraps; a per-tensor
weight's bias scale must agree with s_in * s_w within 2% of s_out or Prepare fails.

Also holds `activation_range`, the fused-activation clamp shared with the convolution kernels.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np
from numba import njit

from ..errors import InputError
from ..fixedpoint import INT32_MAX, INT32_MIN, wrap32
from ..tflite_reader import Tensor
from .base import OpKernel, register

_jit = njit(cache=True, nogil=True)

# Activations the integer kernels implement as a clamp; LiteRT's FC Prepare refuses all others.
CLAMP_ACTIVATIONS = ("NONE", "RELU", "RELU6", "RELU_N1_TO_1")


# -- scalar helpers -----------------------------------------------------------------------------
@_jit
def round_half_away(v):
    """C `round()` on a double: nearest integer, halves away from zero (exact for every double)."""
    a = abs(v)
    f = math.floor(a)
    if a - f >= 0.5:  # a - floor(a) is exact, unlike the tempting floor(a + 0.5)
        f += 1.0
    return f if v >= 0 else -f


@_jit
def x86_double_to_int32(v):
    """`static_cast<int32_t>` of an integral double as x86 executes it (cvttsd2si): values outside
    int32, and NaN, become INT32_MIN (the "integer indefinite" result), they do not saturate."""
    if v >= -2147483648.0 and v <= 2147483647.0:
        return int(v)
    return -2147483648


def _round_float32(v: np.float32) -> float:
    """`std::round(float)`: the float32 value rounded half away from zero."""
    return float(round_half_away(float(v)))


def activation_range(kernel: OpKernel, out_scale: float, out_zp: int) -> tuple[int, int]:
    """(act_min, act_max) for the op's fused activation on an int8 output, as LiteRT's
    CalculateActivationRangeQuantized: the bound is `zp + round(float32(bound) / float32(scale))`
    in float32, refused if it does not fit int32 (LiteRT fails Prepare then)."""
    act = kernel.activation()
    if act not in CLAMP_ACTIVATIONS:
        raise kernel.fail(f"fused activation {act} is not supported (only {', '.join(CLAMP_ACTIVATIONS)})")
    scale = np.float32(out_scale)

    def quantize(real: float) -> int:
        tmp = _round_float32(np.float32(np.float32(real) / scale))
        # LiteRT compares against float(INT32_MAX), which is 2^31 itself, so 2^31 passes the check
        if not (tmp >= float(np.float32(INT32_MIN)) and tmp <= float(np.float32(INT32_MAX))):
            raise kernel.fail(f"activation bound {real} does not fit int32 at output scale {out_scale}")
        return int(wrap32(out_zp + x86_double_to_int32(tmp)))

    lo, hi = -128, 127
    if act == "RELU":
        lo = max(lo, quantize(0.0))
    elif act == "RELU6":
        lo, hi = max(lo, quantize(0.0)), min(hi, quantize(6.0))
    elif act == "RELU_N1_TO_1":
        lo, hi = max(lo, quantize(-1.0)), min(hi, quantize(1.0))
    # lo > hi is possible for absurd scales; the kernels then clamp max-then-min as LiteRT does.
    return lo, hi


def legacy_scale(t: Optional[Tensor]) -> float:
    """A tensor's `params.scale` in LiteRT: its scale if quantized per tensor, else 0."""
    if t is None or t.quant is None or not t.quant.per_tensor:
        return 0.0
    return t.quant.s


# -- the arithmetic -----------------------------------------------------------------------------
@_jit
def _fc_int8(x, w, bias, eff, out_zp, act_min, act_max, out):
    """out[b, u] = clamp(out_zp + round(wrap32(sum_d w[u, d] * x[b, d] + bias[u]) * eff[u])).

    `w` already holds the weights plus their offset and `bias` the input offset folded in (both
    exact modulo 2^32, which is all int32 wrap-around preserves)."""
    n_b, depth = x.shape
    n_u = w.shape[0]
    for b in range(n_b):
        for u in range(n_u):
            acc = 0
            for d in range(depth):
                acc += w[u, d] * x[b, d]
            acc = wrap32(acc + bias[u])
            v = x86_double_to_int32(round_half_away(float(acc) * eff[u]))
            v = wrap32(v + out_zp)
            v = max(v, act_min)
            out[b, u] = min(v, act_max)


@register("FULLY_CONNECTED")
class FullyConnected(OpKernel):
    optional_inputs = frozenset({2})

    def prepare(self) -> None:
        self.expect_counts((2, 3), 1)
        x, w, y = self.input(0), self.input(1), self.output(0)
        bias = self.input(2, required=False)
        self.x_t, self.y_t = x, y
        self.expect_dtype(x, np.int8)
        self.expect_dtype(w, np.int8)
        self.expect_dtype(y, np.int8)
        opts = self.op.options
        if int(opts.get("weights_format", 0)) != 0:
            raise self.fail(f"weights format {int(opts['weights_format'])} is not supported (only DEFAULT)")
        self.keep_num_dims = bool(opts.get("keep_num_dims", False))

        wq = self.constant(w)
        if wq.ndim != 2 or wq.shape[0] == 0 or wq.shape[1] == 0:
            raise self.fail(f"weights {w.describe()} must be a non-empty 2-D [units, depth] matrix")
        self.units, self.depth = wq.shape
        if len(x.shape) < 1:
            raise self.fail(f"input {x.describe()} must have at least one dimension")
        if self.keep_num_dims and x.shape_signature[-1] not in (-1, self.depth):
            raise self.fail(f"with keep_num_dims the input's last dimension must be the weights' depth "
                            f"{self.depth}, {x.describe()}")

        s_in, z_in = self.per_tensor_quant(x)
        s_out, z_out = self.per_tensor_quant(y)
        if w.quant is None:
            raise self.fail(f"weights {w.describe()} have no quantization parameters")
        per_channel = not w.quant.per_tensor
        if per_channel and w.quant.axis != 0:
            raise self.fail(f"per-channel weights must be quantized along dimension 0, not {w.quant.axis}")

        b = np.zeros(self.units, dtype=np.int64)
        if bias is not None:
            self.expect_dtype(bias, np.int32)
            bq = self.constant(bias)
            if bq.size != self.units:
                raise self.fail(f"bias {bias.describe()} must have {self.units} elements")
            b = bq.reshape(-1).astype(np.int64)

        if per_channel:
            w_scales = [float(s) for s in w.quant.scale]
            w_offset = 0  # symmetric by spec; LiteRT does not read these zero points
        else:
            w_scales = [w.quant.s] * self.units
            w_offset = -w.quant.zp
            product = s_in * w.quant.s
            if bias is not None and abs(product - legacy_scale(bias)) / s_out > 0.02:
                raise self.fail(f"bias scale {legacy_scale(bias)} does not match input scale x weight scale "
                                f"{product} (LiteRT refuses a mismatch above 2% of the output scale)")
        # Left to right in double, as the reference kernel computes it.
        self.eff = np.array([s_in * sw / s_out for sw in w_scales], dtype=np.float64)
        self.out_zp = z_out
        self.act_min, self.act_max = activation_range(self, s_out, z_out)

        w_full = wq.astype(np.int64) + w_offset
        self.w = np.ascontiguousarray(w_full.astype(np.int32))
        self.bias = ((b - z_in * w_full.sum(axis=1) + 2**31) % 2**32 - 2**31).astype(np.int64)

        if -1 not in x.shape_signature:
            self._output_shape(x.shape, from_graph=True)

    def _output_shape(self, in_shape: tuple[int, ...], from_graph: bool = False) -> tuple[tuple[int, ...], int]:
        """(output shape, rows) for an input shape; raises if they do not fit the weights."""
        size = int(np.prod(in_shape, dtype=np.int64))
        err = self.fail if from_graph else (lambda m: InputError(f"{self.op.describe()}: {m}"))
        if self.keep_num_dims:
            if in_shape[-1] != self.depth:
                raise err(f"input shape {list(in_shape)} must end in the weights' depth {self.depth}")
            out_shape = tuple(in_shape[:-1]) + (self.units,)
        else:
            # LiteRT would silently drop a remainder; a remainder can only mean a malformed graph.
            if size % self.depth:
                raise err(f"input of {size} elements {list(in_shape)} is not a whole number of "
                          f"{self.depth}-element rows")
            out_shape = (size // self.depth, self.units)
        sig = self.y_t.shape_signature
        if len(sig) != len(out_shape) or any(s != -1 and s != d for s, d in zip(sig, out_shape)):
            raise err(f"computes output shape {list(out_shape)} from input {list(in_shape)}, but "
                      f"{self.y_t.describe()} declares {list(sig)}")
        return out_shape, size // self.depth

    def _check_input(self, x: np.ndarray) -> tuple[tuple[int, ...], int]:
        sig = self.x_t.shape_signature
        if x.dtype != np.int8 or x.ndim != len(sig) or any(s != -1 and s != d for s, d in zip(sig, x.shape)):
            raise InputError(f"{self.op.describe()}: got a {x.dtype.name}{list(x.shape)} input, "
                             f"{self.x_t.describe()} is declared")
        return self._output_shape(x.shape)

    def run(self, inputs: list[Optional[np.ndarray]]) -> list[np.ndarray]:
        x = inputs[0]
        out_shape, rows = self._check_input(x)
        x2 = np.ascontiguousarray(x).reshape(rows, self.depth)
        out = np.empty((rows, self.units), dtype=np.int8)
        _fc_int8(x2, self.w, self.bias, self.eff, self.out_zp, self.act_min, self.act_max, out)
        return [out.reshape(out_shape)]

    def macs(self, inputs: list[Optional[np.ndarray]]) -> int:
        _, rows = self._check_input(inputs[0])
        return rows * self.units * self.depth
