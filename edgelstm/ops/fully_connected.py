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

TFLite Micro (`TFLMFullyConnected`) keeps the fixed-point multiplier: MultiplyByQuantizedMultiplier,
with the multipliers of its `prepare_requantization`; the rest (weight offsets, wrap-around, bias check) is the same.

tflite-runtime 2.14's default interpreter (`TFLiteRuntimeFullyConnected`) runs the optimized kernel:
the fixed-point multipliers of double(s_in) * double(s_w) / double(s_out) for per-channel weights, but
of double(float32(s_in * s_w)) / double(s_out) for per-tensor ones (its GetQuantizedConvolutionMultipler
still multiplies the two float32 scales in float32; measured), applied by ruy, whose x86 kernels round
the final shift's ties toward +inf (ops/ruy.py).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
from numba import njit

from ..errors import InputError
from ..fixedpoint import mbqm, quantize_multiplier, round_half_away, wrap32, x86_double_to_int32
from .base import OpKernel, activation_range, legacy_params, register, shape_fits
from .flavor import TFLITE_RUNTIME, TFLM
from .ruy import mbqm_ties_up

_jit = njit(cache=True, nogil=True)


# -- the arithmetic -----------------------------------------------------------------------------
@_jit
def _fc_int8(x, w, bias, eff, mult, shift, fixed_point, ties_up, out_zp, act_min, act_max, out):
    """out[b, u] = clamp(out_zp + requantize(wrap32(sum_d w[u, d] * x[b, d] + bias[u]))).

    Requantization: LiteRT's reference kernel rounds acc * eff[u] in double; TFLite Micro
    (fixed_point) uses MultiplyByQuantizedMultiplier(acc, mult[u], shift[u]), and ruy (fixed_point
    and ties_up) the same multiplier with the final shift's ties toward +inf. `w` already holds
    the weights plus their offset and `bias` the input offset folded in (both exact modulo 2^32,
    which is all int32 wrap-around preserves)."""
    n_b, depth = x.shape
    n_u = w.shape[0]
    for b in range(n_b):
        for u in range(n_u):
            acc = 0
            for d in range(depth):
                acc += w[u, d] * x[b, d]
            acc = wrap32(acc + bias[u])
            if fixed_point and ties_up:
                v = mbqm_ties_up(acc, mult[u], shift[u])
            elif fixed_point:
                v = mbqm(acc, mult[u], shift[u])
            else:
                v = x86_double_to_int32(round_half_away(float(acc) * eff[u]))
            v = wrap32(v + out_zp)
            v = max(v, act_min)
            out[b, u] = min(v, act_max)


@dataclass(frozen=True)
class FCRecord:
    """The prepared parameters of one FULLY_CONNECTED (what the eval and the firmware generator
    read): for each row b of the input seen as [rows, depth] and each unit u,
    y[b, u] = clamp(out_zp + requantize(wrap32(sum_d w[u, d] * x[b, d] + bias[u])), act_min, act_max),
    where requantize is MultiplyByQuantizedMultiplier(acc, mult[u], shift[u]) if fixed_point (with
    the final shift's ties toward +inf if also ties_upward), else round-half-away(acc * eff[u]) in double."""

    units: int
    depth: int
    keep_num_dims: bool  # output keeps the input's leading dimensions; else it is [rows, units]
    w: np.ndarray  # int32 [units, depth], the weight offset added
    bias: np.ndarray  # int64 [units], the input offset folded in
    fixed_point: bool
    eff: np.ndarray  # float64 [units]: used unless fixed_point
    mult: np.ndarray  # int64 [units]: used if fixed_point (zeros otherwise)
    shift: np.ndarray  # int64 [units]
    out_zp: int
    act_min: int
    act_max: int
    ties_upward: bool = False  # ruy's final rounding shift (only with fixed_point)


@register("FULLY_CONNECTED")
class FullyConnected(OpKernel):
    """int8 FULLY_CONNECTED; `record` (FCRecord) holds what the eval computes with, and
    `output_shape(input shape)` gives the output shape and the row count."""

    optional_inputs = frozenset({2})
    FIXED_POINT_REQUANT = False
    TIES_UPWARD = False

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
            bias_scale = legacy_params(bias)[0]
            if bias is not None and abs(product - bias_scale) / s_out > 0.02:
                raise self.fail(f"bias scale {bias_scale} does not match input scale x weight scale "
                                f"{product} (LiteRT refuses a mismatch above 2% of the output scale)")
        # Left to right in double, as the reference kernel computes it.
        self.eff = np.array([s_in * sw / s_out for sw in w_scales], dtype=np.float64)
        self.mult = self.shift = np.zeros(len(w_scales), np.int64)
        self.prepare_requantization(s_in, w_scales, s_out)
        self.out_zp = z_out
        self.act_min, self.act_max = activation_range(self, s_out, z_out, allow_2_31=True)

        w_full = wq.astype(np.int64) + w_offset
        self.w = np.ascontiguousarray(w_full.astype(np.int32))
        self.bias = ((b - z_in * w_full.sum(axis=1) + 2**31) % 2**32 - 2**31).astype(np.int64)

        self._checked: dict = {}
        if -1 not in x.shape_signature:
            self.output_shape(x.shape, from_graph=True)

    def prepare_requantization(self, s_in: float, w_scales: list[float], s_out: float) -> None:
        """LiteRT's reference kernel rescales with `eff` in double: nothing more to prepare."""

    @property
    def record(self) -> FCRecord:
        return FCRecord(self.units, self.depth, self.keep_num_dims, self.w, self.bias, self.FIXED_POINT_REQUANT,
                        self.eff, self.mult, self.shift, self.out_zp, self.act_min, self.act_max, self.TIES_UPWARD)

    def output_shape(self, in_shape: tuple[int, ...], from_graph: bool = False) -> tuple[tuple[int, ...], int]:
        """(output shape, rows) for an input shape; raises if they do not fit the weights."""
        size = math.prod(in_shape)
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
        if not shape_fits(out_shape, sig):
            raise err(f"computes output shape {list(out_shape)} from input {list(in_shape)}, but "
                      f"{self.y_t.describe()} declares {list(sig)}")
        return out_shape, size // self.depth

    def _check_input(self, x: np.ndarray) -> tuple[tuple[int, ...], int]:
        # shapes repeat from call to call; checking each new one once keeps small models fast
        hit = self._checked.get((x.dtype, x.shape))
        if hit is not None:
            return hit
        sig = self.x_t.shape_signature
        if x.dtype != np.int8 or not shape_fits(x.shape, sig):
            raise InputError(f"{self.op.describe()}: got a {x.dtype.name}{list(x.shape)} input, "
                             f"{self.x_t.describe()} is declared")
        result = self.output_shape(x.shape)
        if len(self._checked) < 64:
            self._checked[(x.dtype, x.shape)] = result
        return result

    def run(self, inputs: list[Optional[np.ndarray]]) -> list[np.ndarray]:
        x = inputs[0]
        out_shape, rows = self._check_input(x)
        x2 = np.ascontiguousarray(x).reshape(rows, self.depth)
        out = np.empty((rows, self.units), dtype=np.int8)
        _fc_int8(x2, self.w, self.bias, self.eff, self.mult, self.shift, self.FIXED_POINT_REQUANT, self.TIES_UPWARD,
                 self.out_zp, self.act_min, self.act_max, out)
        return [out.reshape(out_shape)]

    def macs(self, inputs: list[Optional[np.ndarray]]) -> int:
        _, rows = self._check_input(inputs[0])
        return rows * self.units * self.depth


@register("FULLY_CONNECTED", flavor=TFLM)
class TFLMFullyConnected(FullyConnected):
    FIXED_POINT_REQUANT = True

    def prepare_requantization(self, s_in: float, w_scales: list[float], s_out: float) -> None:
        """TFLite Micro requantizes with MultiplyByQuantizedMultiplier, multipliers from
        `real_multipliers`."""
        reals = self.real_multipliers(s_in, w_scales, s_out)
        ms = [quantize_multiplier(r) for r in reals]
        if any(sh > 30 for _, sh in ms):
            raise self.fail(f"input x weight / output scale ratio {max(reals):.3g} is too large to requantize "
                            "in int32")
        self.mult = np.array([m for m, _ in ms], np.int64)
        self.shift = np.array([sh for _, sh in ms], np.int64)

    def real_multipliers(self, s_in: float, w_scales: list[float], s_out: float) -> list[float]:
        """double(s_in) * double(s_w) / double(s_out), per channel or per tensor alike (measured: the
        per-tensor product is not rounded to float32 first, whatever kernel_util.cc suggests)."""
        return [float(s_in) * float(sw) / float(s_out) for sw in w_scales]


@register("FULLY_CONNECTED", flavor=TFLITE_RUNTIME)
class TFLiteRuntimeFullyConnected(TFLMFullyConnected):
    """tflite-runtime 2.14's optimized FULLY_CONNECTED: fixed-point multipliers, applied by ruy."""

    TIES_UPWARD = True

    def real_multipliers(self, s_in: float, w_scales: list[float], s_out: float) -> list[float]:
        """TFLite Micro's, except that a per-tensor weight scale is multiplied by the input scale in
        float32 first: one ulp of that product moves the multiplier by up to ~100, enough to flip an
        output within 1e-7 of a rounding boundary (seen: 1 element in 77,000)."""
        if not self.input(1).quant.per_tensor:
            return super().real_multipliers(s_in, w_scales, s_out)
        return [float(np.float32(s_in) * np.float32(sw)) / float(s_out) for sw in w_scales]
