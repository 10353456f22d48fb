"""`edgelstm profile`: real repeated runs, exact MACs, JSON and HTML that agree."""
import json
from html.parser import HTMLParser

import numpy as np
import pytest

import zoo
from cli_run import cli
from edgelstm.errors import InputError
from edgelstm.model import load
from edgelstm.profiling import model_stats, profile, summarize
from edgelstm.profiling.report import render_table

T, F, H, OUT = 30, 6, 24, 4




@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A trained LSTM(24)+Dense(4) classifier: model.keras (float, any batch) and model.tflite (int8)."""
    from edgelstm.convert import convert_int8, keras_module

    K = keras_module()
    K.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, T, F)).astype(np.float32)
    y = (x[:, :, 0].sum(axis=1) > 0).astype(int) + 2 * (x[:, -5:, 1].mean(axis=1) > 0)
    inp = K.Input((T, F))
    model = K.Model(inp, K.layers.Dense(OUT, activation="softmax")(K.layers.LSTM(H)(inp)))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    d = tmp_path_factory.mktemp("profile")
    model.save(d / "model.keras")
    fixed_in = K.Input((T, F), batch_size=1)
    fixed = K.Model(fixed_in, K.layers.Dense(OUT, activation="softmax")(K.layers.LSTM(H)(fixed_in)))
    fixed.set_weights(model.get_weights())
    (d / "model.tflite").write_bytes(convert_int8(fixed, x[:, None]))
    return d


@pytest.fixture(scope="module")
def report(trained):
    return profile(trained / "model.tflite", backends=["edgelstm", "litert", "tflm", "keras"], runs=40,
                   warmup=3, op_runs=5)


def test_macs_are_the_hand_count(trained):
    m = load(trained / "model.tflite")
    stats = model_stats(m, [np.zeros(m.inputs[0].shape, np.int8)])
    lstm = T * 4 * H * (F + H)
    assert stats["macs"] == lstm + H * OUT
    assert [op["macs"] for op in stats["ops"] if op["opcode"] == "UNIDIRECTIONAL_SEQUENCE_LSTM"] == [lstm]
    # weights: 4 gates x (input + recurrent) int8 matrices, 4 int32 biases, Dense int8 + int32 bias
    assert stats["parameters"] == 4 * H * (F + H) + 4 * H + H * OUT + OUT
    assert stats["weight_bytes"] == 4 * H * (F + H) + 4 * 4 * H + H * OUT + 4 * OUT


def test_every_backend_measured_with_real_runs(report):
    assert set(report["backends"]) == {"edgelstm", "litert", "tflm", "keras"}, report["skipped"]
    for name, b in report["backends"].items():
        samples = np.array(b["samples_us"])
        assert samples.size == b["runs"] == 40
        assert len(set(samples.tolist())) > 5, f"{name}: timings look constant"
        assert b["p50_us"] == round(float(np.percentile(samples, 50)), 2)
        assert b["p99_us"] == round(float(np.percentile(samples, 99)), 2)
        assert b["min_us"] <= b["p50_us"] <= b["p90_us"] <= b["p99_us"] <= b["max_us"]
        assert b["cold_start_ms"] >= b["first_call_ms"] > 0 and b["peak_rss_mb"] > 10
        assert b["version"] and b["version"] != "unknown"


def test_edgelstm_time_per_op(report):
    ops = report["ops"]
    assert [o["opcode"] for o in ops][0] == "UNIDIRECTIONAL_SEQUENCE_LSTM"
    assert sum(o["share"] for o in ops) == pytest.approx(1.0, abs=1e-12)
    assert all(o["time_us"] > 0 for o in ops)
    (layer,) = report["lstm_layers"]
    assert layer["units"] == H and layer["timesteps"] == T
    assert layer["per_timestep_us"] == pytest.approx(ops[0]["time_us"] / T, rel=1e-3)
    assert layer["macs_per_timestep"] == 4 * H * (F + H)


class _Cells(HTMLParser):
    def __init__(self):
        super().__init__()
        self.cells = {}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "td" and "data-key" in a:
            self.cells[a["data-key"]] = json.loads(a["data-value"])


def _lookup(obj, key):
    for part in key.split("."):
        obj = obj[int(part)] if isinstance(obj, list) else obj[part]
    return obj


def test_cli_json_and_html_agree(trained, tmp_path):
    js, page = tmp_path / "p.json", tmp_path / "p.html"
    r = cli("profile", trained / "model.tflite", "--backends", "edgelstm,litert", "--runs", "25", "--warmup", "2",
            "--json", js, "--html", page)
    assert r.returncode == 0, r.stderr
    assert "p50 µs" in r.stdout and "UNIDIRECTIONAL_SEQUENCE_LSTM" in r.stdout
    data = json.loads(js.read_text())
    assert set(data["backends"]) == {"edgelstm", "litert"} and data["macs"] > 0
    assert all({"p50_us", "p90_us", "p99_us"} <= set(b) for b in data["backends"].values())
    assert all({"name", "share"} <= set(o) for o in data["ops"])
    m4 = data["mcu"]["cortex-m4"]  # CI installs Arm GCC and QEMU
    # at least one instruction per multiply-accumulate, per inference and per (model_step) timestep
    assert m4["instructions_per_inference"] > T * 4 * H * (F + H) and m4["instructions_per_timestep"] > 4 * H * (F + H)
    assert m4["latency_ms_low"] <= m4["latency_ms"] <= m4["latency_ms_high"] and m4["clock_mhz"] > 0
    assert "microcontroller estimate" in r.stdout
    text = page.read_text()
    assert text.count("data:image/png;base64,") == 2  # latency distributions and the per-op chart
    parser = _Cells()
    parser.feed(text)
    assert len(parser.cells) >= 2 * 8 + 3 * len(data["ops"]) + 5 + 8
    for key, value in parser.cells.items():
        assert _lookup(data, key) == value, key


def test_table_mentions_every_backend_and_skip(report):
    text = render_table(report)
    for name in report["backends"]:
        assert name in text
    assert "relative to edgelstm" in text


def test_skipped_backends_say_why(trained, tmp_path):
    lone = tmp_path / "lone.tflite"
    lone.write_bytes((trained / "model.tflite").read_bytes())  # no .keras beside it
    r = profile(lone, backends=["edgelstm", "keras", "tflite-runtime"], runs=5, warmup=0, op_runs=1)
    assert set(r["backends"]) == {"edgelstm"}
    assert "--keras" in r["skipped"]["keras"]
    assert "tflite-runtime" in r["skipped"]


def test_bad_arguments_are_clear_errors(trained):
    path = trained / "model.tflite"
    with pytest.raises(InputError, match="runs must be at least 1"):
        profile(path, runs=0)
    with pytest.raises(InputError, match="unknown backend"):
        profile(path, backends=["onnx"])
    with pytest.raises(InputError, match="Keras model not found"):
        profile(path, keras=path.parent / "nope.keras")
    r = cli("profile", path, "--backends", "edgelstm,onnx")
    assert r.returncode == 2 and "unknown backend" in r.stderr and "Traceback" not in r.stderr


def test_summary_percentiles():
    s = summarize([1.0, 2.0, 3.0, 4.0, 100.0], batch=2)
    assert (s["min_us"], s["p50_us"], s["max_us"]) == (1.0, 3.0, 100.0)
    assert s["p90_us"] == pytest.approx(61.6) and s["throughput_seq_per_s"] == pytest.approx(2 / 3e-6, rel=1e-3)


def test_batch_and_dynamic_time(tmp_path):
    """A dynamic-length model profiled at a chosen length, several sequences per timed call."""
    p = tmp_path / "dyn.tflite"
    p.write_bytes(zoo.build("dynamic_time"))
    r = profile(p, backends=["edgelstm"], runs=5, warmup=1, batch=3, time_steps=17, op_runs=1)
    assert r["settings"]["input_shapes"][0][1] == 17 and r["settings"]["batch"] == 3
    (layer,) = r["lstm_layers"]
    assert layer["timesteps"] == 17
