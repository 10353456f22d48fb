"""CONV_2D and DEPTHWISE_CONV_2D, full-integer path: int8 input and output, int8 weights per output
channel (or one per-tensor scale, which LiteRT broadcasts), int32 bias, NHWC layout.

Keras Conv1D reaches us as RESHAPE/EXPAND_DIMS -> CONV_2D on [1, 1, W, C] -> RESHAPE, with W the
(possibly dynamic) time axis, so the output size and padding are derived from each run's input.

Unlike FULLY_CONNECTED, LiteRT's reference convolutions requantize with the fixed-point multiplier
(`mbqm`, double rounding) from `quantize_multiplier(double(s_in) * double(s_w[c]) / double(s_out))`.
Padding follows LiteRT's ComputePaddingHeightWidth (SAME puts the odd padding element after the
data, i.e. the leading pad is total // 2); taps outside the image are skipped, so no input offset is
added for them. The accumulator is int32 and wraps. Differences between the two ops that LiteRT
enforces and we mirror: CONV_2D needs a bias and zero weight zero points and supports grouped
convolution; DEPTHWISE_CONV_2D may omit the bias, ignores the weights' zero points, and takes its
depth multiplier from the shapes (the option field is not read).

tflite-runtime 2.14's default interpreter (`TFLiteRuntimeConv2D`) runs the optimized CONV_2D: the same
multipliers, applied by ruy, whose x86 kernels round the final shift's ties toward +inf (ops/ruy.py);
a grouped convolution still goes to the reference kernel there, and its DEPTHWISE_CONV_2D rounds like
the reference one (both measured).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
from numba import njit

from ..errors import InputError
from ..fixedpoint import mbqm, quantize_multiplier, wrap32
from .base import OpKernel, activation_range, register
from .flavor import TFLITE_RUNTIME
from .ruy import mbqm_ties_up

_jit = njit(cache=True, nogil=True)

_PADDING = {0: "SAME", 1: "VALID"}
_INT16_MAX = 32767


@_jit
def _requant(acc, bias, mult, shift, ties_up, out_zp, act_min, act_max):
    if ties_up:
        v = mbqm_ties_up(wrap32(acc + bias), mult, shift)
    else:
        v = mbqm(wrap32(acc + bias), mult, shift)
    v = max(wrap32(v + out_zp), act_min)
    return min(v, act_max)


@_jit
def _conv_int8(x, w, bias, mult, shift, ties_up, in_off, out_zp, act_min, act_max,
               stride_h, stride_w, dil_h, dil_w, pad_h, pad_w, out):
    """Grouped 2-D convolution; x [N, H, W, Cin], w [Cout, KH, KW, Cin/groups], out [N, OH, OW, Cout];
    ties_up selects ruy's requantization (ops/ruy.py) over MultiplyByQuantizedMultiplier."""
    n_b, in_h, in_w, in_c = x.shape
    n_o, k_h, k_w, k_c = w.shape
    out_h, out_w = out.shape[1], out.shape[2]
    per_group = n_o // (in_c // k_c)
    for b in range(n_b):
        for oy in range(out_h):
            y0 = oy * stride_h - pad_h
            for ox in range(out_w):
                x0 = ox * stride_w - pad_w
                for o in range(n_o):
                    c0 = (o // per_group) * k_c
                    acc = 0
                    for ky in range(k_h):
                        iy = y0 + dil_h * ky
                        if iy < 0 or iy >= in_h:
                            continue
                        for kx in range(k_w):
                            ix = x0 + dil_w * kx
                            if ix < 0 or ix >= in_w:
                                continue
                            for c in range(k_c):
                                acc += w[o, ky, kx, c] * (x[b, iy, ix, c0 + c] + in_off)
                    out[b, oy, ox, o] = _requant(acc, bias[o], mult[o], shift[o], ties_up, out_zp, act_min, act_max)


def _c_div(a: int, b: int) -> int:
    """C integer division (truncates toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def out_size_and_pad(padding: str, size: int, k: int, stride: int, dil: int) -> tuple[int, int]:
    """(output size, leading padding) along one axis, as LiteRT's padding.h computes them."""
    eff_k = (k - 1) * dil + 1
    if padding == "SAME":
        out = _c_div(size + stride - 1, stride)
    else:
        out = _c_div(size + stride - eff_k, stride)
    if out < 0:
        raise ValueError("negative output size")
    total = max((out - 1) * stride + eff_k - size, 0)
    return out, total // 2


@dataclass(frozen=True)
class ConvRecord:
    """The prepared parameters of one convolution, both ops in grouped form (what the eval and the
    firmware generator read): with groups = in_c // k_c, output channel o reads the k_c input
    channels from (o // (n_out // groups)) * k_c on, and
    y[b, oy, ox, o] = clamp(wrap32(out_zp + MBQM(wrap32(acc + bias[o]), mult[o], shift[o])), act_min, act_max)
    (MBQM with the final shift's ties toward +inf if ties_upward),
    acc = sum over the taps inside the input of w[o, ky, kx, c] * (x[b, iy, ix, c0 + c] + in_off),
    iy = oy * stride_h - pad_h + dil_h * ky (likewise ix); the output size and padding come from
    `ConvKernel.geometry(input shape)`."""

    w: np.ndarray  # int8 [n_out, k_h, k_w, k_c]; a depthwise [1, KH, KW, C*M] as [C*M, KH, KW, 1]
    bias: np.ndarray  # int64 [n_out]
    mult: np.ndarray  # int64 [n_out]
    shift: np.ndarray  # int64 [n_out]
    in_off: int  # minus the input zero point
    out_zp: int
    act_min: int
    act_max: int
    stride: tuple[int, int]  # (h, w)
    dilation: tuple[int, int]  # (h, w)
    padding: str  # "SAME" or "VALID"
    ties_upward: bool = False  # ruy's requantization (ops/ruy.py) instead of MBQM


class ConvKernel(OpKernel):
    """Shared prepare/run of the two convolutions; `depthwise` selects the channel mapping and the
    checks that differ between them in LiteRT. `record` (ConvRecord) holds the parameters and
    `geometry(input shape)` the output shape and padding."""

    depthwise = False
    #: requantize as ruy does (ops/ruy.py); a subclass may decide per model in prepare()
    ties_upward = False

    def prepare(self) -> None:
        n_in = (2, 3) if self.depthwise else (3,)
        if not self.depthwise and len(self.op.inputs) == 2:
            raise self.fail("has no bias input; LiteRT's CONV_2D requires one")
        self.expect_counts(n_in, 1)
        x, w, y = self.input(0), self.input(1), self.output(0)
        # Declared 3 inputs means the bias must exist: LiteRT fails Prepare on an absent one.
        bias = self.input(2) if len(self.op.inputs) == 3 else None
        self.x_t, self.y_t = x, y
        for t in (x, w, y):
            self.expect_dtype(t, np.int8)
        if len(x.shape) != 4:
            raise self.fail(f"input {x.describe()} must be 4-D NHWC")
        wq = self.constant(w)
        if wq.ndim != 4 or 0 in wq.shape:
            raise self.fail(f"weights {w.describe()} must be a non-empty 4-D tensor")
        self.w = np.ascontiguousarray(wq)
        in_c = x.shape_signature[3]
        if in_c <= 0:
            raise self.fail(f"input {x.describe()} must have a fixed, non-zero channel count")
        if self.depthwise:
            if wq.shape[0] != 1:
                raise self.fail(f"depthwise weights {w.describe()} must be [1, KH, KW, channels]")
            self.n_out = wq.shape[3]
            if self.n_out % in_c:
                raise self.fail(f"{self.n_out} output channels are not a multiple of the {in_c} input channels")
            # A depthwise convolution is the grouped one with a single input channel per group: the
            # weights [1, KH, KW, Cin*M] become [Cin*M, KH, KW, 1], output channel c*M + m reading
            # input channel c, and `_conv_int8` computes it with the same sums in the same order.
            self.w = np.ascontiguousarray(wq.transpose(3, 1, 2, 0))
        else:
            self.n_out = wq.shape[0]
            if in_c % wq.shape[3] or self.n_out % (in_c // wq.shape[3]):
                raise self.fail(f"weights {w.describe()} do not divide the {in_c} input channels into "
                                "equal groups")
        self.in_c = in_c

        opts = self.op.options
        pad_code = int(opts.get("padding", -1))
        if pad_code not in _PADDING:
            raise self.fail(f"padding {pad_code} is not supported (only SAME and VALID)")
        self.padding = _PADDING[pad_code]
        self.stride = (int(opts.get("stride_h", 0)), int(opts.get("stride_w", 0)))
        self.dilation = (int(opts.get("dilation_h_factor", 1)), int(opts.get("dilation_w_factor", 1)))
        limit = _INT16_MAX if self.depthwise else 2**31 - 1
        for what, pair in (("stride", self.stride), ("dilation", self.dilation)):
            if not all(0 < v <= limit for v in pair):
                raise self.fail(f"{what} {list(pair)} must be positive" + (" and fit int16" if self.depthwise else ""))

        s_in, z_in = self.per_tensor_quant(x)
        s_out, z_out = self.per_tensor_quant(y)
        if w.quant is None:
            raise self.fail(f"weights {w.describe()} have no quantization parameters")
        if not w.quant.per_tensor and w.quant.scale.size != self.n_out:
            raise self.fail(f"weights have {w.quant.scale.size} scales for {self.n_out} output channels")
        if not self.depthwise and np.any(w.quant.zero_point != 0):
            raise self.fail("weights must have zero points of 0 (symmetric per-channel quantization)")

        b = np.zeros(self.n_out, dtype=np.int64)
        if bias is not None:
            self.expect_dtype(bias, np.int32)
            bq = self.constant(bias)
            if self.depthwise and bq.ndim != 1:
                raise self.fail(f"bias {bias.describe()} must be 1-D")
            if bq.size != self.n_out:
                raise self.fail(f"bias {bias.describe()} must have {self.n_out} elements")
            if bias.quant is not None and bias.quant.per_tensor and bias.quant.zp != 0:
                raise self.fail(f"bias zero point must be 0, is {bias.quant.zp}")
            b = bq.reshape(-1).astype(np.int64)
        self.bias = b

        scales = [float(s) for s in w.quant.scale] if not w.quant.per_tensor else [w.quant.s] * self.n_out
        mult, shift = [], []
        for s_w in scales:
            m, e = quantize_multiplier(s_in * s_w / s_out)
            if e > 31:
                raise self.fail(f"effective scale {s_in * s_w / s_out} is too large for the fixed-point multiplier")
            mult.append(m)
            shift.append(e)
        self.mult, self.shift = np.array(mult, np.int64), np.array(shift, np.int64)
        self.in_off, self.out_zp = -z_in, z_out
        self.act_min, self.act_max = activation_range(self, s_out, z_out, allow_2_31=True)
        self._geom_cache: dict[tuple[int, ...], tuple[tuple[int, ...], int, int]] = {}
        if -1 not in x.shape_signature:
            self.geometry(x.shape, from_graph=True)

    @property
    def record(self) -> ConvRecord:
        return ConvRecord(self.w, self.bias, self.mult, self.shift, self.in_off, self.out_zp, self.act_min,
                          self.act_max, self.stride, self.dilation, self.padding, self.ties_upward)

    def geometry(self, shape: tuple[int, ...], from_graph: bool = False) -> tuple[tuple[int, ...], int, int]:
        """(output shape, pad_h, pad_w) for an input shape, validated against the declared output."""
        key = tuple(int(d) for d in shape)
        hit = self._geom_cache.get(key)
        if hit is not None:
            return hit
        err = self.fail if from_graph else (lambda m: InputError(f"{self.op.describe()}: {m}"))
        n, h, w_, c = key
        if h <= 0 or w_ <= 0:
            raise err(f"input shape {list(key)} is empty")
        k_h, k_w = (self.w.shape[1], self.w.shape[2])
        try:
            out_h, pad_h = out_size_and_pad(self.padding, h, k_h, self.stride[0], self.dilation[0])
            out_w, pad_w = out_size_and_pad(self.padding, w_, k_w, self.stride[1], self.dilation[1])
        except ValueError:
            out_h = out_w = 0
        if out_h <= 0 or out_w <= 0:
            raise err(f"input {h}x{w_} is smaller than the {k_h}x{k_w} filter dilated by "
                      f"{list(self.dilation)} (VALID padding leaves no output)")
        out_shape = (n, out_h, out_w, self.n_out)
        sig = self.y_t.shape_signature
        if len(sig) != 4 or any(s != -1 and s != d for s, d in zip(sig, out_shape)):
            raise err(f"computes output shape {list(out_shape)} from input {list(key)}, but "
                      f"{self.y_t.describe()} declares {list(sig)}")
        if len(self._geom_cache) >= 64:
            self._geom_cache.clear()
        self._geom_cache[key] = (out_shape, pad_h, pad_w)
        return out_shape, pad_h, pad_w

    def _check_input(self, x: np.ndarray) -> tuple[tuple[int, ...], int, int]:
        sig = self.x_t.shape_signature
        if x.dtype != np.int8 or x.ndim != 4 or any(s != -1 and s != d for s, d in zip(sig, x.shape)):
            raise InputError(f"{self.op.describe()}: got a {x.dtype.name}{list(x.shape)} input, "
                             f"{self.x_t.describe()} is declared")
        return self.geometry(x.shape)

    def run(self, inputs: list[Optional[np.ndarray]]) -> list[np.ndarray]:
        x = inputs[0]
        out_shape, pad_h, pad_w = self._check_input(x)
        out = np.empty(out_shape, dtype=np.int8)
        _conv_int8(np.ascontiguousarray(x), self.w, self.bias, self.mult, self.shift, self.ties_upward, self.in_off,
                   self.out_zp,
                   self.act_min, self.act_max, self.stride[0], self.stride[1], self.dilation[0], self.dilation[1],
                   pad_h, pad_w, out)
        return [out]

    def macs(self, inputs: list[Optional[np.ndarray]]) -> int:
        """Multiplies actually performed: taps that fall in the padding are skipped, not counted."""
        out_shape, pad_h, pad_w = self._check_input(inputs[0])
        x_shape = inputs[0].shape
        taps_y = _inside_taps(out_shape[1], x_shape[1], self.w.shape[1], self.stride[0], self.dilation[0], pad_h)
        taps_x = _inside_taps(out_shape[2], x_shape[2], self.w.shape[2], self.stride[1], self.dilation[1], pad_w)
        depth = self.w.shape[3]  # 1 for a depthwise convolution
        return out_shape[0] * self.n_out * depth * taps_y * taps_x


def _inside_taps(n_out: int, size: int, k: int, stride: int, dil: int, pad: int) -> int:
    """(output position, filter tap) pairs along one axis whose input index lies inside the data."""
    return sum(1 for o in range(n_out) for j in range(k) if 0 <= o * stride - pad + j * dil < size)


@register("CONV_2D")
class Conv2D(ConvKernel):
    depthwise = False


@register("DEPTHWISE_CONV_2D")
class DepthwiseConv2D(ConvKernel):
    depthwise = True


@register("CONV_2D", flavor=TFLITE_RUNTIME)
class TFLiteRuntimeConv2D(Conv2D):
    """tflite-runtime 2.14's CONV_2D: ruy's requantization, except for a grouped convolution, which
    its conv.cc hands to the reference kernel."""

    def prepare(self) -> None:
        super().prepare()
        self.ties_upward = self.w.shape[3] == self.in_c
