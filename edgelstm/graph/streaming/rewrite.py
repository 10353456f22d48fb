"""The writer step: apply a StreamPlan to the model's flatbuffer, and describe what changed."""
from __future__ import annotations

from pathlib import Path
from typing import Union

import numpy as np

from ...errors import ConversionError, ModelError
from ...tflite_reader import model_bytes, read_model
from ..schema import Table
from ..writer import add_constant, pack, unpack
from .plan import plan_streaming
from .timeaxis import concrete, time_axis


def streaming_model(model: Union[bytes, str, Path]) -> bytes:
    """The single-step (T = 1) variant of a full-sequence int8 LSTM model (bytes or a path): same
    weights and quantization, LSTM state carried across invokes. Feeding x[:, k:k+1] at invoke k
    gives, bit for bit, the full model's output for the sequence ending at step k (seq2seq: its
    step k). ConversionError, naming the op and the reason, for what cannot stream."""
    raw = model_bytes(model)
    plan = plan_streaming(raw)
    m = unpack(raw)
    sg = m.subgraphs[0]
    for i, shape in plan.shapes.items():
        t = sg.tensors[i]
        new = np.asarray(concrete(shape, 1), dtype=np.int32)
        t.shape = new
        if t.shape_signature is not None and len(t.shape_signature):
            t.shape_signature = new.copy()
    for (op_index, slot), values in sorted(plan.constants.items()):
        # a new tensor, not an edited buffer: the old constant may be shared with other ops
        op = sg.operators[op_index]
        inputs = np.array(op.inputs)
        inputs[slot] = add_constant(m, values, sg.tensors[op.inputs[slot]].name + "/stream")
        op.inputs = inputs
    for (op_index, name), value in plan.options.items():
        op = sg.operators[op_index]
        if op.builtin_options is None:
            # the converter writes SQUEEZE without options when it squeezes every 1; the other
            # rewritten options (RESHAPE new_shape, STRIDED_SLICE masks) are only set when present
            op.builtin_options = Table("SqueezeOptions")
        setattr(op.builtin_options, name, value)
    if plan.dropped_ops:
        dropped = set(plan.dropped_ops)
        sg.operators = [op for k, op in enumerate(sg.operators) if k not in dropped]
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
                        "step": list(s.tensors[j].shape), "time_axis": time_axis(plan.shapes.get(i, ()))})
        return out

    return {"time_steps": plan.t, "inputs": io(g.inputs, s.inputs), "outputs": io(g.outputs, s.outputs),
            "rewritten_shapes": len(plan.shapes), "rewritten_constants": len(plan.constants),
            "dropped_ops": [g.operators[k].describe() for k in plan.dropped_ops]}


def render(path: str, info: dict) -> str:
    """`summarize`'s result as the text `edgelstm stream` prints."""
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
