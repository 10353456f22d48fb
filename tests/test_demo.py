"""The README's main job, on the real BasicMotions data (few epochs, to keep the suite quick)."""
import json

from edgelstm.demo import load_basicmotions, run_demo


def test_basicmotions_is_the_real_dataset():
    x_tr, y_tr, x_te, y_te, classes = load_basicmotions()
    assert x_tr.shape == (40, 100, 6) and x_te.shape == (40, 100, 6)
    assert classes == ["Badminton", "Running", "Standing", "Walking"]
    assert sorted(set(y_tr)) == [0, 1, 2, 3]


def test_demo_writes_a_verified_report(tmp_path):
    assert run_demo(tmp_path, epochs=3) == 0
    for name in ("model.keras", "model.tflite", "report.json"):
        assert (tmp_path / name).stat().st_size > 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["verify"]["bit_exact"] is True and report["verify"]["samples"] == 40
    assert report["latency_us"]["edgelstm"] > 0 and report["latency_us"]["litert_int8"] > 0
    assert report["model"]["macs"] == 100 * 4 * 32 * (6 + 32) + 4 * 32
