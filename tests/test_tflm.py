"""edgelstm's TFLite Micro flavor (flavor="tflm") against the real TFLite Micro interpreter
(the tflite-micro package, through edgelstm.references.tflm).

- Every zoo model TFLM can run, end to end (state reset per sample, then carried), and op by op:
  each operator fed TFLM's own input tensors must reproduce TFLM's output tensor.
- The models where LiteRT and TFLM disagree (tiny cell scales, bidirectional, stacked): each flavor
  matches its own interpreter, and the two flavors really differ.
- The LSTM under random quantizations, every cell-state scale 2^-20..2^-8, a scale that is no power
  of two, cell clipping, nonzero weight zero points.
- The LSTM at two edges of TFLM's prepare: the cell-state exponent is CheckedLog2's (float32 log,
  rounded half away from zero; checked against TFLM's own function, and on models whose cell scale
  sits next to 2^(k + 1/2)), and a positive cell_clip below one step of the cell scale clips every
  cell state to 0; in both, the rule edgelstm had before really gives other numbers.
- The ops whose TFLM arithmetic differs from LiteRT's (FULLY_CONNECTED, LOGISTIC, TANH, RELU6, MUL,
  SOFTMAX's check, int8 SUM) under random quantizations, with checks that the cases discriminate;
  and the ops that are the same code in both (RELU, LEAKY_RELU, ADD, QUANTIZE, DEQUANTIZE, MEAN,
  REDUCE_MAX) likewise, to prove it.
- What TFLM refuses, the flavor refuses (and each refusal is checked against TFLM).
"""
from __future__ import annotations

import ctypes
import dataclasses
import json
import math

import numpy as np
import pytest
from numba import njit

import edgelstm
import zoo
from cli_run import cli
from edgelstm import InputError, ModelError, ReferenceUnavailable
from edgelstm import lstm_shared as ls
from edgelstm.fixedpoint import checked_log2, mbqm, quantize_multiplier
from edgelstm.ops import build_kernel
from edgelstm.ops.lstm.tflm import hidden_params
from edgelstm.references import available, get_reference
from edgelstm.tflite_reader import read_model
from edgelstm.verify import unequal, verify
from tflite_build import T, edit, options, patched, single_op_model

# Zoo models TFLM runs; the others, with the op TFLM has no kernel for (checked below, so the
# list cannot go stale). dynamic_time runs at its stored placeholder length of 1: TFLM has no
# dynamic shapes.
ZOO_TFLM = ["basic", "tiny", "odd_h7_f5", "wide_h300", "long_t500", "stacked3", "seq2seq_td", "bidirectional",
            "conv1d_lstm", "pool_heads", "concat_add_flatten", "batchnorm_relu", "batch4", "dynamic_time",
            "float_io", "trained", "small_cell_scale", "time_major"]
TFLM_CANNOT_RUN = {"dynamic_time_dense": "REDUCE_PROD"}  # the converter computes a RESHAPE shape with it

ALL_INT8 = np.arange(-128, 128, dtype=np.int8).reshape(1, 256)


def tflm_inputs(data: bytes, n_random: int = 4, seed: int = 7) -> list[list[np.ndarray]]:
    """zoo.sample_inputs at the shapes TFLM runs (a dynamic dimension at its stored size, 1)."""
    g = read_model(data)
    dynamic = any(-1 in g.tensors[i].shape_signature for i in g.inputs)
    inputs = zoo.sample_inputs(data, n_random=n_random, seed=seed, time_steps=1 if dynamic else None)
    return inputs + [[np.zeros_like(a) for a in inputs[0]]]


def check_ops_tflm(data: bytes, inputs: list[np.ndarray]) -> int:
    """Feed every operator TFLM's own input tensors and compare its outputs with TFLM's; returns
    the number of elements compared. Variable inputs (LSTM state) are the reset state."""
    graph = read_model(data)
    model = edgelstm.load(data, flavor="tflm")  # the pinned graph the tflm flavor runs
    ref = get_reference("tflm", data, preserve_all_tensors=True)
    ref.run(inputs, reset=True)
    theirs = ref.tensors()
    for i, x in zip(graph.inputs, inputs):
        theirs[i] = x
    fresh = model.fresh_state()
    compared = 0
    for op in model.graph.operators:
        kernel = build_kernel(op, model.graph, "tflm")
        args = [None if i == -1 else fresh[i] if i in fresh else
                (model.graph.tensors[i].data if model.graph.tensors[i].data is not None else theirs[i])
                for i in op.inputs]
        for o, got in zip(op.outputs, kernel.run(args)):
            want = theirs[o]
            assert got.shape == want.shape, f"{op.describe()}: shape {got.shape} != {want.shape}"
            bad = int(np.count_nonzero(unequal(got, want)))
            assert bad == 0, f"{op.describe()}: {bad}/{got.size} elements differ from TFLM"
            compared += got.size
    return compared


def tflm_run(data: bytes, xs: list[np.ndarray]) -> np.ndarray:
    return get_reference("tflm", data).run(xs)[0]


def litert_run(data: bytes, xs: list[np.ndarray]) -> np.ndarray:
    return get_reference("litert", data).run(xs)[0]


# -- the zoo ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ZOO_TFLM)
def test_zoo_model_bit_exact_with_tflm(name):
    data = zoo.build(name)
    inputs = tflm_inputs(data)
    res = verify(data, reference="tflm", inputs=inputs, check_state=True)
    assert res.flavor == "tflm" and res.reference["name"] == "tflm"
    assert all(o.elements > 0 for o in res.outputs)
    assert res.bit_exact, (f"{name}: {res.mismatched_elements} elements differ (max {res.max_abs_diff}); "
                           f"first: {res.first_mismatch}")
    assert sum(check_ops_tflm(data, xs) for xs in inputs[:2]) > 0


@pytest.mark.parametrize("name", sorted(TFLM_CANNOT_RUN))
def test_zoo_models_tflm_cannot_run(name):
    data = zoo.build(name)
    opcode = TFLM_CANNOT_RUN[name]
    with pytest.raises(ReferenceUnavailable, match=opcode):
        get_reference("tflm", data)
    with pytest.raises(ModelError, match=f"TFLite Micro has no kernel for {opcode}"):
        edgelstm.load(data, flavor="tflm")
    edgelstm.load(data)  # the tflite flavor runs it


def test_every_zoo_model_is_listed():
    # ops_* belong to the op tests, stream_* to tests/test_streaming.py (which checks them in TFLM too);
    # they are registered only when those modules are imported, as in a full run
    own = {n for n in zoo.names() if not n.startswith(("ops_", "stream_"))}
    assert set(ZOO_TFLM) | set(TFLM_CANNOT_RUN) == own
    assert not set(ZOO_TFLM) & set(TFLM_CANNOT_RUN)


@pytest.mark.parametrize("name", ["small_cell_scale", "bidirectional", "stacked3"])
def test_each_flavor_matches_its_own_interpreter(name):
    """Where LiteRT's LSTM goes wrong (cell scale < 2^-15; hidden state requantized with
    intermediate 4), TFLM does not: each flavor matches its interpreter, and they differ."""
    data = zoo.build(name)
    lite, micro = edgelstm.load(data), edgelstm.load(data, flavor="tflm")
    lstm_outs = [op.outputs[0] for op in lite.graph.operators if op.opcode == "UNIDIRECTIONAL_SEQUENCE_LSTM"]
    flavors_differ = 0
    for xs in tflm_inputs(data, n_random=3):
        assert np.array_equal(lite.run(xs), litert_run(data, xs))
        assert np.array_equal(micro.run(xs), tflm_run(data, xs))
        a, b = lite.run_all_tensors(xs), micro.run_all_tensors(xs)
        flavors_differ += sum(int(np.count_nonzero(a[o] != b[o])) for o in lstm_outs)
    assert flavors_differ > 0


def test_small_cell_scale_is_below_2_to_the_minus_15():
    g = read_model(zoo.build("small_cell_scale"))
    op = [o for o in g.operators if o.opcode == "UNIDIRECTIONAL_SEQUENCE_LSTM"][0]
    assert g.tensors[op.inputs[19]].quant.s < 2.0 ** -15


# -- the LSTM under other quantizations ---------------------------------------------------------------
def _lstm_parts(data: bytes):
    g = read_model(data)
    op = [o for o in g.operators if o.opcode == "UNIDIRECTIONAL_SEQUENCE_LSTM"][0]
    return g, op


def _compare_lstm(data: bytes, seed: int, n_random: int = 2) -> int:
    """tflm flavor vs TFLM on a sequence model: reset per sample, then state carried; elements."""
    ours, ref = edgelstm.load(data, flavor="tflm"), get_reference("tflm", data)
    compared = 0
    for reset_each in (True, False):
        for k, xs in enumerate(zoo.sample_inputs(data, n_random=n_random, seed=seed)):
            reset = reset_each or k == 0
            a, b = ours.run(xs, reset=reset), ref.run(xs, reset=reset)[0]
            assert np.array_equal(a, b), f"{int(np.count_nonzero(a != b))} elements differ (sample {k}, reset={reset})"
            compared += a.size
    return compared


def test_lstm_random_quantizations():
    """Input, state (input 18, independent of the output tensor) and cell quantizations drawn at
    random, cell scales 2^-20 .. 2^-8 (TFLM's tanh input shift goes both ways)."""
    base = zoo.build("time_major")  # the LSTM's own output sequence is the model output
    g, op = _lstm_parts(base)
    x_i, h_i, c_i = op.inputs[0], op.inputs[18], op.inputs[19]
    rng = np.random.default_rng(11)
    for k, cs in enumerate(range(-20, -7)):
        def near(i):
            return float(np.float32(g.tensors[i].quant.s * 10 ** rng.uniform(-0.5, 0.5))), int(rng.integers(-128, 128))
        q = {x_i: near(x_i), h_i: near(h_i), c_i: (2.0 ** cs, None)}
        assert _compare_lstm(patched(base, q), seed=k) > 0


def test_lstm_cell_scale_not_a_power_of_two():
    """TFLM rounds log2 of the cell scale and carries on; LiteRT refuses the model."""
    base = zoo.build("time_major")
    _, op = _lstm_parts(base)
    data = patched(base, {op.inputs[19]: (1.3 * 2.0 ** -12, None)})
    assert _compare_lstm(data, seed=1) > 0
    with pytest.raises(ModelError, match="not a power of two"):
        edgelstm.load(data)


def test_lstm_cell_clip_and_weight_zero_points():
    """TFLM clips the cell state to int16(clip / scale) and subtracts weight zero points
    (its fully-connected weights_offset); the converter emits neither, so both are patched in."""
    base = zoo.build("time_major")
    _, op = _lstm_parts(base)

    def clip(m):
        m.subgraphs[0].operators[0].builtinOptions.cellClip = 0.4
    clipped = edit(base, clip)
    assert _compare_lstm(clipped, seed=2) > 0
    weights_zp = patched(base, {op.inputs[i]: (None, 5 - i) for i in range(1, 9)})
    assert _compare_lstm(weights_zp, seed=3) > 0
    x = zoo.sample_inputs(base, n_random=1)[0]
    for changed in (clipped, weights_zp):  # both really change the result
        assert not np.array_equal(edgelstm.load(changed, flavor="tflm").run(x),
                                  edgelstm.load(base, flavor="tflm").run(x))


# -- the LSTM at the edges of TFLM's prepare: cell-state exponent and cell clip ---------------------------
def f32_steps_from(x: float, steps: int) -> float:
    """The float32 `steps` representable values above float32(x) (below when negative)."""
    return float(np.array([int(np.float32(x).view(np.uint32)) + steps], np.uint32).view(np.float32)[0])


# Cell scales next to 2^(k + 1/2) whose exponent in TFLM (CheckedLog2) is not round(math.log2(scale)),
# with TFLM's exponent.
CELL_SCALE_EDGES = {
    "nearest 2^-13.5": (f32_steps_from(2.0 ** -13.5, 0), -13),  # double log2 -13.500000025
    "just above 2^-12.5": (f32_steps_from(2.0 ** -12.5, 1), -13),  # float32 log2 exactly -12.5: away from 0
    "above 2^-11.5": (f32_steps_from(2.0 ** -11.5, 3), -12),  # float32 log2 -11.5, double -11.4999995
}
# The one float32 cell scale in [2^-45, 2^5) where glibc's logf (what TFLM calls) puts CheckedLog2 on
# the other side of a half from the correctly rounded log edgelstm uses: glibc -31, edgelstm -30
# (an exhaustive C comparison over that range; tests below check the neighbourhood)
GLIBC_LOGF_EDGE = float.fromhex("0x1.6a09f6p-31")


def lstm_edge_model(cell_scale: float | None = None, cell_clip: float | None = None) -> bytes:
    """The time_major zoo model (one LSTM, its output sequence the model output) with its cell-state
    scale and/or its cell_clip option replaced."""
    data = zoo.build("time_major")
    if cell_clip is not None:
        def set_clip(m):
            m.subgraphs[0].operators[0].builtinOptions.cellClip = cell_clip
        data = edit(data, set_clip)
    if cell_scale is not None:
        _, op = _lstm_parts(data)
        data = patched(data, {op.inputs[ls.CELL_STATE]: (cell_scale, None)})
    return data


def _lstm_kernel(model: edgelstm.Model):
    return next(k for k in model.kernels if k.op.opcode == ls.OPCODE)


def _differs_from_tflm(data: bytes, change, seed: int = 5) -> int:
    """Elements where the tflm flavour with its LSTM record changed by `change(record)` (a rule
    edgelstm used to follow) differs from TFLM: state reset per sample, then carried."""
    model, ref = edgelstm.load(data, flavor="tflm"), get_reference("tflm", data)
    kernel = _lstm_kernel(model)
    kernel.record = change(kernel.record)
    differing = 0
    for reset_each in (True, False):
        for k, xs in enumerate(zoo.sample_inputs(data, n_random=2, seed=seed)):
            reset = reset_each or k == 0
            differing += int(np.count_nonzero(model.run(xs, reset=reset) != ref.run(xs, reset=reset)[0]))
    return differing


def _tflm_checked_log2():
    """TFLM's own CheckedLog2(float, int*) from the tflite-micro build the reference runs."""
    from tflite_micro.python.tflite_micro import _runtime

    lib = ctypes.CDLL(_runtime.__file__)
    symbol = "_ZN6tflite5micro11CheckedLog2EfPi"  # tflite::micro::CheckedLog2(float, int*)
    assert hasattr(lib, symbol), f"the tflite-micro build no longer exports {symbol}"
    fn = getattr(lib, symbol)
    fn.argtypes, fn.restype = [ctypes.c_float, ctypes.POINTER(ctypes.c_int)], ctypes.c_bool

    def call(x: float) -> tuple[int, bool]:
        out = ctypes.c_int()
        exact = fn(x, ctypes.byref(out))
        return out.value, bool(exact)
    return call


def test_checked_log2_is_tflms():
    """fixedpoint.checked_log2 against TFLM's CheckedLog2 on every float32 within 300 steps of
    2^(k + 1/2) (where the exponent rounds) and of 2^(k +- 1e-3) (where the power-of-two test
    flips), k over the exponents the LSTM accepts, and on random scales. round(math.log2(x)) and a
    float32 log rounded half to even both disagree with TFLM there."""
    tflm_log2 = _tflm_checked_log2()
    xs = {float(np.float32(v)) for v in 2.0 ** np.random.default_rng(3).uniform(-41, 3, 20000)}
    for k in range(-41, 3):
        for centre in (k + 0.5, k + 1e-3, k - 1e-3):
            xs |= {f32_steps_from(2.0 ** centre, d) for d in range(-300, 301)}
    old_rule_differs = half_even_differs = 0
    for x in sorted(xs):
        want, exact = tflm_log2(x)
        got, frac = checked_log2(x)
        if x == GLIBC_LOGF_EDGE:
            assert (want, got) == (-31, -30)
            continue
        assert got == want, f"CheckedLog2({x.hex()}): TFLM {want}, edgelstm {got}"
        assert (abs(np.float32(frac)) < np.float32(1e-3)) == exact, x.hex()
        old_rule_differs += round(math.log2(x)) != want
        half_even_differs += round(got + frac) != want
    assert old_rule_differs > 100 and half_even_differs > 10


def test_lstm_cell_scale_next_to_2_to_the_k_plus_half():
    """Cell scales where CheckedLog2's exponent is not round(log2): the tflm flavour equals TFLM, and
    the exponent round(log2) would give (edgelstm's rule before) makes most elements differ."""
    _, op = _lstm_parts(zoo.build("time_major"))
    g = read_model(zoo.build("time_major"))
    h = g.tensors[op.inputs[ls.OUTPUT_STATE]].quant
    for name, (scale, power) in CELL_SCALE_EDGES.items():
        old_power = round(math.log2(scale))
        assert checked_log2(scale)[0] == power != old_power, name
        data = lstm_edge_model(cell_scale=scale)
        assert _compare_lstm(data, seed=4) > 0, name
        assert _lstm_kernel(edgelstm.load(data, flavor="tflm")).record.hidden.tanh_c_shift == -(12 + power)
        old = _differs_from_tflm(data, lambda r: dataclasses.replace(r, hidden=hidden_params(old_power, h.s, h.zp)))
        assert old > 0, f"{name}: the old exponent {old_power} gives the same numbers"


def test_lstm_cell_scale_where_glibc_logf_rounds_differently():
    """At GLIBC_LOGF_EDGE TFLM's exponent is -31 and edgelstm's -30; both bring every cell state to
    a tanh input of 0, so the kernel is the same, and equal to TFLM's."""
    assert checked_log2(GLIBC_LOGF_EDGE)[0] == -30
    assert np.array_equal(hidden_params(-30, 0.01, 0).tanh_c, hidden_params(-31, 0.01, 0).tanh_c)
    assert _compare_lstm(lstm_edge_model(cell_scale=GLIBC_LOGF_EDGE), seed=6) > 0


def test_lstm_cell_clip_below_one_step():
    """TFLM clips whenever the float cell_clip is > 0, to +-int16(clip / scale) truncated: a clip below
    one step of the cell scale clips every cell state to 0. Not clipping there (edgelstm's rule
    before: clip only when the quantized bound is > 0) differs from TFLM."""
    g, op = _lstm_parts(zoo.build("time_major"))
    s_c = g.tensors[op.inputs[ls.CELL_STATE]].quant.s
    for clip in (0.4 * s_c, float(np.nextafter(np.float32(s_c), np.float32(0))), 1e-45):
        data = lstm_edge_model(cell_clip=clip)
        cell = _lstm_kernel(edgelstm.load(data, flavor="tflm")).record.cell
        assert cell.clipping and cell.clip == 0, clip
        assert _compare_lstm(data, seed=7) > 0
        assert _differs_from_tflm(data, lambda r: dataclasses.replace(r, cell=dataclasses.replace(
            r.cell, clipping=False))) > 0, clip


def test_lstm_cell_clip_negative_nan_or_infinite():
    """The tflite-micro build runs a negative or NaN cell_clip (its Prepare has no cell_clip >= 0
    check) and does not clip; an infinite one clips to +-32767. The flavour does the same, and
    clipping to 0 instead would differ."""
    for clip in (-1.0, -1e-45, float("nan"), float("-inf")):
        data = lstm_edge_model(cell_clip=clip)
        assert not _lstm_kernel(edgelstm.load(data, flavor="tflm")).record.cell.clipping, clip
        assert _compare_lstm(data, seed=8) > 0, clip
        assert _differs_from_tflm(data, lambda r: dataclasses.replace(r, cell=dataclasses.replace(
            r.cell, clipping=True, clip=0))) > 0, clip
    data = lstm_edge_model(cell_clip=float("inf"))
    cell = _lstm_kernel(edgelstm.load(data, flavor="tflm")).record.cell
    assert cell.clipping and cell.clip == 32767
    assert _compare_lstm(data, seed=8) > 0


def test_lstm_refuses_a_cell_activation_tflm_cannot_run():
    def relu(m):
        m.subgraphs[0].operators[0].builtinOptions.fusedActivationFunction = 1  # RELU
    with pytest.raises(ModelError, match="TANH cell activation"):
        edgelstm.load(edit(zoo.build("time_major"), relu), flavor="tflm")


# -- single-op models --------------------------------------------------------------------------------
def _unary(opcode: str, in_q, out_q, opts=None, n: int = 256, out_dtype=np.int8, in_dtype=np.int8) -> bytes:
    return single_op_model(opcode, [T(in_dtype, (1, n), in_q, name="x")], [T(out_dtype, (1, n), out_q, name="y")],
                           opts)


def _both(data: bytes, xs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(tflm flavor, TFLM) outputs."""
    return edgelstm.load(data, flavor="tflm").run(xs), tflm_run(data, xs)


def _rand_q(rng, lo: float, hi: float) -> tuple[float, int]:
    return float(np.float32(10 ** rng.uniform(lo, hi))), int(rng.integers(-128, 128))


@pytest.mark.parametrize("opcode", ["LOGISTIC", "TANH", "RELU6", "RELU", "LEAKY_RELU"])
def test_activations_every_int8_value_random_quantizations(opcode):
    """All 256 inputs under 40 random quantizations. TFLM's LOGISTIC and TANH assume their output
    quantization and its RELU6 never requantizes, so the output parameters are drawn freely too
    (LOGISTIC's zero point must be -128)."""
    rng = np.random.default_rng(sum(map(ord, opcode)))
    opts = options("LeakyReluOptions", alpha=0.2) if opcode == "LEAKY_RELU" else None
    differs_from_litert = 0
    for _ in range(40):
        in_q = _rand_q(rng, -3.5, 0.5)
        out_q = _rand_q(rng, -3, 0)
        if opcode == "LOGISTIC":
            out_q = (out_q[0], -128)
        data = _unary(opcode, in_q, out_q, opts)
        ours, theirs = _both(data, [ALL_INT8])
        assert np.array_equal(ours, theirs), f"{in_q} -> {out_q}: {int(np.count_nonzero(ours != theirs))} differ"
        if opcode != "LOGISTIC":  # LiteRT refuses output scales other than 1/256 (see the next test)
            differs_from_litert += int(np.count_nonzero(edgelstm.load(data).run(ALL_INT8) != ours))
    if opcode in ("RELU", "LEAKY_RELU"):
        assert differs_from_litert == 0  # the same code in both runtimes
    elif opcode != "LOGISTIC":
        assert differs_from_litert > 0


# Input quantizations where TFLM's integer LOGISTIC / TANH and LiteRT's float table disagree even
# with the converter's output quantization, (1/256, -128) and (1/128, 0). They rarely do (about one
# input scale in 300 for LOGISTIC, one in 5000 for TANH), so these were found by search.
SIGMOID_DISAGREEMENTS = {
    "LOGISTIC": ([(2.003068447113037, 95), (2.0438661575317383, -118), (0.001075746025890112, 119),
                  (0.6036211848258972, 39)], (1 / 256, -128)),
    "TANH": ([(0.003346627578139305, -107)], (1 / 128, 0)),
}


@pytest.mark.parametrize("opcode", sorted(SIGMOID_DISAGREEMENTS))
def test_logistic_and_tanh_where_the_runtimes_disagree(opcode):
    cases, out_q = SIGMOID_DISAGREEMENTS[opcode]
    for in_q in cases:
        data = _unary(opcode, in_q, out_q)
        ours, theirs = _both(data, [ALL_INT8])
        assert np.array_equal(ours, theirs)
        lite = edgelstm.load(data).run(ALL_INT8)
        assert np.array_equal(lite, litert_run(data, [ALL_INT8]))
        assert np.any(lite != ours)


def _fc_model(s_in, z_in, s_w, w, b, s_out, z_out, act=0, per_channel=None) -> bytes:
    units, depth = w.shape
    wt = T(np.int8, w.shape, (s_w, 0), data=w)
    bias_scale = float(np.float32(s_in * s_w))
    data = single_op_model("FULLY_CONNECTED", [T(np.int8, (4, depth), (s_in, z_in), name="x"), wt,
                                               T(np.int32, (units,), (bias_scale, 0), data=b)],
                           [T(np.int8, (4, units), (s_out, z_out), name="y")],
                           options("FullyConnectedOptions", fusedActivationFunction=act))
    if per_channel is None:
        return data

    def fn(m):
        q = m.subgraphs[0].tensors[1].quantization
        q.scale, q.zeroPoint, q.quantizedDimension = [float(v) for v in per_channel], [0] * units, 0
        bq = m.subgraphs[0].tensors[2].quantization
        bq.scale, bq.zeroPoint = [float(np.float32(s_in * v)) for v in per_channel], [0] * units
    return edit(data, fn)


def test_fully_connected_random_quantizations():
    """TFLM requantizes with the fixed-point multiplier (LiteRT: in double); per tensor and per
    channel, with fused activations."""
    rng = np.random.default_rng(5)
    differs_from_litert = 0
    for k in range(24):
        depth, units = int(rng.integers(1, 40)), int(rng.integers(1, 24))
        s_in, z_in = _rand_q(rng, -2.5, -0.5)
        s_w = float(np.float32(10 ** rng.uniform(-3, -1)))
        s_out = float(np.float32(s_in * s_w * 10 ** rng.uniform(0.5, 2.5)))
        w = rng.integers(-127, 128, size=(units, depth)).astype(np.int8)
        b = rng.integers(-3000, 3000, size=units).astype(np.int32)
        per_channel = (np.float32(s_w) * rng.uniform(0.5, 2, units)).astype(np.float32) if k % 2 else None
        data = _fc_model(s_in, z_in, s_w, w, b, s_out, int(rng.integers(-128, 128)), act=k % 4,
                         per_channel=per_channel)
        for seed in range(2):
            x = rng.integers(-128, 128, size=(4, depth)).astype(np.int8)
            ours, theirs = _both(data, [x])
            assert np.array_equal(ours, theirs)
            differs_from_litert += int(np.count_nonzero(edgelstm.load(data).run(x) != ours))
    assert differs_from_litert > 0


@njit(cache=True)
def _accumulators_rounded_apart(lim, m1, s1, m2, s2):
    """Accumulators in [-lim, lim) that two (multiplier, shift) pairs requantize differently."""
    out = []
    for a in range(-lim, lim):
        if mbqm(a, m1, s1) != mbqm(a, m2, s2):
            out.append(a)
    return np.array(out, dtype=np.int64)


def test_fully_connected_multiplier_is_double():
    """Biases put the accumulator exactly where a multiplier from the float32 product s_in * s_w
    and one from the double product round differently: TFLM takes the double one."""
    rng = np.random.default_rng(2)
    checked = 0
    while checked < 4:
        s_in, s_w = (float(np.float32(10 ** rng.uniform(-3, -1))) for _ in range(2))
        s_out = float(np.float32(s_in * s_w * 10 ** rng.uniform(0.5, 1.5)))
        m_f32 = quantize_multiplier(float(np.float32(np.float32(s_in) * np.float32(s_w))) / s_out)
        m_f64 = quantize_multiplier(s_in * s_w / s_out)
        lim = int(120 * s_out / (s_in * s_w))
        b = _accumulators_rounded_apart(lim, *m_f32, *m_f64)[:32].astype(np.int32)
        if b.size == 0:
            continue
        data = _fc_model(s_in, 0, s_w, np.ones((len(b), 1), np.int8), b, s_out, 0)
        x = np.zeros((4, 1), np.int8)  # accumulator = bias
        ours, theirs = _both(data, [x])
        assert np.array_equal(ours, theirs)
        assert np.array_equal(theirs[0], [mbqm(int(a), *m_f64) for a in b])
        checked += 1


# Quantizations (a, b, output) where the double and the float32 multiplier round some int8 pair
# differently (found by search: the multipliers differ almost always, the results rarely).
MUL_DISAGREEMENTS = [
    ((0.27531060576438904, -54), (0.07256197184324265, -100), (2.450597047805786, -23)),
    ((0.014739523641765118, -103), (0.01025282870978117, -64), (0.011941599659621716, -94)),
    ((0.015117859467864037, -65), (0.017168520018458366, -41), (0.006705488543957472, -23)),
    ((0.0477571040391922, -17), (0.019988564774394035, 86), (0.007539716083556414, 111)),
]


def test_mul_multiplier_in_double():
    """Every int8 pair under random and searched quantizations; TFLM's multiplier is
    double(s1) * double(s2) / double(s_out), LiteRT's the float32 quotient."""
    rng = np.random.default_rng(9)
    a = np.repeat(np.arange(-128, 128, dtype=np.int8), 256).reshape(1, 65536)
    b = np.tile(np.arange(-128, 128, dtype=np.int8), 256).reshape(1, 65536)
    random_cases = []
    for _ in range(8):
        qa, qb = _rand_q(rng, -2, 0), _rand_q(rng, -2, 0)
        random_cases.append((qa, qb, (float(np.float32(qa[0] * qb[0] * 10 ** rng.uniform(0.5, 2.5))),
                                      int(rng.integers(-128, 128)))))
    for k, (qa, qb, qy) in enumerate(MUL_DISAGREEMENTS + random_cases):
        data = single_op_model("MUL", [T(np.int8, (1, 65536), qa, name="a"), T(np.int8, (1, 65536), qb, name="b")],
                               [T(np.int8, (1, 65536), qy, name="y")], options("MulOptions"))
        ours, theirs = _both(data, [a, b])
        assert np.array_equal(ours, theirs)
        if k < len(MUL_DISAGREEMENTS):
            assert np.any(edgelstm.load(data).run([a, b]) != ours)


def test_softmax_output_scale_must_be_exactly_1_over_256():
    rng = np.random.default_rng(4)
    x = rng.integers(-128, 128, size=(1, 256)).astype(np.int8)
    opts = options("SoftmaxOptions", beta=1.0)
    exact = _unary("SOFTMAX", (0.05, 3), (1 / 256, -128), opts)
    ours, theirs = _both(exact, [x])
    assert np.array_equal(ours, theirs)
    near = _unary("SOFTMAX", (0.05, 3), (float(np.float32(1 / 256 * (1 + 2 ** -18))), -128), opts)
    edgelstm.load(near)  # within LiteRT's tolerance
    with pytest.raises(ReferenceUnavailable):
        get_reference("tflm", near)
    with pytest.raises(ModelError, match="1/256"):
        edgelstm.load(near, flavor="tflm")


def _reduce_model(opcode: str, in_q, out_q, keep_dims=False) -> bytes:
    out_shape = (2, 1, 5) if keep_dims else (2, 5)
    axis = T(np.int32, (1,), data=np.array([1], np.int32))
    return single_op_model(opcode, [T(np.int8, (2, 7, 5), in_q, name="x"), axis],
                           [T(np.int8, out_shape, out_q, name="y")], options("ReducerOptions", keepDims=keep_dims))


def test_reductions():
    """int8 SUM, which the tflite flavor refuses (LiteRT's reference is wrong there), and MEAN and
    REDUCE_MAX, the same code in both runtimes."""
    rng = np.random.default_rng(6)
    for k in range(12):
        x = rng.integers(-128, 128, size=(2, 7, 5)).astype(np.int8)
        in_q = _rand_q(rng, -2, 0)
        out_q = (float(np.float32(in_q[0] * 10 ** rng.uniform(-0.5, 1.2))), int(rng.integers(-128, 128)))
        for opcode, q in (("SUM", out_q), ("MEAN", out_q), ("REDUCE_MAX", in_q)):
            data = _reduce_model(opcode, in_q, q, keep_dims=bool(k % 2))
            ours, theirs = _both(data, [x])
            assert np.array_equal(ours, theirs), opcode
            if opcode != "SUM":
                assert np.array_equal(edgelstm.load(data).run(x), ours)
    with pytest.raises(ModelError, match="int8 SUM is not supported"):
        edgelstm.load(_reduce_model("SUM", (0.1, 0), (0.5, 0)))


def test_add_quantize_dequantize_are_litert_arithmetic():
    rng = np.random.default_rng(8)
    a = np.repeat(np.arange(-128, 128, dtype=np.int8), 16).reshape(1, 4096)
    b = rng.integers(-128, 128, size=(1, 4096)).astype(np.int8)
    xf = (rng.normal(size=(1, 4096)) * 3).astype(np.float32)
    for k in range(10):
        qa, qb, qy = _rand_q(rng, -2, 0), _rand_q(rng, -2, 0), _rand_q(rng, -2, 0.3)
        models = [
            (single_op_model("ADD", [T(np.int8, (1, 4096), qa, name="a"), T(np.int8, (1, 4096), qb, name="b")],
                             [T(np.int8, (1, 4096), qy, name="y")],
                             options("AddOptions", fusedActivationFunction=k % 4)), [a, b]),
            (_unary("QUANTIZE", qa, qy, n=4096), [a]),
            (_unary("QUANTIZE", None, qy, n=4096, in_dtype=np.float32), [xf]),
            (_unary("DEQUANTIZE", qa, None, n=4096, out_dtype=np.float32), [a]),
        ]
        for data, xs in models:
            ours, theirs = _both(data, xs)
            assert np.array_equal(ours, theirs)
            assert np.array_equal(edgelstm.load(data).run(xs), ours)


def _per_channel(data: bytes, weights: int, bias: int, s_in: float, scales: np.ndarray, axis: int) -> bytes:
    def fn(m):
        t = m.subgraphs[0].tensors
        t[weights].quantization.scale = [float(v) for v in scales]
        t[weights].quantization.zeroPoint = [0] * len(scales)
        t[weights].quantization.quantizedDimension = axis
        t[bias].quantization.scale = [float(np.float32(s_in * v)) for v in scales]
        t[bias].quantization.zeroPoint = [0] * len(scales)
    return edit(data, fn)


@pytest.mark.parametrize("opcode", ["CONV_2D", "DEPTHWISE_CONV_2D"])
def test_convolutions_are_litert_arithmetic(opcode):
    """Per-channel weights, padding, strides, fused activations under random quantizations: TFLM's
    reference convolutions compute what LiteRT's do."""
    rng = np.random.default_rng(len(opcode))
    for k in range(8):
        width, c_in, kw = int(rng.integers(5, 20)), int(rng.integers(1, 5)), int(rng.integers(1, 4))
        stride, pad = int(rng.integers(1, 3)), k % 2  # SAME, VALID
        out_w = -(-width // stride) if pad == 0 else (width - kw) // stride + 1
        s_in, z_in = _rand_q(rng, -2, 0)
        if opcode == "CONV_2D":
            c_out = int(rng.integers(1, 6))
            w_shape, opts = (c_out, 1, kw, c_in), options("Conv2DOptions", padding=pad, strideW=stride, strideH=1,
                                                            fusedActivationFunction=k % 4)
        else:
            c_out = c_in * int(rng.integers(1, 3))
            w_shape, opts = (1, 1, kw, c_out), options("DepthwiseConv2DOptions", padding=pad, strideW=stride,
                                                         strideH=1, depthMultiplier=c_out // c_in,
                                                         fusedActivationFunction=k % 4)
        scales = (10 ** rng.uniform(-3, -1, c_out)).astype(np.float32)
        w = rng.integers(-127, 128, size=w_shape).astype(np.int8)
        b = rng.integers(-2000, 2000, size=c_out).astype(np.int32)
        q_out = (float(np.float32(s_in * scales.mean() * 10 ** rng.uniform(0.5, 2))), int(rng.integers(-128, 128)))
        data = single_op_model(opcode, [T(np.int8, (1, 1, width, c_in), (s_in, z_in), name="x"),
                                        T(np.int8, w_shape, (1.0, 0), data=w), T(np.int32, (c_out,), (1.0, 0), data=b)],
                               [T(np.int8, (1, 1, out_w, c_out), q_out, name="y")], opts)
        data = _per_channel(data, 1, 2, s_in, scales, axis=0 if opcode == "CONV_2D" else 3)
        x = rng.integers(-128, 128, size=(1, 1, width, c_in)).astype(np.int8)
        ours, theirs = _both(data, [x])
        assert np.array_equal(ours, theirs)
        assert np.array_equal(edgelstm.load(data).run(x), ours)


# -- what TFLM refuses --------------------------------------------------------------------------------
@pytest.mark.parametrize("opcode", ["RELU_N1_TO_1", "RELU_0_TO_1"])
def test_ops_without_a_tflm_kernel(opcode, capfd):
    data = _unary(opcode, (0.05, 3), (0.05, 3))
    edgelstm.load(data)
    capfd.readouterr()
    with pytest.raises(ReferenceUnavailable, match=opcode):
        get_reference("tflm", data)
    out, err = capfd.readouterr()
    assert out == "" and err == "", "the adapter must keep TFLM's C++ diagnostics off the terminal"
    with pytest.raises(ModelError, match=f"TFLite Micro has no kernel for {opcode}"):
        edgelstm.load(data, flavor="tflm")


def test_refusals_match_tflm():
    i32 = lambda v: T(np.int32, (len(v),), data=np.array(v, np.int32))  # noqa: E731
    x5 = T(np.int8, (1, 2, 1, 2, 3), (0.1, 0), name="x")
    x6 = T(np.int8, (1, 2, 1, 2, 1, 3), (0.1, 0), name="x")
    cases = {
        "rank up to 4": single_op_model("STRIDED_SLICE", [x5, i32([0] * 5), i32([1, 2, 1, 2, 3]), i32([1] * 5)],
                                        [T(np.int8, (1, 2, 1, 2, 3), (0.1, 0), name="y")],
                                        options("StridedSliceOptions")),
        "rank up to 5": single_op_model("TRANSPOSE", [x6, i32([5, 4, 3, 2, 1, 0])],
                                        [T(np.int8, (3, 1, 2, 1, 2, 1), (0.1, 0), name="y")]),
        "zero point -128": _unary("LOGISTIC", (0.05, 3), (1 / 256, 0)),  # LiteRT takes any zero point
        "at most 10": single_op_model("CONCATENATION", [T(np.int8, (1, 2), (0.1, 0), name=f"x{i}") for i in range(11)],
                                      [T(np.int8, (1, 22), (0.1, 0), name="y")],
                                      options("ConcatenationOptions", axis=1)),
    }
    for match, data in cases.items():
        edgelstm.load(data)
        with pytest.raises(ReferenceUnavailable):
            get_reference("tflm", data)
        with pytest.raises(ModelError, match=match):
            edgelstm.load(data, flavor="tflm")


def test_static_shapes():
    """TFLM runs a dynamic model at its stored sizes only; so does the flavor, and stored sizes that
    do not fit together are refused rather than run."""
    dyn = zoo.build("dynamic_time")
    m = edgelstm.load(dyn, flavor="tflm")
    assert m.inputs[0].shape == (1, 1, 6)
    with pytest.raises(InputError, match="shape"):
        m.run(np.zeros((1, 20, 6), np.int8))
    assert edgelstm.load(dyn).run(np.zeros((1, 20, 6), np.int8)).shape == (1, 4)
    x = T(np.int8, (1, 1, 3), (0.1, 0), signature=(1, -1, 3))
    bad = single_op_model("CONCATENATION", [x, T(np.int8, (1, 1, 3), (0.1, 0), signature=(1, -1, 3))],
                          [T(np.int8, (1, 1, 3), (0.1, 0), signature=(1, -1, 3))],
                          options("ConcatenationOptions", axis=1))
    edgelstm.load(bad)
    with pytest.raises(ModelError, match=r"concatenate to \[1, 2, 3\].*declared"):
        edgelstm.load(bad, flavor="tflm")


# -- the adapter, verify and the command line --------------------------------------------------------
def test_adapter_state_tensors_and_quiet(capfd):
    data = zoo.build("seq2seq_td")
    xs = tflm_inputs(data, n_random=2)
    capfd.readouterr()
    ref = get_reference("tflm", data, preserve_all_tensors=True)
    first = ref.run(xs[0])
    assert not np.array_equal(ref.run(xs[0], reset=False)[0], first[0])  # state carried
    assert np.array_equal(ref.run(xs[0])[0], first[0])  # reset restores it
    g = read_model(data)
    assert np.array_equal(ref.tensors()[g.outputs[0]], first[0])
    with pytest.raises(ReferenceUnavailable, match="cannot resize"):
        ref.run([np.zeros((1, 21, 6), np.int8)])
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    assert "tflm" in available()


def test_verify_locates_a_mismatch_with_tflm(monkeypatch):
    """Checked with the tflite flavor's numbers, verify against TFLM is not exact, and the first
    mismatch is located through TFLM's preserved tensors."""
    from edgelstm import verify as verify_module

    data = zoo.build("small_cell_scale")
    monkeypatch.setattr(verify_module, "flavor_for", lambda reference: "tflite")
    res = verify(data, reference="tflm", inputs=tflm_inputs(data, n_random=2), check_state=False)
    assert not res.bit_exact
    assert res.first_mismatch.opcode == "UNIDIRECTIONAL_SEQUENCE_LSTM" and res.first_mismatch.timestep == 0




def test_cli(tmp_path):
    model = tmp_path / "small_cell.tflite"
    model.write_bytes(zoo.build("small_cell_scale"))
    r = cli("verify", model, "--against", "tflm", "--samples", "4", "--json")
    assert r.returncode == 0, r.stderr
    obj = json.loads(r.stdout)
    assert obj["bit_exact"] and obj["flavor"] == "tflm" and obj["reference"]["name"] == "tflm"
    r = cli("verify", model, "--against", "all", "--samples", "4", "--json")
    assert r.returncode == 0, r.stderr
    flavors = {res["reference"]["name"]: res["flavor"] for res in json.loads(r.stdout)["results"]}
    assert flavors["tflm"] == "tflm" and flavors["litert"] == "tflite"
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((1, 20, 4), np.int8))
    for flavor in ("tflite", "tflm"):
        r = cli("run", model, "--input", x, "--output", tmp_path / f"{flavor}.npy", "--flavor", flavor)
        assert r.returncode == 0, r.stderr
    assert not np.array_equal(np.load(tmp_path / "tflite.npy"), np.load(tmp_path / "tflm.npy"))
    dyn = tmp_path / "dyn.tflite"
    dyn.write_bytes(zoo.build("dynamic_time_dense"))
    r = cli("info", dyn, "--flavor", "tflm")
    assert r.returncode != 0 and "REDUCE_PROD" in r.stderr
