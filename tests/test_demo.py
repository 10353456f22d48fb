"""The README's main job, on the real BasicMotions data (few epochs and runs, to keep the suite quick)."""
import json
import subprocess
import sys

import pytest

from edgelstm.demo import load_basicmotions, run_demo


def test_basicmotions_is_the_real_dataset():
    x_tr, y_tr, x_te, y_te, classes = load_basicmotions()
    assert x_tr.shape == (40, 100, 6) and x_te.shape == (40, 100, 6)
    assert classes == ["Badminton", "Running", "Standing", "Walking"]
    assert sorted(set(y_tr)) == [0, 1, 2, 3]


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("demo")
    assert run_demo(d, epochs=3, profile_runs=20) == 0
    return d


def test_demo_writes_a_verified_report(demo_dir):
    tmp_path = demo_dir
    for name in ("model.keras", "preprocessing.json", "train_report.json", "model.tflite", "profile.html",
                 "report.json"):
        assert (tmp_path / name).stat().st_size > 0
    report = json.loads((tmp_path / "report.json").read_text())
    for ref in ("litert", "tflm"):
        v = report["verify"][ref]
        assert v["bit_exact"] is True and v["samples"] == 40 and v["flavor"] == ("tflm" if ref == "tflm" else "tflite")
    assert report["conversion"]["postcheck"]["ok"] is True
    acc = report["accuracy"]
    assert acc["samples"] == 40 and set(acc["runtimes"]) == {"litert", "tflm", "edgelstm", "edgelstm-tflm"}
    assert acc["agreement"]["edgelstm_vs_litert"]["identical_outputs"] == 1.0
    assert acc["agreement"]["edgelstm-tflm_vs_tflm"]["identical_outputs"] == 1.0
    assert acc["runtimes"]["edgelstm"]["accuracy"] == acc["runtimes"]["litert"]["accuracy"]
    assert [row["layer"] for row in acc["layers"]] == ["op 0 UNIDIRECTIONAL_SEQUENCE_LSTM", "model output"]
    assert report["model"]["macs"] == 100 * 4 * 32 * (6 + 32) + 4 * 32
    assert {"edgelstm", "litert", "tflm", "keras"} <= set(report["profile"]["backends"])


def test_accuracy_command_reads_the_embedded_preprocessing(demo_dir, tmp_path):
    lone = tmp_path / "model.tflite"  # no preprocessing.json beside it: the metadata must serve
    lone.write_bytes((demo_dir / "model.tflite").read_bytes())
    r = subprocess.run([sys.executable, "-m", "edgelstm.cli", "accuracy", str(lone), "--keras",
                        str(demo_dir / "model.keras"), "--json"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    rep = json.loads(r.stdout)
    demo = json.loads((demo_dir / "report.json").read_text())["accuracy"]
    assert rep["runtimes"]["litert"]["accuracy"] == demo["runtimes"]["litert"]["accuracy"]
    assert rep["float"] == demo["float"] and rep["split"] == "test"
