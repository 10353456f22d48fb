"""MAX_POOL_2D / AVERAGE_POOL_2D against LiteRT's reference kernels, op by op.

Converter-made models cover what Keras emits (1-D pooling as 2-D on [1, T, 1, C], SAME/VALID, strides,
a fused ReLU/ReLU6, a dynamic time axis). Hand-built single-op models cover the geometry and
activation grid the converter will not produce (RELU_N1_TO_1, 2-D windows and strides, batches).
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest

import oracle
import zoo
from edgelstm import ModelError
from edgelstm.ops import build_kernel
from edgelstm.ops.pooling import pool_geometry
from edgelstm.tflite_reader import read_model
from oracle import check_converted, first_kernel
from tflite_build import T, options, single_op_model

POOLS = ("MAX_POOL_2D", "AVERAGE_POOL_2D")


# -- hand-built single-op models --------------------------------------------------------------------
def pool_model(opcode: str, in_shape, filt, strides, padding: int, act: int, scale: float, zp: int,
               out_scale=None, out_zp=None, out_shape=None) -> bytes:
    if out_shape is None:
        b, h, w, c = in_shape
        oh = pool_geometry(padding, h, filt[0], strides[0])[0]
        ow = pool_geometry(padding, w, filt[1], strides[1])[0]
        out_shape = [b, max(oh, 0), max(ow, 0), c] if ow >= 0 else [b, 0, 0, c]
    opts = options("Pool2DOptions", padding=padding, strideH=strides[0], strideW=strides[1], filterHeight=filt[0],
                   filterWidth=filt[1], fusedActivationFunction=act)
    out_q = (scale if out_scale is None else out_scale, zp if out_zp is None else out_zp)
    return single_op_model(opcode, [T(np.int8, in_shape, (scale, zp))], [T(np.int8, out_shape, out_q)], opts,
                           version=2)


# -- converter-made models ---------------------------------------------------------------------------
@zoo.zoo_model("ops_pool_conv1d")
def _pool_conv1d():
    K = zoo._keras(); L = K.layers; zoo._seed(21)
    x = K.Input((17, 5), batch_size=1)
    y = L.Conv1D(8, 3, activation="relu")(x)  # T = 15: odd, so VALID drops a step and SAME pads
    outs = [L.MaxPooling1D(2)(y),
            L.AveragePooling1D(3, strides=2, padding="same")(y),
            L.MaxPooling1D(3, strides=2, padding="same")(y),
            L.AveragePooling1D(2)(y),
            L.ReLU()(L.AveragePooling1D(4, strides=3)(L.Dense(8)(x))),  # ReLU fused into the pool
            L.ReLU(max_value=6.0)(L.MaxPooling1D(2)(L.Dense(8)(x)))]  # ReLU6 fused into the pool
    return zoo._randomize_biases(K.Model(x, outs)), zoo._calib((1, 17, 5))


@zoo.zoo_model("ops_pool_lstm")
def _pool_lstm():
    K = zoo._keras(); L = K.layers; zoo._seed(22)
    x = K.Input((20, 6), batch_size=1)
    y = L.LSTM(10, return_sequences=True)(x)
    y = L.AveragePooling1D(3, strides=2, padding="same")(y)
    y = L.LSTM(6, return_sequences=True)(y)
    y = L.MaxPooling1D(2)(y)
    m = K.Model(x, L.Dense(3)(L.Flatten()(y)))
    return zoo._randomize_biases(m), zoo._calib((1, 20, 6))


@zoo.zoo_model("ops_pool_dynamic")
def _pool_dynamic():
    K = zoo._keras(); L = K.layers; zoo._seed(23)
    x = K.Input((None, 6), batch_size=1)
    y = L.LSTM(8, return_sequences=True)(x)
    m = K.Model(x, [L.MaxPooling1D(2)(y), L.AveragePooling1D(3, strides=2, padding="same")(y)])
    return zoo._randomize_biases(m), zoo._calib((1, 20, 6))


@zoo.zoo_model("ops_pool_2d")
def _pool_2d():
    K = zoo._keras(); L = K.layers; zoo._seed(24)
    x = K.Input((12, 10, 3), batch_size=1)
    y = L.Conv2D(4, 3, activation="relu")(x)
    y = L.MaxPooling2D((2, 3), strides=(2, 1), padding="same")(y)
    y = L.AveragePooling2D((3, 2), strides=(1, 2))(y)
    m = K.Model(x, L.Dense(2)(L.Flatten()(y)))
    return zoo._randomize_biases(m), zoo._calib((1, 12, 10, 3))


def test_conv1d_pools_match_reference():
    check_converted("ops_pool_conv1d", {"MAX_POOL_2D": 3, "AVERAGE_POOL_2D": 3})
    g = read_model(zoo.build("ops_pool_conv1d"))
    acts = sorted(int(op.options["fused_activation_function"]) for op in g.operators if op.opcode in POOLS)
    assert acts == [0, 0, 0, 0, 1, 3], "the converter no longer fuses ReLU/ReLU6 into pooling"


def test_lstm_sequence_pools_match_reference():
    check_converted("ops_pool_lstm", {"MAX_POOL_2D": 1, "AVERAGE_POOL_2D": 1})


@pytest.mark.parametrize("time_steps", [20, 9, 2, 1])
def test_dynamic_time_pools_match_reference(time_steps):
    # T = 1 makes MaxPooling1D(2) produce an empty sequence, as the reference does
    check_converted("ops_pool_dynamic", {"MAX_POOL_2D": 1, "AVERAGE_POOL_2D": 1}, time_steps=time_steps)


def test_2d_pools_match_reference():
    check_converted("ops_pool_2d", {"MAX_POOL_2D": 1, "AVERAGE_POOL_2D": 1})


# -- hand-built grid ---------------------------------------------------------------------------------
@pytest.mark.parametrize("opcode", POOLS)
def test_geometry_and_activation_grid(opcode):
    rng = np.random.default_rng(1)
    checked = 0
    grid = itertools.product([(7, 1), (9, 5), (1, 1), (2, 3)], [(2, 1), (3, 2), (4, 4)],
                             [(1, 1), (2, 1), (3, 2), (5, 5)], [0, 1], [0, 1, 2, 3],
                             [(0.05, -10), (0.01, 100)])
    for (h, w), filt, strides, padding, act, (scale, zp) in grid:
        data = pool_model(opcode, (2, h, w, 3), filt, strides, padding, act, scale, zp)
        x = rng.integers(-128, 128, size=(2, h, w, 3), dtype=np.int8)
        x[1, ..., 0] = 127  # saturated windows: the largest sums and the top of the clamp
        checked += oracle.check_ops(data, [x], opcode)
    assert checked == 4 * 3 * 4 * 2 * 4 * 2


def test_activation_clamps_are_applied():
    """RELU_N1_TO_1 at scale 0.05, zero point -10 clamps to [-30, 10]: a kernel that ignored the
    activation would disagree with the reference on this input."""
    data = pool_model("AVERAGE_POOL_2D", (1, 6, 1, 2), (2, 1), (2, 1), 1, 2, 0.05, -10)
    x = np.array([-128, -128, 127, 127, 0, 5], np.int8).repeat(2).reshape(1, 6, 1, 2)
    assert oracle.check_ops(data, [x], "AVERAGE_POOL_2D") == 1
    g = read_model(data)
    out = build_kernel(g.operators[0], g, "tflite").run([x])[0]
    assert out[0, :, 0, 0].tolist() == [-30, 10, 3]


# -- refusals ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, message", [
    (dict(act=4), "fused activation"),                      # TANH: the reference silently ignores it
    (dict(act=3, scale=1e-10), "does not fit int32"),       # RELU6's bound overflows: reference unset
    (dict(padding=2), "padding"),
    (dict(strides=(0, 1)), "strides"),
    (dict(filt=(0, 1)), "filter"),
    (dict(out_zp=3), "quantization must match"),
    (dict(out_scale=0.07), "quantization must match"),
    (dict(out_shape=[1, 4, 1, 2]), "should have shape"),
])
def test_bad_options_are_model_errors(kwargs, message):
    args = dict(opcode="MAX_POOL_2D", in_shape=(1, 6, 1, 2), filt=(2, 1), strides=(2, 1), padding=1, act=0,
                scale=0.05, zp=-10)
    args.update(kwargs)
    if args["padding"] == 2 or args["strides"][0] == 0 or args["filt"][0] == 0:
        args.setdefault("out_shape", [1, 3, 1, 2])
    with pytest.raises(ModelError, match=message):
        first_kernel(pool_model(**args))


def test_wrong_dtype_rank_and_runtime_shape_are_refused():
    opts = options("Pool2DOptions", padding=1, strideH=2, strideW=1, filterHeight=2, filterWidth=1,
                   fusedActivationFunction=0)
    f32 = single_op_model("MAX_POOL_2D", [T(np.float32, [1, 6, 1, 2])], [T(np.float32, [1, 3, 1, 2])], opts,
                          version=2)
    with pytest.raises(ModelError, match="must be int8"):
        first_kernel(f32)
    rank3 = single_op_model("MAX_POOL_2D", [T(np.int8, [6, 1, 2], (0.1, 0))], [T(np.int8, [3, 1, 2], (0.1, 0))], opts,
                            version=2)
    with pytest.raises(ModelError, match="4-D"):
        first_kernel(rank3)
    k = first_kernel(pool_model("MAX_POOL_2D", (1, 6, 1, 2), (2, 1), (2, 1), 1, 0, 0.05, -10))
    with pytest.raises(ModelError, match="does not match"):
        k.run([np.zeros((1, 7, 1, 2), np.int8)])
    with pytest.raises(ModelError, match="int8 input"):
        k.run([np.zeros((1, 6, 1, 2), np.int16)])
