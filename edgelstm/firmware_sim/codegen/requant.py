"""QUANTIZE int8 -> int8 -> el_requant (c/el_requant.c); float conversions inside the graph are
refused (the library has no floating point; those at its boundary are left to the caller)."""
from __future__ import annotations

from ...errors import ModelError
from ...ops import OpKernel
from ...ops.quantize import Quantize
from .emit import Lowering


def lower_quantize(ctx: Lowering, k: Quantize) -> None:
    if k.from_float:
        raise _float_inside(k)
    x_i, y_i = k.op.inputs[0], k.op.outputs[0]
    ctx.check_int8(k, (x_i, y_i))
    ps = ctx.em.struct(ctx.base(k), "el_requant_params", {
        "n": ctx.size(x_i), "zp_in": k.zp_in, "mult": k.mult, "shift": k.shift, "zp_out": k.zp_out})
    ctx.add(k, f"el_requant(&{ps}, {{t{x_i}}}, {{t{y_i}}});", (x_i,), (y_i,))


def lower_dequantize(ctx: Lowering, k: OpKernel) -> None:
    raise _float_inside(k)


def _float_inside(k: OpKernel) -> ModelError:
    return k.fail("converts between float and int8 inside the graph; the device library has no "
                  "floating point (only a QUANTIZE right after the model input and a DEQUANTIZE "
                  "right before its output are supported, and left to the caller)")
