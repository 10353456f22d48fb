"""MEAN and REDUCE_MAX against LiteRT's reference kernels, op by op.

Converter-made models cover Keras' GlobalAveragePooling1D/GlobalMaxPooling1D (keepdims both ways,
after Conv1D and LSTM, with a dynamic time axis) and a 4-D keep_dims MEAN over axes (1, 2).
Hand-built single-op models cover what the converter never emits, in particular every case where an
older TFLite reference MEAN took a different branch (equal input/output quantization; 4-D keep_dims
over H and W), plus extreme scale ratios, long reductions and odd axis lists.
"""
from __future__ import annotations

import numpy as np
import pytest

import oracle
import zoo
from edgelstm import ModelError
from edgelstm.ops import build_kernel
from edgelstm.ops.base import resolve_axes
from edgelstm.references import get_reference
from edgelstm.tflite_reader import read_model
from oracle import check_converted, first_kernel
from tflite_build import T, int8_inputs, options, single_op_model


def reduce_model(opcode: str, shape, axes, keep: bool, s_in: float, zp_in: int, s_out: float, zp_out: int,
                 out_shape=None, axis_dtype: str = "int32", in_dtype: str = "int8",
                 const_axis: bool = True) -> bytes:
    a = np.array(axes, np.int32)
    if out_shape is None:
        r = resolve_axes(a, len(shape)) or []
        out_shape = ([1 if d in r else shape[d] for d in range(len(shape))] if keep
                     else [shape[d] for d in range(len(shape)) if d not in r])
    axis = T(axis_dtype, [len(axes)], data=a.astype(axis_dtype) if const_axis else None)
    return single_op_model(opcode, [T(in_dtype, shape, (s_in, zp_in)), axis], [T(in_dtype, out_shape, (s_out, zp_out))],
                           options("ReducerOptions", keepDims=keep), version=2)


# -- converter-made models ---------------------------------------------------------------------------
@zoo.zoo_model("ops_reduce_conv1d")
def _reduce_conv1d():
    import tensorflow as tf

    K = zoo._keras(); L = K.layers; zoo._seed(31)
    x = K.Input((16, 5), batch_size=1)
    y = L.Conv1D(8, 3, activation="relu")(x)
    d = L.Dense(6)(x)
    outs = [L.GlobalAveragePooling1D()(y), L.GlobalMaxPooling1D()(y),
            L.GlobalAveragePooling1D(keepdims=True)(y), L.GlobalMaxPooling1D(keepdims=True)(y),
            L.GlobalAveragePooling1D()(d),
            L.Lambda(lambda t: tf.reduce_mean(t, axis=[-1, 1], keepdims=True))(d)]
    return zoo._randomize_biases(K.Model(x, outs)), zoo._calib((1, 16, 5))


@zoo.zoo_model("ops_reduce_lstm")
def _reduce_lstm():
    K = zoo._keras(); L = K.layers; zoo._seed(32)
    x = K.Input((20, 6), batch_size=1)
    y = L.LSTM(12, return_sequences=True)(x)
    m = K.Model(x, [L.Dense(3)(L.GlobalAveragePooling1D()(y)), L.Dense(2)(L.GlobalMaxPooling1D()(y))])
    return zoo._randomize_biases(m), zoo._calib((1, 20, 6))


@zoo.zoo_model("ops_reduce_dynamic")
def _reduce_dynamic():
    K = zoo._keras(); L = K.layers; zoo._seed(33)
    x = K.Input((None, 6), batch_size=1)
    y = L.LSTM(8, return_sequences=True)(x)
    m = K.Model(x, [L.GlobalAveragePooling1D()(y), L.GlobalMaxPooling1D()(y)])
    return zoo._randomize_biases(m), zoo._calib((1, 20, 6))


@zoo.zoo_model("ops_reduce_2d")
def _reduce_2d():
    K = zoo._keras(); L = K.layers; zoo._seed(34)
    x = K.Input((8, 6, 3), batch_size=1)
    y = L.Conv2D(4, 3)(x)
    m = K.Model(x, [L.GlobalAveragePooling2D(keepdims=True)(y), L.GlobalMaxPooling2D()(y)])
    return zoo._randomize_biases(m), zoo._calib((1, 8, 6, 3))


def test_global_pooling_after_conv1d():
    ops = check_converted("ops_reduce_conv1d", {"MEAN": 4, "REDUCE_MAX": 2})
    g = read_model(zoo.build("ops_reduce_conv1d"))
    means = [op for op in ops if op.opcode == "MEAN"]
    assert sorted(bool(op.options["keep_dims"]) for op in ops) == [False, False, False, True, True, True]
    # GlobalAveragePooling1D requantizes: the case that matters is different input/output scales
    assert any(g.tensors[op.inputs[0]].quant.s != g.tensors[op.outputs[0]].quant.s for op in means)
    assert any(g.tensors[op.inputs[1]].data.size == 2 for op in means), "the two-axis MEAN is missing"


def test_global_pooling_after_lstm():
    check_converted("ops_reduce_lstm", {"MEAN": 1, "REDUCE_MAX": 1})


@pytest.mark.parametrize("time_steps", [20, 7, 1])
def test_global_pooling_dynamic_time(time_steps):
    check_converted("ops_reduce_dynamic", {"MEAN": 1, "REDUCE_MAX": 1}, time_steps=time_steps)


def test_4d_keep_dims_mean():
    ops = check_converted("ops_reduce_2d", {"MEAN": 1, "REDUCE_MAX": 1})
    mean = next(op for op in ops if op.opcode == "MEAN")
    assert mean.options["keep_dims"]


# -- hand-built cases --------------------------------------------------------------------------------
MEAN_CASES = [
    # shape, axes, keep_dims, input scale/zp, output scale/zp
    ([1, 10, 8], [1], False, 0.011, -128, 0.0029, -128),   # GlobalAveragePooling1D-like
    ([1, 10, 8], [1], False, 0.011, 5, 0.011, 5),          # equal quantization (an old separate branch)
    ([2, 6, 5, 3], [1, 2], True, 0.02, 3, 0.01, -7),       # 4-D keep_dims H,W (an old separate branch)
    ([2, 6, 5, 3], [2, 1], True, 0.02, 3, 0.02, 3),
    ([2, 6, 5, 3], [-3, 2, 1], False, 0.02, 3, 0.05, -7),  # negative and duplicate axes
    ([2, 6, 5, 3], [0, 3], False, 0.02, 3, 0.05, -7),
    ([3, 4, 5], [0, 1, 2], False, 0.02, -3, 0.01, 9),      # everything: a scalar
    ([1, 1000, 3], [1], False, 0.02, 3, 0.05, -7),          # long sequences: 1/n truncation matters
    ([1, 1024, 2], [-2], True, 0.02, 3, 0.005, 0),          # n a power of two
    ([1, 4095, 2], [1], False, 0.01, -100, 0.01, 100),
    ([1, 10, 3], [1], False, 6.6e-10, 3, 1.0, -7),          # shift capped at 31 + exponent
    ([1, 7, 3], [1], False, 0.5, 3, 1e-4, -7),              # large ratio: saturates
    ([1, 7, 3], [1], False, 0.011, 0, 0.0109, 0),           # ratio just above 1
]


@pytest.mark.parametrize("case", MEAN_CASES, ids=lambda c: f"{c[0]}-{c[1]}-{c[2]}-{c[3]:g}/{c[5]:g}")
def test_mean_hand_built(case):
    data = reduce_model("MEAN", *case)
    checked = sum(oracle.check_ops(data, xs, "MEAN") for xs in int8_inputs(data, seed=len(case[0])))
    assert checked == 6


@pytest.mark.parametrize("shape, axes, keep", [
    ([1, 10, 8], [1], True), ([1, 10, 8], [0, 1, 2], False), ([1, 10, 8], [2, -1], True),
    ([2, 6, 5, 3], [1, 2], False), ([2, 6, 5, 3], [0], True),
])
def test_reduce_max_hand_built(shape, axes, keep):
    data = reduce_model("REDUCE_MAX", shape, axes, keep, 0.03, -20, 0.03, -20)
    checked = sum(oracle.check_ops(data, xs, "REDUCE_MAX") for xs in int8_inputs(data))
    assert checked == 6


def test_mean_integer_division_is_reproduced():
    """1/n is folded into the multiplier by integer division (2^31 * 2/3 truncated, not rounded). For
    the mean of (-128, -127, -127) = -127.33 at equal scales that gives -127, where a multiplier
    quantized from 1/3 directly would double-round to -128."""
    data = reduce_model("MEAN", [1, 3, 1], [1], False, 0.1, 0, 0.1, 0)
    x = np.array([-128, -127, -127], np.int8).reshape(1, 3, 1)
    assert oracle.check_ops(data, [x], "MEAN") == 1
    assert first_kernel(data).run([x, None])[0].ravel().tolist() == [-127]


# -- SUM -------------------------------------------------------------------------------------------
def test_reference_int8_sum_is_broken_so_sum_is_refused():
    """LiteRT's reference SUM reads int8 as uint8: ten -1s at equal scales 'sum' to -1 (255 clamped),
    not -10. If this starts failing, LiteRT fixed the bug and int8 SUM can be supported."""
    data = reduce_model("SUM", [1, 10, 1], [1], False, 0.01, 0, 0.01, 0)
    ref = get_reference("litert", data)
    got = ref.run([np.full((1, 10, 1), -1, np.int8)])[0]
    assert got.ravel().tolist() == [-1]
    g = read_model(data)
    with pytest.raises(ModelError, match="SUM"):
        build_kernel(g.operators[0], g, "tflite")


# -- refusals ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("opcode, kwargs, message", [
    ("MEAN", dict(const_axis=False), "constant"),
    ("MEAN", dict(axes=[3]), "out of range"),
    ("MEAN", dict(axes=[-4]), "out of range"),
    ("MEAN", dict(axis_dtype="int64"), "must be int32"),
    ("MEAN", dict(in_dtype="int16"), "must be int8"),
    ("MEAN", dict(out_shape=[1, 10]), "should have shape"),
    ("MEAN", dict(s_in=1e4, s_out=1e-6), "too large"),
    ("REDUCE_MAX", dict(zp_out=4), "identical"),
    ("REDUCE_MAX", dict(s_out=0.0301), "identical"),
])
def test_bad_models_are_model_errors(opcode, kwargs, message):
    args = dict(shape=[1, 10, 8], axes=[1], keep=False, s_in=0.03, zp_in=-20, s_out=0.03, zp_out=-20)
    args.update(kwargs)
    with pytest.raises(ModelError, match=message):
        first_kernel(reduce_model(opcode, **args))


def test_float_input_and_runtime_shape_are_refused():
    data = single_op_model("MEAN", [T(np.float32, [1, 10, 8]), T(np.int32, [1], data=[1])], [T(np.float32, [1, 8])],
                           options("ReducerOptions", keepDims=False), version=2)
    with pytest.raises(ModelError, match="must be int8"):
        first_kernel(data)
    k = first_kernel(reduce_model("MEAN", [1, 10, 8], [1], False, 0.03, -20, 0.02, 0))
    with pytest.raises(ModelError, match="does not match"):
        k.run([np.zeros((1, 10, 9), np.int8), None])
    with pytest.raises(ModelError, match="rank 3"):
        k.run([np.zeros((10, 8), np.int8), None])
