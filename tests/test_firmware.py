"""`edgelstm firmware`: the generated C library and the TFLite Micro kit, proven on the host and in
an emulated Cortex-M (qemu-system-arm; needs gcc, arm-none-eabi-gcc, newlib and qemu, which
scripts/test.sh installs).

- Every zoo model TFLite Micro runs: host C (built with sanitizers), the Cortex-M4 build in QEMU,
  edgelstm's tflm flavour and the real TFLite Micro interpreter give identical outputs; model_step
  reproduces model_run where the graph allows streaming and is refused, naming the op, where not;
  flash and RAM agree with arm-none-eabi-size; the instruction counter passes its check.
- Other cores: Cortex-M0+ (micro:bit), M3, M7 and M33 on small models.
- The op-level zoo models TFLite Micro runs (several inputs/outputs, transposes, slices,
  convolutions, pooling, reductions, softmax...), on the host; those it cannot run (asked of the
  real interpreter) are refused by the tflm flavour and the generator.
- The LSTM at the edges of TFLM's prepare (a cell scale next to 2^(k + 1/2), a cell clip below one
  step of the cell scale): host C and the Cortex-M4 build equal the tflm flavour and TFLite Micro.
- What the generator cannot do is refused with an error naming the op.
- The memory planner never overlaps live buffers; the library calls no malloc and no float helper.
"""
from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import edgelstm
import zoo
from edgelstm import ModelError, ReferenceUnavailable
from edgelstm.firmware_sim import TARGETS, default_inputs, firmware
from edgelstm.firmware_sim import build, codegen
from edgelstm.references import available, get_reference
from edgelstm.tflite_reader import read_model
from test_tflm import CELL_SCALE_EDGES, TFLM_CANNOT_RUN, ZOO_TFLM, lstm_edge_model
from tflite_build import T, single_op_model

TOOLS = ("gcc", "arm-none-eabi-gcc", "arm-none-eabi-size", "arm-none-eabi-nm", "qemu-system-arm")
# zoo models whose graph mixes timesteps before the output, so there is no per-timestep function
NOT_STREAMABLE = {"bidirectional": "REVERSE_V2", "conv1d_lstm": "CONV_2D", "pool_heads": "REDUCE_MAX"}


def test_toolchain_installed():
    missing = [t for t in TOOLS if shutil.which(t) is None]
    assert not missing, (f"missing {missing}: apt-get install -y {build.APT_PACKAGES} "
                         "(scripts/test.sh does it)")


@pytest.fixture(scope="module")
def fw(tmp_path_factory):
    """firmware() once per (model, target) for the whole module: every build is reused."""
    cache: dict = {}

    def get(name: str, target="cortex-m4"):
        key = (name, target)
        if key not in cache:
            out = tmp_path_factory.mktemp(f"fw_{name}_{target or 'host'}")
            cache[key] = (firmware(zoo.build(name), target=target, out=out), out)
        return cache[key]
    return get


def _size(elf: str) -> dict:
    out = subprocess.run(["arm-none-eabi-size", "-B", elf], capture_output=True, text=True, check=True).stdout
    text, data, bss = (int(v) for v in out.splitlines()[1].split()[:3])
    return {"text": text, "data": data, "bss": bss}


def _check_report(rep: dict, target: str) -> None:
    checks = rep["comparison"]["checks"]
    assert rep["outputs_match_tflm"], checks
    for want in ("tflm flavour vs TFLite Micro", "host C vs tflm flavour", f"{target} (qemu) vs tflm flavour",
                 f"{target} (qemu) vs host C", f"{target} (qemu) vs TFLite Micro"):
        assert checks[want]["equal"] and checks[want]["elements"] > 0 and checks[want]["differing"] == 0, want
    counter = rep["target"]["counter"]
    assert counter["exact"] and counter["loop_delta_measured"] == counter["loop_delta_expected"] == 4000
    # the report's memory figures are arm-none-eabi-size's, plus the measured stack
    size = _size(rep["target"]["elf"])
    assert rep["flash_bytes"] == size["text"] + size["data"]
    assert rep["ram_bytes"] == size["data"] + size["bss"] + rep["target"]["stack_bytes"]
    assert 0 < rep["target"]["stack_bytes"] < 8192
    # every multiply-accumulate is at least one instruction: a count below that is a broken counter
    assert rep["instructions_per_inference"] >= rep["macs_per_inference"] > 0
    assert rep["instructions_per_inference_min"] <= rep["instructions_per_inference"] <= \
        rep["instructions_per_inference_max"]
    lat = rep["latency"]
    assert 0 < lat["latency_ms_low"] <= lat["latency_ms"] <= lat["latency_ms_high"]


# -- the zoo on the host and the Cortex-M4 ---------------------------------------------------------------
@pytest.mark.parametrize("name", ZOO_TFLM)
def test_zoo_model_bit_exact_host_m4_tflm(fw, name):
    rep, out = fw(name)
    _check_report(rep, "cortex-m4")
    # independently of the report: the device's outputs.npy against a fresh TFLite Micro run
    data = zoo.build(name)
    samples = default_inputs(edgelstm.load(data, flavor="tflm"))
    ref = get_reference("tflm", data)
    want = np.stack([ref.run(xs, reset=True)[0] for xs in samples])
    got = np.load(out / "outputs.npy")
    assert got.dtype == want.dtype and np.array_equal(got, want)

    step = rep["step"]
    if name in NOT_STREAMABLE:
        assert not step["available"] and NOT_STREAMABLE[name] in step["reason"]
    else:
        assert step["available"] and step["matches_run"] and step["host_matches_run"]
        assert step["differing"] == 0 and step["elements"] == want.size
        assert rep["instructions_per_timestep_source"] == "model_step calls"


def test_report_numbers_are_plausible(fw):
    """T steps cost what a whole-sequence run costs, within the Dense head's share; a 300-unit LSTM
    spends fewer instructions per MAC than a 16-unit one (per-row costs amortized); the LSTM
    kernels are where the instructions go."""
    rep, _ = fw("basic")
    assert abs(rep["instructions_per_timestep"] * 20 - rep["instructions_per_inference"]) < \
        0.05 * rep["instructions_per_inference"]
    wide, _ = fw("wide_h300")
    assert wide["instructions_per_inference"] > 10 * rep["instructions_per_inference"]
    assert wide["instructions_per_mac"] < rep["instructions_per_mac"]
    by_fn = wide["target"]["instructions_by_function"]
    assert max(by_fn, key=by_fn.get).startswith("el_")


# -- other cores ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("target,name", [("cortex-m0plus", "basic"), ("cortex-m0plus", "seq2seq_td"),
                                         ("cortex-m7", "basic"), ("cortex-m7", "stacked3"),
                                         ("cortex-m3", "basic"), ("cortex-m33", "basic")])
def test_other_cores(fw, target, name):
    rep, _ = fw(name, target)
    _check_report(rep, target)
    assert rep["target"]["machine"] == TARGETS[target].machine
    m4, _ = fw(name)
    if target == "cortex-m0plus":  # Thumb-1 only, no long multiply: more instructions than the M4
        assert rep["instructions_per_inference"] > m4["instructions_per_inference"]
        assert rep["ram_bytes"] < 16 << 10  # fits the micro:bit
    if target in ("cortex-m7", "cortex-m33", "cortex-m3"):  # same Thumb-2 code generation family
        assert rep["step"]["matches_run"]


def test_big_model_refused_on_small_board(tmp_path):
    """wide_h300's 370 KB of weights do not fit the micro:bit's 256 KB flash: the link says so."""
    with pytest.raises(edgelstm.EdgeLSTMError, match="overflow|will not fit|region"):
        firmware(zoo.build("wide_h300"), target="cortex-m0plus", out=tmp_path)


# -- the LSTM at the edges of TFLM's prepare ------------------------------------------------------------------
def test_lstm_cell_scale_next_to_2_to_the_k_plus_half(tmp_path):
    """The cell-state exponent is TFLM's CheckedLog2 (-13 here; round(log2) says -12): the C takes
    the tanh(c) scaling from the flavour's record and equals TFLite Micro on host and Cortex-M4."""
    scale, _ = CELL_SCALE_EDGES["just above 2^-12.5"]
    rep = firmware(lstm_edge_model(cell_scale=scale), target="cortex-m4", out=tmp_path)
    _check_report(rep, "cortex-m4")


def test_lstm_cell_clip_below_one_step(tmp_path):
    """A positive cell_clip whose quantized bound truncates to 0 still clips (every cell state to 0),
    in TFLite Micro and in the C (cell_clipping set, cell_clip 0); the clip changes the outputs."""
    data = lstm_edge_model(cell_clip=1e-6)
    rep = firmware(data, target="cortex-m4", out=tmp_path)
    _check_report(rep, "cortex-m4")
    model_c = (tmp_path / "lib" / "model.c").read_text()
    assert re.search(r"\.cell_clipping = 1,\s*\.cell_clip = 0,", model_c)
    samples = default_inputs(edgelstm.load(data, flavor="tflm"))
    unclipped = get_reference("tflm", lstm_edge_model(cell_clip=0.0))
    assert not np.array_equal(np.load(tmp_path / "outputs.npy"),
                              np.stack([unclipped.run(xs, reset=True)[0] for xs in samples]))


# -- the op-level models ---------------------------------------------------------------------------------------
def _op_zoo_models() -> list[str]:
    """Register the ops_* models of tests/ops (their builders live next to the op tests)."""
    here = Path(__file__).parent / "ops"
    for f in sorted(here.glob("test_*.py")):
        name = f"_fw_ops_{f.stem}"
        if name in sys.modules:
            continue
        spec = importlib.util.spec_from_file_location(name, f)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return sorted(n for n in zoo.names() if n.startswith("ops_"))


OP_MODELS = _op_zoo_models()


# Models TFLite Micro runs although their stored sizes contradict each other (a dynamic time axis
# stored as 1, where the op's output needs another length): TFLM has no dynamic shapes and does not
# check, so what it computes there means nothing (CONCATENATION writes [1, 2, 6] into a [1, 1, 6]
# tensor). The tflm flavour refuses them, naming the op; LiteRT, which resizes, shows the contradiction.
STORED_SHAPES_CONTRADICT = {"ops_concat_dynamic": "CONCATENATION", "ops_pool_dynamic": "MAX_POOL_2D"}


def tflm_failure(data: bytes) -> str | None:
    """The real TFLite Micro's answer: why it cannot load, allocate or invoke `data` (zeros at the
    stored input shapes, the only ones it runs), or None when it runs it."""
    assert "tflm" in available(), "tflite-micro is not installed: no interpreter to ask"
    g = read_model(data)
    try:
        get_reference("tflm", data).run([np.zeros(g.tensors[i].shape, g.tensors[i].dtype) for i in g.inputs])
    except ReferenceUnavailable as exc:
        return str(exc)
    return None


@pytest.mark.parametrize("name", OP_MODELS + sorted(TFLM_CANNOT_RUN))
def test_op_models_on_host(tmp_path, name):
    """Every ops_* model TFLite Micro runs: the host library is bit-exact with the tflm flavour and
    TFLite Micro. Those the tflm flavour refuses are refused by the firmware too, and the real
    TFLite Micro must refuse them as well (fail to load, allocate or invoke), or run them only where
    their stored sizes contradict each other (STORED_SHAPES_CONTRADICT)."""
    data = zoo.build(name)
    try:
        edgelstm.load(data, flavor="tflm")
        ours = None
    except ModelError as exc:
        ours = str(exc)
    theirs = tflm_failure(data)
    if ours is not None or theirs is not None:
        assert ours is not None, f"TFLite Micro refuses {name} ({theirs}) but the tflm flavour loads it"
        if name in STORED_SHAPES_CONTRADICT:
            assert theirs is None, f"TFLite Micro now refuses {name}: move it out of STORED_SHAPES_CONTRADICT"
            assert STORED_SHAPES_CONTRADICT[name] in ours, ours
            g = read_model(data)
            stored = [tuple(g.tensors[i].shape) for i in g.outputs]
            resized = [tuple(y.shape) for y in get_reference("litert", data).run(
                [np.zeros(g.tensors[i].shape, g.tensors[i].dtype) for i in g.inputs])]
            assert resized != stored, (resized, stored)
        else:
            assert theirs is not None, f"the tflm flavour refuses {name} ({ours}) but TFLite Micro runs it"
        # nothing TFLite Micro computes to match: the firmware must refuse rather than emit C nobody
        # can check
        with pytest.raises(edgelstm.EdgeLSTMError):
            firmware(data, target=None, out=tmp_path)
        return
    assert name not in STORED_SHAPES_CONTRADICT, f"the tflm flavour now runs {name}"
    rep = firmware(data, target=None, out=tmp_path)
    checks = rep["comparison"]["checks"]
    assert rep["outputs_match_tflm"], checks
    assert checks["host C vs TFLite Micro"]["elements"] > 0
    if rep["step"]["available"]:
        assert rep["step"]["matches_run"], rep["step"]


# -- refusals and properties ------------------------------------------------------------------------------------
def test_op_without_c_kernel_is_refused_by_name(tmp_path):
    q = (0.05, 3)
    data = single_op_model("GATHER", [T(np.int8, (4, 6), q, name="x"), T(np.int32, (2,), data=np.array([3, 1], np.int32))],
                           [T(np.int8, (2, 6), q, name="y")])
    edgelstm.load(data, flavor="tflm")  # the flavour runs it
    with pytest.raises(ModelError, match="GATHER"):
        codegen.generate(edgelstm.load(data, flavor="tflm"))
    with pytest.raises(ModelError, match="GATHER"):
        firmware(data, target=None, out=tmp_path)


def test_tflite_flavour_model_is_not_accepted():
    with pytest.raises(ModelError, match="tflm"):
        codegen.generate(edgelstm.load(zoo.build("basic")))


def test_memory_plan_never_overlaps_live_buffers():
    rng = np.random.default_rng(5)
    for _ in range(200):
        n_t = int(rng.integers(2, 12))
        sizes = {t: int(rng.integers(1, 300)) for t in range(n_t)}
        calls = []
        for pos in range(int(rng.integers(1, 15))):
            reads = tuple(int(v) for v in rng.choice(n_t, size=int(rng.integers(0, 3)), replace=False))
            writes = (int(rng.integers(0, n_t)),)
            calls.append(codegen.Call("", reads, writes, int(rng.integers(0, 2)) * int(rng.integers(1, 64))))
        offsets, total = codegen.plan_memory(calls, sizes, external={0})
        live = {}
        for pos, c in enumerate(calls):
            for t in c.reads + c.writes:
                if t != 0:
                    live.setdefault(t, [pos, pos])[1] = pos
            if c.scratch_bytes:
                live[("scratch", pos)] = [pos, pos]
        assert 0 not in offsets
        nbytes = {k: (calls[k[1]].scratch_bytes if isinstance(k, tuple) else sizes[k]) for k in live}
        keys = list(live)
        for i, a in enumerate(keys):
            assert offsets[a] % 4 == 0 and offsets[a] + nbytes[a] <= total
            for b in keys[i + 1:]:
                if live[a][1] < live[b][0] or live[b][1] < live[a][0]:
                    continue
                assert offsets[a] + nbytes[a] <= offsets[b] or offsets[b] + nbytes[b] <= offsets[a], (a, b)


def test_no_malloc_no_floating_point(fw):
    rep, out = fw("batchnorm_relu")  # FC, MUL, ADD, SOFTMAX, two LSTMs
    syms = build.symbols(Path(rep["target"]["elf"]))
    assert not [s for s in syms if s in ("malloc", "_malloc_r", "calloc", "free", "_sbrk")]
    archive = Path(rep["target"]["elf"]).parent / "libmodel.a"
    assert build.undefined_float_helpers(archive) == []
    code = re.sub(r"/\*.*?\*/", "", (out / "lib" / "model.c").read_text(), flags=re.S)
    assert not re.search(r"\b(float|double)\b", code)
    for f in (out / "lib").glob("el_*.c"):
        assert not re.search(r"\b(float|double)\b", re.sub(r"/\*.*?\*/", "", f.read_text(), flags=re.S)), f


def test_tflm_kit(fw):
    rep, out = fw("batchnorm_relu")
    data = zoo.build("batchnorm_relu")
    src = (out / "tflm" / "model_data.cc").read_text()
    assert "alignas(16) const unsigned char g_model[]" in src
    assert bytes(int(h, 16) for h in re.findall(r"0x([0-9a-f]{2})", src)) == data
    resolver = (out / "tflm" / "op_resolver.h").read_text()
    ops = rep["tflm_kit"]["ops"]
    assert ops == ["UNIDIRECTIONAL_SEQUENCE_LSTM", "MUL", "ADD", "STRIDED_SLICE", "FULLY_CONNECTED", "SOFTMAX"]
    assert f"MicroMutableOpResolver<{len(ops)}>" in resolver
    assert resolver.count("TF_LITE_ENSURE_STATUS(resolver.Add") == len(ops)
    assert "AddUnidirectionalSequenceLSTM()" in resolver and "AddSoftmax()" in resolver
    kit = rep["tflm_kit"]
    assert kit["arena_bytes"] > 0 and kit["arena_recommended"] >= kit["arena_bytes"]
    assert f"kTensorArenaSize = {kit['arena_recommended']}" in resolver


def test_float_io_model_leaves_the_boundary_to_the_caller(fw):
    rep, out = fw("float_io")
    lib = rep["library"]
    assert lib["inputs"][0]["float_boundary_op"] is not None and lib["outputs"][0]["float_boundary_op"] is not None
    assert np.load(out / "outputs.npy").dtype == np.float32
    header = (out / "lib" / "model.h").read_text()
    assert "QUANTIZE" in header and "left to you" in header


def test_cli(tmp_path):
    data = zoo.build("odd_h7_f5")
    model = tmp_path / "m.tflite"
    model.write_bytes(data)
    x = np.random.default_rng(3).integers(-128, 128, size=(4, 1, 13, 5), dtype=np.int8)
    np.save(tmp_path / "x.npy", x)
    res = subprocess.run([sys.executable, "-m", "edgelstm", "firmware", str(model), "--target", "cortex-m4",
                          "--out", str(tmp_path / "fw"), "--inputs", str(tmp_path / "x.npy"), "--json"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    rep = json.loads(res.stdout)
    for key in ("outputs_match_tflm", "flash_bytes", "ram_bytes", "instructions_per_inference",
                "instructions_per_timestep", "latency"):
        assert key in rep
    assert rep["outputs_match_tflm"] and rep["comparison"]["samples"] == 4
    m = edgelstm.load(data, flavor="tflm")
    assert np.array_equal(np.load(tmp_path / "fw" / "outputs.npy"), np.stack([m.run(xi) for xi in x]))
    table = subprocess.run([sys.executable, "-m", "edgelstm", "firmware", str(model), "--target", "host",
                            "--out", str(tmp_path / "fw2")], capture_output=True, text=True)
    assert table.returncode == 0 and "outputs match TFLite Micro: YES" in table.stdout
    bad = subprocess.run([sys.executable, "-m", "edgelstm", "firmware", str(model), "--target", "cortex-m99",
                          "--out", str(tmp_path / "fw3")], capture_output=True, text=True)
    assert bad.returncode == 2 and "cortex-m99" in bad.stderr
