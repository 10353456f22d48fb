"""Rewrite the LSTM quantization parameters that LiteRT mishandles (litert_vs_tflm.md sections 2, 3, 7).

1. Cell-state scale below 2^-15: LiteRT's integer tanh dispatches only 0..6 integer bits and
   silently skips tanh(c) otherwise (h then comes from the input gate). Raising the scale to 2^-15
   loses nothing the int16 cell needs (|c| < 1 still has 15 fraction bits) and fixes LiteRT.
2. Hidden state: LiteRT writes h with the parameters of intermediate 4, reads it back with those of
   input 18 and copies it to output 0 unchanged; TFLite Micro uses input 18 throughout. The
   converter calibrates the three separately (input 18 only on the last step of each sample,
   intermediate 4 without extending its range to 0), so they differ on bidirectional models. We
   give all three one set of parameters covering the whole hidden range observed in the float model
   and 0, and give the same set to every tensor joined to them by byte-copying ops (STRIDED_SLICE,
   REVERSE_V2, CONCATENATION, RESHAPE...), which move raw integers without rescaling.

`plan` works out the repairs on the .tflite alone (or with the float hidden ranges `edgelstm
convert` observes in Keras, matched to the ops by `match_ranges`), `apply` writes them. No
TensorFlow: a converted model can be repaired in the runtime-only install.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Protocol, Sequence

import numpy as np

from .. import lstm_shared
from ..tflite_reader import read_model
from .checks import COPY_OPS, LITERT_CELL_EXPONENTS, hidden_groups
from .writer import pack, unpack

MIN_CELL_SCALE = 2.0 ** LITERT_CELL_EXPONENTS[0]


@dataclass
class Change:
    tensor: int
    name: str
    before: tuple[float, int]
    after: tuple[float, int]

    def to_dict(self) -> dict:
        return {"tensor": self.tensor, "name": self.name, "before": {"scale": self.before[0], "zero_point":
                self.before[1]}, "after": {"scale": self.after[0], "zero_point": self.after[1]}}


@dataclass
class Repair:
    kind: str             # "cell_scale" or "hidden_state"
    ops: list[int]        # the LSTM op indices concerned
    why: str
    changes: list[Change] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "ops": self.ops, "why": self.why,
                "changes": [c.to_dict() for c in self.changes]}


class ObservedRange(Protocol):
    """The float hidden state of one LSTM, observed in the Keras model (preflight.HiddenRange)."""

    forget_weights: np.ndarray    # input->forget weights [units, features], to find the op
    lo: float
    hi: float


def affine_params(lo: float, hi: float) -> tuple[float, int]:
    """int8 asymmetric (scale, zero point) covering [lo, hi] and 0, as the converter nudges them."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if hi - lo < 1e-6:
        hi = lo + 1e-6
    scale = float(np.float32((hi - lo) / 255.0))
    zp = int(np.clip(np.round(-128.0 - lo / scale), -128, 127))
    return scale, zp


def _representable(scale: float, zp: int) -> tuple[float, float]:
    return scale * (-128 - zp), scale * (127 - zp)


def match_lstm_ops(int8_model: bytes, forget_weights: list[np.ndarray]) -> dict[int, int]:
    """Which float LSTM (by its input->forget weights [units, features]) each LSTM op of the int8
    model computes: op index -> list position. The quantized weights must agree with the float ones
    to half an int8 step; each float LSTM is used once."""
    g = read_model(int8_model)
    out: dict[int, int] = {}
    free = list(range(len(forget_weights)))
    for op in g.operators:
        if op.opcode != lstm_shared.OPCODE:
            continue
        w = g.tensors[op.inputs[lstm_shared.INPUT_TO_FORGET_W]]
        if w.data is None or w.quant is None or not w.quant.per_tensor:
            continue
        real = w.data.astype(np.float64) * w.quant.s
        for k in free:
            fw = forget_weights[k]
            if fw.shape == real.shape and np.max(np.abs(real - fw)) <= 0.51 * w.quant.s + 1e-7:
                out[op.index] = k
                free.remove(k)
                break
    return out


def match_ranges(int8_model: bytes, observed: Sequence[ObservedRange]) -> dict[int, tuple[float, float]]:
    """The observed float hidden range of each LSTM op of the int8 model, by op index; an op
    matching none is left out (plan() then keeps its calibrated range)."""
    found = match_lstm_ops(int8_model, [h.forget_weights for h in observed])
    return {op: (observed[k].lo, observed[k].hi) for op, k in found.items()}


def plan(int8_model: bytes, ranges: Optional[dict[int, tuple[float, float]]] = None) -> list[Repair]:
    """The repairs `int8_model` needs. `ranges`: the float hidden range per LSTM op (`match_ranges`);
    for an op without one, the union of what its input 18, intermediate 4 and output can represent,
    i.e. every value the converter saw in calibration (so a .tflite can be repaired without Keras)."""
    g = read_model(int8_model)
    ranges = dict(ranges or {})
    lstm_ops = [op for op in g.operators if op.opcode == lstm_shared.OPCODE]
    for op in lstm_ops:
        if op.index not in ranges:
            spans = [_representable(g.tensors[t].quant.s, g.tensors[t].quant.zp)
                     for t in lstm_shared.hidden_state_tensors(op) if g.tensors[t].quant is not None]
            ranges[op.index] = (min(a for a, _ in spans), max(b for _, b in spans))
    repairs: list[Repair] = []
    for op in lstm_ops:
        c = g.tensors[op.inputs[lstm_shared.CELL_STATE]]
        if c.quant is not None and c.quant.s < MIN_CELL_SCALE:
            repairs.append(Repair("cell_scale", [op.index],
                                  f"cell-state scale {c.quant.s:.6g} = 2^{np.log2(c.quant.s):.0f} is below 2^-15: "
                                  "LiteRT skips tanh(c) and computes h from the input gate",
                                  [Change(c.index, c.name, (c.quant.s, c.quant.zp), (MIN_CELL_SCALE, 0))]))
    producers = {o: op for op in g.operators for o in op.outputs}
    for members, op_ids in hidden_groups(g):
        params = {(g.tensors[t].quant.s, g.tensors[t].quant.zp) for t in members if g.tensors[t].quant}
        lo = min(ranges[i][0] for i in op_ids)
        hi = max(ranges[i][1] for i in op_ids)
        hidden, blocked = set(), None
        for i in op_ids:
            hidden.update(lstm_shared.hidden_state_tensors(g.operators[i]))
        for t in members - hidden:
            # a tensor joined to the hidden state that a computing op (not a copy) writes, e.g. another
            # concatenation input: keep what the converter calibrated for it
            src = producers.get(t)
            if src is None or src.opcode not in COPY_OPS:
                q = g.tensors[t].quant
                if q is None:
                    continue
                if src is None:
                    blocked = t
                a, b = _representable(q.s, q.zp)
                lo, hi = min(lo, a), max(hi, b)
        if blocked is not None:
            # a model input or a constant would have to change: not ours to requantize
            repairs.append(Repair("hidden_state", sorted(op_ids), f"not repaired: {g.tensors[blocked].describe()} "
                                  "shares the hidden state's quantization but is a model input or constant"))
            continue
        if len(params) == 1:
            s, zp = next(iter(params))
            a, b = _representable(s, zp)
            if lo >= a - 2 * s and hi <= b + 2 * s:
                continue  # consistent and covering (to 2 LSB): keep the converter's choice
            why = (f"hidden-state parameters cover [{a:.4g}, {b:.4g}] but the float model's hidden state spans "
                   f"[{lo:.4g}, {hi:.4g}]")
        else:
            why = ("input 18, intermediate 4 and the output (and the tensors byte-copied from them) carry "
                   f"{len(params)} different quantizations: LiteRT writes h with intermediate 4's and reads it "
                   "with input 18's, TFLite Micro labels its output with the wrong ones")
        new = affine_params(lo, hi)
        changes = [Change(t, g.tensors[t].name, (g.tensors[t].quant.s, g.tensors[t].quant.zp), new)
                   for t in sorted(members) if g.tensors[t].quant is not None
                   and (g.tensors[t].quant.s, g.tensors[t].quant.zp) != new]
        repairs.append(Repair("hidden_state", sorted(op_ids), why + f"; all set to cover [{min(lo, 0):.4g}, "
                              f"{max(hi, 0):.4g}]", changes))
    return repairs


def apply(model: bytes, repairs: list[Repair]) -> bytes:
    """`model` with the repairs' new quantization parameters written in."""
    changes = [c for r in repairs for c in r.changes]
    if not changes:
        return model
    m = unpack(model)
    tensors = m.subgraphs[0].tensors
    for c in changes:
        q = tensors[c.tensor].quantization
        q.scale = np.asarray([c.after[0]], np.float32)
        q.zero_point = np.asarray([c.after[1]], np.int64)
    return pack(m)
