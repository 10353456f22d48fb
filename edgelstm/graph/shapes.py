"""Shape semantics of the data-movement ops, for the graph rewrites (and the same rules the kernels'
prepare step follows): what shape a RESHAPE produces for a requested new shape, and which elements
a STRIDED_SLICE selects.

STRIDED_SLICE follows LiteRT's strided_slice.cc: the ellipsis and new-axis entries are first
expanded into an "effective" input of rank = input rank + new axes; then, per effective axis, a
negative index counts from the end, the index is clamped ([0, size] for a positive stride, [-1,
size-1] for a negative one) and a begin/end mask replaces it by the full-range bound. Where LiteRT's
kernel would leave output elements unwritten or read out of bounds (an out-of-range shrink index, a
shrink with a negative stride, an offset slice running past the end, an ellipsis covering no
dimension), `SliceSpec.plan` raises ValueError instead.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np


def reshape_output_shape(in_shape: Sequence[int], target: Sequence[int]) -> tuple[int, ...]:
    """The shape RESHAPE gives `in_shape` for the requested `target` (at most one -1 entry).

    Follows LiteRT: the -1 entry is the input's non-zero element count divided by the product of
    the target's non-zero entries. Raises ValueError if the element counts cannot agree.
    """
    target = [int(v) for v in target]
    if any(v < -1 for v in target):
        raise ValueError(f"new shape {target} has a negative dimension other than -1")
    stretch = [i for i, v in enumerate(target) if v == -1]
    if len(stretch) > 1:
        raise ValueError(f"new shape {target} has more than one -1 dimension")
    n_in = int(np.prod(in_shape, dtype=np.int64))
    nz_in = int(np.prod([d for d in in_shape if d != 0], dtype=np.int64))
    known = [v for v in target if v != -1]
    n_known = int(np.prod(known, dtype=np.int64))
    nz_known = int(np.prod([v for v in known if v != 0], dtype=np.int64))
    out = list(target)
    if stretch:
        out[stretch[0]] = 0 if (n_in == 0 and n_known != 0) else nz_in // nz_known
    n_out = int(np.prod(out, dtype=np.int64))
    if n_out != n_in:
        raise ValueError(f"cannot reshape {n_in} elements {list(in_shape)} into new shape {target}")
    return tuple(out)


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

    @classmethod
    def from_options(cls, begin: Sequence[int], end: Sequence[int], strides: Sequence[int],
                     options: Mapping[str, Any]) -> "SliceSpec":
        """From the three index vectors and a STRIDED_SLICE's builtin options (as the reader
        decodes them: `begin_mask`, ..., `offset`); masks are read as 32-bit words."""
        masks = {k: int(options.get(k, 0)) & 0xFFFFFFFF for k in
                 ("begin_mask", "end_mask", "shrink_axis_mask", "ellipsis_mask", "new_axis_mask")}
        return cls(tuple(int(v) for v in begin), tuple(int(v) for v in end), tuple(int(v) for v in strides),
                   **masks, offset=bool(options.get("offset", False)))

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
