"""ADD on int8 tensors (LiteRT's reference `AddFunc`).

LiteRT's int8 add does not add the raw values: both inputs are shifted left by 20 bits and scaled to
a common scale of twice the larger input scale, summed, and the sum is scaled to the output. The
three multipliers come from *double* arithmetic on the float32 scales (Prepare in add.cc), and all
three requantizations round twice (SRDHM then RDBP), which is what `fixedpoint.mbqm` computes when
the shift is not positive.

Broadcasting and the fused-activation clamp are `BinaryInt8Kernel`'s (ops/base.py), shared with MUL.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from ..fixedpoint import mbqm, quantize_multiplier
from .base import BinaryInt8Kernel, OpKernel, register

# Fixed by LiteRT for 8-bit inputs: |q - zp| <= 255 keeps 255 << 20 inside int32.
ADD_LEFT_SHIFT = 20


def multiplier_below_one(kernel: OpKernel, real: float, what: str) -> tuple[int, int]:
    """QuantizeMultiplierSmallerThanOneExp: LiteRT aborts unless 0 < real < 1 and the shift is <= 0."""
    if not 0.0 < real < 1.0:
        raise kernel.fail(f"{what} multiplier {real!r} must lie in (0, 1); the quantization scales are inconsistent")
    m, shift = quantize_multiplier(real)
    if shift > 0:
        raise kernel.fail(f"{what} multiplier {real!r} rounds up to 1")
    return int(m), int(shift)


# -- ADD ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AddRecord:
    """The prepared parameters of one int8 ADD (what the eval and the firmware generator read):
    y = clamp(zp_y + MBQM(MBQM((a + off_a) << left_shift, mult_a, shift_a)
                          + MBQM((b + off_b) << left_shift, mult_b, shift_b), mult_y, shift_y),
              act_min, act_max), with a and b broadcast against each other."""

    off_a: int  # minus the input zero points
    off_b: int
    left_shift: int
    mult_a: int
    shift_a: int
    mult_b: int
    shift_b: int
    mult_y: int
    shift_y: int
    zp_y: int
    act_min: int
    act_max: int


@njit(cache=True, nogil=True)
def _add_int8(a, b, out, off_a, off_b, mult_a, shift_a, mult_b, shift_b, mult_y, shift_y,
              zp_y, act_min, act_max, left_shift):
    for i in range(out.size):
        xa = (np.int64(a[i]) + off_a) << left_shift
        xb = (np.int64(b[i]) + off_b) << left_shift
        total = mbqm(xa, mult_a, shift_a) + mbqm(xb, mult_b, shift_b)
        v = mbqm(total, mult_y, shift_y) + zp_y
        out[i] = min(max(v, act_min), act_max)


@register("ADD")
class Add(BinaryInt8Kernel):
    """int8 + int8 -> int8 with numpy broadcasting and a fused RELU/RELU6/RELU_N1_TO_1; `record`
    (AddRecord) holds its parameters."""

    def prepare_math(self) -> None:
        (sa, za), (sb, zb), (sy, zy) = self.qa, self.qb, self.qy
        # max of the float32 scales, then widened: the C++ takes std::max on floats before the cast
        twice_max = 2.0 * max(sa, sb)
        self.ma, self.sha = multiplier_below_one(self, sa / twice_max, "input 1")
        self.mb, self.shb = multiplier_below_one(self, sb / twice_max, "input 2")
        self.my, self.shy = multiplier_below_one(
            self, twice_max / (float(1 << ADD_LEFT_SHIFT) * sy), "output")
        self.off_a, self.off_b, self.zp_y = -za, -zb, zy

    @property
    def record(self) -> AddRecord:
        return AddRecord(self.off_a, self.off_b, ADD_LEFT_SHIFT, self.ma, self.sha, self.mb, self.shb, self.my,
                         self.shy, self.zp_y, self.act_min, self.act_max)

    def compute(self, a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
        _add_int8(a, b, out, self.off_a, self.off_b, self.ma, self.sha, self.mb, self.shb,
                  self.my, self.shy, self.zp_y, self.act_min, self.act_max, ADD_LEFT_SHIFT)
