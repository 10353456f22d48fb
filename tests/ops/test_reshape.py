"""RESHAPE, SQUEEZE and EXPAND_DIMS against LiteRT: Keras Reshape/Flatten layers after an LSTM
(static and dynamic time), and hand-built single-op models for what the converter never emits."""
from __future__ import annotations

import numpy as np
import pytest

import zoo
from oracle import check_ops, find_op, litert_run
from tflite_build import one_input_model, options, random_input

from edgelstm import ModelError
from edgelstm.ops import build_kernel
from edgelstm.graph.shapes import reshape_output_shape
from edgelstm.tflite_reader import read_model


def reshape_opts(new_shape):
    return options("ReshapeOptions", newShape=list(new_shape))


def squeeze_opts(dims):
    return options("SqueezeOptions", squeezeDims=list(dims))


# -- the converter's graphs -------------------------------------------------------------------------
@zoo.zoo_model("ops_reshape_layers")
def _reshape_layers():
    K = zoo._keras(); L = K.layers; zoo._seed(41)
    x = K.Input((9, 5), batch_size=1)
    y = L.LSTM(8, return_sequences=True)(x)
    a = L.Dense(3)(L.Flatten()(y))
    b = L.Reshape((4, -1))(y)
    c = L.LSTM(4)(L.Reshape((18, 4))(y))
    m = K.Model(x, [a, b, c])
    return zoo._randomize_biases(m), zoo._calib((1, 9, 5))


@zoo.zoo_model("ops_reshape_dynamic")
def _reshape_dynamic():
    K = zoo._keras(); L = K.layers; zoo._seed(42)
    x = K.Input((None, 5), batch_size=1)
    y = L.LSTM(8, return_sequences=True)(x)
    m = K.Model(x, L.Reshape((-1, 4, 2))(y))
    return zoo._randomize_biases(m), zoo._calib((1, 12, 5))


def test_keras_reshape_and_flatten():
    model = zoo.build("ops_reshape_layers")
    for xs in zoo.sample_inputs(model):
        assert check_ops(model, xs, "RESHAPE") == 3


def test_keras_reshape_dynamic_time():
    model = zoo.build("ops_reshape_dynamic")
    g, op = find_op(model, "RESHAPE")
    assert -1 in g.tensors[op.inputs[0]].shape_signature
    for t in (1, 3, 14):
        for xs in zoo.sample_inputs(model, n_random=2, time_steps=t):
            assert check_ops(model, xs, "RESHAPE") == 1


def shaped_int8_inputs(shape, n_random=2, seed=0) -> list[list[np.ndarray]]:
    """Random and extreme int8 inputs (without loading the whole model in edgelstm)."""
    rng = np.random.default_rng(seed)
    out = [[rng.integers(-128, 128, size=shape, dtype=np.int8)] for _ in range(n_random)]
    return out + [[np.full(shape, v, np.int8)] for v in (-128, 127)]


def test_keras_dense_on_dynamic_sequence():
    """The converter computes this RESHAPE's shape at run time (SHAPE, GATHER, REDUCE_PROD, PACK).
    The zoo's LSTM(return_sequences) + Dense on a dynamic time axis is that graph (tests/ops/
    test_shape_ops.py checks its other ops)."""
    model = zoo.build("dynamic_time_dense")
    g = read_model(model)
    reshapes = [op for op in g.operators if op.opcode == "RESHAPE"]
    assert reshapes and all(g.tensors[op.inputs[1]].data is None for op in reshapes)
    for t in (1, 4, 11):
        for xs in shaped_int8_inputs((1, t, zoo.F_DEFAULT), seed=t):
            assert check_ops(model, xs, "RESHAPE") == len(reshapes)


def test_runtime_shape_tensor_is_validated():
    model = one_input_model("RESHAPE", (2, 3, 4), np.int8, [np.int32([6, 4])], (6, 4))
    g, op = find_op(model, "RESHAPE")
    g.tensors[op.inputs[1]].data = None
    g.tensors[op.outputs[0]].shape_signature = (-1, 4)
    k = build_kernel(op, g, "tflite")
    x = random_input((2, 3, 4), np.int8)
    np.testing.assert_array_equal(k.run([x, np.int32([-1, 4])])[0],
                                  x.reshape(6, 4))
    for bad, match in [(np.int32([5, 4]), "cannot reshape"), (np.int32([-1, -1]), "more than one"),
                       (np.int64([6, 4]), "int32"), (np.int32([24]), "int32"), (np.int32([3, 8]), "declares")]:
        with pytest.raises(ModelError, match=match):
            k.run([x, bad])


# -- hand-built RESHAPE ------------------------------------------------------------------------------
@pytest.mark.parametrize("consts,options,out_shape", [
    ([np.int32([6, -1])], None, (6, 4)),
    ([np.int32([2, 3, 2, 2])], None, (2, 3, 2, 2)),
    ([], reshape_opts([4, -1]), (4, 6)),                       # shape from the option
    ([np.int64([24])], reshape_opts([-1, 2, 3]), (4, 2, 3)),   # not an int32 vector: option wins
    ([np.int32([[24]])], reshape_opts([24]), (24,)),           # not a vector: option wins
])
def test_reshape_vs_litert(consts, options, out_shape):
    model = one_input_model("RESHAPE", (2, 3, 4), np.int8, consts, out_shape, options, out_q=(0.9, -40))
    for seed in range(2):
        assert check_ops(model, [random_input((2, 3, 4), np.int8, seed)], "RESHAPE") == 1


@pytest.mark.parametrize("options", [reshape_opts([0]), None])
def test_reshape_to_scalar_vs_litert(options):
    """A legacy [0] new_shape, and no shape at all, both mean a scalar."""
    model = one_input_model("RESHAPE", (1, 1, 1), np.int8, [], (), options)
    assert check_ops(model, [np.int8([[[-77]]])], "RESHAPE") == 1


@pytest.mark.parametrize("dtype", [np.int32, np.float32, np.int16, np.bool_])
def test_reshape_dtypes_vs_litert(dtype):
    model = one_input_model("RESHAPE", (2, 3, 4), dtype, [np.int32([-1, 12])], (2, 12))
    assert check_ops(model, [random_input((2, 3, 4), dtype)], "RESHAPE") == 1


def test_reshape_dynamic_handmade_vs_litert():
    model = one_input_model("RESHAPE", (1, 1, 6), np.int8, [np.int32([-1, 3])], (2, 3),
                            x_sig=(1, -1, 6), out_sig=(-1, 3))
    for t in (1, 2, 7):
        assert check_ops(model, [random_input((1, t, 6), np.int8, t)], "RESHAPE") == 1


def test_reshape_absent_shape_input_uses_option():
    # LiteRT crashes on this model, so check it against numpy.
    model = one_input_model("RESHAPE", (2, 3, 4), np.int8, [None], (3, 8), reshape_opts([3, -1]))
    g, op = find_op(model, "RESHAPE")
    x = random_input((2, 3, 4), np.int8)
    (y,) = build_kernel(op, g, "tflite").run([x, None])
    np.testing.assert_array_equal(y, x.reshape(3, 8))
    assert not np.shares_memory(x, y)


def test_reshape_output_shape_rules():
    assert reshape_output_shape((2, 3, 4), (-1,)) == (24,)
    assert reshape_output_shape((2, 0, 4), (4, -1, 0)) == (4, 2, 0)  # -1 from the non-zero counts
    assert reshape_output_shape((2, 0, 4), (-1, 3)) == (0, 3)
    assert reshape_output_shape((1,), ()) == ()
    for target in ([5, -1], [-1, -1], [2, -2, -6], [25]):
        with pytest.raises(ValueError):
            reshape_output_shape((2, 3, 4), target)


def test_reshape_refusals():
    for target, match in [([5, -1], "cannot reshape"), ([-1, -1], "at most one -1"), ([-2, -12], "at most one -1")]:
        g, op = find_op(one_input_model("RESHAPE", (2, 3, 4), np.int8, [np.int32(target)], (5, 5)), "RESHAPE")
        with pytest.raises(ModelError, match=match):
            build_kernel(op, g, "tflite")
    # LiteRT would silently resize an output declared with another shape; edgelstm refuses it
    g, op = find_op(one_input_model("RESHAPE", (2, 3, 4), np.int8, [np.int32([6, 4])], (4, 6)), "RESHAPE")
    with pytest.raises(ModelError, match="declares"):
        build_kernel(op, g, "tflite")
    g, op = find_op(one_input_model("RESHAPE", (2, 3, 4), np.int8, [np.int32([6, 4])], (6, 4)), "RESHAPE")
    g.tensors[op.inputs[1]].data = None
    g.tensors[op.inputs[1]].shape_signature = (-1,)
    with pytest.raises(ModelError, match="fixed length"):
        build_kernel(op, g, "tflite")
    g, op = find_op(one_input_model("RESHAPE", (2, 3, 4), np.int8, [np.int32([6, 4])], (6, 4),
                                    out_dtype=np.int16), "RESHAPE")
    with pytest.raises(ModelError, match="type"):
        build_kernel(op, g, "tflite")


def test_reshape_runtime_shape_is_validated():
    model = one_input_model("RESHAPE", (1, 3, 8), np.int8, [np.int32([3, 8])], (3, 8), x_sig=(1, -1, 8))
    g, op = find_op(model, "RESHAPE")
    k = build_kernel(op, g, "tflite")
    shape_c = g.tensors[op.inputs[1]].data
    assert k.run([random_input((1, 3, 8), np.int8), shape_c])[0].shape == (3, 8)
    with pytest.raises(ModelError, match="cannot reshape"):
        k.run([random_input((1, 4, 8), np.int8), shape_c])


# -- SQUEEZE -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("x_shape,dims,out_shape", [
    ((1, 6, 1), [], (6,)),
    ((1, 6, 1), [0], (6, 1)),
    ((1, 6, 1), [-1, 0], (6,)),
    ((2, 1, 3), [1, -2], (2, 3)),
])
def test_squeeze_vs_litert(x_shape, dims, out_shape):
    model = one_input_model("SQUEEZE", x_shape, np.int8, [], out_shape, squeeze_opts(dims), out_q=(0.01, 100))
    for seed in range(2):
        assert check_ops(model, [random_input(x_shape, np.int8, seed)], "SQUEEZE") == 1


def test_squeeze_dynamic_vs_litert():
    model = one_input_model("SQUEEZE", (1, 1, 4), np.int8, [], (1, 4), squeeze_opts([0]),
                            x_sig=(1, -1, 4), out_sig=(-1, 4))
    for t in (1, 2, 6):
        assert check_ops(model, [random_input((1, t, 4), np.int8, t)], "SQUEEZE") == 1


def test_squeeze_refusals():
    for dims, match in [([1], "size 6"), ([3], "out of range"), ([-4], "out of range")]:
        g, op = find_op(one_input_model("SQUEEZE", (1, 6, 1), np.int8, [], (6,), squeeze_opts(dims)), "SQUEEZE")
        with pytest.raises(ModelError, match=match):
            build_kernel(op, g, "tflite")
    # squeeze-all on a dynamic axis that turns out to be 1 changes the rank: refused at run time
    model = one_input_model("SQUEEZE", (1, 2, 4), np.int8, [], (2, 4), squeeze_opts([]),
                            x_sig=(1, -1, 4), out_sig=(-1, 4))
    g, op = find_op(model, "SQUEEZE")
    k = build_kernel(op, g, "tflite")
    assert k.run([random_input((1, 3, 4), np.int8)])[0].shape == (3, 4)
    with pytest.raises(ModelError, match="declares"):
        k.run([random_input((1, 1, 4), np.int8)])


# -- EXPAND_DIMS -------------------------------------------------------------------------------------
@pytest.mark.parametrize("axis,out_shape", [
    (np.int32([0]), (1, 2, 3)), (np.int32([-1]), (2, 3, 1)), (np.int64(1), (2, 1, 3)), (np.int32([-3]), (1, 2, 3)),
])
def test_expand_dims_vs_litert(axis, out_shape):
    model = one_input_model("EXPAND_DIMS", (2, 3), np.int8, [axis], out_shape)
    for seed in range(2):
        assert check_ops(model, [random_input((2, 3), np.int8, seed)], "EXPAND_DIMS") == 1


def test_expand_dims_dynamic_vs_litert():
    model = one_input_model("EXPAND_DIMS", (1, 1, 4), np.int8, [np.int32([2])], (1, 1, 1, 4),
                            x_sig=(1, -1, 4), out_sig=(1, -1, 1, 4))
    for t in (1, 5):
        assert check_ops(model, [random_input((1, t, 4), np.int8, t)], "EXPAND_DIMS") == 1


def test_expand_dims_refusals():
    x = random_input((2, 3), np.int8)
    differing = one_input_model("EXPAND_DIMS", (2, 3), np.int8, [np.int32([0])], (1, 2, 3), out_q=(0.5, 1))
    assert litert_run(differing, [x]) is None  # LiteRT refuses it as well
    g, op = find_op(differing, "EXPAND_DIMS")
    with pytest.raises(ModelError, match="identical quantization"):
        build_kernel(op, g, "tflite")
    for axis, match in [(np.int32([3]), "out of range"), (np.int32([-4]), "out of range"),
                        (np.int32([0, 1]), "exactly one"), (np.float32([0]), "int32/int64")]:
        g, op = find_op(one_input_model("EXPAND_DIMS", (2, 3), np.int8, [axis], (1, 2, 3)), "EXPAND_DIMS")
        with pytest.raises(ModelError, match=match):
            build_kernel(op, g, "tflite")
    g, op = find_op(one_input_model("EXPAND_DIMS", (2, 3), np.int8, [np.int32([0])], (1, 2, 3)), "EXPAND_DIMS")
    g.tensors[op.inputs[1]].data = None
    with pytest.raises(ModelError, match="constant"):
        build_kernel(op, g, "tflite")
