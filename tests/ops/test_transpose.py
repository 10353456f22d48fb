"""TRANSPOSE against LiteRT: Keras Permute layers and a time-major LSTM wrapped in transposes
(static and dynamic time), and hand-built single-op models (ranks, types, refusals)."""
from __future__ import annotations

import numpy as np
import pytest

import zoo
from oracle import check_ops, find_op
from tflite_build import one_input_model, random_input

from edgelstm import ModelError
from edgelstm.ops import build_kernel
from edgelstm.tflite_reader import read_model


@zoo.zoo_model("ops_permute")
def _permute():
    import tensorflow as tf

    K = zoo._keras(); L = K.layers; zoo._seed(61)
    x = K.Input((9, 5), batch_size=2)
    tm = L.Lambda(lambda t: tf.transpose(t, [1, 0, 2]))(x)  # time-major: [T, B, F]
    y = L.LSTM(8, time_major=True, return_sequences=True)(tm)
    y = L.Lambda(lambda t: tf.transpose(t, [1, 0, 2]))(y)
    a = L.Permute((2, 1))(y)
    b = L.Permute((3, 1, 2))(L.Reshape((9, 4, 2))(y))
    m = K.Model(x, [a, b])
    return zoo._randomize_biases(m), zoo._calib((2, 9, 5))


@zoo.zoo_model("ops_permute_dynamic")
def _permute_dynamic():
    K = zoo._keras(); L = K.layers; zoo._seed(62)
    x = K.Input((None, 5), batch_size=1)
    m = K.Model(x, L.Permute((2, 1))(L.LSTM(6, return_sequences=True)(x)))
    return zoo._randomize_biases(m), zoo._calib((1, 12, 5))


def test_permute_and_time_major():
    model = zoo.build("ops_permute")
    g = read_model(model)
    perms = [g.tensors[op.inputs[1]].data.tolist() for op in g.operators if op.opcode == "TRANSPOSE"]
    assert [1, 0, 2] in perms and [0, 2, 1] in perms and [0, 3, 1, 2] in perms
    for xs in zoo.sample_inputs(model):
        assert check_ops(model, xs, "TRANSPOSE") == len(perms)


def test_permute_dynamic_time():
    model = zoo.build("ops_permute_dynamic")
    g, op = find_op(model, "TRANSPOSE")
    assert -1 in g.tensors[op.inputs[0]].shape_signature
    for t in (1, 3, 12):
        for xs in zoo.sample_inputs(model, n_random=2, time_steps=t):
            assert check_ops(model, xs, "TRANSPOSE") == 1


@pytest.mark.parametrize("shape,perm", [
    ((2, 3, 4), [2, 0, 1]), ((2, 3, 4), [-1, -3, 1]), ((2, 3, 4), [0, 1, 2]), ((5,), [0]),
    ((2, 1, 3, 2, 2), [4, 2, 0, 3, 1]),
])
def test_perms_vs_litert(shape, perm):
    out_shape = tuple(shape[p] for p in perm)
    model = one_input_model("TRANSPOSE", shape, np.int8, [np.int32(perm)], out_shape, out_q=(0.7, 33))
    for seed in range(2):
        assert check_ops(model, [random_input(shape, np.int8, seed)], "TRANSPOSE") == 1


@pytest.mark.parametrize("dtype", [np.int32, np.int16, np.float32, np.int64, np.bool_])
def test_dtypes_vs_litert(dtype):
    model = one_input_model("TRANSPOSE", (3, 4), dtype, [np.int32([1, 0])], (4, 3))
    assert check_ops(model, [random_input((3, 4), dtype)], "TRANSPOSE") == 1


def test_dynamic_handmade_vs_litert():
    model = one_input_model("TRANSPOSE", (2, 1, 3), np.int8, [np.int32([1, 2, 0])], (1, 3, 2),
                            x_sig=(2, -1, 3), out_sig=(-1, 3, 2))
    for t in (1, 6):
        assert check_ops(model, [random_input((2, t, 3), np.int8, t)], "TRANSPOSE") == 1


@pytest.mark.parametrize("perm,match", [
    ([0, 0, 1], "repeats"), ([0, 1], "3 entries"), ([0, 1, 3], "out of range"), ([-4, 0, 1], "out of range"),
    ([2, -1, 0], "repeats"), (np.int64([2, 1, 0]), "int32"),
])
def test_refusals(perm, match):
    perm = np.asarray(perm, dtype=getattr(perm, "dtype", np.int32))
    g, op = find_op(one_input_model("TRANSPOSE", (2, 3, 4), np.int8, [perm], (4, 3, 2)), "TRANSPOSE")
    with pytest.raises(ModelError, match=match):
        build_kernel(op, g, "tflite")


def test_bad_declared_shape_and_non_constant_perm_are_refused():
    g, op = find_op(one_input_model("TRANSPOSE", (2, 3, 4), np.int8, [np.int32([2, 1, 0])], (4, 2, 3)),
                    "TRANSPOSE")
    with pytest.raises(ModelError, match="declares"):
        build_kernel(op, g, "tflite")
    g, op = find_op(one_input_model("TRANSPOSE", (2, 3, 4), np.int8, [np.int32([2, 1, 0])], (4, 3, 2)),
                    "TRANSPOSE")
    g.tensors[op.inputs[1]].data = None
    with pytest.raises(ModelError, match="constant"):
        build_kernel(op, g, "tflite")
