"""LOGISTIC, TANH, RELU, RELU6, RELU_N1_TO_1, RELU_0_TO_1 and LEAKY_RELU against LiteRT's BUILTIN_REF.

What the stock converter emits:
* an activation applied straight to the model input stays a standalone op, so feeding the input
  np.arange(-128, 128) puts every int8 value through it;
* Dense(k, activation="sigmoid"|"tanh") gives FULLY_CONNECTED + LOGISTIC/TANH;
* Dense + Activation("relu") / ReLU(6) is always fused into FULLY_CONNECTED (even when the Dense
  output has other consumers, the converter duplicates the Dense), so standalone RELU/RELU6/
  LEAKY_RELU on real data come from an LSTM output and a MEAN instead;
* RELU_0_TO_1 is never emitted (clip(x, 0, 1) becomes MINIMUM + RELU): it is checked by
  relabelling the RELU of the input model, which LiteRT then runs with its own RELU_0_TO_1 kernel.
Quantization parameters and options the converter does not choose are set by editing the
flatbuffer; LiteRT runs each edited model, so every comparison is still against the reference.
"""
from __future__ import annotations

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as S

import edgelstm
import zoo
from edgelstm.tflite_reader import read_model
from oracle import check_ops, first_kernel
from tflite_build import edit

ALL_INT8 = np.arange(-128, 128, dtype=np.int8).reshape(1, 256)


# -- models ------------------------------------------------------------------------------------------
# Each builder is self-contained: the zoo's cache key is the builder's own source.
@zoo.zoo_model("ops_act_in_sigmoid")
def _in_sigmoid():
    K = zoo._keras(); zoo._seed(21)
    x = K.Input((256,), batch_size=1)
    return K.Model(x, K.layers.Activation("sigmoid")(x)), zoo._calib((1, 256), scale=3.0)


@zoo.zoo_model("ops_act_in_tanh")
def _in_tanh():
    K = zoo._keras(); zoo._seed(22)
    x = K.Input((256,), batch_size=1)
    return K.Model(x, K.layers.Activation("tanh")(x)), zoo._calib((1, 256), scale=2.0, offset=0.5)


@zoo.zoo_model("ops_act_in_relu")
def _in_relu():
    K = zoo._keras(); zoo._seed(23)
    x = K.Input((256,), batch_size=1)
    return K.Model(x, K.layers.Activation("relu")(x)), zoo._calib((1, 256), scale=3.0)


@zoo.zoo_model("ops_act_in_relu6")
def _in_relu6():
    K = zoo._keras(); zoo._seed(24)
    x = K.Input((256,), batch_size=1)
    return K.Model(x, K.layers.ReLU(6.0)(x)), zoo._calib((1, 256), scale=4.0, offset=1.0)


@zoo.zoo_model("ops_act_in_clip")
def _in_clip():
    import tensorflow as tf
    K = zoo._keras(); zoo._seed(25)
    x = K.Input((256,), batch_size=1)
    clip = K.layers.Lambda(lambda t: tf.clip_by_value(t, -1.0, 1.0))  # becomes RELU_N1_TO_1
    return K.Model(x, clip(x)), zoo._calib((1, 256), scale=2.0)


@zoo.zoo_model("ops_act_in_leaky")
def _in_leaky():
    K = zoo._keras(); zoo._seed(26)
    x = K.Input((256,), batch_size=1)
    return K.Model(x, K.layers.LeakyReLU(0.2)(x)), zoo._calib((1, 256), scale=4.0)


@zoo.zoo_model("ops_act_heads")
def _heads():
    K = zoo._keras(); L = K.layers; zoo._seed(22)
    x = K.Input((10, 4), batch_size=1)
    h = L.LSTM(8, return_sequences=True)(x)
    relu = L.Flatten()(L.Activation("relu")(h))  # standalone RELU on the LSTM output
    p = L.GlobalAveragePooling1D()(h)  # MEAN: nothing to fuse an activation into
    d = L.Dense(12)(p)
    m = K.Model(x, [L.Dense(3)(relu), L.ReLU(6.0)(p), L.LeakyReLU(0.3)(p),
                    L.Dense(5, activation="sigmoid")(d), L.Dense(4, activation="tanh")(d)])
    return zoo._randomize_biases(m), zoo._calib((1, 10, 4), scale=2.0)


DIRECT = {"LOGISTIC": "ops_act_in_sigmoid", "TANH": "ops_act_in_tanh", "RELU": "ops_act_in_relu",
          "RELU6": "ops_act_in_relu6", "RELU_N1_TO_1": "ops_act_in_clip", "LEAKY_RELU": "ops_act_in_leaky"}


# -- flatbuffer editing (tests/tflite_build.py) -------------------------------------------------------
def requantize(model_bytes: bytes, in_q=None, out_q=None, op_index: int = 0) -> bytes:
    def fn(m):
        sg = m.subgraphs[0]
        op = sg.operators[op_index]
        for t, q in ((sg.tensors[op.inputs[0]], in_q), (sg.tensors[op.outputs[0]], out_q)):
            if q is not None:
                t.quantization.scale, t.quantization.zeroPoint = [float(q[0])], [int(q[1])]
    return edit(model_bytes, fn)


def _rand_q(rng, lo: float, hi: float) -> tuple[float, int]:
    return float(np.float32(10 ** rng.uniform(lo, hi))), int(rng.integers(-128, 128))


# -- every int8 value through every op -----------------------------------------------------------------
@pytest.mark.parametrize("opcode", sorted(DIRECT))
def test_every_int8_value_as_converted(opcode):
    model = zoo.build(DIRECT[opcode])
    assert [op.opcode for op in read_model(model).operators] == [opcode]
    assert check_ops(model, [ALL_INT8], opcode) == 1
    for xs in zoo.sample_inputs(model, n_random=2):
        assert check_ops(model, xs, opcode) == 1


@pytest.mark.parametrize("opcode", sorted(DIRECT))
def test_every_int8_value_across_quantizations(opcode):
    """60 random input/output quantizations per op, each with all 256 inputs."""
    rng = np.random.default_rng(sum(map(ord, opcode)))
    base = zoo.build(DIRECT[opcode])
    for _ in range(60):
        in_q = _rand_q(rng, -4, 0.7)
        if opcode == "LOGISTIC":  # LiteRT requires exactly 1/256 here; the zero point is free
            out_q = (1 / 256, int(rng.integers(-128, 128)))
        elif opcode == "TANH":
            out_q = _rand_q(rng, -3.5, 0)
        else:  # requantization ratios from 1/30 up to 2^30 (the int32 wrap of the left shift)
            ratio = 2.0 ** rng.uniform(-5, 30) if rng.random() < 0.5 else 10 ** rng.uniform(-1.5, 1.5)
            out_q = (float(np.float32(in_q[0] / ratio)), int(rng.integers(-128, 128)))
        assert check_ops(requantize(base, in_q, out_q), [ALL_INT8], opcode) == 1


# Input quantizations (scale, zero point) where a LUT computed differently from LiteRT goes wrong:
# in double precision, with numpy's float32 exp/tanh instead of libm's expf/tanhf, or rounding
# halves to even instead of away from zero. Random scales almost never land on these (an entry
# must sit on a rounding tie), so they were found by search and kept here.
TIE_CASES = {
    "LOGISTIC": ([(0.0016598813235759735, 87), (0.026469053700566292, -38), (0.008294896222651005, -83),
                  (0.0018344030249863863, -46), (0.014179167337715626, -99), (0.0394841767847538, -4),
                  (0.015442079864442348, -82), (0.05230354145169258, 72), (0.027928072959184647, 51),
                  (0.007241066079586744, -71), (0.006776647176593542, -17)], (1 / 256, -128)),
    "TANH": ([(s, 0) for s in (0.014414506033062935, 0.007634602952748537, 0.07698452472686768,
                               0.10146471112966537, 0.4733453392982483, 0.036884892731904984,
                               0.0307938102632761, 0.007662804331630468, 0.01107801590114832,
                               0.004582876805216074, 0.013944999314844608, 0.012135129421949387)],
             (1 / 128, 0)),
}


def _alternative_luts(opcode: str, in_q, out_q) -> dict[str, np.ndarray]:
    """The three plausible-but-wrong ways of building the table, for the sensitivity check."""
    from edgelstm.ops.activations import _logistic_f32, _tanhf, float_lut
    v = np.arange(-128, 128)
    deq64 = np.float64(np.float32(in_q[0])) * (v - in_q[1])
    exact = 1 / (1 + np.exp(-deq64)) if opcode == "LOGISTIC" else np.tanh(deq64)
    r = exact / np.float64(np.float32(out_q[0]))
    deq32 = np.float32(in_q[0]) * (v - in_q[1]).astype(np.float32)
    f32 = _logistic_f32(deq32) if opcode == "LOGISTIC" else _tanhf(deq32)
    with np.errstate(over="ignore"):
        numpy_fn = ((lambda x: np.float32(1) / (np.float32(1) + np.exp(-x))) if opcode == "LOGISTIC"
                    else np.tanh)
        return {
            "double": np.clip(np.sign(r) * np.floor(np.abs(r) + 0.5) + out_q[1], -128, 127),
            "numpy exp/tanh": float_lut(in_q[0], in_q[1], out_q[0], out_q[1], numpy_fn),
            "half to even": np.clip(np.round(f32 * (np.float32(1) / np.float32(out_q[0]))) + out_q[1],
                                    -128, 127),
        }


@pytest.mark.parametrize("opcode", sorted(TIE_CASES))
def test_lut_rounding_ties(opcode):
    from edgelstm.references import get_reference
    cases, out_q = TIE_CASES[opcode]
    base = zoo.build(DIRECT[opcode])
    caught = set()
    for in_q in cases:
        model = requantize(base, in_q, out_q)
        assert check_ops(model, [ALL_INT8], opcode) == 1
        want = get_reference("litert", model).run([ALL_INT8])[0][0]
        caught |= {name for name, lut in _alternative_luts(opcode, in_q, out_q).items()
                   if np.any(lut != want)}
    # the cases really discriminate: each wrong recipe fails at least one of them
    assert caught == {"double", "numpy exp/tanh", "half to even"}


@pytest.mark.parametrize("alpha", [-2.5, -1.0, -0.3, -0.001, 0.0, 0.999, 1.0, 3.0])
def test_leaky_relu_alphas(alpha):
    """Negative alphas take LiteRT's separate sign path; alpha > 1 makes the alpha multiplier > 1."""
    rng = np.random.default_rng(int(abs(alpha) * 1000))
    base = edit(zoo.build("ops_act_in_leaky"),
                  lambda m: setattr(m.subgraphs[0].operators[0].builtinOptions, "alpha", alpha))
    for _ in range(8):
        in_q = _rand_q(rng, -3, 0.5)
        out_q = (float(np.float32(in_q[0] * 10 ** rng.uniform(-1, 1))), int(rng.integers(-128, 128)))
        assert check_ops(requantize(base, in_q, out_q), [ALL_INT8], "LEAKY_RELU") == 1


def test_relu_0_to_1_relabelled():
    def relabel(m):
        for oc in m.operatorCodes:
            if oc.builtinCode == S.BuiltinOperator.RELU:
                oc.builtinCode, oc.deprecatedBuiltinCode, oc.version = S.BuiltinOperator.RELU_0_TO_1, 127, 1
    base = edit(zoo.build("ops_act_in_relu"), relabel)
    assert [op.opcode for op in read_model(base).operators] == ["RELU_0_TO_1"]
    rng = np.random.default_rng(5)
    for _ in range(20):
        q = requantize(base, _rand_q(rng, -3, 0), _rand_q(rng, -3, -1))
        assert check_ops(q, [ALL_INT8], "RELU_0_TO_1") == 1


@pytest.mark.parametrize("opcode,in_q,out_q", [
    # tanh(x) / 1e-12 overflows int32 in the LUT: LiteRT saturates (+127), it does not wrap
    ("TANH", (0.05, 3), (1e-12, -7)), ("TANH", (1.0, 0), (1e-30, 100)), ("TANH", (100.0, -128), (3.0, 0)),
    ("LOGISTIC", (1e30, 127), (1 / 256, 0)), ("LOGISTIC", (1e-6, -128), (1 / 256, 127)),
    # 6 / 1e-13 overflows the float->int32 cast of the RELU6 bound, which gives INT32_MIN, and the
    # zero point is then added with int32 wrap-around
    ("RELU6", (1e-4, 5), (1e-13, 127)), ("RELU6", (1e-3, 5), (1e-12, -100)),
    ("RELU_N1_TO_1", (1e-3, 5), (1e-12, 0)), ("RELU_N1_TO_1", (1e-4, 5), (1e-13, 120)),
    ("RELU", (1e-3, 5), (1e-12, 5)),
])
def test_extreme_scales(opcode, in_q, out_q):
    assert check_ops(requantize(zoo.build(DIRECT[opcode]), in_q, out_q), [ALL_INT8], opcode) == 1


def test_after_lstm_mean_and_dense():
    model = zoo.build("ops_act_heads")
    opcodes = [op.opcode for op in read_model(model).operators]
    for code in ("RELU", "RELU6", "LEAKY_RELU", "LOGISTIC", "TANH"):
        assert opcodes.count(code) == 1, opcodes
    rng = np.random.default_rng(3)
    inputs = zoo.sample_inputs(model, n_random=4) + [
        [rng.integers(-128, 128, size=(1, 10, 4), dtype=np.int8)] for _ in range(4)]
    for xs in inputs:
        for code in ("RELU", "RELU6", "LEAKY_RELU", "LOGISTIC", "TANH"):
            assert check_ops(model, xs, code) == 1


def test_whole_model_runs_through_edgelstm():
    model = zoo.build("ops_act_in_tanh")
    from edgelstm.references import get_reference
    got = edgelstm.load(model).run(ALL_INT8)
    got = got[0] if isinstance(got, (list, tuple)) else got
    want = get_reference("litert", model).run([ALL_INT8])[0]
    np.testing.assert_array_equal(got, want)


# -- refusals ------------------------------------------------------------------------------------------
def _set_type(model_bytes: bytes, which: str, tensor_type: int) -> bytes:
    def fn(m):
        sg = m.subgraphs[0]
        op = sg.operators[0]
        sg.tensors[(op.inputs if which == "in" else op.outputs)[0]].type = tensor_type
    return edit(model_bytes, fn)


@pytest.mark.parametrize("opcode", sorted(DIRECT))
def test_bad_models_raise_model_error(opcode):
    base = zoo.build(DIRECT[opcode])
    with pytest.raises(edgelstm.ModelError, match="must be int8"):
        first_kernel(_set_type(base, "out", S.TensorType.INT16))
    with pytest.raises(edgelstm.ModelError, match="must be int8"):
        first_kernel(_set_type(base, "in", S.TensorType.FLOAT32))

    def per_channel(m):
        sg = m.subgraphs[0]
        q = sg.tensors[sg.operators[0].inputs[0]].quantization
        q.scale, q.zeroPoint, q.quantizedDimension = [0.1] * 256, [0] * 256, 1
    with pytest.raises(edgelstm.ModelError, match="per tensor"):
        first_kernel(edit(base, per_channel))

    def two_inputs(m):
        op = m.subgraphs[0].operators[0]
        op.inputs = list(op.inputs) * 2
    with pytest.raises(edgelstm.ModelError, match="expects 1 inputs"):
        first_kernel(edit(base, two_inputs))

    kernel = first_kernel(base)
    with pytest.raises(edgelstm.ModelError, match="int8 input"):
        kernel.run([ALL_INT8.astype(np.int16)])


def test_bad_options_raise_model_error():
    with pytest.raises(edgelstm.ModelError, match="1/256"):
        first_kernel(requantize(zoo.build("ops_act_in_sigmoid"), out_q=(1 / 128, -128)))
    for code in ("ops_act_in_relu", "ops_act_in_leaky"):  # a left shift past the int32 sign bit
        with pytest.raises(edgelstm.ModelError, match="too large"):
            first_kernel(requantize(zoo.build(code), in_q=(1.0, 0), out_q=(1e-12, 0)))
    leaky = zoo.build("ops_act_in_leaky")
    with pytest.raises(edgelstm.ModelError, match="finite"):
        first_kernel(edit(leaky, lambda m: setattr(m.subgraphs[0].operators[0].builtinOptions, "alpha",
                                                float("inf"))))
