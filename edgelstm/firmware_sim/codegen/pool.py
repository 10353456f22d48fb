"""MAX_POOL_2D and AVERAGE_POOL_2D -> el_pool (c/el_pool.c)."""
from __future__ import annotations

from ...ops.pooling import Pool2D
from .emit import Lowering


def lower_pool(ctx: Lowering, k: Pool2D) -> None:
    x_i, y_i = k.op.inputs[0], k.op.outputs[0]
    ctx.check_int8(k, (x_i, y_i))
    xs = ctx.shape(x_i)
    ys, pad_h, pad_w = k.geometry(xs)
    if 0 in ys:
        return
    rec = k.record
    ps = ctx.em.struct(ctx.base(k), "el_pool_params", {
        "is_max": int(rec.is_max), "n_batch": xs[0], "in_h": xs[1], "in_w": xs[2], "depth": xs[3],
        "out_h": ys[1], "out_w": ys[2], "stride_h": rec.stride_h, "stride_w": rec.stride_w,
        "filter_h": rec.filter_h, "filter_w": rec.filter_w, "pad_h": pad_h, "pad_w": pad_w,
        "act_min": rec.act_min, "act_max": rec.act_max})
    ctx.add(k, f"el_pool(&{ps}, {{t{x_i}}}, {{t{y_i}}});", (x_i,), (y_i,))
