"""What the generator decides before and after the ops are lowered: the library's int8 interface
(float boundary ops left to the caller), the constants folded at generation time, the
one-timestep graph behind `model_step`, and the arena layout."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Optional

import numpy as np

from ...errors import ModelError
from ...model import Model
from ...ops import OpKernel
from ...ops.activations import Int8TableKernel
from ...ops.add import Add
from ...ops.base import MovementKernel
from ...ops.concatenation import Concatenation
from ...ops.fully_connected import FullyConnected
from ...ops.lstm import LSTMKernel
from ...ops.mul import Mul
from ...ops.quantize import Quantize
from ...ops.softmax import Softmax
from ...tflite_reader import Graph
from .emit import Call
from .movement import movement_map


@dataclass
class IOSpec:
    """One side of the library's interface: the int8 tensor it reads or writes."""

    tensor: int
    shape: tuple[int, ...]
    scale: float
    zero_point: int
    boundary_op: Optional[int] = None  # the float QUANTIZE / DEQUANTIZE op left to the caller

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))


@dataclass
class StepInfo:
    """How `model_step` relates to `model_run`."""

    available: bool
    reason: str = ""
    time_steps: int = 0
    input_time_axis: int = -1
    output_time_axes: list = field(default_factory=list)  # per output; None: no time axis (a last-step head)
    input_shape: tuple[int, ...] = ()
    output_shapes: list = field(default_factory=list)


# -- the model's interface ------------------------------------------------------------------------------
def interface(model: Model) -> tuple[list[IOSpec], list[IOSpec], set[int]]:
    """The int8 inputs and outputs of the library and the float boundary ops left to the caller."""
    g = model.graph
    skipped: set[int] = set()
    consumers: dict[int, list] = {}
    for op in g.operators:
        for i in op.inputs:
            consumers.setdefault(i, []).append(op)
    producer = {o: op for op in g.operators for o in op.outputs}

    def spec(idx: int, boundary: Optional[int]) -> IOSpec:
        t = g.tensors[idx]
        q = t.quant
        return IOSpec(idx, tuple(int(d) for d in t.shape), q.s if q and q.per_tensor else 0.0,
                      q.zp if q and q.per_tensor else 0, boundary)

    ins = []
    for i in g.inputs:
        t = g.tensors[i]
        if t.dtype == np.float32:
            cons = consumers.get(i, [])
            if len(cons) != 1 or cons[0].opcode != "QUANTIZE" or g.tensors[cons[0].outputs[0]].dtype != np.int8:
                raise ModelError(f"model input {t.describe()} is float and not only quantized to int8; the device "
                                 "library computes in int8 only")
            ins.append(spec(cons[0].outputs[0], cons[0].index))
            skipped.add(cons[0].index)
        elif t.dtype == np.int8:
            ins.append(spec(i, None))
        else:
            raise ModelError(f"model input {t.describe()} is {t.type_name}; the device library takes int8")
    outs = []
    for i in g.outputs:
        t = g.tensors[i]
        if t.dtype == np.float32:
            op = producer.get(i)
            if op is None or op.opcode != "DEQUANTIZE" or g.tensors[op.inputs[0]].dtype != np.int8:
                raise ModelError(f"model output {t.describe()} is float and not a DEQUANTIZE of an int8 tensor; the "
                                 "device library computes in int8 only")
            outs.append(spec(op.inputs[0], op.index))
            skipped.add(op.index)
        elif t.dtype == np.int8:
            outs.append(spec(i, None))
        else:
            raise ModelError(f"model output {t.describe()} is {t.type_name}; the device library returns int8")
    tensors = [s.tensor for s in ins + outs]
    if len(set(tensors)) != len(tensors):
        raise ModelError("a model output is also a model input or another output; not supported on the device")
    if not ins or not outs:
        raise ModelError("the model has no inputs or no outputs")
    return ins, outs, skipped


# -- constant folding -----------------------------------------------------------------------------------
def fold_constants(model: Model, kernels: list[OpKernel], skipped: set[int]) -> tuple[dict[int, np.ndarray], set[int]]:
    """Ops whose result is known at generation time (all inputs constant, or SHAPE, since every
    shape is static on the device) are evaluated here by their Python kernel and not emitted: the
    shape arithmetic a converter leaves around RESHAPE becomes a constant."""
    g = model.graph
    folded: dict[int, np.ndarray] = {}
    ops: set[int] = set()
    for k in kernels:
        op = k.op
        if op.index in skipped or isinstance(k, LSTMKernel):
            continue
        ins = [i for i in op.inputs if i >= 0]
        known = all(g.tensors[i].data is not None or i in folded for i in ins)
        if not (ins and known) and op.opcode != "SHAPE":
            continue
        args = [None if i < 0 else folded[i] if i in folded else g.tensors[i].data if g.tensors[i].data is not None
                else np.zeros(g.tensors[i].shape, g.tensors[i].dtype) for i in op.inputs]
        for o, v in zip(op.outputs, k.run(args)):
            folded[o] = np.asarray(v)
        ops.add(op.index)
    return folded, ops


# -- the one-timestep graph -----------------------------------------------------------------------------
class _NotStreamable(Exception):
    pass


def _time_positions(src_map: np.ndarray, in_shape: tuple[int, ...], axis: int) -> np.ndarray:
    """The input time index each output element of a movement op reads."""
    return np.unravel_index(src_map.reshape(-1), in_shape)[axis].reshape(src_map.shape)


def _step_movement(k: MovementKernel, in_shape, in_axis: int, out_shape, folded: dict[int, np.ndarray]
                   ) -> tuple[Optional[int], np.ndarray]:
    """For a movement op on a time-carrying tensor: the output's time axis (None if the op keeps
    only the last timestep) and the source map of its one-timestep version."""
    n_t = in_shape[in_axis]
    src = movement_map(k, tuple(in_shape), folded)
    tpos = _time_positions(src, tuple(in_shape), in_axis)
    step_in = list(in_shape)
    step_in[in_axis] = 1

    def to_step(sel_src: np.ndarray) -> np.ndarray:
        idx = list(np.unravel_index(sel_src, tuple(in_shape)))
        idx[in_axis] = np.zeros_like(idx[in_axis])
        return np.ravel_multi_index(tuple(idx), tuple(step_in))

    if np.all(tpos == n_t - 1) and n_t > 1:
        return None, to_step(src)
    for e in range(len(out_shape)):
        if out_shape[e] != n_t:
            continue
        pos = np.indices(src.shape)[e]
        if not np.array_equal(tpos, pos):
            continue
        first = np.take(src, [0], axis=e)
        last = np.take(src, [n_t - 1], axis=e)
        if np.array_equal(to_step(first), to_step(last)):
            return e, to_step(first)
    raise _NotStreamable(f"{k.op.describe()} mixes timesteps")


def _propagate(g: Graph, kernels: list[OpKernel], skipped: set[int], in_tensor: int, t_axis: int,
               folded: dict[int, np.ndarray]) -> tuple[dict[int, Optional[int]], dict[int, np.ndarray]]:
    """The time axis of every tensor (None: none), and the one-timestep source map of each movement
    op on the time axis; raises _NotStreamable naming the first op that mixes timesteps."""
    axes: dict[int, Optional[int]] = {in_tensor: t_axis}
    overrides: dict[int, np.ndarray] = {}
    for k in kernels:
        op = k.op
        if op.index in skipped:
            continue
        act_ins = [i for i in op.inputs if i >= 0 and g.tensors[i].data is None and not g.tensors[i].is_variable]
        timed = [i for i in act_ins if axes.get(i) is not None]
        op_outs = list(op.outputs)
        if not timed:
            if isinstance(k, LSTMKernel):
                raise _NotStreamable(f"{op.describe()} runs on a tensor without time axis")
            for o in op_outs:
                axes[o] = None
            continue
        a = axes[timed[0]]
        x_shape = tuple(g.tensors[timed[0]].shape)
        y_shape = tuple(g.tensors[op_outs[0]].shape)
        if isinstance(k, LSTMKernel):
            if a != (0 if k.time_major else 1) or timed[0] != op.inputs[0]:
                raise _NotStreamable(f"{op.describe()} reads its time axis from dimension {a}")
            axes[op_outs[0]] = a
        elif isinstance(k, (Int8TableKernel, Quantize, Softmax)):
            if isinstance(k, Softmax) and a == len(x_shape) - 1:
                raise _NotStreamable(f"{op.describe()} normalises over time")
            axes[op_outs[0]] = a
        elif isinstance(k, FullyConnected):
            if a == len(x_shape) - 1:
                raise _NotStreamable(f"{op.describe()} multiplies along the time axis")
            if k.record.keep_num_dims:
                axes[op_outs[0]] = a
            elif all(d == 1 for j, d in enumerate(x_shape[:-1]) if j != a):
                axes[op_outs[0]] = 0
            else:
                raise _NotStreamable(f"{op.describe()} flattens the time axis together with others")
        elif isinstance(k, (Add, Mul)):
            ya = a + len(y_shape) - len(x_shape)
            for i in op.inputs[:2]:
                s = tuple(g.tensors[i].shape)
                pos = ya - (len(y_shape) - len(s))
                ai = axes.get(i)
                if ai is not None and ai != pos:
                    raise _NotStreamable(f"{op.describe()} combines tensors with different time axes")
                if ai is None and 0 <= pos < len(s) and s[pos] != 1:
                    raise _NotStreamable(f"{op.describe()} combines a sequence with a per-timestep constant")
            axes[op_outs[0]] = ya
        elif isinstance(k, Concatenation):
            if len(timed) != len([i for i in op.inputs]) or any(axes[i] != a for i in op.inputs) or k.axis == a:
                raise _NotStreamable(f"{op.describe()} concatenates along or across the time axis")
            axes[op_outs[0]] = a
        elif isinstance(k, MovementKernel):
            out_axis, step_src = _step_movement(k, x_shape, a, y_shape, folded)
            axes[op_outs[0]] = out_axis
            overrides[op.index] = step_src
        else:
            raise _NotStreamable(f"{op.describe()} combines several timesteps")
    return axes, overrides


def step_graph(model: Model, kernels: list[OpKernel], skipped: set[int], ins: list[IOSpec], outs: list[IOSpec],
               folded: dict[int, np.ndarray]) -> tuple[StepInfo, Optional[Graph], dict[int, np.ndarray]]:
    """Propagates the time axis from the input through the graph. Succeeds when every op either
    works timestep by timestep (LSTM, dense layers, elementwise ops, ...) or keeps only the last
    timestep, after which everything is per-sequence: then one-timestep runs with the LSTM state
    carried are exactly the whole-sequence computation, prefix by prefix. The input's time axis is
    the first LSTM's (1 batch-major, 0 time-major) unless the graph transposes before it, so both
    are tried. Returns the graph with every time axis at length 1, and per movement op on the time
    axis its one-timestep source map (op index -> map)."""
    g = model.graph
    first_lstm = next((k for k in kernels if isinstance(k, LSTMKernel)), None)
    if first_lstm is None:
        return StepInfo(False, "the model has no LSTM"), None, {}
    if len(ins) != 1:
        return StepInfo(False, f"the model has {len(ins)} inputs"), None, {}
    io_in = ins[0]
    in_shape = io_in.shape
    if len(in_shape) != 3:
        return StepInfo(False, f"the input has rank {len(in_shape)}, not 3"), None, {}
    guess = 0 if first_lstm.time_major else 1
    reasons = []
    for t_axis in (guess, 1 - guess):
        n_t = in_shape[t_axis]
        if n_t == 1:
            if t_axis == guess:  # a one-timestep model: a step is a run
                return StepInfo(True, "", 1, t_axis, [None] * len(outs), in_shape, [o.shape for o in outs]), g, {}
            continue
        try:
            axes, overrides = _propagate(g, kernels, skipped, io_in.tensor, t_axis, folded)
        except _NotStreamable as exc:
            reasons.append(str(exc))
            continue
        break
    else:
        return StepInfo(False, reasons[0]), None, {}
    if any(o.tensor not in axes for o in outs):
        return StepInfo(False, "an output does not depend on the input"), None, {}
    out_axes = [axes[o.tensor] for o in outs]

    tensors = list(g.tensors)
    for i, a in axes.items():
        if a is None:
            continue
        t = tensors[i]
        shape = list(t.shape)
        if shape[a] != n_t:
            return StepInfo(False, f"{t.describe()} has {shape[a]} steps on its time axis, not {n_t}"), None, {}
        shape[a] = 1
        tensors[i] = replace(t, shape=tuple(shape), shape_signature=tuple(shape))
    for k in overrides:
        y = g.operators[k].outputs[0]
        overrides[k] = overrides[k].reshape(tensors[y].shape)
    step_g = replace(g, tensors=tensors)
    info = StepInfo(True, "", n_t, t_axis, out_axes, tensors[io_in.tensor].shape,
                    [tensors[o.tensor].shape for o in outs])
    return info, step_g, overrides


# -- memory plan ----------------------------------------------------------------------------------------
def plan_memory(calls: list[Call], sizes: dict[int, int], external: set[int]) -> tuple[dict, int]:
    """Offsets in one arena for every tensor the calls produce and every scratch buffer, such that
    no two buffers that are live at the same call overlap (greedy first fit, largest first)."""
    live: dict[object, list[int]] = {}
    for pos, c in enumerate(calls):
        for t in c.reads + c.writes:
            if t in external:
                continue
            rng = live.setdefault(t, [pos, pos])
            rng[0], rng[1] = min(rng[0], pos), max(rng[1], pos)
        if c.scratch_bytes:
            live[("scratch", pos)] = [pos, pos]
    nbytes = {key: (sizes[key] if not isinstance(key, tuple) else calls[key[1]].scratch_bytes) for key in live}
    placed: list[tuple[int, int, int, int]] = []  # offset, end, first, last
    offsets: dict = {}
    for key in sorted(live, key=lambda k: (-nbytes[k], live[k][0])):
        first, last = live[key]
        size = (nbytes[key] + 3) // 4 * 4
        off = 0
        for o, e, f, l in sorted(placed):
            if l < first or f > last:
                continue
            if off + size <= o:
                break
            off = max(off, e)
        offsets[key] = off
        placed.append((off, off + size, first, last))
    total = max((e for _, e, _, _ in placed), default=0)
    return offsets, total
