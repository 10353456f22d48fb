"""The runtime install on its own: models converted elsewhere, run and verified without TensorFlow.

scripts/runtime_venv.sh (numpy 1.26 + tflite-runtime 2.14) and scripts/aarch64_emulated.sh (aarch64 +
LiteRT) point EDGELSTM_RUNTIME_MODELS at a directory of exported zoo models and
EDGELSTM_RUNTIME_REFERENCE at the interpreter installed there; nothing here imports TensorFlow or the
zoo then. Without them (the main suite) the same checks run on a few zoo models against LiteRT, so
this module cannot rot unnoticed between runtime jobs.

Every model is checked in the flavour `edgelstm verify` picks for the reference (flavor_for: "tflite"
for LiteRT, "tflite-runtime" for tflite-runtime), and must be bit-exact there; OTHER_FLAVOR names
another flavour and the models on which it is not, so the flavour's own kernels are shown to matter.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import pytest

import edgelstm
from edgelstm.references import get_reference
from edgelstm.tflite_reader import read_model
from edgelstm.verify import flavor_for, make_inputs, unequal, verify

MODELS_DIR = os.environ.get("EDGELSTM_RUNTIME_MODELS")
REFERENCE = os.environ.get("EDGELSTM_RUNTIME_REFERENCE", "litert")
REPORT = os.environ.get("EDGELSTM_RUNTIME_REPORT")  # one JSON line per CLI verification
FLAVOR = flavor_for(REFERENCE)  # what `edgelstm verify --against REFERENCE` compares with: bit-exact on every model
MAIN_SUITE_MODELS = ["basic", "bidirectional", "dynamic_time"]


@dataclass(frozen=True)
class OtherFlavor:
    """Another flavour that differs from the reference on `models` under verify's default inputs: so
    the reference's own flavour is what makes them bit-exact (this can fail), and verify names that
    flavour after the mismatch. `opcode`: where the first difference is; `max_lsb`: its bound."""

    flavor: str
    models: frozenset
    opcode: Optional[str] = None
    max_lsb: Optional[int] = None


OTHER_FLAVOR = {
    # LiteRT's reference FULLY_CONNECTED rescales in double; tflite-runtime's optimized one uses the
    # fixed-point multiplier (ruy's rounding), 1 LSB apart on a few elements of these five
    "tflite-runtime": OtherFlavor("tflite", frozenset({"batch4", "dynamic_time_dense", "float_io", "long_t500",
                                                      "seq2seq_td"}), "FULLY_CONNECTED", 1),
    # TFLite Micro's LSTM (its own sigmoid/tanh tables, cell update) differs from LiteRT's
    "litert": OtherFlavor("tflm", frozenset(MAIN_SUITE_MODELS), "UNIDIRECTIONAL_SEQUENCE_LSTM"),
}


def _names() -> list[str]:
    if MODELS_DIR:
        names = sorted(p.stem for p in Path(MODELS_DIR).glob("*.tflite"))
        assert names, f"no .tflite files in EDGELSTM_RUNTIME_MODELS={MODELS_DIR}"
        return names
    return MAIN_SUITE_MODELS


# The operator test models (tests/ops), exported to MODELS_DIR/ops: they reach the kernels the zoo
# models barely exercise (convolutions, 4-D MEAN, SOFTMAX rows of 64, per-tensor rounding ties).
# The main suite checks them against LiteRT in tests/ops already; here it takes a few.
MAIN_SUITE_OP_MODELS = ["ops_conv1d_same", "ops_reduce_2d", "ops_softmax_in_w10"]
# Per reference: operator models on which OTHER_FLAVOR's flavour differs from it on the inputs of
# test_op_model_matches_reference, and the ops where a sample's first difference is
OTHER_FLAVOR_OPS: dict[str, dict[str, set[str]]] = {
    "tflite-runtime": {"ops_conv1d_same": {"CONV_2D"}, "ops_reduce_2d": {"CONV_2D", "MEAN"},
                       "ops_fc_dense_3d": {"FULLY_CONNECTED"}},
    "litert": {},
}


def _op_names() -> list[str]:
    if MODELS_DIR:
        names = sorted(p.stem for p in (Path(MODELS_DIR) / "ops").glob("*.tflite"))
        assert names, f"no .tflite files in {MODELS_DIR}/ops (export with scripts/runtime_venv.sh --export)"
        return names
    return MAIN_SUITE_OP_MODELS


def _op_model(name: str) -> bytes:
    if MODELS_DIR:
        return (Path(MODELS_DIR) / "ops" / f"{name}.tflite").read_bytes()
    import zoo

    if name not in zoo.names():  # registered by the tests/ops module that defines it
        for f in sorted((Path(__file__).parent / "ops").glob("test_*.py")):
            spec = importlib.util.spec_from_file_location(f"_runtime_only_{f.stem}", f)
            spec.loader.exec_module(importlib.util.module_from_spec(spec))
    return zoo.build(name)


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


def test_other_flavor_list_names_existing_models():
    # in the venv job: the exported models; in the main suite: the ones it runs
    assert REFERENCE in OTHER_FLAVOR, f"no OtherFlavor entry for {REFERENCE}"
    other = OTHER_FLAVOR[REFERENCE]
    assert other.flavor != FLAVOR and other.flavor in [f.name for f in edgelstm.flavors()]
    missing = (other.models - set(_names())) | (set(OTHER_FLAVOR_OPS.get(REFERENCE, {})) - set(_op_names()))
    assert not missing, f"OTHER_FLAVOR(_OPS)[{REFERENCE!r}] names models that were not exported: {sorted(missing)}"


def _as_list(o) -> list[np.ndarray]:
    return o if isinstance(o, list) else [o]


@pytest.mark.parametrize("name", _names())
def test_api_matches_reference(name, model_paths):
    """load / run / run(reset=False) / run_batch in the reference's flavour against the reference,
    two samples each."""
    data = model_paths[name].read_bytes()
    m = edgelstm.load(data, flavor=FLAVOR)
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
    for got, want in ((ours, theirs), (carried, theirs_carried)):
        for g, w in zip(got, want):
            for p, q in zip(_as_list(g), w):
                assert p.shape == q.shape and p.dtype == q.dtype
                differ = unequal(p, q)
                assert not np.any(differ), f"{int(np.count_nonzero(differ))} elements differ (flavor {FLAVOR})"


@pytest.mark.parametrize("name", sorted(OTHER_FLAVOR[REFERENCE].models) if REFERENCE in OTHER_FLAVOR else [])
def test_other_flavor_differs_and_verify_names_the_right_one(name, model_paths):
    """verify's default inputs in another flavour: a MISMATCH where that flavour's arithmetic is not
    the reference's, with the reference's own flavour named as the one that matches."""
    other = OTHER_FLAVOR[REFERENCE]
    data = model_paths[name].read_bytes()
    res = verify(data, reference=REFERENCE, flavor=other.flavor)
    assert res.status == "ok" and res.flavor == other.flavor, res.detail
    assert not res.bit_exact, f"flavor {other.flavor} is bit-exact with {REFERENCE} on {name} now"
    assert FLAVOR in res.matching_flavors, res.matching_flavors
    if other.opcode is not None and res.first_mismatch.op_index is not None:
        assert res.first_mismatch.opcode == other.opcode, res.first_mismatch
    if other.max_lsb is not None:
        for o, step in zip(res.outputs, _lsb(data)):
            assert o.max_abs_diff <= other.max_lsb * step * 1.001, (o, step)
            assert 4 * o.mismatched_elements <= o.elements, o  # rare ties, not systematic


@pytest.mark.parametrize("name", _op_names())
def test_op_model_matches_reference(name):
    """Every operator model in the reference's flavour, 8 inputs with the state reset and then
    carried; for those in OTHER_FLAVOR_OPS, the other flavour differs on the same inputs."""
    data = _op_model(name)
    m = edgelstm.load(data, flavor=FLAVOR)
    xs = make_inputs(m, samples=8, seed=3, time_steps=16)
    ref = get_reference(REFERENCE, data)
    expected = [ref.run(x, reset=True) for x in xs]
    expected_carried = [ref.run(xs[0], reset=True)] + [ref.run(x, reset=False) for x in xs[1:]]
    ours = [m.run(x) for x in xs]
    m.reset()
    carried = [m.run(x, reset=False) for x in xs]
    for got, want in ((ours, expected), (carried, expected_carried)):
        for g, w in zip(got, want):
            for p, q in zip(_as_list(g), w):
                assert p.shape == q.shape and not np.any(unequal(p, q)), f"differs in flavor {FLAVOR}"
    opcodes = OTHER_FLAVOR_OPS.get(REFERENCE, {}).get(name)
    if opcodes is None:
        return
    other = edgelstm.load(data, flavor=OTHER_FLAVOR[REFERENCE].flavor)
    ref_all = get_reference(REFERENCE, data, preserve_all_tensors=True)
    first_ops = set()
    for x in xs:
        ref_all.run(x, reset=True)
        theirs, ours = ref_all.tensors(), other.run_all_tensors(x, reset=True)
        if not any(np.any(unequal(ours[o], theirs[o])) for o in other.graph.outputs):
            continue
        first = next(op for op in other.graph.operators for o in op.outputs
                     if o in theirs and o in ours and np.any(unequal(ours[o], theirs[o])))
        first_ops.add(first.opcode)
    assert first_ops, f"flavor {OTHER_FLAVOR[REFERENCE].flavor} is bit-exact with {REFERENCE} on {name} now"
    assert first_ops == opcodes, first_ops


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
        assert res["reference"]["name"] == REFERENCE and res["flavor"] == FLAVOR, (res["reference"], res["flavor"])
        if res["status"] != "ok":  # the reference's process crashed or timed out: say where
            row["result"], row["reason"] = res["status"], res["detail"]
        assert res["status"] == "ok", res["detail"]
        assert elements > 0 and res["samples"] > 0 and res["state_checked"]
        row["result"] = "bit-exact" if res["bit_exact"] else "MISMATCH"
        if not res["bit_exact"]:
            row["reason"] = f"first difference {res['first_mismatch']}; matching flavors {res['matching_flavors']}"
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
