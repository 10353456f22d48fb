"""STRIDED_SLICE and SLICE with constant index tensors.

The converter takes the last LSTM output with STRIDED_SLICE (begin [0,-1,0], begin_mask 5,
end_mask 5, shrink_axis_mask 2) on a [B, T, H] tensor whose T may be dynamic, so the slice is
resolved against the runtime input shape (and re-validated for each new shape).

Which elements a slice selects (LiteRT's strided_slice.cc semantics, and the cases refused because
LiteRT would leave outputs unwritten or read out of bounds) is `SliceSpec` in edgelstm/graph/shapes.py,
shared with the streaming rewrite.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..graph.shapes import SliceSpec
from .base import MovementKernel, const_ints, owned_copy, register
from .flavor import TFLM


def apply_plan(x: np.ndarray, plan: tuple[tuple[int, ...], tuple[int, ...], tuple[slice, ...]]) -> np.ndarray:
    out_shape, eff_shape, slices = plan
    return owned_copy(x.reshape(eff_shape)[slices]).reshape(out_shape)


@register("STRIDED_SLICE")
class StridedSlice(MovementKernel):
    n_inputs = (4,)

    def prepare_args(self) -> None:
        vals = [const_ints(self, i, name) for i, name in ((1, "begin"), (2, "end"), (3, "strides"))]
        self.spec = SliceSpec.from_options(*vals, self.op.options)
        try:
            self.spec.effective_axes(self.rank)
        except ValueError as exc:
            raise self.fail(str(exc)) from None

    def make_plan(self, shape: tuple[int, ...]) -> tuple[tuple[int, ...], Any]:
        plan = self.spec.plan(shape)
        return plan[0], plan

    def move(self, x: np.ndarray, out_shape: tuple[int, ...], plan: Any) -> np.ndarray:
        return apply_plan(x, plan)


@register("SLICE")
class Slice(MovementKernel):
    """begin (>= 0) and size (>= 0, or -1 for "to the end") per input axis, constant int32/int64."""

    n_inputs = (3,)

    def prepare_args(self) -> None:
        b, s = self.input(1), self.input(2)
        if b.dtype != s.dtype:
            raise self.fail(f"begin {b.describe()} and size {s.describe()} must have the same type")
        self.begin = const_ints(self, 1, "begin", dtypes=(np.int32, np.int64))
        self.size = const_ints(self, 2, "size", dtypes=(np.int32, np.int64))
        if self.begin.size != self.rank or self.size.size != self.rank:
            raise self.fail(f"begin and size need {self.rank} entries (the input rank), "
                            f"have {self.begin.size} and {self.size.size}")
        if np.any(self.begin < 0) or np.any(self.size < -1):
            raise self.fail(f"begin {self.begin.tolist()} must be >= 0 and size {self.size.tolist()} >= -1")

    def make_plan(self, shape: tuple[int, ...]) -> tuple[tuple[int, ...], Any]:
        out, slices = [], []
        for d, (n, b, s) in enumerate(zip(shape, self.begin.tolist(), self.size.tolist())):
            s = n - b if s == -1 else s
            if b > n or b + s > n:
                raise ValueError(f"slice [{b}, {b + s}) does not fit axis {d} of size {n}")
            out.append(s)
            slices.append(slice(b, b + s))
        return tuple(out), tuple(slices)

    def move(self, x: np.ndarray, out_shape: tuple[int, ...], plan: Any) -> np.ndarray:
        return owned_copy(x[plan])


@register("STRIDED_SLICE", flavor=TFLM)
class TFLMStridedSlice(StridedSlice):
    max_rank = 4
    rank_limit_of = "TFLite Micro"


@register("SLICE", flavor=TFLM)
class TFLMSlice(Slice):
    max_rank = 5
    rank_limit_of = "TFLite Micro"
