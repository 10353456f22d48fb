"""SOFTMAX, int8 in and out, as LiteRT's reference kernel computes it (Register_SOFTMAX_REF).

The kReference path of tflite/kernels/activations.cc is the gemmlowp fixed-point softmax of
reference_ops::Softmax (kernels/internal/reference/softmax.h):

* prepare: beta * input_scale * 2^26 (double, capped at 2^31 - 1) becomes a multiplier and left
  shift (PreprocessSoftmaxScaling), and diff_min = -floor(31 * 2^26 / 2^left_shift) bounds the
  input differences worth an exp (CalculateInputRadius).
* per row: d = x - max(row); exp(d * scale) as gemmlowp's exp_on_negative_values on a Q5.26
  value; the sum of exps in Q12.19; its reciprocal via one_over_one_plus_x_for_x_in_0_1; and each
  output = RoundingDivideByPOT(reciprocal * exp, num_bits_over_unit + 23) - 128, saturated.

TFLite Micro (flavor="tflm") runs the same reference code; its Prepare only demands the output scale
be exactly 1/256 instead of within 0.1% of it.

The exp of a difference depends only on the difference (0..255 for int8), so prepare tabulates it.
The int32 gemmlowp functions it needs live in edgelstm.fixedpoint, next to their int16 versions.

tflite-runtime 2.14's default interpreter (`TFLiteRuntimeSoftmax`) runs the optimized kernel
instead, which is float32 arithmetic on a table of exps (optimized_ops::Softmax with
PopulateSoftmaxLookupTable; measured bit-exact on x86-64):

* prepare: table[255 - v] = expf(-input_scale * beta * v) for v = 0..255, in float32 with libm's
  expf, so the exp of a difference d = max(row) - x is table[255 - d];
* per row: the sum of the row's table entries, added in float32 from left to right; inv =
  1 / (sum * output_scale) in float32; each output = roundf(entry * inv) + output zero point
  (halves away from zero), saturated to int8.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np
from numba import njit

from ..fixedpoint import (exp_on_negative_values32, mbqm, one_over_one_plus_x32, quantize_multiplier, rdbp,
                          srdhm32)
from .activations import expf
from .base import OpKernel, register, signatures_agree
from .flavor import TFLITE_RUNTIME, TFLM

_SCALED_DIFF_INTEGER_BITS = 5  # the exp input is Q5.26
_ACCUM_INTEGER_BITS = 12  # the sum of exps is Q12.19
_jit = njit(cache=True, nogil=True)


# -- the kernel ------------------------------------------------------------------------------------
@_jit
def _exp_table(out, multiplier, left_shift, diff_min):
    """out[d] = exp of the input difference -d in Q0.31, 0 where the kernel skips it (-d < diff_min):
    a skipped element adds nothing to the sum and outputs -128, exactly like an exp of 0."""
    for d in range(out.shape[0]):
        if -d >= diff_min:
            out[d] = exp_on_negative_values32(mbqm(-d, multiplier, left_shift), _SCALED_DIFF_INTEGER_BITS)
        else:
            out[d] = 0


@_jit
def _softmax_rows(x, exp_table, out):
    """Softmax of each row of the int8 matrix x into out. Returns -1, or the first row whose sum of
    exps reaches 512, where the reference kernel's output exponent leaves 0..31 and it aborts."""
    rows, depth = x.shape
    for i in range(rows):
        row_max = -128
        for c in range(depth):
            row_max = max(row_max, np.int64(x[i, c]))
        total = 0
        for c in range(depth):
            total += rdbp(exp_table[row_max - np.int64(x[i, c])], _ACCUM_INTEGER_BITS)
        if total >= (1 << 28):
            return i
        # GetReciprocal: normalise the Q12.19 sum to [1, 2) and invert it
        # (total >= 2^19 always: the row maximum contributes exp(0); the bound only keeps the
        # loop finite whatever the table holds)
        headroom_plus_one = 0
        while headroom_plus_one < 31 and (total << headroom_plus_one) < (1 << 31):
            headroom_plus_one += 1
        num_bits_over_unit = _ACCUM_INTEGER_BITS - headroom_plus_one
        reciprocal = one_over_one_plus_x32((total << headroom_plus_one) - (1 << 31))
        exponent = num_bits_over_unit + 31 - 8
        for c in range(depth):
            e = exp_table[row_max - np.int64(x[i, c])]
            y = rdbp(srdhm32(reciprocal, e), exponent) - 128
            out[i, c] = min(max(y, -128), 127)
    return -1


@register("SOFTMAX")
class Softmax(OpKernel):
    """int8 softmax over the last axis.

    Parameters (read by the eval and the firmware generator): `exp_table`, int64 [256], the Q0.31
    exp of each input difference -d = x - max(row) (0 where the kernel skips it), and `diff_min`,
    the most negative difference that counts."""

    # how far the output scale may be from 1/256 (LiteRT's test is in float32)
    OUTPUT_SCALE_TOLERANCE = np.float32(0.001) / np.float32(256)
    def prepare(self) -> None:
        self.expect_counts(1, 1)
        inp, out = self.input(0), self.output(0)
        self.expect_dtype(inp, np.int8)
        self.expect_dtype(out, np.int8)
        if len(inp.shape_signature) < 1:
            raise self.fail(f"{inp.describe()} must have at least one dimension")
        if not signatures_agree(inp.shape_signature, out.shape_signature):
            raise self.fail(f"output shape {list(out.shape_signature)} differs from input shape "
                            f"{list(inp.shape_signature)}")
        in_s, _ = self.per_tensor_quant(inp)  # the input zero point cancels in x - max(row)
        out_s, out_zp = self.per_tensor_quant(out)
        # The kernel writes probabilities as q = 256 p - 128 whatever the output scale says, so
        # LiteRT only accepts (nearly) that quantization; the tolerance test is in float32.
        tolerance = self.OUTPUT_SCALE_TOLERANCE
        if out_zp != -128 or abs(np.float32(out_s) - np.float32(1.0 / 256)) > tolerance:
            raise self.fail(f"int8 SOFTMAX needs output quantization 1/256, -128; {out.describe()} has "
                            f"{out_s!r}, {out_zp}")
        if "beta" not in self.op.options:
            raise self.fail("has no SoftmaxOptions (beta)")
        beta = float(np.float32(self.op.options["beta"]))
        real = beta * in_s * float(1 << (31 - _SCALED_DIFF_INTEGER_BITS))
        # QuantizeMultiplierGreaterThanOne aborts LiteRT unless this exceeds 1
        if not math.isfinite(real) or real <= 1.0:
            raise self.fail(f"beta {beta!r} times input scale {in_s!r} is out of the supported range "
                            f"(beta * scale * 2^26 must exceed 1)")
        real = min(real, float((1 << 31) - 1))
        multiplier, left_shift = (int(v) for v in quantize_multiplier(real))
        radius = math.floor(31.0 * (1 << 26) / (1 << left_shift))
        self.diff_min = -radius
        self.exp_table = np.empty(256, dtype=np.int64)
        _exp_table(self.exp_table, multiplier, left_shift, self.diff_min)
        self.exp_table.setflags(write=False)

    def rows(self, x) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(output, input rows, output rows): the softmax runs over the last axis, row by row."""
        if not isinstance(x, np.ndarray) or x.dtype != np.int8 or x.ndim < 1:
            raise self.fail("expects an int8 input array with at least one dimension")
        out = np.empty(x.shape, dtype=np.int8)
        if x.size == 0:  # nothing to compute (and no row length to infer from)
            return out, x, out
        depth = x.shape[-1]
        return out, np.ascontiguousarray(x).reshape(-1, depth), out.reshape(-1, depth)

    def run(self, inputs: list[Optional[np.ndarray]]) -> list[np.ndarray]:
        out, rows, out_rows = self.rows(inputs[0])
        if out.size == 0:
            return [out]
        bad = _softmax_rows(rows, self.exp_table, out_rows)
        if bad >= 0:
            raise self.fail(f"row {bad} of the input sums to 512 or more in exp terms; LiteRT's reference "
                            f"kernel aborts on this (its output exponent exceeds 31)")
        return [out]


@register("SOFTMAX", flavor=TFLM)
class TFLMSoftmax(Softmax):
    OUTPUT_SCALE_TOLERANCE = np.float32(0.0)  # TFLite Micro compares the scale for equality


@_jit
def _softmax_rows_float(x, exp_table, out_scale, out_zp, out):
    """The float32 softmax of each row of the int8 matrix x into out (see the module docstring)."""
    rows, depth = x.shape
    for i in range(rows):
        row_max = -128
        for c in range(depth):
            row_max = max(row_max, np.int64(x[i, c]))
        base = 255 - row_max
        total = np.float32(0.0)
        for c in range(depth):
            total += exp_table[base + np.int64(x[i, c])]
        inv = np.float32(1.0) / (total * out_scale)
        for c in range(depth):
            p = exp_table[base + np.int64(x[i, c])] * inv
            # C roundf; a float32 converts to float64 exactly, so the halves stay exact
            q = np.floor(abs(np.float64(p)) + 0.5)
            y = np.int64(q if p >= 0 else -q) + out_zp
            out[i, c] = min(max(y, -128), 127)


@register("SOFTMAX", flavor=TFLITE_RUNTIME)
class TFLiteRuntimeSoftmax(Softmax):
    """tflite-runtime 2.14's optimized int8 SOFTMAX: float32 on a table of exps. The parent's
    prepare() runs first for its checks (2.14 demands the same output quantization, 1/256 and -128).

    Parameters: `float_exp_table`, float32 [256], table[255 - d] the exp of an input difference -d,
    `out_scale` (float32) and `out_zp`."""

    def prepare(self) -> None:
        super().prepare()
        in_s, _ = self.per_tensor_quant(self.input(0))
        out_s, self.out_zp = self.per_tensor_quant(self.output(0))
        scale = -np.float32(in_s) * np.float32(self.op.options["beta"])
        v = np.arange(256, dtype=np.float32)
        self.float_exp_table = np.ascontiguousarray(expf(scale * v)[::-1])
        self.float_exp_table.setflags(write=False)
        self.out_scale = np.float32(out_s)

    def run(self, inputs: list[Optional[np.ndarray]]) -> list[np.ndarray]:
        out, rows, out_rows = self.rows(inputs[0])
        if out.size:
            _softmax_rows_float(rows, self.float_exp_table, self.out_scale, self.out_zp, out_rows)
        return [out]
