"""The vocabulary of the streaming rewrite: a dimension that holds the time axis, shapes made of such
dimensions, the plan the rewrite applies, and the refusal that names the op that cannot stream."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Union

import numpy as np

from ...errors import ConversionError
from ...tflite_reader import Operator, Tensor

# Stand-ins for a dynamic T while following shapes: primes, so no other dimension is a multiple of
# them and a time axis cannot be confused with another; the second one double-checks that a slice
# selects the same timesteps (the last, or all) whatever T is.
DYNAMIC_T = (7919, 7907)


@dataclass(frozen=True)
class TimeDim:
    """A dimension of size outer * T * inner: the time axis, possibly merged with its neighbours
    (a [B, T, H] -> [B*T, H] reshape gives outer B; a Flatten of [T, F] gives inner F)."""

    outer: int = 1
    inner: int = 1

    def size(self, t: int) -> int:
        return self.outer * t * self.inner


Dim = Union[int, TimeDim]
Shape = tuple  # of Dim


def concrete(shape: Shape, t: int) -> tuple[int, ...]:
    """`shape` with the time axis at length t."""
    return tuple(d.size(t) if isinstance(d, TimeDim) else int(d) for d in shape)


def time_axis(shape: Shape) -> Optional[int]:
    """The axis of `shape` holding the time dimension (None: the shape does not carry it)."""
    axes = [k for k, d in enumerate(shape) if isinstance(d, TimeDim)]
    return axes[0] if axes else None


def time_dim(shape: Shape) -> tuple[int, TimeDim]:
    """(the time axis of a shape that carries it, its TimeDim)."""
    a = time_axis(shape)
    return a, shape[a]


def stored_shape(t: Tensor) -> tuple[int, ...]:
    """The shape the file stores for a tensor, -1 for a dynamic dimension."""
    sig = t.shape_signature if len(t.shape_signature) == len(t.shape) else t.shape
    return tuple(int(d) for d in sig)


class Refusal(Exception):
    """An op (or the model, op None) cannot stream; `error()` is the ConversionError to raise."""

    def __init__(self, op: Optional[Operator], reason: str):
        super().__init__(reason)
        self.op, self.reason = op, reason

    def error(self) -> ConversionError:
        if self.op is None:
            return ConversionError(f"cannot stream this model: {self.reason}", reason=self.reason)
        where = self.op.describe()
        return ConversionError(f"cannot stream {where}: {self.reason}", layer=where, reason=self.reason)


@dataclass
class StreamPlan:
    """What `streaming_model` changes, worked out on the full model's graph."""

    t: Optional[int]                                 # the full model's T (None: dynamic)
    input_axes: dict[int, int]                       # model input tensor -> its time axis
    shapes: dict[int, Shape]                         # every tensor carrying the time axis
    constants: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)   # (op, input slot) -> values
    options: dict[tuple[int, str], object] = field(default_factory=dict)         # (op, option name) -> value
    dropped_ops: list[int] = field(default_factory=list)   # shape arithmetic folded into constants
