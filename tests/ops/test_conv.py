"""CONV_2D and DEPTHWISE_CONV_2D against LiteRT's reference kernels, op by op (tests/oracle.py).

Keras Conv1D/DepthwiseConv1D/Conv2D models cover SAME and VALID padding, strides, dilation, groups,
a dynamic time axis and fused RELU; flatbuffer edits (checked against LiteRT running the edited
model) cover per-tensor weights, the activations Keras does not fuse, and a depthwise conv without
bias.
"""
from __future__ import annotations

import numpy as np
import pytest

import zoo
from oracle import check_all, kernel_for, reference_refuses
from tflite_build import edit, ops_of, per_tensor_weights, set_activation

from edgelstm.errors import InputError, ModelError
from edgelstm.ops.conv import out_size_and_pad
from edgelstm.tflite_reader import ACTIVATION_NAMES, read_model

CONV, DW = "CONV_2D", "DEPTHWISE_CONV_2D"


# -- test models ----------------------------------------------------------------------------------
def _conv1d_model(seed, steps=32, **conv_kw):
    K = zoo._keras(); L = K.layers; zoo._seed(seed)
    x = K.Input((steps, 6), batch_size=1)
    m = K.Model(x, L.Conv1D(**conv_kw)(x))
    return zoo._randomize_biases(m), zoo._calib((1, 32 if steps is None else steps, 6))


@zoo.zoo_model("ops_conv1d_same")
def _same():
    return _conv1d_model(41, filters=5, kernel_size=3, padding="same")


@zoo.zoo_model("ops_conv1d_valid_stride2_relu")
def _valid_s2():
    return _conv1d_model(42, filters=5, kernel_size=4, strides=2, padding="valid", activation="relu")


@zoo.zoo_model("ops_conv1d_same_stride2_even")
def _same_s2():
    """Stride 2 over an even kernel: SAME padding is odd, so the extra pad element's side matters."""
    return _conv1d_model(43, steps=31, filters=4, kernel_size=4, strides=2, padding="same")


@zoo.zoo_model("ops_conv1d_dilation2")
def _dilated():
    return _conv1d_model(44, filters=5, kernel_size=3, dilation_rate=2, padding="same")


@zoo.zoo_model("ops_conv1d_groups2")
def _groups():
    return _conv1d_model(45, filters=4, kernel_size=3, groups=2, padding="valid")


@zoo.zoo_model("ops_conv1d_dynamic")
def _dynamic():
    return _conv1d_model(46, steps=None, filters=5, kernel_size=5, padding="same", activation="relu")


@zoo.zoo_model("ops_conv2d")
def _conv2d():
    K = zoo._keras(); L = K.layers; zoo._seed(47)
    x = K.Input((9, 10, 3), batch_size=1)
    y = L.Conv2D(4, (3, 2), strides=2, padding="same", activation="relu")(x)
    m = K.Model(x, L.Conv2D(3, (2, 2), dilation_rate=(2, 1), padding="valid")(y))
    return zoo._randomize_biases(m), zoo._calib((1, 9, 10, 3))


@zoo.zoo_model("ops_depthwise1d")
def _depthwise():
    K = zoo._keras(); L = K.layers; zoo._seed(48)
    x = K.Input((32, 6), batch_size=1)
    y = L.DepthwiseConv1D(3, depth_multiplier=2, padding="same")(x)
    m = K.Model(x, L.DepthwiseConv1D(4, strides=2, padding="valid", activation="relu")(y))
    return zoo._randomize_biases(m), zoo._calib((1, 32, 6))


CONV_MODELS = ["ops_conv1d_same", "ops_conv1d_valid_stride2_relu", "ops_conv1d_same_stride2_even",
               "ops_conv1d_dilation2", "ops_conv1d_groups2", "ops_conv1d_dynamic", "ops_conv2d"]


# -- converter output -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", CONV_MODELS)
def test_conv_models(name):
    b = zoo.build(name)
    n = sum(op.opcode == CONV for op in read_model(b).operators)
    assert n >= 1
    assert check_all(b, CONV) == 6 * n


def test_conv_models_cover_options():
    seen = set()
    for name in CONV_MODELS:
        g = read_model(zoo.build(name))
        for op in g.operators:
            if op.opcode == CONV:
                o = op.options
                w = g.tensors[op.inputs[1]]
                seen.add(("padding", o["padding"]))
                seen.add(("stride", o["stride_w"] > 1 or o["stride_h"] > 1))
                seen.add(("dilation", o["dilation_w_factor"] > 1 or o["dilation_h_factor"] > 1))
                seen.add(("act", ACTIVATION_NAMES[o["fused_activation_function"]]))
                seen.add(("groups", g.tensors[op.inputs[0]].shape[3] != w.shape[3]))
                seen.add(("per_channel", w.quant.scale.size > 1))
                seen.add(("dynamic", -1 in g.tensors[op.inputs[0]].shape_signature))
    for want in [("padding", 0), ("padding", 1), ("stride", True), ("dilation", True), ("act", "RELU"),
                 ("act", "NONE"), ("groups", True), ("per_channel", True), ("dynamic", True)]:
        assert want in seen


def test_depthwise_model():
    b = zoo.build("ops_depthwise1d")
    assert check_all(b, DW) == 2 * 6


def test_dynamic_time_lengths():
    b = zoo.build("ops_conv1d_dynamic")
    for steps in (1, 4, 5, 47):
        assert check_all(b, CONV, n_random=2, time_steps=steps) == 5


# -- variants made by editing the flatbuffer --------------------------------------------------------
@pytest.mark.parametrize("opcode, name", [(CONV, "ops_conv1d_same"), (CONV, "ops_conv2d"),
                                          (CONV, "ops_conv1d_groups2"), (DW, "ops_depthwise1d")])
def test_per_tensor_weights(opcode, name):
    def fn(m):
        for op in ops_of(m, opcode):
            per_tensor_weights(m, op)
    b = edit(zoo.build(name), fn)
    g = read_model(b)
    ops = [op for op in g.operators if op.opcode == opcode]
    assert all(g.tensors[op.inputs[1]].quant.per_tensor for op in ops)
    assert check_all(b, opcode) == 6 * len(ops)


@pytest.mark.parametrize("act", ["NONE", "RELU", "RELU6", "RELU_N1_TO_1"])
@pytest.mark.parametrize("opcode, name", [(CONV, "ops_conv2d"), (DW, "ops_depthwise1d")])
def test_fused_activations(act, opcode, name):
    def fn(m):
        for op in ops_of(m, opcode):
            set_activation(op, act)
    b = edit(zoo.build(name), fn)
    assert check_all(b, opcode) == 2 * 6


def test_depthwise_without_bias():
    def fn(m):
        for op in ops_of(m, DW):
            op.inputs = op.inputs[:2]
    b = edit(zoo.build("ops_depthwise1d"), fn)
    assert all(len(op.inputs) == 2 for op in read_model(b).operators if op.opcode == DW)
    assert check_all(b, DW) == 2 * 6


def test_padding_arithmetic():
    """LiteRT's padding.h: SAME gives ceil(n / s) outputs with the smaller half of the padding first."""
    assert out_size_and_pad("SAME", 31, 4, 2, 1) == (16, 1)
    assert out_size_and_pad("SAME", 32, 3, 1, 2) == (32, 2)
    assert out_size_and_pad("VALID", 32, 4, 2, 1) == (15, 0)
    assert out_size_and_pad("VALID", 3, 5, 2, 1) == (0, 0)  # C division: (3 + 2 - 5) / 2
    with pytest.raises(ValueError):
        out_size_and_pad("VALID", 2, 5, 1, 1)


def test_macs():
    kernel, _, _ = kernel_for(zoo.build("ops_conv1d_same"), CONV)
    # 32 outputs x 3 taps, less the two taps that fall in the padding; 5 filters over 6 channels
    assert kernel.macs([np.zeros((1, 1, 32, 6), np.int8), None, None]) == (32 * 3 - 2) * 5 * 6
    kernel, _, _ = kernel_for(zoo.build("ops_conv1d_groups2"), CONV)
    assert kernel.macs([np.zeros((1, 1, 32, 6), np.int8), None, None]) == 30 * 3 * 4 * 3
    kernel, _, _ = kernel_for(zoo.build("ops_depthwise1d"), DW, 1)
    assert kernel.macs([np.zeros((1, 1, 32, 12), np.int8), None, None]) == 15 * 4 * 12


# -- refusals -------------------------------------------------------------------------------------
def test_refuses_bad_models():
    base = zoo.build("ops_conv2d")

    def refused(fn, match, litert_refuses=None, opcode=CONV):
        b = edit(base if opcode == CONV else zoo.build("ops_depthwise1d"), fn)
        with pytest.raises(ModelError, match=match):
            kernel_for(b, opcode)
        if litert_refuses is not None:
            assert reference_refuses(b) == litert_refuses

    def first(m, opcode=CONV):
        return ops_of(m, opcode)[0]

    def no_bias(m):
        first(m).inputs = first(m).inputs[:2]
    refused(no_bias, "bias", litert_refuses=True)

    def absent_bias(m):
        first(m).inputs[2] = -1
    refused(absent_bias, "absent", litert_refuses=True)

    def weight_zero_point(m):
        t = m.subgraphs[0].tensors[first(m).inputs[1]]
        t.quantization.zeroPoint = [1] * len(t.quantization.zeroPoint)
    refused(weight_zero_point, "zero points", litert_refuses=True)

    def zero_stride(m):
        first(m).builtinOptions.strideW = 0
    refused(zero_stride, "stride", litert_refuses=True)

    def bad_padding(m):
        first(m).builtinOptions.padding = 2
    refused(bad_padding, "padding", litert_refuses=True)

    def tanh(m):
        set_activation(first(m), "TANH")
    refused(tanh, "activation TANH")

    def bias_size(m):
        first(m).inputs[2] = ops_of(m, CONV)[1].inputs[2]  # 3 values for 4 channels
    refused(bias_size, "4 elements", litert_refuses=True)

    def dw_multiplier(m):  # 9 filter channels over a 6-channel input: no whole depth multiplier
        t = m.subgraphs[0].tensors[first(m, DW).inputs[1]]
        t.shape = [1, 1, 2, 9]
        t.quantization.scale = t.quantization.scale[:9]
        t.quantization.zeroPoint = t.quantization.zeroPoint[:9]
        m.buffers[t.buffer].data = m.buffers[t.buffer].data[:18]
    refused(dw_multiplier, "multiple", litert_refuses=True, opcode=DW)


def test_run_time_shape_errors():
    kernel, _, _ = kernel_for(zoo.build("ops_conv1d_dynamic"), CONV)
    with pytest.raises(InputError):
        kernel.run([np.zeros((1, 1, 10, 5), np.int8), None, None])  # wrong channel count
    with pytest.raises(InputError):
        kernel.run([np.zeros((1, 1, 10, 6), np.uint8), None, None])
    kernel, _, _ = kernel_for(zoo.build("ops_conv1d_valid_stride2_relu"), CONV)
    with pytest.raises(InputError):
        kernel.run([np.zeros((1, 1, 31, 6), np.int8), None, None])  # static width is 32
