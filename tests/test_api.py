"""The public API: load from a path or bytes, input checks, error types."""
import subprocess
import sys

import numpy as np
import pytest

import zoo
import edgelstm
from edgelstm import EdgeLSTMError, InputError, ModelError


@pytest.fixture(scope="module")
def basic_path(tmp_path_factory):
    p = tmp_path_factory.mktemp("m") / "basic.tflite"
    p.write_bytes(zoo.build("basic"))
    return p


def test_load_path_and_bytes_agree(basic_path):
    a = edgelstm.load(basic_path)
    b = edgelstm.load(basic_path.read_bytes())
    x = np.full(a.inputs[0].shape, 5, np.int8)
    assert np.array_equal(a.run(x), b.run(x))
    assert a.inputs[0].dtype == np.int8 and a.outputs[0].shape == (1, 4)
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in a.ops


def test_error_hierarchy():
    assert issubclass(ModelError, EdgeLSTMError) and issubclass(InputError, EdgeLSTMError)
    assert issubclass(EdgeLSTMError, ValueError)


@pytest.mark.parametrize("bad,message", [
    (np.zeros((1, 20, 6), np.float32), "must be int8"),
    (np.zeros((1, 21, 6), np.int8), "must have shape"),
    (np.zeros((20, 6), np.int8), "must have shape"),
    ([np.zeros((1, 20, 6), np.int8)] * 2, "has 1 inputs"),
    ("not an array", "expected a numpy array"),
])
def test_bad_inputs_raise_input_error(basic_path, bad, message):
    m = edgelstm.load(basic_path)
    with pytest.raises(InputError, match=message):
        m.run(bad)


def test_nan_in_float_input_is_refused():
    m = edgelstm.load(zoo.build("float_io"))
    x = np.zeros(m.inputs[0].shape, np.float32)
    x[0, 3, 1] = np.nan
    with pytest.raises(InputError, match="NaN"):
        m.run(x)


@pytest.mark.parametrize("data,message", [
    (b"", "only 0 bytes"),
    (b"\x00" * 64, "identifier"),
    (b"\x1c\x00\x00\x00TFL3" + b"\xff" * 40, "malformed"),
])
def test_malformed_bytes_raise_model_error(data, message):
    with pytest.raises(ModelError, match=message):
        edgelstm.load(data)


def test_truncated_model_raises_model_error(basic_path):
    data = basic_path.read_bytes()
    for cut in (len(data) // 2, len(data) - 100, 200):
        with pytest.raises(ModelError):
            edgelstm.load(data[:cut])


def test_missing_file(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        edgelstm.load(tmp_path / "nope.tflite")


def test_unknown_flavor(basic_path):
    with pytest.raises(ModelError, match="flavor"):
        edgelstm.load(basic_path, flavor="nope")


def test_runtime_import_does_not_import_tensorflow(basic_path):
    code = ("import sys, numpy as np, edgelstm; m = edgelstm.load(sys.argv[1]); "
            "m.run(np.zeros(m.inputs[0].shape, np.int8)); "
            "bad = [k for k in sys.modules if k.split('.')[0] in ('tensorflow', 'tf_keras', 'keras')]; "
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code, str(basic_path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_memory_budget_refuses_huge_planned_tensors(basic_path, monkeypatch):
    from tflite_build import edit

    def inflate(m):
        # three activations declared at 2^26 int32 elements each (768 MiB in all), shapes the
        # reader accepts one by one
        for t in [t for t in m.subgraphs[0].tensors if m.buffers[t.buffer].data is None][:3]:
            t.shape = [1, 1 << 26]
            t.shapeSignature = None
            t.type = 2  # INT32

    big = edit(basic_path.read_bytes(), inflate)
    with pytest.raises(edgelstm.ModelError, match="memory budget of 512 MiB"):
        edgelstm.load(big, memory_budget=512 << 20)
    monkeypatch.setenv("EDGELSTM_MEMORY_BUDGET", str(100 << 20))
    with pytest.raises(edgelstm.ModelError, match="above the memory budget of 100 MiB"):
        edgelstm.load(big)
    # raising the budget lets the load go on to the kernels' own checks (these shapes are inconsistent)
    with pytest.raises(edgelstm.ModelError) as exc:
        edgelstm.load(big, memory_budget=4 << 30)
    assert "memory budget" not in str(exc.value)
    monkeypatch.setenv("EDGELSTM_MEMORY_BUDGET", "lots")
    with pytest.raises(edgelstm.ModelError, match="EDGELSTM_MEMORY_BUDGET must be a number"):
        edgelstm.load(basic_path)
