"""The planner: pick the model inputs' time axes, follow them through every operator with the shape
rules, and return the StreamPlan (or the refusal of the first op that cannot stream)."""
from __future__ import annotations

import itertools
from pathlib import Path
from typing import Optional, Union

import tflite

from ... import lstm_shared
from ...errors import ConversionError
from ...tflite_reader import Graph, model_bytes, read_model
from . import movement, rules, shape_math, slices
from .timeaxis import Refusal, StreamPlan, stored_shape
from .trace import Rule, Trace

# Opcode -> shape rule, for ops whose input carries the time axis.
RULES: dict[str, Rule] = {**rules.RULES, **movement.RULES, **slices.RULES, **shape_math.RULES}


def follow(g: Graph, input_axes: dict[int, int], t: Optional[int]) -> StreamPlan:
    """Follow the time axis from the model inputs (input tensor -> axis; full length t, None if
    dynamic) through every operator, in graph order."""
    s = Trace(g, input_axes, t)
    for op in g.operators:
        carrying = [i for i in op.inputs if i in s.shapes]
        symbolic = [i for i in op.inputs if i in s.syms]
        if op.opcode == lstm_shared.OPCODE:
            rules.lstm(s, op)  # even when its input does not carry the time axis: that is refused
        elif not carrying and not symbolic:
            continue  # after the last-timestep slice, or independent of the input: unchanged
        elif symbolic and not carrying and op.opcode != "RESHAPE":
            shape_math.fold(s, op)
        else:
            rule = RULES.get(op.opcode)
            if rule is None:
                raise Refusal(op, f"{op.opcode} on a tensor carrying the time axis has no streaming rule "
                                  f"({g.tensors[carrying[0]].describe()})")
            rule(s, op)
    shape_math.drop_unread(s)
    return s.plan


def candidates(g: Graph) -> list[dict[int, int]]:
    """Possible time axes of the model inputs, most plausible first: axis 1 (batch-major), then 0
    (time-major), then the rest; only axes of a length above 1 (or dynamic)."""
    per_input = []
    for i in g.inputs:
        sig = stored_shape(g.tensors[i])
        order = [1, 0] + list(range(2, len(sig)))
        dynamic = -1 in sig
        axes = [k for k in order if k < len(sig) and (sig[k] == -1 if dynamic else sig[k] > 1)]
        per_input.append([(i, k) for k in axes] + [None])
    out = []
    for combo in itertools.product(*per_input):
        chosen = {c[0]: c[1] for c in combo if c is not None}
        if chosen:
            out.append(chosen)
    return out


def _check_streamable(raw: bytes, g: Graph) -> None:
    """What rules out streaming before any op is looked at."""
    if int(tflite.Model.GetRootAsModel(raw, 0).SubgraphsLength()) > 1:
        raise ConversionError("cannot stream this model: it has more than one subgraph (an LSTM the converter "
                              "did not fuse into UNIDIRECTIONAL_SEQUENCE_LSTM)", reason="not fused")
    lstms = [op for op in g.operators if op.opcode == lstm_shared.OPCODE]
    if not lstms:
        raise ConversionError("cannot stream this model: it has no UNIDIRECTIONAL_SEQUENCE_LSTM, so there is "
                              "no state to carry from one step to the next", reason="no LSTM")
    seq_lengths = set()
    for op in lstms:
        sig = stored_shape(g.tensors[op.inputs[lstm_shared.INPUT]])
        if len(sig) == 3:
            seq_lengths.add(sig[0 if op.options.get("time_major", False) else 1])
    if seq_lengths == {1}:
        raise ConversionError("cannot stream this model: it already takes one timestep per invoke (T = 1); "
                              "run it with the state carried across invokes (reset=False)", reason="T = 1")


def plan_streaming(source: Union[bytes, str, Path]) -> StreamPlan:
    """The rewrite `streaming_model` applies, or a ConversionError naming the op that cannot stream."""
    raw = model_bytes(source)
    g = read_model(raw)
    _check_streamable(raw, g)
    first: Optional[Refusal] = None
    for axes in candidates(g):
        lengths = set()
        for i, a in axes.items():
            t = g.tensors[i]
            sig = stored_shape(t)
            lengths.add(sig[a])
            if any(d == -1 for k, d in enumerate(sig) if k != a):
                first = first or Refusal(None, f"input {t.describe()} has a dynamic dimension besides time "
                                               f"(axis {a}); fix the batch size first")
                lengths.clear()
                break
        if len(lengths) != 1:
            continue
        t_len = lengths.pop()
        try:
            return follow(g, axes, None if t_len == -1 else t_len)
        except Refusal as exc:
            first = first or exc
    if first is not None:
        raise first.error()
    raise ConversionError("cannot stream this model: no model input has a time axis reaching the LSTM",
                          reason="no time axis")
