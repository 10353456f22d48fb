"""CONV_2D and DEPTHWISE_CONV_2D -> el_conv (c/el_conv.c): one grouped convolution for both."""
from __future__ import annotations

import numpy as np

from ...ops.conv import ConvKernel
from .emit import Lowering, int32_values


def lower_conv(ctx: Lowering, k: ConvKernel) -> None:
    x_i, y_i = k.op.inputs[0], k.op.outputs[0]
    ctx.check_int8(k, (x_i, y_i))
    xs = ctx.shape(x_i)
    out_shape, pad_h, pad_w = k.geometry(xs)
    rec = k.record
    n_out, k_h, k_w, k_c = rec.w.shape
    idx = k.op.index
    ps = ctx.em.struct(ctx.base(k), "el_conv_params", {
        "n_batch": xs[0], "in_h": xs[1], "in_w": xs[2], "in_c": xs[3], "out_h": out_shape[1],
        "out_w": out_shape[2], "n_out": n_out, "k_h": k_h, "k_w": k_w, "k_c": k_c,
        "per_group": n_out // (xs[3] // k_c), "stride_h": rec.stride[0], "stride_w": rec.stride[1],
        "dil_h": rec.dilation[0], "dil_w": rec.dilation[1], "pad_h": pad_h, "pad_w": pad_w,
        "w": ctx.shared_array(f"op{idx}_w", np.asarray(rec.w, np.int64), "int8_t"),
        "bias": ctx.shared_array(f"op{idx}_bias", int32_values(k, rec.bias, "bias"), "int32_t"),
        "mult": ctx.shared_array(f"op{idx}_mult", int32_values(k, rec.mult, "multiplier"), "int32_t"),
        "shift": ctx.shared_array(f"op{idx}_shift", int32_values(k, rec.shift, "shift"), "int32_t"),
        "in_off": rec.in_off, "out_zp": rec.out_zp, "act_min": rec.act_min, "act_max": rec.act_max})
    ctx.add(k, f"el_conv(&{ps}, {{t{x_i}}}, {{t{y_i}}});", (x_i,), (y_i,))
