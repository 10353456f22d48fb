"""The state of one walk of the time axis through a graph, and the checks every shape rule uses."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Optional

import numpy as np

from ...tflite_reader import Graph, Operator
from .timeaxis import DYNAMIC_T, Refusal, Shape, StreamPlan, TimeDim, concrete, stored_shape, time_axis


@dataclass
class Sym:
    """The value of an int32 tensor computed from a SHAPE: a scalar or a vector of dimensions."""

    dims: list
    scalar: bool = False


class Trace:
    """The time axis followed so far from the model inputs: the shapes of the tensors that carry
    it, the symbolic values of run-time shape arithmetic (dynamic T), and the plan being built."""

    def __init__(self, g: Graph, input_axes: dict[int, int], t: Optional[int]):
        self.g, self.t = g, t
        self.ta = t if t is not None else DYNAMIC_T[0]   # the length shapes are checked at
        self.shapes: dict[int, Shape] = {}
        self.syms: dict[int, Sym] = {}
        self.shape_math: set[int] = set()                 # ops computing a shape at run time
        self.plan = StreamPlan(t, dict(input_axes), self.shapes)
        for i, a in input_axes.items():
            s = list(self.stored(i))
            s[a] = TimeDim()
            self.shapes[i] = tuple(s)

    def stored(self, i: int) -> tuple[int, ...]:
        return stored_shape(self.g.tensors[i])

    def const(self, op: Operator, k: int, what: str) -> np.ndarray:
        """Input k of `op`, which must be a constant."""
        if k >= len(op.inputs) or op.inputs[k] == -1:
            raise Refusal(op, f"has no {what} input")
        t = self.g.tensors[op.inputs[k]]
        if t.data is None:
            raise Refusal(op, f"its {what} ({t.describe()}) is computed at run time, not a constant")
        return np.asarray(t.data)

    def set_output(self, op: Operator, k: int, shape: Iterable) -> None:
        """Record output k's shape after checking it against what the flatbuffer says at the full T
        (for a dynamic T, the shape_signature's known entries)."""
        shape = tuple(shape)
        o = op.outputs[k]
        t = self.g.tensors[o]
        got = concrete(shape, self.ta)
        if self.t is not None:
            want = tuple(int(d) for d in t.shape)
            ok = got == want
        else:
            want = self.stored(o)
            ok = len(got) == len(want) and all(w == -1 or w == d for w, d in zip(want, got))
        if not ok:
            raise Refusal(op, f"output {t.describe()}: the time axis was followed to shape {list(got)}, the model "
                              f"stores {list(want)}")
        if time_axis(shape) is not None:
            self.shapes[o] = shape

    def norm_axes(self, op: Operator, axes, rank: int) -> list[int]:
        """Axis values (negative from the end) as indices into a rank-`rank` shape."""
        out = []
        for v in np.asarray(axes).reshape(-1).tolist():
            v = int(v)
            if not -rank <= v < rank:
                raise Refusal(op, f"axis {v} is out of range for rank {rank}")
            out.append(v % rank)
        return out


# A shape rule: given the trace and an op whose input carries the time axis, record its output's
# shape (Trace.set_output), any constant or option to rewrite (Trace.plan), or raise Refusal.
Rule = Callable[[Trace, Operator], None]
