"""REVERSE_V2 against LiteRT: Keras Bidirectional LSTMs (static and dynamic time), where the
reversed LSTM output gets other quantization parameters than its input and LiteRT still copies
the raw integers, and hand-built single-op models (other types, several axes, refusals)."""
from __future__ import annotations

import numpy as np
import pytest

import zoo
from oracle import check_ops, find_op
from tflite_build import one_input_model, patched, random_input

from edgelstm import ModelError
from edgelstm.ops import build_kernel
from edgelstm.tflite_reader import read_model


@zoo.zoo_model("ops_bidir")
def _bidir():
    K = zoo._keras(); L = K.layers; zoo._seed(51)
    x = K.Input((9, 5), batch_size=1)
    a = L.Bidirectional(L.LSTM(6, return_sequences=True))(x)
    b = L.Dense(3)(L.Bidirectional(L.LSTM(4))(x))
    m = K.Model(x, [a, b])
    return zoo._randomize_biases(m), zoo._calib((1, 9, 5))


@zoo.zoo_model("ops_bidir_dynamic")
def _bidir_dynamic():
    K = zoo._keras(); L = K.layers; zoo._seed(52)
    x = K.Input((None, 5), batch_size=1)
    m = K.Model(x, L.Dense(3)(L.Bidirectional(L.LSTM(6))(x)))
    return zoo._randomize_biases(m), zoo._calib((1, 12, 5))


def test_bidirectional():
    model = zoo.build("ops_bidir")
    g = read_model(model)
    revs = [op for op in g.operators if op.opcode == "REVERSE_V2"]
    assert len(revs) >= 2

    def qp(i):
        return g.tensors[i].quant.s, g.tensors[i].quant.zp

    for xs in zoo.sample_inputs(model):
        assert check_ops(model, xs, "REVERSE_V2") == len(revs)
    # The converter sometimes gives a reverse other output parameters than its input (it did for
    # an earlier random draw of these weights); LiteRT still copies the raw integers. Make sure
    # that case is covered on this graph whatever the draw: move one reverse's output parameters.
    rev = next(op for op in revs if op.outputs[0] not in g.outputs)
    s, zp = qp(rev.outputs[0])
    moved = patched(model, quant={rev.outputs[0]: (s * 1.25, min(zp + 3, 127))})
    g2 = read_model(moved)
    assert qp(rev.inputs[0]) != (g2.tensors[rev.outputs[0]].quant.s, g2.tensors[rev.outputs[0]].quant.zp)
    for xs in zoo.sample_inputs(moved):
        assert check_ops(moved, xs, "REVERSE_V2") == len(revs)


def test_bidirectional_dynamic_time():
    model = zoo.build("ops_bidir_dynamic")
    g, op = find_op(model, "REVERSE_V2")
    assert -1 in g.tensors[op.inputs[0]].shape_signature
    for t in (1, 2, 13):
        for xs in zoo.sample_inputs(model, n_random=2, time_steps=t):
            assert check_ops(model, xs, "REVERSE_V2") == 1


@pytest.mark.parametrize("axes", [[0], [1], [-1], [0, 1], [2, 1], [-2, -1], [0, 1, 2]])
@pytest.mark.parametrize("dtype", [np.int8, np.int32])
def test_axes_vs_litert(axes, dtype):
    model = one_input_model("REVERSE_V2", (2, 3, 4), dtype, [np.int32(axes)], (2, 3, 4), out_q=(0.2, -60))
    for seed in range(2):
        assert check_ops(model, [random_input((2, 3, 4), dtype, seed)], "REVERSE_V2") == 1


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int64, np.float32, np.bool_])
def test_dtypes_vs_litert(dtype):
    model = one_input_model("REVERSE_V2", (3, 5), dtype, [np.int32([0])], (3, 5))
    assert check_ops(model, [random_input((3, 5), dtype)], "REVERSE_V2") == 1


def test_dynamic_handmade_vs_litert():
    model = one_input_model("REVERSE_V2", (2, 1, 3), np.int8, [np.int32([1])], (2, 1, 3),
                            x_sig=(2, -1, 3), out_sig=(2, -1, 3))
    for t in (1, 4):
        assert check_ops(model, [random_input((2, t, 3), np.int8, t)], "REVERSE_V2") == 1


def test_output_never_aliases_input():
    g, op = find_op(one_input_model("REVERSE_V2", (4,), np.int8, [np.int32([0])], (4,)), "REVERSE_V2")
    x = np.arange(4, dtype=np.int8)
    (y,) = build_kernel(op, g, "tflite").run([x, g.tensors[op.inputs[1]].data])
    assert y.tolist() == [3, 2, 1, 0] and y.flags.c_contiguous and not np.shares_memory(x, y)


@pytest.mark.parametrize("axes,match", [
    ([0, 2], "contiguous"), ([1, 1], "contiguous"), ([3], "out of range"), ([-4], "out of range"),
    ([0, 1, 2, 0], "between 1 and 3"), ([], "between 1 and 3"), (np.int64([1]), "int32"),
])
def test_refusals(axes, match):
    axes = np.asarray(axes, dtype=getattr(axes, "dtype", np.int32))
    # an empty constant has no buffer, so start from a valid model and edit the axis tensor
    model = one_input_model("REVERSE_V2", (2, 3, 4), np.int8, [axes if axes.size else np.int32([0])], (2, 3, 4))
    g, op = find_op(model, "REVERSE_V2")
    if not axes.size:
        t = g.tensors[op.inputs[1]]
        t.data, t.shape, t.shape_signature = axes, (0,), (0,)
    with pytest.raises(ModelError, match=match):
        build_kernel(op, g, "tflite")


def test_non_constant_axis_is_refused():
    g, op = find_op(one_input_model("REVERSE_V2", (2, 3), np.int8, [np.int32([0])], (2, 3)), "REVERSE_V2")
    g.tensors[op.inputs[1]].data = None
    with pytest.raises(ModelError, match="constant"):
        build_kernel(op, g, "tflite")
