"""MEAN, SUM and REDUCE_MAX -> el_reduce (c/el_reduce.c): an outer walk over the kept dimensions,
an inner one over the reduced dimensions."""
from __future__ import annotations

import numpy as np

from ...ops.reduce import Reduce
from .emit import MAX_DIMS, Lowering, c_value, contiguous_strides, padded


def lower_reduce(ctx: Lowering, k: Reduce) -> None:
    x_i, y_i = k.op.inputs[0], k.op.outputs[0]
    ctx.check_int8(k, (x_i, y_i))
    xs = ctx.shape(x_i)
    if len(xs) > MAX_DIMS:
        raise k.fail(f"reduces a rank-{len(xs)} tensor; the device kernel handles rank {MAX_DIMS}")
    strides = contiguous_strides(xs)
    n_red = int(np.prod([xs[d] for d in k.axes], dtype=np.int64))

    def walk(dims: list[int]) -> str:
        dims = [d for d in dims if xs[d] != 1]
        fields = {"ndim": len(dims), "shape": padded([xs[d] for d in dims]),
                  "stride": padded([strides[d] for d in dims])}
        return "{" + ", ".join(f".{a} = {c_value(b)}" for a, b in fields.items()) + "}"

    mult, shift = k.requantization(n_red)
    ps = ctx.em.struct(ctx.base(k), "el_reduce_params", {
        "is_max": int(k.op.opcode == "REDUCE_MAX"), "outer": walk(k.kept), "inner": walk(k.axes),
        "n_reduced": n_red, "zp_in": k.zp_in, "mult": mult, "shift": shift, "zp_out": k.zp_out})
    ctx.add(k, f"el_reduce(&{ps}, {{t{x_i}}}, {{t{y_i}}});", (x_i,), (y_i,))
