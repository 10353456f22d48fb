"""Shape rules of STRIDED_SLICE and SLICE along the time axis: a slice may keep the whole sequence or
only its last step (the converter's `return_sequences=False`); its bounds are then rewritten to
select timestep 0 of the one-step model. Any other choice of timesteps is refused."""
from __future__ import annotations

import numpy as np

from ...tflite_reader import Operator
from ..shapes import SliceSpec
from .timeaxis import DYNAMIC_T, Refusal, Shape, TimeDim, concrete, time_dim
from .trace import Rule, Trace


def selected(op: Operator, spec: SliceSpec, shape: Shape, a: int, t: int) -> tuple[list[int], bool, int]:
    """(the timesteps a slice of `shape` at time length t selects, whether it drops the time axis,
    the output axis they land on)."""
    conc = concrete(shape, t)
    try:
        _, _, slices = spec.plan(conc)
        axes = spec.effective_axes(len(conc))
    except ValueError as exc:
        raise Refusal(op, str(exc)) from None
    pos = 0
    for (kind, j, d), sl in zip(axes, slices):
        shrunk = kind == "spec" and bool((spec.shrink_axis_mask >> j) & 1)
        if d == a:
            return list(range(t))[sl], shrunk, pos
        pos += 0 if shrunk else 1
    raise Refusal(op, "no slice entry addresses the time axis")


def strided_slice(s: Trace, op: Operator) -> None:
    shape = s.shapes.get(op.inputs[0])
    if shape is None:
        raise Refusal(op, "its bounds depend on the time axis")
    a, td = time_dim(shape)
    vals = [tuple(int(v) for v in s.const(op, k, n).reshape(-1)) for k, n in
            ((1, "begin"), (2, "end"), (3, "strides"))]
    spec = SliceSpec.from_options(*vals, op.options)
    entry = next((j for kind, j, d in spec.effective_axes(len(shape)) if d == a and kind == "spec"), None)
    # what the slice takes must not depend on T: checked at the full T (and a second one if dynamic)
    sizes = [s.ta] + ([DYNAMIC_T[1]] if s.t is None else [])
    kinds = set()
    for t in sizes:
        sel, shrunk, pos = selected(op, spec, shape, a, t)
        kinds.add("all" if sel == list(range(t)) and not shrunk else "last" if sel == [t - 1] else "other")
    if len(kinds) != 1 or "other" in kinds or (td != TimeDim()):
        sel, _, _ = selected(op, spec, shape, a, s.ta)
        shown = f"{sel[:4]}{'...' if len(sel) > 4 else ''}"
        raise Refusal(op, f"it takes timesteps {shown} of {s.t or 'T (dynamic)'}, not the whole sequence "
                          "nor only its last step: the output at a step would need other steps")
    kind = kinds.pop()
    out_conc, _, _ = spec.plan(concrete(shape, s.ta))
    out: list = list(out_conc)
    if kind == "all":
        out[pos] = td
    try:
        rewrite = selected(op, spec, shape, a, 1)[0] != [0]
    except Refusal:  # e.g. begin T-1 is out of range at T = 1
        rewrite = True
    if rewrite and entry is not None:
        # at T = 1 the bounds must select timestep 0: write them out explicitly
        begin, end, strides = (list(v) for v in vals)
        begin[entry], end[entry], strides[entry] = 0, 1, 1
        for k, arr, old in ((1, begin, vals[0]), (2, end, vals[1]), (3, strides, vals[2])):
            if tuple(arr) != old:
                s.plan.constants[(op.index, k)] = np.asarray(arr, dtype=s.const(op, k, "bound").dtype)
        # begin 0, end (or size, for an offset slice) 1 and no masks on that entry
        bit = ~(1 << entry) & 0xFFFFFFFF
        for name, mask in (("begin_mask", spec.begin_mask), ("end_mask", spec.end_mask)):
            if mask & bit != mask:
                s.plan.options[(op.index, name)] = mask & bit
    s.set_output(op, 0, out)


def slice_(s: Trace, op: Operator) -> None:
    shape = s.shapes.get(op.inputs[0])
    if shape is None:
        raise Refusal(op, "its bounds depend on the time axis")
    a, td = time_dim(shape)
    begin = [int(v) for v in s.const(op, 1, "begin").reshape(-1)]
    size = [int(v) for v in s.const(op, 2, "size").reshape(-1)]
    if len(begin) != len(shape) or len(size) != len(shape):
        raise Refusal(op, "begin and size need one entry per input axis")
    b, n = begin[a], size[a]
    full = b == 0 and (n == -1 or (s.t is not None and n == s.t))
    last = s.t is not None and b == s.t - 1 and n in (1, -1)
    if td != TimeDim() or not (full or last):
        raise Refusal(op, f"it takes timesteps [{b}, {b + n if n != -1 else 'end'}) of {s.ta}, not the whole "
                          "sequence nor only its last step")
    out = list(s.stored(op.outputs[0]))
    if full:
        out[a] = td
    new_begin, new_size = list(begin), list(size)
    new_begin[a], new_size[a] = 0, (-1 if n == -1 else 1)
    for k, new, old in ((1, new_begin, begin), (2, new_size, size)):
        if new != old:
            s.plan.constants[(op.index, k)] = np.asarray(new, dtype=s.const(op, k, "bound").dtype)
    s.set_output(op, 0, out)


RULES: dict[str, Rule] = {"STRIDED_SLICE": strided_slice, "SLICE": slice_}
