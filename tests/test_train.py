"""Model builders, training and the `edgelstm train` command (short runs on synthetic data)."""
import io
import json

import numpy as np
import pytest

from edgelstm.cli import main
from edgelstm.convert.data import load_preprocessing, synthetic
from edgelstm.convert.models import ModelSpec, build_model, load_trained, with_batch_size
from edgelstm.convert.train import parse_conv, parse_units, train
from edgelstm.errors import InputError


def _lstms(model):
    """The LSTM layers in order, unwrapped from Bidirectional."""
    out = []
    for layer in model.layers:
        if layer.__class__.__name__ == "Bidirectional":
            out += [layer.forward_layer, layer.backward_layer]
        elif layer.__class__.__name__ == "LSTM":
            out.append(layer)
    return out


@pytest.mark.parametrize("spec,layers", [
    (ModelSpec(100, 6, 4), ["InputLayer", "LSTM", "Dense"]),
    (ModelSpec(100, 6, 4, units=(32, 16, 8)), ["InputLayer", "LSTM", "LSTM", "LSTM", "Dense"]),
    (ModelSpec(20, 3, 2, units=(8, 8), bidirectional=True), ["InputLayer", "Bidirectional", "Bidirectional", "Dense"]),
    (ModelSpec(20, 3, 1, "regression", conv=(16, 5)), ["InputLayer", "Conv1D", "LSTM", "Dense"]),
])
def test_builders_give_the_requested_convertible_structure(spec, layers):
    m = build_model(spec)
    assert [layer.__class__.__name__ for layer in m.layers] == layers
    assert m.input_shape == (None, spec.timesteps, spec.features)
    assert build_model(spec, batch_size=1).input_shape == (1, spec.timesteps, spec.features)
    lstms = _lstms(m)
    assert [layer.units for layer in lstms] == [u for u in spec.units for _ in range(1 + spec.bidirectional)]
    for i, layer in enumerate(lstms):
        c = layer.get_config()
        assert (c["activation"], c["recurrent_activation"]) == ("tanh", "sigmoid")
        assert c["use_bias"] and not c["stateful"] and not c["unroll"] and c["recurrent_dropout"] == 0
        # every layer but the last returns its whole sequence
        assert c["return_sequences"] == (i // (1 + spec.bidirectional) < len(spec.units) - 1)
    head = m.get_layer("head")
    assert head.units == spec.outputs
    assert head.get_config()["activation"] == ("softmax" if spec.task == "classification" else "linear")
    if spec.conv:
        conv = m.get_layer("conv")
        assert conv.filters == spec.conv[0] and conv.kernel_size == (spec.conv[1],)
    if len(spec.units) == 1 and not spec.bidirectional and not spec.conv:
        u, f = spec.units[0], spec.features
        assert m.count_params() == 4 * (u * (f + u) + u) + (u + 1) * spec.outputs


def test_fixed_batch_twin_has_the_same_weights_and_outputs():
    m = build_model(ModelSpec(12, 3, 3, units=(6, 5), bidirectional=True, conv=(4, 3)))
    twin = with_batch_size(m, 1)
    assert twin.input_shape == (1, 12, 3) and m.input_shape == (None, 12, 3)
    x = np.random.default_rng(0).standard_normal((1, 12, 3)).astype(np.float32)
    assert np.array_equal(twin(x).numpy(), m(x).numpy())
    assert all(np.array_equal(a, b) for a, b in zip(twin.get_weights(), m.get_weights()))


def test_spec_and_option_parsing():
    spec = ModelSpec(10, 2, 3, units=[8, 4], conv=[4, 3])
    assert ModelSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    assert parse_units("32,16") == (32, 16) and parse_conv("16:5") == (16, 5) and parse_conv(None) is None
    for bad in ("", "a", "32,0"):
        with pytest.raises(InputError, match="--units"):
            parse_units(bad)
    for bad in ("16", "16:0", "a:b", "1:2:3"):
        with pytest.raises(InputError, match="--conv"):
            parse_conv(bad)
    for kwargs in ({"units": ()}, {"task": "ranking"}, {"outputs": 1}, {"conv": (0, 3)}):
        with pytest.raises(InputError):
            ModelSpec(**{"timesteps": 10, "features": 2, "outputs": 3, **kwargs})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("train")
    log = io.StringIO()
    result = train(synthetic(seed=0), out, units=(16,), epochs=8, seed=0, progress=log)
    return out, result, log.getvalue()


def test_short_training_beats_chance_clearly(trained):
    _, result, log = trained
    rep = result.report
    assert rep["test"]["majority_baseline"] < 0.4
    assert rep["test"]["accuracy"] >= 0.85, rep
    assert rep["epochs"] == 8 and 1 <= rep["best_epoch"] <= 8 and rep["val"]["accuracy"] >= 0.85
    lines = log.strip().splitlines()
    assert len(lines) == 8 and lines[0].startswith("epoch 1/8") and "val_acc" in lines[0]


def test_outputs_on_disk_reload_and_convert_twin(trained):
    out, result, _ = trained
    assert json.loads((out / "train_report.json").read_text()) == result.report
    pre = load_preprocessing(out)
    assert pre.to_dict() == result.preprocessing.to_dict() and pre.timesteps == 24
    assert pre.classes == ["class0", "class1", "class2"]
    data = synthetic(seed=0)
    x = pre.apply(data.x_test[:4])
    twin = load_trained(out, batch_size=1)
    assert twin.input_shape == (1, 24, 3)
    want = result.model.predict(x, verbose=0)
    got = np.concatenate([twin.predict(xi[None], verbose=0) for xi in x])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    with pytest.raises(InputError, match="not found"):
        load_trained(out / "missing")


def test_regression_predicts_in_the_targets_own_units():
    data = synthetic("regression", seed=2)
    data.y_train, data.y_val, data.y_test = (y * 50 + 1000 for y in (data.y_train, data.y_val, data.y_test))
    result = train(data, units=(16,), epochs=10, seed=0, progress=False)
    spread = float(np.std(data.y_test))
    assert result.report["test"]["rmse"] < 0.35 * spread, (result.report, spread)
    pred = result.model.predict(result.preprocessing.apply(data.x_test), verbose=0)[:, 0]
    assert abs(pred.mean() - data.y_test.mean()) < 0.35 * spread  # the head carries the target scale


def test_same_seed_same_weights(trained):
    _, a, _ = trained
    b = train(synthetic(seed=0), units=(16,), epochs=8, seed=0, progress=False)
    assert all(np.array_equal(u, v) for u, v in zip(a.model.get_weights(), b.model.get_weights()))
    assert a.report["test"] == b.report["test"] and a.report["val"] == b.report["val"]


def test_train_command_json(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--dataset", "synthetic", "--units", "6", "--epochs", "3", "--seed", "1",
                 "--out", str(out), "--json"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)  # stdout holds exactly one JSON object
    assert report["model"]["units"] == [6] and report["epochs"] == 3 and report["seed"] == 1
    assert report["dataset"] == "synthetic-classification" and 0 <= report["test"]["accuracy"] <= 1
    assert captured.err.count("epoch ") == 3
    assert {p.name for p in out.iterdir()} == {"model.keras", "preprocessing.json", "train_report.json"}


def test_train_command_on_a_csv(tmp_path, capsys):
    rng = np.random.default_rng(0)
    level = np.repeat(rng.uniform(-1, 1, 40), 15)  # 600 rows; the target follows a slowly changing level
    rows = ["time,a,b,target"] + [f"{i},{lv + 0.05 * rng.normal():.4f},{rng.normal():.4f},{lv:.4f}"
                                  for i, lv in enumerate(level)]
    (tmp_path / "rec.csv").write_text("\n".join(rows) + "\n")
    assert main(["train", "--dataset", str(tmp_path / "rec.csv"), "--window", "10", "--stride", "5",
                 "--label-column", "target", "--features", "a,b", "--units", "8", "--epochs", "2",
                 "--out", str(tmp_path / "o"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["task"] == "regression" and report["model"]["timesteps"] == 10
    assert report["model"]["features"] == 2 and "rmse" in report["test"]
    pre = load_preprocessing(tmp_path / "o")
    assert pre.features == ["a", "b"] and pre.classes is None and pre.dataset == "rec"


@pytest.mark.parametrize("args,message", [
    (["--dataset", "nope.csv", "--window", "5"], "not found"),
    (["--dataset", "synthetic", "--units", "0"], "--units"),
    (["--dataset", "basicmotions", "--task", "regression"], "classification dataset"),
])
def test_train_command_errors(tmp_path, capsys, args, message):
    assert main(["train", *args, "--out", str(tmp_path / "o")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
