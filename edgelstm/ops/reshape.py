"""RESHAPE, SQUEEZE and EXPAND_DIMS (data-movement ops: `MovementKernel` in ops/base.py).

These ops never look at values: the output holds the input's raw integers in a new shape, and the
output quantization is carried through unchanged (LiteRT copies bytes and does not requantize even
when the two tensors declare different scales; only EXPAND_DIMS insists that they are equal).

Shapes may be dynamic (-1 in shape_signature, the LSTM time axis), so every op derives its output
shape from the *runtime* input shape, validating it again each time a new shape turns up.
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ..graph.shapes import reshape_output_shape
from .base import MovementKernel, const_ints, owned_copy, register


class _CopyReshaped(MovementKernel):
    def move(self, x: np.ndarray, out_shape: tuple[int, ...], plan: Any) -> np.ndarray:
        return owned_copy(x).reshape(out_shape)


@register("RESHAPE")
class Reshape(_CopyReshaped):
    """New shape from a 1-D int32 shape tensor, else from the `new_shape` option (as LiteRT, which
    falls back to the option whenever the second input is absent or not an int32 vector).

    The shape tensor is normally constant; with a dynamic time axis the converter computes it
    (SHAPE, GATHER, REDUCE_PROD, PACK), so a computed one is read, and validated, on every run.
    """

    n_inputs = (1, 2)
    optional_inputs = frozenset({1})

    def prepare_args(self) -> None:
        shape_t = self.input(1, required=False)
        self.target: Optional[tuple[int, ...]] = None
        if shape_t is not None and shape_t.dtype == np.int32 and len(shape_t.shape) == 1:
            if shape_t.data is None:
                if shape_t.shape_signature[0] < 0:
                    raise self.fail(f"computed shape {shape_t.describe()} must have a fixed length")
                self.needs_runtime_args = True
                return
            target = const_ints(self, 1, "shape")
        else:
            opt = self.op.options.get("new_shape")
            target = np.zeros(0, np.int64) if opt is None else np.asarray(opt, dtype=np.int64).ravel()
            if target.size == 1 and target[0] == 0:  # legacy converters wrote [0] for a scalar
                target = target[:0]
        self.target = tuple(int(v) for v in target)
        if any(v < -1 for v in self.target) or self.target.count(-1) > 1:
            raise self.fail(f"new shape {list(self.target)} may contain only sizes >= 0 and at most one -1")

    def runtime_args(self, inputs: list[Optional[np.ndarray]]) -> tuple:
        if not self.needs_runtime_args:
            return ()
        s = inputs[1]
        want = self.input(1).shape
        if s is None or s.dtype != np.int32 or s.shape != want:
            got = "nothing" if s is None else f"{s.dtype.name}{list(s.shape)}"
            raise self.fail(f"shape input must be int32{list(want)}, got {got}")
        return (tuple(int(v) for v in s),)

    def make_plan(self, shape: tuple[int, ...], target: Optional[tuple[int, ...]] = None
                  ) -> tuple[tuple[int, ...], Any]:
        return reshape_output_shape(shape, self.target if target is None else target), None


@register("SQUEEZE")
class Squeeze(_CopyReshaped):
    """Drops the listed size-1 axes, or every size-1 axis when `squeeze_dims` is empty."""

    max_rank = 8

    def prepare_args(self) -> None:
        dims = np.asarray(self.op.options.get("squeeze_dims", np.zeros(0)), dtype=np.int64).ravel()
        for d in dims:
            if not -self.rank <= d < self.rank:
                raise self.fail(f"squeeze dimension {int(d)} is out of range for rank {self.rank}")
        self.dims = sorted({int(d) % self.rank for d in dims}) if dims.size else None

    def make_plan(self, shape: tuple[int, ...]) -> tuple[tuple[int, ...], Any]:
        if self.dims is None:
            return tuple(d for d in shape if d != 1), None
        for d in self.dims:
            if shape[d] != 1:
                raise ValueError(f"cannot squeeze dimension {d} of size {shape[d]}")
        return tuple(n for i, n in enumerate(shape) if i not in self.dims), None


@register("EXPAND_DIMS")
class ExpandDims(_CopyReshaped):
    """Inserts a size-1 axis at a constant position (int32 or int64 axis tensor of one element)."""

    n_inputs = (2,)

    def prepare_args(self) -> None:
        axis = const_ints(self, 1, "axis", dtypes=(np.int32, np.int64), vector=False)
        if axis.size != 1:
            raise self.fail(f"axis tensor must hold exactly one value, holds {axis.size}")
        a = int(axis[0])
        a = a + self.rank + 1 if a < 0 else a
        if not 0 <= a <= self.rank:
            raise self.fail(f"axis {int(axis[0])} is out of range for a rank-{self.rank} input")
        self.axis = a
        # LiteRT's Prepare rejects differing parameters here (unlike the other movement ops).
        qi, qo = self.x.quant, self.y.quant
        same = (qi is None and qo is None) or (
            qi is not None and qo is not None and qi.per_tensor and qo.per_tensor
            and qi.s == qo.s and qi.zp == qo.zp)
        if not same:
            raise self.fail("input and output must have identical quantization parameters")

    def make_plan(self, shape: tuple[int, ...]) -> tuple[tuple[int, ...], Any]:
        return shape[:self.axis] + (1,) + shape[self.axis:], None
