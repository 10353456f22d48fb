"""Single-step (streaming) variant of a converted LSTM model, for sample-by-sample inference.

`streaming_model` rewrites the full-sequence .tflite itself: same weights, same quantization
parameters, same operators; only the time dimension becomes 1. A separately converted T=1 Keras
model would be calibrated on other activations and could never match the full model bit for bit.

The LSTM ops keep h and c in variable tensors, which every runtime carries across invokes (LiteRT
until reset_all_variables(), TFLite Micro until reset(), edgelstm with `run(x, reset=False)`). So
invoke k, given sample k, computes exactly what the full model computes at timestep k, and returns
what the full model would output if the sequence ended there: the head applied to h_k after a
last-timestep slice, the step's own output for sequence outputs.

How: the model input's time axis is followed through the graph. Every tensor carrying it gets that
dimension set to 1 (shape and shape_signature); the constants that encode T are rewritten (RESHAPE
new shapes, STRIDED_SLICE/SLICE bounds that take the last timestep or the whole sequence); a RESHAPE
shape the converter computes at run time for a dynamic T (SHAPE, GATHER, REDUCE_PROD, PACK) is folded
into a constant and its shape arithmetic dropped. An op that needs other timesteps than the current
one (the backward direction of a bidirectional layer, pooling, a mean or a convolution over time
with a window above 1, a slice of other timesteps, a Flatten over time) is refused with a
`ConversionError` naming it.

Runtime side: no TensorFlow. Writing the flatbuffer needs the schema's object API from
ai-edge-litert (the `tflite` package has only readers).
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

import numpy as np

from ..errors import ConversionError, ModelError
from ..ops.reshape import reshape_output_shape
from ..ops.strided_slice import SliceSpec
from ..tflite_reader import Graph, Operator, model_bytes, read_model

LSTM = "UNIDIRECTIONAL_SEQUENCE_LSTM"
# Stand-ins for a dynamic T while following shapes: primes, so no other dimension is a multiple of
# them and a time axis cannot be confused with another; the second one double-checks that a slice
# selects the same timesteps (the last, or all) whatever T is.
DYNAMIC_T = (7919, 7907)

_UNARY = {"QUANTIZE", "DEQUANTIZE", "LOGISTIC", "TANH", "RELU", "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1",
          "LEAKY_RELU", "HARD_SWISH", "ELU", "ABS", "NEG", "CAST", "EXP", "LOG", "SQRT", "RSQRT", "SQUARE"}
_LAST_AXIS = {"SOFTMAX", "LOG_SOFTMAX"}
_BINARY = {"ADD", "SUB", "MUL", "DIV", "MAXIMUM", "MINIMUM", "SQUARED_DIFFERENCE", "PRELU"}
_REDUCE = {"MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD"}
_CONV = {"CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D", "AVERAGE_POOL_2D"}
# ops that compute a RESHAPE's shape from a SHAPE at run time (dynamic T)
_SHAPE_MATH = {"GATHER", "REDUCE_PROD", "PACK", "CONCATENATION", "STRIDED_SLICE", "CAST"}


@dataclass(frozen=True)
class TimeDim:
    """A dimension of size outer * T * inner: the time axis, possibly merged with its neighbours
    (a [B, T, H] -> [B*T, H] reshape gives outer B; a Flatten of [T, F] gives inner F)."""

    outer: int = 1
    inner: int = 1

    def size(self, t: int) -> int:
        return self.outer * t * self.inner


Dim = Union[int, TimeDim]
Shape = tuple  # of Dim


def _conc(shape, t: int) -> tuple[int, ...]:
    return tuple(d.size(t) if isinstance(d, TimeDim) else int(d) for d in shape)


def _time_axis(shape) -> Optional[int]:
    axes = [k for k, d in enumerate(shape) if isinstance(d, TimeDim)]
    return axes[0] if axes else None


class _Refuse(Exception):
    def __init__(self, op: Optional[Operator], reason: str):
        super().__init__(reason)
        self.op, self.reason = op, reason

    def error(self) -> ConversionError:
        if self.op is None:
            return ConversionError(f"cannot stream this model: {self.reason}", reason=self.reason)
        where = self.op.describe()
        return ConversionError(f"cannot stream {where}: {self.reason}", layer=where, reason=self.reason)


@dataclass
class _Sym:
    """The value of an int32 tensor computed from a SHAPE: a scalar or a vector of dimensions."""

    dims: list
    scalar: bool = False


@dataclass
class StreamPlan:
    """What `streaming_model` changes, worked out on the full model's graph."""

    t: Optional[int]                                 # the full model's T (None: dynamic)
    input_axes: dict[int, int]                       # model input tensor -> its time axis
    shapes: dict[int, Shape]                         # every tensor carrying the time axis
    constants: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)   # (op, input slot) -> values
    options: dict[tuple[int, str], object] = field(default_factory=dict)         # (op, schema field) -> value
    dropped_ops: list[int] = field(default_factory=list)   # shape arithmetic folded into constants


class _Follower:
    """Follows the time axis from the model inputs through every operator, in graph order."""

    def __init__(self, g: Graph, input_axes: dict[int, int], t: Optional[int]):
        self.g, self.t = g, t
        self.ta = t if t is not None else DYNAMIC_T[0]
        self.shapes: dict[int, Shape] = {}
        self.syms: dict[int, _Sym] = {}
        self.plan = StreamPlan(t, dict(input_axes), self.shapes)
        self.shape_math: set[int] = set()
        for i, a in input_axes.items():
            s = list(self._stored(i))
            s[a] = TimeDim()
            self.shapes[i] = tuple(s)

    # -- helpers ------------------------------------------------------------------------------------
    def _stored(self, i: int) -> tuple[int, ...]:
        t = self.g.tensors[i]
        sig = t.shape_signature if len(t.shape_signature) == len(t.shape) else t.shape
        return tuple(int(d) for d in sig)

    def _const(self, op: Operator, k: int, what: str) -> np.ndarray:
        if k >= len(op.inputs) or op.inputs[k] == -1:
            raise _Refuse(op, f"has no {what} input")
        t = self.g.tensors[op.inputs[k]]
        if t.data is None:
            raise _Refuse(op, f"its {what} ({t.describe()}) is computed at run time, not a constant")
        return np.asarray(t.data)

    def _set(self, op: Operator, k: int, shape) -> None:
        """Record output k's shape after checking it against what the flatbuffer says at the full T
        (for a dynamic T, the shape_signature's known entries)."""
        o = op.outputs[k]
        t = self.g.tensors[o]
        got = _conc(shape, self.ta)
        if self.t is not None:
            want = tuple(int(d) for d in t.shape)
            ok = got == want
        else:
            want = self._stored(o)
            ok = len(got) == len(want) and all(w == -1 or w == d for w, d in zip(want, got))
        if not ok:
            raise _Refuse(op, f"output {t.describe()}: the time axis was followed to shape {list(got)}, the model "
                              f"stores {list(want)}")
        if _time_axis(shape) is not None:
            self.shapes[o] = tuple(shape)

    @staticmethod
    def _axis(shape) -> tuple[int, TimeDim]:
        a = _time_axis(shape)
        return a, shape[a]

    def _norm_axes(self, op: Operator, axes, rank: int) -> list[int]:
        out = []
        for v in np.asarray(axes).reshape(-1).tolist():
            v = int(v)
            if not -rank <= v < rank:
                raise _Refuse(op, f"axis {v} is out of range for rank {rank}")
            out.append(v % rank)
        return out

    # -- driver -------------------------------------------------------------------------------------
    def run(self) -> StreamPlan:
        for op in self.g.operators:
            carrying = [i for i in op.inputs if i in self.shapes]
            symbolic = [i for i in op.inputs if i in self.syms]
            if op.opcode == LSTM:
                self._lstm(op)
            elif not carrying and not symbolic:
                continue  # after the last-timestep slice, or independent of the input: unchanged
            elif symbolic and not carrying and op.opcode != "RESHAPE":
                self._shape_math(op)
            else:
                handler = getattr(self, "_op_" + op.opcode.lower(), None)
                if handler is None:
                    for group, name in ((_UNARY, "_unary"), (_BINARY, "_binary"), (_REDUCE, "_reduce"),
                                        (_CONV, "_window"), (_LAST_AXIS, "_last_axis")):
                        if op.opcode in group:
                            handler = getattr(self, name)
                            break
                if handler is None:
                    raise _Refuse(op, f"{op.opcode} on a tensor carrying the time axis has no streaming rule "
                                      f"({self.g.tensors[carrying[0]].describe()})")
                handler(op)
        self._drop_shape_math()
        return self.plan

    # -- the LSTM -----------------------------------------------------------------------------------
    def _lstm(self, op: Operator) -> None:
        x = op.inputs[0]
        major = bool(op.options.get("time_major", False))
        seq = 0 if major else 1
        if x not in self.shapes:
            raise _Refuse(op, f"its input {self.g.tensors[x].describe()} does not carry the model input's time "
                              "axis: it runs over a sequence that is not the stream (a repeated vector, a "
                              "fixed window...), so carrying its state across invokes would be wrong")
        shape = self.shapes[x]
        a = _time_axis(shape)
        if len(shape) != 3 or a != seq or shape[a] != TimeDim():
            raise _Refuse(op, f"its input's time axis is axis {a} of shape {list(_conc(shape, self.ta))} "
                              f"(stored as {'time' if major else 'batch'}-major), not the LSTM's sequence axis {seq}")
        out = list(self._stored(op.outputs[0]))
        out[seq] = TimeDim()
        self._set(op, 0, out)

    # -- elementwise --------------------------------------------------------------------------------
    def _unary(self, op: Operator) -> None:
        self._set(op, 0, self.shapes[op.inputs[0]])

    def _last_axis(self, op: Operator) -> None:
        shape = self.shapes[op.inputs[0]]
        if _time_axis(shape) == len(shape) - 1:
            raise _Refuse(op, f"{op.opcode} normalizes over the last axis, which is the time axis")
        self._set(op, 0, shape)

    def _binary(self, op: Operator) -> None:
        ins = [i for i in op.inputs[:2] if i != -1]
        shapes = [self.shapes.get(i, self._stored(i)) for i in ins]
        rank = max(len(s) for s in shapes)
        padded = [(1,) * (rank - len(s)) + tuple(s) for s in shapes]
        out = []
        for k in range(rank):
            col = [s[k] for s in padded]
            times = {d for d in col if isinstance(d, TimeDim)}
            if not times:
                out.append(max(int(d) for d in col))
                continue
            if len(times) > 1:
                raise _Refuse(op, "its operands carry the time axis merged differently")
            td = next(iter(times))
            for i, d in zip(ins, col):
                if not isinstance(d, TimeDim) and d != 1:
                    raise _Refuse(op, f"operand {self.g.tensors[i].describe()} has {d} entries along the time "
                                      "axis but does not come from the input: it varies over the timesteps")
            out.append(td)
        self._set(op, 0, out)

    # -- matrix, window and reduction ops -----------------------------------------------------------
    def _op_fully_connected(self, op: Operator) -> None:
        shape = self.shapes[op.inputs[0]]
        a, td = self._axis(shape)
        w = self.g.tensors[op.inputs[1]]
        k_in = int(w.shape[-1]) if len(w.shape) else -1
        if a == len(shape) - 1:
            raise _Refuse(op, "it multiplies across the time axis (a Dense after a Flatten over time): each output "
                              "needs every timestep")
        if _conc(shape, self.ta)[-1] != k_in:
            raise _Refuse(op, f"it flattens its input into rows of {k_in} values, not along the last axis; this "
                              "rewrite follows only a Dense on the last axis")
        units = int(self._stored(op.outputs[0])[-1])
        if op.options.get("keep_num_dims", False):
            out = list(shape[:-1]) + [units]
        else:
            ints = _conc(shape, self.ta)
            out = [TimeDim(td.outer * math.prod(ints[:a]), td.inner * math.prod(ints[a + 1:-1])), units]
        self._set(op, 0, out)

    def _window(self, op: Operator) -> None:
        """CONV_2D, DEPTHWISE_CONV_2D, MAX/AVERAGE_POOL_2D on NHWC: fine when the window along the time
        axis is one sample with stride 1, so each output position sees its own timestep only."""
        shape = self.shapes[op.inputs[0]]
        a, td = self._axis(shape)
        if len(shape) != 4 or a == 3:
            raise _Refuse(op, f"the time axis is axis {a} of a rank-{len(shape)} input, not a spatial axis")
        out = list(self._stored(op.outputs[0]))
        if a in (1, 2):
            o = op.options
            if op.opcode in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
                window = int(o.get("filter_height" if a == 1 else "filter_width", 1))
            else:
                window = int(self.g.tensors[op.inputs[1]].shape[a])
            stride = int(o.get("stride_h" if a == 1 else "stride_w", 1))
            if window != 1 or stride != 1:
                what = "pools" if "POOL" in op.opcode else "convolves"
                raise _Refuse(op, f"it {what} over the time axis with a window of {window} and stride {stride} "
                                  "(Conv1D/pooling over time): each output needs past timesteps (or skips some), "
                                  "which a single-step model does not have")
        out[a] = td
        self._set(op, 0, out)

    def _reduce(self, op: Operator) -> None:
        shape = self.shapes[op.inputs[0]]
        a, _ = self._axis(shape)
        axes = self._norm_axes(op, self._const(op, 1, "axes"), len(shape))
        if a in axes:
            raise _Refuse(op, f"{op.opcode} over the time axis (global pooling over time) needs the whole sequence")
        keep = bool(op.options.get("keep_dims", False))
        out = [1 if k in axes else d for k, d in enumerate(shape)] if keep else \
            [d for k, d in enumerate(shape) if k not in axes]
        self._set(op, 0, out)

    # -- data movement ------------------------------------------------------------------------------
    def _follow_reshape(self, op: Operator, shape, out_conc: tuple[int, ...]) -> list:
        """Where the time axis of `shape` lands in the row-major reshape to `out_conc`: the output axis
        whose index range holds the whole block of T timesteps (else the reshape splits time)."""
        a, td = self._axis(shape)
        ints = _conc(shape, self.ta)
        stride = td.inner * math.prod(ints[a + 1:])
        span = stride * self.ta
        suffix = 1
        for b in range(len(out_conc) - 1, -1, -1):
            n = out_conc[b]
            if suffix <= stride and stride % suffix == 0 and suffix * n >= span and (suffix * n) % span == 0:
                out: list = list(out_conc)
                out[b] = TimeDim(outer=suffix * n // span, inner=stride // suffix)
                return out
            suffix *= n
        raise _Refuse(op, f"it reshapes {list(ints)} to {list(out_conc)}, splitting the time axis")

    def _op_reshape(self, op: Operator) -> None:
        shape = self.shapes.get(op.inputs[0])
        if shape is None:
            raise _Refuse(op, "its shape depends on the time axis but its data does not")
        shp = op.inputs[1] if len(op.inputs) > 1 else -1
        in_conc = _conc(shape, self.ta)
        if shp != -1 and shp in self.syms:
            target = self.syms[shp].dims
            target_conc = [d.size(self.ta) if isinstance(d, TimeDim) else int(d) for d in target]
        elif shp != -1 and self.g.tensors[shp].data is not None:
            target_conc = [int(v) for v in np.asarray(self.g.tensors[shp].data).reshape(-1)]
            target = None
        elif shp == -1 and len(op.options.get("new_shape", ())):
            target_conc = [int(v) for v in op.options["new_shape"]]
            target = None
        else:
            raise _Refuse(op, "its new shape is computed by ops this rewrite cannot follow")
        try:
            out_conc = reshape_output_shape(in_conc, target_conc)
        except ValueError as exc:
            raise _Refuse(op, str(exc)) from None
        out = self._follow_reshape(op, shape, out_conc)
        b = _time_axis(out)

        def step_target(conc: list[int]) -> np.ndarray:
            new = list(conc)
            if new[b] != -1:
                new[b] = out[b].size(1)
            return np.asarray(new, dtype=np.int32)

        if target is not None:
            # computed at run time for a dynamic T: fold it into a constant (the arithmetic is dropped)
            new_target = np.asarray([d.size(1) if isinstance(d, TimeDim) else int(d) for d in target], np.int32)
        else:
            new_target = step_target(target_conc)
        try:
            ok = reshape_output_shape(_conc(shape, 1), new_target.tolist()) == _conc(out, 1)
        except ValueError:
            ok = False
        if not ok:
            raise _Refuse(op, f"its new shape {target_conc} cannot be followed to one timestep")
        if shp != -1 and (target is not None or new_target.tolist() != target_conc):
            self.plan.constants[(op.index, 1)] = new_target
        if len(op.options.get("new_shape", ())) == len(out):
            self.plan.options[(op.index, "newShape")] = step_target(
                [int(v) for v in op.options["new_shape"]]).tolist()
        self._set(op, 0, out)

    def _op_squeeze(self, op: Operator) -> None:
        shape = self.shapes[op.inputs[0]]
        ints = _conc(shape, self.ta)
        dims = self._norm_axes(op, op.options.get("squeeze_dims", ()), len(shape))
        if not dims:
            # at T = 1 "squeeze every 1" would squeeze the time axis too: name the axes explicitly
            dims = [k for k, n in enumerate(ints) if n == 1]
            self.plan.options[(op.index, "squeezeDims")] = dims
        if _time_axis(shape) in dims:
            raise _Refuse(op, "it squeezes the time axis")
        out_conc = tuple(n for k, n in enumerate(ints) if k not in dims)
        self._set(op, 0, self._follow_reshape(op, shape, out_conc))

    def _op_expand_dims(self, op: Operator) -> None:
        shape = self.shapes[op.inputs[0]]
        ints = list(_conc(shape, self.ta))
        axis = int(np.asarray(self._const(op, 1, "axis")).reshape(-1)[0])
        axis = axis + len(ints) + 1 if axis < 0 else axis
        self._set(op, 0, self._follow_reshape(op, shape, tuple(ints[:axis] + [1] + ints[axis:])))

    def _op_transpose(self, op: Operator) -> None:
        shape = self.shapes[op.inputs[0]]
        perm = self._norm_axes(op, self._const(op, 1, "permutation"), len(shape))
        self._set(op, 0, [shape[p] for p in perm])

    def _op_reverse_v2(self, op: Operator) -> None:
        shape = self.shapes[op.inputs[0]]
        axes = self._norm_axes(op, self._const(op, 1, "axis"), len(shape))
        if _time_axis(shape) in axes:
            raise _Refuse(op, "REVERSE_V2 reverses the time axis (the backward direction of a bidirectional "
                              "layer): its first output needs the last input, i.e. the future")
        self._set(op, 0, shape)

    def _op_concatenation(self, op: Operator) -> None:
        ins = [i for i in op.inputs if i != -1]
        shapes = [self.shapes.get(i) for i in ins]
        first = next(s for s in shapes if s is not None)
        a = _time_axis(first)
        axis = self._norm_axes(op, [op.options.get("axis", 0)], len(first))[0]
        if axis == a:
            raise _Refuse(op, "it concatenates along the time axis")
        for i, s in zip(ins, shapes):
            if s is None or _time_axis(s) != a or s[a] != first[a]:
                raise _Refuse(op, f"input {self.g.tensors[i].describe()} does not carry the time axis like the "
                                  "others: it would be repeated unchanged at every timestep")
        out = list(first)
        out[axis] = sum(int(_conc(s, self.ta)[axis]) for s in shapes)
        self._set(op, 0, out)

    def _op_gather(self, op: Operator) -> None:
        if op.inputs[0] not in self.shapes:
            raise _Refuse(op, "its indices depend on the time axis")
        shape = self.shapes[op.inputs[0]]
        axis = self._norm_axes(op, [op.options.get("axis", 0)], len(shape))[0]
        idx = self._const(op, 1, "indices")
        if axis == _time_axis(shape) or int(op.options.get("batch_dims", 0)) != 0:
            raise _Refuse(op, "it gathers along the time axis")
        self._set(op, 0, list(shape[:axis]) + list(idx.shape) + list(shape[axis + 1:]))

    def _op_shape(self, op: Operator) -> None:
        self.syms[op.outputs[0]] = _Sym(list(self.shapes[op.inputs[0]]))
        self.shape_math.add(op.index)

    # -- slices -------------------------------------------------------------------------------------
    def _selected(self, op: Operator, spec: SliceSpec, shape, a: int, t: int) -> tuple[list[int], bool, int]:
        """(the timesteps a slice of `shape` at time length t selects, whether it drops the time axis,
        the output axis they land on)."""
        conc = _conc(shape, t)
        try:
            _, _, slices = spec.plan(conc)
            axes = spec.effective_axes(len(conc))
        except ValueError as exc:
            raise _Refuse(op, str(exc)) from None
        pos = 0
        for (kind, j, d), sl in zip(axes, slices):
            shrunk = kind == "spec" and bool((spec.shrink_axis_mask >> j) & 1)
            if d == a:
                return list(range(t))[sl], shrunk, pos
            pos += 0 if shrunk else 1
        raise _Refuse(op, "no slice entry addresses the time axis")

    def _op_strided_slice(self, op: Operator) -> None:
        shape = self.shapes.get(op.inputs[0])
        if shape is None:
            raise _Refuse(op, "its bounds depend on the time axis")
        a, td = self._axis(shape)
        vals = [tuple(int(v) for v in self._const(op, k, n).reshape(-1)) for k, n in
                ((1, "begin"), (2, "end"), (3, "strides"))]
        o = op.options
        masks = {k: int(o.get(k, 0)) & 0xFFFFFFFF for k in
                 ("begin_mask", "end_mask", "shrink_axis_mask", "ellipsis_mask", "new_axis_mask")}
        spec = SliceSpec(*vals, **masks, offset=bool(o.get("offset", False)))
        entry = next((j for kind, j, d in spec.effective_axes(len(shape)) if d == a and kind == "spec"), None)
        sizes = [self.ta] + ([DYNAMIC_T[1]] if self.t is None else [])
        kinds = set()
        for t in sizes:
            sel, shrunk, pos = self._selected(op, spec, shape, a, t)
            kinds.add("all" if sel == list(range(t)) and not shrunk else "last" if sel == [t - 1] else "other")
        if len(kinds) != 1 or "other" in kinds or (td != TimeDim()):
            sel, _, _ = self._selected(op, spec, shape, a, self.ta)
            shown = f"{sel[:4]}{'...' if len(sel) > 4 else ''}"
            raise _Refuse(op, f"it takes timesteps {shown} of {self.t or 'T (dynamic)'}, not the whole sequence "
                              "nor only its last step: the output at a step would need other steps")
        kind = kinds.pop()
        out_conc, _, _ = spec.plan(_conc(shape, self.ta))
        out: list = list(out_conc)
        if kind == "all":
            out[pos] = td
        try:
            rewrite = self._selected(op, spec, shape, a, 1)[0] != [0]
        except _Refuse:  # e.g. begin T-1 is out of range at T = 1
            rewrite = True
        if rewrite and entry is not None:
            # at T = 1 the bounds must select timestep 0: write them out explicitly
            begin, end, strides = (list(v) for v in vals)
            begin[entry], end[entry], strides[entry] = 0, 1, 1
            for k, arr, old in ((1, begin, vals[0]), (2, end, vals[1]), (3, strides, vals[2])):
                if tuple(arr) != old:
                    self.plan.constants[(op.index, k)] = np.asarray(arr, dtype=self._const(op, k, "bound").dtype)
            # begin 0, end (or size, for an offset slice) 1 and no masks on that entry
            bit = ~(1 << entry) & 0xFFFFFFFF
            for name, key in (("beginMask", "begin_mask"), ("endMask", "end_mask")):
                if masks[key] & bit != masks[key]:
                    self.plan.options[(op.index, name)] = masks[key] & bit
        self._set(op, 0, out)

    def _op_slice(self, op: Operator) -> None:
        shape = self.shapes.get(op.inputs[0])
        if shape is None:
            raise _Refuse(op, "its bounds depend on the time axis")
        a, td = self._axis(shape)
        begin = [int(v) for v in self._const(op, 1, "begin").reshape(-1)]
        size = [int(v) for v in self._const(op, 2, "size").reshape(-1)]
        if len(begin) != len(shape) or len(size) != len(shape):
            raise _Refuse(op, "begin and size need one entry per input axis")
        b, s = begin[a], size[a]
        full = b == 0 and (s == -1 or (self.t is not None and s == self.t))
        last = self.t is not None and b == self.t - 1 and s in (1, -1)
        if td != TimeDim() or not (full or last):
            raise _Refuse(op, f"it takes timesteps [{b}, {b + s if s != -1 else 'end'}) of {self.ta}, not the whole "
                              "sequence nor only its last step")
        out = list(self._stored(op.outputs[0]))
        if full:
            out[a] = td
        new_begin, new_size = list(begin), list(size)
        new_begin[a], new_size[a] = 0, (-1 if s == -1 else 1)
        for k, new, old in ((1, new_begin, begin), (2, new_size, size)):
            if new != old:
                self.plan.constants[(op.index, k)] = np.asarray(new, dtype=self._const(op, k, "bound").dtype)
        self._set(op, 0, out)

    # -- shape arithmetic for a dynamic T -----------------------------------------------------------
    def _value(self, op: Operator, i: int) -> _Sym:
        if i in self.syms:
            return self.syms[i]
        t = self.g.tensors[i]
        if t.data is None:
            raise _Refuse(op, f"mixes the computed shape with {t.describe()}, which this rewrite cannot follow")
        a = np.asarray(t.data)
        return _Sym([int(v) for v in a.reshape(-1)], scalar=a.ndim == 0)

    def _shape_math(self, op: Operator) -> None:
        if op.opcode not in _SHAPE_MATH or len(op.outputs) != 1:
            raise _Refuse(op, f"{op.opcode} on a shape computed from the time axis has no streaming rule")
        ins = [self._value(op, i) for i in op.inputs if i != -1]
        if op.opcode == "GATHER":
            idx = self._const(op, 1, "indices")
            res = _Sym([ins[0].dims[int(k)] for k in idx.reshape(-1)], scalar=idx.ndim == 0)
        elif op.opcode == "REDUCE_PROD":
            dims, outer, inner, td = ins[0].dims, 1, 1, None
            for d in dims:
                if isinstance(d, TimeDim):
                    td = d
                elif td is None:
                    outer *= int(d)
                else:
                    inner *= int(d)
            v = TimeDim(outer * td.outer, td.inner * inner) if td else outer * inner
            res = _Sym([v], scalar=not op.options.get("keep_dims", False))
        elif op.opcode in ("PACK", "CONCATENATION"):
            res = _Sym([d for s in ins for d in s.dims])
        elif op.opcode == "CAST":
            res = ins[0]
        else:  # STRIDED_SLICE of a shape vector
            vals = [tuple(int(v) for v in self._const(op, k, "bound").reshape(-1)) for k in (1, 2, 3)]
            o = op.options
            spec = SliceSpec(*vals, **{k: int(o.get(k, 0)) & 0xFFFFFFFF for k in
                                       ("begin_mask", "end_mask", "shrink_axis_mask", "ellipsis_mask",
                                        "new_axis_mask")}, offset=bool(o.get("offset", False)))
            try:
                out_shape, _, slices = spec.plan((len(ins[0].dims),))
            except ValueError as exc:
                raise _Refuse(op, str(exc)) from None
            picked = list(range(len(ins[0].dims)))[slices[0]]
            res = _Sym([ins[0].dims[k] for k in picked], scalar=len(out_shape) == 0)
        self.syms[op.outputs[0]] = res
        self.shape_math.add(op.index)

    def _drop_shape_math(self) -> None:
        """Drop the shape arithmetic no longer read once its RESHAPE shapes are constants."""
        folded = {(i, k) for (i, k) in self.plan.constants}
        reads: dict[int, int] = {}
        for op in self.g.operators:
            for k, i in enumerate(op.inputs):
                if i != -1 and (op.index, k) not in folded:
                    reads[i] = reads.get(i, 0) + 1
        for o in self.g.outputs:
            reads[o] = reads.get(o, 0) + 1
        dropped: set[int] = set()
        changed = True
        while changed:
            changed = False
            for op in reversed(self.g.operators):
                if op.index in self.shape_math and op.index not in dropped and \
                        all(reads.get(o, 0) == 0 for o in op.outputs):
                    dropped.add(op.index)
                    changed = True
                    for k, i in enumerate(op.inputs):
                        if i != -1 and (op.index, k) not in folded:
                            reads[i] -= 1
        self.plan.dropped_ops = sorted(dropped)


def _candidates(g: Graph) -> list[dict[int, int]]:
    """Possible time axes of the model inputs, most plausible first: axis 1 (batch-major), then 0
    (time-major), then the rest; only axes of a length above 1 (or dynamic)."""
    per_input = []
    for i in g.inputs:
        t = g.tensors[i]
        sig = t.shape_signature if len(t.shape_signature) == len(t.shape) else t.shape
        order = [1, 0] + list(range(2, len(sig)))
        dynamic = -1 in list(sig)
        axes = [k for k in order if k < len(sig) and (sig[k] == -1 if dynamic else sig[k] > 1)]
        per_input.append([(i, k) for k in axes] + [None])
    out = []
    for combo in itertools.product(*per_input):
        chosen = {c[0]: c[1] for c in combo if c is not None}
        if chosen:
            out.append(chosen)
    return out


def plan_streaming(source: Union[bytes, str, Path]) -> StreamPlan:
    """The rewrite `streaming_model` applies, or a ConversionError naming the op that cannot stream."""
    raw = model_bytes(source)
    g = read_model(raw)
    import tflite

    if int(tflite.Model.GetRootAsModel(raw, 0).SubgraphsLength()) > 1:
        raise ConversionError("cannot stream this model: it has more than one subgraph (an LSTM the converter "
                              "did not fuse into UNIDIRECTIONAL_SEQUENCE_LSTM)", reason="not fused")
    if not any(op.opcode == LSTM for op in g.operators):
        raise ConversionError("cannot stream this model: it has no UNIDIRECTIONAL_SEQUENCE_LSTM, so there is "
                              "no state to carry from one step to the next", reason="no LSTM")
    seq_lengths = set()
    for op in g.operators:
        if op.opcode == LSTM:
            x = g.tensors[op.inputs[0]]
            sig = x.shape_signature if len(x.shape_signature) == len(x.shape) else x.shape
            if len(sig) == 3:
                seq_lengths.add(int(sig[0 if op.options.get("time_major", False) else 1]))
    if seq_lengths == {1}:
        raise ConversionError("cannot stream this model: it already takes one timestep per invoke (T = 1); "
                              "run it with the state carried across invokes (reset=False)", reason="T = 1")
    first: Optional[_Refuse] = None
    for axes in _candidates(g):
        lengths = set()
        for i, a in axes.items():
            t = g.tensors[i]
            sig = t.shape_signature if len(t.shape_signature) == len(t.shape) else t.shape
            lengths.add(int(sig[a]))
            if any(d == -1 for k, d in enumerate(sig) if k != a):
                first = first or _Refuse(None, f"input {t.describe()} has a dynamic dimension besides time "
                                               f"(axis {a}); fix the batch size first")
                lengths.clear()
                break
        if len(lengths) != 1:
            continue
        t_len = lengths.pop()
        try:
            return _Follower(g, axes, None if t_len == -1 else t_len).run()
        except _Refuse as exc:
            first = first or exc
    if first is not None:
        raise first.error()
    raise ConversionError("cannot stream this model: no model input has a time axis reaching the LSTM",
                          reason="no time axis")


def _schema():
    try:
        from ai_edge_litert import schema_py_generated as S
    except ImportError:
        raise ConversionError("writing the streaming model needs the .tflite schema's object API from "
                              "ai-edge-litert: pip install \"edgelstm[litert]\"",
                              reason="ai-edge-litert missing") from None
    return S


def streaming_model(model: Union[bytes, str, Path]) -> bytes:
    """The single-step (T = 1) variant of a full-sequence int8 LSTM model (bytes or a path): same
    weights and quantization, LSTM state carried across invokes. Feeding x[:, k:k+1] at invoke k
    gives, bit for bit, the full model's output for the sequence ending at step k (seq2seq: its
    step k). ConversionError, naming the op and the reason, for what cannot stream."""
    raw = model_bytes(model)
    plan = plan_streaming(raw)
    S = _schema()
    from .flatbuffer import pack

    m = S.ModelT.InitFromPackedBuf(bytearray(raw), 0)
    sg = m.subgraphs[0]
    for i, shape in plan.shapes.items():
        t = sg.tensors[i]
        new = np.asarray(_conc(shape, 1), dtype=np.int32)
        t.shape = new
        if t.shapeSignature is not None and len(t.shapeSignature):
            t.shapeSignature = new.copy()
    for (op_index, slot), values in sorted(plan.constants.items()):
        op = sg.operators[op_index]
        old = sg.tensors[op.inputs[slot]]
        buf = S.BufferT()
        buf.data = np.frombuffer(np.ascontiguousarray(values).tobytes(), dtype=np.uint8)
        m.buffers.append(buf)
        t = S.TensorT()
        t.shape = np.asarray(values.shape, dtype=np.int32)
        t.type = {np.dtype(np.int32): S.TensorType.INT32, np.dtype(np.int64): S.TensorType.INT64}[values.dtype]
        t.buffer = len(m.buffers) - 1
        t.name = (old.name.decode() if isinstance(old.name, bytes) else str(old.name)) + "/stream"
        sg.tensors.append(t)
        inputs = list(op.inputs)
        inputs[slot] = len(sg.tensors) - 1
        op.inputs = inputs
    for (op_index, name), value in plan.options.items():
        op = sg.operators[op_index]
        if op.builtinOptions is None:
            if name != "squeezeDims":
                continue
            op.builtinOptions = S.SqueezeOptionsT()
            op.builtinOptionsType = S.BuiltinOptions.SqueezeOptions
        setattr(op.builtinOptions, name, value)
    if plan.dropped_ops:
        keep = set(range(len(sg.operators))) - set(plan.dropped_ops)
        sg.operators = [op for k, op in enumerate(sg.operators) if k in keep]
    out = pack(m)
    try:
        read_model(out)
    except ModelError as exc:  # a rewrite bug, never the user's model
        raise ConversionError(f"the streaming rewrite produced an invalid model: {exc}") from None
    return out


def summarize(full: Union[bytes, str, Path], step: bytes) -> dict:
    """What changed between a full model and its streaming model, for `edgelstm stream`."""
    raw = model_bytes(full)
    plan = plan_streaming(raw)
    g, s = read_model(raw), read_model(step)

    def io(indices_full, indices_step):
        out = []
        for i, j in zip(indices_full, indices_step):
            out.append({"name": g.tensors[i].name, "full": list(g.tensors[i].shape_signature),
                        "step": list(s.tensors[j].shape), "time_axis": _time_axis(plan.shapes.get(i, ()))})
        return out

    return {"time_steps": plan.t, "inputs": io(g.inputs, s.inputs), "outputs": io(g.outputs, s.outputs),
            "rewritten_shapes": len(plan.shapes), "rewritten_constants": len(plan.constants),
            "dropped_ops": [g.operators[k].describe() for k in plan.dropped_ops]}


def render(path: str, info: dict) -> str:
    t = info["time_steps"]
    lines = [f"{path}: T = {t if t is not None else 'dynamic'} -> one timestep per invoke, LSTM state carried "
             "across invokes (reset between sequences)"]
    for kind in ("inputs", "outputs"):
        for e in info[kind]:
            what = "" if kind == "inputs" else (
                "  (step k's own output)" if e["time_axis"] is not None else
                "  (after step k: the full model's output for the sequence ending at k)")
            lines.append(f"  {kind[:-1]:<6} '{e['name']}' {e['full']} -> {e['step']}{what}")
    lines.append(f"  rewrote {info['rewritten_shapes']} tensor shapes and {info['rewritten_constants']} constants"
                 + (f"; dropped {len(info['dropped_ops'])} shape ops" if info["dropped_ops"] else ""))
    return "\n".join(lines)
