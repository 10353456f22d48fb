"""SOFTMAX -> el_softmax (c/el_softmax.c), with the kernel's exp table."""
from __future__ import annotations

from ...ops.softmax import Softmax
from .emit import Lowering, int32_values

SOFTMAX_MAX_DEPTH = 511  # the Q12.19 sum of exps stays below 2^28 (the reference aborts there)


def lower_softmax(ctx: Lowering, k: Softmax) -> None:
    x_i, y_i = k.op.inputs[0], k.op.outputs[0]
    ctx.check_int8(k, (x_i, y_i))
    xs = ctx.shape(x_i)
    depth = xs[-1]
    if depth > SOFTMAX_MAX_DEPTH:
        raise k.fail(f"softmax over {depth} classes: the reference kernel's sum of exps can overflow "
                     f"above {SOFTMAX_MAX_DEPTH}; not generated")
    ps = ctx.em.struct(ctx.base(k), "el_softmax_params", {
        "rows": ctx.size(x_i) // max(depth, 1), "depth": depth,
        "exp_table": ctx.shared_array(f"op{k.op.index}_exp", int32_values(k, k.exp_table, "exp table"), "int32_t")})
    ctx.add(k, f"el_softmax(&{ps}, {{t{x_i}}}, {{t{y_i}}});", (x_i,), (y_i,))
