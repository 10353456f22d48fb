"""Accuracy of an int8 model against its float Keras model, in every runtime, on held-out data.

For each runtime (LiteRT's reference kernels, TFLite Micro, edgelstm's two flavours) on the same
quantized samples: the task metric (accuracy or RMSE), how often each agrees with the float model,
and how often the runtimes agree with each other. Per layer, the error of the int8 tensors against
the float model's in units of that tensor's LSB: every LSTM op's hidden state over all timesteps
(matched to its Keras layer by weights) and every model output.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np

from ..errors import EdgeLSTMError, InputError, ReferenceUnavailable
from ..tflite_reader import read_model

LSTM = "UNIDIRECTIONAL_SEQUENCE_LSTM"
RUNTIMES = ("litert", "tflm", "edgelstm", "edgelstm-tflm")


def _quantize(x: np.ndarray, q) -> np.ndarray:
    return np.clip(np.round(x / q.s) + q.zp, -128, 127).astype(np.int8)


def _dequantize(a: np.ndarray, q) -> np.ndarray:
    if a.dtype.kind == "f" or q is None:
        return a.astype(np.float64)
    return (a.astype(np.float64) - q.zp) * q.s


def _metric(task: str, pred: np.ndarray, y: np.ndarray) -> dict:
    if task == "classification":
        return {"accuracy": round(float(np.mean(pred.reshape(len(y), -1).argmax(axis=1) == y)), 4)}
    err = pred.reshape(len(y), -1) - y.reshape(len(y), -1)
    return {"rmse": round(float(np.sqrt(np.mean(err ** 2))), 6)}


def _lstm_probe(keras_model, tflite: bytes, x: np.ndarray) -> dict[int, np.ndarray]:
    """Float hidden-state sequences [N, T, H] of each LSTM op, from Keras copies that return the
    whole sequence, matched to the op by its input->forget weights."""
    from ..graph.repair import match_lstm_ops
    from .preflight import hidden_sequences

    seqs = hidden_sequences(keras_model, x)
    found = match_lstm_ops(tflite, [k for _, k, _ in seqs])
    return {op: seqs[k][2] for op, k in found.items()}


def evaluate(tflite: bytes, keras_model, x: np.ndarray, y: np.ndarray, task: str,
             progress: Optional[Callable[[str], None]] = None) -> dict:
    """The accuracy report for float samples x [N, T, F] (already normalised) and targets y."""
    from ..model import load
    from ..references import get_reference

    say = progress or (lambda msg: None)
    g = read_model(tflite)
    if len(g.inputs) != 1:
        raise InputError("the accuracy report handles single-input models")
    qin = g.tensors[g.inputs[0]]
    batch = qin.shape[0] if qin.shape else 1
    if x.ndim != 3 or len(x) == 0:
        raise InputError(f"expected float samples [N, T, F], got shape {list(x.shape)}")
    if not np.all(np.isfinite(x)):
        raise InputError("the evaluation data contains NaN or infinity")
    if len(x) % batch:
        raise InputError(f"the model takes batches of {batch}; {len(x)} samples do not divide into them")
    xs = [x[i:i + batch] for i in range(0, len(x), batch)]
    feed = [[_quantize(b, qin.quant)] if qin.type_name == "INT8" else [b.astype(np.float32)] for b in xs]

    say(f"float Keras model on {len(x)} samples")
    y_float = np.asarray(keras_model.predict(x, batch_size=64, verbose=0), dtype=np.float64)
    hidden_float = _lstm_probe(keras_model, tflite, x)
    lstm_ops = [op for op in g.operators if op.opcode == LSTM]
    outs_q = [g.tensors[o].quant for o in g.outputs]

    runs: dict[str, dict[str, Any]] = {}
    for name in RUNTIMES:
        say(f"int8 model in {name}")
        try:
            if name in ("litert", "tflm"):
                ref = get_reference(name, tflite, preserve_all_tensors=True)
                version = ref.version
                outputs, hidden = [], {op.index: [] for op in lstm_ops}
                for f in feed:
                    outputs.append(ref.run(f)[0])
                    kept = ref.tensors()
                    for op in lstm_ops:
                        if op.outputs[0] in kept:
                            hidden[op.index].append(kept[op.outputs[0]])
            else:
                m = load(tflite, flavor="tflm" if name == "edgelstm-tflm" else "tflite")
                from importlib.metadata import version as dist_version

                version = dist_version("edgelstm")
                outputs, hidden = [m.run(f) for f in feed], {}
                outputs = [o[0] if isinstance(o, list) else o for o in outputs]
        except (ReferenceUnavailable, EdgeLSTMError) as exc:
            runs[name] = {"unavailable": str(exc)}
            continue
        raw = np.concatenate(outputs, axis=0)
        runs[name] = {"version": version, "raw": raw, "hidden": hidden,
                      "pred": _dequantize(raw, outs_q[0]).reshape(len(x), -1)}

    report: dict[str, Any] = {"samples": int(len(x)), "task": task,
                              "float": _metric(task, y_float, y), "runtimes": {}, "agreement": {}, "layers": []}
    for name, r in runs.items():
        if "unavailable" in r:
            report["runtimes"][name] = r
            continue
        entry = {"version": r["version"], **_metric(task, r["pred"], y)}
        if task == "classification":
            entry["same_prediction_as_float"] = round(float(np.mean(
                r["pred"].argmax(axis=1) == y_float.reshape(len(x), -1).argmax(axis=1))), 4)
        report["runtimes"][name] = entry
    ok = {n: r for n, r in runs.items() if "unavailable" not in r}
    for a, b in (("litert", "tflm"), ("edgelstm", "litert"), ("edgelstm-tflm", "tflm"), ("edgelstm", "edgelstm-tflm")):
        if a in ok and b in ok:
            ra, rb = ok[a]["raw"].reshape(len(x), -1), ok[b]["raw"].reshape(len(x), -1)
            pair = {"identical_outputs": round(float(np.mean(np.all(ra == rb, axis=1))), 4),
                    "max_lsb": int(np.max(np.abs(ra.astype(np.int64) - rb.astype(np.int64))))}
            if task == "classification":
                pair["same_prediction"] = round(float(np.mean(ok[a]["pred"].argmax(1) == ok[b]["pred"].argmax(1))), 4)
            report["agreement"][f"{a}_vs_{b}"] = pair

    # per layer: the int8 tensors against the float model, in LSB of each tensor
    for op in lstm_ops:
        t = g.tensors[op.outputs[0]]
        row: dict[str, Any] = {"layer": f"op {op.index} {LSTM}", "tensor": t.name, "scale": float(t.quant.s)}
        ref_float = hidden_float.get(op.index)
        if ref_float is None:
            row["note"] = "no matching Keras LSTM layer (nested model?)"
        for name in ("litert", "tflm"):
            seq = ok.get(name, {}).get("hidden", {}).get(op.index)
            if ref_float is None or not seq:
                continue
            q = np.concatenate(seq, axis=0)
            f = ref_float.reshape(q.shape) if ref_float.size == q.size else None
            if f is None:
                continue
            err = np.abs(_dequantize(q, t.quant) - f) / t.quant.s
            row[name] = {"max_lsb": round(float(err.max()), 3), "mean_lsb": round(float(err.mean()), 3)}
        report["layers"].append(row)
    out_t = g.tensors[g.outputs[0]]
    row = {"layer": "model output", "tensor": out_t.name,
           "scale": float(out_t.quant.s) if out_t.quant is not None else None}
    for name in RUNTIMES:
        if name in ok and out_t.quant is not None:
            err = np.abs(ok[name]["pred"] - y_float.reshape(len(x), -1)) / out_t.quant.s
            row[name] = {"max_lsb": round(float(err.max()), 3), "mean_lsb": round(float(err.mean()), 3)}
    report["layers"].append(row)
    return report


def render(report: dict) -> str:
    metric = "accuracy" if report["task"] == "classification" else "rmse"
    lines = [f"held-out samples: {report['samples']}  ({report['task']}, {metric})",
             f"  {'float Keras':<16} {report['float'][metric]:.4f}"]
    for name, r in report["runtimes"].items():
        if "unavailable" in r:
            lines.append(f"  {name:<16} not measured: {r['unavailable']}")
            continue
        extra = (f"   same prediction as float {100 * r['same_prediction_as_float']:.1f}%"
                 if "same_prediction_as_float" in r else "")
        lines.append(f"  {name + ' int8':<16} {r[metric]:.4f}{extra}")
    lines.append("agreement between runtimes (share of samples with identical int8 outputs; max difference):")
    for pair, a in report["agreement"].items():
        extra = f", same prediction {100 * a['same_prediction']:.1f}%" if "same_prediction" in a else ""
        lines.append(f"  {pair:<26} {100 * a['identical_outputs']:5.1f}% identical, max {a['max_lsb']} LSB{extra}")
    lines.append("int8 vs float per layer (error in LSB of the int8 tensor; max / mean):")
    for row in report["layers"]:
        cells = "  ".join(f"{n} {row[n]['max_lsb']:.2f}/{row[n]['mean_lsb']:.2f}"
                          for n in RUNTIMES if n in row)
        lines.append(f"  {row['layer']:<40} {cells or row.get('note', '')}")
    return "\n".join(lines)
