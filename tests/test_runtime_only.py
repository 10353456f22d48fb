"""The runtime install on its own: models converted elsewhere, run and verified without TensorFlow.

scripts/runtime_venv.sh (numpy 1.26 + tflite-runtime 2.14) and scripts/aarch64_emulated.sh (aarch64 +
LiteRT) point EDGELSTM_RUNTIME_MODELS at a directory of exported zoo models and
EDGELSTM_RUNTIME_REFERENCE at the interpreter installed there; nothing here imports TensorFlow or the
zoo then. Without them (the main suite) the same checks run on a few zoo models against LiteRT, so
this module cannot rot unnoticed between runtime jobs.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import edgelstm
from edgelstm.references import get_reference
from edgelstm.tflite_reader import read_model
from edgelstm.verify import make_inputs, unequal

MODELS_DIR = os.environ.get("EDGELSTM_RUNTIME_MODELS")
REFERENCE = os.environ.get("EDGELSTM_RUNTIME_REFERENCE", "litert")
REPORT = os.environ.get("EDGELSTM_RUNTIME_REPORT")  # one JSON line per CLI verification

# Zoo models on which a reference's FULLY_CONNECTED rounds differently from LiteRT's reference kernel
# (which edgelstm follows): tflite-runtime 2.14 requantizes with the fixed-point multiplier, as
# LiteRT's optimized kernels still do, and lands 1 LSB off on a few elements. Asserted both ways: a
# listed model must differ only there and by at most 1 LSB, an unlisted one must be bit-exact.
FC_ROUNDING: dict[str, set[str]] = {
    "tflite-runtime": {"batch4", "dynamic_time_dense", "float_io", "long_t500", "seq2seq_td"},
    "litert": set(),
}
MAIN_SUITE_MODELS = ["basic", "bidirectional", "dynamic_time"]


def _names() -> list[str]:
    if MODELS_DIR:
        names = sorted(p.stem for p in Path(MODELS_DIR).glob("*.tflite"))
        assert names, f"no .tflite files in EDGELSTM_RUNTIME_MODELS={MODELS_DIR}"
        return names
    return MAIN_SUITE_MODELS


@pytest.fixture(scope="module")
def model_paths(tmp_path_factory) -> dict[str, Path]:
    if MODELS_DIR:
        return {n: Path(MODELS_DIR) / f"{n}.tflite" for n in _names()}
    import zoo

    d = tmp_path_factory.mktemp("runtime_models")
    for n in MAIN_SUITE_MODELS:
        (d / f"{n}.tflite").write_bytes(zoo.build(n))
    return {n: d / f"{n}.tflite" for n in MAIN_SUITE_MODELS}


def _lsb(data: bytes) -> list[float]:
    """Per model output, the size of one int8 step: 1 for int8 outputs, the scale of the int8
    tensor a DEQUANTIZE turns into a float output."""
    g = read_model(data)
    steps = []
    for o in g.outputs:
        if g.tensors[o].dtype == np.int8:
            steps.append(1.0)
            continue
        deq = [op for op in g.operators if op.opcode == "DEQUANTIZE" and o in op.outputs]
        assert deq, f"float output {g.tensors[o].name} does not come from a DEQUANTIZE"
        steps.append(float(np.ravel(g.tensors[deq[0].inputs[0]].quant.scale)[0]))
    return steps


def test_fc_rounding_list_names_existing_models():
    # in the venv job: the exported models; in the main suite: the zoo they are exported from
    if MODELS_DIR:
        names = set(_names())
    else:
        import zoo

        names = set(zoo.names())
    missing = FC_ROUNDING.get(REFERENCE, set()) - names
    assert not missing, f"FC_ROUNDING[{REFERENCE!r}] names models that were not exported: {sorted(missing)}"


def _as_list(o) -> list[np.ndarray]:
    return o if isinstance(o, list) else [o]


@pytest.mark.parametrize("name", _names())
def test_api_matches_reference(name, model_paths):
    """load / run / run(reset=False) / run_batch against the reference, two samples each."""
    data = model_paths[name].read_bytes()
    m = edgelstm.load(data)
    xs = make_inputs(m, samples=2, seed=7, time_steps=12)
    ours = [m.run(x) for x in xs]
    batch = m.run_batch(xs, workers=2)
    m.reset()
    carried = [m.run(x, reset=False) for x in xs]
    for a, b in zip(ours, batch):
        assert all(np.array_equal(p, q) for p, q in zip(_as_list(a), _as_list(b))), "run_batch != run"

    ref = get_reference(REFERENCE, data)
    theirs = [ref.run(x, reset=True) for x in xs]
    theirs_carried = [ref.run(xs[0], reset=True)] + [ref.run(x, reset=False) for x in xs[1:]]
    tolerant = name in FC_ROUNDING.get(REFERENCE, set())
    for got, want in ((ours, theirs), (carried, theirs_carried)):
        for g, w in zip(got, want):
            for p, q, step in zip(_as_list(g), w, _lsb(data)):
                assert p.shape == q.shape and p.dtype == q.dtype
                differ = unequal(p, q)
                if tolerant:
                    worst = np.abs(p.astype(np.float64) - q.astype(np.float64)).max()
                    assert worst <= step * 1.001, f"{worst} > 1 LSB ({step})"
                else:
                    assert not np.any(differ), f"{int(np.count_nonzero(differ))} elements differ"
    if tolerant:
        _assert_differences_start_at_fc(m, data, xs)


def _assert_differences_start_at_fc(m, data: bytes, xs) -> None:
    """Every tensor that differs from the reference is a FULLY_CONNECTED output or computed from one
    (so the LSTM and every other op matched exactly)."""
    g = m.graph
    downstream: set[int] = set()
    for op in g.operators:  # stored in execution order
        if op.opcode == "FULLY_CONNECTED" or any(i in downstream for i in op.inputs):
            downstream.update(op.outputs)
    ref = get_reference(REFERENCE, data, preserve_all_tensors=True)
    for x in xs:
        ref.run(x, reset=True)
        theirs, ours = ref.tensors(), m.run_all_tensors(x, reset=True)
        for op in g.operators:
            for o in op.outputs:
                if o in theirs and o in ours and np.any(unequal(ours[o], theirs[o])):
                    assert o in downstream, f"{op.opcode} output {g.tensors[o].name} differs"


def _edgelstm_cmd() -> list[str]:
    script = Path(sys.executable).with_name("edgelstm")
    return [str(script)] if script.exists() else [sys.executable, "-m", "edgelstm"]


@pytest.mark.parametrize("name", _names())
def test_cli_verify(name, model_paths):
    """`edgelstm verify MODEL --against REFERENCE --json`, as a user on the device runs it."""
    path = model_paths[name]
    proc = subprocess.run(_edgelstm_cmd() + ["verify", str(path), "--against", REFERENCE, "--json"],
                          capture_output=True, text=True, timeout=1800)
    row = {"model": name, "reference": REFERENCE, "exit": proc.returncode}
    try:
        assert proc.returncode in (0, 1), (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
        res = json.loads(proc.stdout)
        elements = sum(o["elements"] for o in res["outputs"])
        row.update(elements=elements, differing=res["mismatched_elements"], samples=res["samples"],
                   reference_version=res["reference"]["version"], status=res["status"])
        assert res["reference"]["name"] == REFERENCE
        if res["status"] != "ok":  # the reference's process crashed or timed out: say where
            row["result"], row["reason"] = res["status"], res["detail"]
        assert res["status"] == "ok", res["detail"]
        assert elements > 0 and res["samples"] > 0 and res["state_checked"]
        if name in FC_ROUNDING.get(REFERENCE, set()):
            row["result"] = "FC rounding" if not res["bit_exact"] else "bit-exact"
            assert not res["bit_exact"] and proc.returncode == 1, f"{name} is bit-exact now: remove it from FC_ROUNDING"
            assert res["first_mismatch"]["opcode"] == "FULLY_CONNECTED", res["first_mismatch"]
            for o, step in zip(res["outputs"], _lsb(path.read_bytes())):
                assert o["max_abs_diff"] <= step * 1.001, (o, step)
                assert 4 * o["mismatched_elements"] <= o["elements"], o  # rare ties, not systematic
        else:
            row["result"] = "bit-exact" if res["bit_exact"] else "MISMATCH"
            assert res["bit_exact"] and res["mismatched_elements"] == 0 and proc.returncode == 0, res
    except (AssertionError, json.JSONDecodeError):
        row.setdefault("result", "FAILED")
        row.setdefault("reason", (proc.stderr.strip().splitlines() or ["?"])[-1])
        raise
    finally:
        if REPORT:
            with open(REPORT, "a") as f:
                f.write(json.dumps(row) + "\n")


def test_graph_layer_needs_neither_tensorflow_nor_litert(model_paths):
    """edgelstm.graph (the .tflite writer, the repair, the streaming rewrite) imports and works with
    TensorFlow and ai-edge-litert unimportable: the `tflite` bindings are all it writes with."""
    paths = [str(p) for p in model_paths.values()]
    code = ("import sys\n"
            "for name in ('tensorflow', 'tf_keras', 'keras', 'ai_edge_litert'):\n"
            "    sys.modules[name] = None\n"
            "from edgelstm.errors import ConversionError\n"
            "from edgelstm.graph import pack, streaming_model, unpack\n"
            "from edgelstm.graph.repair import apply, plan\n"
            "from edgelstm.tflite_reader import read_model\n"
            "streamed = 0\n"
            f"for path in {paths!r}:\n"
            "    raw = open(path, 'rb').read()\n"
            "    assert unpack(pack(unpack(raw))) == unpack(raw), path\n"
            "    read_model(apply(raw, plan(raw)))\n"
            "    try:\n"
            "        read_model(streaming_model(raw))\n"
            "        streamed += 1\n"
            "    except ConversionError:\n"
            "        pass\n"
            "assert streamed > 0\n"
            "print('graph ok')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "graph ok" in proc.stdout
