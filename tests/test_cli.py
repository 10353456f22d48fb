"""The command line, run as a user would (a subprocess per call)."""
import json
import subprocess
import sys

import numpy as np
import pytest

import zoo


def cli(*args):
    return subprocess.run([sys.executable, "-m", "edgelstm.cli", *map(str, args)], capture_output=True, text=True)


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


def test_verify_against_all(model_path):
    r = cli("verify", model_path, "--samples", "4", "--against", "all", "--json")
    assert r.returncode == 0, r.stderr
    obj = json.loads(r.stdout)
    assert obj["bit_exact"] is True
    assert {ref["name"] for ref in obj["reference"]} >= {"litert", "tflite"}


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


@pytest.mark.parametrize("args,message", [
    (["verify", "missing.tflite"], "not found"),
    (["run", "{model}", "--input", "{bad}", "--output", "{out}"], "expected dtype int8, got float64"),
    (["run", "{model}", "--input", "{pickle}", "--output", "{out}"], "not a plain .npy"),
])
def test_errors_are_one_line_exit_2(model_path, tmp_path, args, message):
    np.save(tmp_path / "bad.npy", np.zeros((1, 20, 6), np.float64))
    np.save(tmp_path / "pickle.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    fmt = dict(model=model_path, bad=tmp_path / "bad.npy", out=tmp_path / "o.npy", pickle=tmp_path / "pickle.npy")
    r = cli(*[a.format(**fmt) for a in args])
    assert r.returncode == 2
    assert message in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


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
    assert any(u["name"] == "tflite" and "REVERSE_V2" in u["error"] for u in obj["unavailable"])


def test_info_json(model_path):
    r = cli("info", model_path, "--json")
    assert r.returncode == 0, r.stderr
    obj = json.loads(r.stdout)
    assert obj["ops"].count("UNIDIRECTIONAL_SEQUENCE_LSTM") == 3
    assert obj["inputs"][0]["shape"] == [1, 20, 6] and obj["inputs"][0]["dtype"] == "int8"
