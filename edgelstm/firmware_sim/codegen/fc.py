"""FULLY_CONNECTED -> el_fc (c/el_fc.c): TFLite Micro's fixed-point requantization per unit."""
from __future__ import annotations

import numpy as np

from ...ops.fully_connected import FullyConnected
from .emit import Lowering, int32_values


def lower_fully_connected(ctx: Lowering, k: FullyConnected) -> None:
    x_i, y_i = k.op.inputs[0], k.op.outputs[0]
    ctx.check_int8(k, (x_i, y_i))
    _, rows = k.output_shape(ctx.shape(x_i))
    rec = k.record
    w = np.asarray(rec.w, dtype=np.int64)
    wide = bool(w.min(initial=0) < -128 or w.max(initial=0) > 127)  # a weight zero point can push past int8
    wtype = "int16_t" if wide else "int8_t"
    idx = k.op.index
    ps = ctx.em.struct(ctx.base(k), "el_fc_params", {
        "rows": rows, "units": rec.units, "depth": rec.depth, "wide_weights": int(wide),
        "w": ctx.shared_array(f"op{idx}_w", w, wtype),
        "bias": ctx.shared_array(f"op{idx}_bias", int32_values(k, rec.bias, "bias"), "int32_t"),
        "mult": ctx.shared_array(f"op{idx}_mult", int32_values(k, rec.mult, "multiplier"), "int32_t"),
        "shift": ctx.shared_array(f"op{idx}_shift", int32_values(k, rec.shift, "shift"), "int32_t"),
        "out_zp": rec.out_zp, "act_min": rec.act_min, "act_max": rec.act_max})
    ctx.add(k, f"el_fc(&{ps}, {{t{x_i}}}, {{t{y_i}}});", (x_i,), (y_i,))
