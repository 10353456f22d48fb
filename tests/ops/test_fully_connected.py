"""FULLY_CONNECTED against LiteRT's reference kernel, op by op (tests/oracle.py).

The stock converter gives per-channel weights, a bias, and the activations Keras can fuse. The
cases it cannot produce (per-tensor and asymmetric weights, no bias, RELU_N1_TO_1, keep_num_dims
False on a 3-D input) are made by editing the converted flatbuffer and are checked against LiteRT
running that edited model, so the reference always decides.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as fb

import zoo
from oracle import check_all, check_ops, kernel_for, reference_refuses
from tflite_build import edit, int8_inputs, ops_of, per_tensor_weights, set_activation, set_tensor_values

from edgelstm import fixedpoint as fp
from edgelstm.errors import InputError, ModelError
from edgelstm.ops import build_kernel
from edgelstm.references import get_reference
from edgelstm.tflite_reader import ACTIVATION_NAMES, read_model

OP = "FULLY_CONNECTED"


# -- test models ----------------------------------------------------------------------------------
@zoo.zoo_model("ops_fc_after_lstm")
def _after_lstm():
    K = zoo._keras(); L = K.layers; zoo._seed(31)
    x = K.Input((12, 5), batch_size=1)
    m = K.Model(x, L.Dense(4)(L.LSTM(8)(x)))
    return zoo._randomize_biases(m), zoo._calib((1, 12, 5))


@zoo.zoo_model("ops_fc_time_distributed")
def _time_distributed():
    K = zoo._keras(); L = K.layers; zoo._seed(32)
    x = K.Input((12, 5), batch_size=1)
    y = L.LSTM(8, return_sequences=True)(x)
    m = K.Model(x, L.TimeDistributed(L.Dense(3))(y))
    return zoo._randomize_biases(m), zoo._calib((1, 12, 5))


@zoo.zoo_model("ops_fc_dense_only")
def _dense_only():
    K = zoo._keras(); L = K.layers; zoo._seed(33)
    x = K.Input((16,), batch_size=1)
    y = L.Dense(12, activation="relu")(x)
    y = L.Dense(9, activation="relu6")(y)
    m = K.Model(x, L.Dense(5)(y))
    return zoo._randomize_biases(m), zoo._calib((1, 16), offset=0.3)


@zoo.zoo_model("ops_fc_dense_3d")
def _dense_3d():
    """Dense straight on a [1, T, F] input (keep_num_dims), big enough to tell requantizations apart."""
    K = zoo._keras(); L = K.layers; zoo._seed(34)
    x = K.Input((40, 24), batch_size=1)
    m = K.Model(x, L.Dense(32)(x))
    return zoo._randomize_biases(m), zoo._calib((1, 40, 24))


# -- flatbuffer editing (helpers in tests/tflite_build.py) -----------------------------------------
def fc_options(m: fb.ModelT, k: int = 0) -> fb.FullyConnectedOptionsT:
    return ops_of(m, OP)[k].builtinOptions


# -- converter output -----------------------------------------------------------------------------
@pytest.mark.parametrize("name, n_ops", [("ops_fc_after_lstm", 1), ("ops_fc_time_distributed", 1),
                                         ("ops_fc_dense_only", 3), ("ops_fc_dense_3d", 1)])
def test_converted_models(name, n_ops):
    b = zoo.build(name)
    g = read_model(b)
    fcs = [op for op in g.operators if op.opcode == OP]
    assert len(fcs) == n_ops
    # the stock converter quantizes Dense weights per channel and keeps the (randomized) bias
    assert all(g.tensors[op.inputs[1]].quant.scale.size > 1 for op in fcs)
    assert all(op.inputs[2] != -1 for op in fcs)
    assert check_all(b, OP) == n_ops * 6


def test_shapes_and_options_seen():
    """The models above cover keep_num_dims on and off, rank 2 and 3 inputs and fused activations."""
    seen = set()
    for name in ("ops_fc_after_lstm", "ops_fc_time_distributed", "ops_fc_dense_only", "ops_fc_dense_3d"):
        g = read_model(zoo.build(name))
        for op in g.operators:
            if op.opcode == OP:
                seen.add((bool(op.options["keep_num_dims"]), len(g.tensors[op.inputs[0]].shape),
                          ACTIVATION_NAMES[op.options["fused_activation_function"]]))
    assert {(False, 2, "NONE"), (True, 3, "NONE"), (False, 2, "RELU"), (False, 2, "RELU6")} <= seen


def test_requantization_is_double_not_multiplier():
    """LiteRT's reference FC scales the accumulator in double precision; the fixed-point multiplier
    (what the optimized kernels and the convolutions use) disagrees with it on some elements, so
    matching the reference here is a real check of the requantization, not of luck."""
    b = zoo.build("ops_fc_dense_3d")
    kernel, op, g = kernel_for(b, OP)
    ref = get_reference("litert", b, preserve_all_tensors=True)
    differ = compared = 0
    for xs in int8_inputs(b, n_random=4, seed=7):
        ref.run(xs)
        t = ref.tensors()
        x, want = t[op.inputs[0]], t[op.outputs[0]]
        got = kernel.run([x, None, None])[0]
        assert np.array_equal(got, want)
        acc = x.reshape(-1, kernel.depth).astype(np.int64) @ kernel.w.T.astype(np.int64) + kernel.bias
        acc = (acc + 2**31) % 2**32 - 2**31
        alt = np.empty(acc.shape, np.int64)
        for u in range(kernel.units):
            m, s = fp.quantize_multiplier(float(kernel.eff[u]))
            alt[:, u] = [min(max(fp.mbqm(int(a), m, s) + kernel.out_zp, -128), 127) for a in acc[:, u]]
        differ += np.count_nonzero(alt.reshape(want.shape) != want)
        compared += want.size
    assert compared == 7 * 40 * 32
    assert differ > 0


# -- crafted requantization corner cases ----------------------------------------------------------
def _round_away(v: np.ndarray) -> np.ndarray:
    a = np.abs(v)
    f = np.floor(a)
    return np.sign(v) * (f + (a - f >= 0.5))


def _one_hot_fc(w_scales, s_in=None, s_out=None):
    """ops_fc_dense_3d with weights w[u, u % 24] = 1 (scale w_scales[u]) and a zero bias, so that
    acc = x - zp_in exactly and every requantization input can be reached by sweeping x."""
    def fn(m):
        g = m.subgraphs[0]
        op = ops_of(m, OP)[0]
        wt, bt, xt, yt = (g.tensors[i] for i in (op.inputs[1], op.inputs[2], op.inputs[0], op.outputs[0]))
        units, depth = wt.shape
        w = np.zeros((units, depth), np.int8)
        w[np.arange(units), np.arange(units) % depth] = 1
        set_tensor_values(m, wt, w)
        wt.quantization.scale = [float(s) for s in w_scales]
        set_tensor_values(m, bt, np.zeros(units, np.int32))
        if s_in is not None:
            xt.quantization.scale = [s_in]
        if s_out is not None:
            yt.quantization.scale = [s_out]
    return edit(zoo.build("ops_fc_dense_3d"), fn)


def _sweep_inputs(zp_in: int) -> list[list[np.ndarray]]:
    """Every int8 value at every position, 40 rows per run."""
    vals = np.arange(-128, 128)
    return [[np.repeat(np.resize(vals[k:k + 40], 40)[:, None], 24, axis=1).astype(np.int8)[None]]
            for k in range(0, 256, 40)]


def _crafted_check(b: bytes, alternative) -> tuple[int, int]:
    """Check the FC of `b` over the sweep; return (elements compared, elements where the
    alternative requantization `alternative(acc, eff)` disagrees with LiteRT)."""
    kernel, op, g = kernel_for(b, OP)
    ref = get_reference("litert", b, preserve_all_tensors=True)
    zp_in = g.tensors[op.inputs[0]].quant.zp
    n = differ = 0
    for xs in _sweep_inputs(zp_in):
        assert check_ops(b, xs, OP) == 1
        ref.run(xs)
        want = ref.tensors()[op.outputs[0]].reshape(-1, kernel.units).astype(np.int64)
        acc = xs[0].reshape(-1, 24)[:, np.arange(kernel.units) % 24].astype(np.int64) - zp_in
        alt = np.clip(alternative(acc, kernel.eff) + kernel.out_zp, -128, 127)
        differ += np.count_nonzero(alt != want)
        n += want.size
    return n, differ


def test_requantization_ties_round_away_from_zero():
    """Power-of-two scales make acc * eff land exactly on halves: LiteRT rounds them away from
    zero (the fixed-point multiplier would round -2.5 to -2, round-half-even 2.5 to 2)."""
    b = _one_hot_fc([1.0, 0.5, 0.75, 1.5] * 8, s_in=2.0 ** -4, s_out=2.0 ** -3)
    assert sorted(set(kernel_for(b, OP)[0].eff)) == [0.25, 0.375, 0.5, 0.75]
    n, differ = _crafted_check(b, lambda acc, eff: np.round(acc * eff))  # numpy: halves to even
    assert n == 7 * 40 * 32 and differ > 0

    def multiplier(acc, eff):
        out = np.empty(acc.shape, np.int64)
        for u, e in enumerate(eff):
            m, s = fp.quantize_multiplier(float(e))
            out[:, u] = [fp.mbqm(int(a), m, s) for a in acc[:, u]]
        return out
    assert _crafted_check(b, multiplier)[1] > 0


def test_requantization_scale_is_double_not_float32():
    """Weight scales chosen so that acc * eff rounds differently with eff in float32: LiteRT keeps
    s_in * s_w / s_out in double."""
    base = read_model(zoo.build("ops_fc_dense_3d"))
    op = [o for o in base.operators if o.opcode == OP][0]
    s_in, zp_in = base.tensors[op.inputs[0]].quant.s, base.tensors[op.inputs[0]].quant.zp
    s_out = base.tensors[op.outputs[0]].quant.s
    acc = np.arange(-128, 128, dtype=np.float64) - zp_in
    rng = np.random.default_rng(11)
    cand = (rng.uniform(0.3, 0.9, 20000) * s_out / s_in).astype(np.float32)
    eff_d = s_in * cand.astype(np.float64) / s_out
    eff_f = eff_d.astype(np.float32).astype(np.float64)
    hit = (_round_away(np.outer(eff_d, acc)) != _round_away(np.outer(eff_f, acc))).any(axis=1)
    assert hit.sum() >= 2
    b = _one_hot_fc(np.resize(cand[hit], 32))
    n, differ = _crafted_check(b, lambda a, eff: _round_away(a * eff.astype(np.float32).astype(np.float64)))
    assert n == 7 * 40 * 32 and differ > 0


# -- variants made by editing the flatbuffer --------------------------------------------------------
@pytest.mark.parametrize("name", ["ops_fc_dense_only", "ops_fc_dense_3d", "ops_fc_time_distributed"])
@pytest.mark.parametrize("zero_point", [0, 5])
def test_per_tensor_weights(name, zero_point):
    """Per-tensor weights, symmetric and (LiteRT subtracts it) with a weight zero point."""
    def fn(m):
        for op in ops_of(m, OP):
            per_tensor_weights(m, op, zero_point)
    b = edit(zoo.build(name), fn)
    g = read_model(b)
    fcs = [op for op in g.operators if op.opcode == OP]
    assert all(g.tensors[op.inputs[1]].quant.per_tensor for op in fcs)
    assert all(g.tensors[op.inputs[1]].quant.zp == zero_point for op in fcs)
    assert check_all(b, OP) == 6 * len(fcs)


@pytest.mark.parametrize("act", ["NONE", "RELU", "RELU6", "RELU_N1_TO_1"])
@pytest.mark.parametrize("per_tensor", [False, True])
def test_fused_activations(act, per_tensor):
    def fn(m):
        for op in ops_of(m, OP):
            set_activation(op, act)
            if per_tensor:
                per_tensor_weights(m, op)
    for name in ("ops_fc_dense_only", "ops_fc_time_distributed"):
        b = edit(zoo.build(name), fn)
        assert check_all(b, OP) > 0


@pytest.mark.parametrize("name", ["ops_fc_dense_only", "ops_fc_time_distributed", "ops_fc_after_lstm"])
def test_without_bias(name):
    def fn(m):
        for op in ops_of(m, OP):
            op.inputs[2] = -1
    b = edit(zoo.build(name), fn)
    assert all(op.inputs[2] == -1 for op in read_model(b).operators if op.opcode == OP)
    assert check_all(b, OP) > 0


def test_two_inputs_without_bias():
    def fn(m):
        for op in ops_of(m, OP):
            op.inputs = op.inputs[:2]
    b = edit(zoo.build("ops_fc_dense_only"), fn)
    assert check_all(b, OP) == 3 * 6


def test_keep_num_dims_false_flattens_3d_input():
    """Dense on [1, T, F] without keep_num_dims: LiteRT flattens to [T, units]."""
    def fn(m):
        op = ops_of(m, OP)[0]
        op.builtinOptions.keepNumDims = False
        out = m.subgraphs[0].tensors[op.outputs[0]]
        out.shape = [40, 32]
        out.shapeSignature = None
    b = edit(zoo.build("ops_fc_dense_3d"), fn)
    kernel, op, g = kernel_for(b, OP)
    assert g.tensors[op.outputs[0]].shape == (40, 32) and len(g.tensors[op.inputs[0]].shape) == 3
    assert check_all(b, OP) == 6


def test_dynamic_time_axis():
    """The time axis of the input may be -1: the kernel derives rows from each run's input."""
    def fn(m):
        g = m.subgraphs[0]
        for i in (g.inputs[0], ops_of(m, OP)[0].outputs[0]):
            g.tensors[i].shapeSignature = [1, -1, g.tensors[i].shape[2]]
    b = edit(zoo.build("ops_fc_dense_3d"), fn)
    for steps in (1, 7, 55):
        assert check_all(b, OP, n_random=1, time_steps=steps) == 4
    kernel, _, _ = kernel_for(b, OP)
    assert kernel.run([np.zeros((1, 7, 24), np.int8), None, None])[0].shape == (1, 7, 32)
    with pytest.raises(InputError):
        kernel.run([np.zeros((1, 7, 23), np.int8), None, None])


def test_macs():
    b = zoo.build("ops_fc_dense_3d")
    kernel, _, _ = kernel_for(b, OP)
    assert kernel.macs([np.zeros((1, 40, 24), np.int8), None, None]) == 40 * 32 * 24
    b = zoo.build("ops_fc_dense_only")
    g = read_model(b)
    fcs = [build_kernel(op, g, "tflite") for op in g.operators if op.opcode == OP]
    assert [k.macs([np.zeros((1, k.depth), np.int8)]) for k in fcs] == [16 * 12, 12 * 9, 9 * 5]


def test_matches_plain_integer_formula():
    """Independent restatement of the arithmetic, in numpy int64 and float64."""
    b = zoo.build("ops_fc_dense_only")
    g = read_model(b)
    op = [o for o in g.operators if o.opcode == OP][2]
    kernel = build_kernel(op, g, "tflite")
    x_t, w_t, b_t, y_t = (g.tensors[i] for i in (*op.inputs, op.outputs[0]))
    rng = np.random.default_rng(3)
    x = rng.integers(-128, 128, size=(1, 9), dtype=np.int8)
    acc = (x.astype(np.int64) - x_t.quant.zp) @ w_t.data.astype(np.int64).T + b_t.data
    v = acc * (x_t.quant.s * w_t.quant.scale.astype(np.float64) / y_t.quant.s)
    v = np.sign(v) * np.floor(np.abs(v) + 0.5) + y_t.quant.zp
    assert np.array_equal(kernel.run([x, None, None])[0], np.clip(v, -128, 127).astype(np.int8))


# -- refusals -------------------------------------------------------------------------------------
def _expect_refusal(model_bytes: bytes, match: str, litert_refuses: Optional[bool]) -> None:
    with pytest.raises(ModelError, match=match):
        kernel_for(model_bytes, OP)
    if litert_refuses is not None:
        assert reference_refuses(model_bytes) == litert_refuses


def test_refuses_bad_models():
    base = zoo.build("ops_fc_dense_only")

    def with_(fn):
        return edit(base, fn)

    # LiteRT refuses these too
    _expect_refusal(with_(lambda m: set_activation(ops_of(m, OP)[0], "TANH")), "activation TANH", True)
    _expect_refusal(with_(lambda m: setattr(fc_options(m), "weightsFormat", 1)), "weights format", None)

    def bias_mismatch(m):
        op = ops_of(m, OP)[0]
        per_tensor_weights(m, op)
        m.subgraphs[0].tensors[op.inputs[2]].quantization.scale = [1.0]
    _expect_refusal(with_(bias_mismatch), "bias scale", True)

    def wrong_axis(m):
        op = ops_of(m, OP)[0]
        t = m.subgraphs[0].tensors[op.inputs[1]]  # [12, 16]: 16 scales along dimension 1
        t.quantization.scale = [0.01] * 16
        t.quantization.zeroPoint = [0] * 16
        t.quantization.quantizedDimension = 1
    _expect_refusal(with_(wrong_axis), "dimension 0", True)

    def bias_size(m):
        op = ops_of(m, OP)[0]
        op.inputs[2] = ops_of(m, OP)[1].inputs[2]  # the 9-element bias of the next layer
    _expect_refusal(with_(bias_size), "12 elements", True)

    def int16_output(m):
        t = m.subgraphs[0].tensors[ops_of(m, OP)[0].outputs[0]]
        t.type = fb.TensorType.INT16
    _expect_refusal(with_(int16_output), "must be int8", None)

    def no_weight_quant(m):
        m.subgraphs[0].tensors[ops_of(m, OP)[0].inputs[1]].quantization = None
    _expect_refusal(with_(no_weight_quant), "no quantization", None)

    def leftover_rows(m):  # 16 input elements are not whole rows of a 12-wide weight matrix
        op0 = ops_of(m, OP)[0]
        op0.inputs[1] = ops_of(m, OP)[1].inputs[1]
        op0.inputs[2] = ops_of(m, OP)[1].inputs[2]
    with pytest.raises(ModelError):
        kernel_for(with_(leftover_rows), OP)


def test_run_time_shape_errors():
    kernel, _, _ = kernel_for(zoo.build("ops_fc_dense_only"), OP)
    with pytest.raises(InputError):
        kernel.run([np.zeros((1, 15), np.int8), None, None])
    with pytest.raises(InputError):
        kernel.run([np.zeros((1, 16), np.int16), None, None])
