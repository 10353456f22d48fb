"""Every zoo model, end to end: edgelstm.verify against the builtin reference kernels of LiteRT
(ai-edge-litert) and of TensorFlow's own tf.lite interpreter.

Each model gets random inputs over the full input range plus all -128, all 127, all 0 and
all-zero-point inputs; `verify` runs them once with the state reset per sample and once with the state carried
across all of them (the LSTM's h and c persist between invocations in TFLite).
"""
import numpy as np
import pytest

import zoo
import edgelstm
from edgelstm import ReferenceUnavailable
from edgelstm.verify import verify

ZOO = ["basic", "tiny", "odd_h7_f5", "wide_h300", "long_t500", "stacked3", "seq2seq_td", "bidirectional",
       "conv1d_lstm", "pool_heads", "concat_add_flatten", "batchnorm_relu", "batch4", "dynamic_time", "dynamic_time_dense",
       "float_io", "trained", "small_cell_scale", "time_major"]


def zoo_inputs(data):
    inputs = zoo.sample_inputs(data, n_random=4, seed=7)
    return inputs + [[np.zeros_like(a) for a in inputs[0]]]


@pytest.mark.parametrize("reference", ["litert", "tflite"])
@pytest.mark.parametrize("name", ZOO)
def test_zoo_model_bit_exact(name, reference):
    data = zoo.build(name)
    inputs = zoo_inputs(data)
    if reference == "tflite" and name == "bidirectional":
        # TensorFlow 2.21's own interpreter is older than its converter: it has no REVERSE_V2 v3
        with pytest.raises(ReferenceUnavailable, match="REVERSE_V2"):
            verify(data, reference=reference, inputs=inputs)
        return
    res = verify(data, reference=reference, inputs=inputs, check_state=True)
    assert res.samples == len(inputs)
    assert all(o.elements > 0 for o in res.outputs)
    assert res.bit_exact, (f"{name}: {res.mismatched_elements} elements differ (max {res.max_abs_diff}); "
                           f"first: {res.first_mismatch}")


def test_dynamic_time_runs_any_length():
    data = zoo.build("dynamic_time")
    for steps in (1, 7, 64):
        inputs = zoo.sample_inputs(data, n_random=2, seed=steps, time_steps=steps)
        assert verify(data, inputs=inputs).bit_exact


def test_verify_mixed_lengths_in_one_call():
    data = zoo.build("dynamic_time_dense")
    inputs = [x for steps in (1, 5, 20) for x in zoo.sample_inputs(data, n_random=2, seed=steps, time_steps=steps)]
    assert verify(data, inputs=inputs, check_state=True).bit_exact


def test_state_carries_over_without_reset():
    m = edgelstm.load(zoo.build("seq2seq_td"))
    x = np.random.default_rng(0).integers(-128, 128, size=m.inputs[0].shape, dtype=np.int8)
    first = m.run(x)
    second = m.run(x, reset=False)
    assert not np.array_equal(first, second), "state should change the second call's output"
    assert np.array_equal(m.run(x), first), "run() resets by default"
    m.run(x)
    m.reset()
    assert np.array_equal(m.run(x, reset=False), first), "reset() restores the initial state"


def test_run_batch_equals_independent_runs():
    m = edgelstm.load(zoo.build("basic"))
    rng = np.random.default_rng(3)
    xs = rng.integers(-128, 128, size=(9, *m.inputs[0].shape), dtype=np.int8)
    batched = m.run_batch(xs, workers=2)
    assert len(batched) == 9
    for x, y in zip(xs, batched):
        assert np.array_equal(m.run(x), y)
