"""MAX_POOL_2D and AVERAGE_POOL_2D on int8 NHWC tensors (LiteRT's reference integer pooling).

Keras' MaxPooling1D / AveragePooling1D reach us as RESHAPE/EXPAND_DIMS -> *_POOL_2D on [1, T, 1, C]
-> RESHAPE, so the time axis is the pooling "height". Both ops pass values through without
requantizing: the reference assumes the output has the input's quantization (it only checks that in
debug builds), so we refuse models where that does not hold rather than silently disagree with
what the float graph meant.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
from numba import njit

from .base import OpKernel, activation_range, register

_jit = njit(cache=True, nogil=True)

_PADDING_SAME, _PADDING_VALID = 0, 1
# Keeps the int32 window sum of int8 values (|v| <= 128) far from overflow.
_MAX_FILTER_AREA = 1 << 23


def pool_geometry(padding: int, in_size: int, filter_size: int, stride: int) -> tuple[int, int]:
    """(output size, leading padding) along one axis, as TFLite's ComputePaddingHeightWidth
    (dilation 1). The output size is negative or 0 for a VALID window longer than the input."""
    if padding == _PADDING_SAME:
        out = (in_size + stride - 1) // stride
    else:
        # C++ division truncates toward zero: (-1) / 2 is 0 (an empty output), not -1 (an error)
        num = in_size + stride - filter_size
        out = num // stride if num >= 0 else -((-num) // stride)
    total = max((out - 1) * stride + filter_size - in_size, 0)
    return out, total // 2


@_jit
def _pool_nhwc(x, out, is_max, stride_h, stride_w, filter_h, filter_w, pad_h, pad_w, act_min, act_max):
    batches, in_h, in_w, depth = x.shape
    out_h, out_w = out.shape[1], out.shape[2]
    for b in range(batches):
        for oy in range(out_h):
            y0 = oy * stride_h - pad_h
            fy0 = max(0, -y0)
            fy1 = min(filter_h, in_h - y0)
            for ox in range(out_w):
                x0 = ox * stride_w - pad_w
                fx0 = max(0, -x0)
                fx1 = min(filter_w, in_w - x0)
                # never empty: pool_geometry's padding is < filter, and windows start inside the input
                count = (fy1 - fy0) * (fx1 - fx0)
                for c in range(depth):
                    if is_max:
                        acc = -128
                        for fy in range(fy0, fy1):
                            for fx in range(fx0, fx1):
                                v = np.int64(x[b, y0 + fy, x0 + fx, c])
                                if v > acc:
                                    acc = v
                    else:
                        acc = 0
                        for fy in range(fy0, fy1):
                            for fx in range(fx0, fx1):
                                acc += np.int64(x[b, y0 + fy, x0 + fx, c])
                        # round half away from zero, with C's truncating division
                        half = count // 2
                        if acc > 0:
                            acc = (acc + half) // count
                        else:
                            acc = -((half - acc) // count)
                    out[b, oy, ox, c] = min(max(acc, act_min), act_max)


@dataclass(frozen=True)
class PoolRecord:
    """The prepared parameters of one pooling op (what the eval and the firmware generator read):
    each output is the maximum (is_max) or the rounded mean of the window's taps that lie inside
    the input, clamped to [act_min, act_max]; the output size and padding come from
    `Pool2D.geometry(input shape)`."""

    is_max: bool
    filter_h: int
    filter_w: int
    stride_h: int
    stride_w: int
    padding: int  # 0 SAME, 1 VALID (the flatbuffer's code)
    act_min: int
    act_max: int


@register("MAX_POOL_2D", "AVERAGE_POOL_2D")
class Pool2D(OpKernel):
    """int8 2-D max/average pooling with SAME/VALID padding and a fused activation clamp; `record`
    (PoolRecord) holds the parameters."""

    def prepare(self) -> None:
        self.expect_counts(1, 1)
        x, y = self.input(0), self.output(0)
        self.expect_dtype(x, np.int8)
        self.expect_dtype(y, np.int8)
        if len(x.shape_signature) != 4:
            raise self.fail(f"{x.describe()} must be 4-D NHWC, has rank {len(x.shape_signature)}")
        if len(y.shape_signature) != 4:
            raise self.fail(f"{y.describe()} must be 4-D NHWC, has rank {len(y.shape_signature)}")
        s_in, zp_in = self.per_tensor_quant(x)
        s_out, zp_out = self.per_tensor_quant(y)
        if zp_in != zp_out or float(abs(np.float32(s_in) - np.float32(s_out))) > 1e-6:
            raise self.fail(f"input and output quantization must match (the reference pools raw int8 "
                            f"values): input scale {s_in} zero point {zp_in}, output scale {s_out} "
                            f"zero point {zp_out}")

        opts = self.op.options
        try:
            self.padding = int(opts["padding"])
            self.stride_h, self.stride_w = int(opts["stride_h"]), int(opts["stride_w"])
            self.filter_h, self.filter_w = int(opts["filter_height"]), int(opts["filter_width"])
        except KeyError as exc:
            raise self.fail(f"Pool2DOptions lack field {exc.args[0]!r}") from None
        if self.padding not in (_PADDING_SAME, _PADDING_VALID):
            raise self.fail(f"padding {self.padding} is not SAME (0) or VALID (1)")
        if self.stride_h <= 0 or self.stride_w <= 0:
            raise self.fail(f"strides must be positive, are {self.stride_h}x{self.stride_w}")
        if self.filter_h <= 0 or self.filter_w <= 0:
            raise self.fail(f"filter size must be positive, is {self.filter_h}x{self.filter_w}")
        if self.filter_h * self.filter_w > _MAX_FILTER_AREA:
            raise self.fail(f"filter {self.filter_h}x{self.filter_w} is absurdly large")
        # The reference ignores an unknown activation (no clamp at all) and an out-of-range bound
        # (it clamps with an unset value); neither is what a model meant, so both are refused.
        self.act_min, self.act_max = activation_range(self, s_out, zp_out, allow_2_31=False)
        self.is_max = self.op.opcode == "MAX_POOL_2D"

        # Check the declared output against what the input implies, where both are known.
        sig = x.shape_signature
        expected = self.output_shape(sig) if min(sig[1], sig[2]) >= 0 else (sig[0], -1, -1, sig[3])
        for d, (e, got) in enumerate(zip(expected, y.shape_signature)):
            if e >= 0 and got >= 0 and e != got:
                raise self.fail(f"{y.describe()} should have shape {list(expected)} (dimension {d} "
                                f"is {got}, expected {e})")

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Output NHWC shape. A VALID window longer than the input gives an empty output, as in the
        reference, whose shape computation stops at the first axis that fails (width first)."""
        b, h, w, c = in_shape
        out_w = pool_geometry(self.padding, w, self.filter_w, self.stride_w)[0]
        if out_w < 0:
            return (b, 0, 0, c)
        out_h = pool_geometry(self.padding, h, self.filter_h, self.stride_h)[0]
        return (b, max(out_h, 0), out_w, c)

    @property
    def record(self) -> PoolRecord:
        return PoolRecord(self.is_max, self.filter_h, self.filter_w, self.stride_h, self.stride_w, self.padding,
                          self.act_min, self.act_max)

    def geometry(self, in_shape: tuple[int, ...]) -> tuple[tuple[int, ...], int, int]:
        """(output shape, leading padding along H, along W) for an NHWC input shape, as the eval
        computes them."""
        _, pad_h = pool_geometry(self.padding, in_shape[1], self.filter_h, self.stride_h)
        _, pad_w = pool_geometry(self.padding, in_shape[2], self.filter_w, self.stride_w)
        return self.output_shape(in_shape), pad_h, pad_w

    def run(self, inputs: list[Optional[np.ndarray]]) -> list[np.ndarray]:
        x = inputs[0]
        if x is None or x.dtype != np.int8 or x.ndim != 4:
            raise self.fail(f"expects a 4-D int8 input, got {None if x is None else (x.dtype, x.shape)}")
        sig = self.input(0).shape_signature
        if any(s >= 0 and s != d for s, d in zip(sig, x.shape)):
            raise self.fail(f"input shape {list(x.shape)} does not match {list(sig)}")
        x = np.ascontiguousarray(x)
        out_shape = self.output_shape(x.shape)
        _, pad_h = pool_geometry(self.padding, x.shape[1], self.filter_h, self.stride_h)
        _, pad_w = pool_geometry(self.padding, x.shape[2], self.filter_w, self.stride_w)
        out = np.empty(out_shape, dtype=np.int8)
        _pool_nhwc(x, out, self.is_max, self.stride_h, self.stride_w, self.filter_h, self.filter_w,
                   pad_h, pad_w, self.act_min, self.act_max)
        return [out]
