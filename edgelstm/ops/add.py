"""ADD on int8 tensors (LiteRT's reference `AddFunc`), and the shared base of binary int8 ops.

LiteRT's int8 add does not add the raw values: both inputs are shifted left by 20 bits and scaled to
a common scale of twice the larger input scale, summed, and the sum is scaled to the output. The
three multipliers come from *double* arithmetic on the float32 scales (Prepare in add.cc), and all
three requantizations round twice (SRDHM then RDBP), which is what `fixedpoint.mbqm` computes when
the shift is not positive.

Broadcasting follows numpy's rules, as LiteRT's CalculateShapeForBroadcast does; since the op is
element-wise, broadcasting the operands up front gives the same values as LiteRT's strided loops.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np
from numba import njit

from ..fixedpoint import mbqm, quantize_multiplier
from ..tflite_reader import Tensor
from .base import OpKernel, register

INT8_MIN, INT8_MAX = -128, 127
# LiteRT's broadcasting loop (BroadcastBinaryOpSimple) CHECK-fails above this rank.
MAX_BROADCAST_RANK = 8
# Fixed by LiteRT for 8-bit inputs: |q - zp| <= 255 keeps 255 << 20 inside int32.
ADD_LEFT_SHIFT = 20


# -- helpers shared by the element-wise int8 kernels -------------------------------------------------
def shape_fits(shape: Sequence[int], signature: Sequence[int]) -> bool:
    """Whether a concrete shape is allowed by a shape signature (-1 = any size)."""
    return len(shape) == len(signature) and all(s == -1 or s == d for s, d in zip(signature, shape))


def check_array(kernel: OpKernel, arr: Optional[np.ndarray], t: Tensor) -> np.ndarray:
    """The run-time input `arr` for tensor `t`, after checking its dtype and shape against `t`."""
    if arr is None:
        raise kernel.fail(f"input {t.describe()} was not provided")
    if arr.dtype != t.dtype or not shape_fits(arr.shape, t.shape_signature):
        raise kernel.fail(f"got a {arr.dtype.name}{list(arr.shape)} array for {t.describe()}")
    return arr


def broadcast_signature(a: Sequence[int], b: Sequence[int]) -> Optional[tuple[int, ...]]:
    """numpy-style broadcast of two shape signatures (-1 = dynamic); None if they cannot broadcast.

    A dynamic dimension against 1 stays dynamic; against a fixed size n it can only be n at run time.
    """
    n = max(len(a), len(b))
    a = (1,) * (n - len(a)) + tuple(a)
    b = (1,) * (n - len(b)) + tuple(b)
    out = []
    for x, y in zip(a, b):
        if x == y:
            out.append(x)
        elif x == 1 or y == 1:
            out.append(y if x == 1 else x)
        elif x == -1 or y == -1:
            out.append(y if x == -1 else x)
        else:
            return None
    return tuple(out)


def f32_round_half_away(x: float) -> float:
    """std::round of a float32 value; exact because |x| + 0.5 is exact in double for float32 x."""
    r = math.floor(abs(x) + 0.5)
    return -r if x < 0 else r


def activation_range(kernel: OpKernel, out: Tensor) -> tuple[int, int]:
    """CalculateActivationRangeQuantized for an int8 output: the clamp bounds of the fused activation.

    The activation's real bounds are quantized in float32 (f / scale, rounded half away from zero),
    then intersected with the int8 range.
    """
    act = kernel.activation()
    scale, zp = kernel.per_tensor_quant(out)

    def quantize(f: float) -> int:
        tmp = f32_round_half_away(float(np.float32(f) / np.float32(scale)))
        # LiteRT refuses values outside int32; at exactly 2^31 its cast is undefined, so refuse too.
        if not -2147483648.0 <= tmp < 2147483648.0:
            raise kernel.fail(f"activation {act} bound {f} does not fit int32 at output scale {scale}")
        return zp + int(tmp)

    if act == "NONE":
        return INT8_MIN, INT8_MAX
    if act == "RELU":
        return max(INT8_MIN, quantize(0.0)), INT8_MAX
    if act == "RELU6":
        return max(INT8_MIN, quantize(0.0)), min(INT8_MAX, quantize(6.0))
    if act == "RELU_N1_TO_1":
        return max(INT8_MIN, quantize(-1.0)), min(INT8_MAX, quantize(1.0))
    raise kernel.fail(f"fused activation {act} is not supported (NONE, RELU, RELU6, RELU_N1_TO_1 are)")


def multiplier_below_one(kernel: OpKernel, real: float, what: str) -> tuple[int, int]:
    """QuantizeMultiplierSmallerThanOneExp: LiteRT aborts unless 0 < real < 1 and the shift is <= 0."""
    if not 0.0 < real < 1.0:
        raise kernel.fail(f"{what} multiplier {real!r} must lie in (0, 1); the quantization scales are inconsistent")
    m, shift = quantize_multiplier(real)
    if shift > 0:
        raise kernel.fail(f"{what} multiplier {real!r} rounds up to 1")
    return int(m), int(shift)


class BinaryInt8Kernel(OpKernel):
    """Two int8 per-tensor-quantized inputs broadcast against each other, one int8 output.

    Subclasses implement `prepare_math()` (multipliers, from self.qa/self.qb/self.qy) and
    `compute(a, b, out)` on flat contiguous arrays of equal length.
    """

    def prepare(self) -> None:
        self.expect_counts(2, 1)
        self.a, self.b, self.y = self.input(0), self.input(1), self.output(0)
        for t in (self.a, self.b, self.y):
            self.expect_dtype(t, np.int8)
        self.qa = self.per_tensor_quant(self.a)
        self.qb = self.per_tensor_quant(self.b)
        self.qy = self.per_tensor_quant(self.y)
        sa, sb = self.a.shape_signature, self.b.shape_signature
        out_sig = broadcast_signature(sa, sb)
        if out_sig is None:
            raise self.fail(f"input shapes {list(sa)} and {list(sb)} do not broadcast")
        if tuple(sa) != tuple(sb) and len(out_sig) > MAX_BROADCAST_RANK:
            raise self.fail(f"broadcasting supports rank <= {MAX_BROADCAST_RANK}, got rank {len(out_sig)}")
        ys = self.y.shape_signature
        if len(ys) != len(out_sig) or any(o != -1 and s != -1 and o != s for o, s in zip(out_sig, ys)):
            raise self.fail(f"inputs broadcast to {list(out_sig)}, but {self.y.describe()} is declared")
        self.act_min, self.act_max = activation_range(self, self.y)
        self.prepare_math()

    def prepare_math(self) -> None:  # pragma: no cover - every subclass overrides it
        raise NotImplementedError

    def compute(self, a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover
        raise NotImplementedError

    def run(self, inputs: list[Optional[np.ndarray]]) -> list[np.ndarray]:
        a = check_array(self, inputs[0], self.a)
        b = check_array(self, inputs[1], self.b)
        try:
            shape = np.broadcast_shapes(a.shape, b.shape)
        except ValueError:
            raise self.fail(f"input shapes {list(a.shape)} and {list(b.shape)} do not broadcast") from None
        if not shape_fits(shape, self.y.shape_signature):
            raise self.fail(f"inputs broadcast to {list(shape)}, but {self.y.describe()} is declared")
        fa = np.ascontiguousarray(np.broadcast_to(a, shape)).reshape(-1)
        fb = np.ascontiguousarray(np.broadcast_to(b, shape)).reshape(-1)
        out = np.empty(shape, dtype=np.int8)
        self.compute(fa, fb, out.reshape(-1))
        return [out]


# -- ADD ------------------------------------------------------------------------------------------------
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
    """int8 + int8 -> int8 with numpy broadcasting and a fused RELU/RELU6/RELU_N1_TO_1."""

    def prepare_math(self) -> None:
        (sa, za), (sb, zb), (sy, zy) = self.qa, self.qb, self.qy
        # max of the float32 scales, then widened: the C++ takes std::max on floats before the cast
        twice_max = 2.0 * max(sa, sb)
        self.ma, self.sha = multiplier_below_one(self, sa / twice_max, "input 1")
        self.mb, self.shb = multiplier_below_one(self, sb / twice_max, "input 2")
        self.my, self.shy = multiplier_below_one(
            self, twice_max / (float(1 << ADD_LEFT_SHIFT) * sy), "output")
        self.off_a, self.off_b, self.zp_y = -za, -zb, zy

    def compute(self, a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
        _add_int8(a, b, out, self.off_a, self.off_b, self.ma, self.sha, self.mb, self.shb,
                  self.my, self.shy, self.zp_y, self.act_min, self.act_max, ADD_LEFT_SHIFT)
