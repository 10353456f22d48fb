"""PACK (stack N same-shaped tensors along a new axis) and UNPACK (split one tensor along an axis
into its slices, dropping that axis).

Both are byte copies. LiteRT does not rescale: it insists that every input and output carries the
same scale and zero point (a tensor without quantization counts as scale 0, zero point 0), and so
do we. The types are LiteRT's: PACK takes no bool, UNPACK no int64.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from .base import OpKernel, check_array, legacy_params, owned_copy, register, shape_fits, signatures_agree

_PACK_DTYPES = (np.int8, np.uint8, np.int16, np.int32, np.int64, np.float32)
_UNPACK_DTYPES = (np.int8, np.uint8, np.int16, np.int32, np.float32, np.bool_)


def _legacy_params(kernel: OpKernel, t) -> tuple[float, int]:
    """The (scale, zero point) pair LiteRT compares; per-channel parameters make no sense here."""
    if t.quant is not None and not t.quant.per_tensor:
        raise kernel.fail(f"{t.describe()} must be quantized per tensor, has {t.quant.scale.size} scales")
    return legacy_params(t)


@register("PACK")
class Pack(OpKernel):
    def prepare(self) -> None:
        n = int(self.op.options.get("values_count", 0))
        if n < 1:
            raise self.fail(f"values_count must be at least 1, is {n}")
        self.expect_counts(n, 1)
        self.xs = [self.input(i) for i in range(n)]
        self.y = self.output(0)
        self.expect_dtype(self.xs[0], *_PACK_DTYPES)
        sig0 = self.xs[0].shape_signature
        rank = len(sig0)
        axis = int(self.op.options.get("axis", 0))
        self.axis = axis + rank + 1 if axis < 0 else axis
        if not 0 <= self.axis <= rank:
            raise self.fail(f"axis {axis} is out of range for packing rank-{rank} tensors")
        want = _legacy_params(self, self.y)
        for t in self.xs + [self.y]:
            if t.dtype != self.xs[0].dtype:
                raise self.fail(f"{t.describe()} must have the first input's type {self.xs[0].type_name}")
            if _legacy_params(self, t) != want:
                raise self.fail(f"{t.describe()} has scale/zero point {_legacy_params(self, t)} but the output "
                                f"has {want}; LiteRT does not requantize in PACK")
        for t in self.xs[1:]:
            if not signatures_agree(t.shape_signature, sig0):
                raise self.fail(f"{t.describe()} must have the shape of {self.xs[0].describe()}")
        out = tuple(sig0[:self.axis]) + (n,) + tuple(sig0[self.axis:])
        if not signatures_agree(out, self.y.shape_signature):
            raise self.fail(f"packing gives shape {list(out)}, but {self.y.describe()} is declared")

    def run(self, inputs: list[Optional[np.ndarray]]) -> list[np.ndarray]:
        arrays = [check_array(self, a, t) for a, t in zip(inputs, self.xs)]
        first = arrays[0].shape
        if any(a.shape != first for a in arrays[1:]):
            raise self.fail(f"inputs must all have one shape, got {[list(a.shape) for a in arrays]}")
        out = np.stack(arrays, axis=self.axis)  # a fresh array
        if not shape_fits(out.shape, self.y.shape_signature):
            raise self.fail(f"packing gives shape {list(out.shape)}, but {self.y.describe()} is declared")
        return [out]


@register("UNPACK")
class Unpack(OpKernel):
    def prepare(self) -> None:
        n = int(self.op.options.get("num", 0))
        if n < 1:
            raise self.fail(f"num must be at least 1, is {n}")
        self.x = self.input(0)
        self.expect_counts(1, n)
        self.ys = [self.output(i) for i in range(n)]
        self.expect_dtype(self.x, *_UNPACK_DTYPES)
        sig = self.x.shape_signature
        rank = len(sig)
        axis = int(self.op.options.get("axis", 0))
        self.axis = axis + rank if axis < 0 else axis
        if not 0 <= self.axis < rank:
            raise self.fail(f"axis {axis} is out of range for a rank-{rank} input")
        if sig[self.axis] != -1 and sig[self.axis] != n:
            raise self.fail(f"num is {n} but dimension {self.axis} of {self.x.describe()} has size {sig[self.axis]}")
        if 0 in sig:
            raise self.fail(f"{self.x.describe()} is empty (LiteRT rejects that)")
        want = _legacy_params(self, self.x)
        out = tuple(sig[:self.axis]) + tuple(sig[self.axis + 1:])
        for t in self.ys:
            if t.dtype != self.x.dtype:
                raise self.fail(f"{t.describe()} must have the input's type {self.x.type_name}")
            if _legacy_params(self, t) != want:
                raise self.fail(f"{t.describe()} has scale/zero point {_legacy_params(self, t)} but the input "
                                f"has {want}; LiteRT does not requantize in UNPACK")
            if not signatures_agree(out, t.shape_signature):
                raise self.fail(f"unpacking gives shape {list(out)}, but {t.describe()} is declared")

    def run(self, inputs: list[Optional[np.ndarray]]) -> list[np.ndarray]:
        x = check_array(self, inputs[0], self.x)
        if x.shape[self.axis] != len(self.ys) or x.size == 0:
            raise self.fail(f"input shape {list(x.shape)} cannot be unpacked into {len(self.ys)} "
                            f"non-empty slices along axis {self.axis}")
        outs = [owned_copy(np.take(x, i, axis=self.axis)) for i in range(len(self.ys))]
        for o, t in zip(outs, self.ys):
            if not shape_fits(o.shape, t.shape_signature):
                raise self.fail(f"unpacking gives shape {list(o.shape)}, but {t.describe()} is declared")
        return outs
