"""REDUCE_PROD on int32 tensors (shape arithmetic) over a constant int32 axis list.

The converter emits it on SHAPE results to compute element counts for a run-time RESHAPE target.
LiteRT multiplies in int32 with two's-complement wrap-around and starts from 1, so an empty
reduction gives 1; since wrapped multiplication is associative and commutative, the order in which
the reference visits elements does not matter and a uint32 product reproduces it exactly.

Quantized int8 REDUCE_PROD is refused: LiteRT requantizes after *every* multiplication (with a
64-bit MultiplyByQuantizedMultiplier and a scale of input_scale / output_scale^(1/n)), so its result
depends on the visiting order and on rounding at each step; no converter graph of an LSTM model
needs it. LiteRT itself rejects a quantized int32 input.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from .base import OpKernel, check_array, register, resolve_axes, shape_fits, signatures_agree


@register("REDUCE_PROD")
class ReduceProd(OpKernel):
    def prepare(self) -> None:
        self.expect_counts(2, 1)
        self.x, ax, self.y = self.input(0), self.input(1), self.output(0)
        if self.x.dtype == np.int8:
            raise self.fail("int8 REDUCE_PROD is not supported (LiteRT rescales after every multiplication, "
                            "which edgelstm does not reproduce); only int32 shape arithmetic is")
        self.expect_dtype(self.x, np.int32)
        self.expect_dtype(self.y, np.int32)
        self.expect_dtype(ax, np.int32)
        if self.x.quant is not None:
            raise self.fail(f"{self.x.describe()} is an int32 tensor with quantization parameters "
                            "(LiteRT rejects a quantized int32 product)")
        if ax.data is None:
            raise self.fail(f"the axis {ax.describe()} must be a constant tensor")
        self.rank = len(self.x.shape_signature)
        axes = resolve_axes(ax.data, self.rank)
        if axes is None:
            raise self.fail(f"axis values {ax.data.reshape(-1).tolist()} are out of range for a "
                            f"rank-{self.rank} input")
        self.axes = tuple(axes)
        self.keep_dims = bool(self.op.options.get("keep_dims", False))
        expected = self.output_shape(self.x.shape_signature)
        ys = self.y.shape_signature
        if not signatures_agree(expected, ys):
            raise self.fail(f"{self.y.describe()} should have shape {list(expected)} for axes "
                            f"{list(self.axes)} and keep_dims={self.keep_dims}")

    def output_shape(self, shape) -> tuple[int, ...]:
        if self.keep_dims:
            return tuple(1 if d in self.axes else shape[d] for d in range(self.rank))
        return tuple(shape[d] for d in range(self.rank) if d not in self.axes)

    def run(self, inputs: list[Optional[np.ndarray]]) -> list[np.ndarray]:
        x = check_array(self, inputs[0], self.x)
        wrapped = np.prod(x.view(np.uint32), axis=self.axes, keepdims=self.keep_dims, dtype=np.uint32)
        out = np.array(wrapped, dtype=np.uint32).view(np.int32).reshape(self.output_shape(x.shape))
        if not shape_fits(out.shape, self.y.shape_signature):
            raise self.fail(f"output shape {list(out.shape)} does not fit {self.y.describe()}")
        return [out]
