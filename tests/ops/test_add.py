"""ADD int8: Keras models through the stock converter, plus single-op models built here.

The converter only makes ADDs whose inputs come from LSTMs (or constants), so the values it feeds
are whatever the LSTM produces. To cover every int8 pair, every fused activation and arbitrary
scales, this file also builds one-op .tflite flatbuffers directly (tests/tflite_build.py) and
compares them with LiteRT in the same way.
"""
from __future__ import annotations

import numpy as np
import pytest

import oracle
import zoo
from edgelstm.errors import ModelError
from edgelstm.ops import build_kernel
from edgelstm.tflite_reader import read_model
from tflite_build import (ACT, T, all_int8_pairs, graph_ops, log_uniform, options, patched, single_op_model,
                          synthetic_kernel, tensor)


# -- models from the stock converter -----------------------------------------------------------------
@zoo.zoo_model("ops_add_branches")
def _add_branches():
    """Two LSTM(8) branches joined by Add (plain, and with a ReLU the converter fuses) and Concatenate.
    The ReLU branch feeds only a Dense, so its output quantization can be patched freely."""
    K = zoo._keras(); L = K.layers; zoo._seed(21)
    x = K.Input((12, 5), batch_size=1)
    a = L.LSTM(8)(x)
    b = L.LSTM(8)(x)
    s = L.Add()([a, b])
    r = L.ReLU()(L.Add()([b, L.Dense(8)(a)]))
    y = L.Concatenate()([s, a, b])
    m = K.Model(x, [L.Dense(3)(y), L.Dense(2)(r)])
    return zoo._randomize_biases(m), zoo._calib((1, 12, 5))


@zoo.zoo_model("ops_add_bn_dynamic")
def _add_bn_dynamic():
    """LSTM(return_sequences) + BatchNormalization with a dynamic time axis: MUL and ADD by constant
    [C] vectors broadcast over [1, T, C] with T = -1 in the shape signature."""
    K = zoo._keras(); L = K.layers; zoo._seed(22)
    x = K.Input((None, 4), batch_size=1)
    bn = L.BatchNormalization()
    m = K.Model(x, bn(L.LSTM(8, return_sequences=True)(x)))
    m = zoo._randomize_biases(m)
    rng = np.random.default_rng(22)
    bn.set_weights([rng.uniform(0.4, 1.6, 8).astype(np.float32), rng.normal(0, 0.4, 8).astype(np.float32),
                    rng.normal(0, 0.2, 8).astype(np.float32), rng.uniform(0.3, 2.5, 8).astype(np.float32)])
    return m, zoo._calib((1, 10, 4))


def test_add_two_lstm_branches():
    model = zoo.build("ops_add_branches")
    adds = graph_ops(model, "ADD")
    assert {op.options["fused_activation_function"] for op in adds} == {ACT["NONE"], ACT["RELU"]}
    checked = sum(oracle.check_ops(model, x, "ADD") for x in zoo.sample_inputs(model, n_random=4))
    assert checked == 7 * len(adds)


def test_add_broadcast_constant_with_dynamic_time():
    model = zoo.build("ops_add_bn_dynamic")
    (add,) = graph_ops(model, "ADD")
    g = read_model(model)
    assert g.tensors[add.inputs[0]].shape_signature == (1, -1, 8) and g.tensors[add.inputs[1]].shape == (8,)
    checked = 0
    for steps in (1, 7, 23):
        for x in zoo.sample_inputs(model, n_random=2, seed=steps, time_steps=steps):
            checked += oracle.check_ops(model, x, "ADD")
    assert checked == 15


def test_add_patched_activations_and_zero_points():
    """The converter's RELU-fused ADD, re-patched to RELU6 / RELU_N1_TO_1 and to an output scale and
    zero point at which the clamp bounds fall inside the int8 range."""
    model = zoo.build("ops_add_branches")
    op = next(o for o in graph_ops(model, "ADD") if o.options["fused_activation_function"] == ACT["RELU"])
    y = op.outputs[0]
    inputs = zoo.sample_inputs(model, n_random=2)
    for act, scale, zp in (("RELU", 0.004, 17), ("RELU6", 0.03, -100), ("RELU_N1_TO_1", 0.02, 3),
                           ("RELU_N1_TO_1", 0.012, -128), ("NONE", 0.002, -9)):
        m = patched(model, quant={y: (scale, zp)}, options=[(op.index, 4, "<b", ACT[act])])
        g = read_model(m)
        k = build_kernel(g.operators[op.index], g, "tflite")
        if act != "NONE":
            assert (k.act_min, k.act_max) != (-128, 127)
        assert sum(oracle.check_ops(m, x, "ADD") for x in inputs) == 2 * len(inputs)


# -- hand-built single ADD ops: every int8 pair ---------------------------------------------------------
def _add_model(sa, za, sb, zb, sy, zy, act="NONE", shape_a=(256, 1), shape_b=(1, 256)):
    out_shape = np.broadcast_shapes(shape_a, shape_b)
    return single_op_model("ADD", [T(np.int8, shape_a, (sa, za)), T(np.int8, shape_b, (sb, zb))],
                           [T(np.int8, out_shape, (sy, zy))],
                           options("AddOptions", fusedActivationFunction=ACT[act]))


def test_add_every_int8_pair_random_quantization():
    rng = np.random.default_rng(5)
    a, b = all_int8_pairs()
    acts = ["NONE", "RELU", "RELU6", "RELU_N1_TO_1"]
    for i in range(12):
        sa, sb = log_uniform(rng, 1e-3, 0.5), log_uniform(rng, 1e-3, 0.5)
        if i % 3 == 0:
            sb = sa  # equal scales: multipliers of exactly 1/2
        sy = log_uniform(rng, 0.3, 3.0) * max(sa, sb)
        za, zb, zy = (int(v) for v in rng.integers(-128, 128, 3))
        model = _add_model(sa, za, sb, zb, sy, zy, acts[i % 4])
        assert oracle.check_ops(model, [a, b], "ADD") == 1


def test_add_broadcast_shapes():
    rng = np.random.default_rng(6)
    for sa_shape, sb_shape in (((2, 3, 1, 5), (3, 4, 1)), ((1, 7, 6), (6,)), ((6,), (1, 7, 6)),
                               ((4, 5), (4, 5)), ((1,), (3, 1, 2, 1, 2)), ((2, 1, 3), (1, 1))):
        model = _add_model(0.02, 5, 0.013, -7, 0.03, 1, "RELU", sa_shape, sb_shape)
        x = [rng.integers(-128, 128, s, dtype=np.int8) for s in (sa_shape, sb_shape)]
        assert oracle.check_ops(model, x, "ADD") == 1


def test_add_multiplier_arithmetic_is_double():
    """At these scales (found by search) float32 instead of double arithmetic for the three
    multipliers changes an output: LiteRT must agree with the kernel and disagree with that variant."""
    from edgelstm.fixedpoint import quantize_multiplier
    from edgelstm.ops.add import ADD_LEFT_SHIFT, _add_int8

    sa, sb, sy, za, zb, zy = 0.0013557043857872486, 0.04815424233675003, 0.030499935150146484, 38, -40, -71
    a, b = all_int8_pairs()
    model = _add_model(sa, za, sb, zb, sy, zy)
    assert oracle.check_ops(model, [a, b], "ADD") == 1

    f32 = np.float32
    twice = f32(2) * max(f32(sa), f32(sb))
    (ma, sha), (mb, shb), (my, shy) = (
        (int(m), int(s)) for m, s in (quantize_multiplier(float(v)) for v in (
            f32(sa) / twice, f32(sb) / twice, twice / (f32(1 << ADD_LEFT_SHIFT) * f32(sy)))))
    fa = np.ascontiguousarray(np.broadcast_to(a, (256, 256))).ravel()
    fb_ = np.ascontiguousarray(np.broadcast_to(b, (256, 256))).ravel()
    float_way = np.empty(fa.size, np.int8)
    _add_int8(fa, fb_, float_way, -za, -zb, ma, sha, mb, shb, my, shy, zy, -128, 127, ADD_LEFT_SHIFT)
    graph = read_model(model)
    ours = build_kernel(graph.operators[0], graph, "tflite").run([a, b])[0].ravel()
    assert np.count_nonzero(ours != float_way) >= 1


# -- what is refused -----------------------------------------------------------------------------------
def test_add_rejects_bad_models():
    q = (0.01, 0)
    cases = [
        ([tensor(0, np.float32, (1, 8)), tensor(1, np.float32, (1, 8)), tensor(2, np.float32, (1, 8))], {}, "must be int8"),
        ([tensor(0, np.int8, (1, 8), q), tensor(1, np.int8, (1, 5), q), tensor(2, np.int8, (1, 8), q)], {}, "broadcast"),
        ([tensor(0, np.int8, (1, 8), q), tensor(1, np.int8, (8,), q), tensor(2, np.int8, (1, 9), q)], {}, "declared"),
        ([tensor(0, np.int8, (1, 8)), tensor(1, np.int8, (1, 8), q), tensor(2, np.int8, (1, 8), q)], {}, "no quantization"),
        ([tensor(0, np.int8, (1, 8), per_channel=[0.1] * 8), tensor(1, np.int8, (1, 8), q),
          tensor(2, np.int8, (1, 8), q)], {}, "per tensor"),
        ([tensor(0, np.int8, (1, 8), q), tensor(1, np.int8, (1, 8), q), tensor(2, np.int8, (1, 8), q)],
         {"fused_activation_function": ACT["TANH"]}, "TANH"),
        # output multiplier 2 * 0.01 / (2^20 * 1e-9) >= 1: LiteRT aborts in Prepare
        ([tensor(0, np.int8, (1, 8), q), tensor(1, np.int8, (1, 8), q), tensor(2, np.int8, (1, 8), (1e-9, 0))],
         {}, "multiplier"),
    ]
    for tensors, options, message in cases:
        with pytest.raises(ModelError, match=message):
            synthetic_kernel("ADD", tensors, 2, options)
    with pytest.raises(ModelError, match="expects 2 inputs"):
        synthetic_kernel("ADD", [tensor(0, np.int8, (1, 8), q), tensor(1, np.int8, (1, 8), q)], 1)


def test_add_rejects_bad_run_time_inputs():
    q = (0.01, 0)
    k = synthetic_kernel("ADD", [tensor(0, np.int8, (1, 4, 8), q, signature=(1, -1, 8)),
                                 tensor(1, np.int8, (8,), q), tensor(2, np.int8, (1, 4, 8), q, signature=(1, -1, 8))], 2)
    ok = k.run([np.zeros((1, 9, 8), np.int8), np.zeros(8, np.int8)])[0]
    assert ok.shape == (1, 9, 8)
    for bad in ([np.zeros((1, 9, 7), np.int8), np.zeros(8, np.int8)],
                [np.zeros((1, 9, 8), np.int16), np.zeros(8, np.int8)],
                [np.zeros((9, 8), np.int8), np.zeros(8, np.int8)]):
        with pytest.raises(ModelError):
            k.run(bad)
