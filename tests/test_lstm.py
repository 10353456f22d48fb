"""UNIDIRECTIONAL_SEQUENCE_LSTM against LiteRT's builtin reference kernel, op by op.

Each LSTM op of each zoo model is fed the reference interpreter's own input tensor (so upstream ops
cannot hide or cause a difference) and a freshly reset state, and must reproduce LiteRT's output
exactly. The zoo covers batch- and time-major, batch 4, H=1..300, T=1..500, stacked layers, the
bidirectional pair (intermediate-4 parameters differ from input 18 there) and a cell scale of
2^-20 (LiteRT's skipped-tanh path).
"""
import copy
from dataclasses import replace

import numpy as np
import pytest

import zoo
from edgelstm import ModelError
from edgelstm.ops import build_kernel
from edgelstm.references import get_reference
from edgelstm.tflite_reader import read_model

LSTM = "UNIDIRECTIONAL_SEQUENCE_LSTM"
LSTM_MODELS = ["basic", "tiny", "odd_h7_f5", "wide_h300", "long_t500", "stacked3", "seq2seq_td",
               "bidirectional", "conv1d_lstm", "batch4", "dynamic_time", "trained", "small_cell_scale",
               "time_major"]


def fresh_state(t):
    return np.full(t.shape, t.quant.zp if t.dtype == np.int8 else 0, dtype=t.dtype)


def lstm_args(graph, op, tensors):
    args = []
    for i in op.inputs:
        if i == -1:
            args.append(None)
            continue
        t = graph.tensors[i]
        if t.data is not None:
            args.append(t.data)
        elif t.is_variable:
            args.append(fresh_state(t))
        else:
            args.append(tensors[i])
    return args


@pytest.mark.parametrize("name", LSTM_MODELS)
def test_lstm_op_bit_exact(name):
    data = zoo.build(name)
    graph = read_model(data)
    ref = get_reference("litert", data, preserve_all_tensors=True)
    ops = [op for op in graph.operators if op.opcode == LSTM]
    assert ops, "zoo model has no fused LSTM"
    compared = 0
    for xs in zoo.sample_inputs(data, n_random=3, seed=1):
        ref.run(xs, reset=True)
        tensors = ref.tensors()
        for op in ops:
            kernel = build_kernel(op, graph, "tflite")
            args = lstm_args(graph, op, tensors)
            got = kernel.run(args)[0]
            want = tensors[op.outputs[0]]
            assert got.shape == want.shape
            bad = np.count_nonzero(got != want)
            assert bad == 0, f"{name} op {op.index}: {bad}/{got.size} differ"
            # the kernel's final state must be LiteRT's final state too
            h_i, c_i = op.inputs[18], op.inputs[19]
            assert np.array_equal(args[18], tensors[h_i]), "final h differs"
            assert np.array_equal(args[19], tensors[c_i]), "final c differs"
            compared += got.size
    assert compared > 0


def test_small_cell_scale_really_takes_litert_skipped_tanh_path():
    graph = read_model(zoo.build("small_cell_scale"))
    op = next(op for op in graph.operators if op.opcode == LSTM)
    kernel = build_kernel(op, graph, "tflite")
    cell_scale_log2 = kernel.record.cell.cell_shift - 30
    assert cell_scale_log2 < -15 and not kernel.record.hidden.tanh_c_valid


def test_bidirectional_uses_intermediate4_params():
    graph = read_model(zoo.build("bidirectional"))
    differs = 0
    for op in graph.operators:
        if op.opcode == LSTM:
            h, i4 = graph.tensors[op.inputs[18]].quant, graph.tensors[op.intermediates[4]].quant
            differs += (h.s, h.zp) != (i4.s, i4.zp)
    assert differs, "the zoo should exercise intermediate-4 parameters that differ from the state's"


def _mutated(name, mutate):
    graph = copy.deepcopy(read_model(zoo.build(name)))
    op = next(op for op in graph.operators if op.opcode == LSTM)
    mutate(graph, op)
    return graph, op


@pytest.mark.parametrize("what,mutate,message", [
    ("cifg", lambda g, op: op.__setattr__("inputs", (op.inputs[0], -1) + op.inputs[2:]), "CIFG"),
    ("peephole", lambda g, op: op.__setattr__("inputs", op.inputs[:10] + (op.inputs[13],) + op.inputs[11:]),
     "peephole"),
    ("projection", lambda g, op: op.__setattr__("inputs", op.inputs[:16] + (op.inputs[1],) + op.inputs[17:]),
     "projection"),
    ("layer norm", lambda g, op: op.__setattr__("inputs", op.inputs[:21] + (op.inputs[13],) + op.inputs[22:]),
     "layer normalization"),
    ("intermediates", lambda g, op: op.__setattr__("intermediates", op.intermediates[:4]), "5 intermediate"),
    ("non power-of-two cell scale",
     lambda g, op: g.tensors[op.inputs[19]].__setattr__(
         "quant", type(g.tensors[op.inputs[19]].quant)(np.array([3e-5], np.float32), np.zeros(1, np.int64))),
     "power of two"),
    ("absurd cell scale",
     lambda g, op: g.tensors[op.inputs[19]].__setattr__(
         "quant", type(g.tensors[op.inputs[19]].quant)(np.array([2.0**-40], np.float32), np.zeros(1, np.int64))),
     "cell state scale"),
    ("state not variable", lambda g, op: g.tensors[op.inputs[18]].__setattr__("is_variable", False), "variable"),
    ("float input", lambda g, op: g.tensors[op.inputs[0]].__setattr__("dtype", np.dtype(np.float32)),
     "full-integer"),
])
def test_lstm_refuses_what_it_cannot_run(what, mutate, message):
    graph, op = _mutated("basic", mutate)
    with pytest.raises(ModelError, match=message):
        build_kernel(op, graph, "tflite")


def test_lstm_rejects_wrong_weight_shape():
    def mutate(g, op):
        t = g.tensors[op.inputs[2]]
        t.data = np.zeros((t.shape[0], t.shape[1] + 1), np.int8)
        t.shape = t.data.shape
    graph, op = _mutated("basic", mutate)
    with pytest.raises(ModelError, match="input weights of gate f"):
        build_kernel(op, graph, "tflite")


def test_generic_and_16bit_matvec_paths_agree():
    """Converter weights lie in [-127, 127] and take the 16-bit path; a weight of -128 (legal in
    TFLite, never emitted by the converter) must switch to the 32-bit path, which must agree."""
    graph = read_model(zoo.build("wide_h300"))
    op = next(op for op in graph.operators if op.opcode == LSTM)
    kernel = build_kernel(op, graph, "tflite")
    assert kernel.record.gates.narrow
    rng = np.random.default_rng(5)
    x = rng.integers(-128, 128, size=graph.tensors[op.inputs[0]].shape, dtype=np.int8)
    outs = []
    for narrow in (True, False):
        kernel.record = replace(kernel.record, gates=replace(kernel.record.gates, narrow=narrow))
        args = lstm_args(graph, op, {op.inputs[0]: x})
        outs.append(kernel.run(args)[0])
    assert np.array_equal(outs[0], outs[1])

    def with_min_weight(g, o):
        t = g.tensors[o.inputs[6]]
        t.data = t.data.copy()
        t.data[0, 0] = -128
    g2, op2 = _mutated("wide_h300", with_min_weight)
    assert not build_kernel(op2, g2, "tflite").record.gates.narrow
