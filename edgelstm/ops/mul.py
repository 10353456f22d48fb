"""MUL on int8 tensors (LiteRT's reference integer `MulElementwise` / `BroadcastMul6DSlow`).

The product of the two zero-point-corrected inputs (at most 255 * 255, so exact in int32) is
requantized once with MultiplyByQuantizedMultiplier. A subtlety of mul.cc's Prepare: the real
multiplier s1 * s2 / s_out is evaluated in *float32* (the scales are floats and nothing widens
them before the division), and only the float32 result is handed to QuantizeMultiplier as a double.
TFLite Micro (flavor="tflm") computes the same multiplier in double, which changes it slightly.

A BatchNormalization after an LSTM(return_sequences) converts to MUL by a constant [C] vector
broadcast over [B, T, C], followed by ADD of another constant vector.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
from numba import njit

from ..fixedpoint import mbqm, quantize_multiplier
from .base import BinaryInt8Kernel, register
from .flavor import TFLM


@dataclass(frozen=True)
class MulRecord:
    """The prepared parameters of one int8 MUL (what the eval and the firmware generator read):
    y = clamp(zp_y + MBQM((a + off_a) * (b + off_b), mult, shift), act_min, act_max), with a and b
    broadcast against each other."""

    off_a: int  # minus the input zero points
    off_b: int
    mult: int
    shift: int
    zp_y: int
    act_min: int
    act_max: int


@njit(cache=True, nogil=True)
def _mul_int8(a, b, out, off_a, off_b, mult, shift, zp_y, act_min, act_max):
    for i in range(out.size):
        prod = (np.int64(a[i]) + off_a) * (np.int64(b[i]) + off_b)
        v = mbqm(prod, mult, shift) + zp_y
        out[i] = min(max(v, act_min), act_max)


@register("MUL")
class Mul(BinaryInt8Kernel):
    """int8 * int8 -> int8 with numpy broadcasting and a fused RELU/RELU6/RELU_N1_TO_1; `record`
    (MulRecord) holds its parameters."""

    def prepare_math(self) -> None:
        (sa, za), (sb, zb), (sy, zy) = self.qa, self.qb, self.qy
        real = self.real_multiplier(sa, sb, sy)
        if not np.isfinite(real):
            raise self.fail(f"multiplier {sa} * {sb} / {sy} overflows float32")
        self.mult, self.shift = (int(v) for v in quantize_multiplier(real))
        # MultiplyByQuantizedMultiplier shifts left by `shift` inside int32 before the high
        # multiply; 1 << 31 and beyond is undefined in the C++, so refuse such scales.
        if self.shift > 30:
            raise self.fail(f"multiplier {real!r} (s1 * s2 / s_out) is too large (shift {self.shift} > 30)")
        self.off_a, self.off_b, self.zp_y = -za, -zb, zy

    @property
    def record(self) -> MulRecord:
        return MulRecord(self.off_a, self.off_b, self.mult, self.shift, self.zp_y, self.act_min, self.act_max)

    def real_multiplier(self, sa: float, sb: float, sy: float) -> float:
        return float(np.float32(sa) * np.float32(sb) / np.float32(sy))

    def compute(self, a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
        _mul_int8(a, b, out, self.off_a, self.off_b, self.mult, self.shift, self.zp_y,
                  self.act_min, self.act_max)

    def macs(self, inputs: list[Optional[np.ndarray]]) -> int:
        """One multiply per output element (the requantization is not counted)."""
        return int(np.prod(np.broadcast_shapes(inputs[0].shape, inputs[1].shape), dtype=np.int64))


@register("MUL", flavor=TFLM)
class TFLMMul(Mul):
    def real_multiplier(self, sa: float, sb: float, sy: float) -> float:
        # TFLite Micro widens the scales first: double arithmetic
        return float(sa) * float(sb) / float(sy)
