"""REVERSE_V2: reverse the order of elements along constant axes.

A Keras Bidirectional layer emits it on the backward direction's input (and, with
return_sequences, on its output). It moves raw values only: when the converter gives the output a
different scale or zero point than the input (it does for the reversed LSTM output), LiteRT still
copies the integers unchanged, and so does this kernel.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .base import MovementKernel, const_ints, owned_copy, register
from .flavor import TFLM


@register("REVERSE_V2")
class ReverseV2(MovementKernel):
    """Axes: a constant 1-D int32 tensor of 1..rank distinct, contiguous axes (negative allowed);
    LiteRT refuses non-contiguous sets and has no defined result for an empty one."""

    n_inputs = (2,)
    max_rank = 8

    def prepare_args(self) -> None:
        axes = const_ints(self, 1, "axis")
        if not 1 <= axes.size <= self.rank:
            raise self.fail(f"needs between 1 and {self.rank} axes (the input rank), got {axes.size}")
        if np.any(axes < -self.rank) or np.any(axes >= self.rank):
            raise self.fail(f"axes {axes.tolist()} are out of range for rank {self.rank}")
        norm = sorted(int(a) % self.rank for a in axes)
        if any(b != a + 1 for a, b in zip(norm, norm[1:])):
            raise self.fail(f"axes {axes.tolist()} must be distinct and contiguous")
        self.axes = tuple(norm)

    def make_plan(self, shape: tuple[int, ...]) -> tuple[tuple[int, ...], Any]:
        return shape, None

    def move(self, x: np.ndarray, out_shape: tuple[int, ...], plan: Any) -> np.ndarray:
        return owned_copy(np.flip(x, self.axes))


@register("REVERSE_V2", flavor=TFLM)
class TFLMReverseV2(ReverseV2):
    max_rank = 6
    rank_limit_of = "TFLite Micro"
