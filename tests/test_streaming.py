"""The streaming export (edgelstm.graph.streaming): a T=1 rewrite of a converted model whose LSTM
state carries across invokes must reproduce the full-sequence model bit for bit, in each runtime.

For every model and runtime (LiteRT's reference kernels, TFLite Micro, edgelstm flavor="tflite" and
flavor="tflm"), each sample is fed one timestep per invoke to the streaming model, and compared with
the full model in the same runtime: the output after the last step against the full output for a
last-step head, every step against the full output's timestep for a sequence output. Twice: state
reset before each sequence, then carried across all sequences (a stream that never resets). For
dynamic-T models, every step k is also compared with the full model run on the prefix x[:, :k+1].
"""
from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest

import edgelstm
import zoo
from edgelstm.errors import ConversionError
from edgelstm.graph.streaming import TimeDim, plan_streaming, streaming_model, time_axis
from edgelstm.lint import lint
from edgelstm.references import get_reference
from edgelstm.tflite_reader import read_model

RUNTIMES = ("litert", "tflm", "edgelstm", "edgelstm-tflm")

STREAMED = ["basic", "stacked3", "seq2seq_td", "trained", "small_cell_scale", "time_major", "odd_h7_f5",
            "batch4", "float_io", "batchnorm_relu", "concat_add_flatten", "stream_rewrites", "stream_ops"]
# TFLite Micro has no dynamic shapes (the full model would run at its stored length 1) and no
# REDUCE_PROD, so dynamic-T models are checked in LiteRT and edgelstm's LiteRT flavour.
DYNAMIC = ["dynamic_time", "dynamic_time_dense"]
REFUSED = {
    "bidirectional": ("REVERSE_V2", "future"),
    "conv1d_lstm": ("CONV_2D", "window of 3"),
    "pool_heads": ("REDUCE_MAX", "over the time axis"),
    "tiny": (None, "T = 1"),
}


@zoo.zoo_model("stream_rewrites")
def _stream_rewrites():
    """Constants that encode T: a pointwise Conv1D and a MaxPooling1D(1) (RESHAPE shapes with T), a
    Dense on a batch-2 sequence, and last-timestep slices written as y[:, T-1] (STRIDED_SLICE begin
    T-1, end T: out of range at T = 1 unless rewritten)."""
    K = zoo._keras(); L = K.layers; zoo._seed(31)
    T, F = zoo.T_DEFAULT, zoo.F_DEFAULT
    x = K.Input((T, F), batch_size=2)
    y = L.Conv1D(8, 1, activation="relu")(x)
    y = L.MaxPooling1D(pool_size=1)(y)
    y = L.LSTM(12, return_sequences=True)(y)
    last = L.Lambda(lambda v: v[:, T - 1:T, :])(y)
    a = L.Dense(3)(L.Flatten()(last))
    b = L.Dense(2)(y)
    c = L.Reshape((T, 12))(L.Activation("relu")(L.Reshape((T, 4, 3))(y)))
    d = L.Lambda(lambda v: v[:, T - 1, :])(c)
    m = K.Model(x, [a, b, L.Dense(2, activation="tanh")(d)])
    return zoo._randomize_biases(m), zoo._calib((2, T, F))


@zoo.zoo_model("stream_ops")
def _stream_ops():
    """The other per-timestep ops: a time-major LSTM between TRANSPOSEs, a time-last output, REDUCE_MAX,
    GATHER and SLICE over features, SOFTMAX on a sequence, and the last timestep taken by SLICE."""
    import tensorflow as tf

    K = zoo._keras(); L = K.layers; zoo._seed(33)
    T, F = 9, 5
    x = K.Input((T, F), batch_size=2)
    y = L.LSTM(8, time_major=True, return_sequences=True)(L.Lambda(lambda t: tf.transpose(t, [1, 0, 2]))(x))
    y = L.Lambda(lambda t: tf.transpose(t, [1, 0, 2]))(y)
    e = L.Lambda(lambda t: tf.squeeze(t, axis=2))(L.Activation("relu")(L.Lambda(lambda t: tf.expand_dims(t, 2))(y)))
    r = L.Lambda(lambda t: tf.reduce_max(t, axis=-1, keepdims=True))(e)
    g = L.Lambda(lambda t: tf.gather(t, [0, 3, 5], axis=2))(y)
    s = L.Lambda(lambda t: tf.slice(t, [0, 0, 2], [-1, -1, 4]))(y)
    last = L.Lambda(lambda t: tf.slice(t, [0, T - 1, 0], [-1, 1, -1]))(y)
    m = K.Model(x, [L.Permute((2, 1))(y), r, g, L.Softmax(axis=-1)(L.Dense(3)(s)), L.Dense(2)(L.Flatten()(last))])
    return zoo._randomize_biases(m), zoo._calib((2, T, F))


def _runner(runtime: str, model: bytes):
    """run(xs, reset) -> list of outputs, for one runtime holding `model`."""
    if runtime in ("litert", "tflm"):
        return get_reference(runtime, model).run
    m = edgelstm.load(model, flavor="tflm" if runtime == "edgelstm-tflm" else "tflite")

    def run(xs, reset):
        y = m.run(xs if len(xs) > 1 else xs[0], reset=reset)
        return list(y) if isinstance(y, (list, tuple)) else [y]
    return run


def _axes(full: bytes):
    """Time axis of every model input and output (None: no time axis)."""
    plan, g = plan_streaming(full), read_model(full)
    return ([plan.input_axes.get(i) for i in g.inputs],
            [time_axis(plan.shapes.get(o, ())) for o in g.outputs])


def _step(xs, in_axes, k):
    return [np.take(x, [k], axis=a) if a is not None else x for x, a in zip(xs, in_axes)]


def compare_streaming(full: bytes, step: bytes, runtime: str, samples) -> tuple[int, int]:
    """(elements compared, elements differing) between the full model and step-by-step streaming."""
    run_full, run_step = _runner(runtime, full), _runner(runtime, step)
    in_axes, out_axes = _axes(full)
    compared = differing = 0
    for carry in (False, True):
        for n, xs in enumerate(samples):
            reset = not carry or n == 0
            want = run_full(xs, reset=reset)
            t = xs[0].shape[in_axes[0]]
            steps = [run_step(_step(xs, in_axes, k), reset=reset and k == 0) for k in range(t)]
            assert len(steps[-1]) == len(want)
            for j, (w, a) in enumerate(zip(want, out_axes)):
                got = np.concatenate([s[j] for s in steps], axis=a) if a is not None else steps[-1][j]
                assert got.shape == w.shape and got.dtype == w.dtype
                compared += w.size
                differing += int(np.count_nonzero(got != w))
    return compared, differing


@pytest.fixture(scope="module")
def streamed():
    cache = {}

    def get(name):
        if name not in cache:
            full = zoo.build(name)
            cache[name] = (full, streaming_model(full))
        return cache[name]
    return get


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("name", STREAMED)
def test_streaming_is_bit_exact(streamed, name, runtime):
    full, step = streamed(name)
    samples = zoo.sample_inputs(full, n_random=5)
    compared, differing = compare_streaming(full, step, runtime, samples)
    assert compared > 0
    assert differing == 0, f"{name} in {runtime}: {differing} of {compared} elements differ"


@pytest.mark.parametrize("runtime", ("litert", "edgelstm"))
@pytest.mark.parametrize("name", DYNAMIC)
def test_dynamic_time_every_prefix(streamed, name, runtime):
    """Step k of the stream is the full model on the sequence that ends at k."""
    full, step = streamed(name)
    run_full, run_step = _runner(runtime, full), _runner(runtime, step)
    in_axes, out_axes = _axes(full)
    compared = 0
    for xs in zoo.sample_inputs(full, n_random=2, time_steps=12):
        for k in range(12):
            got = run_step(_step(xs, in_axes, k), reset=k == 0)
            want = run_full([np.take(x, range(k + 1), axis=a) for x, a in zip(xs, in_axes)], reset=True)
            for g, w, a in zip(got, want, out_axes):
                w = np.take(w, [k], axis=a) if a is not None else w
                assert np.array_equal(g, w), f"{name} in {runtime}: step {k} differs"
                compared += w.size
    assert compared > 0
    compared, differing = compare_streaming(full, step, runtime, zoo.sample_inputs(full, n_random=2))
    assert compared > 0 and differing == 0


@pytest.mark.parametrize("runtime", ("litert", "edgelstm"))
@pytest.mark.parametrize("name", STREAMED + DYNAMIC)
def test_every_tensor_at_every_step(streamed, name, runtime):
    """Inside the model too: at invoke k every tensor carrying the time axis (LSTM outputs, the ops
    between them) equals timestep k of that tensor in the full model, so a last-step head sees the
    full model's h_k at every step, not only after the last one."""
    full, step = streamed(name)
    plan = plan_streaming(full)
    in_axes, _ = _axes(full)
    if runtime == "litert":
        ref_full = get_reference("litert", full, preserve_all_tensors=True)
        ref_step = get_reference("litert", step, preserve_all_tensors=True)

        def tensors(ref, xs, reset):
            ref.run(xs, reset=reset)
            return ref.tensors()
        run_full = lambda xs, reset: tensors(ref_full, xs, reset)  # noqa: E731
        run_step = lambda xs, reset: tensors(ref_step, xs, reset)  # noqa: E731
    else:
        m_full, m_step = edgelstm.load(full), edgelstm.load(step)
        run_full = lambda xs, reset: m_full.run_all_tensors(xs if len(xs) > 1 else xs[0], reset=reset)  # noqa: E731
        run_step = lambda xs, reset: m_step.run_all_tensors(xs if len(xs) > 1 else xs[0], reset=reset)  # noqa: E731
    plain = {i: time_axis(s) for i, s in plan.shapes.items() if s[time_axis(s)] == TimeDim()}
    compared = 0
    for xs in zoo.sample_inputs(full, n_random=2, time_steps=12)[:3]:
        want = run_full(xs, reset=True)
        t = xs[0].shape[in_axes[0]]
        for k in range(t):
            got = run_step(_step(xs, in_axes, k), reset=k == 0)
            for i, a in plain.items():
                w = np.take(want[i], [k], axis=a)
                assert np.array_equal(got[i], w), f"{name} {runtime}: tensor {i} differs at step {k}"
                compared += w.size
    assert compared > 0


def test_streaming_shapes_and_rewrites(streamed):
    """Only the time dimension changes; what the rewrite had to touch on the models that need it."""
    full, step = streamed("stream_rewrites")
    g, s = read_model(full), read_model(step)
    assert [g.tensors[i].shape for i in g.inputs] == [(2, 20, 6)]
    assert [s.tensors[i].shape for i in s.inputs] == [(2, 1, 6)]
    plan = plan_streaming(full)
    slices = [op for op in g.operators if op.opcode == "STRIDED_SLICE"]
    assert len(slices) == 2 and all(g.tensors[op.inputs[1]].data[1] == 19 for op in slices)
    for op in slices:  # begin T-1 rewritten (and out of range at T = 1 otherwise)
        assert s.tensors[s.operators[op.index].inputs[1]].data.tolist() == [0, 0, 0]
    reshaped = [op for op in g.operators if op.opcode == "RESHAPE"]
    assert reshaped and all((op.index, 1) in plan.constants for op in reshaped)
    for t0, t1 in zip(g.tensors, s.tensors):  # weights and quantization untouched
        if t0.quant is not None:
            assert np.array_equal(t0.quant.scale, t1.quant.scale) and np.array_equal(t0.quant.zero_point,
                                                                                     t1.quant.zero_point)
        if t0.data is not None and t0.data.dtype == np.int8:
            assert np.array_equal(t0.data, t1.data)
        changed = [k for k, (a, b) in enumerate(zip(t0.shape, t1.shape)) if a != b]
        if t0.index in plan.shapes:  # exactly the time axis, 20 -> 1 (40 -> 2 where merged with batch 2)
            assert len(t0.shape) == len(t1.shape) and len(changed) == 1
            assert t0.shape[changed[0]] == 20 * t1.shape[changed[0]]
        else:
            assert not changed
    full, step = streamed("dynamic_time_dense")  # the run-time shape arithmetic is folded away
    ops = [op.opcode for op in read_model(step).operators]
    assert "SHAPE" not in ops and "REDUCE_PROD" not in ops and ops.count("RESHAPE") == 2


@pytest.mark.parametrize("name", STREAMED + DYNAMIC)
def test_streaming_model_adds_no_lint_hazard(streamed, name):
    full, step = streamed(name)
    opcode = lambda b: {op.index: op.opcode for op in read_model(b).operators}  # noqa: E731
    before = {(h.code, opcode(full).get(h.op), h.severity) for h in lint(full)}
    after = {(h.code, opcode(step).get(h.op), h.severity) for h in lint(step)}
    assert after <= before, after - before
    if name == "small_cell_scale":  # a hazard of the full model stays (same quantization)
        assert any(code == "cell_scale" for code, _, _ in after)


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refused(name):
    opcode, reason = REFUSED[name]
    with pytest.raises(ConversionError, match="cannot stream") as err:
        streaming_model(zoo.build(name))
    assert reason in str(err.value)
    if opcode is not None:
        assert opcode in err.value.layer and opcode in str(err.value)


def _lstm_then(build):
    K = zoo._keras(); L = K.layers; zoo._seed(32)
    x = K.Input((8, 3), batch_size=1)
    m = K.Model(x, build(L, L.LSTM(4, return_sequences=True)(x)))
    return zoo._randomize_biases(m), zoo._calib((1, 8, 3))


@zoo.zoo_model("stream_refuse_flatten")
def _refuse_flatten():
    return _lstm_then(lambda L, y: L.Dense(2)(L.Flatten()(y)))


@zoo.zoo_model("stream_refuse_stride2")
def _refuse_stride2():
    return _lstm_then(lambda L, y: L.Lambda(lambda v: v[:, ::2, :])(y))


@zoo.zoo_model("stream_refuse_concat_time")
def _refuse_concat_time():
    return _lstm_then(lambda L, y: L.Concatenate(axis=1)([y, y]))


@pytest.mark.parametrize("name, opcode, reason", [
    ("stream_refuse_flatten", "FULLY_CONNECTED", "across the time axis"),
    ("stream_refuse_stride2", "STRIDED_SLICE", "timesteps [0, 2, 4, 6] of 8"),
    ("stream_refuse_concat_time", "CONCATENATION", "along the time axis")])
def test_refused_time_ops(name, opcode, reason):
    """Each remaining refusal rule on the graph the converter emits for it: a Flatten over time, a
    slice of other timesteps, a concatenation along time."""
    with pytest.raises(ConversionError, match=re.escape(reason)) as err:
        streaming_model(zoo.build(name))
    assert opcode in err.value.layer


def test_cli_stream(tmp_path, streamed):
    full, step = streamed("seq2seq_td")
    src = tmp_path / "model.tflite"
    src.write_bytes(full)
    out = tmp_path / "step.tflite"
    r = subprocess.run([sys.executable, "-m", "edgelstm.cli", "stream", str(src), "--out", str(out), "--json"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["ok"] and info["time_steps"] == 20 and out.read_bytes() == step
    assert info["inputs"][0]["step"] == [1, 1, 6] and info["outputs"][0]["step"] == [1, 1, 3]
    bad = tmp_path / "bidir.tflite"
    bad.write_bytes(zoo.build("bidirectional"))
    r = subprocess.run([sys.executable, "-m", "edgelstm.cli", "stream", str(bad), "--out", str(tmp_path / "x")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "REVERSE_V2" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "x").exists()


def test_streaming_needs_no_tensorflow(tmp_path, streamed):
    """The documented entry point, edgelstm.convert.streaming_model, imports no TensorFlow."""
    full, step = streamed("basic")
    src = tmp_path / "m.tflite"
    src.write_bytes(full)
    code = ("import sys; from edgelstm.convert import streaming_model; "
            f"out = streaming_model({str(src)!r}); "
            "assert 'tensorflow' not in sys.modules and 'tf_keras' not in sys.modules; "
            "sys.stdout.buffer.write(out)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True)
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout == step


def test_streaming_needs_no_ai_edge_litert(tmp_path, streamed):
    """The graph layer writes the model with the `tflite` package alone: with ai-edge-litert and
    TensorFlow made unimportable, the same bytes come out."""
    full, step = streamed("stream_rewrites")
    src = tmp_path / "m.tflite"
    src.write_bytes(full)
    code = ("import sys\n"
            "for name in ('ai_edge_litert', 'tensorflow', 'tf_keras'):\n    sys.modules[name] = None\n"
            "from edgelstm.graph.streaming import streaming_model\n"
            f"sys.stdout.buffer.write(streaming_model({str(src)!r}))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True)
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout == step
