"""QUANTIZE (float32 -> int8, int8 -> int8) and DEQUANTIZE (int8 -> float32).

A model converted with float I/O gives all three: QUANTIZE at the input, an int8 requantization
where an LSTM output feeds two concatenations, DEQUANTIZE at the outputs. Hand-built single ops then
cover exact .5 ties (where float32 and double division disagree, and where half-to-even would),
saturation, values beyond int32 (x86 conversion), NaN/inf, every int8 value, and extreme ratios.
"""
from __future__ import annotations

import numpy as np
import pytest

import oracle
import zoo
from edgelstm.errors import ModelError
from edgelstm.ops import build_kernel
from edgelstm.tflite_reader import read_model
from tflite_build import T, graph_ops, log_uniform, single_op_model, synthetic_kernel, tensor

f32 = np.float32


@zoo.zoo_model("ops_float_io", io="float")
def _float_io():
    """Float in, float out. The input is concatenated with an LSTM sequence (so the DEQUANTIZE sees
    the quantized input values themselves), and that LSTM's output also joins a second LSTM's on the
    time axis, which needs a different scale: the converter inserts an int8 -> int8 QUANTIZE."""
    K = zoo._keras(); L = K.layers; zoo._seed(51)
    x = K.Input((12, 4), batch_size=1)
    a = L.LSTM(6, return_sequences=True)(x)
    b = L.LSTM(6, return_sequences=True)(x)
    m = K.Model(x, [L.Concatenate(axis=-1)([x, a]), L.Concatenate(axis=1)([a, b])])
    return zoo._randomize_biases(m), zoo._calib((1, 12, 4))


def tie_values(scale: float, ks) -> np.ndarray:
    """float32 values v with float32(v / scale) exactly k + 0.5, one per k where such a v exists."""
    s = f32(scale)
    out = []
    for k in ks:
        target = f32(k + 0.5)
        v = f32((k + 0.5) * float(s))
        for cand in [v] + [f32(np.nextafter(v, f32(d * np.inf))) for d in (-1, 1)]:
            if cand / s == target:
                out.append(cand)
                break
    return np.asarray(out, dtype=np.float32)


def expected_quantize(x: np.ndarray, scale: float, zp: int) -> np.ndarray:
    """An independent numpy model of LiteRT's x86 AffineQuantize (used to pin down semantics)."""
    with np.errstate(over="ignore", divide="ignore"):
        q = (x.astype(np.float32) / f32(scale)).astype(np.float64)
    r = np.sign(q) * np.floor(np.abs(q) + 0.5)
    with np.errstate(invalid="ignore"):
        ok = (r >= -2.0 ** 31) & (r < 2.0 ** 31)
    i32 = np.where(ok, np.nan_to_num(r), -2.0 ** 31).astype(np.int64) + zp
    i32 = (i32 + 2 ** 31) % 2 ** 32 - 2 ** 31
    return np.clip(i32, -128, 127).astype(np.int8)


SPECIALS = np.array([0.0, -0.0, 1e-45, -1e-45, 1e-38, 1e3, -1e3, 1e9, -1e9, 3e38, -3e38,
                     np.inf, -np.inf, np.nan], dtype=np.float32)


# -- the converted model -----------------------------------------------------------------------------
def test_float_io_model_quantize_requantize_dequantize():
    model = zoo.build("ops_float_io")
    g = read_model(model)
    quants = graph_ops(model, "QUANTIZE")
    kinds = sorted(g.tensors[op.inputs[0]].type_name for op in quants)
    assert kinds == ["FLOAT32", "INT8"]
    assert len(graph_ops(model, "DEQUANTIZE")) == 2
    inputs = zoo.sample_inputs(model, n_random=4)
    for opcode, n in (("QUANTIZE", 2), ("DEQUANTIZE", 2)):
        assert sum(oracle.check_ops(model, x, opcode) for x in inputs) == n * len(inputs)


def test_float_io_model_ties_and_saturation():
    """Inputs at exact .5 ties of the model's own input scale, plus values that saturate."""
    model = zoo.build("ops_float_io")
    g = read_model(model)
    q_op = next(op for op in graph_ops(model, "QUANTIZE") if g.tensors[op.inputs[0]].type_name == "FLOAT32")
    scale, zp = g.tensors[q_op.outputs[0]].quant.s, g.tensors[q_op.outputs[0]].quant.zp
    ties = tie_values(scale, range(-150, 150))
    assert len(ties) > 100
    values = np.concatenate([ties, SPECIALS[:-3]])  # inf/nan would poison the LSTM, not the op
    k = build_kernel(q_op, g, "tflite")
    outs = []
    for start in range(0, values.size, 48):  # the model takes 12 x 4 values per inference
        x = np.resize(values[start:start + 48], (1, 12, 4)).astype(np.float32)
        assert oracle.check_ops(model, [x], "QUANTIZE") == 2
        assert oracle.check_ops(model, [x], "DEQUANTIZE") == 2
        out = k.run([x])[0]
        assert np.array_equal(out, expected_quantize(x, scale, zp))
        outs.append(out)
    assert min(o.min() for o in outs) == -128 and max(o.max() for o in outs) == 127


# -- hand-built QUANTIZE float32 -> int8 -------------------------------------------------------------
def _quantize_model(scale, zp, n):
    return single_op_model("QUANTIZE", [T(np.float32, (n,))], [T(np.int8, (n,), (scale, zp))])


def test_quantize_ties_round_half_away_from_zero():
    """A power-of-two scale makes every k + 0.5 an exact quotient: std::round sends it away from zero
    (half-to-even would not)."""
    scale, zp = 2.0 ** -5, -3
    k = np.arange(-140, 140)
    x = ((k + 0.5) * scale).astype(np.float32)
    model = _quantize_model(scale, zp, x.size)
    assert oracle.check_ops(model, [x], "QUANTIZE") == 1
    g = read_model(model)
    out = build_kernel(g.operators[0], g, "tflite").run([x])[0].astype(np.int64)
    away = np.where(k >= 0, k + 1, k) + zp
    assert np.array_equal(out, np.clip(away, -128, 127))
    assert not np.array_equal(out, np.clip(np.round(k + 0.5).astype(np.int64) + zp, -128, 127))


def test_quantize_divides_in_float32():
    """Values whose float32 quotient is an exact tie although the true (double) quotient is not:
    the kernel must round the float32 quotient, as LiteRT does."""
    rng = np.random.default_rng(11)
    differ = 0
    for _ in range(6):
        scale, zp = log_uniform(rng, 1e-3, 0.2), int(rng.integers(-128, 128))
        ties = tie_values(scale, range(-128, 128))
        exact = ties.astype(np.float64) / float(f32(scale))
        fooled = ties[exact != np.floor(exact) + 0.5]  # double division would not see a tie here
        x = np.concatenate([ties, rng.normal(scale=100 * scale, size=200).astype(np.float32), SPECIALS])
        model = _quantize_model(scale, zp, x.size)
        assert oracle.check_ops(model, [x], "QUANTIZE") == 1
        g = read_model(model)
        ours = build_kernel(g.operators[0], g, "tflite").run([x])[0]
        assert np.array_equal(ours, expected_quantize(x, scale, zp))
        if fooled.size:
            d = fooled.astype(np.float64) / float(f32(scale))
            double_way = np.clip(np.sign(d) * np.floor(np.abs(d) + 0.5) + zp, -128, 127)
            ours_fooled = build_kernel(g.operators[0], g, "tflite").run([np.resize(fooled, x.size)])[0][:fooled.size]
            differ += np.count_nonzero(ours_fooled != double_way)
    assert differ > 0


def test_quantize_beyond_int32_and_nan():
    """Quotients outside int32 (and NaN) convert to INT32_MIN on x86 before the zero point is added:
    -128 with a non-negative zero point, but 127 with a negative one (the int32 sum wraps)."""
    x = np.array([1e3, -1e3, 5e9, -5e9, 3e38, -3e38, np.inf, -np.inf, np.nan, 2.0 ** 31 * 0.25], np.float32)
    for scale, zp, huge in ((0.25, 0, -128), (0.25, 17, -128), (0.25, -1, 127), (0.01, -128, 127)):
        model = _quantize_model(scale, zp, x.size)
        assert oracle.check_ops(model, [x], "QUANTIZE") == 1
        g = read_model(model)
        out = build_kernel(g.operators[0], g, "tflite").run([x])[0]
        assert out[0] == 127 and out[1] == -128  # ordinary saturation
        assert (out[2:] == huge).all()


# -- int8 -> int8 and DEQUANTIZE ----------------------------------------------------------------------------
def test_requantize_every_int8_value():
    rng = np.random.default_rng(12)
    x = np.arange(-128, 128, dtype=np.int8)
    cases = [(0.01, 5, 0.01, -5)]  # same scale, shifted zero point
    for _ in range(10):
        s_in = log_uniform(rng, 1e-3, 0.3)
        cases.append((s_in, int(rng.integers(-128, 128)), s_in * log_uniform(rng, 0.02, 50.0), int(rng.integers(-128, 128))))
    cases += [(0.5, 0, 0.5 * 2.0 ** -20, 0), (1.0, -1, 2.0 ** -26, 3), (1e-3, 7, 10.0, -2)]  # huge and tiny ratios
    for s_in, z_in, s_out, z_out in cases:
        model = single_op_model("QUANTIZE", [T(np.int8, (256,), (s_in, z_in))], [T(np.int8, (256,), (s_out, z_out))])
        assert oracle.check_ops(model, [x], "QUANTIZE") == 1


def test_dequantize_every_int8_value():
    rng = np.random.default_rng(13)
    x = np.arange(-128, 128, dtype=np.int8).reshape(2, 128)
    for scale, zp in [(1.0, 0), (2.0 ** -7, -128), (1e-38, 3), (1e36, 127)] + [
            (log_uniform(rng, 1e-4, 10.0), int(rng.integers(-128, 128))) for _ in range(8)]:
        model = single_op_model("DEQUANTIZE", [T(np.int8, (2, 128), (scale, zp))], [T(np.float32, (2, 128))])
        assert oracle.check_ops(model, [x], "DEQUANTIZE") == 1
        g = read_model(model)
        out = build_kernel(g.operators[0], g, "tflite").run([x])[0]
        want = (float(f32(scale)) * (x.astype(np.float64) - zp)).astype(np.float32)
        assert out.dtype == np.float32 and np.array_equal(out, want)


def test_dynamic_shapes():
    q = (0.05, 2)
    k = synthetic_kernel("QUANTIZE", [tensor(0, np.float32, (1, 4, 3), signature=(1, -1, 3)),
                                      tensor(1, np.int8, (1, 4, 3), q, signature=(1, -1, 3))], 1)
    assert k.run([np.full((1, 9, 3), 0.125, np.float32)])[0].tolist() == [[[5, 5, 5]] * 9]
    k = synthetic_kernel("DEQUANTIZE", [tensor(0, np.int8, (1, 4, 3), q, signature=(1, -1, 3)),
                                        tensor(1, np.float32, (1, 4, 3), signature=(1, -1, 3))], 1)
    assert k.run([np.full((1, 2, 3), 4, np.int8)])[0].tolist() == [[[f32(0.05) * 2.0] * 3] * 2]
    with pytest.raises(ModelError):
        k.run([np.full((1, 2, 4), 4, np.int8)])
    with pytest.raises(ModelError):
        k.run([np.full((1, 2, 3), 4, np.int16)])


def test_quantize_rejects_bad_models():
    q = (0.01, 0)
    cases = [
        ("QUANTIZE", [tensor(0, np.float32, (4,)), tensor(1, np.int16, (4,), q)], "must be int8"),
        ("QUANTIZE", [tensor(0, np.int16, (4,), q), tensor(1, np.int8, (4,), q)], "must be float32/int8"),
        ("QUANTIZE", [tensor(0, np.float32, (4,)), tensor(1, np.int8, (4,))], "no quantization"),
        ("QUANTIZE", [tensor(0, np.float32, (4,)), tensor(1, np.int8, (4,), per_channel=[0.1] * 4)], "per tensor"),
        ("QUANTIZE", [tensor(0, np.int8, (4,)), tensor(1, np.int8, (4,), q)], "no quantization"),
        ("QUANTIZE", [tensor(0, np.float32, (4,)), tensor(1, np.int8, (5,), q)], "same shape"),
        ("QUANTIZE", [tensor(0, np.int8, (4,), (1.0, 0)), tensor(1, np.int8, (4,), (2.0 ** -40, 0))], "too large"),
        ("DEQUANTIZE", [tensor(0, np.int16, (4,), q), tensor(1, np.float32, (4,))], "must be int8"),
        ("DEQUANTIZE", [tensor(0, np.int8, (4,), q), tensor(1, np.int8, (4,))], "must be float32"),
        ("DEQUANTIZE", [tensor(0, np.int8, (4,)), tensor(1, np.float32, (4,))], "no quantization"),
        ("DEQUANTIZE", [tensor(0, np.int8, (2, 4), q), tensor(1, np.float32, (4, 2))], "same shape"),
    ]
    for opcode, tensors, message in cases:
        with pytest.raises(ModelError, match=message):
            synthetic_kernel(opcode, tensors, 1)
