"""`edgelstm convert`: Keras models (tf_keras and Keras 3) to repaired full-int8 .tflite files.

Each converted model is checked independently of the converter's own report: the fused LSTM ops
are there (one per LSTM, two per Bidirectional) and nothing else the runtimes mishandle (lint),
LiteRT and TFLite Micro agree within 2 LSB on every LSTM's hidden state and on the outputs, and
the int8 outputs follow the original float model. Configurations the converter crashes on are
refused by name before it runs, or rewritten; a converter segfault in the child process becomes a
ConversionError while this process carries on. Conversions are shared through module fixtures.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

import edgelstm
from edgelstm.cli import main
from edgelstm.convert.pipeline import convert, render, run_converter
from edgelstm.errors import ConversionError, EdgeLSTMError
from edgelstm.lint import lint
from edgelstm.lstm_shared import (CELL_STATE, HIDDEN_INTERMEDIATE, INPUT_WEIGHTS, OPCODE, OUTPUT_STATE,
                                   RECURRENT_WEIGHTS)
from edgelstm.references import get_reference
from edgelstm.tflite_reader import read_metadata, read_model

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
LSTM = OPCODE
T, F = 20, 6


def k2():
    from edgelstm.convert import keras_module

    return keras_module()


def k3():
    import keras

    return keras


def calibration(n=16, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, T, F)).astype(np.float32)


def save(tmp_dir, model, calib=None):
    path = tmp_dir / "model.keras"
    model.save(path)
    np.save(tmp_dir / "calib.npy", calibration() if calib is None else calib)
    return path, tmp_dir / "calib.npy"


def float_predict(model, x: np.ndarray) -> np.ndarray:
    """The original model's outputs, one sample at a time with fresh state (stateful models too)."""
    outs = []
    for s in x:
        for layer in model.layers:
            if getattr(layer, "stateful", False):
                layer.reset_states()
        outs.append(np.asarray(model(s[None], training=False)))
    return np.concatenate(outs)


def independent_checks(tflite: bytes, n_lstm: int, original, x_float: np.ndarray) -> dict:
    """What the tests demand of every converted model, measured here rather than taken from the
    converter's report."""
    g = read_model(tflite)
    ops = [op.opcode for op in g.operators]
    assert ops.count(LSTM) == n_lstm, ops
    assert "WHILE" not in ops and not any(o.startswith("CUSTOM") for o in ops)
    for op in g.operators:
        if op.opcode == LSTM:
            assert all(g.tensors[op.inputs[k]].type_name == "INT8" for k in INPUT_WEIGHTS + RECURRENT_WEIGHTS)
            assert g.tensors[op.inputs[CELL_STATE]].type_name == "INT16"
            assert g.tensors[op.inputs[CELL_STATE]].quant.s >= 2.0 ** -15
    assert [h.message for h in lint(tflite) if h.severity == "error"] == []

    qin = g.tensors[g.inputs[0]]
    int8_io = qin.type_name == "INT8"
    quant = (lambda x: np.clip(np.round(x / qin.quant.s) + qin.quant.zp, -128, 127).astype(np.int8)) \
        if int8_io else (lambda x: x.astype(np.float32))
    rng = np.random.default_rng(3)
    inputs = [quant(x[None]) for x in x_float]
    if int8_io:  # beyond the calibration data: the full int8 input range
        inputs += [rng.integers(-128, 128, size=qin.shape, dtype=np.int8) for _ in range(4)]
    hidden = [op.outputs[0] for op in g.operators if op.opcode == LSTM]
    lit = get_reference("litert", tflite, preserve_all_tensors=True)
    micro = get_reference("tflm", tflite, preserve_all_tensors=True)
    out_t = g.tensors[g.outputs[0]]
    if out_t.quant is None:  # float output: its LSB is that of DEQUANTIZE's input
        deq = [op for op in g.operators if op.opcode == "DEQUANTIZE" and op.outputs[0] == g.outputs[0]][0]
        out_q = g.tensors[deq.inputs[0]].quant
    else:
        out_q = out_t.quant
    worst_h = worst_y = 0.0
    ys = []
    for x in inputs:
        a, b = lit.run([x])[0], micro.run([x])[0]
        ta, tb = lit.tensors(), micro.tensors()
        worst_h = max([worst_h] + [int(np.max(np.abs(ta[t].astype(np.int32) - tb[t]))) for t in hidden])
        d = np.abs(a.astype(np.float64) - b.astype(np.float64))
        worst_y = max(worst_y, float(d.max()) / (out_q.s if not int8_io else 1.0))
        ys.append((a.astype(np.float64) - out_q.zp) * out_q.s if int8_io else a)
    assert worst_h <= 2, f"LiteRT vs TFLite Micro: hidden states differ by {worst_h} LSB"
    assert worst_y <= 2 + 1e-6, f"LiteRT vs TFLite Micro: outputs differ by {worst_y} LSB"
    y_int8 = np.concatenate(ys[:len(x_float)])
    y_float = float_predict(original, x_float)
    err = np.abs(y_int8 - y_float)
    return {"hidden_lsb": worst_h, "output_lsb": worst_y, "float_max_err": float(err.max()),
            "float_max_err_lsb": float(err.max() / out_q.s),
            "argmax": float(np.mean(y_int8.argmax(-1) == y_float.argmax(-1)))}


# -- conversions shared by the tests -----------------------------------------------------------------
@pytest.fixture(scope="module")
def keras3_stacked(tmp_path_factory):
    """Keras 3, three stacked LSTMs, dynamic batch: rebuilt as tf_keras, batch 1, and the deeper
    layers' cell scales (2^-16 from the converter) repaired."""
    K = k3()
    K.utils.set_random_seed(1)
    L = K.layers
    model = K.Sequential([K.Input((T, F)), L.LSTM(48, return_sequences=True), L.LSTM(32, return_sequences=True),
                          L.LSTM(16), L.Dense(4, activation="softmax")])
    d = tmp_path_factory.mktemp("k3_stacked")
    path, cal = save(d, model)
    report = convert(path, cal, d / "model.tflite", check_edgelstm=False)
    return model, report, (d / "model.tflite").read_bytes()


@pytest.fixture(scope="module")
def bidir_no_bias(tmp_path_factory):
    """tf_keras, dynamic batch, Bidirectional LSTM without biases feeding another LSTM: the hidden
    states of the pair (joined by REVERSE_V2 and CONCATENATION) get one set of parameters."""
    K = k2()
    K.utils.set_random_seed(2)
    L = K.layers
    x = K.Input((T, F))
    y = L.Bidirectional(L.LSTM(10, return_sequences=True, use_bias=False))(x)
    y = L.LSTM(8)(y)
    model = K.Model(x, L.Dense(3, activation="softmax")(y))
    d = tmp_path_factory.mktemp("bidir")
    path, cal = save(d, model)
    report = convert(path, cal, d / "model.tflite", check_edgelstm=True)
    return model, report, (d / "model.tflite").read_bytes()


@pytest.fixture(scope="module")
def stateful_cli(tmp_path_factory):
    """tf_keras stateful LSTM + RNN(LSTMCell) with recurrent dropout and unrolling, through the
    command line with float I/O and a preprocessing.json next to the model."""
    K = k2()
    K.utils.set_random_seed(3)
    L = K.layers
    x = K.Input((T, F), batch_size=1)
    y = L.LSTM(12, return_sequences=True, stateful=True)(x)
    y = L.RNN(L.LSTMCell(8, recurrent_dropout=0.25), unroll=True)(y)
    model = K.Model(x, L.Dense(2, activation="softmax")(y))
    rng = np.random.default_rng(4)
    for layer in model.layers:  # real models have biases
        if layer.get_weights():
            layer.set_weights([w + rng.normal(scale=0.3, size=w.shape).astype(w.dtype) if w.ndim == 1 else w
                               for w in layer.get_weights()])
    d = tmp_path_factory.mktemp("stateful")
    path, cal = save(d, model)
    pre = {"mean": [0.1] * F, "std": [1.5] * F, "features": [f"f{i}" for i in range(F)], "task": "classify",
           "classes": ["a", "b"], "timesteps": T, "dataset": "synthetic"}
    (d / "preprocessing.json").write_text(json.dumps(pre))
    return model, d, path, cal, pre


# -- the conversions ---------------------------------------------------------------------------------
def test_keras3_stacked(keras3_stacked):
    model, report, tfl = keras3_stacked
    assert report.source == "keras3" and report.rebuild_max_abs_diff <= 1e-5
    assert [r.change for r in report.rewrites] == ["batch size None -> 1"]
    assert [info.lstm_ops for info in report.layers] == [1, 1, 1, 0]
    # the converter gave the deeper layers a cell scale LiteRT mishandles; the repair raised it
    cell = [r for r in report.repairs if r.kind == "cell_scale"]
    assert cell and all(c.before[0] < 2.0 ** -15 and c.after[0] == 2.0 ** -15 for r in cell for c in r.changes)
    before = report.agreement["converter"]["litert_vs_tflm"]["lstm_max_lsb"]
    after = report.agreement["repaired"]["litert_vs_tflm"]["lstm_max_lsb"]
    assert max(before) > 50 and max(after) <= 2, (before, after)
    res = independent_checks(tfl, 3, model, calibration()[:12])
    assert res["float_max_err_lsb"] <= 3, res
    assert "keras3" in render(report) and "cell_scale" in render(report)


def test_bidirectional_dynamic_batch_no_bias(bidir_no_bias):
    model, report, tfl = bidir_no_bias
    assert report.source == "tf_keras"
    changes = [(r.layer, r.change) for r in report.rewrites]
    assert ("input", "batch size None -> 1") in changes
    assert sum(c == "use_bias=False -> zero biases" for _, c in changes) == 2  # forward and backward
    assert [info.lstm_ops for info in report.layers] == [2, 1, 0]
    hidden = [r for r in report.repairs if r.kind == "hidden_state"]
    g = read_model(tfl)
    pair = [op for op in g.operators if op.opcode == LSTM][:2]
    assert hidden and any(set(r.ops) == {op.index for op in pair} for r in hidden)
    # one set of parameters for both directions' state, intermediate 4 and output, and the concat
    params = {(g.tensors[t].quant.s, g.tensors[t].quant.zp) for op in pair
              for t in (op.inputs[OUTPUT_STATE], op.intermediates[HIDDEN_INTERMEDIATE], op.outputs[0])}
    concat = [op for op in g.operators if op.opcode == "CONCATENATION"][0]
    params.add((g.tensors[concat.outputs[0]].quant.s, g.tensors[concat.outputs[0]].quant.zp))
    assert len(params) == 1
    res = independent_checks(tfl, 3, model, calibration()[:12])
    assert res["float_max_err_lsb"] <= 3, res
    assert report.agreement["repaired"]["edgelstm"]["tflite"]["differing"] == 0
    assert report.agreement["repaired"]["edgelstm"]["tflm"]["differing"] == 0


def test_stateful_rnn_cell_through_the_cli(stateful_cli):
    """The real command in a fresh process: TensorFlow's start-up noise stays off the terminal."""
    model, d, path, cal, pre = stateful_cli
    out = d / "model.tflite"
    proc = subprocess.run([sys.executable, "-m", "edgelstm", "convert", str(path), "--calibration", str(cal),
                           "--out", str(out), "--io", "float", "--json"], capture_output=True, text=True,
                          cwd=Path(edgelstm.__file__).parents[1])
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["ok"] and report["io"] == "float"
    noise = [ln for ln in proc.stderr.splitlines() if not ln.startswith("[edgelstm convert] ")]
    assert noise == [], noise
    changes = {r["change"] for r in report["rewrites"]}
    assert {"stateful=True -> False", "RNN(LSTMCell) -> LSTM", "recurrent_dropout=0.25 -> 0",
            "unroll=True -> False"} <= changes
    assert report["postcheck"]["ok"] and report["postcheck"]["lstm_ops"] == 2
    tfl = out.read_bytes()
    assert json.loads(read_metadata(tfl)["edgelstm.preprocessing"]) == pre
    g = read_model(tfl)
    assert g.tensors[g.inputs[0]].type_name == "FLOAT32"
    res = independent_checks(tfl, 2, model, calibration()[:12])
    assert res["float_max_err_lsb"] <= 3, res


# -- refusals, before the converter runs -------------------------------------------------------------
def _refused(tmp_path, model, layer: str, *words: str):
    path, cal = save(tmp_path, model, calibration(8))
    with pytest.raises(ConversionError) as info:
        convert(path, cal, tmp_path / "out.tflite")
    assert info.value.layer == layer, str(info.value)
    for w in words:
        assert w in str(info.value), str(info.value)
    assert not (tmp_path / "out.tflite").exists()
    return info.value


@pytest.mark.parametrize("case", ["gru", "relu", "hard_sigmoid", "masking", "cell_state_used", "keras3_gru"])
def test_refused_with_layer_and_reason(tmp_path, case):
    K = k3() if case.startswith("keras3") else k2()
    L = K.layers
    x = K.Input((T, F))
    if case in ("gru", "keras3_gru"):
        _refused(tmp_path, K.Model(x, L.Dense(2)(L.GRU(4, name="my_gru")(x))), "my_gru", "GRU", "segfault")
    elif case == "relu":
        _refused(tmp_path, K.Model(x, L.Dense(2)(L.LSTM(4, activation="relu", name="rl")(x))), "rl",
                 "activation='relu'", "tanh")
    elif case == "hard_sigmoid":
        _refused(tmp_path, K.Model(x, L.LSTM(4, recurrent_activation="hard_sigmoid", name="hs")(x)), "hs",
                 "hard_sigmoid", "sigmoid")
    elif case == "masking":
        _refused(tmp_path, K.Model(x, L.LSTM(4)(L.Masking(name="mask")(x))), "mask", "mask")
    elif case == "cell_state_used":
        y, h, c = L.LSTM(4, return_state=True, name="st")(x)
        _refused(tmp_path, K.Model(x, L.Concatenate()([y, c])), "st", "cell state")


def test_hidden_state_output_is_rewritten_not_refused(tmp_path):
    """return_state with only h used: h is the last output, so the model converts (checked in
    preflight only; the converter itself is exercised by the fixtures)."""
    from edgelstm.convert.keras3 import load_keras
    from edgelstm.convert.preflight import preflight

    K = k2()
    L = K.layers
    x = K.Input((T, F))
    y, h, _ = L.LSTM(5, return_sequences=True, return_state=True, name="st")(x)
    model = K.Model(x, L.Add()([L.GlobalAveragePooling1D()(y), h]))
    path, cal = save(tmp_path, model, calibration(8))
    prepared = preflight(*load_keras(path), calibration(8))
    assert [r.change for r in prepared.rewrites][-1] == "return_state=True -> False; h taken from the output"
    assert prepared.max_abs_diff <= 1e-5


def test_keras3_rebuild_must_compute_the_same(tmp_path):
    """Keras 3's RMS-scaling LayerNormalization has the weights of tf_keras' LayerNormalization(center=
    False) but not its math: the rebuild is caught on the calibration data and the layer named."""
    K = k3()
    L = K.layers
    x = K.Input((T, F))
    y = L.LayerNormalization(rms_scaling=True, center=False, name="rms")(L.LSTM(4, return_sequences=True)(x))
    err = _refused(tmp_path, K.Model(x, L.LSTM(3)(y)), "rms", "does not compute the same", "tolerance 1e-05")
    assert "first differs at layer 'rms'" in str(err)


def test_lambda_layers_are_never_executed(tmp_path):
    K = k2()
    x = K.Input((T, F))
    model = K.Model(x, K.layers.Lambda(lambda t: t * 2.0)(x))
    path = tmp_path / "model.keras"
    model.save(path)
    np.save(tmp_path / "c.npy", calibration(2))
    with pytest.raises(ConversionError, match="safe_mode"):
        convert(path, tmp_path / "c.npy", tmp_path / "out.tflite")


def test_bad_inputs(tmp_path):
    K = k2()
    x = K.Input((T, F))
    path, cal = save(tmp_path, K.Model(x, K.layers.LSTM(3)(x)))
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros((4, T, F + 1), np.float32))
    with pytest.raises(ConversionError, match=r"\[N, 20, 6\]"):
        convert(path, wrong, tmp_path / "o.tflite")
    nan = tmp_path / "nan.npy"
    np.save(nan, np.full((4, T, F), np.nan, np.float32))
    with pytest.raises(ConversionError, match="NaN"):
        convert(path, nan, tmp_path / "o.tflite")
    few = tmp_path / "few.npy"
    np.save(few, calibration(3))
    with pytest.raises(ConversionError, match="holds 3 samples; at least 8"):
        convert(path, few, tmp_path / "o.tflite")
    with pytest.raises(ConversionError, match="not a .keras"):
        bogus = tmp_path / "bogus.keras"
        bogus.write_bytes(b"PK nothing")
        convert(bogus, cal, tmp_path / "o.tflite")
    with zipfile.ZipFile(path) as z:  # a zip without metadata: refused, not guessed
        cfg = z.read("config.json")
    nometa = tmp_path / "nometa.keras"
    with zipfile.ZipFile(nometa, "w") as z:
        z.writestr("config.json", cfg)
    with pytest.raises(ConversionError, match="which Keras"):
        convert(nometa, cal, tmp_path / "o.tflite")
    assert main(["convert", str(path), "--calibration", str(wrong), "--out", str(tmp_path / "o.tflite")]) == 2
    assert issubclass(ConversionError, EdgeLSTMError)
    (tmp_path / "preprocessing.json").write_text(json.dumps({"mean": [0.0] * (F + 1), "std": [1.0] * (F + 1)}))
    with pytest.raises(ConversionError, match="'mean' has 7 entries but the model takes 6"):
        convert(path, cal, tmp_path / "o.tflite")
    (tmp_path / "preprocessing.json").write_text("{not json")
    with pytest.raises(ConversionError, match="not valid JSON"):
        convert(path, cal, tmp_path / "o.tflite")
    assert not (tmp_path / "o.tflite").exists()


def test_converter_segfault_is_an_error_not_a_dead_process(tmp_path):
    """The stock converter segfaults on a GRU; bypassing preflight, the child dies of SIGSEGV and
    this process gets a ConversionError with the converter's last lines."""
    K = k2()
    x = K.Input((T, F), batch_size=1)
    model = K.Model(x, K.layers.GRU(4)(x))
    model.save(tmp_path / "gru.keras")
    np.save(tmp_path / "c.npy", calibration(2)[:, None])
    with pytest.raises(ConversionError) as info:
        run_converter(tmp_path / "gru.keras", tmp_path / "c.npy", tmp_path, what="gru.keras")
    msg = str(info.value)
    assert "crashed (signal 11, SIGSEGV) on gru.keras" in msg
    assert "edgelstm-child: converting" in msg  # the child's last lines are in the message
