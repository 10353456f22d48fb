"""STRIDED_SLICE and SLICE with constant index tensors.

The converter takes the last LSTM output with STRIDED_SLICE (begin [0,-1,0], begin_mask 5,
end_mask 5, shrink_axis_mask 2) on a [B, T, H] tensor whose T may be dynamic, so the slice is
resolved against the runtime input shape (and re-validated for each new shape).

Semantics follow LiteRT's strided_slice.cc: the ellipsis and new-axis entries are first expanded
into an "effective" input of rank = input rank + new axes; then, per effective axis, a negative
index counts from the end, the index is clamped ([0, size] for a positive stride, [-1, size-1] for
a negative one) and a begin/end mask replaces it by the full-range bound. Where LiteRT's kernel
would leave output elements unwritten or read out of bounds (an out-of-range shrink index, a
shrink with a negative stride, an offset slice running past the end, an ellipsis covering no
dimension), the op is refused instead of reproducing garbage.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .base import MovementKernel, const_ints, owned_copy, register
from .flavor import TFLM

_INT32_MIN, _INT32_MAX = -(1 << 31), (1 << 31) - 1
# LiteRT keeps masks in 32-bit words and refuses more index entries than that.
MAX_SPEC_ENTRIES = 31


def _bit(mask: int, i: int) -> bool:
    return bool((mask >> i) & 1)


def _extent(span: int, stride: int) -> int:
    """How many indices start, start+stride, ... lie strictly before start+span (0 if none)."""
    if span == 0 or (span < 0) != (stride < 0):
        return 0
    if stride > 0:
        return (span - 1) // stride + 1
    return (span + 1) // stride + 1


@dataclass(frozen=True)
class SliceSpec:
    """The constant part of a STRIDED_SLICE: index entries and option masks."""

    begin: tuple[int, ...]
    end: tuple[int, ...]
    strides: tuple[int, ...]
    begin_mask: int = 0
    end_mask: int = 0
    shrink_axis_mask: int = 0
    ellipsis_mask: int = 0
    new_axis_mask: int = 0
    offset: bool = False

    def effective_axes(self, rank: int) -> list[tuple[str, int, int]]:
        """Per effective axis: (kind, spec entry, input axis), kind "spec", "full" (an ellipsis or
        implicit trailing axis) or "new" (input axis -1). Raises ValueError on a malformed spec."""
        n = len(self.begin)
        if not (len(self.end) == len(self.strides) == n):
            raise ValueError(f"begin, end and strides have {n}, {len(self.end)} and {len(self.strides)} "
                             f"entries; they must have the same number")
        if n > MAX_SPEC_ENTRIES:
            raise ValueError(f"{n} index entries; at most {MAX_SPEC_ENTRIES} are supported")
        masks = dict(begin_mask=self.begin_mask, end_mask=self.end_mask, shrink_axis_mask=self.shrink_axis_mask,
                     ellipsis_mask=self.ellipsis_mask, new_axis_mask=self.new_axis_mask)
        for name, m in masks.items():
            if not 0 <= m < (1 << 32):
                raise ValueError(f"{name} {m} is not a 32-bit mask")
        # Bits past the last entry of these two masks would change the effective rank in ways
        # LiteRT's bookkeeping does not account for.
        for name in ("ellipsis_mask", "new_axis_mask"):
            if masks[name] >> n:
                raise ValueError(f"{name} {masks[name]} has bits beyond the {n} index entries")
        if self.ellipsis_mask & (self.ellipsis_mask - 1):
            raise ValueError(f"ellipsis_mask {self.ellipsis_mask} marks more than one ellipsis")
        new_axes = self.new_axis_mask & ~self.ellipsis_mask
        n_new = bin(new_axes).count("1")
        n_consuming = n - n_new - (1 if self.ellipsis_mask else 0)
        if n_consuming > rank:
            raise ValueError(f"{n_consuming} index entries address input axes, but the input has rank {rank}")
        if self.ellipsis_mask and n_consuming == rank:
            # LiteRT expands an ellipsis to at least one axis, shifting every later entry.
            raise ValueError("the ellipsis would cover no dimension")
        if self.offset and (self.ellipsis_mask or self.new_axis_mask or n != rank):
            # LiteRT sizes an offset slice from end[effective axis]: only sound when the entries
            # map one to one onto the input axes.
            raise ValueError("offset slices need one index entry per input axis and no ellipsis or new axis")
        axes: list[tuple[str, int, int]] = []
        d = 0
        for j in range(n):
            if _bit(self.ellipsis_mask, j):
                for _ in range(rank - n_consuming):
                    axes.append(("full", j, d))
                    d += 1
            elif _bit(new_axes, j):
                axes.append(("new", j, -1))
            else:
                s = self.strides[j]
                if s == 0 or s == _INT32_MIN:
                    raise ValueError(f"stride {s} of entry {j} is not supported (must be non-zero, above INT32_MIN)")
                axes.append(("spec", j, d))
                d += 1
        axes.extend(("full", -1, k) for k in range(d, rank))
        return axes

    def _start(self, j: int, size: int) -> int:
        s = self.strides[j]
        if _bit(self.begin_mask, j):
            return 0 if s > 0 else size - 1
        start = self.begin[j] + size if self.begin[j] < 0 else self.begin[j]
        return min(max(start, 0), size) if s > 0 else min(max(start, -1), size - 1)

    def _stop(self, j: int, size: int, start: int) -> int:
        s = self.strides[j]
        stop = self.end[j] + (start if self.offset else 0)
        if not _INT32_MIN <= stop <= _INT32_MAX:
            raise ValueError(f"entry {j}: begin {start} + size {self.end[j]} overflows int32")
        if _bit(self.end_mask, j):
            return size if s > 0 else -1
        stop = stop + size if stop < 0 else stop
        return min(max(stop, 0), size) if s > 0 else min(max(stop, -1), size - 1)

    def plan(self, shape: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...], tuple[slice, ...]]:
        """(output shape, effective input shape, one Python slice per effective axis)."""
        eff_shape: list[int] = []
        slices: list[slice] = []
        out_shape: list[int] = []
        for kind, j, d in self.effective_axes(len(shape)):
            if kind == "new":
                eff_shape.append(1)
                slices.append(slice(0, 1))
                out_shape.append(1)
                continue
            size = shape[d]
            eff_shape.append(size)
            if kind == "full":
                slices.append(slice(0, size))
                out_shape.append(size)
                continue
            s = self.strides[j]
            start = self._start(j, size)
            if _bit(self.shrink_axis_mask, j):
                # LiteRT then reads [start, start+1) with this stride: nothing at all for a negative
                # stride or an index clamped to the end, leaving the output unwritten.
                if s < 0:
                    raise ValueError(f"entry {j} shrinks an axis with negative stride {s}")
                if start >= size:
                    raise ValueError(f"index {self.begin[j]} of entry {j} is out of range for axis {d} of size {size}")
                slices.append(slice(start, start + 1))
                continue
            stop = self._stop(j, size, start)
            count = _extent(stop - start, s)
            if self.offset and _extent(self.end[j], s) != count:
                raise ValueError(f"offset slice of entry {j} (begin {self.begin[j]}, size {self.end[j]}, stride {s}) "
                                 f"does not fit axis {d} of size {size}")
            out_shape.append(count)
            if count == 0:
                slices.append(slice(0, 0))
            else:
                last = start + (count - 1) * s
                stop_py = last + (1 if s > 0 else -1)
                slices.append(slice(start, stop_py if stop_py >= 0 else None, s))
        return tuple(out_shape), tuple(eff_shape), tuple(slices)


def apply_plan(x: np.ndarray, plan: tuple[tuple[int, ...], tuple[int, ...], tuple[slice, ...]]) -> np.ndarray:
    out_shape, eff_shape, slices = plan
    return owned_copy(x.reshape(eff_shape)[slices]).reshape(out_shape)


@register("STRIDED_SLICE")
class StridedSlice(MovementKernel):
    n_inputs = (4,)

    def prepare_args(self) -> None:
        o = self.op.options
        vals = [tuple(int(v) for v in const_ints(self, i, name)) for i, name in
                ((1, "begin"), (2, "end"), (3, "strides"))]
        self.spec = SliceSpec(*vals, begin_mask=int(o.get("begin_mask", 0)) & 0xFFFFFFFF,
                              end_mask=int(o.get("end_mask", 0)) & 0xFFFFFFFF,
                              shrink_axis_mask=int(o.get("shrink_axis_mask", 0)) & 0xFFFFFFFF,
                              ellipsis_mask=int(o.get("ellipsis_mask", 0)) & 0xFFFFFFFF,
                              new_axis_mask=int(o.get("new_axis_mask", 0)) & 0xFFFFFFFF,
                              offset=bool(o.get("offset", False)))
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
