"""CONCATENATION of int8 tensors (activations) or int32 tensors (shape arithmetic the converter
emits for a dynamic time axis) along any axis (negative axes count from the end).

LiteRT only rescales when concatenating *uint8* tensors (ConcatenationWithScaling). For int8 its
Prepare insists that every input has exactly the output's scale and zero point and then copies
bytes, so a model whose int8 inputs differ is rejected by LiteRT, and here too. The converter
keeps the parameters equal by inserting an int8->int8 QUANTIZE before the concatenation instead.
LiteRT also rejects a fused activation on this op.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from .base import OpKernel, check_array, legacy_params, register, shape_fits, signatures_agree
from .flavor import TFLM


@register("CONCATENATION")
class Concatenation(OpKernel):
    """Parameters (read by the eval and the firmware generator): `axis`, the concatenation axis,
    non-negative; the inputs are copied whole, in input order, with no requantization."""

    def prepare(self) -> None:
        if len(self.op.inputs) < 1:
            raise self.fail("needs at least one input")
        self.expect_counts(len(self.op.inputs), 1)
        self.check_input_count()
        self.xs = [self.input(i) for i in range(len(self.op.inputs))]
        self.y = self.output(0)
        self.expect_dtype(self.y, np.int8, np.int32)
        for t in self.xs:
            self.expect_dtype(t, self.y.dtype)
        for t in self.xs + [self.y]:
            if t.quant is not None and not t.quant.per_tensor:
                raise self.fail(f"{t.describe()} must be quantized per tensor")
        if self.activation() != "NONE":
            raise self.fail(f"fused activation {self.activation()} is not allowed (LiteRT rejects it too)")
        want = legacy_params(self.y)
        for t in self.xs if self.y.dtype == np.int8 else ():
            if legacy_params(t) != want:
                raise self.fail(f"{t.describe()} has scale/zero point {legacy_params(t)} but the output has {want}; "
                                "LiteRT requires int8 inputs to share the output's quantization")

        rank = len(self.xs[0].shape_signature)
        if rank == 0:
            raise self.fail("cannot concatenate scalars")
        axis = int(self.op.options.get("axis", 0))
        self.axis = axis + rank if axis < 0 else axis
        if not 0 <= self.axis < rank:
            raise self.fail(f"axis {axis} is out of range for rank-{rank} inputs")

        sig0 = self.xs[0].shape_signature
        out_sig = list(sig0)
        for t in self.xs[1:]:
            sig = t.shape_signature
            if len(sig) != rank:
                raise self.fail(f"{t.describe()} has rank {len(sig)}, the first input rank {rank}")
            for d in range(rank):
                if d == self.axis:
                    out_sig[d] = -1 if -1 in (out_sig[d], sig[d]) else out_sig[d] + sig[d]
                elif sig[d] != sig0[d] and -1 not in (sig[d], sig0[d]):
                    raise self.fail(f"{t.describe()} differs from the first input in dimension {d}")
                elif sig[d] == -1:
                    out_sig[d] = -1
        ys = self.y.shape_signature
        if not signatures_agree(out_sig, ys):
            raise self.fail(f"inputs concatenate to {out_sig}, but {self.y.describe()} is declared")

    def check_input_count(self) -> None:
        """LiteRT concatenates any number of tensors."""

    def run(self, inputs: list[Optional[np.ndarray]]) -> list[np.ndarray]:
        arrays = [check_array(self, a, t) for a, t in zip(inputs, self.xs)]
        first = arrays[0].shape
        for a in arrays[1:]:
            if any(n != m for d, (n, m) in enumerate(zip(a.shape, first)) if d != self.axis):
                raise self.fail(f"input shapes {[list(x.shape) for x in arrays]} differ outside axis {self.axis}")
        out = np.concatenate(arrays, axis=self.axis)
        if not shape_fits(out.shape, self.y.shape_signature):
            raise self.fail(f"output shape {list(out.shape)} does not fit {self.y.describe()}")
        return [out]


@register("CONCATENATION", flavor=TFLM)
class TFLMConcatenation(Concatenation):
    MAX_INPUTS = 10  # kMaxInputNum in TFLM's concatenation.cc

    def check_input_count(self) -> None:
        if len(self.op.inputs) > self.MAX_INPUTS:
            raise self.fail(f"TFLite Micro concatenates at most {self.MAX_INPUTS} tensors, this op has "
                            f"{len(self.op.inputs)}")
