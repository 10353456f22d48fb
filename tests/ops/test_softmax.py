"""SOFTMAX (int8 in, int8 out) against LiteRT's BUILTIN_REF kernel.

The converter emits SOFTMAX with beta = 1 for L.Softmax() and Dense(k, activation="softmax");
tf.nn.softmax(x * c) stays MUL + SOFTMAX. Other betas and input scales are set by editing the
flatbuffer, and LiteRT runs each edited model, so every comparison is still against the reference.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as S

import edgelstm
import zoo
from edgelstm.tflite_reader import read_model
from oracle import check_ops, first_kernel
from tflite_build import edit

WIDTHS = (2, 3, 10, 64)
ROWS = 256


# -- models ------------------------------------------------------------------------------------------
# Each builder is self-contained: the zoo's cache key is the builder's own source.
@zoo.zoo_model("ops_softmax_in_w2")
def _in_w2():
    K = zoo._keras(); zoo._seed(32)
    x = K.Input((256, 2), batch_size=1)
    return K.Model(x, K.layers.Softmax()(x)), zoo._calib((1, 256, 2), scale=3.0)


@zoo.zoo_model("ops_softmax_in_w3")
def _in_w3():
    K = zoo._keras(); zoo._seed(33)
    x = K.Input((256, 3), batch_size=1)
    return K.Model(x, K.layers.Softmax()(x)), zoo._calib((1, 256, 3), scale=3.0)


@zoo.zoo_model("ops_softmax_in_w10")
def _in_w10():
    K = zoo._keras(); zoo._seed(40)
    x = K.Input((256, 10), batch_size=1)
    return K.Model(x, K.layers.Softmax()(x)), zoo._calib((1, 256, 10), scale=3.0)


@zoo.zoo_model("ops_softmax_in_w64")
def _in_w64():
    K = zoo._keras(); zoo._seed(94)
    x = K.Input((256, 64), batch_size=1)
    return K.Model(x, K.layers.Softmax()(x)), zoo._calib((1, 256, 64), scale=3.0)


@zoo.zoo_model("ops_softmax_dense_heads")
def _dense_heads():
    K = zoo._keras(); L = K.layers; zoo._seed(31)
    x = K.Input((12,), batch_size=1)
    h = L.Dense(16)(x)
    m = K.Model(x, [L.Dense(w, activation="softmax")(h) for w in (2, 3, 10, 64)])
    return zoo._randomize_biases(m, scale=1.0), zoo._calib((1, 12), scale=2.0)


# -- flatbuffer editing (tests/tflite_build.py) -------------------------------------------------------
def edited(model_bytes: bytes, in_q=None, out_q=None, beta=None, out_type=None, shape=None) -> bytes:
    def fn(m):
        sg = m.subgraphs[0]
        op = sg.operators[0]
        tin, tout = sg.tensors[op.inputs[0]], sg.tensors[op.outputs[0]]
        for t, q in ((tin, in_q), (tout, out_q)):
            if q is not None:
                t.quantization.scale, t.quantization.zeroPoint = [float(q[0])], [int(q[1])]
        if beta is not None:
            op.builtinOptions.beta = beta
        if out_type is not None:
            tout.type = out_type
        if shape is not None:
            for t in (tin, tout):
                t.shape, t.shapeSignature = list(shape), None
    return edit(model_bytes, fn)


def crafted_rows(width: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Inputs that make every input difference 0..-255 occur, plus ties and constant rows."""
    rows = rng.integers(-128, 128, size=(ROWS, width), dtype=np.int8)
    rows[:, 0] = np.arange(-128, 128)  # every value ...
    if width > 1:
        rows[:, 1] = 127  # ... against the largest possible maximum
    if width > 2:
        rows[::2, 2] = -128
    ties = np.repeat(rng.integers(-128, 128, size=(ROWS, 1), dtype=np.int8), width, axis=1)
    ties[::3, 0] = -128
    return [rows[None], ties[None], rng.integers(-128, 128, size=(1, ROWS, width), dtype=np.int8),
            rng.integers(-10, 10, size=(1, ROWS, width), dtype=np.int8),
            np.full((1, ROWS, width), 127, np.int8), np.full((1, ROWS, width), -128, np.int8)]


# -- comparisons -----------------------------------------------------------------------------------
@pytest.mark.parametrize("width", WIDTHS)
def test_converted_softmax_every_difference(width):
    model = zoo.build(f"ops_softmax_in_w{width}")
    assert [op.opcode for op in read_model(model).operators] == ["SOFTMAX"]
    rng = np.random.default_rng(width)
    for x in crafted_rows(width, rng):
        assert check_ops(model, [x], "SOFTMAX") == 1
    for xs in zoo.sample_inputs(model, n_random=2):
        assert check_ops(model, xs, "SOFTMAX") == 1


def test_width2_all_pairs():
    """All 65,536 ordered pairs of int8 values (LiteRT resizes the input to 65,536 rows)."""
    a, b = np.meshgrid(np.arange(-128, 128), np.arange(-128, 128))
    pairs = np.stack([a.ravel(), b.ravel()], axis=-1).astype(np.int8)[None]
    base = zoo.build("ops_softmax_in_w2")
    for in_s, beta in ((None, None), (0.5, 64.0), (1e-7, 0.2), (0.1, 0.3)):
        model = base if in_s is None else edited(base, in_q=(in_s, 0), beta=beta)
        assert check_ops(model, [pairs], "SOFTMAX") == 1


@pytest.mark.parametrize("width", WIDTHS)
def test_beta_and_input_scale_sweep(width):
    rng = np.random.default_rng(100 + width)
    base = zoo.build(f"ops_softmax_in_w{width}")
    for k in range(20):
        in_q = (float(np.float32(10 ** rng.uniform(-3, 0.5))), int(rng.integers(-128, 128)))
        beta = 1.0 if k % 4 == 0 else float(np.float32(10 ** rng.uniform(-1, 1.5)))
        model = edited(base, in_q=in_q, beta=beta)
        for x in crafted_rows(width, rng)[:3]:
            assert check_ops(model, [x], "SOFTMAX") == 1


@pytest.mark.parametrize("in_s,beta", [
    (1.0, 40.0), (2.0, 16.0), (1.0, 32.0),  # beta * scale * 2^26 capped at 2^31 - 1: diff_min = 0
    (2 ** -20, 1.0), (1e-7, 0.2), (2 ** -25, 1.0),  # barely above the minimum multiplier of 1
    (0.0625, 1.0), (0.25, 3.0),  # power-of-two products: exact multipliers and radius edges
])
def test_multiplier_limits(in_s, beta):
    rng = np.random.default_rng(7)
    model = edited(zoo.build("ops_softmax_in_w10"), in_q=(in_s, 3), beta=beta)
    for x in crafted_rows(10, rng):
        assert check_ops(model, [x], "SOFTMAX") == 1


def test_after_dense():
    model = zoo.build("ops_softmax_dense_heads")
    assert [op.opcode for op in read_model(model).operators].count("SOFTMAX") == len(WIDTHS)
    rng = np.random.default_rng(9)
    inputs = zoo.sample_inputs(model, n_random=4) + [
        [rng.integers(-128, 128, size=(1, 12), dtype=np.int8)] for _ in range(6)]
    for xs in inputs:
        assert check_ops(model, xs, "SOFTMAX") == len(WIDTHS)


def test_whole_model_runs_through_edgelstm():
    from edgelstm.references import get_reference
    model = zoo.build("ops_softmax_in_w10")
    x = crafted_rows(10, np.random.default_rng(1))[0]
    got = edgelstm.load(model).run(x)
    got = got[0] if isinstance(got, (list, tuple)) else got
    np.testing.assert_array_equal(got, get_reference("litert", model).run([x])[0])


# -- the widest rows -----------------------------------------------------------------------------------
def test_511_equal_values_are_fine():
    model = edited(zoo.build("ops_softmax_in_w64"), shape=(1, 2, 511))
    x = np.zeros((1, 2, 511), np.int8)
    assert check_ops(model, [x], "SOFTMAX") == 1


def test_512_equal_values_abort_litert_and_raise_here(tmp_path):
    """Exps summing to 512 or more push the output exponent past 31: LiteRT's reference kernel
    hits a TFLITE_CHECK and aborts the process, so edgelstm refuses with a ModelError instead."""
    model = edited(zoo.build("ops_softmax_in_w64"), shape=(1, 2, 512))
    x = np.zeros((1, 2, 512), np.int8)
    with pytest.raises(edgelstm.ModelError, match="512"):
        first_kernel(model).run([x])
    path = tmp_path / "wide.tflite"
    path.write_bytes(model)
    script = textwrap.dedent(f"""
        import numpy as np
        from ai_edge_litert import interpreter as lit
        it = lit.Interpreter(model_path={str(path)!r}, num_threads=1,
                             experimental_op_resolver_type=lit.OpResolverType.BUILTIN_REF)
        it.allocate_tensors()
        it.set_tensor(it.get_input_details()[0]["index"], np.zeros((1, 2, 512), np.int8))
        it.invoke()
        print("survived")
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "survived" not in proc.stdout


# -- refusals ------------------------------------------------------------------------------------------
def test_bad_models_raise_model_error():
    base = zoo.build("ops_softmax_in_w3")
    with pytest.raises(edgelstm.ModelError, match="1/256, -128"):
        first_kernel(edited(base, out_q=(1 / 256, -127)))
    with pytest.raises(edgelstm.ModelError, match="1/256, -128"):
        first_kernel(edited(base, out_q=(1 / 128, -128)))
    with pytest.raises(edgelstm.ModelError, match="1/256, -128"):
        first_kernel(edited(base, out_q=(1.002 / 256, -128)))
    # inside LiteRT's tolerance the scale is accepted and ignored, by both
    near = edited(base, out_q=(1.0005 / 256, -128))
    assert check_ops(near, [crafted_rows(3, np.random.default_rng(0))[0]], "SOFTMAX") == 1
    with pytest.raises(edgelstm.ModelError, match="must be int8"):
        first_kernel(edited(base, out_type=S.TensorType.INT16))
    for beta in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(edgelstm.ModelError, match="beta"):
            first_kernel(edited(base, beta=beta))
    with pytest.raises(edgelstm.ModelError, match="beta"):  # beta * scale * 2^26 <= 1
        first_kernel(edited(base, in_q=(1e-8, 0)))
    with pytest.raises(edgelstm.ModelError, match="at least one dimension"):
        first_kernel(edited(base, shape=()))

    def two_inputs(m):
        op = m.subgraphs[0].operators[0]
        op.inputs = list(op.inputs) * 2
    with pytest.raises(edgelstm.ModelError, match="expects 1 inputs"):
        first_kernel(edit(base, two_inputs))
    with pytest.raises(edgelstm.ModelError, match="int8 input"):
        first_kernel(base).run([np.zeros((1, ROWS, 3), np.uint8)])
