"""Shape rules of the computing ops: the LSTM, elementwise ops, FULLY_CONNECTED, windows (conv and
pooling) and reductions. Each rule takes the Trace and one op whose input carries the time axis,
records the output's shape with the time axis in it, or raises Refusal if the op needs other
timesteps than the current one."""
from __future__ import annotations

import math

from ... import lstm_shared
from ...tflite_reader import Operator
from .timeaxis import Refusal, TimeDim, concrete, time_axis, time_dim
from .trace import Rule, Trace

UNARY = {"QUANTIZE", "DEQUANTIZE", "LOGISTIC", "TANH", "RELU", "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1",
         "LEAKY_RELU", "HARD_SWISH", "ELU", "ABS", "NEG", "CAST", "EXP", "LOG", "SQRT", "RSQRT", "SQUARE"}
LAST_AXIS = {"SOFTMAX", "LOG_SOFTMAX"}
BINARY = {"ADD", "SUB", "MUL", "DIV", "MAXIMUM", "MINIMUM", "SQUARED_DIFFERENCE", "PRELU"}
REDUCE = {"MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD"}
WINDOW = {"CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D", "AVERAGE_POOL_2D"}


def lstm(s: Trace, op: Operator) -> None:
    """The LSTM must run over the stream itself, along its own sequence axis; its output keeps the
    stored shape with the sequence axis as the time axis."""
    x = op.inputs[lstm_shared.INPUT]
    major = bool(op.options.get("time_major", False))
    seq = 0 if major else 1
    if x not in s.shapes:
        raise Refusal(op, f"its input {s.g.tensors[x].describe()} does not carry the model input's time "
                          "axis: it runs over a sequence that is not the stream (a repeated vector, a "
                          "fixed window...), so carrying its state across invokes would be wrong")
    shape = s.shapes[x]
    a = time_axis(shape)
    if len(shape) != 3 or a != seq or shape[a] != TimeDim():
        raise Refusal(op, f"its input's time axis is axis {a} of shape {list(concrete(shape, s.ta))} "
                          f"(stored as {'time' if major else 'batch'}-major), not the LSTM's sequence axis {seq}")
    out = list(s.stored(op.outputs[0]))
    out[seq] = TimeDim()
    s.set_output(op, 0, out)


def unary(s: Trace, op: Operator) -> None:
    s.set_output(op, 0, s.shapes[op.inputs[0]])


def last_axis(s: Trace, op: Operator) -> None:
    shape = s.shapes[op.inputs[0]]
    if time_axis(shape) == len(shape) - 1:
        raise Refusal(op, f"{op.opcode} normalizes over the last axis, which is the time axis")
    s.set_output(op, 0, shape)


def binary(s: Trace, op: Operator) -> None:
    """Broadcasting: an operand without the time axis must be 1 along it (the same at every step)."""
    ins = [i for i in op.inputs[:2] if i != -1]
    shapes = [s.shapes.get(i, s.stored(i)) for i in ins]
    rank = max(len(x) for x in shapes)
    padded = [(1,) * (rank - len(x)) + tuple(x) for x in shapes]
    out = []
    for k in range(rank):
        col = [x[k] for x in padded]
        times = {d for d in col if isinstance(d, TimeDim)}
        if not times:
            out.append(max(int(d) for d in col))
            continue
        if len(times) > 1:
            raise Refusal(op, "its operands carry the time axis merged differently")
        td = next(iter(times))
        for i, d in zip(ins, col):
            if not isinstance(d, TimeDim) and d != 1:
                raise Refusal(op, f"operand {s.g.tensors[i].describe()} has {d} entries along the time "
                                  "axis but does not come from the input: it varies over the timesteps")
        out.append(td)
    s.set_output(op, 0, out)


def fully_connected(s: Trace, op: Operator) -> None:
    """A Dense on the last axis, which must not be the time axis; without keep_num_dims the leading
    axes (time among them) merge into one."""
    shape = s.shapes[op.inputs[0]]
    a, td = time_dim(shape)
    w = s.g.tensors[op.inputs[1]]
    k_in = int(w.shape[-1]) if len(w.shape) else -1
    if a == len(shape) - 1:
        raise Refusal(op, "it multiplies across the time axis (a Dense after a Flatten over time): each output "
                          "needs every timestep")
    if concrete(shape, s.ta)[-1] != k_in:
        raise Refusal(op, f"it flattens its input into rows of {k_in} values, not along the last axis; this "
                          "rewrite follows only a Dense on the last axis")
    units = int(s.stored(op.outputs[0])[-1])
    if op.options.get("keep_num_dims", False):
        out = list(shape[:-1]) + [units]
    else:
        ints = concrete(shape, s.ta)
        out = [TimeDim(td.outer * math.prod(ints[:a]), td.inner * math.prod(ints[a + 1:-1])), units]
    s.set_output(op, 0, out)


def window(s: Trace, op: Operator) -> None:
    """CONV_2D, DEPTHWISE_CONV_2D, MAX/AVERAGE_POOL_2D on NHWC: fine when the window along the time
    axis is one sample with stride 1, so each output position sees its own timestep only."""
    shape = s.shapes[op.inputs[0]]
    a, td = time_dim(shape)
    if len(shape) != 4 or a == 3:
        raise Refusal(op, f"the time axis is axis {a} of a rank-{len(shape)} input, not a spatial axis")
    out = list(s.stored(op.outputs[0]))
    if a in (1, 2):
        o = op.options
        if op.opcode in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
            size = int(o.get("filter_height" if a == 1 else "filter_width", 1))
        else:
            size = int(s.g.tensors[op.inputs[1]].shape[a])
        stride = int(o.get("stride_h" if a == 1 else "stride_w", 1))
        if size != 1 or stride != 1:
            what = "pools" if "POOL" in op.opcode else "convolves"
            raise Refusal(op, f"it {what} over the time axis with a window of {size} and stride {stride} "
                              "(Conv1D/pooling over time): each output needs past timesteps (or skips some), "
                              "which a single-step model does not have")
    out[a] = td
    s.set_output(op, 0, out)


def reduce(s: Trace, op: Operator) -> None:
    shape = s.shapes[op.inputs[0]]
    a, _ = time_dim(shape)
    axes = s.norm_axes(op, s.const(op, 1, "axes"), len(shape))
    if a in axes:
        raise Refusal(op, f"{op.opcode} over the time axis (global pooling over time) needs the whole sequence")
    keep = bool(op.options.get("keep_dims", False))
    out = [1 if k in axes else d for k, d in enumerate(shape)] if keep else \
        [d for k, d in enumerate(shape) if k not in axes]
    s.set_output(op, 0, out)


RULES: dict[str, Rule] = {
    **{name: unary for name in UNARY}, **{name: last_axis for name in LAST_AXIS},
    **{name: binary for name in BINARY}, **{name: reduce for name in REDUCE},
    **{name: window for name in WINDOW}, "FULLY_CONNECTED": fully_connected,
}
