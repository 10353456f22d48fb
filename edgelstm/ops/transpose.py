"""TRANSPOSE with a constant permutation (Keras Permute, time-major layouts)."""
from __future__ import annotations

from typing import Any

import numpy as np

from .base import MovementKernel, const_ints, owned_copy, register
from .flavor import TFLM


@register("TRANSPOSE")
class Transpose(MovementKernel):
    """perm: constant 1-D int32, one entry per input axis, a permutation (negative entries count
    from the end, as in LiteRT)."""

    n_inputs = (2,)
    max_rank = 8

    def prepare_args(self) -> None:
        perm = const_ints(self, 1, "perm")
        if perm.size != self.rank:
            raise self.fail(f"perm {perm.tolist()} needs {self.rank} entries (the input rank)")
        if np.any(perm < -self.rank) or np.any(perm >= self.rank):
            raise self.fail(f"perm {perm.tolist()} is out of range for rank {self.rank}")
        norm = tuple(int(p) % self.rank for p in perm) if self.rank else ()
        if len(set(norm)) != len(norm):
            raise self.fail(f"perm {perm.tolist()} repeats an axis")
        self.perm = norm

    def make_plan(self, shape: tuple[int, ...]) -> tuple[tuple[int, ...], Any]:
        return tuple(shape[p] for p in self.perm), None

    def move(self, x: np.ndarray, out_shape: tuple[int, ...], plan: Any) -> np.ndarray:
        return owned_copy(np.transpose(x, self.perm))


@register("TRANSPOSE", flavor=TFLM)
class TFLMTranspose(Transpose):
    max_rank = 5
    rank_limit_of = "TFLite Micro"
