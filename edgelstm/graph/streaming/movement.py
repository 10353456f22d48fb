"""Shape rules of the data-movement ops: RESHAPE (whose new shape may encode T, and is then
rewritten), SQUEEZE, EXPAND_DIMS, TRANSPOSE, REVERSE_V2, CONCATENATION and GATHER."""
from __future__ import annotations

import math

import numpy as np

from ...tflite_reader import Operator
from ..shapes import reshape_output_shape
from .timeaxis import Refusal, Shape, TimeDim, concrete, time_axis, time_dim
from .trace import Rule, Trace


def follow_reshape(s: Trace, op: Operator, shape: Shape, out_conc: tuple[int, ...]) -> list:
    """Where the time axis of `shape` lands in the row-major reshape to `out_conc`: the output axis
    whose index range holds the whole block of T timesteps (else the reshape splits time)."""
    a, td = time_dim(shape)
    ints = concrete(shape, s.ta)
    stride = td.inner * math.prod(ints[a + 1:])
    span = stride * s.ta
    suffix = 1
    for b in range(len(out_conc) - 1, -1, -1):
        n = out_conc[b]
        if suffix <= stride and stride % suffix == 0 and suffix * n >= span and (suffix * n) % span == 0:
            out: list = list(out_conc)
            out[b] = TimeDim(outer=suffix * n // span, inner=stride // suffix)
            return out
        suffix *= n
    raise Refusal(op, f"it reshapes {list(ints)} to {list(out_conc)}, splitting the time axis")


def reshape(s: Trace, op: Operator) -> None:
    """The new shape comes from a constant, the `new_shape` option, or (dynamic T) shape arithmetic
    followed symbolically; whichever it is, the one-step model gets it as a constant."""
    shape = s.shapes.get(op.inputs[0])
    if shape is None:
        raise Refusal(op, "its shape depends on the time axis but its data does not")
    shp = op.inputs[1] if len(op.inputs) > 1 else -1
    in_conc = concrete(shape, s.ta)
    if shp != -1 and shp in s.syms:
        target = s.syms[shp].dims
        target_conc = [d.size(s.ta) if isinstance(d, TimeDim) else int(d) for d in target]
    elif shp != -1 and s.g.tensors[shp].data is not None:
        target_conc = [int(v) for v in np.asarray(s.g.tensors[shp].data).reshape(-1)]
        target = None
    elif shp == -1 and len(op.options.get("new_shape", ())):
        target_conc = [int(v) for v in op.options["new_shape"]]
        target = None
    else:
        raise Refusal(op, "its new shape is computed by ops this rewrite cannot follow")
    try:
        out_conc = reshape_output_shape(in_conc, target_conc)
    except ValueError as exc:
        raise Refusal(op, str(exc)) from None
    out = follow_reshape(s, op, shape, out_conc)
    b = time_axis(out)

    def step_target(conc: list[int]) -> np.ndarray:
        new = list(conc)
        if new[b] != -1:
            new[b] = out[b].size(1)
        return np.asarray(new, dtype=np.int32)

    if target is not None:
        # computed at run time for a dynamic T: fold it into a constant (the arithmetic is dropped)
        new_target = np.asarray([d.size(1) if isinstance(d, TimeDim) else int(d) for d in target], np.int32)
    else:
        new_target = step_target(target_conc)
    try:
        ok = reshape_output_shape(concrete(shape, 1), new_target.tolist()) == concrete(out, 1)
    except ValueError:
        ok = False
    if not ok:
        raise Refusal(op, f"its new shape {target_conc} cannot be followed to one timestep")
    if shp != -1 and (target is not None or new_target.tolist() != target_conc):
        s.plan.constants[(op.index, 1)] = new_target
    if len(op.options.get("new_shape", ())) == len(out):
        s.plan.options[(op.index, "new_shape")] = step_target([int(v) for v in op.options["new_shape"]]).tolist()
    s.set_output(op, 0, out)


def squeeze(s: Trace, op: Operator) -> None:
    shape = s.shapes[op.inputs[0]]
    ints = concrete(shape, s.ta)
    dims = s.norm_axes(op, op.options.get("squeeze_dims", ()), len(shape))
    if not dims:
        # at T = 1 "squeeze every 1" would squeeze the time axis too: name the axes explicitly
        dims = [k for k, n in enumerate(ints) if n == 1]
        s.plan.options[(op.index, "squeeze_dims")] = dims
    if time_axis(shape) in dims:
        raise Refusal(op, "it squeezes the time axis")
    out_conc = tuple(n for k, n in enumerate(ints) if k not in dims)
    s.set_output(op, 0, follow_reshape(s, op, shape, out_conc))


def expand_dims(s: Trace, op: Operator) -> None:
    shape = s.shapes[op.inputs[0]]
    ints = list(concrete(shape, s.ta))
    axis = int(np.asarray(s.const(op, 1, "axis")).reshape(-1)[0])
    axis = axis + len(ints) + 1 if axis < 0 else axis
    s.set_output(op, 0, follow_reshape(s, op, shape, tuple(ints[:axis] + [1] + ints[axis:])))


def transpose(s: Trace, op: Operator) -> None:
    shape = s.shapes[op.inputs[0]]
    perm = s.norm_axes(op, s.const(op, 1, "permutation"), len(shape))
    s.set_output(op, 0, [shape[p] for p in perm])


def reverse_v2(s: Trace, op: Operator) -> None:
    shape = s.shapes[op.inputs[0]]
    axes = s.norm_axes(op, s.const(op, 1, "axis"), len(shape))
    if time_axis(shape) in axes:
        raise Refusal(op, "REVERSE_V2 reverses the time axis (the backward direction of a bidirectional "
                          "layer): its first output needs the last input, i.e. the future")
    s.set_output(op, 0, shape)


def concatenation(s: Trace, op: Operator) -> None:
    ins = [i for i in op.inputs if i != -1]
    shapes = [s.shapes.get(i) for i in ins]
    first = next(x for x in shapes if x is not None)
    a = time_axis(first)
    axis = s.norm_axes(op, [op.options.get("axis", 0)], len(first))[0]
    if axis == a:
        raise Refusal(op, "it concatenates along the time axis")
    for i, x in zip(ins, shapes):
        if x is None or time_axis(x) != a or x[a] != first[a]:
            raise Refusal(op, f"input {s.g.tensors[i].describe()} does not carry the time axis like the "
                              "others: it would be repeated unchanged at every timestep")
    out = list(first)
    out[axis] = sum(int(concrete(x, s.ta)[axis]) for x in shapes)
    s.set_output(op, 0, out)


def gather(s: Trace, op: Operator) -> None:
    if op.inputs[0] not in s.shapes:
        raise Refusal(op, "its indices depend on the time axis")
    shape = s.shapes[op.inputs[0]]
    axis = s.norm_axes(op, [op.options.get("axis", 0)], len(shape))[0]
    idx = s.const(op, 1, "indices")
    if axis == time_axis(shape) or int(op.options.get("batch_dims", 0)) != 0:
        raise Refusal(op, "it gathers along the time axis")
    s.set_output(op, 0, list(shape[:axis]) + list(idx.shape) + list(shape[axis + 1:]))


RULES: dict[str, Rule] = {
    "RESHAPE": reshape, "SQUEEZE": squeeze, "EXPAND_DIMS": expand_dims, "TRANSPOSE": transpose,
    "REVERSE_V2": reverse_v2, "CONCATENATION": concatenation, "GATHER": gather,
}
