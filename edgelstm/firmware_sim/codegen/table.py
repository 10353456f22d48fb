"""The int8 table ops (LOGISTIC, TANH, RELU, RELU6, LEAKY_RELU) -> el_table (c/el_table.c)."""
from __future__ import annotations

import numpy as np

from ...ops.activations import Int8TableKernel
from .emit import Lowering


def lower_table(ctx: Lowering, k: Int8TableKernel) -> None:
    x_i, y_i = k.op.inputs[0], k.op.outputs[0]
    ctx.check_int8(k, (x_i, y_i))
    t = ctx.shared_array(f"op{k.op.index}_table", np.asarray(k.table, dtype=np.int64), "int8_t")
    ctx.add(k, f"el_table({t}, {{t{x_i}}}, {{t{y_i}}}, {ctx.size(y_i)});", (x_i,), (y_i,))
