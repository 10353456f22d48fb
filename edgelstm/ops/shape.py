"""SHAPE: the run-time dimensions of its input as a 1-D int32 or int64 tensor.

With a dynamic time axis the converter cannot bake the shapes around a Dense layer into the
graph, so it reads them back with SHAPE (then GATHER / STRIDED_SLICE, REDUCE_PROD and PACK turn
them into a RESHAPE target). The input's values are never read, so any input type is fine; only
its actual shape, which is validated against the declared signature, matters.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from .base import OpKernel, register, shape_fits

# tflite TensorType codes LiteRT accepts for ShapeOptions.out_type (anything else fails Prepare).
_OUT_TYPES = {2: np.dtype(np.int32), 4: np.dtype(np.int64)}


@register("SHAPE")
class Shape(OpKernel):
    def prepare(self) -> None:
        self.expect_counts(1, 1)
        self.x, self.y = self.input(0), self.output(0)
        out_type = self.op.options.get("out_type")
        if out_type is None:
            # LiteRT then reads out_type as 0 and refuses the op ("Unknown shape output data type")
            raise self.fail("has no ShapeOptions, so no output type (LiteRT rejects it too)")
        self.dtype = _OUT_TYPES.get(int(out_type))
        if self.dtype is None:
            raise self.fail(f"out_type {int(out_type)} is not supported; LiteRT allows only INT32 (2) and INT64 (4)")
        # LiteRT silently retypes the output to out_type; a graph declaring another type is inconsistent
        if self.y.dtype != self.dtype:
            raise self.fail(f"out_type is {self.dtype.name} but {self.y.describe()} is declared {self.y.type_name}")
        rank = len(self.x.shape_signature)
        if not shape_fits((rank,), self.y.shape_signature):
            raise self.fail(f"a rank-{rank} input has a [{rank}] shape, but {self.y.describe()} is declared")

    def run(self, inputs: list[Optional[np.ndarray]]) -> list[np.ndarray]:
        x = inputs[0]
        if x is None or not shape_fits(x.shape, self.x.shape_signature):
            got = "nothing" if x is None else f"shape {list(x.shape)}"
            raise self.fail(f"got {got} for {self.x.describe()}")
        return [np.array(x.shape, dtype=self.dtype)]
