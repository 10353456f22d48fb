"""MUL int8: BatchNormalization after LSTM(return_sequences) (a constant vector broadcast over
[B, T, C]), Multiply layers with fused ReLU/ReLU6, and hand-built single MUL ops over every int8 pair."""
from __future__ import annotations

import numpy as np
import pytest

import oracle
import zoo
from edgelstm.errors import ModelError
from edgelstm.fixedpoint import quantize_multiplier
from edgelstm.ops import build_kernel
from edgelstm.ops.mul import _mul_int8
from edgelstm.tflite_reader import read_model
from tflite_build import (ACT, T, all_int8_pairs, graph_ops, log_uniform, options, patched, single_op_model,
                          synthetic_kernel, tensor)


@zoo.zoo_model("ops_mul_bn")
def _mul_bn():
    """LSTM(8, return_sequences) + BatchNormalization with hand-set statistics (-> MUL and ADD by
    constant [8] vectors), and two Multiply layers whose ReLU / ReLU6 the converter fuses."""
    K = zoo._keras(); L = K.layers; zoo._seed(31)
    x = K.Input((10, 4), batch_size=1)
    bn = L.BatchNormalization()
    seq = bn(L.LSTM(8, return_sequences=True)(x))
    h1 = L.LSTM(6)(x)
    h2 = L.Dense(6)(h1)
    r = L.ReLU()(L.Multiply()([h1, h2]))
    r6 = L.ReLU(max_value=6.0)(L.Multiply()([h1, L.Dense(6)(h1)]))
    m = K.Model(x, [seq, L.Dense(2)(r), L.Dense(2)(r6)])
    m = zoo._randomize_biases(m)
    rng = np.random.default_rng(31)
    bn.set_weights([rng.uniform(0.3, 1.8, 8).astype(np.float32), rng.normal(0, 0.5, 8).astype(np.float32),
                    rng.normal(0, 0.3, 8).astype(np.float32), rng.uniform(0.2, 3.0, 8).astype(np.float32)])
    return m, zoo._calib((1, 10, 4))


def _bn_mul(model):
    g = read_model(model)
    return next(op for op in g.operators if op.opcode == "MUL" and g.tensors[op.inputs[1]].is_constant)


def test_mul_batchnorm_after_lstm_sequence():
    model = zoo.build("ops_mul_bn")
    g = read_model(model)
    op = _bn_mul(model)
    assert g.tensors[op.inputs[0]].shape == (1, 10, 8) and g.tensors[op.inputs[1]].shape == (8,)
    # the BatchNormalization's shift follows as an ADD of another constant vector
    assert any(o.opcode == "ADD" and op.outputs[0] in o.inputs for o in g.operators)
    inputs = zoo.sample_inputs(model, n_random=4)
    n_mul = len(graph_ops(model, "MUL"))
    assert n_mul == 3
    assert sum(oracle.check_ops(model, x, "MUL") for x in inputs) == n_mul * len(inputs)
    assert sum(oracle.check_ops(model, x, "ADD") for x in inputs) == len(inputs)


def test_mul_fused_activations():
    model = zoo.build("ops_mul_bn")
    acts = sorted(op.options["fused_activation_function"] for op in graph_ops(model, "MUL"))
    assert acts == [ACT["NONE"], ACT["RELU"], ACT["RELU6"]]
    fused = [op for op in graph_ops(model, "MUL") if op.options["fused_activation_function"] != ACT["NONE"]]
    inputs = zoo.sample_inputs(model, n_random=2)
    # re-patch the output quantization so that the clamp bounds lie inside the int8 range
    for op, act, scale, zp in ((fused[0], "RELU6", 0.02, -90), (fused[1], "RELU_N1_TO_1", 0.01, 10),
                               (fused[0], "RELU", 0.001, 40)):
        m = patched(model, quant={op.outputs[0]: (scale, zp)}, options=[(op.index, 4, "<b", ACT[act])])
        g = read_model(m)
        k = build_kernel(g.operators[op.index], g, "tflite")
        assert (k.act_min, k.act_max) != (-128, 127)
        assert sum(oracle.check_ops(m, x, "MUL") for x in inputs) == 3 * len(inputs)


def _mul_model(sa, za, sb, zb, sy, zy, act="NONE", shape_a=(256, 1), shape_b=(1, 256)):
    return single_op_model("MUL", [T(np.int8, shape_a, (sa, za)), T(np.int8, shape_b, (sb, zb))],
                           [T(np.int8, np.broadcast_shapes(shape_a, shape_b), (sy, zy))],
                           options("MulOptions", fusedActivationFunction=ACT[act]))


def test_mul_every_int8_pair_random_quantization():
    rng = np.random.default_rng(7)
    a, b = all_int8_pairs()
    acts = ["NONE", "RELU", "RELU6", "RELU_N1_TO_1"]
    shifts = set()
    for i in range(12):
        sa, sb = log_uniform(rng, 1e-3, 0.3), log_uniform(rng, 1e-3, 0.3)
        # output scales from well below to well above s1 * s2 * 255: multipliers above 1 included
        sy = log_uniform(rng, 0.05, 2000.0) * sa * sb
        za, zb, zy = (int(v) for v in rng.integers(-128, 128, 3))
        model = _mul_model(sa, za, sb, zb, sy, zy, acts[i % 4])
        g = read_model(model)
        shifts.add(build_kernel(g.operators[0], g, "tflite").shift > 0)
        assert oracle.check_ops(model, [a, b], "MUL") == 1
    assert shifts == {True, False}


def test_mul_large_multiplier_wraps_like_litert():
    """s1 * s2 / s_out = 2^17: the left shift overflows int32 before the high multiply; LiteRT's
    build wraps, and so must the kernel."""
    a, b = all_int8_pairs()
    model = _mul_model(0.5, 0, 0.25, 0, 0.125 / 2 ** 17, 0)
    g = read_model(model)
    assert build_kernel(g.operators[0], g, "tflite").shift == 18
    assert oracle.check_ops(model, [a, b], "MUL") == 1


def test_mul_multiplier_arithmetic_is_float32():
    """LiteRT computes s1 * s2 / s_out in float32. At these scales (found by search) computing it in
    double changes outputs: LiteRT must agree with the kernel and disagree with that variant."""
    sa, sb, sy, za, zb, zy = 0.0035274620167911053, 0.07517140358686447, 0.014930919744074345, 51, -81, 97
    a, b = all_int8_pairs()
    model = _mul_model(sa, za, sb, zb, sy, zy)
    assert oracle.check_ops(model, [a, b], "MUL") == 1
    m, s = (int(v) for v in quantize_multiplier(sa * sb / sy))
    fa = np.ascontiguousarray(np.broadcast_to(a, (256, 256))).ravel()
    fb = np.ascontiguousarray(np.broadcast_to(b, (256, 256))).ravel()
    double_way = np.empty(fa.size, np.int8)
    _mul_int8(fa, fb, double_way, -za, -zb, m, s, zy, -128, 127)
    g = read_model(model)
    ours = build_kernel(g.operators[0], g, "tflite").run([a, b])[0].ravel()
    assert np.count_nonzero(ours != double_way) >= 1


def test_mul_broadcast_shapes_and_macs():
    rng = np.random.default_rng(8)
    for sa_shape, sb_shape in (((1, 9, 8), (8,)), ((8,), (1, 9, 8)), ((2, 1, 4), (3, 1)), ((5,), (5,))):
        model = _mul_model(0.03, -3, 0.02, 9, 0.004, -20, "NONE", sa_shape, sb_shape)
        x = [rng.integers(-128, 128, s, dtype=np.int8) for s in (sa_shape, sb_shape)]
        assert oracle.check_ops(model, x, "MUL") == 1
        g = read_model(model)
        assert build_kernel(g.operators[0], g, "tflite").macs(x) == int(np.prod(np.broadcast_shapes(sa_shape, sb_shape)))


def test_mul_rejects_bad_models():
    q = (0.01, 0)
    cases = [
        ([tensor(0, np.int16, (1, 8), q), tensor(1, np.int16, (1, 8), q), tensor(2, np.int16, (1, 8), q)], {}, "must be int8"),
        ([tensor(0, np.int8, (1, 9, 8), q), tensor(1, np.int8, (9,), q), tensor(2, np.int8, (1, 9, 8), q)], {}, "broadcast"),
        ([tensor(0, np.int8, (1, 8), q), tensor(1, np.int8, (1, 8), q), tensor(2, np.float32, (1, 8))], {}, "must be int8"),
        ([tensor(0, np.int8, (1, 8), q), tensor(1, np.int8, (1, 8), q), tensor(2, np.int8, (1, 8), q)],
         {"fused_activation_function": 5}, "not supported"),
        # s1 * s2 / s_out = 2^31: the shift would exceed 30
        ([tensor(0, np.int8, (1, 8), (1.0, 0)), tensor(1, np.int8, (1, 8), (1.0, 0)),
          tensor(2, np.int8, (1, 8), (2.0 ** -31, 0))], {}, "too large"),
    ]
    for tensors, options, message in cases:
        with pytest.raises(ModelError, match=message):
            synthetic_kernel("MUL", tensors, 2, options)
    k = synthetic_kernel("MUL", [tensor(0, np.int8, (1, 4, 8), q, signature=(1, -1, 8)), tensor(1, np.int8, (8,), q),
                                 tensor(2, np.int8, (1, 4, 8), q, signature=(1, -1, 8))], 2)
    assert k.run([np.ones((1, 3, 8), np.int8), np.ones(8, np.int8)])[0].shape == (1, 3, 8)
    with pytest.raises(ModelError):
        k.run([np.ones((1, 3, 8), np.int8), np.ones(4, np.int8)])
