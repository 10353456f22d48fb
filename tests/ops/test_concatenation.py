"""CONCATENATION int8: LSTM outputs joined along the feature and the time axis (fixed and dynamic
time), negative axes, hand-built ops of rank 1-4, and the cases LiteRT itself refuses."""
from __future__ import annotations

import numpy as np
import pytest

import oracle
import zoo
from edgelstm.errors import ModelError, ReferenceUnavailable
from edgelstm.ops import build_kernel
from edgelstm.references import get_reference
from edgelstm.tflite_reader import read_model
from tflite_build import ACT, T, graph_ops, options, patched, single_op_model, synthetic_kernel, tensor

AXIS_SLOT = 4  # ConcatenationOptions.axis


@zoo.zoo_model("ops_concat_seq")
def _concat_seq():
    """Sequence outputs concatenated on the last axis (axis=-1) and on the time axis (axis=1), and
    three Dense heads concatenated. `a` feeds two concatenations, so the converter requantizes
    it for one of them."""
    K = zoo._keras(); L = K.layers; zoo._seed(41)
    x = K.Input((10, 4), batch_size=1)
    a = L.LSTM(8, return_sequences=True)(x)
    b = L.LSTM(6, return_sequences=True)(x)
    c = L.LSTM(8, return_sequences=True)(x)
    feat = L.Concatenate(axis=-1)([a, b])
    time = L.Concatenate(axis=1)([a, c])
    last = L.Concatenate()([L.Dense(5)(L.Flatten()(b)), L.Dense(3)(L.Flatten()(c)), L.Dense(4)(L.Flatten()(x))])
    m = K.Model(x, [feat, time, L.Dense(2)(last)])
    return zoo._randomize_biases(m), zoo._calib((1, 10, 4))


@zoo.zoo_model("ops_concat_dynamic")
def _concat_dynamic():
    K = zoo._keras(); L = K.layers; zoo._seed(42)
    x = K.Input((None, 3), batch_size=1)
    a = L.LSTM(6, return_sequences=True)(x)
    b = L.LSTM(6, return_sequences=True)(x)
    m = K.Model(x, [L.Concatenate(axis=-1)([a, b]), L.Concatenate(axis=1)([b, a])])
    return zoo._randomize_biases(m), zoo._calib((1, 10, 3))


def test_concat_lstm_sequences_feature_and_time_axes():
    model = zoo.build("ops_concat_seq")
    cats = graph_ops(model, "CONCATENATION")
    assert sorted(op.options["axis"] for op in cats) == [1, 1, 2]
    assert max(len(op.inputs) for op in cats) == 3
    inputs = zoo.sample_inputs(model, n_random=4)
    assert sum(oracle.check_ops(model, x, "CONCATENATION") for x in inputs) == 3 * len(inputs)


def test_concat_negative_axes():
    """The converter writes non-negative axes; patched to their negative equivalents, LiteRT and the
    kernel must both count from the end."""
    model = zoo.build("ops_concat_seq")
    g = read_model(model)
    patches = []
    for op in graph_ops(model, "CONCATENATION"):
        rank = len(g.tensors[op.outputs[0]].shape)
        patches.append((op.index, AXIS_SLOT, "<i", op.options["axis"] - rank))
    m = patched(model, options=patches)
    assert sorted(op.options["axis"] for op in graph_ops(m, "CONCATENATION")) == [-2, -1, -1]
    inputs = zoo.sample_inputs(m, n_random=2)
    assert sum(oracle.check_ops(m, x, "CONCATENATION") for x in inputs) == 3 * len(inputs)


def test_concat_dynamic_time():
    model = zoo.build("ops_concat_dynamic")
    checked = 0
    for steps in (1, 4, 17):
        for x in zoo.sample_inputs(model, n_random=1, seed=steps, time_steps=steps):
            checked += oracle.check_ops(model, x, "CONCATENATION")
    assert checked == 2 * 3 * 4


def test_concat_hand_built_ranks_and_axes():
    rng = np.random.default_rng(9)
    q = (0.0173, -7)
    for trial in range(16):
        rank = 1 + trial % 4
        axis = int(rng.integers(-rank, rank))
        n_in = 1 + trial % 4
        base = [int(v) for v in rng.integers(1, 5, rank)]
        shapes = []
        for _ in range(n_in):
            s = list(base)
            s[axis] = int(rng.integers(1, 5))
            shapes.append(tuple(s))
        out_shape = list(base)
        out_shape[axis] = sum(s[axis] for s in shapes)
        model = single_op_model("CONCATENATION", [T(np.int8, s, q) for s in shapes], [T(np.int8, out_shape, q)],
                                options("ConcatenationOptions", axis=axis))
        x = [rng.integers(-128, 128, s, dtype=np.int8) for s in shapes]
        assert oracle.check_ops(model, x, "CONCATENATION") == 1


def _refused_by_litert(model: bytes, op_index: int = 0) -> None:
    with pytest.raises(ReferenceUnavailable, match="CONCATENATION"):
        get_reference("litert", model)
    g = read_model(model)
    with pytest.raises(ModelError):
        build_kernel(g.operators[op_index], g, "tflite")


def test_concat_refuses_what_litert_refuses():
    # inputs quantized differently from the output: LiteRT's int8 kernel does not rescale
    model = zoo.build("ops_concat_seq")
    op = next(o for o in graph_ops(model, "CONCATENATION") if o.options["axis"] == 2)
    g = read_model(model)
    s, zp = g.tensors[op.inputs[1]].quant.s, g.tensors[op.inputs[1]].quant.zp
    _refused_by_litert(patched(model, quant={op.inputs[1]: (s * 1.5, None)}), op.index)
    _refused_by_litert(patched(model, quant={op.inputs[1]: (None, zp + 1)}), op.index)
    # a fused activation
    q = (0.02, 3)
    _refused_by_litert(single_op_model("CONCATENATION", [T(np.int8, (2, 3), q), T(np.int8, (2, 3), q)],
                                       [T(np.int8, (2, 6), q)],
                                       options("ConcatenationOptions", axis=1, fusedActivationFunction=ACT["RELU"])))
    # and with everything equal LiteRT accepts the same op
    ok = single_op_model("CONCATENATION", [T(np.int8, (2, 3), q), T(np.int8, (2, 3), q)], [T(np.int8, (2, 6), q)],
                         options("ConcatenationOptions", axis=1))
    assert oracle.check_ops(ok, [np.ones((2, 3), np.int8), -np.ones((2, 3), np.int8)], "CONCATENATION") == 1


def test_concat_rejects_bad_models():
    q = (0.01, 0)
    cases = [
        ([tensor(0, np.float32, (2, 3)), tensor(1, np.float32, (2, 3)), tensor(2, np.float32, (2, 6))], {"axis": 1}, "int8"),
        ([tensor(0, np.int8, (2, 3), q), tensor(1, np.int8, (2, 3), q), tensor(2, np.int8, (2, 6), q)], {"axis": 2}, "out of range"),
        ([tensor(0, np.int8, (2, 3), q), tensor(1, np.int8, (2, 3), q), tensor(2, np.int8, (2, 6), q)], {"axis": -3}, "out of range"),
        ([tensor(0, np.int8, (2, 3), q), tensor(1, np.int8, (3, 3), q), tensor(2, np.int8, (2, 6), q)], {"axis": 1}, "dimension 0"),
        ([tensor(0, np.int8, (2, 3), q), tensor(1, np.int8, (2, 3, 1), q), tensor(2, np.int8, (2, 6), q)], {"axis": 1}, "rank"),
        ([tensor(0, np.int8, (2, 3), q), tensor(1, np.int8, (2, 3), q), tensor(2, np.int8, (2, 7), q)], {"axis": 1}, "declared"),
        ([tensor(0, np.int8, (), q), tensor(1, np.int8, (), q), tensor(2, np.int8, (2,), q)], {"axis": 0}, "scalars"),
    ]
    for tensors, options, message in cases:
        with pytest.raises(ModelError, match=message):
            synthetic_kernel("CONCATENATION", tensors, 2, options)
    k = synthetic_kernel("CONCATENATION", [tensor(0, np.int8, (1, 4, 3), q, signature=(1, -1, 3)),
                                           tensor(1, np.int8, (1, 4, 2), q, signature=(1, -1, 2)),
                                           tensor(2, np.int8, (1, 4, 5), q, signature=(1, -1, 5))], 2, {"axis": -1})
    out = k.run([np.ones((1, 6, 3), np.int8), np.zeros((1, 6, 2), np.int8)])[0]
    assert out.shape == (1, 6, 5) and out[..., :3].all() and not out[..., 3:].any()
    with pytest.raises(ModelError):  # time lengths differ between the inputs
        k.run([np.ones((1, 6, 3), np.int8), np.zeros((1, 5, 2), np.int8)])
