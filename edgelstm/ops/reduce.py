"""MEAN and REDUCE_MAX on int8 tensors over a constant int32 axis list (SUM only for TFLite Micro).

Keras' GlobalAveragePooling1D is MEAN over axis 1 of [1, T, C], with its own output quantization;
GlobalMaxPooling1D is REDUCE_MAX, which keeps the input's quantization.

For int8 MEAN, LiteRT's reference kernel (`kReference`, which BUILTIN_REF registers) takes a single
path whatever the axes, rank, keep_dims or quantization: reference_ops::QuantizedMeanOrSum. It sums
raw int8 values in int32, removes the input zero point, and requantizes with input_scale /
output_scale, into which it folds 1/n *with integer division*, losing a little precision in a way we
must reproduce. The 4-D fast path and the float requantization belong to the optimized kernel only.
Older TFLite releases had more reference branches (equal quantization, 4-D keep_dims over H and W);
the tests pin that the installed LiteRT no longer takes them.

int8 SUM is refused: LiteRT's reference SUM (the kReference arm of QuantizedMeanOrSum<T, kernel_type>
in reduce.cc, since late 2024 and in ai-edge-litert 2.3) reads the int8 input and writes the output
as *uint8*, so BUILTIN_REF's result is wrong for any negative value and is no ground truth to be exact
with. MEAN reaches reference_ops::QuantizedMeanOrSum another way, with the right type.
TFLite Micro's SUM calls QuantizedMeanOrSum with int8 (and without the 1/n), so flavor="tflm" runs
int8 SUM; its MEAN and REDUCE_MAX are the same code as LiteRT's.

tflite-runtime 2.14's default interpreter (`TFLiteRuntimeMean`) sends a 4-D keep_dims MEAN whose axis
tensor holds exactly 1 and 2 to its optimized kernel (optimized_integer_ops::Mean): the raw sum times
the fixed-point multiplier of float32 s_in / (n * s_out), plus a bias out_zp - int(in_zp * s_in / s_out
+- 0.5) computed in float32. Every other MEAN is QuantizedMeanOrSum as above, also with identical input
and output quantization (measured, like the rest).
"""
from __future__ import annotations

from typing import Optional

import numpy as np
from numba import njit

from ..fixedpoint import mbqm, quantize_multiplier, wrap32
from .base import OpKernel, register, resolve_axes
from .flavor import TFLITE_RUNTIME, TFLM

_jit = njit(cache=True, nogil=True)


@_jit
def _mean_rows(x, n, zp_in, multiplier, shift, zp_out, out):
    """out[i] = clamp(MBQM(wrap32(sum(x[i]) - zp_in * n), multiplier, shift) + zp_out)."""
    rows = x.shape[0]
    for i in range(rows):
        acc = 0
        for j in range(x.shape[1]):
            acc += np.int64(x[i, j])
        shifted = wrap32(wrap32(acc) - zp_in * n)
        v = wrap32(mbqm(shifted, multiplier, shift) + zp_out)
        out[i] = min(max(v, -128), 127)


@_jit
def _hw_mean_rows(x, multiplier, shift, bias, out):
    """tflite-runtime's 4-D mean over height and width: clamp(MBQM(sum(x[i]), multiplier, shift) + bias)."""
    for i in range(x.shape[0]):
        acc = 0
        for j in range(x.shape[1]):
            acc += np.int64(x[i, j])
        v = mbqm(wrap32(acc), multiplier, shift) + bias
        out[i] = min(max(v, -128), 127)


@_jit
def _max_rows(x, out):
    rows = x.shape[0]
    for i in range(rows):
        acc = -128  # numeric_limits<int8_t>::lowest(), also what an empty reduction yields
        for j in range(x.shape[1]):
            v = np.int64(x[i, j])
            if v > acc:
                acc = v
        out[i] = acc


@register("MEAN", "SUM", "REDUCE_MAX")
class Reduce(OpKernel):
    """int8 reductions; MEAN requantizes to the output's scale, REDUCE_MAX does not.

    Parameters (read by the eval and the firmware generator): `axes` (the reduced dimensions,
    non-negative, in the axis tensor's order) and `kept` (the others, ascending), `keep_dims`,
    `zp_in`, `zp_out`, and `requantization(n)` for a reduction over n elements:
    y = clamp(MBQM(wrap32(sum - zp_in * n), mult, shift) + zp_out) for MEAN and SUM, the maximum
    for REDUCE_MAX."""

    INT8_SUM = False  # whether the interpreter sums int8 correctly

    def prepare(self) -> None:
        if self.op.opcode == "SUM" and not self.INT8_SUM:
            raise self.fail("int8 SUM is not supported: LiteRT's reference kernel treats int8 data as "
                            "uint8 for SUM, so there is no correct reference to match (use MEAN, or "
                            "keep the sum in float)")
        self.expect_counts(2, 1)
        x, ax, y = self.input(0), self.input(1), self.output(0)
        self.expect_dtype(x, np.int8)
        self.expect_dtype(y, np.int8)
        self.expect_dtype(ax, np.int32)
        if ax.data is None:
            raise self.fail(f"the axis {ax.describe()} must be a constant tensor")
        self.rank = len(x.shape_signature)
        axes = resolve_axes(ax.data, self.rank)
        if axes is None:
            raise self.fail(f"axis values {ax.data.reshape(-1).tolist()} are out of range for a "
                            f"rank-{self.rank} input")
        self.axes = axes
        self.kept = [d for d in range(self.rank) if d not in axes]
        self.keep_dims = bool(self.op.options.get("keep_dims", False))

        s_in, zp_in = self.per_tensor_quant(x)
        s_out, zp_out = self.per_tensor_quant(y)
        self.zp_in, self.zp_out = zp_in, zp_out
        if self.op.opcode == "REDUCE_MAX":
            # the reference enforces identical parameters (exact float comparison) for int8
            if np.float32(s_in) != np.float32(s_out) or zp_in != zp_out:
                raise self.fail(f"REDUCE_MAX needs identical input and output quantization, has input "
                                f"scale {s_in} zero point {zp_in}, output scale {s_out} zero point {zp_out}")
        else:
            # real multiplier computed in double from the float32 scales
            self.multiplier, self.shift = (int(v) for v in quantize_multiplier(float(s_in) / float(s_out)))
            if self.shift > 30:
                raise self.fail(f"input/output scale ratio {float(s_in) / float(s_out):.3g} is too large "
                                f"to requantize in int32")

        expected = self.output_shape(x.shape_signature)
        if len(expected) != len(y.shape_signature) or any(
                e >= 0 and g >= 0 and e != g for e, g in zip(expected, y.shape_signature)):
            raise self.fail(f"{y.describe()} should have shape {list(expected)} for axes {self.axes} "
                            f"and keep_dims={self.keep_dims}")

    def output_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        if self.keep_dims:
            return tuple(1 if d in self.axes else in_shape[d] for d in range(self.rank))
        return tuple(in_shape[d] for d in self.kept)

    def mean_requant(self, n: int) -> tuple[int, int]:
        """Fold 1/n into (multiplier, shift) exactly as QuantizedMeanOrSum does: scale the
        multiplier up by 2^floor(log2 n) (capped so the final shift stays >= -31), then divide by n
        with integer truncation."""
        m, e = self.multiplier, self.shift
        s = min(n.bit_length() - 1, 32, 31 + e)
        return (m << s) // n, e - s

    def requantization(self, n: int) -> tuple[int, int]:
        """(multiplier, shift) the eval applies to a sum over n elements; (0, 0) where it applies
        none: REDUCE_MAX, and an empty reduction (whose output is 0)."""
        if self.op.opcode == "REDUCE_MAX" or n == 0:
            return 0, 0
        if self.op.opcode == "SUM":
            return self.multiplier, self.shift
        return self.mean_requant(n)

    def run(self, inputs: list[Optional[np.ndarray]]) -> list[np.ndarray]:
        x = inputs[0]
        if x is None or x.dtype != np.int8 or x.ndim != self.rank:
            raise self.fail(f"expects an int8 input of rank {self.rank}, got "
                            f"{None if x is None else (x.dtype, x.shape)}")
        sig = self.input(0).shape_signature
        if any(s >= 0 and s != d for s, d in zip(sig, x.shape)):
            raise self.fail(f"input shape {list(x.shape)} does not match {list(sig)}")
        n_out = int(np.prod([x.shape[d] for d in self.kept], dtype=np.int64))
        n_red = int(np.prod([x.shape[d] for d in self.axes], dtype=np.int64))
        rows = np.ascontiguousarray(x.transpose(self.kept + self.axes)).reshape(n_out, n_red)
        flat = np.empty(n_out, dtype=np.int8)
        if self.op.opcode == "REDUCE_MAX":
            _max_rows(rows, flat)
        elif n_red == 0:
            flat[:] = 0  # the reference leaves an empty mean at 0, not at the zero point
        elif self.op.opcode == "SUM":
            _mean_rows(rows, n_red, self.zp_in, self.multiplier, self.shift, self.zp_out, flat)
        else:
            mult, shift = self.mean_requant(n_red)
            _mean_rows(rows, n_red, self.zp_in, mult, shift, self.zp_out, flat)
        return [flat.reshape(self.output_shape(x.shape))]


@register("SUM", flavor=TFLM)
class TFLMReduce(Reduce):
    INT8_SUM = True  # QuantizedMeanOrSum with int8, without the 1/n


@register("MEAN", flavor=TFLITE_RUNTIME)
class TFLiteRuntimeMean(Reduce):
    """MEAN as tflite-runtime 2.14's optimized reduce.cc dispatches it (module docstring);
    `height_width` says whether this one takes its 4-D kernel."""

    def prepare(self) -> None:
        super().prepare()
        raw_axes = [int(a) for a in np.ravel(self.input(1).data)]
        # the kernel is picked from the axis tensor as stored, so [-3, -2] does not take it
        self.height_width = self.rank == 4 and self.keep_dims and sorted(raw_axes) == [1, 2]
        if self.height_width:
            s_in, _ = self.per_tensor_quant(self.input(0))
            s_out, _ = self.per_tensor_quant(self.output(0))
            self.s_in, self.s_out = np.float32(s_in), np.float32(s_out)
            t = np.float32(self.zp_in) * self.s_in / self.s_out  # float32 throughout, as the C++
            t = t + np.float32(0.5) if t > 0 else t - np.float32(0.5)
            self.hw_bias = self.zp_out - int(t)

    def height_width_requant(self, n: int) -> tuple[int, int]:
        """(multiplier, shift) of the 4-D kernel for a sum over n = height * width elements."""
        real = self.s_in / (np.float32(n) * self.s_out)
        m, e = quantize_multiplier(float(real))
        return int(m), int(e)

    def run(self, inputs: list[Optional[np.ndarray]]) -> list[np.ndarray]:
        if not self.height_width:
            return super().run(inputs)
        x = inputs[0]
        sig = self.input(0).shape_signature
        if x is None or x.dtype != np.int8 or x.ndim != 4 or any(s >= 0 and s != d for s, d in zip(sig, x.shape)):
            raise self.fail(f"expects an int8 input of shape {list(sig)}, got "
                            f"{None if x is None else (x.dtype, x.shape)}")
        n, h, w, c = x.shape
        rows = np.ascontiguousarray(x.transpose(0, 3, 1, 2)).reshape(n * c, h * w)
        out = np.zeros(n * c, dtype=np.int8)  # an empty input leaves 0, as the reference does
        if h * w:
            mult, shift = self.height_width_requant(h * w)
            _hw_mean_rows(rows, mult, shift, self.hw_bias, out)
        return [out.reshape(n, 1, 1, c)]
