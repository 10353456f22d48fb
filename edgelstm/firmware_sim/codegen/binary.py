"""ADD and MUL -> el_binary (c/el_binary.c): broadcast int8 elementwise arithmetic. The C struct
has ADD's three requantizations; MUL uses only the output one."""
from __future__ import annotations

import numpy as np

from ...ops.add import Add
from ...ops.base import BinaryInt8Kernel
from ...ops.mul import Mul
from .emit import MAX_DIMS, Lowering, compress_dims, contiguous_strides, padded


def lower_add(ctx: Lowering, k: Add) -> None:
    r = k.record
    _lower_binary(ctx, k, False, {"off_a": r.off_a, "off_b": r.off_b, "left_shift": r.left_shift,
                                  "ma": r.mult_a, "sa": r.shift_a, "mb": r.mult_b, "sb": r.shift_b, "my": r.mult_y,
                                  "sy": r.shift_y, "zp_y": r.zp_y, "act_min": r.act_min, "act_max": r.act_max})


def lower_mul(ctx: Lowering, k: Mul) -> None:
    r = k.record
    _lower_binary(ctx, k, True, {"off_a": r.off_a, "off_b": r.off_b, "left_shift": 0,
                                 "ma": 0, "sa": 0, "mb": 0, "sb": 0, "my": r.mult, "sy": r.shift,
                                 "zp_y": r.zp_y, "act_min": r.act_min, "act_max": r.act_max})


def _lower_binary(ctx: Lowering, k: BinaryInt8Kernel, is_mul: bool, arithmetic: dict) -> None:
    a_i, b_i, y_i = k.op.inputs[0], k.op.inputs[1], k.op.outputs[0]
    ctx.check_int8(k, (a_i, b_i, y_i))
    sa, sb, sy = ctx.shape(a_i), ctx.shape(b_i), ctx.shape(y_i)
    out = tuple(np.broadcast_shapes(sa, sb))
    if out != sy:
        raise k.fail(f"inputs broadcast to {list(out)}, output is {list(sy)}")

    def strides(s):
        s = (1,) * (len(out) - len(s)) + tuple(s)
        cs = contiguous_strides(s)
        return [cs[d] if s[d] == out[d] else 0 for d in range(len(out))]

    shape, (st_a, st_b) = compress_dims(list(out), strides(sa), strides(sb))
    if len(shape) > MAX_DIMS:
        raise k.fail(f"broadcasts over {len(shape)} dimensions; the device kernel handles {MAX_DIMS}")
    walk = {"ndim": len(shape), "shape": padded(shape), "a_stride": padded(st_a), "b_stride": padded(st_b)}
    ps = ctx.em.struct(ctx.base(k), "el_binary_params", {"is_mul": int(is_mul), **walk, **arithmetic})
    ctx.add(k, f"el_binary(&{ps}, {{t{a_i}}}, {{t{b_i}}}, {{t{y_i}}});", (a_i, b_i), (y_i,))
