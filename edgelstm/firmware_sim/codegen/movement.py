"""The movement ops and CONCATENATION -> el_copy (c/el_move.c), one strided copy each.

A movement op is run once on an index ramp ("iota") through its Python kernel, and the resulting
source-index map is fitted to a strided copy, so the C version cannot disagree with the Python
one about which element goes where."""
from __future__ import annotations

from typing import Optional

import numpy as np

from ...ops import OpKernel
from ...ops.base import MovementKernel
from ...ops.concatenation import Concatenation
from .emit import MAX_DIMS, Emitter, Lowering, compress_dims, contiguous_strides, padded


def fit_strided_map(src_map: np.ndarray) -> Optional[tuple[int, list[int], list[int]]]:
    """(offset, per-dimension source strides, output shape) such that
    src_map[i] = offset + sum_d i_d * stride_d for every output index, or None."""
    shape = list(src_map.shape)
    if src_map.size == 0:
        return None
    if src_map.ndim == 0:
        return int(src_map), [1], [1]
    offset = int(src_map[(0,) * src_map.ndim])
    strides = []
    for d in range(src_map.ndim):
        if shape[d] > 1:
            idx = [0] * src_map.ndim
            idx[d] = 1
            strides.append(int(src_map[tuple(idx)]) - offset)
        else:
            strides.append(0)
    grids = np.indices(shape, dtype=np.int64)
    predicted = offset + sum(g * s for g, s in zip(grids, strides))
    if not np.array_equal(predicted, src_map):
        return None
    return offset, strides, shape


def copy_params(em: Emitter, kernel: OpKernel, src_map: np.ndarray, dst_strides: Optional[list[int]] = None,
                dst_offset: int = 0, base: str = "copy") -> str:
    """The el_copy_params struct of the strided copy that `src_map` describes."""
    fitted = fit_strided_map(src_map)
    if fitted is None:
        raise kernel.fail("its element mapping is not a strided copy; not supported on the device")
    offset, src_strides, shape = fitted
    if dst_strides is None:
        dst_strides = contiguous_strides(shape) if src_map.ndim else [1]
    shape, (src_s, dst_s) = compress_dims(list(shape), list(src_strides), list(dst_strides))
    if len(shape) > MAX_DIMS:
        raise kernel.fail(f"moves data across {len(shape)} dimensions; the device kernel handles {MAX_DIMS}")
    return em.struct(base, "el_copy_params", {
        "ndim": len(shape), "shape": padded(shape), "src_stride": padded(src_s),
        "dst_stride": padded(dst_s), "src_offset": offset, "dst_offset": dst_offset})


def movement_map(kernel: MovementKernel, in_shape: tuple[int, ...], folded: dict[int, np.ndarray]) -> np.ndarray:
    """Where each output element of the movement op comes from (flat input index): the Python
    kernel itself moves an index ramp. A shape computed in the graph must have been folded."""
    args: tuple = ()
    if kernel.needs_runtime_args:
        if any(i >= 0 and i not in folded and kernel.graph.tensors[i].data is None for i in kernel.op.inputs[1:]):
            raise kernel.fail("its shape is computed at run time from data; the device library needs static shapes")
        args = kernel.runtime_args([None if i < 0 else folded.get(i, kernel.graph.tensors[i].data)
                                    for i in kernel.op.inputs])
    out_shape, plan = kernel.plan_for(in_shape, args)
    iota = np.arange(int(np.prod(in_shape, dtype=np.int64)), dtype=np.int64).reshape(in_shape)
    src = np.asarray(kernel.move(iota, out_shape, plan))
    return src.reshape(out_shape)


def lower_movement(ctx: Lowering, k: MovementKernel) -> None:
    ctx.check_int8(k, (k.op.inputs[0], k.op.outputs[0]))
    lower_copy(ctx, k, movement_map(k, ctx.shape(k.op.inputs[0]), ctx.folded))


def lower_copy(ctx: Lowering, k: OpKernel, src: np.ndarray) -> None:
    """A movement op as the strided copy that `src` (flat input index per output element)
    describes; the one-timestep graph passes the map of an op on the time axis directly."""
    x_i, y_i = k.op.inputs[0], k.op.outputs[0]
    if tuple(src.shape) != ctx.shape(y_i):
        raise k.fail(f"internal: movement maps to {list(src.shape)}, output is {list(ctx.shape(y_i))}")
    if src.size == 0:
        return
    ps = copy_params(ctx.em, k, src, base=ctx.base(k))
    ctx.add(k, f"el_copy(&{ps}, {{t{x_i}}}, {{t{y_i}}});", (x_i,), (y_i,))


def lower_concatenation(ctx: Lowering, k: Concatenation) -> None:
    """One copy per input into its slice of the output."""
    y_i = k.op.outputs[0]
    ins = list(k.op.inputs)
    ctx.check_int8(k, ins + [y_i])
    out_shape = ctx.shape(y_i)
    out_strides = contiguous_strides(out_shape)
    pos = 0
    for j, x_i in enumerate(ins):
        shape = ctx.shape(x_i)
        n = int(np.prod(shape, dtype=np.int64))
        if n:
            src = np.arange(n, dtype=np.int64).reshape(shape)
            ps = copy_params(ctx.em, k, src, dst_strides=list(out_strides), dst_offset=pos * out_strides[k.axis],
                             base=f"{ctx.base(k)}_in{j}")
            ctx.add(k, f"el_copy(&{ps}, {{t{x_i}}}, {{t{y_i}}});", (x_i,), (y_i,))
        pos += shape[k.axis]
