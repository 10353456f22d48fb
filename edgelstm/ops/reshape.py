"""RESHAPE, SQUEEZE and EXPAND_DIMS, plus `MovementKernel`, the base of every data-movement op.

These ops never look at values: the output holds the input's raw integers in a new shape, and the
output quantization is carried through unchanged (LiteRT copies bytes and does not requantize even
when the two tensors declare different scales; only EXPAND_DIMS insists that they are equal).

Shapes may be dynamic (-1 in shape_signature, the LSTM time axis), so every op derives its output
shape from the *runtime* input shape, validating it again each time a new shape turns up.
"""
from __future__ import annotations

from typing import Any, ClassVar, Optional, Sequence

import numpy as np

from .base import OpKernel, register

# Movement is a byte copy, so any fixed-size numeric type is exact; these are the ones LiteRT's
# movement kernels accept and edgelstm graphs can carry (int8 activations, int32 shape tensors).
MOVABLE_DTYPES = (np.int8, np.uint8, np.int16, np.int32, np.int64, np.float32, np.bool_)

# A dynamic time axis can take many lengths; keep the per-shape plan cache bounded.
_MAX_CACHED_PLANS = 64


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


def owned_copy(a: np.ndarray) -> np.ndarray:
    """A C-contiguous copy: outputs must never alias inputs, since LSTM state tensors are updated
    in place after they have been read."""
    return np.array(a, order="C", copy=True)


class MovementKernel(OpKernel):
    """Shared prepare/run logic of the data-movement ops.

    Subclasses read their constant inputs and options in `prepare_args()` (checks that depend only
    on the input rank belong there), and implement `make_plan(shape, *args)` -> (output shape,
    plan), raising ValueError for an input shape they cannot handle, and `move(x, out_shape, plan)`.
    `args` is what `runtime_args(inputs)` extracts from non-constant inputs (nothing by default);
    plans are cached per (input shape, args).
    """

    n_inputs: ClassVar[Sequence[int]] = (1,)
    max_rank: ClassVar[Optional[int]] = None
    #: set by prepare_args() when the plan depends on runtime values, not only on the input shape
    needs_runtime_args: bool = False

    def prepare(self) -> None:
        self.expect_counts(self.n_inputs)
        self.x, self.y = self.input(0), self.output(0)
        self.expect_dtype(self.x, *MOVABLE_DTYPES)
        if self.y.dtype != self.x.dtype:
            raise self.fail(f"output {self.y.describe()} must have the input's type {self.x.type_name}")
        self.rank = len(self.x.shape_signature)
        if self.max_rank is not None and self.rank > self.max_rank:
            raise self.fail(f"supports inputs of rank up to {self.max_rank}, {self.x.describe()} has rank {self.rank}")
        self._plans: dict[tuple, tuple[tuple[int, ...], Any]] = {}
        self.prepare_args()
        if -1 not in self.x.shape_signature and not self.needs_runtime_args:
            self.plan_for(self.x.shape)

    def prepare_args(self) -> None:
        pass

    def runtime_args(self, inputs: list[Optional[np.ndarray]]) -> tuple:
        return ()

    def make_plan(self, shape: tuple[int, ...], *args) -> tuple[tuple[int, ...], Any]:  # pragma: no cover
        raise NotImplementedError

    def move(self, x: np.ndarray, out_shape: tuple[int, ...], plan: Any) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def plan_for(self, shape: tuple[int, ...], args: tuple = ()) -> tuple[tuple[int, ...], Any]:
        shape = tuple(int(d) for d in shape)
        key = (shape, args)
        cached = self._plans.get(key)
        if cached is not None:
            return cached
        try:
            out_shape, plan = self.make_plan(shape, *args)
        except ValueError as exc:
            raise self.fail(f"{exc} (input shape {list(shape)})") from None
        sig = self.y.shape_signature
        if len(out_shape) != len(sig) or any(s != -1 and s != d for s, d in zip(sig, out_shape)):
            raise self.fail(f"computes output shape {list(out_shape)} from input shape {list(shape)}, but "
                            f"{self.y.describe()} declares {list(sig)}")
        if len(self._plans) >= _MAX_CACHED_PLANS:
            self._plans.clear()
        self._plans[key] = (out_shape, plan)
        return out_shape, plan

    def run(self, inputs: list[Optional[np.ndarray]]) -> list[np.ndarray]:
        x = inputs[0]
        sig = self.x.shape_signature
        if x.dtype != self.x.dtype or x.ndim != len(sig) or any(
                s != -1 and s != d for s, d in zip(sig, x.shape)):
            raise self.fail(f"got a {x.dtype.name}{list(x.shape)} input, but {self.x.describe()} is declared")
        out_shape, plan = self.plan_for(x.shape, self.runtime_args(inputs))
        return [self.move(x, out_shape, plan)]


def const_ints(kernel: OpKernel, index: int, what: str, dtypes=(np.int32,), vector: bool = True) -> np.ndarray:
    """A constant integer input as an int64 array (1-D unless vector=False)."""
    t = kernel.input(index)
    kernel.expect_dtype(t, *dtypes)
    if t.data is None:
        raise kernel.fail(f"{what} {t.describe()} must be a constant tensor (computed {what}s are not supported)")
    if vector and len(t.shape) != 1:
        raise kernel.fail(f"{what} {t.describe()} must be a 1-D tensor")
    return np.asarray(t.data, dtype=np.int64).ravel()


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
