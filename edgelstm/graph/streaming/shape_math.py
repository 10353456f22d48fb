"""For a dynamic T the converter computes a RESHAPE's new shape at run time (SHAPE, GATHER,
REDUCE_PROD, PACK...). These ops are followed symbolically, with the time axis as a TimeDim, so the
RESHAPE rule can fold the result into a constant; the arithmetic nothing reads any more is then
dropped from the one-step model."""
from __future__ import annotations

import numpy as np

from ...tflite_reader import Operator
from ..shapes import SliceSpec
from .timeaxis import Refusal, TimeDim
from .trace import Rule, Sym, Trace

# ops that compute a RESHAPE's shape from a SHAPE at run time
SHAPE_MATH = {"GATHER", "REDUCE_PROD", "PACK", "CONCATENATION", "STRIDED_SLICE", "CAST"}


def shape(s: Trace, op: Operator) -> None:
    """SHAPE of a tensor carrying the time axis: its value is that shape, symbolically."""
    s.syms[op.outputs[0]] = Sym(list(s.shapes[op.inputs[0]]))
    s.shape_math.add(op.index)


def _value(s: Trace, op: Operator, i: int) -> Sym:
    if i in s.syms:
        return s.syms[i]
    t = s.g.tensors[i]
    if t.data is None:
        raise Refusal(op, f"mixes the computed shape with {t.describe()}, which this rewrite cannot follow")
    a = np.asarray(t.data)
    return Sym([int(v) for v in a.reshape(-1)], scalar=a.ndim == 0)


def fold(s: Trace, op: Operator) -> None:
    """An op whose inputs are symbolic shape values (and constants): its symbolic result."""
    if op.opcode not in SHAPE_MATH or len(op.outputs) != 1:
        raise Refusal(op, f"{op.opcode} on a shape computed from the time axis has no streaming rule")
    ins = [_value(s, op, i) for i in op.inputs if i != -1]
    if op.opcode == "GATHER":
        idx = s.const(op, 1, "indices")
        res = Sym([ins[0].dims[int(k)] for k in idx.reshape(-1)], scalar=idx.ndim == 0)
    elif op.opcode == "REDUCE_PROD":
        outer, inner, td = 1, 1, None
        for d in ins[0].dims:
            if isinstance(d, TimeDim):
                td = d
            elif td is None:
                outer *= int(d)
            else:
                inner *= int(d)
        v = TimeDim(outer * td.outer, td.inner * inner) if td else outer * inner
        res = Sym([v], scalar=not op.options.get("keep_dims", False))
    elif op.opcode in ("PACK", "CONCATENATION"):
        res = Sym([d for x in ins for d in x.dims])
    elif op.opcode == "CAST":
        res = ins[0]
    else:  # STRIDED_SLICE of a shape vector
        vals = [s.const(op, k, "bound").reshape(-1) for k in (1, 2, 3)]
        spec = SliceSpec.from_options(*vals, op.options)
        try:
            out_shape, _, slices = spec.plan((len(ins[0].dims),))
        except ValueError as exc:
            raise Refusal(op, str(exc)) from None
        picked = list(range(len(ins[0].dims)))[slices[0]]
        res = Sym([ins[0].dims[k] for k in picked], scalar=len(out_shape) == 0)
    s.syms[op.outputs[0]] = res
    s.shape_math.add(op.index)


def drop_unread(s: Trace) -> None:
    """Drop the shape arithmetic no longer read once its RESHAPE shapes are constants."""
    folded = set(s.plan.constants)
    reads: dict[int, int] = {}
    for op in s.g.operators:
        for k, i in enumerate(op.inputs):
            if i != -1 and (op.index, k) not in folded:
                reads[i] = reads.get(i, 0) + 1
    for o in s.g.outputs:
        reads[o] = reads.get(o, 0) + 1
    dropped: set[int] = set()
    changed = True
    while changed:
        changed = False
        for op in reversed(s.g.operators):
            if op.index in s.shape_math and op.index not in dropped and \
                    all(reads.get(o, 0) == 0 for o in op.outputs):
                dropped.add(op.index)
                changed = True
                for k, i in enumerate(op.inputs):
                    if i != -1 and (op.index, k) not in folded:
                        reads[i] -= 1
    s.plan.dropped_ops = sorted(dropped)


RULES: dict[str, Rule] = {"SHAPE": shape}
