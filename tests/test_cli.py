"""The command line, run as a user would (a subprocess per call)."""
import json

import numpy as np
import pytest

import zoo
from cli_run import cli




@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    p = tmp_path_factory.mktemp("cli") / "stacked.tflite"
    p.write_bytes(zoo.build("stacked3"))
    return p


def test_verify_json_bit_exact(model_path):
    r = cli("verify", model_path, "--samples", "5", "--json")
    assert r.returncode == 0, r.stderr
    obj = json.loads(r.stdout)
    assert obj["bit_exact"] is True and obj["mismatched_elements"] == 0 and obj["max_abs_diff"] == 0
    assert obj["samples"] == 5 and obj["reference"]["name"] == "litert" and obj["reference"]["version"]
    assert obj["status"] == "ok" and obj["detail"] is None and obj["failed_input"] is None


def test_verify_against_all(model_path):
    r = cli("verify", model_path, "--samples", "4", "--against", "all", "--json")
    assert r.returncode == 0, r.stderr
    obj = json.loads(r.stdout)
    assert obj["bit_exact"] is True
    assert {ref["name"] for ref in obj["reference"]} >= {"litert", "tflite"}
    assert obj["status"] == {r["reference"]["name"]: "ok" for r in obj["results"]}
    assert all(r["status"] == "ok" for r in obj["results"]) and not obj["unavailable"]


def test_verify_table_and_inputs_file(model_path, tmp_path):
    x = np.random.default_rng(0).integers(-128, 128, size=(3, 1, 20, 6), dtype=np.int8)
    np.save(tmp_path / "x.npy", x)
    r = cli("verify", model_path, "--inputs", tmp_path / "x.npy")
    assert r.returncode == 0, r.stderr
    assert "BIT-EXACT" in r.stdout and "3 samples" in r.stdout


def test_run_writes_outputs(model_path, tmp_path):
    x = np.random.default_rng(1).integers(-128, 128, size=(2, 1, 20, 6), dtype=np.int8)
    np.save(tmp_path / "x.npy", x)
    r = cli("run", model_path, "--input", tmp_path / "x.npy", "--output", tmp_path / "y.npy")
    assert r.returncode == 0, r.stderr
    y = np.load(tmp_path / "y.npy")
    assert y.shape == (2, 1, 4) and y.dtype == np.int8


_BAD_INPUTS = {
    "float64": (np.zeros((1, 20, 6), np.float64), "expected dtype int8, got float64"),
    "shape": (np.zeros((1, 21, 6), np.int8), "must have shape [1, 20, 6]"),
    "rank": (np.zeros((20, 6), np.int8), "expected shape [1, 20, 6] or [N, *[1, 20, 6]]"),
    "empty": (np.zeros((0, 1, 20, 6), np.int8), "empty"),
    "pickle": (np.array([{"a": 1}], dtype=object), "not a plain .npy"),
}


def _write_bad(tmp_path, kind):
    p = tmp_path / f"{kind}.npy"
    if kind == "text":
        p.write_text("1,2,3\n")
    elif kind == "truncated":
        np.save(p, np.zeros((4, 1, 20, 6), np.int8))
        p.write_bytes(p.read_bytes()[:200])
    else:
        np.save(p, _BAD_INPUTS[kind][0], allow_pickle=True)
    return p


_MESSAGES = {**{k: v[1] for k, v in _BAD_INPUTS.items()}, "text": "not a .npy file (no NumPy header)", "truncated": "not a plain .npy"}


@pytest.mark.parametrize("command", ["run", "verify", "profile"])
@pytest.mark.parametrize("kind", sorted(_MESSAGES))
def test_bad_inputs_are_one_line_exit_2(model_path, tmp_path, command, kind):
    bad = _write_bad(tmp_path, kind)
    args = {"run": ["run", model_path, "--input", bad, "--output", tmp_path / "o.npy"],
            "verify": ["verify", model_path, "--inputs", bad],
            "profile": ["profile", model_path, "--inputs", bad, "--backends", "edgelstm", "--runs", "2"]}[command]
    r = cli(*args)
    assert r.returncode == 2, r.stdout + r.stderr
    assert _MESSAGES[kind] in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_nan_in_float_inputs_is_one_line_exit_2(tmp_path):
    p = tmp_path / "float_io.tflite"
    p.write_bytes(zoo.build("float_io"))
    import edgelstm

    x = np.zeros(edgelstm.load(p).inputs[0].shape, np.float32)
    x.flat[3] = np.nan
    np.save(tmp_path / "x.npy", x)
    for args in (["run", p, "--input", tmp_path / "x.npy", "--output", tmp_path / "y.npy"],
                 ["verify", p, "--inputs", tmp_path / "x.npy"]):
        r = cli(*args)
        assert r.returncode == 2 and "NaN or infinity" in r.stderr and "Traceback" not in r.stderr


def test_missing_model_and_debug_traceback(tmp_path):
    r = cli("verify", tmp_path / "missing.tflite")
    assert r.returncode == 2 and "not found" in r.stderr and "Traceback" not in r.stderr
    r = cli("--debug", "verify", tmp_path / "missing.tflite")
    assert r.returncode != 0 and "Traceback" in r.stderr


def test_help_lists_commands():
    r = cli("--help")
    assert r.returncode == 0
    for cmd in ("verify", "run", "info", "demo", "doctor"):
        assert cmd in r.stdout


def test_verify_all_reports_a_reference_that_cannot_load_the_model(tmp_path):
    p = tmp_path / "bidir.tflite"
    p.write_bytes(zoo.build("bidirectional"))
    r = cli("verify", p, "--samples", "4", "--against", "all", "--json")
    assert r.returncode == 0, r.stderr
    obj = json.loads(r.stdout)
    assert obj["bit_exact"] is True and "litert" in {ref["name"] for ref in obj["reference"]}
    assert any(u["name"] == "tflite" and u["status"] == "unavailable" and "REVERSE_V2" in u["error"]
               for u in obj["unavailable"])
    assert obj["status"]["tflite"] == "unavailable" and obj["status"]["litert"] == "ok"


def test_info_json(model_path):
    r = cli("info", model_path, "--json")
    assert r.returncode == 0, r.stderr
    obj = json.loads(r.stdout)
    assert obj["ops"].count("UNIDIRECTIONAL_SEQUENCE_LSTM") == 3
    assert obj["inputs"][0]["shape"] == [1, 20, 6] and obj["inputs"][0]["dtype"] == "int8"
